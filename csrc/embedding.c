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

/* Rows [v0, v1) owned by thread `tid` of `nt` (contiguous, fixed split). */
static void owned_rows(int64_t V, int tid, int nt, int64_t *v0, int64_t *v1)
{
    *v0 = V * tid / nt;
    *v1 = V * (tid + 1) / nt;
}

/* The forward pass copies rows, whatever their type: one byte-level version. */
static int gather_rows(char *Y, const int64_t *idx, const char *table, int64_t M, int64_t V,
                       int64_t D, size_t elem, int nthreads)
{
    const int status = check_sizes(idx, M, V, D);
    const size_t row = (size_t)D * elem;
    int nt, changed = 0;

    if (status != FNN_OK) {
        return status;
    }
    nt = fnn_threads_for((double)M * (double)D, EMB_GRAIN, nthreads);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        fnn_note_team();
        #pragma omp for schedule(static) nowait
        for (int64_t m = 0; m < M; m++) {
            /* read once and checked again here: another thread may have changed
             * the index since the scan (fnn_index.h); such a row is zeros */
            const int64_t v = fnn_read_index(idx + m);
            if (v >= 0 && v < V) {
                memcpy(Y + (size_t)m * row, table + (size_t)v * row, row);
            }
            else {
                memset(Y + (size_t)m * row, 0, row);
                #pragma omp atomic write
                changed = 1;
            }
        }
    }
    return changed ? FNN_ERR_ARG : FNN_OK;
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
    const int status = check_sizes(idx, M, V, D);
    int nt;

    if (status != FNN_OK) {
        return status;
    }
    /* Each thread reads all M indices: worth it only with plenty of rows to add. */
    nt = fnn_threads_for((double)M * (double)D, EMB_GRAIN, nthreads);
    if (nt > V) {
        nt = V > 0 ? (int)V : 1;
    }
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        fnn_note_team();
        int64_t v0, v1;
        owned_rows(V, fnn_omp_thread_num(), fnn_omp_num_threads(), &v0, &v1);
        memset(dtable + v0 * D, 0, (size_t)((v1 - v0) * D) * sizeof(float));
        for (int64_t m = 0; m < M; m++) {
            const int64_t v = fnn_read_index(idx + m);
            if (v >= v0 && v < v1) {
                float *row = dtable + v * D;
                const float *src = dY + m * D;
                #pragma omp simd
                for (int64_t d = 0; d < D; d++) {
                    row[d] += src[d];
                }
            }
        }
    }
    return FNN_OK;
}

int fnn_embedding_backward_f64(double *dtable, const double *dY, const int64_t *idx,
                               int64_t M, int64_t V, int64_t D, int nthreads)
{
    const int status = check_sizes(idx, M, V, D);
    int nt;

    if (status != FNN_OK) {
        return status;
    }
    nt = fnn_threads_for((double)M * (double)D, EMB_GRAIN, nthreads);
    if (nt > V) {
        nt = V > 0 ? (int)V : 1;
    }
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        fnn_note_team();
        int64_t v0, v1;
        owned_rows(V, fnn_omp_thread_num(), fnn_omp_num_threads(), &v0, &v1);
        memset(dtable + v0 * D, 0, (size_t)((v1 - v0) * D) * sizeof(double));
        for (int64_t m = 0; m < M; m++) {
            const int64_t v = fnn_read_index(idx + m);
            if (v >= v0 && v < v1) {
                double *row = dtable + v * D;
                const double *src = dY + m * D;
                #pragma omp simd
                for (int64_t d = 0; d < D; d++) {
                    row[d] += src[d];
                }
            }
        }
    }
    return FNN_OK;
}
