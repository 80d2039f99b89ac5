/*
 * attention_avx2.c -- attention's task loops (attention_kern.h) built with
 * AVX2+FMA flags, float32 (8 lanes) and float64 (4 lanes); called by
 * attention.c only when fnn_isa_current() is this ISA, after cpu.c checked
 * the CPU and the OS. Register tiles: 6 rows x 2 vectors (12 of the 16 YMM),
 * or 8 x 1.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* no-trapping-math: see vexp.h. fp-contract=fast: vexp's polynomial and the
 * block products' epilogues use FMA here (attention's results are not
 * required to match fnn_vexp's bit for bit; they match NumPy to rounding). */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

#include <immintrin.h>

#include "vexp.h"

#define ATT_ISA avx2
#define ATT_NV 2
#define ATT_MR_WIDE 6
#define ATT_MR_NARROW 8

#define ATT_T float
#define ATT_SFX f32
#define ATT_EXP vexp1_f32
#define ATT_LOG logf
#define ATT_V __m256
#define VL 8
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMASK_T __m256i
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLOADM(p, m) _mm256_maskload_ps(p, m)
#define VSTOREM(p, v, m) _mm256_maskstore_ps(p, m, v)
#include "attention_kern.h"
#undef ATT_T
#undef ATT_SFX
#undef ATT_EXP
#undef ATT_LOG
#undef ATT_V
#undef VL
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VSTORE
#undef VFMA
#undef VMASK_T
#undef VMASK
#undef VLOADM
#undef VSTOREM

#define ATT_T double
#define ATT_SFX f64
#define ATT_EXP vexp1_f64
#define ATT_LOG log
#define ATT_V __m256d
#define VL 4
#define VZERO() _mm256_setzero_pd()
#define VSET1(x) _mm256_set1_pd(x)
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VMASK_T __m256i
#define VMASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VLOADM(p, m) _mm256_maskload_pd(p, m)
#define VSTOREM(p, v, m) _mm256_maskstore_pd(p, m, v)
#include "attention_kern.h"
