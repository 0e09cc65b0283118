"""Compiled convolution kernels against the NumPy reference and by hand."""

import numpy as np
import pytest

from csmile.kernels import reference

_conv = pytest.importorskip(
    "csmile.kernels._conv", reason="compiled kernels not built"
)

TOLERANCES = {
    np.float64: {"rtol": 1e-10, "atol": 1e-10},
    np.float32: {"rtol": 1e-5, "atol": 1e-5},
}

# (n_samples, height, width, n_channels, kernel_size, n_filters). Patches of
# up to 32 values take the direct loops and larger ones take im2col, so both
# paths appear for each kernel size.
CONV_CASES = [
    pytest.param((1, 5, 5, 1, 1, 1), id="1x1-kernel-one-filter"),
    pytest.param((2, 6, 9, 3, 1, 4), id="1x1-kernel-3ch"),
    pytest.param((1, 7, 5, 1, 3, 8), id="3x3-1ch-batch1"),
    pytest.param((3, 9, 11, 1, 3, 16), id="3x3-1ch-nonsquare"),
    pytest.param((2, 8, 7, 5, 3, 6), id="3x3-5ch"),
    pytest.param((2, 6, 6, 16, 3, 32), id="3x3-16ch"),
    pytest.param((2, 9, 8, 1, 5, 3), id="5x5-1ch"),
    pytest.param((1, 7, 10, 3, 5, 5), id="5x5-3ch"),
    pytest.param((2, 6, 7, 2, 4, 3), id="4x4-even-kernel"),
    pytest.param((2, 5, 4, 2, 2, 3), id="2x2-even-kernel"),
    pytest.param((1, 3, 3, 2, 3, 2), id="kernel-fills-image"),
]
DTYPES = [
    pytest.param(np.float64, id="float64"),
    pytest.param(np.float32, id="float32"),
]
PADDINGS = ["valid", "same"]


def make_conv_inputs(rng, case, dtype, padding="valid"):
    n_samples, height, width, n_channels, kernel_size, n_filters = case
    x = rng.standard_normal((n_samples, height, width, n_channels)).astype(dtype)
    weights = rng.standard_normal(
        (kernel_size, kernel_size, n_channels, n_filters)
    ).astype(dtype)
    bias = rng.standard_normal(n_filters).astype(dtype)
    if padding == "same":
        out_height, out_width = height, width
    else:
        out_height, out_width = height - kernel_size + 1, width - kernel_size + 1
    grad_output = rng.standard_normal(
        (n_samples, out_height, out_width, n_filters)
    ).astype(dtype)
    return x, weights, bias, grad_output


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_forward_matches_reference(rng, dtype, case, padding):
    x, weights, bias, _ = make_conv_inputs(rng, case, dtype, padding)

    out = _conv.conv2d_forward(x, weights, bias, padding)
    expected = reference.conv2d_forward(x, weights, bias, padding)

    assert out.dtype == dtype
    assert out.flags.c_contiguous
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **TOLERANCES[dtype])


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_backward_matches_reference(rng, dtype, case, padding):
    x, weights, _, grad_output = make_conv_inputs(rng, case, dtype, padding)

    grad_input, grad_weights, grad_bias = _conv.conv2d_backward(
        x, weights, grad_output, padding
    )
    expected_input, expected_weights, expected_bias = reference.conv2d_backward(
        x, weights, grad_output, padding
    )

    for array in (grad_input, grad_weights, grad_bias):
        assert array.dtype == dtype
    np.testing.assert_allclose(grad_input, expected_input, **TOLERANCES[dtype])
    np.testing.assert_allclose(grad_weights, expected_weights, **TOLERANCES[dtype])
    np.testing.assert_allclose(grad_bias, expected_bias, **TOLERANCES[dtype])


