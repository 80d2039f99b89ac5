/*
 * gemm_avx512.c -- the AVX-512 float32 GEMM micro-kernel. Built with
 * -mavx512f/dq/bw/vl; called only after cpu.c found AVX-512 in the CPU and
 * the ZMM state enabled by the OS.
 *
 * Shape: C[m<=12, n<=32] = epi(alpha * A~[12, k] @ B~[k, 32], beta * C).
 * 24 ZMM accumulators (12 rows x 2 vectors of 16), 2 for the B row, A values
 * broadcast straight from memory into the FMA: 26-27 of the 32 registers,
 * nothing spilled. Per k step: 24 FMAs against 2 vector loads and 12
 * broadcasts, so the FMA units stay the bottleneck.
 * Edge tiles use opmasks for the columns (no read or write past column n) and
 * skip rows past m; tiles of at most 8 or 4 rows, or 16 columns, run a smaller
 * register tile. Layouts and the epilogue are specified in gemm_internal.h.
 */
#include <immintrin.h>

#include "gemm_internal.h"

#define MR FNN_GEMM_AVX512_MR
#define NR FNN_GEMM_AVX512_NR

/* The loop, specialised by the always_inline: `packed` makes the A offsets
 * compile-time constants (rs_a = 1, cs_a = MR); ROWS (4, 8 or 12) and COLS
 * (1 or 2 vectors) shrink the register tile for thin edge tiles, so a tile of
 * 4 rows or 16 columns costs a third or half of a full one, not all of it.
 * Every variant does the same operations on each element it stores. */
static inline __attribute__((always_inline)) void
ukr_body(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b, float *c,
         int64_t ldc, int64_t m, int64_t n, const fnn_gemm_epi_f32 *epi, const int packed,
         const int ROWS, const int COLS)
{
    __m512 acc[MR][2];
    const float *row[MR];
    __mmask16 mask0, mask1;
    __m512 alpha, beta, zero, bias0, bias1;
    int64_t p;
    int i;

#pragma GCC unroll 12
    for (i = 0; i < ROWS; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
        /* An unpacked A may lack rows past m: point them at row m-1. */
        row[i] = packed ? a + i : a + (i < m ? i : m - 1) * rs_a;
        /* The C tile is read or written once the loop ends: fetch it now. */
        if (i < m) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
        }
    }

    if (packed) {
        for (p = 0; p < k; p++) {
            __m512 b0 = _mm512_load_ps(b);
            __m512 b1 = COLS == 2 ? _mm512_load_ps(b + 16) : b0;
#pragma GCC unroll 12
            for (i = 0; i < ROWS; i++) {
                __m512 ai = _mm512_set1_ps(a[i]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                if (COLS == 2) {
                    acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
                }
            }
            a += MR;
            b += NR;
        }
    }
    else {
        for (p = 0; p < k; p++) {
            __m512 b0 = _mm512_load_ps(b);
            __m512 b1 = COLS == 2 ? _mm512_load_ps(b + 16) : b0;
#pragma GCC unroll 12
            for (i = 0; i < ROWS; i++) {
                __m512 ai = _mm512_set1_ps(row[i][p * cs_a]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                if (COLS == 2) {
                    acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
                }
            }
            b += NR;
        }
    }

    mask0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    mask1 = n >= 32 ? (__mmask16)0xFFFF : n > 16 ? (__mmask16)((1u << (n - 16)) - 1u) : 0;
    alpha = _mm512_set1_ps(epi->alpha);
    beta = _mm512_set1_ps(epi->beta);
    zero = _mm512_setzero_ps();
    bias0 = zero;
    bias1 = zero;
    if (epi->bias != NULL) {
        bias0 = _mm512_maskz_loadu_ps(mask0, epi->bias);
        if (COLS == 2) {
            bias1 = _mm512_maskz_loadu_ps(mask1, epi->bias + 16);
        }
    }
#pragma GCC unroll 12
    for (i = 0; i < ROWS; i++) {
        float *ci = c + i * ldc;
        __m512 t0, t1;
        if (i >= m) {
            break;
        }
        t0 = _mm512_mul_ps(alpha, acc[i][0]);
        t1 = COLS == 2 ? _mm512_mul_ps(alpha, acc[i][1]) : zero;
        if (epi->beta != 0.0f) {
            t0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask0, ci), t0);
            if (COLS == 2) {
                t1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask1, ci + 16), t1);
            }
        }
        if (epi->bias != NULL) {
            t0 = _mm512_add_ps(t0, bias0);
            t1 = _mm512_add_ps(t1, bias1);
        }
        if (epi->act == FNN_ACT_RELU) {
            /* max(0, t) returns its second operand for NaN: NaN survives. */
            t0 = _mm512_max_ps(zero, t0);
            t1 = _mm512_max_ps(zero, t1);
        }
        else if (epi->act == FNN_ACT_LEAKY_RELU) {
            __m512 slope = _mm512_set1_ps((float)FNN_LEAKY_RELU_SLOPE);
            __mmask16 neg0 = _mm512_cmp_ps_mask(t0, zero, _CMP_LT_OQ);
            __mmask16 neg1 = _mm512_cmp_ps_mask(t1, zero, _CMP_LT_OQ);
            t0 = _mm512_mask_mul_ps(t0, neg0, t0, slope);
            t1 = _mm512_mask_mul_ps(t1, neg1, t1, slope);
        }
        _mm512_mask_storeu_ps(ci, mask0, t0);
        if (COLS == 2) {
            _mm512_mask_storeu_ps(ci + 16, mask1, t1);
        }
    }
}

/* One variant per (A layout, ROWS, COLS); the full 12x32 tile is the hot one. */
#define FNN_AVX512_VARIANTS(PACKED, A, RS, CS)                                         \
    do {                                                                               \
        if (n > 16) {                                                                  \
            if (m > 8) {                                                               \
                ukr_body(k, A, RS, CS, b, c, ldc, m, n, epi, PACKED, 12, 2);           \
            }                                                                          \
            else if (m > 4) {                                                          \
                ukr_body(k, A, RS, CS, b, c, ldc, m, n, epi, PACKED, 8, 2);            \
            }                                                                          \
            else {                                                                     \
                ukr_body(k, A, RS, CS, b, c, ldc, m, n, epi, PACKED, 4, 2);            \
            }                                                                          \
        }                                                                              \
        else {                                                                         \
            if (m > 8) {                                                               \
                ukr_body(k, A, RS, CS, b, c, ldc, m, n, epi, PACKED, 12, 1);           \
            }                                                                          \
            else if (m > 4) {                                                          \
                ukr_body(k, A, RS, CS, b, c, ldc, m, n, epi, PACKED, 8, 1);            \
            }                                                                          \
            else {                                                                     \
                ukr_body(k, A, RS, CS, b, c, ldc, m, n, epi, PACKED, 4, 1);            \
            }                                                                          \
        }                                                                              \
    } while (0)

void fnn_gemm_ukr_f32_avx512_12x32(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                   const float *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                   const fnn_gemm_epi_f32 *epi)
{
    if (rs_a == 1 && cs_a == MR) {
        FNN_AVX512_VARIANTS(1, a, 1, MR);
    }
    else {
        FNN_AVX512_VARIANTS(0, a, rs_a, cs_a);
    }
}
