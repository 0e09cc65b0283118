"""Stride-1 2-d convolution kernels (channels-last), forward and backward.

Conventions
-----------
- Layout is channels-last and C-contiguous:
  x (n_samples, height, width, n_channels),
  weights (kernel_size, kernel_size, n_channels, n_filters),
  bias (n_filters,), out and grad_output
  (n_samples, out_height, out_width, n_filters).
- A patch is the kernel_size * kernel_size * n_channels input values under
  one output position, in (dy, dx, channel) order, which is also the row
  order of ``weights.reshape(patch_size, n_filters)``.
- The def functions check every argument while they hold the GIL and copy
  inputs that are not C-contiguous. The cdef helpers assume valid input and
  run without bounds checks.
- Inputs are read through const memoryviews and never written. Every output
  is a new array allocated here.
- ``floating`` is float or double; all arrays of one call share it.
- Loops run under ``prange(schedule="static", num_threads=n_threads)``. Each
  iteration owns one output row, so no two threads write the same element.
- float32 with 8, 16, 32 or 64 output channels (n_filters for forward and
  grad_weights, n_channels for grad_input) runs the register-blocked C
  kernels of _conv_simd.h on a zero-padded copy of the input. grad_input is
  then a forward convolution of the padded grad_output with flipped weights.
  With batch 32 on one AMD EPYC Zen 4 core, a timing loop (median of 15
  runs) measured about 110 GFLOP/s for the 3x3 16->32 and 32->64 layers.
  Threads split output rows (forward, grad_input) or samples (grad_weights,
  whose per-thread partial sums are added at the end).
- Other shapes and float64 use two strategies, chosen by patch size (see
  DIRECT_MAX_PATCH_SIZE): direct loops for small patches, and im2col
  followed by np.matmul for large ones. np.matmul runs in the BLAS thread
  pool, whose size n_threads does not set (use threadpoolctl for that).
"""

import threading

import numpy as np

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from _checks cimport (
    check_float_array,
    check_same_dtype,
    thread_count,
)

cnp.import_array()

cdef extern from "_conv_simd.h" nogil:
    int csmile_simd_supports(Py_ssize_t n_out)
    void csmile_forward_rows_f32(
        const float* padded, Py_ssize_t padded_height, Py_ssize_t padded_width,
        Py_ssize_t n_channels, Py_ssize_t kernel_size, const float* weights,
        const float* bias, Py_ssize_t n_out, float* out, Py_ssize_t out_height,
        Py_ssize_t out_width, Py_ssize_t row_start, Py_ssize_t row_stop)
    void csmile_grad_weights_f32(
        const float* padded, Py_ssize_t padded_height, Py_ssize_t padded_width,
        Py_ssize_t n_channels, Py_ssize_t kernel_size, const float* grad_output,
        Py_ssize_t n_out, Py_ssize_t out_height, Py_ssize_t out_width,
        Py_ssize_t sample_start, Py_ssize_t sample_stop, float* partial)
    void csmile_pad_f32(
        const float* x, Py_ssize_t height, Py_ssize_t width, Py_ssize_t n_channels,
        Py_ssize_t pad_top, Py_ssize_t pad_bottom, Py_ssize_t pad_left,
        Py_ssize_t pad_right, float* padded, Py_ssize_t sample_start,
        Py_ssize_t sample_stop)

# Patches of at most this many values use the direct loops; larger ones use
# im2col + np.matmul.
DIRECT_MAX_PATCH_SIZE = 32


cdef struct ConvGeometry:
    Py_ssize_t n_samples
    Py_ssize_t height
    Py_ssize_t width
    Py_ssize_t n_channels
    Py_ssize_t kernel_size
    Py_ssize_t n_filters
    Py_ssize_t pad_top
    Py_ssize_t pad_left
    Py_ssize_t out_height
    Py_ssize_t out_width
    Py_ssize_t patch_size


# Scratch buffers (im2col columns and their gradients) are kept between calls,
# one set per Python thread, because allocating tens of MB per call made the
# kernel pay for fresh zeroed pages on every call (about 10% of the backward
# time of a 32x32x16 -> 32 layer, measured with perf). They never leave this
# module. NOTE: each thread keeps its largest buffers alive until it exits.
_workspace = threading.local()


cdef cnp.ndarray _scratch(str name, Py_ssize_t n_rows, Py_ssize_t n_columns, object dtype):
    """Return an uninitialised (n_rows, n_columns) view of a reused buffer."""
    cdef Py_ssize_t size = n_rows * n_columns
    key = (name, dtype)
    buffers = getattr(_workspace, "buffers", None)
    if buffers is None:
        buffers = {}
        _workspace.buffers = buffers
    buffer = buffers.get(key)
    if buffer is None or buffer.shape[0] < size:
        buffer = np.empty(size, dtype=dtype)
        buffers[key] = buffer
    return buffer[:size].reshape(n_rows, n_columns)


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

