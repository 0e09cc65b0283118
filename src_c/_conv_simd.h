/* Register-blocked float32 convolution kernels for channels-last data.
 *
 * Used by _conv.pyx for float32 when the number of output channels is 8,
 * 16, 32 or 64; other shapes and float64 keep the generic Cython loops.
 *
 * Inputs here are already zero-padded, so the kernels never test borders:
 *   padded      (n_samples, padded_height, padded_width, n_channels)
 *   weights     (kernel_size, kernel_size, n_channels, n_out), n_out in {8,16,32,64}
 *   out / grad  (n_samples, out_height, out_width, n_out)
 * with out_height = padded_height - kernel_size + 1 (likewise for the width).
 *
 * The accumulators are GCC vector-extension values of 8 or 16 floats. Each
 * entry point is compiled three times (AVX-512, AVX2 + FMA, baseline x86-64)
 * through target_clones, and the loader picks one at run time, so the
 * extension stays portable without -march=native. The multiply-adds are
 * contracted to FMA instructions where the target has them, which changes
 * only the rounding (one rounding per step instead of two).
 *
 * NOTE: the vector-extension types need GCC or Clang. MSVC builds of
 * these headers are untested and would need another code path.
 */
#ifndef CSMILE_CONV_SIMD_H
#define CSMILE_CONV_SIMD_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CSMILE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CSMILE_CLONES
#endif

#if defined(__GNUC__)
#define CSMILE_INLINE static inline __attribute__((always_inline))
#define CSMILE_UNROLL _Pragma("GCC unroll 16")
#else
#define CSMILE_INLINE static inline
#define CSMILE_UNROLL
#endif

typedef ptrdiff_t csmile_index;

typedef float csmile_v16 __attribute__((vector_size(64)));
typedef float csmile_v16u __attribute__((vector_size(64), aligned(4)));
typedef float csmile_v8 __attribute__((vector_size(32)));
typedef float csmile_v8u __attribute__((vector_size(32), aligned(4)));

/* ------------------------------------------------------------------------
 * Forward: out[y, x, :] = bias + sum over (dy, dx, c) of
 * padded[y + dy, x + dx, c] * weights[dy, dx, c, :].
 * One call computes one output row. PX output pixels share each weight
 * load, and their PX * NV accumulators stay in registers.
 * ------------------------------------------------------------------------ */

/* Compute output pixels out_x, out_x + P, ... while P more fit in the row,
 * P at a time, and leave out_x at the first pixel not done. */
#define CSMILE_FORWARD_PIXELS(VT, VTU, VW, NV, P)                                 \
    for (; out_x + (P) <= out_width; out_x += (P)) {                              \
        VT acc[P][NV];                                                            \
        CSMILE_UNROLL for (int p = 0; p < (P); ++p)                               \
            CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                          \
                acc[p][v] = *(const VTU*)(bias + v * (VW));                       \
        for (csmile_index dy = 0; dy < kernel_size; ++dy) {                       \
            const float* x_start = in_row + dy * in_row_stride + out_x * n_channels; \
            const float* w_start = weights + dy * n_row_taps * n_out;             \
            for (csmile_index tap = 0; tap < n_row_taps; ++tap) {                 \
                VT w[NV];                                                         \
                CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                      \
                    w[v] = *(const VTU*)(w_start + tap * n_out + v * (VW));       \
                CSMILE_UNROLL for (int p = 0; p < (P); ++p) {                     \
                    const float value = x_start[p * n_channels + tap];            \
                    CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                  \
                        acc[p][v] += value * w[v];                                \
                }                                                                 \
            }                                                                     \
        }                                                                         \
        CSMILE_UNROLL for (int p = 0; p < (P); ++p)                               \
            CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                          \
                *(VTU*)(out_row + (out_x + p) * n_out + v * (VW)) = acc[p][v];    \
    }

/* One output row: blocks of PX pixels, then of PX_TAIL, then single pixels.
 * Each block's PX * NV accumulators stay in registers. */
