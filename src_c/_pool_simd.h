/* float32 2x2 max pooling with stride 2 for channels-last data whose
 * n_channels is a multiple of 8, the shape of every pool in the usual
 * networks. Used by _pool.pyx; other shapes keep the generic Cython loop.
 *
 * Same contract as the generic loop: argmax stores y * width + x within
 * the sample, and a later value replaces the running maximum only when it
 * is strictly greater, so ties and a leading NaN keep the first position.
 * The fixed 8-channel inner loop lets the compiler turn the compares and
 * selects into vector instructions. The entry point is compiled for
 * AVX-512, AVX2 and baseline x86-64 through target_clones, and the loader
 * picks one at run time.
 */
#ifndef CSMILE_POOL_SIMD_H
#define CSMILE_POOL_SIMD_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CSMILE_POOL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CSMILE_POOL_CLONES
#endif

/* Pool output rows [row_start, row_stop) of the flattened (sample, out_y)
 * index, with out_height = height / 2 and out_width = width / 2 (rounded
 * down). n_channels must be a multiple of 8. */
CSMILE_POOL_CLONES
void csmile_maxpool2x2_rows_f32(
    const float* restrict x, ptrdiff_t height, ptrdiff_t width, ptrdiff_t n_channels,
    float* restrict out, int* restrict argmax, ptrdiff_t out_height,
    ptrdiff_t out_width, ptrdiff_t row_start, ptrdiff_t row_stop)
{
    const ptrdiff_t row_stride = width * n_channels;
    for (ptrdiff_t row = row_start; row < row_stop; ++row) {
        const ptrdiff_t sample = row / out_height;
        const ptrdiff_t out_y = row % out_height;
        const float* restrict top_row = x + (sample * height + 2 * out_y) * row_stride;
        float* restrict out_pixel = out + row * out_width * n_channels;
        int* restrict argmax_pixel = argmax + row * out_width * n_channels;

        for (ptrdiff_t out_x = 0; out_x < out_width; ++out_x) {
            const int base = (int)(2 * out_y * width + 2 * out_x);
            const float* top_left = top_row + 2 * out_x * n_channels;
            const float* top_right = top_left + n_channels;
            const float* bottom_left = top_left + row_stride;
            const float* bottom_right = bottom_left + n_channels;

            for (ptrdiff_t lane = 0; lane < n_channels; lane += 8) {
#if defined(__GNUC__)
#pragma GCC unroll 8
#endif
                for (int c = 0; c < 8; ++c) {
                    float best = top_left[lane + c];
                    int best_index = base;
                    float value = top_right[lane + c];
                    best_index = value > best ? base + 1 : best_index;
                    best = value > best ? value : best;
                    value = bottom_left[lane + c];
                    best_index = value > best ? base + (int)width : best_index;
                    best = value > best ? value : best;
                    value = bottom_right[lane + c];
                    best_index = value > best ? base + (int)width + 1 : best_index;
                    best = value > best ? value : best;
                    out_pixel[lane + c] = best;
                    argmax_pixel[lane + c] = best_index;
                }
            }
            out_pixel += n_channels;
            argmax_pixel += n_channels;
        }
    }
}

#endif
