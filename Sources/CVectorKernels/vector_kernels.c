#include "vector_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

int vk_cpu_has_avx512(void) {
    // compiler-rt's and libgcc's CPU model checks XCR0 (the OS saves the zmm and mask
    // state) before it reports avx512f.
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

// The row for a kernel size known at compile time (`K`), so each tap's offsets are
// constants and the kw loop unrolls completely; called through the dispatcher below.
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void row(const float *top, ptrdiff_t row_stride, const float *w, const int K, int stride,
                       int c, int columns, float *y) {
    const ptrdiff_t sc = (ptrdiff_t)stride * c;
    int cb = 0;
    for (; cb + 16 <= c; cb += 16) {
        int ow = 0;
        for (; ow + 4 <= columns; ow += 4) {
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            const float *xr = top + ow * sc + cb;
            const float *wr = w + cb;
#pragma clang loop unroll(disable)
            for (int kh = 0; kh < K; kh++, xr += row_stride, wr += K * c) {
                for (int kw = 0; kw < K; kw++) {
                    const __m512 wv = _mm512_loadu_ps(wr + kw * c);
                    const float *q = xr + kw * c;
                    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q), wv, a0);
                    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + sc), wv, a1);
                    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + 2 * sc), wv, a2);
                    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + 3 * sc), wv, a3);
                }
            }
            float *o = y + ow * c + cb;
            _mm512_storeu_ps(o, a0);
            _mm512_storeu_ps(o + c, a1);
            _mm512_storeu_ps(o + 2 * c, a2);
            _mm512_storeu_ps(o + 3 * c, a3);
        }
        for (; ow < columns; ow++) {
            __m512 a = _mm512_setzero_ps();
            const float *xr = top + ow * sc + cb;
            const float *wr = w + cb;
#pragma clang loop unroll(disable)
            for (int kh = 0; kh < K; kh++, xr += row_stride, wr += K * c)
                for (int kw = 0; kw < K; kw++) a = _mm512_fmadd_ps(_mm512_loadu_ps(xr + kw * c), _mm512_loadu_ps(wr + kw * c), a);
            _mm512_storeu_ps(y + ow * c + cb, a);
        }
    }
    if (cb < c) {  // c % 16 == 8: one 8-channel block in 256 bits
        int ow = 0;
        for (; ow + 4 <= columns; ow += 4) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            const float *xr = top + ow * sc + cb;
            const float *wr = w + cb;
#pragma clang loop unroll(disable)
            for (int kh = 0; kh < K; kh++, xr += row_stride, wr += K * c) {
                for (int kw = 0; kw < K; kw++) {
                    const __m256 wv = _mm256_loadu_ps(wr + kw * c);
                    const float *q = xr + kw * c;
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q), wv, a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + sc), wv, a1);
                    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 2 * sc), wv, a2);
                    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 3 * sc), wv, a3);
                }
            }
            float *o = y + ow * c + cb;
            _mm256_storeu_ps(o, a0);
            _mm256_storeu_ps(o + c, a1);
            _mm256_storeu_ps(o + 2 * c, a2);
            _mm256_storeu_ps(o + 3 * c, a3);
        }
        for (; ow < columns; ow++) {
            __m256 a = _mm256_setzero_ps();
            const float *xr = top + ow * sc + cb;
            const float *wr = w + cb;
#pragma clang loop unroll(disable)
            for (int kh = 0; kh < K; kh++, xr += row_stride, wr += K * c)
                for (int kw = 0; kw < K; kw++) a = _mm256_fmadd_ps(_mm256_loadu_ps(xr + kw * c), _mm256_loadu_ps(wr + kw * c), a);
            _mm256_storeu_ps(y + ow * c + cb, a);
        }
    }
}

__attribute__((target("avx512f,avx2,fma")))
void vk_depthwise_row_avx512(const float *top, ptrdiff_t row_stride, const float *w, int k, int stride,
                             int c, int columns, float *y) {
    switch (k) {
    case 3: row(top, row_stride, w, 3, stride, c, columns, y); break;
    case 5: row(top, row_stride, w, 5, stride, c, columns, y); break;
    case 7: row(top, row_stride, w, 7, stride, c, columns, y); break;
    default: row(top, row_stride, w, k, stride, c, columns, y); break;
    }
}

