"""Compiled max-pooling kernels against the NumPy reference and by hand."""

import numpy as np
import pytest

from csmile.kernels import reference

_pool = pytest.importorskip(
    "csmile.kernels._pool", reason="compiled kernels not built"
)

# (n_samples, height, width, n_channels, pool_size, stride)
POOL_CASES = [
    pytest.param((1, 4, 4, 1, 2, 2), id="2x2-s2-square"),
    pytest.param((3, 7, 9, 5, 2, 2), id="2x2-s2-odd-dropped"),
    pytest.param((2, 8, 5, 3, 2, 1), id="2x2-s1-overlap"),
    pytest.param((2, 9, 7, 4, 3, 3), id="3x3-s3"),
    pytest.param((1, 8, 11, 2, 3, 2), id="3x3-s2-overlap"),
    pytest.param((2, 7, 6, 3, 3, 1), id="3x3-s1-overlap"),
    pytest.param((2, 5, 8, 1, 2, 3), id="2x2-s3-gaps"),
    pytest.param((2, 3, 3, 6, 3, 2), id="output-1x1"),
    pytest.param((4, 2, 7, 16, 2, 2), id="one-output-row"),
    pytest.param((2, 9, 11, 8, 2, 2), id="2x2-s2-8ch-odd"),
]
DTYPES = [
    pytest.param(np.float64, id="float64"),
    pytest.param(np.float32, id="float32"),
]


def make_pool_input(rng, case, dtype):
    n_samples, height, width, n_channels, _, _ = case
    return rng.standard_normal((n_samples, height, width, n_channels)).astype(dtype)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_forward_matches_reference(rng, dtype, case):
    x = make_pool_input(rng, case, dtype)
    pool_size, stride = case[4], case[5]

    out, argmax = _pool.maxpool2d_forward(x, pool_size, stride)
    expected_out, expected_argmax = reference.maxpool2d_forward(x, pool_size, stride)

    assert out.dtype == dtype
    assert argmax.dtype == np.int32
    assert out.shape == expected_out.shape
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_backward_matches_reference(rng, dtype, case):
    x = make_pool_input(rng, case, dtype)
    pool_size, stride = case[4], case[5]
    _, argmax = reference.maxpool2d_forward(x, pool_size, stride)
    grad_output = rng.standard_normal(argmax.shape).astype(dtype)

    grad_input = _pool.maxpool2d_backward(grad_output, argmax, x.shape)
    expected = reference.maxpool2d_backward(grad_output, argmax, x.shape)

    assert grad_input.dtype == dtype
    np.testing.assert_allclose(grad_input, expected, rtol=1e-6, atol=1e-6)


def test_pool_forward_worked_example():
    x = np.array(
        [[1.0, 3.0, 2.0, 0.0, 9.0],
         [4.0, 2.0, 7.0, 8.0, 9.0],
         [0.0, 5.0, 1.0, 1.0, 9.0]]
    ).reshape(1, 3, 5, 1)
    # Windows start at columns 0 and 2; row 2 and column 4 are dropped.
    # Maxima: 4 at (1, 0) -> 1*5 + 0 = 5, and 8 at (1, 3) -> 1*5 + 3 = 8.

    out, argmax = _pool.maxpool2d_forward(x, 2, 2)

    np.testing.assert_array_equal(out.ravel(), [4.0, 8.0])
    np.testing.assert_array_equal(argmax.ravel(), [5, 8])


def test_pool_backward_overlap_accumulates():
    x = np.array(
        [[0.0, 0.0, 0.0],
         [0.0, 9.0, 0.0],
         [0.0, 0.0, 0.0]]
    ).reshape(1, 3, 3, 1)
    grad_output = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    # Stride 1: the centre is the maximum of all four windows.
    expected = np.zeros((1, 3, 3, 1))
    expected[0, 1, 1, 0] = 10.0

    _, argmax = _pool.maxpool2d_forward(x, 2, 1)
    grad_input = _pool.maxpool2d_backward(grad_output, argmax, x.shape)

    np.testing.assert_array_equal(argmax.ravel(), [4, 4, 4, 4])
    np.testing.assert_array_equal(grad_input, expected)