#define CSMILE_DEFINE_FORWARD_ROW(NAME, VT, VTU, VW, NV, PX, PX_TAIL)             \
CSMILE_INLINE void NAME(                                                          \
    const float* in_row, csmile_index in_row_stride, csmile_index n_channels,     \
    csmile_index kernel_size, const float* weights, const float* bias,            \
    float* out_row, csmile_index out_width)                                       \
{                                                                                 \
    const csmile_index n_out = (VW) * (NV);                                       \
    const csmile_index n_row_taps = kernel_size * n_channels;                     \
    csmile_index out_x = 0;                                                       \
    CSMILE_FORWARD_PIXELS(VT, VTU, VW, NV, PX)                                    \
    CSMILE_FORWARD_PIXELS(VT, VTU, VW, NV, PX_TAIL)                               \
    CSMILE_FORWARD_PIXELS(VT, VTU, VW, NV, 1)                                     \
}

/* PX * NV accumulators plus NV weights fit the 32 vector registers of
 * AVX-512. PX divides the widths of the usual 64, 32 and 16 pixel layers:
 * pixels left over for the tail blocks ran at about half speed. */
CSMILE_DEFINE_FORWARD_ROW(csmile_forward_row_8, csmile_v8, csmile_v8u, 8, 1, 16, 4)
CSMILE_DEFINE_FORWARD_ROW(csmile_forward_row_16, csmile_v16, csmile_v16u, 16, 1, 8, 4)
CSMILE_DEFINE_FORWARD_ROW(csmile_forward_row_32, csmile_v16, csmile_v16u, 16, 2, 8, 4)
CSMILE_DEFINE_FORWARD_ROW(csmile_forward_row_64, csmile_v16, csmile_v16u, 16, 4, 4, 2)

static inline int csmile_simd_supports(csmile_index n_out)
{
    return n_out == 8 || n_out == 16 || n_out == 32 || n_out == 64;
}

/* Compute output rows [row_start, row_stop) of the flattened (sample, y)
 * row index. n_out must satisfy csmile_simd_supports. */
CSMILE_CLONES
void csmile_forward_rows_f32(
    const float* padded, csmile_index padded_height, csmile_index padded_width,
    csmile_index n_channels, csmile_index kernel_size, const float* weights,
    const float* bias, csmile_index n_out, float* out, csmile_index out_height,
    csmile_index out_width, csmile_index row_start, csmile_index row_stop)
{
    const csmile_index in_row_stride = padded_width * n_channels;
    for (csmile_index row = row_start; row < row_stop; ++row) {
        const csmile_index sample = row / out_height;
        const csmile_index out_y = row % out_height;
        const float* in_row = padded + (sample * padded_height + out_y) * in_row_stride;
        float* out_row = out + row * out_width * n_out;
        switch (n_out) {
        case 8:
            csmile_forward_row_8(in_row, in_row_stride, n_channels, kernel_size,
                                 weights, bias, out_row, out_width);
            break;
        case 16:
            csmile_forward_row_16(in_row, in_row_stride, n_channels, kernel_size,
                                  weights, bias, out_row, out_width);
            break;
        case 32:
            csmile_forward_row_32(in_row, in_row_stride, n_channels, kernel_size,
                                  weights, bias, out_row, out_width);
            break;
        default:
            csmile_forward_row_64(in_row, in_row_stride, n_channels, kernel_size,
                                  weights, bias, out_row, out_width);
            break;
        }
    }
}

/* ------------------------------------------------------------------------
 * Weight gradient: grad_weights[dy, dx, c, :] += sum over (y, x) of
 * padded[y + dy, x + dx, c] * grad_output[y, x, :], for one sample.
 * A block of JB consecutive taps t = (dy, dx, c) in weights order reads
 * padded at offsets[b] from the pixel's (y, x) corner. The block sums one
 * sample's pixels in JB * NV registers, reusing each grad_output load JB
 * times, and then adds to the caller's partial sums.
 * ------------------------------------------------------------------------ */

