"""Pure NumPy reference of the convolution, max-pooling and batch-norm kernels.

These functions have the same signatures, checks and results as the compiled
kernels in ``csmile.kernels._conv``, ``csmile.kernels._pool`` and
``csmile.kernels._norm``. They are
written to be obviously correct rather than fast: the tests hold the compiled
kernels to them, and :mod:`csmile.kernels` falls back to them when the
extension modules are missing.

Layout is channels-last throughout:

- images: ndarray of shape (n_samples, height, width, n_channels)
- conv weights: ndarray of shape (kernel_size, kernel_size, n_channels, n_filters)
- conv bias: ndarray of shape (n_filters,)
- batch-norm input: ndarray of shape (n_rows, n_channels), one row per pixel

All floating-point arrays of one call must share one dtype, float32 or
float64. Inputs that are not C-contiguous are copied. Inputs are never
written to. ``n_threads`` is checked but otherwise ignored here.
"""

import numbers
import operator

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_PADDINGS = ("valid", "same")
_MAX_FLAT_INDEX = np.iinfo(np.int32).max

# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _check_float_array(array, name, ndim, shape_text, func_name):
    """Return ``array`` as a C-contiguous float32 or float64 ndarray."""
    if array is None:
        raise TypeError(
            f"{func_name}: {name} must be an ndarray of shape {shape_text}; got None."
        )
    array = np.asarray(array)
    if array.dtype.kind == "f" and not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{func_name}: {name} has dtype {array.dtype}; expected float32 or "
            f"float64. Convert it with {name}.astype(np.float32)."
        )
    if array.ndim != ndim:
        raise ValueError(
            f"{func_name}: {name} must have {ndim} dimensions {shape_text}; "
            f"got shape {array.shape}."
        )
    return np.ascontiguousarray(array)


def _check_same_dtype(first, first_name, other, other_name, func_name):
    if other.dtype != first.dtype:
        raise TypeError(
            f"{func_name}: {other_name} has dtype {other.dtype} but {first_name} "
            f"has dtype {first.dtype}; all arrays must share one dtype. Convert "
            f"it with {other_name}.astype({first_name}.dtype)."
        )


def _check_n_threads(n_threads, func_name):
    if isinstance(n_threads, bool):
        raise TypeError(f"{func_name}: n_threads must be an integer >= 1; got {n_threads!r}.")
    try:
        n_threads = operator.index(n_threads)
    except TypeError:
        raise TypeError(
            f"{func_name}: n_threads must be an integer >= 1; got {n_threads!r}."
        ) from None
    if n_threads < 1:
        raise ValueError(f"{func_name}: n_threads must be >= 1; got {n_threads}.")
    return n_threads


def _check_positive_int(value, name, func_name):
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{func_name}: {name} must be an integer >= 1; got {value!r}."
        ) from None
    if value < 1:
        raise ValueError(f"{func_name}: {name} must be >= 1; got {value}.")
    return value


def _padding_amounts(padding, kernel_size, func_name):
    """Return (pad_before, pad_after) for a padding name."""
    if not isinstance(padding, str) or padding not in _PADDINGS:
        raise ValueError(
            f"{func_name}: padding must be 'valid' or 'same'; got {padding!r}."
        )
    if padding == "valid":
        return 0, 0
    pad_before = (kernel_size - 1) // 2
    return pad_before, kernel_size - 1 - pad_before


def _check_conv_inputs(x, weights, func_name):
    x = _check_float_array(
        x, "x", 4, "(n_samples, height, width, n_channels)", func_name
    )
    weights = _check_float_array(
        weights,
        "weights",
        4,
        "(kernel_size, kernel_size, n_channels, n_filters)",
        func_name,
    )
    _check_same_dtype(x, "x", weights, "weights", func_name)
    kernel_size, kernel_width, n_channels, n_filters = weights.shape
    if kernel_size != kernel_width or kernel_size < 1:
        raise ValueError(
            f"{func_name}: weights must hold a square kernel of size >= 1, shape "
            f"(kernel_size, kernel_size, n_channels, n_filters); got shape "
            f"{weights.shape}."
        )
    if n_filters < 1:
        raise ValueError(
            f"{func_name}: weights must hold at least one filter; got shape "
            f"{weights.shape}."
        )
    if x.shape[1] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(
            f"{func_name}: x must have height, width and n_channels >= 1; got "
            f"shape {x.shape}."
        )
    if x.shape[3] != n_channels:
        raise ValueError(
            f"{func_name}: x has {x.shape[3]} channels but weights expect "
            f"{n_channels} (weights shape {weights.shape})."
        )
    return x, weights


