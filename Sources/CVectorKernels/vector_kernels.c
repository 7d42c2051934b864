#include "vector_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

int vk_cpu_has_avx512(void) {
    // compiler-rt's and libgcc's CPU model checks XCR0 (the OS saves the zmm and mask
    // state) before it reports avx512f.
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

// One channel block of `W` lanes at `cb` across an output row, for a kernel size known at
// compile time (`K`), so each tap's offsets are constants and the kw loop unrolls
// completely; the kh loop stays rolled (unrolled too, clang spilled the accumulators).
// Four output pixels per step, then single pixels.
#define DEPTHWISE_ROW_BLOCK(NAME, TARGET, VEC, LOAD, STORE, FMA, ZERO)                                     \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(                               \
        const float *top, ptrdiff_t row_stride, const float *w, const int K, int stride, int c, int cb,   \
        int columns, float *y) {                                                                           \
        const ptrdiff_t sc = (ptrdiff_t)stride * c;                                                        \
        int ow = 0;                                                                                        \
        for (; ow + 4 <= columns; ow += 4) {                                                               \
            VEC a0 = ZERO(), a1 = a0, a2 = a0, a3 = a0;                                                    \
            const float *xr = top + ow * sc + cb;                                                          \
            const float *wr = w + cb;                                                                      \
            _Pragma("clang loop unroll(disable)")                                                          \
            for (int kh = 0; kh < K; kh++, xr += row_stride, wr += K * c) {                                \
                for (int kw = 0; kw < K; kw++) {                                                           \
                    const VEC wv = LOAD(wr + kw * c);                                                      \
                    const float *q = xr + kw * c;                                                          \
                    a0 = FMA(LOAD(q), wv, a0);                                                             \
                    a1 = FMA(LOAD(q + sc), wv, a1);                                                        \
                    a2 = FMA(LOAD(q + 2 * sc), wv, a2);                                                    \
                    a3 = FMA(LOAD(q + 3 * sc), wv, a3);                                                    \
                }                                                                                          \
            }                                                                                              \
            float *o = y + ow * c + cb;                                                                    \
            STORE(o, a0);                                                                                  \
            STORE(o + c, a1);                                                                              \
            STORE(o + 2 * c, a2);                                                                          \
            STORE(o + 3 * c, a3);                                                                          \
        }                                                                                                  \
        for (; ow < columns; ow++) {                                                                       \
            VEC a = ZERO();                                                                                \
            const float *xr = top + ow * sc + cb;                                                          \
            const float *wr = w + cb;                                                                      \
            _Pragma("clang loop unroll(disable)")                                                          \
            for (int kh = 0; kh < K; kh++, xr += row_stride, wr += K * c)                                  \
                for (int kw = 0; kw < K; kw++) a = FMA(LOAD(xr + kw * c), LOAD(wr + kw * c), a);           \
            STORE(y + ow * c + cb, a);                                                                     \
        }                                                                                                  \
    }

DEPTHWISE_ROW_BLOCK(row_block16, "avx512f,avx2,fma", __m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps,
                    _mm512_setzero_ps)
DEPTHWISE_ROW_BLOCK(row_block8, "avx2,fma", __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
                    _mm256_setzero_ps)

