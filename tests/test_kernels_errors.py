"""Bad arguments raise clear Python errors in both kernel implementations."""

import importlib

import numpy as np
import pytest

from csmile.kernels import reference


def load_compiled():
    try:
        conv = importlib.import_module("csmile.kernels._conv")
        pool = importlib.import_module("csmile.kernels._pool")
    except ImportError:
        pytest.skip("compiled kernels not built")
    return {
        "conv2d_forward": conv.conv2d_forward,
        "conv2d_backward": conv.conv2d_backward,
        "maxpool2d_forward": pool.maxpool2d_forward,
        "maxpool2d_backward": pool.maxpool2d_backward,
    }


def load_reference():
    return {
        "conv2d_forward": reference.conv2d_forward,
        "conv2d_backward": reference.conv2d_backward,
        "maxpool2d_forward": reference.maxpool2d_forward,
        "maxpool2d_backward": reference.maxpool2d_backward,
    }


@pytest.fixture(params=["compiled", "reference"])
def kernels(request):
    if request.param == "compiled":
        return load_compiled()
    return load_reference()


@pytest.fixture
def conv_arrays(rng):
    x = rng.standard_normal((2, 6, 5, 3))
    weights = rng.standard_normal((3, 3, 3, 4))
    bias = rng.standard_normal(4)
    grad_output = rng.standard_normal((2, 4, 3, 4))
    return x, weights, bias, grad_output


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_dtype", ["int64", "float16", "complex128", "bool", "object"]
)
def test_conv_forward_bad_dtype(kernels, conv_arrays, bad_dtype):
    x, weights, bias, _ = conv_arrays

    with pytest.raises(TypeError, match=f"{bad_dtype}.*float32 or float64"):
        kernels["conv2d_forward"](x.astype(bad_dtype), weights, bias)


@pytest.mark.parametrize("argument", ["weights", "bias"])
def test_conv_forward_mixed_dtypes(kernels, conv_arrays, argument):
    x, weights, bias, _ = conv_arrays
    arrays = {"x": x, "weights": weights, "bias": bias}
    arrays[argument] = arrays[argument].astype(np.float32)

    with pytest.raises(TypeError, match="share one dtype"):
        kernels["conv2d_forward"](**arrays)


def test_conv_backward_mixed_dtypes(kernels, conv_arrays):
    x, weights, _, grad_output = conv_arrays

    with pytest.raises(TypeError, match="share one dtype"):
        kernels["conv2d_backward"](x, weights, grad_output.astype(np.float32))


@pytest.mark.parametrize("argument", ["x", "weights", "bias"])
def test_conv_forward_none(kernels, conv_arrays, argument):
    x, weights, bias, _ = conv_arrays
    arrays = {"x": x, "weights": weights, "bias": bias}
    arrays[argument] = None

    with pytest.raises(TypeError, match="got None"):
        kernels["conv2d_forward"](**arrays)


@pytest.mark.parametrize(
    "argument, shape",
    [
        pytest.param("x", (6, 5, 3), id="x-3d"),
        pytest.param("x", (1, 2, 6, 5, 3), id="x-5d"),
        pytest.param("weights", (3, 3, 3), id="weights-3d"),
        pytest.param("bias", (4, 1), id="bias-2d"),
        pytest.param("bias", (), id="bias-scalar"),
    ],
)
def test_conv_forward_wrong_ndim(kernels, conv_arrays, argument, shape):
    x, weights, bias, _ = conv_arrays
    arrays = {"x": x, "weights": weights, "bias": bias}
    arrays[argument] = np.zeros(shape)

    with pytest.raises(ValueError, match="dimensions"):
        kernels["conv2d_forward"](**arrays)


@pytest.mark.parametrize(
    "argument, shape, message",
    [
        pytest.param("x", (2, 6, 5, 2), "channels", id="channel-mismatch"),
        pytest.param("weights", (3, 2, 3, 4), "square", id="non-square-kernel"),
        pytest.param("weights", (0, 0, 3, 4), "square", id="empty-kernel"),
        pytest.param("weights", (3, 3, 3, 0), "filter", id="no-filters"),
        pytest.param("bias", (5,), "bias", id="bias-length"),
        pytest.param("x", (2, 0, 5, 3), "height", id="zero-height"),
        pytest.param("x", (2, 6, 0, 3), "height", id="zero-width"),
        pytest.param("x", (2, 6, 5, 0), "n_channels", id="zero-channels"),
        pytest.param("x", (2, 2, 5, 3), "does not fit", id="kernel-too-tall"),
    ],
)
def test_conv_forward_inconsistent_shapes(kernels, conv_arrays, argument, shape, message):
    x, weights, bias, _ = conv_arrays
    arrays = {"x": x, "weights": weights, "bias": bias}
    arrays[argument] = np.zeros(shape)

    with pytest.raises(ValueError, match=message):
        kernels["conv2d_forward"](**arrays)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((2, 6, 5, 4), id="same-shape-not-valid"),
        pytest.param((2, 4, 3, 5), id="wrong-filters"),
        pytest.param((1, 4, 3, 4), id="wrong-batch"),
    ],
)
def test_conv_backward_wrong_grad_output_shape(kernels, conv_arrays, shape):
    x, weights, _, _ = conv_arrays

    with pytest.raises(ValueError, match="grad_output must have shape"):
        kernels["conv2d_backward"](x, weights, np.zeros(shape))