def _conv_output_size(x, kernel_size, padding, func_name):
    pad_before, pad_after = _padding_amounts(padding, kernel_size, func_name)
    out_height = x.shape[1] + pad_before + pad_after - kernel_size + 1
    out_width = x.shape[2] + pad_before + pad_after - kernel_size + 1
    if out_height < 1 or out_width < 1:
        raise ValueError(
            f"{func_name}: a {kernel_size}x{kernel_size} kernel does not fit in "
            f"an image of height {x.shape[1]} and width {x.shape[2]} with "
            f"padding {padding!r}; use padding='same' or a smaller kernel."
        )
    return pad_before, pad_after, out_height, out_width


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------


def conv2d_forward(x, weights, bias, padding="valid", n_threads=1):
    """Compute a stride-1 2-d convolution (cross-correlation) plus bias.

    Parameters
    ----------
    x : ndarray of shape (n_samples, height, width, n_channels)
    weights : ndarray of shape (kernel_size, kernel_size, n_channels, n_filters)
    bias : ndarray of shape (n_filters,)
    padding : {"valid", "same"}, default="valid"
        "same" pads (kernel_size - 1) // 2 zeros before and the rest after,
        so the output keeps the input's height and width.
    n_threads : int, default=1
        Ignored by the reference.

    Returns
    -------
    out : ndarray of shape (n_samples, out_height, out_width, n_filters)
    """
    func_name = "conv2d_forward"
    _check_n_threads(n_threads, func_name)
    x, weights = _check_conv_inputs(x, weights, func_name)
    bias = _check_float_array(bias, "bias", 1, "(n_filters,)", func_name)
    _check_same_dtype(x, "x", bias, "bias", func_name)
    kernel_size, _, _, n_filters = weights.shape
    if bias.shape[0] != n_filters:
        raise ValueError(
            f"{func_name}: bias must have shape ({n_filters},) to match weights; "
            f"got shape {bias.shape}."
        )
    pad_before, pad_after, out_height, out_width = _conv_output_size(
        x, kernel_size, padding, func_name
    )

    padded = np.pad(
        x, ((0, 0), (pad_before, pad_after), (pad_before, pad_after), (0, 0))
    )
    out = np.zeros((x.shape[0], out_height, out_width, n_filters), dtype=x.dtype)
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            window = padded[:, dy : dy + out_height, dx : dx + out_width, :]
            out += window @ weights[dy, dx]
    out += bias
    return out


def conv2d_backward(
    x, weights, grad_output, padding="valid", need_grad_input=True, n_threads=1
):
    """Compute the gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    x : ndarray of shape (n_samples, height, width, n_channels)
    weights : ndarray of shape (kernel_size, kernel_size, n_channels, n_filters)
    grad_output : ndarray of shape (n_samples, out_height, out_width, n_filters)
    padding : {"valid", "same"}, default="valid"
    need_grad_input : bool, default=True
        When False, ``grad_input`` is not computed and None is returned.
    n_threads : int, default=1
        Ignored by the reference.

    Returns
    -------
    grad_input : ndarray of shape (n_samples, height, width, n_channels) or None
    grad_weights : ndarray of shape (kernel_size, kernel_size, n_channels, n_filters)
    grad_bias : ndarray of shape (n_filters,)
    """
    func_name = "conv2d_backward"
    _check_n_threads(n_threads, func_name)
    x, weights = _check_conv_inputs(x, weights, func_name)
    grad_output = _check_float_array(
        grad_output,
        "grad_output",
        4,
        "(n_samples, out_height, out_width, n_filters)",
        func_name,
    )
    _check_same_dtype(x, "x", grad_output, "grad_output", func_name)
    kernel_size, _, _, n_filters = weights.shape
    pad_before, pad_after, out_height, out_width = _conv_output_size(
        x, kernel_size, padding, func_name
    )
    expected_shape = (x.shape[0], out_height, out_width, n_filters)
    if grad_output.shape != expected_shape:
        raise ValueError(
            f"{func_name}: grad_output must have shape {expected_shape} to match "
            f"x, weights and padding {padding!r}; got shape {grad_output.shape}."
        )

    padded = np.pad(
        x, ((0, 0), (pad_before, pad_after), (pad_before, pad_after), (0, 0))
    )
    grad_padded = np.zeros_like(padded) if need_grad_input else None
    grad_weights = np.zeros_like(weights)
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            window = padded[:, dy : dy + out_height, dx : dx + out_width, :]
            grad_weights[dy, dx] = np.einsum("nhwc,nhwf->cf", window, grad_output)
            if need_grad_input:
                grad_padded[:, dy : dy + out_height, dx : dx + out_width, :] += (
                    grad_output @ weights[dy, dx].T
                )
    grad_bias = grad_output.sum(axis=(0, 1, 2))

    grad_input = None
    if need_grad_input:
        height, width = x.shape[1], x.shape[2]
        grad_input = np.ascontiguousarray(
            grad_padded[:, pad_before : pad_before + height, pad_before : pad_before + width, :]
        )
    return grad_input, grad_weights, grad_bias