#define CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(NAME, VT, VTU, VW, NV, JB)               \
CSMILE_INLINE void NAME(                                                          \
    const float* in_sample, const csmile_index* offsets, csmile_index in_row_stride, \
    csmile_index n_channels, const float* grad_sample, csmile_index out_height,   \
    csmile_index out_width, float* partial)                                       \
{                                                                                 \
    const csmile_index n_out = (VW) * (NV);                                       \
    csmile_index offset[JB];                                                      \
    VT acc[JB][NV];                                                               \
    CSMILE_UNROLL for (int b = 0; b < (JB); ++b) {                                \
        offset[b] = offsets[b];                                                   \
        CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                              \
            acc[b][v] = (VT){0};                                                  \
    }                                                                             \
    for (csmile_index y = 0; y < out_height; ++y) {                               \
        const float* x_row = in_sample + y * in_row_stride;                       \
        const float* g_row = grad_sample + y * out_width * n_out;                 \
        for (csmile_index x = 0; x < out_width; ++x) {                            \
            const float* corner = x_row + x * n_channels;                         \
            VT g[NV];                                                             \
            CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                          \
                g[v] = *(const VTU*)(g_row + x * n_out + v * (VW));               \
            CSMILE_UNROLL for (int b = 0; b < (JB); ++b) {                        \
                const float value = corner[offset[b]];                            \
                CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                      \
                    acc[b][v] += value * g[v];                                    \
            }                                                                     \
        }                                                                         \
    }                                                                             \
    CSMILE_UNROLL for (int b = 0; b < (JB); ++b)                                  \
        CSMILE_UNROLL for (int v = 0; v < (NV); ++v)                              \
            *(VTU*)(partial + b * n_out + v * (VW)) += acc[b][v];                 \
}