def test_pool_backward_argmax_outside_block(rng):
    # Two outputs of sample 1 point at position 0, outside their own 2x2
    # windows, so their gradients must add up there.
    x = rng.standard_normal((3, 6, 7, 4))
    _, argmax = _pool.maxpool2d_forward(x, 2, 2)
    argmax[1, 2, 2, 1] = 0
    argmax[1, 1, 0, 1] = 0
    grad_output = rng.standard_normal(argmax.shape)

    grad_input = _pool.maxpool2d_backward(grad_output, argmax, x.shape)
    expected = reference.maxpool2d_backward(grad_output, argmax, x.shape)

    np.testing.assert_allclose(grad_input, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_tie_all_equal_picks_first(dtype):
    x = np.full((2, 4, 6, 3), 1.5, dtype=dtype)

    out, argmax = _pool.maxpool2d_forward(x, 2, 2)

    # The top-left element of each window wins: (2 * out_y) * 6 + 2 * out_x.
    expected = np.array([[0, 2, 4], [12, 14, 16]])
    for sample in range(2):
        for channel in range(3):
            np.testing.assert_array_equal(argmax[sample, :, :, channel], expected)
    np.testing.assert_array_equal(out, np.full((2, 2, 3, 3), 1.5, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_tie_row_before_column(dtype):
    # The maximum 5 sits at (0, 1) and (1, 0): row-major order visits (0, 1)
    # first. In channel 1 it sits at (1, 0) and (1, 1), so (1, 0) wins.
    x = np.zeros((1, 2, 2, 2), dtype=dtype)
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 5
    x[0, 1, 0, 1] = x[0, 1, 1, 1] = 5
    grad_output = np.ones((1, 1, 1, 2), dtype=dtype)

    _, argmax = _pool.maxpool2d_forward(x, 2, 2)
    grad_input = _pool.maxpool2d_backward(grad_output, argmax, x.shape)

    np.testing.assert_array_equal(argmax.ravel(), [1, 2])
    assert grad_input[0, 0, 1, 0] == 1
    assert grad_input[0, 1, 0, 0] == 0
    assert grad_input[0, 1, 0, 1] == 1
    assert grad_input[0, 1, 1, 1] == 0


def test_pool_tie_matches_reference(rng):
    # Few distinct values make many ties in every window.
    x = rng.integers(0, 3, size=(3, 9, 8, 4)).astype(np.float64)

    out, argmax = _pool.maxpool2d_forward(x, 3, 2)
    expected_out, expected_argmax = reference.maxpool2d_forward(x, 3, 2)

    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)


def test_pool_float32_8ch_ties_and_nan_match_reference(rng):
    # float32 2x2 pools with a multiple of 8 channels take the vectorised
    # loop of _pool_simd.h; its tie and NaN rules must match the reference.
    x = rng.integers(0, 3, size=(2, 6, 10, 16)).astype(np.float32)
    x[0, 0, 0, :4] = np.nan
    x[1, 3, 5, 8:] = np.nan

    out, argmax = _pool.maxpool2d_forward(x, 2, 2)
    expected_out, expected_argmax = reference.maxpool2d_forward(x, 2, 2)

    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)


def test_pool_nan_wins_only_first():
    x = np.array([[np.nan, 1.0], [2.0, 3.0]]).reshape(1, 2, 2, 1)
    x_late = np.array([[1.0, np.nan], [2.0, 3.0]]).reshape(1, 2, 2, 1)

    out, argmax = _pool.maxpool2d_forward(x, 2, 2)
    out_late, argmax_late = _pool.maxpool2d_forward(x_late, 2, 2)

    assert np.isnan(out[0, 0, 0, 0])
    assert argmax[0, 0, 0, 0] == 0
    assert out_late[0, 0, 0, 0] == 3.0
    assert argmax_late[0, 0, 0, 0] == 3


@pytest.mark.parametrize(
    "case",
    [
        pytest.param((2, 5, 6, 2, 2, 2), id="2x2-s2"),
        pytest.param((1, 6, 5, 3, 3, 1), id="3x3-s1-overlap"),
    ],
)
def test_pool_gradient_finite_differences(rng, case):
    n_samples, height, width, n_channels, pool_size, stride = case
    # A permutation keeps all values distinct, so no tie sits on a kink.
    x = rng.permutation(n_samples * height * width * n_channels).astype(np.float64)
    x = x.reshape(n_samples, height, width, n_channels) / 10
    out, argmax = _pool.maxpool2d_forward(x, pool_size, stride)
    projection = rng.standard_normal(out.shape)
    step = 1e-3

    grad_input = _pool.maxpool2d_backward(projection, argmax, x.shape)

    numeric = np.empty_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + step
        loss_plus = np.sum(_pool.maxpool2d_forward(x, pool_size, stride)[0] * projection)
        x[index] = saved - step
        loss_minus = np.sum(_pool.maxpool2d_forward(x, pool_size, stride)[0] * projection)
        x[index] = saved
        numeric[index] = (loss_plus - loss_minus) / (2 * step)
    np.testing.assert_allclose(grad_input, numeric, atol=1e-9)


def test_pool_read_only_inputs(rng):
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    out_expected, argmax = _pool.maxpool2d_forward(x, 2, 2)
    grad_output = rng.standard_normal(out_expected.shape).astype(np.float32)
    grad_expected = _pool.maxpool2d_backward(grad_output, argmax, x.shape)
    for array in (x, argmax, grad_output):
        array.flags.writeable = False

    out, argmax_read_only = _pool.maxpool2d_forward(x, 2, 2)
    grad_input = _pool.maxpool2d_backward(grad_output, argmax, x.shape)

    np.testing.assert_array_equal(out, out_expected)
    np.testing.assert_array_equal(argmax_read_only, argmax)
    np.testing.assert_array_equal(grad_input, grad_expected)


def test_pool_non_contiguous_input(rng):
    x = rng.standard_normal((2, 6, 14, 3))
    x_strided = x[:, :, ::2, :]

    out, argmax = _pool.maxpool2d_forward(x_strided, 2, 2)
    expected_out, expected_argmax = _pool.maxpool2d_forward(x_strided.copy(), 2, 2)

    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)


