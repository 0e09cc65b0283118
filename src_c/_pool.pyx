"""2-d max-pooling kernels (channels-last), forward and backward.

Conventions
-----------
- Layout is channels-last and C-contiguous: x and grad_input
  (n_samples, height, width, n_channels); out, argmax and grad_output
  (n_samples, out_height, out_width, n_channels) with
  out_height = (height - pool_size) // stride + 1, likewise for the width.
- argmax is int32 and stores the flat index y * width + x of the chosen
  input position within its sample and channel.
- Tie rule: the first maximum in row-major window order (smallest dy, then
  smallest dx) wins, because a later value replaces the running maximum
  only when strictly greater. That position alone receives the gradient. A
  NaN therefore wins only when it comes first in its window.
- The def functions check every argument while they hold the GIL and copy
  inputs that are not C-contiguous. The cdef helpers assume valid input and
  run without bounds checks, except for the argmax range check in backward.
- Inputs are read through const memoryviews and never written. Every output
  is a new array allocated here.
- Forward runs prange over (sample, output row) pairs. Backward runs prange
  over samples, because overlapping windows of neighbouring output rows add
  into the same input row.
- float32 2x2 pools with stride 2 and a multiple of 8 channels run the
  vectorised forward loop of _pool_simd.h.
"""

import numpy as np

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange

from _checks cimport (
    check_float_array,
    check_positive_int,
    thread_count,
)

cnp.import_array()

cdef extern from "_pool_simd.h" nogil:
    void csmile_maxpool2x2_rows_f32(
        const float* x, Py_ssize_t height, Py_ssize_t width, Py_ssize_t n_channels,
        float* out, int* argmax, Py_ssize_t out_height, Py_ssize_t out_width,
        Py_ssize_t row_start, Py_ssize_t row_stop)

cdef Py_ssize_t MAX_FLAT_INDEX = 2147483647


cdef struct PoolGeometry:
    Py_ssize_t n_samples
    Py_ssize_t height
    Py_ssize_t width
    Py_ssize_t n_channels
    Py_ssize_t pool_size
    Py_ssize_t stride
    Py_ssize_t out_height
    Py_ssize_t out_width


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

cdef inline void _maxpool_forward_row(
    const floating* x, floating* out, int* argmax, const PoolGeometry* g,
    Py_ssize_t sample, Py_ssize_t out_y
) noexcept nogil:
    """Pool one output row.

    The running maximum and its index live in locals and are updated by a
    select, not a branch: a branch on random data mispredicted about half
    the time. 2x2 pools, the common case, get an unrolled loop that the
    compiler vectorises across channels. Both keep the first maximum.
    """
    cdef Py_ssize_t n_channels = g.n_channels
    cdef Py_ssize_t row_stride = g.width * n_channels
    cdef Py_ssize_t out_x, dy, dx, y0, x0, channel, offset
    cdef int flat_index, base_index, best_index
    cdef floating value, best
    cdef bint is_greater
    cdef floating* out_pixel
    cdef int* argmax_pixel
    cdef const floating* window

    y0 = out_y * g.stride
    for out_x in range(g.out_width):
        x0 = out_x * g.stride
        offset = ((sample * g.out_height + out_y) * g.out_width + out_x) * n_channels
        out_pixel = out + offset
        argmax_pixel = argmax + offset
        window = x + ((sample * g.height + y0) * g.width + x0) * n_channels
        base_index = <int>(y0 * g.width + x0)

        if g.pool_size == 2:
            for channel in range(n_channels):
                best = window[channel]
                best_index = base_index
                value = window[n_channels + channel]
                is_greater = value > best
                best = value if is_greater else best
                best_index = base_index + 1 if is_greater else best_index
                value = window[row_stride + channel]
                is_greater = value > best
                best = value if is_greater else best
                best_index = base_index + <int>g.width if is_greater else best_index
                value = window[row_stride + n_channels + channel]
                is_greater = value > best
                best = value if is_greater else best
                best_index = base_index + <int>g.width + 1 if is_greater else best_index
                out_pixel[channel] = best
                argmax_pixel[channel] = best_index
            continue

        for channel in range(n_channels):
            best = window[channel]
            best_index = base_index
            for dy in range(g.pool_size):
                for dx in range(g.pool_size):
                    value = window[dy * row_stride + dx * n_channels + channel]
                    flat_index = base_index + <int>(dy * g.width + dx)
                    is_greater = value > best
                    best = value if is_greater else best
                    best_index = flat_index if is_greater else best_index
            out_pixel[channel] = best
            argmax_pixel[channel] = best_index


