/*
 * regularize.c -- L1 / L2 weight penalties (Keras' regularizers) on a flat range.
 *
 *   fnn_regularize_f32   *penalty = l1 sum_i |W_i| + l2 sum_i W_i^2
 *                        dW[n] += l1 sign(W_i) + 2 l2 W_i   (ACCUMULATES; dW may
 *                        be NULL: the penalty alone, as evaluate needs it)
 *
 * One pass reads W once and, when dW is given, updates the gradient in the
 * same pass. sign(0) is 0 (np.sign), so a zero weight gets no L1 push. The
 * gradient is computed in float32 from float32 l1 and 2 l2, as the NumPy
 * reference computes it; the two sums are accumulated in double.
 *
 * Determinism: the range is cut into chunks of REG_CHUNK elements (a constant,
 * never the thread count); inside a chunk element i goes to lane i % REG_LANES
 * and the lanes are added in lane order; the chunk sums are added in chunk
 * order, on one thread or many. The same bits for any nthreads.
 */
#include <math.h>

#include "fastnn.h"
#include "fnn_omp.h"
#include "fnn_reduce.h"

#define REG_CHUNK 4096
#define REG_LANES 8
/* Elements per thread before a second thread pays off: one read of W, one
 * read-modify-write of dW. */
#define REG_GRAIN 65536.0

/* One chunk of n <= REG_CHUNK elements: dW += l1 sign(W) + l2x2 W (skipped
 * when dW is NULL); s[0] = sum |W|, s[1] = sum W^2 over fixed lanes. */
static void reg_chunk(float *restrict dW, const float *restrict W, int64_t n, float l1,
                      float l2x2, double *s)
{
    double a1[REG_LANES] = {0.0};
    double a2[REG_LANES] = {0.0};
    int64_t i = 0;

    if (dW != NULL) {
        #pragma omp simd
        for (int64_t k = 0; k < n; k++) {
            const float w = W[k];
            const float sign = (float)((w > 0.0f) - (w < 0.0f));
            dW[k] += l1 * sign + l2x2 * w;
        }
    }
    for (; i + REG_LANES <= n; i += REG_LANES) {
        for (int k = 0; k < REG_LANES; k++) {
            const double d = (double)W[i + k];
            a1[k] += fabs(d);
            a2[k] += d * d;
        }
    }
    for (int k = 0; i < n; i++, k++) {
        const double d = (double)W[i];
        a1[k] += fabs(d);
        a2[k] += d * d;
    }
    s[0] = 0.0;
    s[1] = 0.0;
    for (int k = 0; k < REG_LANES; k++) {
        s[0] += a1[k];
        s[1] += a2[k];
    }
}

typedef struct {
    float *dW;
    const float *W;
    int64_t n;
    float l1, l2x2;
} reg_chunks;

static void reg_chunk_fn(const void *ctx, int64_t chunk, double *out)
{
    const reg_chunks *rc = (const reg_chunks *)ctx;
    const int64_t lo = chunk * REG_CHUNK;
    reg_chunk(rc->dW ? rc->dW + lo : NULL, rc->W + lo,
              rc->n - lo < REG_CHUNK ? rc->n - lo : REG_CHUNK, rc->l1, rc->l2x2, out);
}

/* penalty: scalar out. dW[n] (may be NULL), W[n]. l1, l2 >= 0 and finite. */
int fnn_regularize_f32(double *penalty, float *dW, const float *W, int64_t n, double l1,
                       double l2, int nthreads)
{
    reg_chunks rc;
    const int64_t nchunks = (n + REG_CHUNK - 1) / REG_CHUNK;
    double sums[2];
    int status;

    if (penalty == NULL || n < 0 || (n > 0 && W == NULL) || !(l1 >= 0.0) || !(l2 >= 0.0)
        || isinf(l1) || isinf(l2)) {
        return FNN_ERR_ARG;
    }
    rc.dW = dW;
    rc.W = W;
    rc.n = n;
    rc.l1 = (float)l1;
    rc.l2x2 = (float)(2.0 * l2);
    status = fnn_ordered_sum(sums, 2, nchunks, reg_chunk_fn, &rc,
                             fnn_threads_for((double)n, REG_GRAIN, nchunks, nthreads));
    if (status != FNN_OK) {
        return status;
    }
    *penalty = l1 * sums[0] + l2 * sums[1];
    return FNN_OK;
}