// exp(-v) + 1, the sigmoid's denominator, with NASCore's FastExp.expNegated8 (Activation.swift)
// operation for operation: the clamps, Cody-Waite reduction, the degree-4 polynomial by
// Estrin's scheme and 2^n from the exponent bits. Every step is one IEEE operation
// (fused where the Swift code fuses), so each lane's result is bit-identical.
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline __m512 exp_neg_plus1_16(__m512 v) {
    __m512 x = _mm512_min_ps(_mm512_set1_ps(87.33f), v);  // v > 87.33 ? 87.33 : v (NaN kept)
    x = _mm512_max_ps(_mm512_set1_ps(-88.37f), x);          // x < -88.37 ? -88.37 : x
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(-1.44269504088896341f), magic);
    const __m512 n = _mm512_sub_ps(t, magic);
    __m512 q = _mm512_fmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    q = _mm512_fmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), q);
    const __m512 q2 = _mm512_mul_ps(q, q), q4 = _mm512_mul_ps(q2, q2);
    const __m512 p01 = _mm512_fmadd_ps(q, _mm512_set1_ps(-1.6666518152e-1f), _mm512_set1_ps(4.9999988079e-1f));
    const __m512 p23 = _mm512_fmadd_ps(q, _mm512_set1_ps(-8.3689158782e-3f), _mm512_set1_ps(4.1669532657e-2f));
    const __m512 p = _mm512_fmadd_ps(q4, _mm512_set1_ps(1.3751407387e-3f), _mm512_fmadd_ps(q2, p23, p01));
    const __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, q2, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(q), _mm512_set1_epi32((int)0x80000000u)))), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000)),
                                                            _mm512_set1_epi32(127)), 23);
    return _mm512_fmadd_ps(e, _mm512_castsi512_ps(bits), _mm512_set1_ps(1.0f));
}

__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline __m512 swish16(__m512 v) { return _mm512_div_ps(v, exp_neg_plus1_16(v)); }

// dy * swish'(y) as SwishKernel.gradient8: s = 1 / (exp(-y) + 1), dy * (s * (1 + y * (1 - s))),
// each step one rounded operation (Swift does not contract them into fused multiply-adds).
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline __m512 swish_gradient16(__m512 y, __m512 dy) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 sg = _mm512_div_ps(one, exp_neg_plus1_16(y));
    return _mm512_mul_ps(dy, _mm512_mul_ps(sg, _mm512_add_ps(one, _mm512_mul_ps(y, _mm512_sub_ps(one, sg)))));
}

// The same on 8 lanes, for an 8-channel tail.
__attribute__((target("avx2,fma"), always_inline))
static inline __m256 exp_neg_plus1_8(__m256 v) {
    __m256 x = _mm256_min_ps(_mm256_set1_ps(87.33f), v);  // v > 87.33 ? 87.33 : v (NaN kept)
    x = _mm256_max_ps(_mm256_set1_ps(-88.37f), x);          // x < -88.37 ? -88.37 : x
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(-1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 q = _mm256_fmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    q = _mm256_fmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), q);
    const __m256 q2 = _mm256_mul_ps(q, q), q4 = _mm256_mul_ps(q2, q2);
    const __m256 p01 = _mm256_fmadd_ps(q, _mm256_set1_ps(-1.6666518152e-1f), _mm256_set1_ps(4.9999988079e-1f));
    const __m256 p23 = _mm256_fmadd_ps(q, _mm256_set1_ps(-8.3689158782e-3f), _mm256_set1_ps(4.1669532657e-2f));
    const __m256 p = _mm256_fmadd_ps(q4, _mm256_set1_ps(1.3751407387e-3f), _mm256_fmadd_ps(q2, p23, p01));
    const __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, q2, _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(q), _mm256_set1_epi32((int)0x80000000u)))), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000)),
                                                            _mm256_set1_epi32(127)), 23);
    return _mm256_fmadd_ps(e, _mm256_castsi256_ps(bits), _mm256_set1_ps(1.0f));
}

__attribute__((target("avx2,fma"), always_inline))
static inline __m256 swish8(__m256 v) { return _mm256_div_ps(v, exp_neg_plus1_8(v)); }

