// Vector loops NASCore runs in C: AVX-512 versions of its hottest loops, and loops that
// need a number of vector registers known only at run time. Swift compiles the kernels
// for one target (x86-64-v3, AVX2) and has no per-function target attribute; these C
// functions carry their own (`target("avx512f")`, `target("avx2,fma")`), and NASCore
// calls the AVX-512 ones only when `vk_cpu_has_avx512()` says the CPU and the OS support
// them (`VectorISA`).
#ifndef VECTOR_KERNELS_H
#define VECTOR_KERNELS_H

#include <stddef.h>

/// 1 when the CPU has AVX-512F and the OS saves its registers, else 0.
int vk_cpu_has_avx512(void);

/// One output row of a depthwise k x k convolution over a zero-bordered input, all
/// channels (`c % 8 == 0`): `y[ow, ch] = sum_{kh,kw} top[kh*row_stride + (ow*stride + kw)*c + ch] * w[(kh*k + kw)*c + ch]`
/// for `ow < columns`. `w` is the packed weight `[k*k, c]`. 16 channels per 512-bit
/// vector (an 8-channel tail in 256 bits), four output pixels per step.
void vk_depthwise_row_avx512(const float *top, ptrdiff_t row_stride, const float *w, int k, int stride,
                             int c, int columns, float *y);

/// One output row's share of a depthwise convolution's weight gradient, all channels
/// (`c % 8 == 0`): `dw[(kh*k + kw)*c + ch] += sum_{ow < columns} top[kh*row_stride + (ow*stride + kw)*c + ch] * dy[ow*c + ch]`,
/// with `top` the zero-bordered input row where output row's tap (0, 0) reads. Per
/// channel block and kernel row, `k` accumulators stay in registers over the row (which
/// is why this is C: Swift cannot keep a run-time number of vectors in registers).
/// `_avx2` runs on every CPU the kernels support; `_avx512` only where VectorISA allows.
void vk_depthwise_weight_grad_row_avx2(const float *top, ptrdiff_t row_stride, const float *dy, int k, int stride,
                                       int c, int columns, float *dw);
void vk_depthwise_weight_grad_row_avx512(const float *top, ptrdiff_t row_stride, const float *dy, int k, int stride,
                                         int c, int columns, float *dw);

/// Row `ih` of a stride-2 depthwise convolution's input gradient, all channels (`c % 8 ==
/// 0`), gathered: `dx[iw, ch] = sum dyb[((ih + p - kh)/2)*row_stride + ((iw + p - kw)/2)*c + ch] * w[(kh*k + kw)*c + ch]`
/// over the taps with `ih + p - kh` and `iw + p - kw` even (p = k / 2), for `iw < width`.
/// `dyb` is dy's first real pixel in a copy with a zero border of (p + 1) / 2 pixels on
/// every side; `w` the packed (unflipped) weight `[k*k, c]`. Same sums, same order in both.
void vk_depthwise_dx_s2_row_avx2(const float *dyb, ptrdiff_t row_stride, const float *w, int k, int ih, int c,
                                 int width, float *dx);
void vk_depthwise_dx_s2_row_avx512(const float *dyb, ptrdiff_t row_stride, const float *w, int k, int ih, int c,
                                   int width, float *dx);

/// Row-major single-precision GEMMs with 9 <= n <= 24 columns of C, beta 0 or 1 (AVX-512F
/// and VL): `C[m x n] = beta C + A[m x k] B[k x n]` (`_nn`) and `C = beta C + A^T B` with A
/// `[k x m]`, B `[k x n]` (`_tn`); `_nn_narrow_avx2` is `_nn`'s AVX2 twin, the same bits.
/// NASCore's `Gemm` calls them for those shapes (`_tn` only where VectorISA is AVX-512).
void vk_sgemm_nn_narrow_avx512(int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                               float beta, float *c, ptrdiff_t ldc);
void vk_sgemm_tn_narrow_avx512(int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                               float beta, float *c, ptrdiff_t ldc);
void vk_sgemm_nn_narrow_avx2(int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                             float beta, float *c, ptrdiff_t ldc);

/// `y[r, ch] = swish(x[r, ch] * scale[ch] + bias[ch])` for `rows` rows of `c` floats (`y`
/// may alias `x`): NASCore's `ChannelAffine` with `SwishKernel`, the same operations in
/// the same order on 16 lanes (results equal to the last bit).
void vk_affine_swish_rows_avx512(const float *x, float *y, ptrdiff_t rows, int c, const float *scale,
                                 const float *bias);

/// `dy[r, ch] *= swish'(x[r, ch] * scale[ch] + shift[ch])` for `rows` rows of `c` floats:
/// BatchNorm's fused backward with `SwishKernel.gradient8`, bit-identical.
void vk_swish_gradient_affine_rows_avx512(const float *x, float *dy, ptrdiff_t rows, int c, const float *scale,
                                          const float *shift);

/// One output row of a dense convolution with few input channels (the stem's 3): for
/// `ow < columns` and `o < cout`,
/// `y[ow*cout + o] = sum_{kh<k, kw<k, i<cin} patch[kh*patch_stride + (ow*stride + kw)*cin + i] * w[((kh*k + kw)*cin + i)*cout_pad + o]`,
/// summed in that (kh, kw, i) order, one fused multiply-add per tap. `patch` holds the
/// `k` zero-bordered input rows the output row reads; `w` is the packed weight
/// `[k*k*cin, cout_pad]`, `cout_pad` = `cout` rounded up to 8 (its extra lanes are read,
/// never stored). Channels in groups of up to 24 (three 256-bit vectors), several output
/// pixels per step, each input value broadcast once per group.
void vk_small_conv_row_avx2(const float *patch, ptrdiff_t patch_stride, const float *w, int k, int cin, int stride,
                            int cout, int columns, float *y);

#endif