// Eight output pixels per step of a 16-channel block, for a kernel size and stride known at
// compile time: each kernel row's (8 - 1) * S + K input vectors are loaded once and serve every
// tap that reads them (the four-pixel step loads K x 4 inputs and K weights per kernel row for
// 4K multiply-adds; this one 7S + 2K for 8K). Each accumulator still sums its taps kh by kh,
// kw by kw, as the four-pixel step and the AVX2 loop do, so the bits are the same. Returns the
// first column left for the four-pixel and single-pixel steps. Registers: 8 accumulators,
// 7S + K inputs, a weight: at most 23 of the 32 (S = 1, K = 7).
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline int row_block16_eight(const float *top, ptrdiff_t row_stride, const float *w, const int K, const int S,
                                    int c, int cb, int columns, float *y) {
    const ptrdiff_t sc = (ptrdiff_t)S * c;
    int ow = 0;
    for (; ow + 8 <= columns; ow += 8) {
        __m512 a[8];
        _Pragma("clang loop unroll(full)") for (int p = 0; p < 8; p++) a[p] = _mm512_setzero_ps();
        const float *xr = top + ow * sc + cb;
        const float *wr = w + cb;
        _Pragma("clang loop unroll(disable)")
        for (int kh = 0; kh < K; kh++, xr += row_stride, wr += K * c) {
            __m512 x[7 * S + K];
            _Pragma("clang loop unroll(full)") for (int j = 0; j < 7 * S + K; j++) x[j] = _mm512_loadu_ps(xr + j * c);
            _Pragma("clang loop unroll(full)") for (int kw = 0; kw < K; kw++) {
                const __m512 wv = _mm512_loadu_ps(wr + kw * c);
                _Pragma("clang loop unroll(full)") for (int p = 0; p < 8; p++) a[p] = _mm512_fmadd_ps(x[p * S + kw], wv, a[p]);
            }
        }
        float *o = y + ow * c + cb;
        _Pragma("clang loop unroll(full)") for (int p = 0; p < 8; p++) _mm512_storeu_ps(o + p * c, a[p]);
    }
    return ow;
}

// The whole row: 16-channel blocks (with `eight`, a compile-time K of 3, 5 or 7: eight-pixel
// steps for stride 1), then (c % 16 == 8) one 8-channel block in 256 bits. At stride 2 the
// eight-pixel step measured slower on half the shapes (k5 and k7 on [64,64,144]: 100 -> 79-90,
// 157-161 -> 123-145 GFLOP/s) and level on the rest, so stride 2 keeps the four-pixel step.
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void row(const float *top, ptrdiff_t row_stride, const float *w, const int K, const int eight,
                       int stride, int c, int columns, float *y) {
    int cb = 0;
    for (; cb + 16 <= c; cb += 16) {
        int done = 0;
        if (eight) {
            if (stride == 1) done = row_block16_eight(top, row_stride, w, K, 1, c, cb, columns, y);
        }
        const ptrdiff_t skip = (ptrdiff_t)done * stride * c;
        row_block16(top + skip, row_stride, w, K, stride, c, cb, columns - done, y + (ptrdiff_t)done * c);
    }
    if (cb < c) row_block8(top, row_stride, w, K, stride, c, cb, columns, y);
}

__attribute__((target("avx512f,avx2,fma")))
void vk_depthwise_row_avx512(const float *top, ptrdiff_t row_stride, const float *w, int k, int stride,
                             int c, int columns, float *y) {
    switch (k) {
    case 3: row(top, row_stride, w, 3, 1, stride, c, columns, y); break;
    case 5: row(top, row_stride, w, 5, 1, stride, c, columns, y); break;
    case 7: row(top, row_stride, w, 7, 1, stride, c, columns, y); break;
    default: row(top, row_stride, w, k, 0, stride, c, columns, y); break;
    }
}

