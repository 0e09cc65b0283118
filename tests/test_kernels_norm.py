"""Batch-norm kernels: compiled against the NumPy reference, finite differences and bad arguments."""

import numpy as np
import pytest

from csmile.kernels import reference

_norm = pytest.importorskip("csmile.kernels._norm", reason="compiled kernels not built")

# (n_rows, n_channels)
SHAPES = [
    pytest.param((1, 1), id="one-value"),
    pytest.param((1, 5), id="one-row"),
    pytest.param((7, 1), id="one-channel"),
    pytest.param((33, 3), id="odd"),
    pytest.param((32 * 16 * 16, 64), id="conv-block"),
    pytest.param((1000, 17), id="odd-channels"),
]
DTYPES = [
    pytest.param(np.float64, 1e-12, id="float64"),
    pytest.param(np.float32, 2e-5, id="float32"),
]
THREADS = [1, 2, 3, 16]


def make_arrays(rng, shape, dtype, mean=0.0, std=1.0):
    n_channels = shape[1]
    x = (rng.standard_normal(shape) * std + mean).astype(dtype)
    scale = rng.uniform(-2.0, 2.0, n_channels).astype(dtype)
    shift = rng.standard_normal(n_channels).astype(dtype)
    return x, scale, shift


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype, tolerance", DTYPES)
@pytest.mark.parametrize("n_threads", THREADS)
def test_forward_matches_reference(rng, shape, dtype, tolerance, n_threads):
    x, scale, shift = make_arrays(rng, shape, dtype, mean=3.0, std=2.0)
    result = _norm.batchnorm_forward(x, scale, shift, 1e-5, n_threads=n_threads)
    expected = reference.batchnorm_forward(x, scale, shift, 1e-5)
    for name, got, want in zip(("out", "normalized", "mean", "var"), result, expected):
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=name)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype, tolerance", DTYPES)
@pytest.mark.parametrize("n_threads", THREADS)
def test_backward_matches_reference(rng, shape, dtype, tolerance, n_threads):
    x, scale, shift = make_arrays(rng, shape, dtype)
    _, normalized, _, var = reference.batchnorm_forward(x, scale, shift, 1e-5)
    grad_output = rng.standard_normal(shape).astype(dtype)
    result = _norm.batchnorm_backward(grad_output, normalized, scale, var, 1e-5, n_threads=n_threads)
    expected = reference.batchnorm_backward(grad_output, normalized, scale, var, 1e-5)
    for name, got, want in zip(("grad_input", "grad_scale", "grad_shift"), result, expected):
        assert got.dtype == want.dtype, name
        # Sums over many rows lose relative precision in float32.
        atol = tolerance * max(1.0, np.sqrt(shape[0]))
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=atol, err_msg=name)


def test_large_mean_keeps_variance(rng):
    # A mean a million times the spread would cancel in sum(x^2) - n mean^2.
    x = (1e6 + rng.standard_normal((500, 2))).astype(np.float64)
    scale, shift = np.ones(2), np.zeros(2)
    _, _, mean, var = _norm.batchnorm_forward(x, scale, shift)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)


def test_constant_channel_gives_zero_variance_and_shift():
    x = np.full((10, 2), 4.0)
    x[:, 1] = np.arange(10)
    out, normalized, _, var = _norm.batchnorm_forward(x, np.array([3.0, 1.0]), np.array([0.5, 0.0]))
    assert var[0] == 0.0
    np.testing.assert_array_equal(normalized[:, 0], 0.0)
    np.testing.assert_array_equal(out[:, 0], 0.5)


def test_gradients_match_finite_differences(rng):
    x, scale, shift = make_arrays(rng, (6, 3), np.float64)
    projection = rng.standard_normal((6, 3))
    epsilon = 1e-3

    def objective(x, scale, shift):
        return float(np.sum(_norm.batchnorm_forward(x, scale, shift, epsilon)[0] * projection))

    _, normalized, _, var = _norm.batchnorm_forward(x, scale, shift, epsilon)
    grads = _norm.batchnorm_backward(projection, normalized, scale, var, epsilon)
    step = 1e-6
    for argument, grad in zip((0, 1, 2), grads):
        arrays = [x, scale, shift]
        numerical = np.zeros_like(arrays[argument])
        for index in np.ndindex(numerical.shape):
            plus = [array.copy() for array in arrays]
            minus = [array.copy() for array in arrays]
            plus[argument][index] += step
            minus[argument][index] -= step
            numerical[index] = (objective(*plus) - objective(*minus)) / (2 * step)
        np.testing.assert_allclose(grad, numerical, rtol=1e-6, atol=1e-8)


