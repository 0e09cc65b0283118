"""Batch-normalisation kernels for training, forward and backward.

Conventions
-----------
- Arrays are 2-d and C-contiguous: (n_rows, n_channels), where a row is
  one pixel of one sample, so a channels-last batch of images is passed as
  x.reshape(-1, n_channels). Statistics are taken over the rows.
- scale and shift are 1-d of length n_channels and share x's dtype.
- Forward returns the biased batch variance, as used to normalise; the
  caller derives the unbiased one for its running average.
- Sums are accumulated in float64 whatever the input dtype. The forward sums
  are taken around each channel's first value, so a large mean does not
  swamp the variance.
- The def functions check every argument while they hold the GIL and copy
  inputs that are not C-contiguous. Every output is a new array.
- Rows are split into one contiguous chunk per thread; each thread sums its
  chunk into its own row of a (n_threads, n_channels) table, which is then
  added up in a fixed order, so results do not depend on scheduling.
"""

import numbers

import numpy as np

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, sqrt

from _checks cimport (
    check_float_array,
    check_same_dtype,
    thread_count,
)

cnp.import_array()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

cdef inline void _shifted_sums(
    const floating* x, const double* pivot, double* sums, double* squares,
    Py_ssize_t row_start, Py_ssize_t row_stop, Py_ssize_t n_channels
) noexcept nogil:
    """Add x - pivot and its square over rows [row_start, row_stop) to sums and squares."""
    cdef Py_ssize_t row, channel
    cdef double value
    cdef const floating* x_row
    for row in range(row_start, row_stop):
        x_row = x + row * n_channels
        for channel in range(n_channels):
            value = x_row[channel] - pivot[channel]
            sums[channel] += value
            squares[channel] += value * value


cdef inline void _normalize_rows(
    const floating* x, floating* normalized, floating* out,
    const floating* mean, const floating* inv_std,
    const floating* scale, const floating* shift,
    Py_ssize_t row_start, Py_ssize_t row_stop, Py_ssize_t n_channels
) noexcept nogil:
    cdef Py_ssize_t row, channel, offset
    cdef floating value
    for row in range(row_start, row_stop):
        offset = row * n_channels
        for channel in range(n_channels):
            value = (x[offset + channel] - mean[channel]) * inv_std[channel]
            normalized[offset + channel] = value
            out[offset + channel] = value * scale[channel] + shift[channel]


cdef inline void _gradient_sums(
    const floating* grad_output, const floating* normalized,
    double* grad_sums, double* product_sums,
    Py_ssize_t row_start, Py_ssize_t row_stop, Py_ssize_t n_channels
) noexcept nogil:
    cdef Py_ssize_t row, channel, offset
    cdef double grad
    for row in range(row_start, row_stop):
        offset = row * n_channels
        for channel in range(n_channels):
            grad = grad_output[offset + channel]
            grad_sums[channel] += grad
            product_sums[channel] += grad * normalized[offset + channel]


cdef inline void _grad_input_rows(
    const floating* grad_output, const floating* normalized, floating* grad_input,
    const floating* gain, const floating* normalized_coef, const floating* offset_coef,
    Py_ssize_t row_start, Py_ssize_t row_stop, Py_ssize_t n_channels
) noexcept nogil:
    cdef Py_ssize_t row, channel, offset
    for row in range(row_start, row_stop):
        offset = row * n_channels
        for channel in range(n_channels):
            grad_input[offset + channel] = (
                grad_output[offset + channel] * gain[channel]
                + normalized[offset + channel] * normalized_coef[channel]
                + offset_coef[channel]
            )


cdef inline Py_ssize_t _chunk_start(Py_ssize_t chunk, Py_ssize_t n_chunks, Py_ssize_t n_rows) noexcept nogil:
    return (n_rows * chunk) // n_chunks


cdef cnp.ndarray _check_vector(object array, str name, Py_ssize_t n_channels,
                               cnp.ndarray like, str like_name, str func_name):
    cdef cnp.ndarray result = check_float_array(array, name, 1, "(n_channels,)", func_name)
    check_same_dtype(like, like_name, result, name, func_name)
    if result.shape[0] != n_channels:
        raise ValueError(
            f"{func_name}: {name} has {result.shape[0]} entries but {like_name} has "
            f"{n_channels} channels; give one value per channel."
        )
    return result