// exp(-v) + 1 (the sigmoid's denominator), swish(v) = v / that, and dy * swish'(y) on W
// lanes (P: the intrinsics' prefix, BITS: the vector width). exp is NASCore's
// FastExp.expNegated8 (Activation.swift) operation for operation: the clamps, Cody-Waite
// reduction, the degree-4 polynomial by Estrin's scheme and 2^n from the exponent bits; the
// gradient is SwishKernel.gradient8, s = 1 / (exp(-y) + 1), dy * (s * (1 + y * (1 - s))).
// Every step is one IEEE operation, fused exactly where the Swift code fuses (Swift does
// not contract a * b + c), so each lane's result is bit-identical to the Swift loops'.
#define SWISH_FUNCTIONS(W, TARGET, VEC, VECI, P, BITS)                                                          \
    __attribute__((target(TARGET), always_inline)) static inline VEC exp_neg_plus1_##W(VEC v) {                 \
        VEC x = P##min_ps(P##set1_ps(87.33f), v); /* v > 87.33 ? 87.33 : v (NaN kept) */                        \
        x = P##max_ps(P##set1_ps(-88.37f), x);    /* x < -88.37 ? -88.37 : x */                                 \
        const VEC magic = P##set1_ps(12582912.0f);                                                              \
        const VEC t = P##fmadd_ps(x, P##set1_ps(-1.44269504088896341f), magic);                                 \
        const VEC n = P##sub_ps(t, magic);                                                                      \
        VEC q = P##fmadd_ps(n, P##set1_ps(0.693359375f), x);                                                    \
        q = P##fmadd_ps(n, P##set1_ps(-2.12194440e-4f), q);                                                     \
        const VEC q2 = P##mul_ps(q, q), q4 = P##mul_ps(q2, q2);                                                 \
        const VEC p01 = P##fmadd_ps(q, P##set1_ps(-1.6666518152e-1f), P##set1_ps(4.9999988079e-1f));            \
        const VEC p23 = P##fmadd_ps(q, P##set1_ps(-8.3689158782e-3f), P##set1_ps(4.1669532657e-2f));            \
        const VEC p = P##fmadd_ps(q4, P##set1_ps(1.3751407387e-3f), P##fmadd_ps(q2, p23, p01));                 \
        const VEC minus_q = P##castsi##BITS##_ps(P##xor_si##BITS(P##castps_si##BITS(q),                         \
                                                                 P##set1_epi32((int)0x80000000u)));             \
        const VEC e = P##add_ps(P##fmadd_ps(p, q2, minus_q), P##set1_ps(1.0f));                                 \
        const VECI bits = P##slli_epi32(                                                                        \
            P##add_epi32(P##sub_epi32(P##castps_si##BITS(t), P##set1_epi32(0x4B400000)), P##set1_epi32(127)),   \
            23);                                                                                                \
        return P##fmadd_ps(e, P##castsi##BITS##_ps(bits), P##set1_ps(1.0f));                                    \
    }                                                                                                           \
    __attribute__((target(TARGET), always_inline)) static inline VEC swish##W(VEC v) {                          \
        return P##div_ps(v, exp_neg_plus1_##W(v));                                                              \
    }                                                                                                           \
    __attribute__((target(TARGET), always_inline)) static inline VEC swish_gradient##W(VEC y, VEC dy) {         \
        const VEC one = P##set1_ps(1.0f);                                                                       \
        const VEC sg = P##div_ps(one, exp_neg_plus1_##W(y));                                                    \
        return P##mul_ps(dy, P##mul_ps(sg, P##add_ps(one, P##mul_ps(y, P##sub_ps(one, sg)))));                 \
    }

SWISH_FUNCTIONS(16, "avx512f,avx2,fma", __m512, __m512i, _mm512_, 512)
SWISH_FUNCTIONS(8, "avx2,fma", __m256, __m256i, _mm256_, 256)

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