def test_inputs_are_not_written_and_strided_inputs_work(rng):
    wide = rng.standard_normal((20, 8))
    x = wide[:, ::2]
    x.flags.writeable = False
    scale, shift = np.ones(4), np.zeros(4)
    before = x.copy()
    result = _norm.batchnorm_forward(x, scale, shift)
    expected = reference.batchnorm_forward(np.ascontiguousarray(x), scale, shift)
    np.testing.assert_array_equal(x, before)
    for got, want in zip(result, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Bad arguments, in both implementations
# ---------------------------------------------------------------------------


@pytest.fixture(params=["compiled", "reference"])
def kernels(request):
    module = _norm if request.param == "compiled" else reference
    return module.batchnorm_forward, module.batchnorm_backward


@pytest.fixture
def arrays(rng):
    x = rng.standard_normal((6, 3))
    return x, np.ones(3), np.zeros(3)


@pytest.mark.parametrize("bad_dtype", ["int64", "float16", "complex128", "bool"])
def test_forward_bad_dtype(kernels, arrays, bad_dtype):
    x, scale, shift = arrays
    with pytest.raises(TypeError, match=f"{bad_dtype}.*float32 or float64"):
        kernels[0](x.astype(bad_dtype), scale, shift)


def test_forward_mixed_dtypes(kernels, arrays):
    x, scale, shift = arrays
    with pytest.raises(TypeError, match="share one dtype"):
        kernels[0](x, scale.astype(np.float32), shift)


@pytest.mark.parametrize(
    "argument, value, error, message",
    [
        ("x", np.zeros((2, 3, 4)), ValueError, "2 dimensions"),
        ("x", None, TypeError, "got None"),
        ("x", np.zeros((0, 3)), ValueError, "no rows"),
        ("scale", np.ones(4), ValueError, "scale has 4 entries"),
        ("shift", np.ones((3, 1)), ValueError, "1 dimensions"),
        ("epsilon", -1.0, ValueError, "epsilon"),
        ("epsilon", float("nan"), ValueError, "epsilon"),
        ("epsilon", "small", TypeError, "epsilon"),
        ("epsilon", "1e-5", TypeError, "epsilon"),
        ("epsilon", True, TypeError, "epsilon"),
        ("epsilon", 0.0, ValueError, "epsilon"),
        ("n_threads", 0, ValueError, "n_threads"),
        ("n_threads", 1.5, TypeError, "n_threads"),
        ("n_threads", True, TypeError, "n_threads"),
    ],
)
def test_forward_bad_arguments(kernels, arrays, argument, value, error, message):
    x, scale, shift = arrays
    call = {"x": x, "scale": scale, "shift": shift, "epsilon": 1e-5, "n_threads": 1}
    call[argument] = value
    with pytest.raises(error, match=message):
        kernels[0](**call)


@pytest.mark.parametrize(
    "argument, value, error, message",
    [
        ("grad_output", np.zeros((5, 3)), ValueError, "same batch"),
        ("normalized", np.zeros((6, 3), dtype=np.float32), TypeError, "share one dtype"),
        ("scale", np.ones(2), ValueError, "scale has 2 entries"),
        ("var", np.ones(4), ValueError, "var has 4 entries"),
        ("var", -np.ones(3), ValueError, "variances >= 0"),
        ("var", np.array([1.0, np.nan, 1.0]), ValueError, "variances >= 0"),
        ("var", None, TypeError, "got None"),
        ("n_threads", -2, ValueError, "n_threads"),
    ],
)
def test_backward_bad_arguments(kernels, arrays, argument, value, error, message):
    x, scale, shift = arrays
    _, normalized, _, var = reference.batchnorm_forward(x, scale, shift)
    call = {"grad_output": x, "normalized": normalized, "scale": scale, "var": var,
            "epsilon": 1e-5, "n_threads": 1}
    call[argument] = value
    with pytest.raises(error, match=message):
        kernels[1](**call)


def test_backward_rejects_zero_epsilon(kernels, arrays):
    x, scale, _ = arrays
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        kernels[1](x, x, scale, np.array([1.0, 0.0, 1.0]), 0.0)


def test_huge_thread_count_is_capped(rng):
    x, scale, shift = make_arrays(rng, (100000, 2), np.float64)
    expected = _norm.batchnorm_forward(x, scale, shift, n_threads=2)
    result = _norm.batchnorm_forward(x, scale, shift, n_threads=10**6)
    for got, want in zip(result, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