# ---------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------


def maxpool2d_forward(x, pool_size=2, stride=2, n_threads=1):
    """Take the maximum over square windows, per sample and channel.

    Parameters
    ----------
    x : ndarray of shape (n_samples, height, width, n_channels)
    pool_size : int, default=2
    stride : int, default=2
    n_threads : int, default=1
        Ignored by the reference.

    Returns
    -------
    out : ndarray of shape (n_samples, out_height, out_width, n_channels)
        ``out_height = (height - pool_size) // stride + 1``, and likewise for
        the width. Rows and columns that no full window covers are dropped.
    argmax : ndarray of int32 of the same shape as ``out``
        Flat index ``y * width + x`` of the chosen input position within its
        sample and channel.

    Notes
    -----
    Ties go to the first maximum in row-major window order (smallest ``dy``,
    then smallest ``dx``), and that position alone receives the gradient. A NaN wins only when it comes first in its window,
    because later positions replace the running maximum only when strictly
    greater.
    """
    func_name = "maxpool2d_forward"
    _check_n_threads(n_threads, func_name)
    x = _check_float_array(
        x, "x", 4, "(n_samples, height, width, n_channels)", func_name
    )
    pool_size = _check_positive_int(pool_size, "pool_size", func_name)
    stride = _check_positive_int(stride, "stride", func_name)
    n_samples, height, width, n_channels = x.shape
    if n_channels < 1:
        raise ValueError(
            f"{func_name}: x must have n_channels >= 1; got shape {x.shape}."
        )
    if pool_size > height or pool_size > width:
        raise ValueError(
            f"{func_name}: a pool of size {pool_size} does not fit in an image "
            f"of height {height} and width {width}; use a smaller pool_size."
        )
    if height * width > _MAX_FLAT_INDEX:
        raise ValueError(
            f"{func_name}: height * width = {height * width} does not fit the "
            "int32 argmax; split the image."
        )
    out_height = (height - pool_size) // stride + 1
    out_width = (width - pool_size) // stride + 1

    out = np.empty((n_samples, out_height, out_width, n_channels), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.int32)
    for out_y in range(out_height):
        for out_x in range(out_width):
            y0 = out_y * stride
            x0 = out_x * stride
            window = x[:, y0 : y0 + pool_size, x0 : x0 + pool_size, :]
            flat = window.reshape(n_samples, pool_size * pool_size, n_channels)
            # The reshape keeps row-major window order, so the first maximum
            # along axis 1 is the one with the smallest dy, then smallest dx.
            position = _first_max(flat)
            out[:, out_y, out_x, :] = np.take_along_axis(
                flat, position[:, None, :], axis=1
            )[:, 0, :]
            dy, dx = np.divmod(position, pool_size)
            argmax[:, out_y, out_x, :] = (y0 + dy) * width + (x0 + dx)
    return out, argmax