# float32 layers with 8, 16, 32 or 64 output channels (and, for grad_input,
# that many input channels) take the register-blocked kernels of
# _conv_simd.h. These shapes cover each channel count, widths that are not a
# multiple of the pixel block, even kernels (unequal padding on both sides)
# and tap counts that are not a multiple of the weight-gradient block.
BLOCKED_CASES = [
    pytest.param((2, 13, 11, 32, 3, 64), id="32ch-64f-width11"),
    pytest.param((2, 9, 14, 8, 3, 16), id="8ch-16f-width14"),
    pytest.param((3, 10, 9, 64, 3, 32), id="64ch-32f-width9"),
    pytest.param((2, 7, 6, 3, 4, 8), id="4x4-even-kernel-8f"),
    pytest.param((1, 5, 19, 16, 5, 16), id="5x5-16ch-16f"),
    pytest.param((1, 4, 4, 8, 1, 8), id="1x1-kernel-8ch-8f"),
]


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", BLOCKED_CASES)
def test_conv_blocked_float32_matches_reference(rng, case, padding):
    x, weights, bias, grad_output = make_conv_inputs(rng, case, np.float32, padding)
    # Scale weights as He initialisation does and keep gradients small, as in
    # training. With unit-variance weights, sums of 300-400 products reach
    # about 20, and float32 rounding alone then exceeds the 1e-5 tolerance.
    patch_size = weights.shape[0] * weights.shape[1] * weights.shape[2]
    weights *= np.float32(np.sqrt(2.0 / patch_size))
    grad_output *= np.float32(0.1)
    x64, weights64, bias64, grad64 = (
        a.astype(np.float64) for a in (x, weights, bias, grad_output)
    )

    out = _conv.conv2d_forward(x, weights, bias, padding)
    grad_input, grad_weights, grad_bias = _conv.conv2d_backward(
        x, weights, grad_output, padding
    )
    expected_out = reference.conv2d_forward(x64, weights64, bias64, padding)
    expected_input, expected_weights, expected_bias = reference.conv2d_backward(
        x64, weights64, grad64, padding
    )

    for array in (out, grad_input, grad_weights, grad_bias):
        assert array.dtype == np.float32
    np.testing.assert_allclose(out, expected_out, **TOLERANCES[np.float32])
    np.testing.assert_allclose(grad_input, expected_input, **TOLERANCES[np.float32])
    np.testing.assert_allclose(grad_weights, expected_weights, **TOLERANCES[np.float32])
    np.testing.assert_allclose(grad_bias, expected_bias, **TOLERANCES[np.float32])


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", BLOCKED_CASES[:3])
def test_conv_blocked_two_threads_match_one(rng, case, padding):
    x, weights, bias, grad_output = make_conv_inputs(rng, case, np.float32, padding)

    out_1 = _conv.conv2d_forward(x, weights, bias, padding, n_threads=1)
    out_2 = _conv.conv2d_forward(x, weights, bias, padding, n_threads=2)
    grads_1 = _conv.conv2d_backward(x, weights, grad_output, padding, n_threads=1)
    grads_2 = _conv.conv2d_backward(x, weights, grad_output, padding, n_threads=2)

    np.testing.assert_array_equal(out_1, out_2)
    np.testing.assert_array_equal(grads_1[0], grads_2[0])
    # Weight and bias gradients are summed per thread, then across threads.
    np.testing.assert_allclose(grads_1[1], grads_2[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads_1[2], grads_2[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CONV_CASES[2:6])
def test_conv_backward_skips_grad_input(rng, case):
    x, weights, _, grad_output = make_conv_inputs(rng, case, np.float64, "same")

    grad_input, grad_weights, grad_bias = _conv.conv2d_backward(
        x, weights, grad_output, "same", need_grad_input=False
    )
    _, expected_weights, expected_bias = reference.conv2d_backward(
        x, weights, grad_output, "same"
    )

    assert grad_input is None
    np.testing.assert_allclose(grad_weights, expected_weights, rtol=1e-10)
    np.testing.assert_allclose(grad_bias, expected_bias, rtol=1e-10)


def test_conv_float32_large_batch_sums(rng):
    # 64 * 30 * 30 output positions per filter: the gradient sums must stay
    # accurate in float32 over many terms.
    x, weights, bias, grad_output = make_conv_inputs(
        rng, (64, 32, 30, 1, 3, 8), np.float32, "same"
    )
    x64, weights64, grad64 = (a.astype(np.float64) for a in (x, weights, grad_output))

    _, grad_weights, grad_bias = _conv.conv2d_backward(x, weights, grad_output, "same")
    _, expected_weights, expected_bias = reference.conv2d_backward(
        x64, weights64, grad64, "same"
    )

    scale = np.abs(grad_output).sum() * np.abs(x).max()
    assert np.abs(grad_weights - expected_weights).max() < 1e-6 * scale
    assert np.abs(grad_bias - expected_bias).max() < 1e-6 * np.abs(grad_output).sum()


def conv_loss(x, weights, bias, projection, padding):
    return float(np.sum(_conv.conv2d_forward(x, weights, bias, padding) * projection))


def central_difference(loss, array, step=1e-6):
    """Return d loss / d array by central differences, one entry at a time."""
    gradient = np.empty_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + step
        loss_plus = loss()
        array[index] = saved - step
        loss_minus = loss()
        array[index] = saved
        gradient[index] = (loss_plus - loss_minus) / (2 * step)
    return gradient


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize(
    "case",
    [
        pytest.param((2, 5, 4, 1, 3, 3), id="3x3-1ch"),
        pytest.param((1, 4, 5, 3, 3, 2), id="3x3-3ch"),
        pytest.param((1, 5, 6, 2, 2, 2), id="2x2-even"),
    ],
)
def test_conv_gradients_finite_differences(rng, case, padding):
    x, weights, bias, projection = make_conv_inputs(rng, case, np.float64, padding)

    def loss():
        return conv_loss(x, weights, bias, projection, padding)

    grad_input, grad_weights, grad_bias = _conv.conv2d_backward(
        x, weights, projection, padding
    )

    np.testing.assert_allclose(grad_input, central_difference(loss, x), atol=1e-7)
    np.testing.assert_allclose(
        grad_weights, central_difference(loss, weights), atol=1e-7
    )
    np.testing.assert_allclose(grad_bias, central_difference(loss, bias), atol=1e-7)


# Worked example: a 3x3 image 1..9 and the 2x2 kernel [[1, 2], [3, 4]].
HAND_X = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
HAND_WEIGHTS = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(2, 2, 1, 1)
HAND_BIAS = np.array([0.5])


def test_conv_forward_worked_example_valid():
    # out[0, 0] = 1*1 + 2*2 + 4*3 + 5*4 + 0.5 = 37.5, and so on.
    expected = np.array([[37.5, 47.5], [67.5, 77.5]]).reshape(1, 2, 2, 1)

    out = _conv.conv2d_forward(HAND_X, HAND_WEIGHTS, HAND_BIAS, "valid")

    np.testing.assert_array_equal(out, expected)


def test_conv_forward_worked_example_same():
    # An even kernel pads 0 before and 1 after, so the last row and column
    # see zeros: out[2, 2] = 9*1 + 0.5.
    expected = np.array(
        [[37.5, 47.5, 21.5], [67.5, 77.5, 33.5], [23.5, 26.5, 9.5]]
    ).reshape(1, 3, 3, 1)

    out = _conv.conv2d_forward(HAND_X, HAND_WEIGHTS, HAND_BIAS, "same")

    np.testing.assert_array_equal(out, expected)


def test_conv_backward_worked_example():
    grad_output = np.ones((1, 2, 2, 1))
    # grad_weights[dy, dx] sums the 2x2 block of x that starts at (dy, dx).
    expected_weights = np.array([[12.0, 16.0], [24.0, 28.0]]).reshape(2, 2, 1, 1)
    # grad_input[y, x] sums the kernel taps that cover (y, x).
    expected_input = np.array(
        [[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]]
    ).reshape(1, 3, 3, 1)

    grad_input, grad_weights, grad_bias = _conv.conv2d_backward(
        HAND_X, HAND_WEIGHTS, grad_output, "valid"
    )

    np.testing.assert_array_equal(grad_input, expected_input)
    np.testing.assert_array_equal(grad_weights, expected_weights)
    np.testing.assert_array_equal(grad_bias, [4.0])


@pytest.mark.parametrize("case", [CONV_CASES[3], CONV_CASES[5]])
def test_conv_read_only_inputs(rng, case):
    x, weights, bias, grad_output = make_conv_inputs(rng, case, np.float32, "same")
    expected_out = _conv.conv2d_forward(x, weights, bias, "same")
    expected_grads = _conv.conv2d_backward(x, weights, grad_output, "same")
    for array in (x, weights, bias, grad_output):
        array.flags.writeable = False

    out = _conv.conv2d_forward(x, weights, bias, "same")
    grads = _conv.conv2d_backward(x, weights, grad_output, "same")

    np.testing.assert_array_equal(out, expected_out)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("case", [CONV_CASES[3], CONV_CASES[5]])
def test_conv_inputs_unchanged(rng, case):
    x, weights, bias, grad_output = make_conv_inputs(rng, case, np.float64, "same")
    copies = [array.copy() for array in (x, weights, bias, grad_output)]

    _conv.conv2d_forward(x, weights, bias, "same", n_threads=2)
    _conv.conv2d_backward(x, weights, grad_output, "same", n_threads=2)

    for array, copy in zip((x, weights, bias, grad_output), copies):
        np.testing.assert_array_equal(array, copy)


@pytest.mark.parametrize("case", [CONV_CASES[3], CONV_CASES[5]])
def test_conv_non_contiguous_inputs(rng, case):
    x, weights, bias, grad_output = make_conv_inputs(rng, case, np.float64, "valid")
    x_strided = np.repeat(x, 2, axis=2)[:, :, ::2, :]
    weights_fortran = np.asfortranarray(weights)

    out = _conv.conv2d_forward(x_strided, weights_fortran, bias)
    grads = _conv.conv2d_backward(x_strided, weights_fortran, grad_output)

    np.testing.assert_array_equal(out, _conv.conv2d_forward(x, weights, bias))
    for grad, expected in zip(grads, _conv.conv2d_backward(x, weights, grad_output)):
        np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", [CONV_CASES[3], CONV_CASES[5], CONV_CASES[7]])
def test_conv_two_threads_match_one(rng, case, padding):
    x, weights, bias, grad_output = make_conv_inputs(rng, case, np.float64, padding)

    out_1 = _conv.conv2d_forward(x, weights, bias, padding, n_threads=1)
    out_2 = _conv.conv2d_forward(x, weights, bias, padding, n_threads=2)
    grads_1 = _conv.conv2d_backward(x, weights, grad_output, padding, n_threads=1)
    grads_2 = _conv.conv2d_backward(x, weights, grad_output, padding, n_threads=2)

    np.testing.assert_array_equal(out_1, out_2)
    np.testing.assert_array_equal(grads_1[0], grads_2[0])
    # The gradient sums split into per-thread partial sums, so only the
    # rounding may differ.
    np.testing.assert_allclose(grads_1[1], grads_2[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads_1[2], grads_2[2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [CONV_CASES[3], CONV_CASES[5]])
def test_conv_empty_batch(rng, case):
    x, weights, bias, grad_output = make_conv_inputs(rng, case, np.float32, "same")

    out = _conv.conv2d_forward(x[:0], weights, bias, "same")
    grad_input, grad_weights, grad_bias = _conv.conv2d_backward(
        x[:0], weights, grad_output[:0], "same"
    )

    assert out.shape == (0,) + grad_output.shape[1:]
    assert grad_input.shape == (0,) + x.shape[1:]
    np.testing.assert_array_equal(grad_weights, np.zeros_like(weights))
    np.testing.assert_array_equal(grad_bias, np.zeros_like(bias))
