/*
 * dense.c -- backward pass of a dense layer, and the column sum it uses.
 *
 *   fnn_dense_backward_f32   for Y = act(X W + b), X[N,I], W[I,O], b[O]:
 *                            dZ[N,O] = dY * act'(Z or Y)   (scratch, overwritten;
 *                                                           unused for linear)
 *                            dW[I,O] = X^T dZ              (overwritten)
 *                            db[O]   = column sums of dZ   (overwritten; may be NULL)
 *                            dX[N,I] = dZ W^T              (overwritten; may be NULL)
 *   fnn_colsum_f32           out[O] = sum over the N rows of X[N,O]
 *
 * The two products go through the GEMM with its transpose flags, so no
 * transposed copy of X or W is ever made; the GEMM splits over output tiles
 * only, hence dW and dX are bitwise the same for any thread count. db comes
 * from the dW product too: the GEMM sums dZ's columns in double as it packs
 * them, sparing a pass over dZ (see weight_gradient for the row chunks).
 *
 * fnn_colsum_f32 (the other layers' bias gradients) is deterministic by
 * construction: rows are cut into fixed chunks of COLSUM_ROWS (whatever the
 * thread count), each chunk's columns
 * are summed in row order, in double, by one thread, and the chunks'
 * partial sums are added in chunk order. Threads share out the (chunk,
 * column block) pieces, so a layer of few columns still uses every thread.
 */
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fnn_omp.h"
#include "gemm_internal.h"

/* Columns per piece: one double accumulator per column lives on the stack
 * (2 KiB), and a row's slice of a piece is a few cache lines. */
#define COLSUM_BLOCK 256
/* Rows per piece: part of the sums' definition, never of the thread count. */
#define COLSUM_ROWS 512
#define COLSUM_GRAIN 32768.0
/* The weight gradient's row chunks: at least this many rows each, at most
 * DW_MAX_CHUNKS of them (their partial dW are the scratch). */
#define DW_CHUNK_ROWS 1024
#define DW_MAX_CHUNKS 8
/* dW of more elements than this has tiles enough to share: one GEMM (and no
 * partials to hold). */
#define DW_CHUNKED_MAX (1 << 18)
#define DW_GRAIN_FLOPS 4e6

/* part[c0:c0+w] = column sums of rows [r0, r1) of X[:, c0:c0+w] (X has O columns). */
static void colsum_piece(double *part, const float *X, int64_t r0, int64_t r1, int64_t O,
                         int64_t c0, int64_t w)
{
    double acc[COLSUM_BLOCK];

    for (int64_t j = 0; j < w; j++) {
        acc[j] = 0.0;
    }
    for (int64_t i = r0; i < r1; i++) {
        const float *x = X + i * O + c0;
        #pragma omp simd
        for (int64_t j = 0; j < w; j++) {
            acc[j] += (double)x[j];
        }
    }
    memcpy(part + c0, acc, (size_t)w * sizeof(double));
}

typedef struct {
    double *parts;      /* chunk c's column sums at parts[c * O] */
    const float *X;
    int64_t N, O, nblocks;
} colsum_call;

/* Pieces [first, last): piece p is row chunk p / nblocks, column block
 * p % nblocks, summed into its chunk's own partials. */
static int colsum_pieces(void *ctx, int64_t first, int64_t last, int slot)
{
    const colsum_call *c = (const colsum_call *)ctx;
    (void)slot;
    for (int64_t p = first; p < last; p++) {
        const int64_t chunk = p / c->nblocks, c0 = (p % c->nblocks) * COLSUM_BLOCK;
        const int64_t r0 = chunk * COLSUM_ROWS;
        colsum_piece(c->parts + chunk * c->O, c->X, r0,
                     c->N - r0 < COLSUM_ROWS ? c->N : r0 + COLSUM_ROWS, c->O, c0,
                     c->O - c0 < COLSUM_BLOCK ? c->O - c0 : COLSUM_BLOCK);
    }
    return FNN_OK;
}