cdef double _check_epsilon(object epsilon, str func_name) except -1.0:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(f"{func_name}: epsilon must be a number > 0; got {epsilon!r}.")
    cdef double value = float(epsilon)
    if not isfinite(value) or value <= 0:
        raise ValueError(f"{func_name}: epsilon must be a finite number > 0; got {epsilon!r}.")
    return value


# ---------------------------------------------------------------------------
# Typed drivers
# ---------------------------------------------------------------------------

cdef void _forward(
    const floating* x, const floating* scale, const floating* shift,
    floating* normalized, floating* out, double* partial, double* mean, double* var,
    floating* mean_cast, floating* inv_std_cast, double* pivot, double epsilon,
    Py_ssize_t n_rows, Py_ssize_t n_channels, int n_threads
) noexcept nogil:
    cdef Py_ssize_t chunk, channel
    cdef double total, squares, centered

    for channel in range(n_channels):
        pivot[channel] = x[channel]
    for chunk in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
        _shifted_sums(
            x, pivot, partial + 2 * chunk * n_channels, partial + (2 * chunk + 1) * n_channels,
            _chunk_start(chunk, n_threads, n_rows), _chunk_start(chunk + 1, n_threads, n_rows),
            n_channels,
        )
    for channel in range(n_channels):
        total = 0.0
        squares = 0.0
        for chunk in range(n_threads):
            total = total + partial[2 * chunk * n_channels + channel]
            squares = squares + partial[(2 * chunk + 1) * n_channels + channel]
        centered = total / n_rows
        mean[channel] = pivot[channel] + centered
        var[channel] = squares / n_rows - centered * centered
        if var[channel] < 0.0:
            var[channel] = 0.0
        mean_cast[channel] = <floating>mean[channel]
        inv_std_cast[channel] = <floating>(1.0 / sqrt(var[channel] + epsilon))
    for chunk in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
        _normalize_rows(
            x, normalized, out, mean_cast, inv_std_cast, scale, shift,
            _chunk_start(chunk, n_threads, n_rows), _chunk_start(chunk + 1, n_threads, n_rows),
            n_channels,
        )


cdef void _backward(
    const floating* grad_output, const floating* normalized, const floating* scale,
    const double* var, double epsilon, floating* grad_input, double* partial,
    double* grad_scale, double* grad_shift, floating* gain, floating* normalized_coef,
    floating* offset_coef, Py_ssize_t n_rows, Py_ssize_t n_channels, int n_threads
) noexcept nogil:
    cdef Py_ssize_t chunk, channel
    cdef double grad_sum, product_sum, channel_gain

    for chunk in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
        _gradient_sums(
            grad_output, normalized,
            partial + 2 * chunk * n_channels, partial + (2 * chunk + 1) * n_channels,
            _chunk_start(chunk, n_threads, n_rows), _chunk_start(chunk + 1, n_threads, n_rows),
            n_channels,
        )
    for channel in range(n_channels):
        grad_sum = 0.0
        product_sum = 0.0
        for chunk in range(n_threads):
            grad_sum = grad_sum + partial[2 * chunk * n_channels + channel]
            product_sum = product_sum + partial[(2 * chunk + 1) * n_channels + channel]
        grad_shift[channel] = grad_sum
        grad_scale[channel] = product_sum
        # d loss / d x = scale * inv_std * (g - mean(g) - normalized * mean(g * normalized))
        channel_gain = scale[channel] / sqrt(var[channel] + epsilon)
        gain[channel] = <floating>channel_gain
        normalized_coef[channel] = <floating>(-channel_gain * product_sum / n_rows)
        offset_coef[channel] = <floating>(-channel_gain * grad_sum / n_rows)
    for chunk in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
        _grad_input_rows(
            grad_output, normalized, grad_input, gain, normalized_coef, offset_coef,
            _chunk_start(chunk, n_threads, n_rows), _chunk_start(chunk + 1, n_threads, n_rows),
            n_channels,
        )


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------