cdef tuple _check_conv_inputs(object x, object weights, str func_name):
    cdef cnp.ndarray x_array, weights_array

    x_array = check_float_array(
        x, "x", 4, "(n_samples, height, width, n_channels)", func_name
    )
    weights_array = check_float_array(
        weights, "weights", 4,
        "(kernel_size, kernel_size, n_channels, n_filters)", func_name
    )
    check_same_dtype(x_array, "x", weights_array, "weights", func_name)

    cdef cnp.npy_intp* x_shape = cnp.PyArray_DIMS(x_array)
    cdef cnp.npy_intp* w_shape = cnp.PyArray_DIMS(weights_array)
    if w_shape[0] != w_shape[1] or w_shape[0] < 1:
        raise ValueError(
            f"{func_name}: weights must hold a square kernel of size >= 1, shape "
            f"(kernel_size, kernel_size, n_channels, n_filters); got shape "
            f"{(<object>weights_array).shape}."
        )
    if w_shape[3] < 1:
        raise ValueError(
            f"{func_name}: weights must hold at least one filter; got shape "
            f"{(<object>weights_array).shape}."
        )
    if x_shape[1] < 1 or x_shape[2] < 1 or x_shape[3] < 1:
        raise ValueError(
            f"{func_name}: x must have height, width and n_channels >= 1; got "
            f"shape {(<object>x_array).shape}."
        )
    if x_shape[3] != w_shape[2]:
        raise ValueError(
            f"{func_name}: x has {x_shape[3]} channels but weights expect "
            f"{w_shape[2]} (weights shape {(<object>weights_array).shape})."
        )
    return x_array, weights_array


cdef int _fill_geometry(
    ConvGeometry* geometry, cnp.ndarray x, cnp.ndarray weights,
    object padding, str func_name
) except -1:
    """Fill geometry from checked x and weights and the padding name."""
    cdef cnp.npy_intp* x_shape = cnp.PyArray_DIMS(x)
    cdef cnp.npy_intp* w_shape = cnp.PyArray_DIMS(weights)
    cdef Py_ssize_t kernel_size = w_shape[0]
    cdef Py_ssize_t pad_before, pad_after

    if padding == "valid" and isinstance(padding, str):
        pad_before = 0
        pad_after = 0
    elif padding == "same" and isinstance(padding, str):
        pad_before = (kernel_size - 1) // 2
        pad_after = kernel_size - 1 - pad_before
    else:
        raise ValueError(
            f"{func_name}: padding must be 'valid' or 'same'; got {padding!r}."
        )

    geometry.n_samples = x_shape[0]
    geometry.height = x_shape[1]
    geometry.width = x_shape[2]
    geometry.n_channels = x_shape[3]
    geometry.kernel_size = kernel_size
    geometry.n_filters = w_shape[3]
    geometry.pad_top = pad_before
    geometry.pad_left = pad_before
    geometry.out_height = geometry.height + pad_before + pad_after - kernel_size + 1
    geometry.out_width = geometry.width + pad_before + pad_after - kernel_size + 1
    geometry.patch_size = kernel_size * kernel_size * geometry.n_channels
    if geometry.out_height < 1 or geometry.out_width < 1:
        raise ValueError(
            f"{func_name}: a {kernel_size}x{kernel_size} kernel does not fit in "
            f"an image of height {geometry.height} and width {geometry.width} "
            f"with padding {padding!r}; use padding='same' or a smaller kernel."
        )
    return 0


# ---------------------------------------------------------------------------
# Helpers: one output row (or input row) per call
# ---------------------------------------------------------------------------

cdef inline void _im2col_row(
    const floating* x, floating* cols, const ConvGeometry* g,
    Py_ssize_t sample, Py_ssize_t out_y
) noexcept nogil:
    """Copy the patches of one output row into consecutive rows of cols."""
    cdef Py_ssize_t kernel_row_size = g.kernel_size * g.n_channels
    cdef Py_ssize_t out_x, dy, dx, in_y, in_x, x_start
    cdef floating* col = cols + (sample * g.out_height + out_y) * g.out_width * g.patch_size
    cdef floating* dst
    cdef const floating* src_row

    for out_x in range(g.out_width):
        x_start = out_x - g.pad_left
        for dy in range(g.kernel_size):
            in_y = out_y + dy - g.pad_top
            dst = col + dy * kernel_row_size
            if in_y < 0 or in_y >= g.height:
                memset(dst, 0, kernel_row_size * sizeof(floating))
                continue
            src_row = x + (sample * g.height + in_y) * g.width * g.n_channels
            if x_start >= 0 and x_start + g.kernel_size <= g.width:
                # In channels-last, one kernel row of a patch is contiguous.
                memcpy(dst, src_row + x_start * g.n_channels,
                       kernel_row_size * sizeof(floating))
                continue
            for dx in range(g.kernel_size):
                in_x = x_start + dx
                if in_x < 0 or in_x >= g.width:
                    memset(dst + dx * g.n_channels, 0,
                           g.n_channels * sizeof(floating))
                else:
                    memcpy(dst + dx * g.n_channels, src_row + in_x * g.n_channels,
                           g.n_channels * sizeof(floating))
        col += g.patch_size