def _first_max(flat):
    """Return the index of the first maximum along axis 1, as the kernel picks it.

    A later value replaces the running maximum only when strictly greater,
    so a NaN is kept only when it comes first.
    """
    best_index = np.zeros((flat.shape[0], flat.shape[2]), dtype=np.intp)
    best_value = flat[:, 0, :].copy()
    for position in range(1, flat.shape[1]):
        greater = flat[:, position, :] > best_value
        best_value[greater] = flat[:, position, :][greater]
        best_index[greater] = position
    return best_index


def maxpool2d_backward(grad_output, argmax, input_shape, n_threads=1):
    """Route ``grad_output`` back to the input positions stored in ``argmax``.

    Parameters
    ----------
    grad_output : ndarray of shape (n_samples, out_height, out_width, n_channels)
    argmax : ndarray of int32 of the same shape
        As returned by :func:`maxpool2d_forward`.
    input_shape : tuple of 4 int
        Shape of the forward input, (n_samples, height, width, n_channels).
    n_threads : int, default=1
        Ignored by the reference.

    Returns
    -------
    grad_input : ndarray of shape ``input_shape``
        Zeros plus the scattered gradients; windows that overlap (stride <
        pool_size) add up.
    """
    func_name = "maxpool2d_backward"
    _check_n_threads(n_threads, func_name)
    grad_output = _check_float_array(
        grad_output,
        "grad_output",
        4,
        "(n_samples, out_height, out_width, n_channels)",
        func_name,
    )
    argmax = _check_argmax(argmax, grad_output, func_name)
    n_samples, height, width, n_channels = _check_input_shape(
        input_shape, grad_output, func_name
    )
    if argmax.size and (argmax.min() < 0 or argmax.max() >= height * width):
        raise ValueError(
            f"{func_name}: invalid argmax, values outside [0, {height * width}) "
            f"for inputs of height {height} and width {width}; pass the argmax "
            "returned by maxpool2d_forward for this input shape."
        )

    grad_input = np.zeros((n_samples, height * width, n_channels), dtype=grad_output.dtype)
    flat_argmax = argmax.reshape(n_samples, -1, n_channels)
    flat_grad = grad_output.reshape(n_samples, -1, n_channels)
    for sample in range(n_samples):
        for channel in range(n_channels):
            np.add.at(
                grad_input[sample, :, channel],
                flat_argmax[sample, :, channel],
                flat_grad[sample, :, channel],
            )
    return grad_input.reshape(n_samples, height, width, n_channels)


def _check_argmax(argmax, grad_output, func_name):
    if argmax is None:
        raise TypeError(f"{func_name}: argmax must be an int32 ndarray; got None.")
    argmax = np.asarray(argmax)
    if argmax.dtype != np.int32:
        raise TypeError(
            f"{func_name}: argmax has dtype {argmax.dtype}; expected int32 as "
            "returned by maxpool2d_forward."
        )
    if argmax.shape != grad_output.shape:
        raise ValueError(
            f"{func_name}: argmax has shape {argmax.shape} but grad_output has "
            f"shape {grad_output.shape}; they must match."
        )
    return np.ascontiguousarray(argmax)


def _check_input_shape(input_shape, grad_output, func_name):
    try:
        shape = tuple(operator.index(size) for size in input_shape)
    except TypeError:
        raise TypeError(
            f"{func_name}: input_shape must be a tuple of 4 integers; got "
            f"{input_shape!r}."
        ) from None
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(
            f"{func_name}: input_shape must be 4 sizes >= 0, (n_samples, height, "
            f"width, n_channels); got {input_shape!r}."
        )
    n_samples, height, width, n_channels = shape
    out_samples, out_height, out_width, out_channels = grad_output.shape
    if (
        n_samples != out_samples
        or n_channels != out_channels
        or height < out_height
        or width < out_width
        or (out_height * out_width > 0 and height * width == 0)
    ):
        raise ValueError(
            f"{func_name}: input_shape {shape} does not fit grad_output of shape "
            f"{grad_output.shape}; n_samples and n_channels must match and the "
            "input must be at least as large as the output."
        )
    if height * width > _MAX_FLAT_INDEX:
        raise ValueError(
            f"{func_name}: height * width = {height * width} does not fit the "
            "int32 argmax."
        )
    return shape


# ---------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------