int fnn_colsum_f32(float *out, const float *X, int64_t N, int64_t O, int nthreads)
{
    int64_t nblocks, nchunks, npieces;
    double *parts;

    if (N < 0 || O < 0) {
        return FNN_ERR_ARG;
    }
    if (O == 0) {
        return FNN_OK;
    }
    if (out == NULL || (N > 0 && X == NULL)) {
        return FNN_ERR_ARG;
    }
    if (N == 0) {
        memset(out, 0, (size_t)O * sizeof(float));
        return FNN_OK;
    }
    nblocks = (O + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
    nchunks = (N + COLSUM_ROWS - 1) / COLSUM_ROWS;
    npieces = nblocks * nchunks;
    parts = malloc((size_t)(nchunks * O) * sizeof(double));
    if (parts == NULL) {
        return FNN_ERR_NOMEM;
    }
    {
        const colsum_call c = {.parts = parts, .X = X, .N = N, .O = O, .nblocks = nblocks};
        fnn_run_units(npieces,
                      fnn_threads_for((double)N * (double)O, COLSUM_GRAIN, npieces, nthreads),
                      colsum_pieces, (void *)&c);
    }
    for (int64_t j = 0; j < O; j++) {
        double sum = parts[j];
        for (int64_t c = 1; c < nchunks; c++) {
            sum += parts[c * O + j];
        }
        out[j] = (float)sum;
    }
    free(parts);
    return FNN_OK;
}

typedef struct {
    float *dW, *part;   /* chunk 0's dW, chunk c > 0's at part[(c - 1) * In * O] */
    double *sums;       /* NULL, or chunk c's db sums at sums[c * O] */
    const float *X, *dZ;
    int64_t N, In, O, rows;
} dw_call;

/* Row chunks [first, last) of the chunked weight gradient, each a GEMM on
 * one thread (nothing to share inside a chunk). */
static int dw_chunks(void *ctx, int64_t first, int64_t last, int slot)
{
    const dw_call *w = (const dw_call *)ctx;
    const int64_t In = w->In, O = w->O;
    int status = FNN_OK;
    (void)slot;
    for (int64_t c = first; c < last && status == FNN_OK; c++) {
        const int64_t r0 = c * w->rows, n = w->N - r0 < w->rows ? w->N - r0 : w->rows;
        status = fnn_gemm_run_f32(c == 0 ? w->dW : w->part + (c - 1) * In * O, NULL,
                                  w->sums == NULL ? NULL : w->sums + c * O, w->X + r0 * In,
                                  w->dZ + r0 * O, NULL, In, O, n, In, O, O, 1, 0, 1.0f, 0.0f,
                                  FNN_ACT_LINEAR, 1);
    }
    return status;
}

/* dW[In,O] = X^T dZ and db[O] = column sums of dZ (db may be NULL), N > 0:
 * GEMMs with op(A) = X^T (X stored N x In: trans_a, lda = In), db summed in
 * double by the GEMM as it packs dZ (op(B)) and rounded once. Many rows
 * against a small dW (a dense layer on batch x time rows) leave threads
 * little to share but dW's few tiles, synchronised once per K block: there
 * the rows are cut into fixed chunks (DW_CHUNK_ROWS or more, at most
 * DW_MAX_CHUNKS: a function of the shape only), each chunk's partial dW and
 * db computed by one thread, the partials added in chunk order -- the same
 * bits for any thread count. A large dW is one GEMM over every row. */
static int weight_gradient(float *dW, float *db, const float *X, const float *dZ, int64_t N,
                           int64_t In, int64_t O, int nthreads)
{
    int64_t nchunks = N / DW_CHUNK_ROWS, rows, c;
    double *sums = NULL;
    float *part = NULL;
    int status = FNN_OK;

    if (nchunks > DW_MAX_CHUNKS) {
        nchunks = DW_MAX_CHUNKS;
    }
    if (In * O > DW_CHUNKED_MAX || nchunks < 2) {
        nchunks = 1;
    }
    rows = (N + nchunks - 1) / nchunks;
    /* chunk 0 writes dW, the others their own slots; db's sums per chunk */
    if (nchunks > 1) {
        part = malloc((size_t)((nchunks - 1) * In * O) * sizeof(float));
    }
    if (db != NULL) {
        sums = calloc((size_t)(nchunks * O), sizeof(double));
    }
    if ((nchunks > 1 && part == NULL) || (db != NULL && sums == NULL)) {
        free(part);
        free(sums);
        return FNN_ERR_NOMEM;
    }
    if (nchunks == 1) {
        status = fnn_gemm_run_f32(dW, NULL, sums, X, dZ, NULL, In, O, N, In, O, O, 1, 0, 1.0f,
                                  0.0f, FNN_ACT_LINEAR, nthreads);
    }
    else {
        const dw_call call = {.dW = dW, .part = part, .sums = sums, .X = X, .dZ = dZ, .N = N,
                              .In = In, .O = O, .rows = rows};
        status = fnn_run_units(nchunks,
                               fnn_threads_for(2.0 * (double)N * (double)In * (double)O,
                                               DW_GRAIN_FLOPS, nchunks, nthreads),
                               dw_chunks, (void *)&call);
        for (c = 1; c < nchunks && status == FNN_OK; c++) {
            const float *dw = part + (c - 1) * In * O;
            #pragma omp simd
            for (int64_t k = 0; k < In * O; k++) {
                dW[k] += dw[k];
            }
        }
    }
    if (status == FNN_OK && db != NULL) {
        for (int64_t j = 0; j < O; j++) {
            double total = sums[j];
            for (c = 1; c < nchunks; c++) {
                total += sums[c * O + j];
            }
            db[j] = (float)total;
        }
    }
    free(part);
    free(sums);
    return status;
}

/* The input width is named In, not I: <complex.h> (which NumPy's headers
 * pull into the Cython module) defines I as a macro. */
int fnn_dense_backward_f32(float *dX, float *dW, float *db, float *dZ,
                           const float *dY, const float *X, const float *W,
                           const float *Z, const float *Y,
                           int64_t N, int64_t In, int64_t O, int act, int nthreads)
{
    int status;

    if (N < 0 || In < 0 || O < 0 || act < 0 || act >= FNN_ACT_COUNT) {
        return FNN_ERR_ARG;
    }
    if ((In * O > 0 && dW == NULL) || (N * O > 0 && (dZ == NULL || dY == NULL))
        || (N * In > 0 && X == NULL) || (dX != NULL && In * O > 0 && W == NULL)) {
        return FNN_ERR_ARG;
    }

    /* dZ = dY * act'(.) (act_backward checks that the Z or Y this activation
     * reads was given); for linear dZ is dY itself, read in place. */
    if (act == FNN_ACT_LINEAR) {
        dZ = (float *)dY;
    }
    else {
        status = fnn_act_backward_f32(dZ, dY, Z, Y, N, O, act, nthreads);
        if (status != FNN_OK) {
            return status;
        }
    }

    if (In * O > 0 && N > 0) {
        status = weight_gradient(dW, db, X, dZ, N, In, O, nthreads);
        if (status != FNN_OK) {
            return status;
        }
    }
    else {
        /* With no rows the sums are empty: zeros, without asking the GEMM. */
        if (In * O > 0) {
            memset(dW, 0, (size_t)(In * O) * sizeof(float));
        }
        if (db != NULL) {
            status = fnn_colsum_f32(db, dZ, N, O, nthreads);
            if (status != FNN_OK) {
                return status;
            }
        }
    }

    /* dX[N,In] = dZ W^T: op(B) = W^T with W stored In x O (trans_b, ldb = O). */
    if (dX != NULL && N * In > 0) {
        if (O == 0) {
            memset(dX, 0, (size_t)(N * In) * sizeof(float));
        }
        else {
            status = fnn_gemm_f32(dX, dZ, W, NULL, N, In, O, O, O, In, 0, 1, 1.0f, 0.0f,
                                  FNN_ACT_LINEAR, nthreads);
            if (status != FNN_OK) {
                return status;
            }
        }
    }
    return FNN_OK;
}