// The input gradient of one row `ih` of a stride-2 depthwise convolution, gathered: each dx
// pixel sums only the taps that reach an output (kh = ih + p mod 2, kw = iw + p mod 2; a
// quarter of the k x k on average), reading dy from a copy with a zero border of `B` =
// (p + 1) / 2 pixels (p = k / 2), so no tap is bounds-checked. `dyb` points at the copy's
// first real pixel, `row_stride` floats between its rows; `w` is packed [k][k][c]. Columns
// of each parity run four at a time (output columns b..b+3 of one parity read dy columns
// b+d..b+d+3: adjacent). Each output sums its taps kh by kh, kw by kw, ascending, at every
// width, so the AVX2 and AVX-512 versions give the same bits.
#define DX_S2_BLOCK(NAME, TARGET, VEC, LOAD, STORE, FMA, ZERO)                                                \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(                                  \
        const float *dyb, ptrdiff_t row_stride, const float *w, const int K, int ih, int c, int cb, int width, \
        float *dx) {                                                                                          \
        const int p = K / 2, kh0 = (ih + p) & 1;                                                              \
        for (int q = 0; q < 2; q++) {                                                                         \
            const int kw0 = (q + p) & 1, nb = (width - q + 1) / 2;                                            \
            int b = 0;                                                                                        \
            for (; b + 4 <= nb; b += 4) {                                                                     \
                VEC a0 = ZERO(), a1 = a0, a2 = a0, a3 = a0;                                                   \
                for (int kh = kh0; kh < K; kh += 2) {                                                         \
                    const float *r = dyb + (ptrdiff_t)((ih + p - kh) / 2) * row_stride + cb;                  \
                    for (int kw = kw0; kw < K; kw += 2) {                                                     \
                        const VEC wv = LOAD(w + (kh * K + kw) * c + cb);                                      \
                        const float *s = r + (ptrdiff_t)(b + (q + p - kw) / 2) * c;                           \
                        a0 = FMA(LOAD(s), wv, a0);                                                            \
                        a1 = FMA(LOAD(s + c), wv, a1);                                                        \
                        a2 = FMA(LOAD(s + 2 * c), wv, a2);                                                    \
                        a3 = FMA(LOAD(s + 3 * c), wv, a3);                                                    \
                    }                                                                                         \
                }                                                                                             \
                float *o = dx + (ptrdiff_t)(2 * b + q) * c + cb;                                              \
                STORE(o, a0);                                                                                 \
                STORE(o + 2 * c, a1);                                                                         \
                STORE(o + 4 * c, a2);                                                                         \
                STORE(o + 6 * c, a3);                                                                         \
            }                                                                                                 \
            for (; b < nb; b++) {                                                                             \
                VEC a = ZERO();                                                                               \
                for (int kh = kh0; kh < K; kh += 2) {                                                         \
                    const float *r = dyb + (ptrdiff_t)((ih + p - kh) / 2) * row_stride + cb;                  \
                    for (int kw = kw0; kw < K; kw += 2)                                                       \
                        a = FMA(LOAD(r + (ptrdiff_t)(b + (q + p - kw) / 2) * c), LOAD(w + (kh * K + kw) * c + cb), a); \
                }                                                                                             \
                STORE(dx + (ptrdiff_t)(2 * b + q) * c + cb, a);                                               \
            }                                                                                                 \
        }                                                                                                     \
    }

DX_S2_BLOCK(dx_s2_block16, "avx512f,avx2,fma", __m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps,
            _mm512_setzero_ps)
DX_S2_BLOCK(dx_s2_block8, "avx2,fma", __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_setzero_ps)

#define DX_S2_K(FN, K) for (; cb + W <= c; cb += W) FN(dyb, row_stride, w, K, ih, c, cb, width, dx)

__attribute__((target("avx2,fma")))
void vk_depthwise_dx_s2_row_avx2(const float *dyb, ptrdiff_t row_stride, const float *w, int k, int ih, int c,
                                 int width, float *dx) {
    enum { W = 8 };
    int cb = 0;
    switch (k) {
    case 3: DX_S2_K(dx_s2_block8, 3); break;
    case 5: DX_S2_K(dx_s2_block8, 5); break;
    case 7: DX_S2_K(dx_s2_block8, 7); break;
    default: DX_S2_K(dx_s2_block8, k); break;
    }
}

__attribute__((target("avx512f,avx2,fma")))
void vk_depthwise_dx_s2_row_avx512(const float *dyb, ptrdiff_t row_stride, const float *w, int k, int ih, int c,
                                   int width, float *dx) {
    int cb = 0;
    {
        enum { W = 16 };
        switch (k) {
        case 3: DX_S2_K(dx_s2_block16, 3); break;
        case 5: DX_S2_K(dx_s2_block16, 5); break;
        case 7: DX_S2_K(dx_s2_block16, 7); break;
        default: DX_S2_K(dx_s2_block16, k); break;
        }
    }
    if (cb < c) {  // an 8-channel tail
        enum { W = 8 };
        switch (k) {
        case 3: DX_S2_K(dx_s2_block8, 3); break;
        case 5: DX_S2_K(dx_s2_block8, 5); break;
        case 7: DX_S2_K(dx_s2_block8, 7); break;
        default: DX_S2_K(dx_s2_block8, k); break;
        }
    }
}