def batchnorm_forward(x, scale, shift, epsilon=1e-5, n_threads=1):
    """Normalise each channel of x with its batch statistics.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_channels), float32 or float64
        At least one row.
    scale, shift : ndarray of shape (n_channels,), same dtype as x
    epsilon : float, default=1e-5
        Added to the variance before the square root; must be > 0.
    n_threads : int, default=1

    Returns
    -------
    out : ndarray of shape (n_rows, n_channels)
        normalized * scale + shift.
    normalized : ndarray of shape (n_rows, n_channels)
        (x - mean) / sqrt(var + epsilon), which the backward pass needs.
    mean, var : ndarray of shape (n_channels,), float64
        Batch mean and biased batch variance of each channel.
    """
    cdef str func_name = "batchnorm_forward"
    cdef cnp.ndarray x_arr = check_float_array(x, "x", 2, "(n_rows, n_channels)", func_name)
    cdef Py_ssize_t n_rows = x_arr.shape[0]
    cdef Py_ssize_t n_channels = x_arr.shape[1]
    cdef cnp.ndarray scale_arr = _check_vector(scale, "scale", n_channels, x_arr, "x", func_name)
    cdef cnp.ndarray shift_arr = _check_vector(shift, "shift", n_channels, x_arr, "x", func_name)
    cdef double eps = _check_epsilon(epsilon, func_name)
    if n_rows < 1:
        raise ValueError(f"{func_name}: x has no rows; batch statistics need at least one.")
    cdef int threads = thread_count(n_threads, n_rows, func_name)

    out = np.empty_like(x_arr)
    normalized = np.empty_like(x_arr)
    mean = np.empty(n_channels, dtype=np.float64)
    var = np.empty(n_channels, dtype=np.float64)
    cdef cnp.ndarray partial = np.zeros((threads, 2, n_channels), dtype=np.float64)
    cdef cnp.ndarray pivot = np.empty(n_channels, dtype=np.float64)
    cdef cnp.ndarray mean_cast = np.empty_like(scale_arr)
    cdef cnp.ndarray inv_std_cast = np.empty_like(scale_arr)

    if n_channels == 0:
        return out, normalized, mean, var
    cdef void* x_ptr = cnp.PyArray_DATA(x_arr)
    cdef void* scale_ptr = cnp.PyArray_DATA(scale_arr)
    cdef void* shift_ptr = cnp.PyArray_DATA(shift_arr)
    cdef void* normalized_ptr = cnp.PyArray_DATA(<cnp.ndarray>normalized)
    cdef void* out_ptr = cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef void* mean_cast_ptr = cnp.PyArray_DATA(mean_cast)
    cdef void* inv_std_ptr = cnp.PyArray_DATA(inv_std_cast)
    cdef double* mean_ptr = <double*>cnp.PyArray_DATA(<cnp.ndarray>mean)
    cdef double* var_ptr = <double*>cnp.PyArray_DATA(<cnp.ndarray>var)
    cdef double* partial_ptr = <double*>cnp.PyArray_DATA(partial)
    cdef double* pivot_ptr = <double*>cnp.PyArray_DATA(pivot)
    cdef bint is_float32 = cnp.PyArray_TYPE(x_arr) == cnp.NPY_FLOAT32
    with nogil:
        if is_float32:
            _forward[float](
                <const float*>x_ptr, <const float*>scale_ptr, <const float*>shift_ptr,
                <float*>normalized_ptr, <float*>out_ptr, partial_ptr, mean_ptr, var_ptr,
                <float*>mean_cast_ptr, <float*>inv_std_ptr, pivot_ptr, eps,
                n_rows, n_channels, threads,
            )
        else:
            _forward[double](
                <const double*>x_ptr, <const double*>scale_ptr, <const double*>shift_ptr,
                <double*>normalized_ptr, <double*>out_ptr, partial_ptr, mean_ptr, var_ptr,
                <double*>mean_cast_ptr, <double*>inv_std_ptr, pivot_ptr, eps,
                n_rows, n_channels, threads,
            )
    return out, normalized, mean, var


