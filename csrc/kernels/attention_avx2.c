/*
 * attention_avx2.c -- attention's task loops (attention_kern.h) built with
 * AVX2+FMA flags, float32 (8 lanes) and float64 (4 lanes); called by
 * attention.c only when fnn_isa_current() is this ISA, after cpu.c checked
 * the CPU and the OS. Register tiles: 6 rows x 2 vectors (12 of the 16 YMM),
 * or 8 x 1.
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
 * (unpack), then in fours (shuffle), then the 128-bit halves are swapped. */
static inline void att_tr_f32(float *dst, int64_t ldd, const float *src, int64_t lds, float s)
{
    const __m256 sv = _mm256_set1_ps(s);
    __m256 r[8], t[8];
    int i;
    for (i = 0; i < 8; i++) {
        r[i] = _mm256_mul_ps(_mm256_loadu_ps(src + i * lds), sv);
    }
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; i++) {
        t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
    }
    for (i = 0; i < 8; i++) {
        _mm256_storeu_ps(dst + i * ldd, t[i]);
    }
}

static inline void att_tr_f64(double *dst, int64_t ldd, const double *src, int64_t lds,
                              double s)
{
    const __m256d sv = _mm256_set1_pd(s);
    __m256d r[4], t[4];
    int i;
    for (i = 0; i < 4; i++) {
        r[i] = _mm256_mul_pd(_mm256_loadu_pd(src + i * lds), sv);
    }
    t[0] = _mm256_unpacklo_pd(r[0], r[1]);
    t[1] = _mm256_unpackhi_pd(r[0], r[1]);
    t[2] = _mm256_unpacklo_pd(r[2], r[3]);
    t[3] = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t[0], t[2], 0x20);
    r[1] = _mm256_permute2f128_pd(t[1], t[3], 0x20);
    r[2] = _mm256_permute2f128_pd(t[0], t[2], 0x31);
    r[3] = _mm256_permute2f128_pd(t[1], t[3], 0x31);
    for (i = 0; i < 4; i++) {
        _mm256_storeu_pd(dst + i * ldd, r[i]);
    }
}

#define ATT_ISA avx2
#define ATT_NV 2
#define ATT_MR_WIDE 6
#define ATT_MR_NARROW 8

#define ATT_T float
#define ATT_SFX f32
#define ATT_EXP vexp1_soft_f32
#define ATT_V __m256
#define VL 8
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMASK_T __m256i
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLOADM(p, m) _mm256_maskload_ps(p, m)
#define VSTOREM(p, v, m) _mm256_maskstore_ps(p, m, v)
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
#define ATT_V __m256d
#define VL 4
#define VZERO() _mm256_setzero_pd()
#define VSET1(x) _mm256_set1_pd(x)
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VMAX(a, b) _mm256_max_pd(a, b)
#define VMASK_T __m256i
#define VMASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VLOADM(p, m) _mm256_maskload_pd(p, m)
#define VSTOREM(p, v, m) _mm256_maskstore_pd(p, m, v)
#define ATT_TRANSPOSE att_tr_f64
#include "attention_kern.h"
