/*
 * gemm_generic.c -- the portable float32 GEMM micro-kernel (plain C, built
 * without ISA flags, so it runs on any CPU; the compiler vectorizes the
 * inner loops with whatever the baseline has, SSE2 on x86-64).
 *
 * Shape: C[m<=4, n<=16] = epi(alpha * A~[4, k] @ B~[k, 16], beta * C).
 * Also the portable packer of a transposed B (see gemm_internal.h).
 * The contract (layouts, edge tiles, epilogue order, beta == 0 never reading
 * C) is written in gemm_internal.h. Multiply and add are two roundings
 * here (no FMA: a baseline CPU would run fmaf() in software, and -std=c11
 * keeps the compiler from contracting them).
 */
#include "gemm_internal.h"

#define MR FNN_GEMM_GENERIC_MR
#define NR FNN_GEMM_GENERIC_NR

void fnn_gemm_ukr_f32_generic_4x16(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                   const float *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                   const fnn_gemm_epi_f32 *epi)
{
    float acc[MR][NR] = {{0.0f}};
    const float *row[MR];
    int64_t p;
    int i, j;

    /* Rows past m repeat row m-1: an unpacked A may not have them, and
     * their sums are never stored. */
    for (i = 0; i < MR; i++) {
        row[i] = a + (i < m ? i : m - 1) * rs_a;
    }
    for (p = 0; p < k; p++) {
        const float *bp = b + p * NR;
        for (i = 0; i < MR; i++) {
            float ai = row[i][p * cs_a];
            for (j = 0; j < NR; j++) {
                acc[i][j] += ai * bp[j];
            }
        }
    }

    for (i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        for (j = 0; j < n; j++) {
            float t = epi->alpha * acc[i][j];
            if (epi->beta != 0.0f) {
                t = epi->beta * ci[j] + t;
            }
            if (epi->bias != NULL) {
                t = t + epi->bias[j];
            }
            if (epi->act == FNN_ACT_RELU) {
                t = t < 0.0f ? 0.0f : t;
            }
            else if (epi->act == FNN_ACT_LEAKY_RELU) {
                t = t < 0.0f ? (float)FNN_LEAKY_RELU_SLOPE * t : t;
            }
            ci[j] = t;
        }
    }
}

/* dst[p * nr + j] = bt[j * ldb + p] (p < kc, j < w), zero for w <= j < nr. */
void fnn_gemm_packbt_f32_generic(float *dst, const float *bt, int64_t ldb, int64_t kc, int64_t w,
                                 int64_t nr)
{
    int64_t p, j;
    for (p = 0; p < kc; p++) {
        for (j = w; j < nr; j++) {
            dst[p * nr + j] = 0.0f;
        }
    }
    for (j = 0; j < w; j++) {
        const float *s = bt + j * ldb;
        for (p = 0; p < kc; p++) {
            dst[p * nr + j] = s[p];
        }
    }
}