// dy * swish'(y) as SwishKernel.gradient8: s = 1 / (exp(-y) + 1), dy * (s * (1 + y * (1 - s))),
// each step one rounded operation (Swift does not contract them into fused multiply-adds).
__attribute__((target("avx2,fma"), always_inline))
static inline __m256 swish_gradient8(__m256 y, __m256 dy) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 sg = _mm256_div_ps(one, exp_neg_plus1_8(y));
    return _mm256_mul_ps(dy, _mm256_mul_ps(sg, _mm256_add_ps(one, _mm256_mul_ps(y, _mm256_sub_ps(one, sg)))));
}

__attribute__((target("avx512f,avx2,fma")))
void vk_affine_swish_rows_avx512(const float *x, float *y, ptrdiff_t rows, int c, const float *scale,
                                 const float *bias) {
    const int full = c / 16 * 16, rest = (c - full) % 8;  // 16-lane blocks, an 8-lane block, a masked rest
    const __mmask16 tail = (__mmask16)((1u << rest) - 1);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c;
        int ch = 0;
        for (; ch < full; ch += 16) {
            const __m512 v = _mm512_fmadd_ps(_mm512_loadu_ps(xr + ch), _mm512_loadu_ps(scale + ch), _mm512_loadu_ps(bias + ch));
            _mm512_storeu_ps(yr + ch, swish16(v));
        }
        if (c - ch >= 8) {
            const __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(xr + ch), _mm256_loadu_ps(scale + ch), _mm256_loadu_ps(bias + ch));
            _mm256_storeu_ps(yr + ch, swish8(v));
            ch += 8;
        }
        if (tail) {
            const __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xr + ch), _mm512_maskz_loadu_ps(tail, scale + ch),
                                             _mm512_maskz_loadu_ps(tail, bias + ch));
            _mm512_mask_storeu_ps(yr + ch, tail, swish16(v));
        }
    }
}


__attribute__((target("avx512f,avx2,fma")))
void vk_swish_gradient_affine_rows_avx512(const float *x, float *dy, ptrdiff_t rows, int c, const float *scale,
                                          const float *shift) {
    const int full = c / 16 * 16, rest = (c - full) % 8;
    const __mmask16 tail = (__mmask16)((1u << rest) - 1);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *gr = dy + r * c;
        int ch = 0;
        for (; ch < full; ch += 16) {
            const __m512 y = _mm512_fmadd_ps(_mm512_loadu_ps(xr + ch), _mm512_loadu_ps(scale + ch), _mm512_loadu_ps(shift + ch));
            _mm512_storeu_ps(gr + ch, swish_gradient16(y, _mm512_loadu_ps(gr + ch)));
        }
        if (c - ch >= 8) {
            const __m256 y = _mm256_fmadd_ps(_mm256_loadu_ps(xr + ch), _mm256_loadu_ps(scale + ch), _mm256_loadu_ps(shift + ch));
            _mm256_storeu_ps(gr + ch, swish_gradient8(y, _mm256_loadu_ps(gr + ch)));
            ch += 8;
        }
        if (tail) {
            const __m512 y = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xr + ch), _mm512_maskz_loadu_ps(tail, scale + ch),
                                             _mm512_maskz_loadu_ps(tail, shift + ch));
            _mm512_mask_storeu_ps(gr + ch, tail, swish_gradient16(y, _mm512_maskz_loadu_ps(tail, gr + ch)));
        }
    }
}

// The weight gradient of one output row for a compile-time kernel size `K`: per channel
// block of `W` lanes and kernel row kh, K accumulators over the row's columns.
#define WEIGHT_GRAD_ROW(NAME, TARGET, VEC, W, LOAD, STORE, FMA, ZERO, ADD)                                   \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(                                 \
        const float *top, ptrdiff_t row_stride, const float *dy, const int K, int stride, int c, int cb,      \
        int columns, float *dw) {                                                                            \
        const ptrdiff_t sc = (ptrdiff_t)stride * c;                                                          \
        for (int kh = 0; kh < K; kh++) {                                                                     \
            VEC a[7];                                                                                        \
            for (int kw = 0; kw < K; kw++) a[kw] = ZERO();                                                   \
            const float *xr = top + kh * row_stride + cb;                                                    \
            for (int ow = 0; ow < columns; ow++, xr += sc) {                                                 \
                const VEC g = LOAD(dy + ow * c + cb);                                                        \
                for (int kw = 0; kw < K; kw++) a[kw] = FMA(LOAD(xr + kw * c), g, a[kw]);                     \
            }                                                                                                \
            float *d = dw + kh * K * c + cb;                                                                 \
            for (int kw = 0; kw < K; kw++) STORE(d + kw * c, ADD(LOAD(d + kw * c), a[kw]));                  \
        }                                                                                                    \
    }