@pytest.mark.parametrize("padding", ["full", "SAME", "", 1, None, b"same"])
def test_conv_bad_padding(kernels, conv_arrays, padding):
    x, weights, bias, grad_output = conv_arrays

    with pytest.raises(ValueError, match="padding"):
        kernels["conv2d_forward"](x, weights, bias, padding=padding)
    with pytest.raises(ValueError, match="padding"):
        kernels["conv2d_backward"](x, weights, grad_output, padding=padding)


@pytest.mark.parametrize(
    "n_threads, error",
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-3, ValueError, id="negative"),
        pytest.param(1.5, TypeError, id="float"),
        pytest.param("2", TypeError, id="string"),
        pytest.param(None, TypeError, id="none"),
    ],
)
def test_conv_bad_n_threads(kernels, conv_arrays, n_threads, error):
    x, weights, bias, grad_output = conv_arrays

    with pytest.raises(error, match="n_threads"):
        kernels["conv2d_forward"](x, weights, bias, n_threads=n_threads)
    with pytest.raises(error, match="n_threads"):
        kernels["conv2d_backward"](x, weights, grad_output, n_threads=n_threads)


@pytest.mark.parametrize(
    "n_threads",
    [
        pytest.param(10**6, id="million"),
        pytest.param(10**30, id="beyond-int64"),
        pytest.param(np.int64(2), id="numpy-int"),
    ],
)
def test_conv_many_threads_give_same_result(kernels, conv_arrays, n_threads):
    x, weights, bias, grad_output = conv_arrays

    out = kernels["conv2d_forward"](x, weights, bias, n_threads=n_threads)
    grads = kernels["conv2d_backward"](x, weights, grad_output, n_threads=n_threads)

    np.testing.assert_allclose(out, reference.conv2d_forward(x, weights, bias))
    expected = reference.conv2d_backward(x, weights, grad_output)
    for grad, expected_grad in zip(grads, expected):
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-10)


def test_conv_lists_are_converted(kernels):
    x = [[[[1.0], [2.0]], [[3.0], [4.0]]]]
    weights = [[[[1.0]]]]
    bias = [0.5]

    out = kernels["conv2d_forward"](x, weights, bias)

    np.testing.assert_array_equal(out, np.array(x) + 0.5)


def test_conv_ragged_list(kernels):
    with pytest.raises(ValueError):
        kernels["conv2d_forward"]([[[[1.0]], [[1.0, 2.0]]]], [[[[1.0]]]], [0.0])


def test_conv_read_only_strided_inputs(kernels, conv_arrays):
    x, weights, bias, _ = conv_arrays
    x_view = np.repeat(x, 2, axis=1)[:, ::2]
    x_view.flags.writeable = False
    big_endian = weights.astype(">f8")

    out = kernels["conv2d_forward"](x_view, big_endian, bias)

    np.testing.assert_allclose(out, reference.conv2d_forward(x, weights, bias))


# ---------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pool_size, stride, error, message",
    [
        pytest.param(0, 2, ValueError, "pool_size", id="pool-zero"),
        pytest.param(-2, 2, ValueError, "pool_size", id="pool-negative"),
        pytest.param(2, 0, ValueError, "stride", id="stride-zero"),
        pytest.param(7, 1, ValueError, "does not fit", id="pool-taller"),
        pytest.param(10**20, 2, ValueError, "does not fit", id="pool-absurd"),
        pytest.param(2.5, 2, TypeError, "pool_size", id="pool-float"),
        pytest.param(2, None, TypeError, "stride", id="stride-none"),
    ],
)
def test_pool_forward_bad_sizes(kernels, rng, pool_size, stride, error, message):
    x = rng.standard_normal((2, 6, 9, 3))

    with pytest.raises(error, match=message):
        kernels["maxpool2d_forward"](x, pool_size, stride)


def test_pool_forward_absurd_stride(kernels, rng):
    x = rng.standard_normal((2, 6, 9, 3))

    out, argmax = kernels["maxpool2d_forward"](x, 2, 10**20)

    assert out.shape == (2, 1, 1, 3)
    np.testing.assert_array_equal(out[:, 0, 0, :], x[:, :2, :2, :].max(axis=(1, 2)))