def _check_channel_vector(array, name, n_channels, like, like_name, func_name):
    array = _check_float_array(array, name, 1, "(n_channels,)", func_name)
    _check_same_dtype(like, like_name, array, name, func_name)
    if array.shape[0] != n_channels:
        raise ValueError(
            f"{func_name}: {name} has {array.shape[0]} entries but {like_name} has "
            f"{n_channels} channels; give one value per channel."
        )
    return array


def _check_epsilon(epsilon, func_name):
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(f"{func_name}: epsilon must be a number > 0; got {epsilon!r}.")
    value = float(epsilon)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{func_name}: epsilon must be a finite number > 0; got {epsilon!r}.")
    return value


def batchnorm_forward(x, scale, shift, epsilon=1e-5, n_threads=1):
    """Normalise each channel (column) of ``x`` with the mean and variance of its rows.

    Returns ``(out, normalized, mean, var)``: ``normalized = (x - mean) /
    sqrt(var + epsilon)``, ``out = normalized * scale + shift``, and the
    float64 batch mean and biased variance of each channel.
    """
    func_name = "batchnorm_forward"
    x = _check_float_array(x, "x", 2, "(n_rows, n_channels)", func_name)
    n_rows, n_channels = x.shape
    scale = _check_channel_vector(scale, "scale", n_channels, x, "x", func_name)
    shift = _check_channel_vector(shift, "shift", n_channels, x, "x", func_name)
    epsilon = _check_epsilon(epsilon, func_name)
    if n_rows < 1:
        raise ValueError(f"{func_name}: x has no rows; batch statistics need at least one.")
    _check_n_threads(n_threads, func_name)

    values = x.astype(np.float64)
    mean = values.mean(axis=0)
    var = ((values - mean) ** 2).mean(axis=0)
    normalized = ((values - mean) / np.sqrt(var + epsilon)).astype(x.dtype)
    out = (normalized.astype(np.float64) * scale + shift).astype(x.dtype)
    return out, normalized, mean, var


def batchnorm_backward(grad_output, normalized, scale, var, epsilon=1e-5, n_threads=1):
    """Return ``(grad_input, grad_scale, grad_shift)`` of :func:`batchnorm_forward`.

    With ``g = grad_output`` and ``n = normalized``:
    ``grad_input = scale / sqrt(var + epsilon) * (g - mean(g) - n * mean(g * n))``,
    ``grad_scale = sum(g * n)`` and ``grad_shift = sum(g)``, means and sums
    taken over the rows; the last two are float64.
    """
    func_name = "batchnorm_backward"
    grad_output = _check_float_array(grad_output, "grad_output", 2, "(n_rows, n_channels)", func_name)
    normalized = _check_float_array(normalized, "normalized", 2, "(n_rows, n_channels)", func_name)
    _check_same_dtype(grad_output, "grad_output", normalized, "normalized", func_name)
    if grad_output.shape != normalized.shape:
        raise ValueError(
            f"{func_name}: grad_output has shape {grad_output.shape} but normalized has "
            f"shape {normalized.shape}; pass the normalized array of the same batch."
        )
    n_rows, n_channels = grad_output.shape
    scale = _check_channel_vector(scale, "scale", n_channels, grad_output, "grad_output", func_name)
    var = _check_float_array(var, "var", 1, "(n_channels,)", func_name)
    if var.shape[0] != n_channels:
        raise ValueError(
            f"{func_name}: var has {var.shape[0]} entries but grad_output has "
            f"{n_channels} channels; pass the var of the same batch."
        )
    var = var.astype(np.float64)
    if not np.all(var >= 0):
        raise ValueError(f"{func_name}: var must hold variances >= 0; got {var!r}.")
    epsilon = _check_epsilon(epsilon, func_name)
    if n_rows < 1:
        raise ValueError(f"{func_name}: grad_output has no rows; batch statistics need at least one.")
    _check_n_threads(n_threads, func_name)

    grad = grad_output.astype(np.float64)
    norm = normalized.astype(np.float64)
    grad_shift = grad.sum(axis=0)
    grad_scale = (grad * norm).sum(axis=0)
    gain = scale / np.sqrt(var + epsilon)
    grad_input = gain * (grad - grad_shift / n_rows - norm * grad_scale / n_rows)
    return grad_input.astype(grad_output.dtype), grad_scale, grad_shift