cdef inline Py_ssize_t _maxpool_backward_sample(
    const floating* grad_output, const int* argmax, floating* grad_input,
    Py_ssize_t n_outputs, Py_ssize_t n_positions, Py_ssize_t n_channels,
    Py_ssize_t sample
) noexcept nogil:
    """Scatter-add the gradients of one sample; return how many were invalid.

    An argmax value outside [0, n_positions) is counted and skipped, so a bad
    argmax never writes outside grad_input.
    """
    cdef Py_ssize_t output_idx, channel, position
    cdef Py_ssize_t n_invalid = 0
    cdef const floating* grad_pixel = grad_output + sample * n_outputs * n_channels
    cdef const int* argmax_pixel = argmax + sample * n_outputs * n_channels
    cdef floating* grad_sample = grad_input + sample * n_positions * n_channels

    for output_idx in range(n_outputs):
        for channel in range(n_channels):
            position = argmax_pixel[channel]
            if position < 0 or position >= n_positions:
                n_invalid += 1
            else:
                grad_sample[position * n_channels + channel] += grad_pixel[channel]
        grad_pixel += n_channels
        argmax_pixel += n_channels
    return n_invalid


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------

cdef void _maxpool_forward(
    const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
    int[:, :, :, ::1] argmax, const PoolGeometry* g, int n_threads
) noexcept:
    cdef Py_ssize_t row, thread
    cdef Py_ssize_t n_rows = g.n_samples * g.out_height
    cdef const floating* x_data = &x[0, 0, 0, 0]
    cdef floating* out_data = &out[0, 0, 0, 0]
    cdef int* argmax_data = &argmax[0, 0, 0, 0]

    if (floating is float and g.pool_size == 2 and g.stride == 2
            and g.n_channels % 8 == 0):
        with nogil:
            for thread in prange(n_threads, schedule="static", num_threads=n_threads,
                                 use_threads_if=n_threads > 1):
                csmile_maxpool2x2_rows_f32(
                    x_data, g.height, g.width, g.n_channels, out_data, argmax_data,
                    g.out_height, g.out_width, thread * n_rows // n_threads,
                    (thread + 1) * n_rows // n_threads,
                )
        return

    with nogil:
        for row in prange(n_rows, schedule="static", num_threads=n_threads,
                          use_threads_if=n_threads > 1):
            _maxpool_forward_row(x_data, out_data, argmax_data, g,
                                 row // g.out_height, row % g.out_height)


def maxpool2d_forward(x, pool_size=2, stride=2, n_threads=1):
    """Take the maximum over square windows, per sample and channel.

    Parameters
    ----------
    x : ndarray of shape (n_samples, height, width, n_channels)
    pool_size : int, default=2
    stride : int, default=2
    n_threads : int, default=1

    Returns
    -------
    out : ndarray of shape (n_samples, out_height, out_width, n_channels)
        ``out_height = (height - pool_size) // stride + 1``, likewise for the
        width. Rows and columns that no full window covers are dropped.
    argmax : ndarray of int32 of the same shape as ``out``
        Flat index ``y * width + x`` of the chosen input position within its
        sample and channel. Ties go to the first maximum in row-major window
        order (smallest dy, then smallest dx).
    """
    cdef str func_name = "maxpool2d_forward"
    cdef cnp.ndarray x_array, out, argmax
    cdef cnp.npy_intp* x_shape
    cdef PoolGeometry g
    cdef int threads

    x_array = check_float_array(
        x, "x", 4, "(n_samples, height, width, n_channels)", func_name
    )
    pool_size = check_positive_int(pool_size, "pool_size", func_name)
    stride = check_positive_int(stride, "stride", func_name)
    x_shape = cnp.PyArray_DIMS(x_array)
    if x_shape[3] < 1:
        raise ValueError(
            f"{func_name}: x must have n_channels >= 1; got shape {(<object>x_array).shape}."
        )
    if pool_size > x_shape[1] or pool_size > x_shape[2]:
        raise ValueError(
            f"{func_name}: a pool of size {pool_size} does not fit in an image "
            f"of height {x_shape[1]} and width {x_shape[2]}; use a smaller "
            "pool_size."
        )
    if x_shape[1] * x_shape[2] > MAX_FLAT_INDEX:
        raise ValueError(
            f"{func_name}: height * width = {x_shape[1] * x_shape[2]} does not "
            "fit the int32 argmax; split the image."
        )

    g.n_samples = x_shape[0]
    g.height = x_shape[1]
    g.width = x_shape[2]
    g.n_channels = x_shape[3]
    g.pool_size = pool_size
    # A stride larger than the image is valid and gives one output row.
    g.stride = min(stride, g.height + g.width)
    g.out_height = (g.height - g.pool_size) // g.stride + 1
    g.out_width = (g.width - g.pool_size) // g.stride + 1
    threads = thread_count(n_threads, g.n_samples * g.out_height, func_name)

    out = np.empty((g.n_samples, g.out_height, g.out_width, g.n_channels),
                   dtype=x_array.dtype)
    argmax = np.empty((g.n_samples, g.out_height, g.out_width, g.n_channels),
                      dtype=np.int32)
    if g.n_samples == 0:
        return out, argmax
    if cnp.PyArray_TYPE(x_array) == cnp.NPY_FLOAT32:
        _maxpool_forward[float](x_array, out, argmax, &g, threads)
    else:
        _maxpool_forward[double](x_array, out, argmax, &g, threads)
    return out, argmax


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------

cdef Py_ssize_t _maxpool_backward(
    const floating[:, :, :, ::1] grad_output, const int[:, :, :, ::1] argmax,
    floating[:, :, :, ::1] grad_input, int n_threads
) noexcept:
    """Scatter grad_output into grad_input; return the count of invalid argmax."""
    cdef Py_ssize_t sample
    cdef Py_ssize_t n_invalid = 0
    cdef Py_ssize_t n_samples = grad_input.shape[0]
    cdef Py_ssize_t n_positions = grad_input.shape[1] * grad_input.shape[2]
    cdef Py_ssize_t n_channels = grad_input.shape[3]
    cdef Py_ssize_t n_outputs = grad_output.shape[1] * grad_output.shape[2]
    cdef const floating* grad_output_data = &grad_output[0, 0, 0, 0]
    cdef const int* argmax_data = &argmax[0, 0, 0, 0]
    cdef floating* grad_input_data = &grad_input[0, 0, 0, 0]

    with nogil:
        for sample in prange(n_samples, schedule="static", num_threads=n_threads,
                             use_threads_if=n_threads > 1):
            n_invalid += _maxpool_backward_sample(
                grad_output_data, argmax_data, grad_input_data,
                n_outputs, n_positions, n_channels, sample
            )
    return n_invalid


cdef tuple _check_input_shape(object input_shape, tuple grad_shape, str func_name):
    try:
        shape = tuple([size.__index__() for size in input_shape])
    except (TypeError, AttributeError):
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
    out_samples, out_height, out_width, out_channels = grad_shape
    if (
        n_samples != out_samples
        or n_channels != out_channels
        or height < out_height
        or width < out_width
        or (out_height * out_width > 0 and height * width == 0)
    ):
        raise ValueError(
            f"{func_name}: input_shape {shape} does not fit grad_output of shape "
            f"{grad_shape}; n_samples and n_channels must match and the input "
            "must be at least as large as the output."
        )
    if height * width > MAX_FLAT_INDEX:
        raise ValueError(
            f"{func_name}: height * width = {height * width} does not fit the "
            "int32 argmax."
        )
    return shape


def maxpool2d_backward(grad_output, argmax, input_shape, n_threads=1):
    """Route grad_output back to the input positions stored in argmax.

    Parameters
    ----------
    grad_output : ndarray of shape (n_samples, out_height, out_width, n_channels)
    argmax : ndarray of int32 of the same shape
        As returned by :func:`maxpool2d_forward`.
    input_shape : tuple of 4 int
        Shape of the forward input, (n_samples, height, width, n_channels).
    n_threads : int, default=1

    Returns
    -------
    grad_input : ndarray of shape ``input_shape``
        Zeros plus the scattered gradients; windows that overlap (stride <
        pool_size) add up.

    Raises
    ------
    ValueError
        If an argmax value lies outside [0, height * width).
    """
    cdef str func_name = "maxpool2d_backward"
    cdef cnp.ndarray grad_array, argmax_array, grad_input
    cdef Py_ssize_t n_invalid
    cdef int threads

    grad_array = check_float_array(
        grad_output, "grad_output", 4,
        "(n_samples, out_height, out_width, n_channels)", func_name
    )
    if argmax is None:
        raise TypeError(f"{func_name}: argmax must be an int32 ndarray; got None.")
    if not cnp.PyArray_Check(argmax):
        argmax = np.asarray(argmax)
    argmax_array = <cnp.ndarray>argmax
    if argmax_array.dtype != np.int32:
        raise TypeError(
            f"{func_name}: argmax has dtype {argmax_array.dtype}; expected int32 "
            "as returned by maxpool2d_forward."
        )
    grad_shape = (<object>grad_array).shape
    if (<object>argmax_array).shape != grad_shape:
        raise ValueError(
            f"{func_name}: argmax has shape {(<object>argmax_array).shape} but grad_output "
            f"has shape {grad_shape}; they must match."
        )
    if not (cnp.PyArray_IS_C_CONTIGUOUS(argmax_array)
            and cnp.PyArray_ISALIGNED(argmax_array)
            and cnp.PyArray_ISNOTSWAPPED(argmax_array)):
        argmax_array = np.ascontiguousarray(argmax_array, dtype=np.int32)
    shape = _check_input_shape(input_shape, grad_shape, func_name)
    threads = thread_count(n_threads, shape[0], func_name)

    grad_input = np.zeros(shape, dtype=grad_array.dtype)
    if grad_array.size == 0:
        return grad_input
    if cnp.PyArray_TYPE(grad_array) == cnp.NPY_FLOAT32:
        n_invalid = _maxpool_backward[float](grad_array, argmax_array, grad_input, threads)
    else:
        n_invalid = _maxpool_backward[double](grad_array, argmax_array, grad_input, threads)
    if n_invalid:
        height, width = shape[1], shape[2]
        raise ValueError(
            f"{func_name}: invalid argmax, {n_invalid} value(s) outside "
            f"[0, {height * width}) for inputs of height {height} and width "
            f"{width}; pass the argmax returned by maxpool2d_forward for this "
            "input shape."
        )
    return grad_input