@pytest.mark.parametrize(
    "x, error",
    [
        pytest.param(None, TypeError, id="none"),
        pytest.param(np.zeros((6, 9, 3)), ValueError, id="3d"),
        pytest.param(np.zeros((2, 6, 9, 3), dtype=np.int32), TypeError, id="int32"),
        pytest.param(np.zeros((2, 6, 9, 0)), ValueError, id="zero-channels"),
        pytest.param(np.zeros((2, 0, 9, 3)), ValueError, id="zero-height"),
    ],
)
def test_pool_forward_bad_input(kernels, x, error):
    with pytest.raises(error):
        kernels["maxpool2d_forward"](x, 2, 2)


@pytest.fixture
def pool_arrays(rng):
    x = rng.standard_normal((2, 6, 5, 3))
    out, argmax = reference.maxpool2d_forward(x, 2, 2)
    return x, argmax, rng.standard_normal(out.shape)


@pytest.mark.parametrize(
    "bad_value", [-1, 30, 2**31 - 1, -(2**31)], ids=["minus-one", "size", "int-max", "int-min"]
)
def test_pool_backward_argmax_out_of_range(kernels, pool_arrays, bad_value):
    x, argmax, grad_output = pool_arrays
    argmax = argmax.copy()
    argmax[1, 2, 1, 2] = bad_value

    with pytest.raises(ValueError, match="outside"):
        kernels["maxpool2d_backward"](grad_output, argmax, x.shape)


@pytest.mark.parametrize("dtype", ["int64", "float64", "uint32"])
def test_pool_backward_argmax_dtype(kernels, pool_arrays, dtype):
    x, argmax, grad_output = pool_arrays

    with pytest.raises(TypeError, match="int32"):
        kernels["maxpool2d_backward"](grad_output, argmax.astype(dtype), x.shape)


def test_pool_backward_argmax_none(kernels, pool_arrays):
    x, _, grad_output = pool_arrays

    with pytest.raises(TypeError, match="argmax"):
        kernels["maxpool2d_backward"](grad_output, None, x.shape)


def test_pool_backward_argmax_shape(kernels, pool_arrays):
    x, argmax, grad_output = pool_arrays

    with pytest.raises(ValueError, match="must match"):
        kernels["maxpool2d_backward"](grad_output, argmax[:, :2], x.shape)


@pytest.mark.parametrize(
    "input_shape, error",
    [
        pytest.param((2, 6, 5), ValueError, id="three-sizes"),
        pytest.param((2, 6, 5, 4), ValueError, id="channel-mismatch"),
        pytest.param((1, 6, 5, 3), ValueError, id="batch-mismatch"),
        pytest.param((2, 2, 5, 3), ValueError, id="smaller-than-output"),
        pytest.param((2, -6, 5, 3), ValueError, id="negative"),
        pytest.param((2, 6.0, 5, 3), TypeError, id="float-size"),
        pytest.param("abcd", TypeError, id="string"),
        pytest.param(None, TypeError, id="none"),
        pytest.param((2, 2**40, 2**40, 3), ValueError, id="huge"),
    ],
)
def test_pool_backward_bad_input_shape(kernels, pool_arrays, input_shape, error):
    _, argmax, grad_output = pool_arrays

    with pytest.raises(error, match="input_shape|int32"):
        kernels["maxpool2d_backward"](grad_output, argmax, input_shape)


def test_pool_backward_grad_output_dtype(kernels, pool_arrays):
    x, argmax, grad_output = pool_arrays

    with pytest.raises(TypeError, match="int64"):
        kernels["maxpool2d_backward"](grad_output.astype(np.int64), argmax, x.shape)


def test_pool_backward_non_contiguous_argmax(kernels, pool_arrays):
    x, argmax, grad_output = pool_arrays
    argmax_fortran = np.asfortranarray(argmax)
    grad_fortran = np.asfortranarray(grad_output)

    grad_input = kernels["maxpool2d_backward"](grad_fortran, argmax_fortran, x.shape)

    expected = reference.maxpool2d_backward(grad_output, argmax, x.shape)
    np.testing.assert_array_equal(grad_input, expected)


def test_pool_bad_n_threads(kernels, pool_arrays):
    x, argmax, grad_output = pool_arrays

    with pytest.raises(ValueError, match="n_threads"):
        kernels["maxpool2d_forward"](x, 2, 2, n_threads=0)
    with pytest.raises(ValueError, match="n_threads"):
        kernels["maxpool2d_backward"](grad_output, argmax, x.shape, n_threads=0)