#define CSMILE_DEFINE_GRAD_WEIGHTS_BLOCKS(PREFIX, VT, VTU, VW, NV)                \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_1, VT, VTU, VW, NV, 1)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_2, VT, VTU, VW, NV, 2)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_3, VT, VTU, VW, NV, 3)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_4, VT, VTU, VW, NV, 4)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_5, VT, VTU, VW, NV, 5)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_6, VT, VTU, VW, NV, 6)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_7, VT, VTU, VW, NV, 7)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_8, VT, VTU, VW, NV, 8)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_9, VT, VTU, VW, NV, 9)              \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_10, VT, VTU, VW, NV, 10)            \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_11, VT, VTU, VW, NV, 11)            \
    CSMILE_DEFINE_GRAD_WEIGHTS_BLOCK(PREFIX##_12, VT, VTU, VW, NV, 12)

CSMILE_DEFINE_GRAD_WEIGHTS_BLOCKS(csmile_grad_weights_8, csmile_v8, csmile_v8u, 8, 1)
CSMILE_DEFINE_GRAD_WEIGHTS_BLOCKS(csmile_grad_weights_16, csmile_v16, csmile_v16u, 16, 1)
CSMILE_DEFINE_GRAD_WEIGHTS_BLOCKS(csmile_grad_weights_32, csmile_v16, csmile_v16u, 16, 2)
CSMILE_DEFINE_GRAD_WEIGHTS_BLOCKS(csmile_grad_weights_64, csmile_v16, csmile_v16u, 16, 4)

#define CSMILE_GRAD_WEIGHTS_SWITCH(PREFIX, SIZE, ARGS)                            \
    switch (SIZE) {                                                               \
    case 1: PREFIX##_1 ARGS; break;                                               \
    case 2: PREFIX##_2 ARGS; break;                                               \
    case 3: PREFIX##_3 ARGS; break;                                               \
    case 4: PREFIX##_4 ARGS; break;                                               \
    case 5: PREFIX##_5 ARGS; break;                                               \
    case 6: PREFIX##_6 ARGS; break;                                               \
    case 7: PREFIX##_7 ARGS; break;                                               \
    case 8: PREFIX##_8 ARGS; break;                                               \
    case 9: PREFIX##_9 ARGS; break;                                               \
    case 10: PREFIX##_10 ARGS; break;                                             \
    case 11: PREFIX##_11 ARGS; break;                                             \
    default: PREFIX##_12 ARGS; break;                                             \
    }

/* Add the weight and bias gradients of samples [sample_start, sample_stop)
 * to partial, which contains kernel_size^2 * n_channels * n_out weight terms
 * followed by n_out bias terms. n_out must satisfy csmile_simd_supports. */
CSMILE_CLONES
void csmile_grad_weights_f32(
    const float* padded, csmile_index padded_height, csmile_index padded_width,
    csmile_index n_channels, csmile_index kernel_size, const float* grad_output,
    csmile_index n_out, csmile_index out_height, csmile_index out_width,
    csmile_index sample_start, csmile_index sample_stop, float* partial)
{
    const csmile_index in_row_stride = padded_width * n_channels;
    const csmile_index n_row_taps = kernel_size * n_channels;
    const csmile_index n_taps = kernel_size * n_row_taps;
    const csmile_index n_pixels = out_height * out_width;
    /* At most block_size * NV accumulators plus NV gradient values must fit
     * the 32 vector registers of AVX-512. */
    const csmile_index block_size = n_out <= 16 ? 12 : (n_out == 32 ? 8 : 6);
    float* bias_partial = partial + n_taps * n_out;
    csmile_index offsets[12];

    for (csmile_index sample = sample_start; sample < sample_stop; ++sample) {
        const float* in_sample = padded + sample * padded_height * in_row_stride;
        const float* grad_sample = grad_output + sample * n_pixels * n_out;

        for (csmile_index tap = 0; tap < n_taps; tap += block_size) {
            const csmile_index block = n_taps - tap < block_size ? n_taps - tap : block_size;
            float* target = partial + tap * n_out;
            for (csmile_index b = 0; b < block; ++b)
                offsets[b] = ((tap + b) / n_row_taps) * in_row_stride + (tap + b) % n_row_taps;
            switch (n_out) {
            case 8:
                CSMILE_GRAD_WEIGHTS_SWITCH(csmile_grad_weights_8, block,
                    (in_sample, offsets, in_row_stride, n_channels, grad_sample,
                     out_height, out_width, target))
                break;
            case 16:
                CSMILE_GRAD_WEIGHTS_SWITCH(csmile_grad_weights_16, block,
                    (in_sample, offsets, in_row_stride, n_channels, grad_sample,
                     out_height, out_width, target))
                break;
            case 32:
                CSMILE_GRAD_WEIGHTS_SWITCH(csmile_grad_weights_32, block,
                    (in_sample, offsets, in_row_stride, n_channels, grad_sample,
                     out_height, out_width, target))
                break;
            default:
                CSMILE_GRAD_WEIGHTS_SWITCH(csmile_grad_weights_64, block,
                    (in_sample, offsets, in_row_stride, n_channels, grad_sample,
                     out_height, out_width, target))
                break;
            }
        }

        /* Bias terms, summed per sample in 8-wide lanes. */
        for (csmile_index lane = 0; lane < n_out; lane += 8) {
            csmile_v8 total = (csmile_v8){0};
            for (csmile_index pixel = 0; pixel < n_pixels; ++pixel)
                total += *(const csmile_v8u*)(grad_sample + pixel * n_out + lane);
            *(csmile_v8u*)(bias_partial + lane) += total;
        }
    }
}

/* ------------------------------------------------------------------------
 * Zero padding: copy samples [sample_start, sample_stop) of x into padded,
 * with pad_top/pad_bottom rows and pad_left/pad_right columns of zeros.
 * ------------------------------------------------------------------------ */
static void csmile_pad_f32(
    const float* x, csmile_index height, csmile_index width, csmile_index n_channels,
    csmile_index pad_top, csmile_index pad_bottom, csmile_index pad_left,
    csmile_index pad_right, float* padded, csmile_index sample_start,
    csmile_index sample_stop)
{
    const csmile_index padded_width = width + pad_left + pad_right;
    const csmile_index padded_height = height + pad_top + pad_bottom;
    const csmile_index padded_row = padded_width * n_channels;
    const csmile_index row = width * n_channels;

    for (csmile_index sample = sample_start; sample < sample_stop; ++sample) {
        float* target = padded + sample * padded_height * padded_row;
        const float* source = x + sample * height * row;
        memset(target, 0, (size_t)(pad_top * padded_row) * sizeof(float));
        target += pad_top * padded_row;
        for (csmile_index y = 0; y < height; ++y) {
            memset(target, 0, (size_t)(pad_left * n_channels) * sizeof(float));
            memcpy(target + pad_left * n_channels, source, (size_t)row * sizeof(float));
            memset(target + pad_left * n_channels + row, 0,
                   (size_t)(pad_right * n_channels) * sizeof(float));
            target += padded_row;
            source += row;
        }
        memset(target, 0, (size_t)(pad_bottom * padded_row) * sizeof(float));
    }
}

#endif