// Narrow GEMMs, 9 <= n <= 24 output columns (a 1x1 convolution's forward pass with 9-24 output
// channels, on its transposed weight, and its input gradient and weight gradient when its
// input has 9-24 channels), where OpenBLAS's AVX-512 kernels split 17-24
// columns as 16 + 8 and ran at 37-47% of the sgemm peak on the Zen 4 VM, and its Aᵀ · B with 16
// columns (the weight gradient of the 16-channel 112x112 layers at 224 px) at 29-40%. Each row
// of C is one zmm accumulator (masked below 16 columns) and, above 16, one masked ymm: a
// 512-bit one for columns 16-23 would cost a whole 512-bit multiply-add, two of Zen 4's
// 256-bit operations, for 8 lanes. 8 rows per block: up to 16 accumulators, 2 B vectors, a
// broadcast. beta 0 or 1.
//
// C[m x n] = beta * C + A[m x k] . B[k x n], row-major.
#define NARROW_T "avx512f,avx512vl,avx2,fma"
// R rows of C from A's element (r, kk) at a[r * rs + kk * ks]: A · B reads A by rows (rs =
// lda, ks = 1), Aᵀ · B by columns (rs = 1, ks = lda); the strides are constants at each call.
// HI: n > 16 (the ymm accumulators exist), a constant at each call. pf: unless null, one
// prefetch per kk, of pf + kk * pf_stride bytes (`narrow_rows` passes none).
__attribute__((target(NARROW_T), always_inline)) static inline void narrow_rows_pf(const int R, const int HI, int n, int k,
    const float *a, const ptrdiff_t rs, const ptrdiff_t ks, const float *b, ptrdiff_t ldb, int accumulate, float *c,
    ptrdiff_t ldc, const char *pf, ptrdiff_t pf_stride) {
    const __mmask16 ml = HI ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    const __mmask8 mh = HI ? (__mmask8)((1u << (n - 16)) - 1) : 0;
    __m512 lo[8];
    __m256 hi[8];
    for (int r = 0; r < R; r++) {
        lo[r] = accumulate ? _mm512_maskz_loadu_ps(ml, c + r * ldc) : _mm512_setzero_ps();
        if (HI) hi[r] = accumulate ? _mm256_maskz_loadu_ps(mh, c + r * ldc + 16) : _mm256_setzero_ps();
    }
    for (int kk = 0; kk < k; kk++) {
        if (pf) _mm_prefetch(pf + kk * pf_stride, _MM_HINT_T0);
        const __m512 bl = _mm512_maskz_loadu_ps(ml, b + kk * ldb);
        const __m256 bh = HI ? _mm256_maskz_loadu_ps(mh, b + kk * ldb + 16) : _mm256_setzero_ps();
        for (int r = 0; r < R; r++) {
            const float av = a[r * rs + kk * ks];
            lo[r] = _mm512_fmadd_ps(_mm512_set1_ps(av), bl, lo[r]);
            if (HI) hi[r] = _mm256_fmadd_ps(_mm256_set1_ps(av), bh, hi[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, ml, lo[r]);
        if (HI) _mm256_mask_storeu_ps(c + r * ldc + 16, mh, hi[r]);
    }
}
__attribute__((target(NARROW_T), always_inline)) static inline void narrow_rows(const int R, const int HI, int n, int k,
    const float *a, const ptrdiff_t rs, const ptrdiff_t ks, const float *b, ptrdiff_t ldb, int accumulate, float *c,
    ptrdiff_t ldc) {
    narrow_rows_pf(R, HI, n, k, a, rs, ks, b, ldb, accumulate, c, ldc, 0, 0);
}
// Asks for `rows` rows of k floats of A (from row `i` of `m`) in L1 ahead of their block: the
// input gradient of a 1x1 convolution on a large map reads dy's rows from memory, 4-8 rows
// in step, which the hardware prefetcher did not keep up with. [32,32,32,24]->144
// backward-data on the Zen 4 VM, old and new alternating: AVX-512 87-128 -> 98-146 GFLOP/s
// (medians 108 -> 116, seven rounds), AVX2 with OpenBLAS's Haswell kernels 113-129 -> 188-190
// (two rounds); the other narrow products level.
static inline void prefetch_rows(const float *a, ptrdiff_t lda, int i, int rows, int m, int k) {
    for (int r = i; r < i + rows && r < m; r++) {
        const char *row = (const char *)(a + (ptrdiff_t)r * lda);
        for (int off = 0; off < k * 4; off += 64) _mm_prefetch(row + off, _MM_HINT_T0);
    }
}
__attribute__((target(NARROW_T))) void vk_sgemm_nn_narrow_avx512(int m, int n, int k, const float *a, ptrdiff_t lda,
    const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc) {
    const int acc = beta != 0;
    int i = 0;
    for (; i + 8 <= m; i += 8) {
        prefetch_rows(a, lda, i + 8, 8, m, k);
        if (n > 16) narrow_rows(8, 1, n, k, a + i * lda, lda, 1, b, ldb, acc, c + i * ldc, ldc);
        else narrow_rows(8, 0, n, k, a + i * lda, lda, 1, b, ldb, acc, c + i * ldc, ldc);
    }
    for (; i < m; i++) {
        if (n > 16) narrow_rows(1, 1, n, k, a + i * lda, lda, 1, b, ldb, acc, c + i * ldc, ldc);
        else narrow_rows(1, 0, n, k, a + i * lda, lda, 1, b, ldb, acc, c + i * ldc, ldc);
    }
}
// C[m x n] = beta * C + A^T . B with A [k x m], B [k x n], row-major: the depth k in chunks
// of 512 rows (A's and B's rows of a chunk stay in L2 while every block of 8 C
// rows runs over them), each block's 8 x n accumulators in registers over the chunk. While
// a chunk runs, its blocks ask for the next chunk's rows: block b for line b of each row of
// A (m floats), the block after A's lines for B's rows, one prefetch per row of the chunk
// (past k when the next chunk is shorter: a prefetch never faults).
// The weight gradient of a 1x1 convolution on a large map reads both from memory; on the
// Zen 4 VM, old and new alternating six rounds: [32,32,32,24]->144 backward-weight 95-111 ->
// 84-191 GFLOP/s (medians 104 -> 172), [10,112,112,16]->64 97-162 -> 107-143 (118 -> 127),
// the others level.
__attribute__((target(NARROW_T))) void vk_sgemm_tn_narrow_avx512(int m, int n, int k, const float *a, ptrdiff_t lda,
    const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc) {
    const int linesA = (m * 4 + 63) / 64;
    for (int k0 = 0; k0 < k; k0 += 512) {
        const int kc = k - k0 < 512 ? k - k0 : 512;
        const int acc = k0 > 0 || beta != 0, next = k0 + 512 < k;
        const float *ak = a + (ptrdiff_t)k0 * lda, *bk = b + (ptrdiff_t)k0 * ldb;
        int i = 0;
        for (; i + 8 <= m; i += 8) {
            const int bi = i / 8;
            const char *pf = !next ? 0
                             : bi < linesA ? (const char *)(ak + (ptrdiff_t)512 * lda) + 64 * bi
                             : bi == linesA ? (const char *)(bk + (ptrdiff_t)512 * ldb) : 0;
            const ptrdiff_t pf_stride = (bi < linesA ? lda : ldb) * 4;
            if (n > 16) narrow_rows_pf(8, 1, n, kc, ak + i, 1, lda, bk, ldb, acc, c + i * ldc, ldc, pf, pf_stride);
            else narrow_rows_pf(8, 0, n, kc, ak + i, 1, lda, bk, ldb, acc, c + i * ldc, ldc, pf, pf_stride);
        }
        for (; i < m; i++) {
            if (n > 16) narrow_rows(1, 1, n, kc, ak + i, 1, lda, bk, ldb, acc, c + i * ldc, ldc);
            else narrow_rows(1, 0, n, kc, ak + i, 1, lda, bk, ldb, acc, c + i * ldc, ldc);
        }
    }
}

// The AVX2 twin of vk_sgemm_nn_narrow_avx512, for a 1x1 convolution's forward pass (and its
// input gradient) on a CPU without AVX-512: every element of C takes the same operations in
// the same order, c = fma(a[i, kk], b[kk, j], c) for kk ascending from 0 or from C, so the
// two kernels give the same bits and infer's logits do not depend on the vector set. Each
// row of C is V ymm accumulators, R rows a block. With n a multiple of 8 (16 and 24, the
// network's widths) R x V = 6 x 2 or 4 x 3: 12 accumulators, V B vectors and a broadcast
// fill the 16 registers. Otherwise the last vector is masked and the mask takes a register:
// 5 x 2 or 3 x 3 (12 accumulators and a mask spilled them to the stack).
__attribute__((target("avx2,fma"), always_inline)) static inline void narrow_rows_avx2(const int R, const int V,
    const int MASKED, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, __m256i mask,
    int accumulate, float *c, ptrdiff_t ldc) {
    __m256 acc[12];
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < V; v++) {
            const float *src = c + r * ldc + 8 * v;
            acc[r * V + v] = !accumulate ? _mm256_setzero_ps()
                             : MASKED && v == V - 1 ? _mm256_maskload_ps(src, mask)
                                                    : _mm256_loadu_ps(src);
        }
    }
    for (int kk = 0; kk < k; kk++) {
        __m256 bv[3];
        for (int v = 0; v < V; v++) {
            const float *src = b + kk * ldb + 8 * v;
            bv[v] = MASKED && v == V - 1 ? _mm256_maskload_ps(src, mask) : _mm256_loadu_ps(src);
        }
        for (int r = 0; r < R; r++) {
            const __m256 av = _mm256_broadcast_ss(a + r * lda + kk);
            for (int v = 0; v < V; v++) acc[r * V + v] = _mm256_fmadd_ps(av, bv[v], acc[r * V + v]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < V; v++) {
            float *dst = c + r * ldc + 8 * v;
            if (MASKED && v == V - 1) _mm256_maskstore_ps(dst, mask, acc[r * V + v]);
            else _mm256_storeu_ps(dst, acc[r * V + v]);
        }
    }
}
#define NARROW_AVX2_ROWS(R, V, MASKED)                                                                        \
    do {                                                                                                     \
        int i = 0;                                                                                           \
        for (; i + R <= m; i += R) {                                                                         \
            prefetch_rows(a, lda, i + R, R, m, k);                                                           \
            narrow_rows_avx2(R, V, MASKED, k, a + i * lda, lda, b, ldb, mask, acc, c + i * ldc, ldc);        \
        }                                                                                                    \
        for (; i < m; i++) narrow_rows_avx2(1, V, MASKED, k, a + i * lda, lda, b, ldb, mask, acc, c + i * ldc, ldc);          \
    } while (0)
__attribute__((target("avx2,fma"))) void vk_sgemm_nn_narrow_avx2(int m, int n, int k, const float *a, ptrdiff_t lda,
    const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc) {
    const int acc = beta != 0;
    const int last = n > 16 ? n - 16 : n - 8;  // columns in the last vector: 1-8
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (n == 24) NARROW_AVX2_ROWS(4, 3, 0);
    else if (n > 16) NARROW_AVX2_ROWS(3, 3, 1);
    else if (n == 16) NARROW_AVX2_ROWS(6, 2, 0);
    else NARROW_AVX2_ROWS(5, 2, 1);
}

// `P` output pixels from `ow` by `V` vectors of channels from `g0`: P x V accumulators,
// each tap's V weight vectors loaded once and each of its P input values broadcast once.
// P and V are compile-time constants at every call, so the loops unroll and the
// accumulators stay in registers (P x V <= 12, plus V weights and a broadcast).
__attribute__((target("avx2,fma"), always_inline)) static inline void small_conv_block(
    const float *patch, ptrdiff_t patch_stride, const float *w, int cout_pad, int k, int cin, int stride, int cout,
    int g0, const int P, const int V, int ow, float *y) {
    __m256 acc[12];
    for (int j = 0; j < P * V; j++) acc[j] = _mm256_setzero_ps();
    const ptrdiff_t sc = (ptrdiff_t)stride * cin;
    const float *wt = w + g0;
    for (int kh = 0; kh < k; kh++) {
        const float *row = patch + kh * patch_stride + ow * sc;
        for (int kw = 0; kw < k; kw++) {
            for (int i = 0; i < cin; i++, wt += cout_pad) {
                const float *q = row + kw * cin + i;
                __m256 wv[3];
                for (int v = 0; v < V; v++) wv[v] = _mm256_loadu_ps(wt + 8 * v);
                for (int p = 0; p < P; p++) {
                    const __m256 xb = _mm256_broadcast_ss(q + p * sc);
                    for (int v = 0; v < V; v++) acc[p * V + v] = _mm256_fmadd_ps(xb, wv[v], acc[p * V + v]);
                }
            }
        }
    }
    for (int p = 0; p < P; p++) {
        for (int v = 0; v < V; v++) {
            const int o = g0 + 8 * v;
            float *dst = y + (ptrdiff_t)(ow + p) * cout + o;
            if (o + 8 <= cout) {
                _mm256_storeu_ps(dst, acc[p * V + v]);
            } else {
                float t[8];
                _mm256_storeu_ps(t, acc[p * V + v]);
                for (int j = 0; j < cout - o; j++) dst[j] = t[j];
            }
        }
    }
}

#define SMALL_CONV(P, V) \
    small_conv_block(patch, patch_stride, w, cout_pad, k, cin, stride, cout, g0, P, V, ow, y)

__attribute__((target("avx2,fma"))) void vk_small_conv_row_avx2(const float *patch, ptrdiff_t patch_stride,
                                                                 const float *w, int k, int cin, int stride,
                                                                 int cout, int columns, float *y) {
    const int cout_pad = (cout + 7) & ~7;
    for (int g0 = 0; g0 < cout_pad; g0 += 24) {
        const int vectors = (cout_pad - g0) / 8 < 3 ? (cout_pad - g0) / 8 : 3;
        int ow = 0;
        switch (vectors) {
        case 1: for (; ow + 8 <= columns; ow += 8) SMALL_CONV(8, 1); break;
        case 2: for (; ow + 6 <= columns; ow += 6) SMALL_CONV(6, 2); break;
        default: for (; ow + 4 <= columns; ow += 4) SMALL_CONV(4, 3); break;
        }
        for (; ow < columns; ow++) {
            switch (vectors) {
            case 1: SMALL_CONV(1, 1); break;
            case 2: SMALL_CONV(1, 2); break;
            default: SMALL_CONV(1, 3); break;
            }
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

void vk_depthwise_dx_s2_row_avx2(const float *dyb, ptrdiff_t row_stride, const float *w, int k, int ih, int c,
                                 int width, float *dx) {
    (void)dyb; (void)row_stride; (void)w; (void)k; (void)ih; (void)c; (void)width; (void)dx;
    __builtin_trap();
}

void vk_depthwise_dx_s2_row_avx512(const float *dyb, ptrdiff_t row_stride, const float *w, int k, int ih, int c,
                                   int width, float *dx) {
    (void)dyb; (void)row_stride; (void)w; (void)k; (void)ih; (void)c; (void)width; (void)dx;
    __builtin_trap();
}

void vk_sgemm_nn_narrow_avx512(int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                               float beta, float *c, ptrdiff_t ldc) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    __builtin_trap();
}

void vk_sgemm_tn_narrow_avx512(int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                               float beta, float *c, ptrdiff_t ldc) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    __builtin_trap();
}

void vk_sgemm_nn_narrow_avx2(int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                             float beta, float *c, ptrdiff_t ldc) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    __builtin_trap();
}

void vk_small_conv_row_avx2(const float *patch, ptrdiff_t patch_stride, const float *w, int k, int cin, int stride,
                            int cout, int columns, float *y) {
    (void)patch; (void)patch_stride; (void)w; (void)k; (void)cin; (void)stride; (void)cout; (void)columns; (void)y;
    __builtin_trap();
}
#endif
