/*
 * gemm_avx2.c -- the AVX2+FMA float32 GEMM micro-kernel. Built with -mavx2
 * -mfma; called only after cpu.c found AVX2 and FMA in the CPU and the YMM
 * state enabled by the OS.
 *
 * Shape: C[m<=6, n<=16] = epi(alpha * A~[6, k] @ B~[k, 16], beta * C).
 * 12 YMM accumulators (6 rows x 2 vectors of 8), 2 for the B row, 1 for the
 * broadcast A value: 15 of the 16 registers. Per k step: 12 FMAs against 2
 * vector loads and 6 broadcasts.
 * Edge tiles use vmaskmov for the columns (no read or write past column n)
 * and skip rows past m; layouts and the epilogue are specified in
 * gemm_internal.h. Also the AVX2 packer of a transposed B (AVX-512 uses it
 * too: 8x8 register transposes are already far from the bottleneck).
 */
#include <immintrin.h>

#include "gemm_internal.h"

#define MR FNN_GEMM_AVX2_MR
#define NR FNN_GEMM_AVX2_NR

/* Lane mask for columns [from, from + 8) that are < n. */
static inline __m256i col_mask(int64_t n, int from)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n - from), lanes);
}

static inline __attribute__((always_inline)) void
ukr_body(int64_t k, const float *a, int64_t rs_a, int64_t cs_a, const float *b, float *c,
         int64_t ldc, int64_t m, int64_t n, const fnn_gemm_epi_f32 *epi, const int packed)
{
    __m256 acc[MR][2];
    const float *row[MR];
    __m256i mask0, mask1;
    __m256 alpha, beta, zero, bias0, bias1;
    int64_t p;
    int i;

#pragma GCC unroll 6
    for (i = 0; i < MR; i++) {
        acc[i][0] = _mm256_setzero_ps();
        acc[i][1] = _mm256_setzero_ps();
        row[i] = packed ? a + i : a + (i < m ? i : m - 1) * rs_a;
    }

    if (packed) {
        for (p = 0; p < k; p++) {
            __m256 b0 = _mm256_load_ps(b);
            __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
            for (i = 0; i < MR; i++) {
                __m256 ai = _mm256_broadcast_ss(a + i);
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
            a += MR;
            b += NR;
        }
    }
    else {
        for (p = 0; p < k; p++) {
            __m256 b0 = _mm256_load_ps(b);
            __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
            for (i = 0; i < MR; i++) {
                __m256 ai = _mm256_broadcast_ss(row[i] + p * cs_a);
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
            b += NR;
        }
    }

    mask0 = col_mask(n, 0);
    mask1 = col_mask(n, 8);
    alpha = _mm256_set1_ps(epi->alpha);
    beta = _mm256_set1_ps(epi->beta);
    zero = _mm256_setzero_ps();
    bias0 = zero;
    bias1 = zero;
    if (epi->bias != NULL) {
        bias0 = _mm256_maskload_ps(epi->bias, mask0);
        bias1 = _mm256_maskload_ps(epi->bias + 8, mask1);
    }
#pragma GCC unroll 6
    for (i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
        __m256 t0, t1;
        if (i >= m) {
            break;
        }
        t0 = _mm256_mul_ps(alpha, acc[i][0]);
        t1 = _mm256_mul_ps(alpha, acc[i][1]);
        if (epi->beta != 0.0f) {
            t0 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(ci, mask0), t0);
            t1 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(ci + 8, mask1), t1);
        }
        if (epi->bias != NULL) {
            t0 = _mm256_add_ps(t0, bias0);
            t1 = _mm256_add_ps(t1, bias1);
        }
        if (epi->act == FNN_ACT_RELU) {
            /* max(0, t) returns its second operand for NaN: NaN survives. */
            t0 = _mm256_max_ps(zero, t0);
            t1 = _mm256_max_ps(zero, t1);
        }
        else if (epi->act == FNN_ACT_LEAKY_RELU) {
            __m256 slope = _mm256_set1_ps((float)FNN_LEAKY_RELU_SLOPE);
            t0 = _mm256_blendv_ps(t0, _mm256_mul_ps(t0, slope),
                                  _mm256_cmp_ps(t0, zero, _CMP_LT_OQ));
            t1 = _mm256_blendv_ps(t1, _mm256_mul_ps(t1, slope),
                                  _mm256_cmp_ps(t1, zero, _CMP_LT_OQ));
        }
        if (n >= NR) {
            _mm256_storeu_ps(ci, t0);
            _mm256_storeu_ps(ci + 8, t1);
        }
        else {
            _mm256_maskstore_ps(ci, mask0, t0);
            _mm256_maskstore_ps(ci + 8, mask1, t1);
        }
    }
}