cdef inline void _col2im_row(
    const floating* grad_cols, floating* grad_input, const ConvGeometry* g,
    Py_ssize_t sample, Py_ssize_t in_y
) noexcept nogil:
    """Sum into one input row every patch gradient that covers it.

    Gathering per input position (instead of scattering per patch) lets rows
    run in parallel without two threads adding to the same element.
    """
    cdef Py_ssize_t in_x, dy, dx, out_y, out_x, channel
    cdef floating* target
    cdef const floating* src

    for in_x in range(g.width):
        target = grad_input + ((sample * g.height + in_y) * g.width + in_x) * g.n_channels
        memset(target, 0, g.n_channels * sizeof(floating))
        for dy in range(g.kernel_size):
            out_y = in_y + g.pad_top - dy
            if out_y < 0 or out_y >= g.out_height:
                continue
            for dx in range(g.kernel_size):
                out_x = in_x + g.pad_left - dx
                if out_x < 0 or out_x >= g.out_width:
                    continue
                src = (grad_cols
                       + ((sample * g.out_height + out_y) * g.out_width + out_x) * g.patch_size
                       + (dy * g.kernel_size + dx) * g.n_channels)
                for channel in range(g.n_channels):
                    target[channel] += src[channel]


cdef inline void _fill_planes(
    const floating* x, floating* planes, const ConvGeometry* g,
    Py_ssize_t sample, Py_ssize_t out_y
) noexcept nogil:
    """Copy the kernel_size input rows under one output row into zero-padded
    channel planes of length out_width + kernel_size - 1.

    planes[(dy * n_channels + channel) * padded_width + px] holds
    x[sample, out_y + dy - pad_top, px - pad_left, channel], or 0 outside x.
    """
    cdef Py_ssize_t padded_width = g.out_width + g.kernel_size - 1
    cdef Py_ssize_t dy, channel, px, in_y, in_x
    cdef floating* plane
    cdef const floating* src_row

    for dy in range(g.kernel_size):
        in_y = out_y + dy - g.pad_top
        for channel in range(g.n_channels):
            plane = planes + (dy * g.n_channels + channel) * padded_width
            if in_y < 0 or in_y >= g.height:
                memset(plane, 0, padded_width * sizeof(floating))
                continue
            src_row = x + (sample * g.height + in_y) * g.width * g.n_channels + channel
            for px in range(padded_width):
                in_x = px - g.pad_left
                if in_x < 0 or in_x >= g.width:
                    plane[px] = 0
                else:
                    plane[px] = src_row[in_x * g.n_channels]


