/*
 * embedding.c -- Embedding lookup and its gradient, float32 and float64.
 *
 *   fnn_embedding_forward_<f32|f64>   Y[m, :] = table[idx[m], :]           Y (M, D)
 *   fnn_embedding_backward_<f32|f64>  dtable[v, :] = sum of dY[m, :] over
 *                                     idx[m] == v, in increasing m        (OVERWRITES dtable)
 *
 * M = N*T lookups into a table of V rows of D features. Every idx[m] must lie
 * in [0, V): the kernels scan the indices first and return FNN_ERR_ARG,
 * touching no output, when one does not (the Python wrapper checks the same
 * thing first and names the shapes). Each index is then read once more, and
 * checked again where it is used (fnn_index.h): one that another thread
 * changed meanwhile gives a row of zeros (forward) or is skipped (backward),
 * and FNN_ERR_ARG from the forward -- never a read or write out of bounds.
 *
 * Threads: the forward pass splits the M output rows. The backward pass
 * gives each thread a fixed range of table rows; every thread scans all M
 * indices in order and adds only the rows it owns. No two threads write one
 * row and each row's sum runs in increasing m, so dtable is bitwise the same
 * for any thread count (no atomics).
 */
#include <string.h>

#include "fastnn.h"
#include "fnn_index.h"
#include "fnn_omp.h"

/* Elements copied or added per thread before a second thread pays off. */
#define EMB_GRAIN 65536.0

/* 1 when every index lies in [0, V). */
static int indices_valid(const int64_t *idx, int64_t M, int64_t V)
{
    for (int64_t m = 0; m < M; m++) {
        if (idx[m] < 0 || idx[m] >= V) {
            return 0;
        }
    }
    return 1;
}

static int check_sizes(const int64_t *idx, int64_t M, int64_t V, int64_t D)
{
    if (M < 0 || V < 0 || D < 0) {
        return FNN_ERR_ARG;
    }
    if (!indices_valid(idx, M, V)) {
        return FNN_ERR_ARG;
    }
    return FNN_OK;
}

/* One lookup or scatter call, for the range functions below. */
typedef struct {
    void *out;                  /* Y, or dtable */
    const void *in;             /* table, or dY */
    const int64_t *idx;
    int64_t M, V, D;
    size_t elem;                /* bytes per value (gather) */
} emb_call;

/* Forward: output rows [m0, m1). FNN_ERR_ARG when an index changed since the
 * scan (the rest of the rows are still written). */
static int gather_range(void *ctx, int64_t m0, int64_t m1, int slot)
{
    const emb_call *c = (const emb_call *)ctx;
    const size_t row = (size_t)c->D * c->elem;
    int status = FNN_OK;
    (void)slot;
    for (int64_t m = m0; m < m1; m++) {
        /* read once and checked again here: another thread may have changed
         * the index since the scan (fnn_index.h); such a row is zeros */
        const int64_t v = fnn_read_index(c->idx + m);
        if (v >= 0 && v < c->V) {
            memcpy((char *)c->out + (size_t)m * row, (const char *)c->in + (size_t)v * row, row);
        }
        else {
            memset((char *)c->out + (size_t)m * row, 0, row);
            status = FNN_ERR_ARG;
        }
    }
    return status;
}

/* Backward: table rows [v0, v1), zeroed, then every index in [v0, v1)
 * adds its dY row, in increasing m. One body for both types. */
#define EMB_SCATTER_RANGE(T, SFX)                                                    \
    static int scatter_range_##SFX(void *ctx, int64_t v0, int64_t v1, int slot)      \
    {                                                                                \
        const emb_call *c = (const emb_call *)ctx;                                   \
        T *dtable = (T *)c->out;                                                     \
        const T *dY = (const T *)c->in;                                              \
        const int64_t D = c->D;                                                      \
        (void)slot;                                                                  \
        memset(dtable + v0 * D, 0, (size_t)((v1 - v0) * D) * sizeof(T));            \
        for (int64_t m = 0; m < c->M; m++) {                                         \
            const int64_t v = fnn_read_index(c->idx + m);                            \
            if (v >= v0 && v < v1) {                                                 \
                T *row = dtable + v * D;                                             \
                const T *src = dY + m * D;                                           \
                _Pragma("omp simd")                                                  \
                for (int64_t d = 0; d < D; d++) {                                    \
                    row[d] += src[d];                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
        return FNN_OK;                                                               \
    }
EMB_SCATTER_RANGE(float, f32)
EMB_SCATTER_RANGE(double, f64)
#undef EMB_SCATTER_RANGE

/* The forward pass copies rows, whatever their type: one byte-level version. */
static int gather_rows(char *Y, const int64_t *idx, const char *table, int64_t M, int64_t V,
                       int64_t D, size_t elem, int nthreads)
{
    const int status = check_sizes(idx, M, V, D);
    const emb_call c = {.out = Y, .in = table, .idx = idx, .M = M, .V = V, .D = D, .elem = elem};

    if (status != FNN_OK) {
        return status;
    }
    return fnn_run_units(M, fnn_threads_for((double)M * (double)D, EMB_GRAIN, M, nthreads),
                         gather_range, (void *)&c);
}

/* The backward pass: each slot owns a contiguous range of table rows. Each
 * thread reads all M indices: worth it only with plenty of rows to add. */
static int scatter_rows(fnn_unit_fn range, void *dtable, const void *dY, const int64_t *idx,
                        int64_t M, int64_t V, int64_t D, int nthreads)
{
    const int status = check_sizes(idx, M, V, D);
    const emb_call c = {.out = dtable, .in = dY, .idx = idx, .M = M, .V = V, .D = D};

    if (status != FNN_OK) {
        return status;
    }
    return fnn_run_units(V, fnn_threads_for((double)M * (double)D, EMB_GRAIN, V, nthreads),
                         range, (void *)&c);
}

int fnn_embedding_forward_f32(float *Y, const int64_t *idx, const float *table,
                              int64_t M, int64_t V, int64_t D, int nthreads)
{
    return gather_rows((char *)Y, idx, (const char *)table, M, V, D, sizeof(float), nthreads);
}

int fnn_embedding_forward_f64(double *Y, const int64_t *idx, const double *table,
                              int64_t M, int64_t V, int64_t D, int nthreads)
{
    return gather_rows((char *)Y, idx, (const char *)table, M, V, D, sizeof(double), nthreads);
}

int fnn_embedding_backward_f32(float *dtable, const float *dY, const int64_t *idx,
                               int64_t M, int64_t V, int64_t D, int nthreads)
{
    return scatter_rows(scatter_range_f32, dtable, dY, idx, M, V, D, nthreads);
}

int fnn_embedding_backward_f64(double *dtable, const double *dY, const int64_t *idx,
                               int64_t M, int64_t V, int64_t D, int nthreads)
{
    return scatter_rows(scatter_range_f64, dtable, dY, idx, M, V, D, nthreads);
}