void fnn_gemm_ukr_f32_avx2_6x16(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                const fnn_gemm_epi_f32 *epi)
{
    if (rs_a == 1 && cs_a == MR) {
        ukr_body(k, a, 1, MR, b, c, ldc, m, n, epi, 1);
    }
    else {
        ukr_body(k, a, rs_a, cs_a, b, c, ldc, m, n, epi, 0);
    }
}

/* Transposed-B packer (gemm_internal.h), also used for row-major A panels:
 * 8x8 blocks go through registers (8 row loads, the classic
 * unpack/shuffle/permute transpose, 8 row stores) instead of 64 scalar moves
 * with strided stores; then 4x8 blocks; ragged edges are scalar. */
void fnn_gemm_packbt_f32_avx2(float *dst, const float *bt, int64_t ldb, int64_t kc, int64_t w,
                              int64_t nr)
{
    int64_t p, j;
    const int64_t kc8 = kc & ~(int64_t)7, w8 = w & ~(int64_t)7;

    for (j = 0; j < w8; j += 8) {
        const float *s = bt + j * ldb;
        for (p = 0; p < kc8; p += 8) {
            __m256 r0 = _mm256_loadu_ps(s + 0 * ldb + p);
            __m256 r1 = _mm256_loadu_ps(s + 1 * ldb + p);
            __m256 r2 = _mm256_loadu_ps(s + 2 * ldb + p);
            __m256 r3 = _mm256_loadu_ps(s + 3 * ldb + p);
            __m256 r4 = _mm256_loadu_ps(s + 4 * ldb + p);
            __m256 r5 = _mm256_loadu_ps(s + 5 * ldb + p);
            __m256 r6 = _mm256_loadu_ps(s + 6 * ldb + p);
            __m256 r7 = _mm256_loadu_ps(s + 7 * ldb + p);
            /* Interleave pairs of rows, then pairs of pairs, then halves. */
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + p * nr + j;
            _mm256_storeu_ps(d + 0 * nr, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + 1 * nr, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * nr, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * nr, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * nr, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * nr, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * nr, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * nr, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (; p < kc; p++) {
            int64_t jj;
            for (jj = 0; jj < 8; jj++) {
                dst[p * nr + j + jj] = s[jj * ldb + p];
            }
        }
    }
    /* Four rows at a time (the AVX-512 kernel's A panels are 12 = 8 + 4 rows
     * tall): 4x8 blocks, each 128-bit lane ends up holding one column. */
    for (; j + 4 <= w; j += 4) {
        const float *s = bt + j * ldb;
        for (p = 0; p < kc8; p += 8) {
            __m256 r0 = _mm256_loadu_ps(s + 0 * ldb + p);
            __m256 r1 = _mm256_loadu_ps(s + 1 * ldb + p);
            __m256 r2 = _mm256_loadu_ps(s + 2 * ldb + p);
            __m256 r3 = _mm256_loadu_ps(s + 3 * ldb + p);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            float *d = dst + p * nr + j;
            _mm_storeu_ps(d + 0 * nr, _mm256_castps256_ps128(u0));
            _mm_storeu_ps(d + 1 * nr, _mm256_castps256_ps128(u1));
            _mm_storeu_ps(d + 2 * nr, _mm256_castps256_ps128(u2));
            _mm_storeu_ps(d + 3 * nr, _mm256_castps256_ps128(u3));
            _mm_storeu_ps(d + 4 * nr, _mm256_extractf128_ps(u0, 1));
            _mm_storeu_ps(d + 5 * nr, _mm256_extractf128_ps(u1, 1));
            _mm_storeu_ps(d + 6 * nr, _mm256_extractf128_ps(u2, 1));
            _mm_storeu_ps(d + 7 * nr, _mm256_extractf128_ps(u3, 1));
        }
        for (; p < kc; p++) {
            int64_t jj;
            for (jj = 0; jj < 4; jj++) {
                dst[p * nr + j + jj] = s[jj * ldb + p];
            }
        }
    }
    for (; j < w; j++) {
        const float *s = bt + j * ldb;
        for (p = 0; p < kc; p++) {
            dst[p * nr + j] = s[p];
        }
    }
    for (p = 0; p < kc; p++) {
        for (j = w; j < nr; j++) {
            dst[p * nr + j] = 0.0f;
        }
    }
}