@pytest.mark.parametrize("case", [POOL_CASES[1], POOL_CASES[4]])
def test_pool_two_threads_match_one(rng, case):
    x = make_pool_input(rng, case, np.float64)
    pool_size, stride = case[4], case[5]

    out_1, argmax_1 = _pool.maxpool2d_forward(x, pool_size, stride, n_threads=1)
    out_2, argmax_2 = _pool.maxpool2d_forward(x, pool_size, stride, n_threads=2)
    grad_output = rng.standard_normal(out_1.shape)
    grad_1 = _pool.maxpool2d_backward(grad_output, argmax_1, x.shape, n_threads=1)
    grad_2 = _pool.maxpool2d_backward(grad_output, argmax_1, x.shape, n_threads=2)

    np.testing.assert_array_equal(out_1, out_2)
    np.testing.assert_array_equal(argmax_1, argmax_2)
    np.testing.assert_array_equal(grad_1, grad_2)


def test_pool_empty_batch(rng):
    x = rng.standard_normal((0, 6, 7, 3))

    out, argmax = _pool.maxpool2d_forward(x, 2, 2)
    grad_input = _pool.maxpool2d_backward(out, argmax, x.shape)

    assert out.shape == (0, 3, 3, 3)
    assert argmax.shape == (0, 3, 3, 3)
    assert grad_input.shape == x.shape