WEIGHT_GRAD_ROW(wgrad8, "avx2,fma", __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_setzero_ps,
                _mm256_add_ps)
WEIGHT_GRAD_ROW(wgrad16, "avx512f,avx2,fma", __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps,
                _mm512_setzero_ps, _mm512_add_ps)

#define WEIGHT_GRAD_K(FN, K) for (; cb + W <= c; cb += W) FN(top, row_stride, dy, K, stride, c, cb, columns, dw)

__attribute__((target("avx2,fma")))
void vk_depthwise_weight_grad_row_avx2(const float *top, ptrdiff_t row_stride, const float *dy, int k, int stride,
                                       int c, int columns, float *dw) {
    enum { W = 8 };
    int cb = 0;
    switch (k) {
    case 3: WEIGHT_GRAD_K(wgrad8, 3); break;
    case 5: WEIGHT_GRAD_K(wgrad8, 5); break;
    case 7: WEIGHT_GRAD_K(wgrad8, 7); break;
    default: WEIGHT_GRAD_K(wgrad8, k); break;
    }
}

__attribute__((target("avx512f,avx2,fma")))
void vk_depthwise_weight_grad_row_avx512(const float *top, ptrdiff_t row_stride, const float *dy, int k, int stride,
                                         int c, int columns, float *dw) {
    int cb = 0;
    {
        enum { W = 16 };
        switch (k) {
        case 3: WEIGHT_GRAD_K(wgrad16, 3); break;
        case 5: WEIGHT_GRAD_K(wgrad16, 5); break;
        case 7: WEIGHT_GRAD_K(wgrad16, 7); break;
        default: WEIGHT_GRAD_K(wgrad16, k); break;
        }
    }
    if (cb < c) {  // an 8-channel tail
        enum { W = 8 };
        switch (k) {
        case 3: WEIGHT_GRAD_K(wgrad8, 3); break;
        case 5: WEIGHT_GRAD_K(wgrad8, 5); break;
        case 7: WEIGHT_GRAD_K(wgrad8, 7); break;
        default: WEIGHT_GRAD_K(wgrad8, k); break;
        }
    }
}

#else  // not x86-64: no AVX-512 path; NASCore never calls the kernel.

int vk_cpu_has_avx512(void) { return 0; }

void vk_depthwise_row_avx512(const float *top, ptrdiff_t row_stride, const float *w, int k, int stride,
                             int c, int columns, float *y) {
    (void)top; (void)row_stride; (void)w; (void)k; (void)stride; (void)c; (void)columns; (void)y;
    __builtin_trap();
}

void vk_affine_swish_rows_avx512(const float *x, float *y, ptrdiff_t rows, int c, const float *scale,
                                 const float *bias) {
    (void)x; (void)y; (void)rows; (void)c; (void)scale; (void)bias;
    __builtin_trap();
}

void vk_swish_gradient_affine_rows_avx512(const float *x, float *dy, ptrdiff_t rows, int c, const float *scale,
                                          const float *shift) {
    (void)x; (void)dy; (void)rows; (void)c; (void)scale; (void)shift;
    __builtin_trap();
}

void vk_depthwise_weight_grad_row_avx2(const float *top, ptrdiff_t row_stride, const float *dy, int k, int stride,
                                       int c, int columns, float *dw) {
    (void)top; (void)row_stride; (void)dy; (void)k; (void)stride; (void)c; (void)columns; (void)dw;
    __builtin_trap();
}

void vk_depthwise_weight_grad_row_avx512(const float *top, ptrdiff_t row_stride, const float *dy, int k, int stride,
                                         int c, int columns, float *dw) {
    (void)top; (void)row_stride; (void)dy; (void)k; (void)stride; (void)c; (void)columns; (void)dw;
    __builtin_trap();
}
#endif