cdef inline void _forward_direct_row(
    const floating* x, const floating* weights, const floating* bias,
    floating* out, floating* scratch, const ConvGeometry* g,
    Py_ssize_t sample, Py_ssize_t out_y
) noexcept nogil:
    """Compute one output row directly, for small patches.

    The innermost loop runs along the output row, over out_width contiguous
    values of a channel plane, so the compiler vectorises it. Looping over
    n_filters innermost instead was 3-4 times slower at n_channels=1 and
    8-16 filters: those loops are too short to amortise their overhead.
    """
    cdef Py_ssize_t padded_width = g.out_width + g.kernel_size - 1
    cdef Py_ssize_t n_filters = g.n_filters
    cdef Py_ssize_t out_x, tap, filter_idx
    cdef Py_ssize_t n_taps = g.patch_size
    cdef Py_ssize_t n_plane_taps = g.kernel_size * g.n_channels
    cdef floating weight
    cdef floating* planes = scratch
    cdef floating* row_sum = scratch + n_plane_taps * padded_width
    cdef const floating* plane
    cdef floating* out_row = out + (sample * g.out_height + out_y) * g.out_width * n_filters

    _fill_planes(x, planes, g, sample, out_y)
    for filter_idx in range(n_filters):
        for out_x in range(g.out_width):
            row_sum[out_x] = bias[filter_idx]
        # tap walks (dy, dx, channel) in weights order; its plane is
        # (dy, channel) and it starts dx values into that plane.
        for tap in range(n_taps):
            weight = weights[tap * n_filters + filter_idx]
            plane = (planes
                     + ((tap // n_plane_taps) * g.n_channels + tap % g.n_channels) * padded_width
                     + (tap // g.n_channels) % g.kernel_size)
            for out_x in range(g.out_width):
                row_sum[out_x] += weight * plane[out_x]
        for out_x in range(g.out_width):
            out_row[out_x * n_filters + filter_idx] = row_sum[out_x]


cdef inline void _grad_weights_direct_row(
    const floating* x, const floating* grad_output, floating* lane_sums,
    floating* scratch, const ConvGeometry* g, Py_ssize_t sample, Py_ssize_t out_y
) noexcept nogil:
    """Add one output row's products to per-lane gradient sums.

    lane_sums[(tap * n_filters + filter_idx) * out_width + out_x] collects
    the weight gradient terms of output column out_x, and the block after
    the last tap collects the bias terms. Summing across out_x happens once
    at the end, so the inner loop is an element-wise multiply-add that the
    compiler vectorises (a dot product would need -ffast-math to vectorise).
    """
    cdef Py_ssize_t padded_width = g.out_width + g.kernel_size - 1
    cdef Py_ssize_t out_width = g.out_width
    cdef Py_ssize_t n_filters = g.n_filters
    cdef Py_ssize_t n_plane_taps = g.kernel_size * g.n_channels
    cdef Py_ssize_t out_x, tap, filter_idx
    cdef floating* planes = scratch
    cdef floating* grad_rows = scratch + n_plane_taps * padded_width
    cdef floating* grad_row
    cdef floating* lanes
    cdef const floating* plane
    cdef const floating* grad_src = (
        grad_output + (sample * g.out_height + out_y) * out_width * n_filters
    )

    _fill_planes(x, planes, g, sample, out_y)
    for out_x in range(out_width):
        for filter_idx in range(n_filters):
            grad_rows[filter_idx * out_width + out_x] = grad_src[out_x * n_filters + filter_idx]

    for filter_idx in range(n_filters):
        grad_row = grad_rows + filter_idx * out_width
        lanes = lane_sums + (g.patch_size * n_filters + filter_idx) * out_width
        for out_x in range(out_width):
            lanes[out_x] += grad_row[out_x]
        for tap in range(g.patch_size):
            plane = (planes
                     + ((tap // n_plane_taps) * g.n_channels + tap % g.n_channels) * padded_width
                     + (tap // g.n_channels) % g.kernel_size)
            lanes = lane_sums + (tap * n_filters + filter_idx) * out_width
            for out_x in range(out_width):
                lanes[out_x] += plane[out_x] * grad_row[out_x]


cdef inline void _add_row_to(
    floating* total, floating* row, Py_ssize_t size
) noexcept nogil:
    """Add row into total and reset row to zero."""
    cdef Py_ssize_t idx
    for idx in range(size):
        total[idx] += row[idx]
        row[idx] = 0


cdef inline Py_ssize_t _direct_scratch_size(const ConvGeometry* g) noexcept:
    """Per-thread scratch of the direct kernels: channel planes, then one
    row per filter (a single row suffices for forward)."""
    return (g.kernel_size * g.n_channels * (g.out_width + g.kernel_size - 1)
            + g.n_filters * g.out_width)


# ---------------------------------------------------------------------------
# float32 register-blocked path (_conv_simd.h)
# ---------------------------------------------------------------------------

cdef inline bint _use_simd(bint is_float32, Py_ssize_t n_out) noexcept:
    """Return True when the float32 kernels of _conv_simd.h handle n_out outputs."""
    return is_float32 and csmile_simd_supports(n_out) != 0


cdef cnp.ndarray _pad_f32(
    cnp.ndarray x, Py_ssize_t pad_top, Py_ssize_t pad_bottom, Py_ssize_t pad_left,
    Py_ssize_t pad_right, str name, int n_threads
):
    """Return x zero-padded in a reused buffer, or x itself when no padding is needed."""
    cdef cnp.npy_intp* shape = cnp.PyArray_DIMS(x)
    cdef Py_ssize_t n_samples = shape[0], height = shape[1], width = shape[2]
    cdef Py_ssize_t n_channels = shape[3], thread
    cdef cnp.ndarray padded
    cdef const float* source
    cdef float* target

    if pad_top == 0 and pad_bottom == 0 and pad_left == 0 and pad_right == 0:
        return x
    padded = _scratch(
        name, n_samples,
        (height + pad_top + pad_bottom) * (width + pad_left + pad_right) * n_channels,
        np.float32,
    )
    source = <const float*>cnp.PyArray_DATA(x)
    target = <float*>cnp.PyArray_DATA(padded)
    with nogil:
        for thread in prange(n_threads, schedule="static", num_threads=n_threads,
                             use_threads_if=n_threads > 1):
            csmile_pad_f32(source, height, width, n_channels, pad_top, pad_bottom,
                           pad_left, pad_right, target,
                           thread * n_samples // n_threads,
                           (thread + 1) * n_samples // n_threads)
    return padded


cdef void _forward_simd(
    cnp.ndarray padded, Py_ssize_t padded_height, Py_ssize_t padded_width,
    Py_ssize_t n_channels, Py_ssize_t kernel_size, cnp.ndarray weights,
    cnp.ndarray bias, cnp.ndarray out, int n_threads
) noexcept:
    """Run csmile_forward_rows_f32, one contiguous block of output rows per thread.

    weights is C-contiguous (kernel_size, kernel_size, n_channels, n_out)
    and out is C-contiguous (n_samples, out_height, out_width, n_out).
    """
    cdef cnp.npy_intp* out_shape = cnp.PyArray_DIMS(out)
    cdef Py_ssize_t out_height = out_shape[1], out_width = out_shape[2]
    cdef Py_ssize_t n_out = out_shape[3]
    cdef Py_ssize_t n_rows = out_shape[0] * out_height
    cdef Py_ssize_t thread
    cdef const float* padded_data = <const float*>cnp.PyArray_DATA(padded)
    cdef const float* weights_data = <const float*>cnp.PyArray_DATA(weights)
    cdef const float* bias_data = <const float*>cnp.PyArray_DATA(bias)
    cdef float* out_data = <float*>cnp.PyArray_DATA(out)

    with nogil:
        for thread in prange(n_threads, schedule="static", num_threads=n_threads,
                             use_threads_if=n_threads > 1):
            csmile_forward_rows_f32(
                padded_data, padded_height, padded_width, n_channels, kernel_size,
                weights_data, bias_data, n_out, out_data, out_height, out_width,
                thread * n_rows // n_threads, (thread + 1) * n_rows // n_threads,
            )


cdef tuple _grad_weights_simd(
    cnp.ndarray x, cnp.ndarray grad_output, const ConvGeometry* g, int n_threads
):
    """Return (grad_weights, grad_bias) for float32, one block of samples per thread.

    Thread i adds into row i of a partial-sum array, and the rows are summed
    at the end, so no two threads write the same accumulator.
    """
    cdef Py_ssize_t pad_bottom = g.out_height + g.kernel_size - 1 - g.height - g.pad_top
    cdef Py_ssize_t pad_right = g.out_width + g.kernel_size - 1 - g.width - g.pad_left
    cdef Py_ssize_t n_weights = g.patch_size * g.n_filters
    cdef Py_ssize_t thread, n_samples = g.n_samples
    cdef int n_chunks = <int>min(n_threads, g.n_samples)
    cdef cnp.ndarray padded, partial_sums
    cdef const float* padded_data
    cdef const float* grad_data = <const float*>cnp.PyArray_DATA(grad_output)
    cdef float* partial_data

    padded = _pad_f32(x, g.pad_top, pad_bottom, g.pad_left, pad_right,
                      "padded_x", n_threads)
    padded_data = <const float*>cnp.PyArray_DATA(padded)
    partial_sums = np.zeros((n_chunks, n_weights + g.n_filters), dtype=np.float32)
    partial_data = <float*>cnp.PyArray_DATA(partial_sums)
    with nogil:
        for thread in prange(n_chunks, schedule="static", num_threads=n_chunks,
                             use_threads_if=n_chunks > 1):
            csmile_grad_weights_f32(
                padded_data, g.height + g.pad_top + pad_bottom,
                g.width + g.pad_left + pad_right, g.n_channels, g.kernel_size,
                grad_data, g.n_filters, g.out_height, g.out_width,
                thread * n_samples // n_chunks, (thread + 1) * n_samples // n_chunks,
                partial_data + thread * (n_weights + g.n_filters),
            )
    totals = partial_sums[0] if n_chunks == 1 else partial_sums.sum(axis=0)
    grad_weights = totals[:n_weights].reshape(
        (g.kernel_size, g.kernel_size, g.n_channels, g.n_filters)
    )
    return grad_weights, totals[n_weights:]


cdef cnp.ndarray _grad_input_simd(
    cnp.ndarray weights, cnp.ndarray grad_output, const ConvGeometry* g, int n_threads
):
    """Return grad_input for float32 as a "full" convolution of grad_output.

    grad_input[y, x, c] sums grad_output[y + pad_top - dy, x + pad_left - dx, f]
    * weights[dy, dx, c, f], which is a forward convolution of grad_output,
    padded by kernel_size - 1 - pad on each side, with the weights flipped in
    both spatial axes and their channel axes swapped.
    """
    cdef Py_ssize_t pad_bottom = g.out_height + g.kernel_size - 1 - g.height - g.pad_top
    cdef Py_ssize_t pad_right = g.out_width + g.kernel_size - 1 - g.width - g.pad_left
    cdef Py_ssize_t k = g.kernel_size
    cdef cnp.ndarray padded, flipped, zero_bias, grad_input

    padded = _pad_f32(grad_output, k - 1 - g.pad_top, k - 1 - pad_bottom,
                      k - 1 - g.pad_left, k - 1 - pad_right, "padded_grad", n_threads)
    flipped = np.ascontiguousarray(weights[::-1, ::-1].transpose(0, 1, 3, 2))
    zero_bias = np.zeros(g.n_channels, dtype=np.float32)
    grad_input = np.empty((g.n_samples, g.height, g.width, g.n_channels),
                          dtype=np.float32)
    _forward_simd(padded, g.height + k - 1, g.width + k - 1, g.n_filters, k,
                  flipped, zero_bias, grad_input, n_threads)
    return grad_input


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------

cdef void _forward_direct(
    const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weights,
    const floating[::1] bias, floating[:, :, :, ::1] out,
    floating[:, ::1] scratch, const ConvGeometry* g, int n_threads
) noexcept:
    """Run _forward_direct_row over all rows; scratch has one row per thread."""
    cdef Py_ssize_t row
    cdef Py_ssize_t n_rows = g.n_samples * g.out_height
    cdef const floating* x_data = &x[0, 0, 0, 0]
    cdef const floating* weights_data = &weights[0, 0, 0, 0]
    cdef const floating* bias_data = &bias[0]
    cdef floating* out_data = &out[0, 0, 0, 0]
    cdef floating* scratch_data = &scratch[0, 0]
    cdef Py_ssize_t scratch_size = scratch.shape[1]

    with nogil:
        for row in prange(n_rows, schedule="static", num_threads=n_threads,
                          use_threads_if=n_threads > 1):
            _forward_direct_row(x_data, weights_data, bias_data, out_data,
                                scratch_data + threadid() * scratch_size, g,
                                row // g.out_height, row % g.out_height)


cdef void _im2col(
    const floating[:, :, :, ::1] x, floating[:, ::1] cols,
    const ConvGeometry* g, int n_threads
) noexcept:
    cdef Py_ssize_t row
    cdef Py_ssize_t n_rows = g.n_samples * g.out_height
    cdef const floating* x_data = &x[0, 0, 0, 0]
    cdef floating* cols_data = &cols[0, 0]

    with nogil:
        for row in prange(n_rows, schedule="static", num_threads=n_threads,
                          use_threads_if=n_threads > 1):
            _im2col_row(x_data, cols_data, g, row // g.out_height, row % g.out_height)


cdef void _add_bias(
    floating[:, ::1] out, const floating[::1] bias, int n_threads
) noexcept:
    cdef Py_ssize_t row, filter_idx
    cdef Py_ssize_t n_rows = out.shape[0]
    cdef Py_ssize_t n_filters = out.shape[1]
    cdef floating* out_data = &out[0, 0]
    cdef const floating* bias_data = &bias[0]

    with nogil:
        for row in prange(n_rows, schedule="static", num_threads=n_threads,
                          use_threads_if=n_threads > 1):
            for filter_idx in range(n_filters):
                out_data[row * n_filters + filter_idx] += bias_data[filter_idx]


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
        OpenMP threads for the loops written here.

    Returns
    -------
    out : ndarray of shape (n_samples, out_height, out_width, n_filters)
    """
    cdef str func_name = "conv2d_forward"
    cdef cnp.ndarray x_array, weights_array, bias_array, out, cols, scratch, padded
    cdef ConvGeometry g
    cdef int threads
    cdef bint is_float32

    x_array, weights_array = _check_conv_inputs(x, weights, func_name)
    bias_array = check_float_array(bias, "bias", 1, "(n_filters,)", func_name)
    check_same_dtype(x_array, "x", bias_array, "bias", func_name)
    _fill_geometry(&g, x_array, weights_array, padding, func_name)
    if cnp.PyArray_DIMS(bias_array)[0] != g.n_filters:
        raise ValueError(
            f"{func_name}: bias must have shape ({g.n_filters},) to match weights; "
            f"got shape {(<object>bias_array).shape}."
        )
    threads = thread_count(n_threads, g.n_samples * g.out_height, func_name)
    is_float32 = cnp.PyArray_TYPE(x_array) == cnp.NPY_FLOAT32

    out = np.empty((g.n_samples, g.out_height, g.out_width, g.n_filters),
                   dtype=x_array.dtype)
    if g.n_samples == 0:
        return out

    if _use_simd(is_float32, g.n_filters):
        padded = _pad_f32(
            x_array, g.pad_top, g.out_height + g.kernel_size - 1 - g.height - g.pad_top,
            g.pad_left, g.out_width + g.kernel_size - 1 - g.width - g.pad_left,
            "padded_x", threads,
        )
        _forward_simd(padded, g.out_height + g.kernel_size - 1,
                      g.out_width + g.kernel_size - 1, g.n_channels, g.kernel_size,
                      weights_array, bias_array, out, threads)
        return out

    if g.patch_size <= DIRECT_MAX_PATCH_SIZE:
        scratch = _scratch("direct", threads, _direct_scratch_size(&g), x_array.dtype)
        if is_float32:
            _forward_direct[float](x_array, weights_array, bias_array, out, scratch,
                                   &g, threads)
        else:
            _forward_direct[double](x_array, weights_array, bias_array, out, scratch,
                                    &g, threads)
        return out

    cols = _scratch("cols", g.n_samples * g.out_height * g.out_width, g.patch_size,
                    x_array.dtype)
    out_2d = out.reshape(-1, g.n_filters)
    if is_float32:
        _im2col[float](x_array, cols, &g, threads)
    else:
        _im2col[double](x_array, cols, &g, threads)
    np.matmul(cols, weights_array.reshape(g.patch_size, g.n_filters), out=out_2d)
    if is_float32:
        _add_bias[float](out_2d, bias_array, threads)
    else:
        _add_bias[double](out_2d, bias_array, threads)
    return out


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------

cdef void _grad_weights_direct(
    const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] grad_output,
    floating[:, ::1] partial_sums, floating[:, ::1] lane_sums,
    floating[:, ::1] scratch, const ConvGeometry* g, int n_chunks
) noexcept:
    """Sum weight and bias gradients per chunk of output rows.

    Chunk i owns row i of partial_sums, lane_sums and scratch, so threads
    never share an accumulator. partial_sums[i] holds the patch_size *
    n_filters weight gradients followed by the n_filters bias gradients.
    lane_sums must be zero on entry.
    """
    cdef Py_ssize_t chunk, row, row_start, row_stop, entry, out_x
    cdef Py_ssize_t n_rows = g.n_samples * g.out_height
    cdef Py_ssize_t n_entries = (g.patch_size + 1) * g.n_filters
    cdef const floating* x_data = &x[0, 0, 0, 0]
    cdef const floating* grad_data = &grad_output[0, 0, 0, 0]
    cdef floating* lanes
    cdef floating total

    with nogil:
        for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks,
                            use_threads_if=n_chunks > 1):
            row_start = chunk * n_rows // n_chunks
            row_stop = (chunk + 1) * n_rows // n_chunks
            for row in range(row_start, row_stop):
                _grad_weights_direct_row(x_data, grad_data, &lane_sums[chunk, 0],
                                         &scratch[chunk, 0], g,
                                         row // g.out_height, row % g.out_height)
            for entry in range(n_entries):
                lanes = &lane_sums[chunk, entry * g.out_width]
                total = 0
                for out_x in range(g.out_width):
                    total = total + lanes[out_x]
                partial_sums[chunk, entry] = total


cdef void _sum_rows(
    const floating[:, ::1] values, floating[:, ::1] partial_sums,
    floating[:, ::1] row_buffer, Py_ssize_t block_size, int n_chunks
) noexcept:
    """Sum the rows of values into partial_sums, one row per chunk.

    Rows are summed in blocks of block_size before they reach the chunk
    total, for the same rounding reason as in _grad_weights_direct.
    """
    cdef Py_ssize_t chunk, block, row, row_stop, block_start, block_stop, idx
    cdef Py_ssize_t n_columns = values.shape[1]
    cdef Py_ssize_t n_blocks = (values.shape[0] + block_size - 1) // block_size
    cdef const floating* values_data = &values[0, 0]
    cdef floating* total
    cdef floating* block_sum

    with nogil:
        for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks,
                            use_threads_if=n_chunks > 1):
            total = &partial_sums[chunk, 0]
            block_sum = &row_buffer[chunk, 0]
            block_start = chunk * n_blocks // n_chunks
            block_stop = (chunk + 1) * n_blocks // n_chunks
            for block in range(block_start, block_stop):
                row_stop = min((block + 1) * block_size, values.shape[0])
                for row in range(block * block_size, row_stop):
                    for idx in range(n_columns):
                        block_sum[idx] += values_data[row * n_columns + idx]
                _add_row_to(total, block_sum, n_columns)


cdef void _col2im(
    const floating[:, ::1] grad_cols, floating[:, :, :, ::1] grad_input,
    const ConvGeometry* g, int n_threads
) noexcept:
    cdef Py_ssize_t row
    cdef Py_ssize_t n_rows = g.n_samples * g.height
    cdef const floating* grad_cols_data = &grad_cols[0, 0]
    cdef floating* grad_input_data = &grad_input[0, 0, 0, 0]

    with nogil:
        for row in prange(n_rows, schedule="static", num_threads=n_threads,
                          use_threads_if=n_threads > 1):
            _col2im_row(grad_cols_data, grad_input_data, g,
                        row // g.height, row % g.height)


def conv2d_backward(x, weights, grad_output, padding="valid",
                    need_grad_input=True, n_threads=1):
    """Compute the gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    x : ndarray of shape (n_samples, height, width, n_channels)
    weights : ndarray of shape (kernel_size, kernel_size, n_channels, n_filters)
    grad_output : ndarray of shape (n_samples, out_height, out_width, n_filters)
    padding : {"valid", "same"}, default="valid"
    need_grad_input : bool, default=True
        When False, ``grad_input`` is not computed and None is returned; the
        first layer of a network needs no input gradient.
    n_threads : int, default=1
        OpenMP threads for the loops written here.

    Returns
    -------
    grad_input : ndarray of shape (n_samples, height, width, n_channels) or None
    grad_weights : ndarray of shape (kernel_size, kernel_size, n_channels, n_filters)
    grad_bias : ndarray of shape (n_filters,)
    """
    cdef str func_name = "conv2d_backward"
    cdef cnp.ndarray x_array, weights_array, grad_array, cols, grad_cols
    cdef cnp.ndarray grad_input, grad_weights, grad_bias, partial_weights
    cdef cnp.ndarray partial_bias, row_buffer, partial_sums, lane_sums, scratch
    cdef cnp.npy_intp* grad_shape
    cdef ConvGeometry g
    cdef int threads, n_chunks
    cdef bint is_float32

    x_array, weights_array = _check_conv_inputs(x, weights, func_name)
    grad_array = check_float_array(
        grad_output, "grad_output", 4,
        "(n_samples, out_height, out_width, n_filters)", func_name
    )
    check_same_dtype(x_array, "x", grad_array, "grad_output", func_name)
    _fill_geometry(&g, x_array, weights_array, padding, func_name)
    grad_shape = cnp.PyArray_DIMS(grad_array)
    if (grad_shape[0] != g.n_samples or grad_shape[1] != g.out_height
            or grad_shape[2] != g.out_width or grad_shape[3] != g.n_filters):
        expected_shape = (g.n_samples, g.out_height, g.out_width, g.n_filters)
        raise ValueError(
            f"{func_name}: grad_output must have shape {expected_shape} to match "
            f"x, weights and padding {padding!r}; got shape {(<object>grad_array).shape}."
        )
    threads = thread_count(n_threads, g.n_samples * g.out_height, func_name)
    is_float32 = cnp.PyArray_TYPE(x_array) == cnp.NPY_FLOAT32
    dtype = x_array.dtype

    if g.n_samples == 0:
        grad_input = np.zeros_like(x_array) if need_grad_input else None
        return grad_input, np.zeros_like(weights_array), np.zeros(g.n_filters, dtype=dtype)

    grad_2d = grad_array.reshape(-1, g.n_filters)
    n_chunks = threads
    if _use_simd(is_float32, g.n_filters):
        grad_weights, grad_bias = _grad_weights_simd(x_array, grad_array, &g, threads)
    elif g.patch_size <= DIRECT_MAX_PATCH_SIZE:
        partial_sums = np.empty((n_chunks, (g.patch_size + 1) * g.n_filters), dtype=dtype)
        lane_sums = np.zeros((n_chunks, (g.patch_size + 1) * g.n_filters * g.out_width),
                             dtype=dtype)
        scratch = _scratch("direct", n_chunks, _direct_scratch_size(&g), dtype)
        if is_float32:
            _grad_weights_direct[float](x_array, grad_array, partial_sums, lane_sums,
                                        scratch, &g, n_chunks)
        else:
            _grad_weights_direct[double](x_array, grad_array, partial_sums, lane_sums,
                                         scratch, &g, n_chunks)
        totals = partial_sums.sum(axis=0)
        grad_weights = totals[:g.patch_size * g.n_filters].reshape((<object>weights_array).shape)
        grad_bias = totals[g.patch_size * g.n_filters:]
    else:
        cols = _scratch("cols", g.n_samples * g.out_height * g.out_width,
                        g.patch_size, dtype)
        if is_float32:
            _im2col[float](x_array, cols, &g, threads)
        else:
            _im2col[double](x_array, cols, &g, threads)
        grad_weights = np.empty_like(weights_array)
        np.matmul(cols.T, grad_2d,
                  out=grad_weights.reshape(g.patch_size, g.n_filters))
        partial_bias = np.zeros((n_chunks, g.n_filters), dtype=dtype)
        row_buffer = np.zeros((n_chunks, g.n_filters), dtype=dtype)
        if is_float32:
            _sum_rows[float](grad_2d, partial_bias, row_buffer, g.out_width, n_chunks)
        else:
            _sum_rows[double](grad_2d, partial_bias, row_buffer, g.out_width, n_chunks)
        grad_bias = partial_bias.sum(axis=0)

    if not need_grad_input:
        return None, grad_weights, grad_bias
    if _use_simd(is_float32, g.n_channels):
        return _grad_input_simd(weights_array, grad_array, &g, threads), grad_weights, grad_bias

    grad_cols = _scratch("grad_cols", g.n_samples * g.out_height * g.out_width,
                         g.patch_size, dtype)
    np.matmul(grad_2d, weights_array.reshape(g.patch_size, g.n_filters).T, out=grad_cols)
    grad_input = np.empty_like(x_array)
    if is_float32:
        _col2im[float](grad_cols, grad_input, &g, threads)
    else:
        _col2im[double](grad_cols, grad_input, &g, threads)
    return grad_input, grad_weights, grad_bias
