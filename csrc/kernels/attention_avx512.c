/*
 * attention_avx512.c -- attention's task loops (attention_kern.h) built with
 * AVX-512 flags, float32 (16 lanes) and float64 (8 lanes); called by
 * attention.c only when fnn_isa_current() is this ISA, after cpu.c checked
 * the CPU and the OS. Register tiles: 4 rows x 4 vectors, or 8 x 2 (or 8 x 1)
 * for narrow products (D = 32 in float32): 16 accumulators of the 32 ZMM.
 */
#include "fnn_vector_opts.h"   /* first: see there */
#if defined(__GNUC__) && !defined(__clang__)
/* fp-contract=fast: the exp polynomial and the element-wise updates use FMA
 * here (attention's results are not required to match fnn_vexp's bit for
 * bit; they match NumPy to rounding). */
#pragma GCC optimize("fp-contract=fast")
#endif

#include <immintrin.h>

#include "vexp.h"

/* In-register transposes of one VL x VL block, times s:
 * dst[c * ldd + r] = s * src[r * lds + c]. Rows are interleaved in pairs
 * (unpack), then in fours (shuffle), then 128-bit lanes are regrouped. */
static inline void att_tr_f32(float *dst, int64_t ldd, const float *src, int64_t lds, float s)
{
    const __m512 sv = _mm512_set1_ps(s);
    __m512 r[16], t[16];
    int i;
    for (i = 0; i < 16; i++) {
        r[i] = _mm512_mul_ps(_mm512_loadu_ps(src + i * lds), sv);
    }
    for (i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
    for (i = 0; i < 16; i++) {
        _mm512_storeu_ps(dst + i * ldd, r[i]);
    }
}

static inline void att_tr_f64(double *dst, int64_t ldd, const double *src, int64_t lds,
                              double s)
{
    const __m512d sv = _mm512_set1_pd(s);
    __m512d r[8], t[8];
    int i;
    for (i = 0; i < 8; i++) {
        r[i] = _mm512_mul_pd(_mm512_loadu_pd(src + i * lds), sv);
    }
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (i = 0; i < 2; i++) {
        r[i] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0x88);
        r[i + 2] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0xDD);
        r[i + 4] = _mm512_shuffle_f64x2(t[i + 4], t[i + 6], 0x88);
        r[i + 6] = _mm512_shuffle_f64x2(t[i + 4], t[i + 6], 0xDD);
    }
    for (i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f64x2(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f64x2(r[i], r[i + 4], 0xDD);
    }
    for (i = 0; i < 8; i++) {
        _mm512_storeu_pd(dst + i * ldd, t[i]);
    }
}

#define ATT_ISA avx512
#define ATT_NV 4
#define ATT_MR_WIDE 4
#define ATT_MR_NARROW 8

#define ATT_T float
#define ATT_SFX f32
#define ATT_EXP vexp1_soft_f32
#define ATT_V __m512
#define VL 16
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMASK_T __mmask16
#define VMASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VLOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define VSTOREM(p, v, m) _mm512_mask_storeu_ps(p, m, v)
#define ATT_TRANSPOSE att_tr_f32
#include "attention_kern.h"
#undef ATT_T
#undef ATT_SFX
#undef ATT_EXP
#undef ATT_V
#undef VL
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VSTORE
#undef VFMA
#undef VMAX
#undef VMASK_T
#undef VMASK
#undef VLOADM
#undef VSTOREM
#undef ATT_TRANSPOSE

#define ATT_T double
#define ATT_SFX f64
#define ATT_EXP vexp1_soft_f64
#define ATT_V __m512d
#define VL 8
#define VZERO() _mm512_setzero_pd()
#define VSET1(x) _mm512_set1_pd(x)
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VMAX(a, b) _mm512_max_pd(a, b)
#define VMASK_T __mmask8
#define VMASK(n) ((__mmask8)((1u << (n)) - 1u))
#define VLOADM(p, m) _mm512_maskz_loadu_pd(m, p)
#define VSTOREM(p, v, m) _mm512_mask_storeu_pd(p, m, v)
#define ATT_TRANSPOSE att_tr_f64
#include "attention_kern.h"
