/*
 * attention_avx512.c -- attention's task loops (attention_kern.h) built with
 * AVX-512 flags, float32 (16 lanes) and float64 (8 lanes); called by
 * attention.c only when fnn_isa_current() is this ISA, after cpu.c checked
 * the CPU and the OS. Register tiles: 4 rows x 4 vectors, or 8 x 2 (or 8 x 1)
 * for narrow products (D = 32 in float32): 16 accumulators of the 32 ZMM.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* no-trapping-math: see vexp.h. fp-contract=fast: vexp's polynomial and the
 * block products' epilogues use FMA here (attention's results are not
 * required to match fnn_vexp's bit for bit; they match NumPy to rounding). */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

#include <immintrin.h>

#include "vexp.h"

#define ATT_ISA avx512
#define ATT_NV 4
#define ATT_MR_WIDE 4
#define ATT_MR_NARROW 8

#define ATT_T float
#define ATT_SFX f32
#define ATT_EXP vexp1_f32
#define ATT_LOG logf
#define ATT_V __m512
#define VL 16
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMASK_T __mmask16
#define VMASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VLOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define VSTOREM(p, v, m) _mm512_mask_storeu_ps(p, m, v)
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
#define ATT_V __m512d
#define VL 8
#define VZERO() _mm512_setzero_pd()
#define VSET1(x) _mm512_set1_pd(x)
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VMASK_T __mmask8
#define VMASK(n) ((__mmask8)((1u << (n)) - 1u))
#define VLOADM(p, m) _mm512_maskz_loadu_pd(m, p)
#define VSTOREM(p, v, m) _mm512_mask_storeu_pd(p, m, v)
#include "attention_kern.h"
