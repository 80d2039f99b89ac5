/*
 * batch_matmul.c -- a batch of independent matrix products, float32 and float64.
 *
 *   fnn_batch_matmul_<f32|f64>   C[b] = op(A[b]) @ op(B[b]),  b < batch
 *       A (batch, M, K), or (batch, K, M) when trans_a
 *       B (batch, K, N), or (batch, N, K) when trans_b
 *       C (batch, M, N), OVERWRITTEN; all C-contiguous, C overlapping neither
 *
 * Each product is one fnn_gemm_<f32|f64> call (alpha 1, beta 0, no bias,
 * linear), whose result does not depend on its thread count. So the batch
 * may be shared out either way without changing a bit: products big enough
 * to use several threads on their own run one after another with all the
 * threads; smaller ones run one per thread (fnn_run_units over the batch),
 * each GEMM on one thread and so without a nested parallel region (the GEMM
 * keeps per-thread scratch and may be called from several threads at once).
 *
 * One driver for both types: it moves through the batch in bytes and calls
 * the type's GEMM through a small adapter.
 */
#include "fastnn.h"
#include "fnn_omp.h"

/* FLOPs per thread before a second thread pays off: the GEMM's own grain
 * (gemm.c's GEMM_GRAIN_FLOPS), so a product uses threads exactly when the
 * GEMM itself would. */
#define BMM_GRAIN_FLOPS 1.5e6

typedef int (*bmm_gemm_fn)(void *C, const void *A, const void *B, int64_t M, int64_t N,
                           int64_t K, int trans_a, int trans_b, int nthreads);

static int gemm_f32(void *C, const void *A, const void *B, int64_t M, int64_t N, int64_t K,
                    int trans_a, int trans_b, int nthreads)
{
    return fnn_gemm_f32((float *)C, (const float *)A, (const float *)B, NULL, M, N, K,
                        trans_a ? M : K, trans_b ? K : N, N, trans_a, trans_b, 1.0f, 0.0f,
                        FNN_ACT_LINEAR, nthreads);
}

static int gemm_f64(void *C, const void *A, const void *B, int64_t M, int64_t N, int64_t K,
                    int trans_a, int trans_b, int nthreads)
{
    return fnn_gemm_f64((double *)C, (const double *)A, (const double *)B, NULL, M, N, K,
                        trans_a ? M : K, trans_b ? K : N, N, trans_a, trans_b, 1.0, 0.0,
                        FNN_ACT_LINEAR, nthreads);
}

typedef struct {
    bmm_gemm_fn gemm;
    char *C;
    const char *A, *B;
    size_t a_bytes, b_bytes, c_bytes;
    int64_t M, N, K;
    int trans_a, trans_b, inner_threads;
} bmm_call;

/* Products [first, last), each its own C: any split gives the same bits. */
static int bmm_range(void *ctx, int64_t first, int64_t last, int slot)
{
    const bmm_call *c = (const bmm_call *)ctx;
    int status = FNN_OK;
    (void)slot;
    for (int64_t b = first; b < last && status == FNN_OK; b++) {
        status = c->gemm(c->C + (size_t)b * c->c_bytes, c->A + (size_t)b * c->a_bytes,
                         c->B + (size_t)b * c->b_bytes, c->M, c->N, c->K, c->trans_a, c->trans_b,
                         c->inner_threads);
    }
    return status;
}

static int batch_matmul(bmm_gemm_fn gemm, size_t elem, char *C, const char *A, const char *B,
                        int64_t batch, int64_t M, int64_t N, int64_t K, int trans_a,
                        int trans_b, int nthreads)
{
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    const size_t a_bytes = (size_t)(M * K) * elem, b_bytes = (size_t)(K * N) * elem;
    const size_t c_bytes = (size_t)(M * N) * elem;

    if (batch < 0 || M < 0 || N < 0 || K < 0) {
        return FNN_ERR_ARG;
    }
    if (batch == 0 || M == 0 || N == 0) {
        return FNN_OK;
    }
    if (C == NULL || (K > 0 && (A == NULL || B == NULL))) {
        return FNN_ERR_ARG;
    }
    {
        /* One product worth threads by itself: the products in turn, each
         * GEMM splitting its own tiles; otherwise the products are shared. */
        const int each = batch == 1
                         || fnn_threads_for(flops, BMM_GRAIN_FLOPS, M * N, nthreads) > 1;
        const int nt = each ? 1
                            : fnn_threads_for(flops * (double)batch, BMM_GRAIN_FLOPS, batch,
                                              nthreads);
        const bmm_call c = {.gemm = gemm, .C = C, .A = A, .B = B, .a_bytes = a_bytes,
                            .b_bytes = b_bytes, .c_bytes = c_bytes, .M = M, .N = N, .K = K,
                            .trans_a = trans_a, .trans_b = trans_b,
                            .inner_threads = each ? nthreads : 1};
        return fnn_run_units(batch, nt, bmm_range, (void *)&c);
    }
}

int fnn_batch_matmul_f32(float *C, const float *A, const float *B, int64_t batch, int64_t M,
                         int64_t N, int64_t K, int trans_a, int trans_b, int nthreads)
{
    return batch_matmul(gemm_f32, sizeof(float), (char *)C, (const char *)A, (const char *)B,
                        batch, M, N, K, trans_a, trans_b, nthreads);
}

int fnn_batch_matmul_f64(double *C, const double *A, const double *B, int64_t batch,
                         int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                         int nthreads)
{
    return batch_matmul(gemm_f64, sizeof(double), (char *)C, (const char *)A, (const char *)B,
                        batch, M, N, K, trans_a, trans_b, nthreads);
}