def batchnorm_backward(grad_output, normalized, scale, var, epsilon=1e-5, n_threads=1):
    """Gradients of batch normalisation in training mode.

    Parameters
    ----------
    grad_output : ndarray of shape (n_rows, n_channels), float32 or float64
    normalized : ndarray of shape (n_rows, n_channels), same dtype
        As returned by :func:`batchnorm_forward`.
    scale : ndarray of shape (n_channels,), same dtype
    var : ndarray of shape (n_channels,)
        The batch variance returned by :func:`batchnorm_forward`; any float
        dtype, used in float64.
    epsilon : float, default=1e-5
        The value given to :func:`batchnorm_forward`.
    n_threads : int, default=1

    Returns
    -------
    grad_input : ndarray of shape (n_rows, n_channels)
    grad_scale, grad_shift : ndarray of shape (n_channels,), float64
    """
    cdef str func_name = "batchnorm_backward"
    cdef cnp.ndarray grad_arr = check_float_array(
        grad_output, "grad_output", 2, "(n_rows, n_channels)", func_name
    )
    cdef cnp.ndarray normalized_arr = check_float_array(
        normalized, "normalized", 2, "(n_rows, n_channels)", func_name
    )
    check_same_dtype(grad_arr, "grad_output", normalized_arr, "normalized", func_name)
    if grad_arr.shape[0] != normalized_arr.shape[0] or grad_arr.shape[1] != normalized_arr.shape[1]:
        raise ValueError(
            f"{func_name}: grad_output has shape {(<object>grad_arr).shape} but normalized has "
            f"shape {(<object>normalized_arr).shape}; pass the normalized array of the same batch."
        )
    cdef Py_ssize_t n_rows = grad_arr.shape[0]
    cdef Py_ssize_t n_channels = grad_arr.shape[1]
    cdef cnp.ndarray scale_arr = _check_vector(scale, "scale", n_channels, grad_arr, "grad_output", func_name)
    cdef cnp.ndarray var_arr = check_float_array(var, "var", 1, "(n_channels,)", func_name)
    if var_arr.shape[0] != n_channels:
        raise ValueError(
            f"{func_name}: var has {var_arr.shape[0]} entries but grad_output has "
            f"{n_channels} channels; pass the var of the same batch."
        )
    var_arr = np.ascontiguousarray(var_arr, dtype=np.float64)
    if not np.all(var_arr >= 0):
        raise ValueError(f"{func_name}: var must hold variances >= 0; got {var_arr!r}.")
    cdef double eps = _check_epsilon(epsilon, func_name)
    if n_rows < 1:
        raise ValueError(f"{func_name}: grad_output has no rows; batch statistics need at least one.")
    cdef int threads = thread_count(n_threads, n_rows, func_name)

    grad_input = np.empty_like(grad_arr)
    grad_scale = np.empty(n_channels, dtype=np.float64)
    grad_shift = np.empty(n_channels, dtype=np.float64)
    cdef cnp.ndarray partial = np.zeros((threads, 2, n_channels), dtype=np.float64)
    cdef cnp.ndarray coefficients = np.empty((3, n_channels), dtype=grad_arr.dtype)

    if n_channels == 0:
        return grad_input, grad_scale, grad_shift
    cdef void* grad_ptr = cnp.PyArray_DATA(grad_arr)
    cdef void* normalized_ptr = cnp.PyArray_DATA(normalized_arr)
    cdef void* scale_ptr = cnp.PyArray_DATA(scale_arr)
    cdef void* grad_input_ptr = cnp.PyArray_DATA(<cnp.ndarray>grad_input)
    cdef void* coef_ptr = cnp.PyArray_DATA(coefficients)
    cdef double* grad_scale_ptr = <double*>cnp.PyArray_DATA(<cnp.ndarray>grad_scale)
    cdef double* grad_shift_ptr = <double*>cnp.PyArray_DATA(<cnp.ndarray>grad_shift)
    cdef double* partial_ptr = <double*>cnp.PyArray_DATA(partial)
    cdef const double* var_ptr = <const double*>cnp.PyArray_DATA(var_arr)
    cdef bint is_float32 = cnp.PyArray_TYPE(grad_arr) == cnp.NPY_FLOAT32
    with nogil:
        if is_float32:
            _backward[float](
                <const float*>grad_ptr, <const float*>normalized_ptr, <const float*>scale_ptr,
                var_ptr, eps, <float*>grad_input_ptr, partial_ptr, grad_scale_ptr, grad_shift_ptr,
                <float*>coef_ptr, <float*>coef_ptr + n_channels, <float*>coef_ptr + 2 * n_channels,
                n_rows, n_channels, threads,
            )
        else:
            _backward[double](
                <const double*>grad_ptr, <const double*>normalized_ptr, <const double*>scale_ptr,
                var_ptr, eps, <double*>grad_input_ptr, partial_ptr, grad_scale_ptr, grad_shift_ptr,
                <double*>coef_ptr, <double*>coef_ptr + n_channels, <double*>coef_ptr + 2 * n_channels,
                n_rows, n_channels, threads,
            )
    return grad_input, grad_scale, grad_shift
