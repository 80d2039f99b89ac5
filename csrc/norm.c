/*
 * norm.c -- batch normalization over the channels of X[M,C], float32.
 *
 * X is any channels-last tensor viewed as M = N*... rows of C channels;
 * statistics run over the M rows of each channel.
 *
 *   fnn_batchnorm_stats_f32          mean[C], var[C] = per-channel batch mean and
 *                                    biased variance (OVERWRITTEN)
 *   fnn_batchnorm_update_moving_f32  moving = moving * momentum + batch * (1 - momentum)
 *                                    (Keras' formula, biased batch variance), in place
 *   fnn_batchnorm_forward_f32        Y[M,C] = (X - mean) * k + beta,
 *                                    k = gamma / sqrt(var + eps)  (Y may equal X)
 *   fnn_batchnorm_backward_f32       dgamma[C], dbeta[C] (OVERWRITTEN) and dX[M,C]
 *
 * Statistics and gradient sums are taken in double, in two passes (mean,
 * then squared deviations), so a large mean does not cancel the variance.
 *
 * Determinism: every reduction runs over a fixed partition of the rows into
 * chunks (BN_MIN_ROWS rows or more, at most BN_MAX_CHUNKS chunks: a function
 * of M alone) and of the channels into blocks of BN_COLS. Each (chunk, block)
 * task sums its rows in row order into its own slot of a scratch array;
 * the chunks are then added in chunk order. The partition never depends on
 * the thread count, so results are bitwise identical for any nthreads.
 * Tasks are split over threads in static ranges (fnn_run_units) -- each writes only its own
 * slot, no atomics. Element-wise passes split fixed row blocks. Small calls
 * run on one thread, with no parallel region.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fnn_omp.h"

#define BN_COLS 256          /* channels per task: one stack accumulator block */
#define BN_MIN_ROWS 64       /* rows per chunk, at least */
#define BN_MAX_CHUNKS 128    /* chunks at most: scratch is <= 2 * 128 * C doubles */
#define BN_GRAIN 32768.0     /* elements per thread before a second one pays off */
#define BN_ELEM_BLOCK 8192   /* elements per block of an element-wise pass (about) */

enum { RED_SUM = 0, RED_SQDEV = 1, RED_BACKWARD = 2 };

/* The fixed partition of the rows into chunks and the channels into blocks. */
typedef struct {
    int64_t rows;     /* rows per chunk (the last may have fewer) */
    int64_t nchunks;
    int64_t nblocks;  /* channel blocks of BN_COLS */
} bn_plan;

static bn_plan plan_for(int64_t M, int64_t C)
{
    bn_plan p;
    p.rows = (M + BN_MAX_CHUNKS - 1) / BN_MAX_CHUNKS;
    if (p.rows < BN_MIN_ROWS) {
        p.rows = BN_MIN_ROWS;
    }
    p.nchunks = (M + p.rows - 1) / p.rows;
    p.nblocks = (C + BN_COLS - 1) / BN_COLS;
    return p;
}

/* One task of a reduction: rows [r0, r1), channels [c0, c0 + w).
 *   RED_SUM:      s1[c] = sum x
 *   RED_SQDEV:    s1[c] = sum (x - m[c])^2
 *   RED_BACKWARD: s1[c] = sum dy,  s2[c] = sum dy * (x - m[c])
 * s1, s2 point at this task's slot (indexed by channel c0 + j). */
static void reduce_task(double *s1, double *s2, const float *X, const float *dY,
                        const double *m, int64_t r0, int64_t r1, int64_t C,
                        int64_t c0, int64_t w, int kind)
{
    double a1[BN_COLS], a2[BN_COLS];

    for (int64_t j = 0; j < w; j++) {
        a1[j] = 0.0;
        a2[j] = 0.0;
    }
    for (int64_t r = r0; r < r1; r++) {
        const float *x = X + r * C + c0;
        if (kind == RED_SUM) {
            #pragma omp simd
            for (int64_t j = 0; j < w; j++) {
                a1[j] += (double)x[j];
            }
        }
        else if (kind == RED_SQDEV) {
            const double *mc = m + c0;
            #pragma omp simd
            for (int64_t j = 0; j < w; j++) {
                const double d = (double)x[j] - mc[j];
                a1[j] += d * d;
            }
        }
        else {
            const float *dy = dY + r * C + c0;
            const double *mc = m + c0;
            #pragma omp simd
            for (int64_t j = 0; j < w; j++) {
                const double g = (double)dy[j];
                a1[j] += g;
                a2[j] += g * ((double)x[j] - mc[j]);
            }
        }
    }
    for (int64_t j = 0; j < w; j++) {
        s1[c0 + j] = a1[j];
    }
    if (kind == RED_BACKWARD) {
        for (int64_t j = 0; j < w; j++) {
            s2[c0 + j] = a2[j];
        }
    }
}

/* One reduction's arrays and plan, for reduce_tasks. */
typedef struct {
    bn_plan p;
    double *partial;
    int64_t slots;
    const float *X, *dY;
    const double *m;
    int64_t M, C;
    int kind;
} bn_tasks;

/* Tasks [first, last): task t is chunk t / nblocks, channel block
 * t % nblocks; its sums go to partial[chunk * C + c] (and, second half, the
 * second sums), so each chunk's partials are its own whoever computes them. */
static int reduce_tasks(void *ctx, int64_t first, int64_t last, int slot)
{
    const bn_tasks *bt = (const bn_tasks *)ctx;
    const bn_plan *p = &bt->p;
    (void)slot;
    for (int64_t t = first; t < last; t++) {
        const int64_t ch = t / p->nblocks;
        const int64_t c0 = (t % p->nblocks) * BN_COLS;
        const int64_t r0 = ch * p->rows;
        const int64_t r1 = bt->M - r0 < p->rows ? bt->M : r0 + p->rows;
        reduce_task(bt->partial + ch * bt->C,
                    bt->slots == 2 ? bt->partial + (p->nchunks + ch) * bt->C : NULL, bt->X,
                    bt->dY, bt->m, r0, r1, bt->C, c0,
                    bt->C - c0 < BN_COLS ? bt->C - c0 : BN_COLS, bt->kind);
    }
    return FNN_OK;
}

/* out1[C] (and out2[C] for RED_BACKWARD) = the per-channel sums of `kind`
 * over all M rows, chunk by chunk in fixed order. M >= 1. */
static int reduce(double *out1, double *out2, const float *X, const float *dY, const double *m,
                  int64_t M, int64_t C, int kind, int nthreads)
{
    const bn_plan p = plan_for(M, C);
    const int64_t ntasks = p.nchunks * p.nblocks;
    const int64_t slots = kind == RED_BACKWARD ? 2 : 1;
    double *partial;

    partial = (double *)malloc((size_t)(slots * p.nchunks * C) * sizeof(double));
    if (partial == NULL) {
        return FNN_ERR_NOMEM;
    }
    {
        const bn_tasks bt = {.p = p, .partial = partial, .slots = slots, .X = X, .dY = dY,
                             .m = m, .M = M, .C = C, .kind = kind};
        fnn_run_units(ntasks, fnn_threads_for((double)M * (double)C, BN_GRAIN, ntasks, nthreads),
                      reduce_tasks, (void *)&bt);
    }
    for (int64_t c = 0; c < C; c++) {
        double a = 0.0, b = 0.0;
        for (int64_t ch = 0; ch < p.nchunks; ch++) {
            a += partial[ch * C + c];
            if (kind == RED_BACKWARD) {
                b += partial[(p.nchunks + ch) * C + c];
            }
        }
        out1[c] = a;
        if (kind == RED_BACKWARD) {
            out2[c] = b;
        }
    }
    free(partial);
    return FNN_OK;
}

int fnn_batchnorm_stats_f32(float *mean, float *var, const float *X, int64_t M, int64_t C,
                            int nthreads)
{
    double *acc;
    int status;

    if (M < 1 || C < 0) {
        return FNN_ERR_ARG;      /* statistics of an empty batch are undefined */
    }
    if (C == 0) {
        return FNN_OK;
    }
    if (mean == NULL || var == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    acc = (double *)malloc((size_t)(2 * C) * sizeof(double));
    if (acc == NULL) {
        return FNN_ERR_NOMEM;
    }
    /* acc[0:C] = sums, then means; acc[C:2C] = sums of squared deviations. */
    status = reduce(acc, NULL, X, NULL, NULL, M, C, RED_SUM, nthreads);
    if (status == FNN_OK) {
        for (int64_t c = 0; c < C; c++) {
            acc[c] /= (double)M;
        }
        status = reduce(acc + C, NULL, X, NULL, acc, M, C, RED_SQDEV, nthreads);
    }
    if (status == FNN_OK) {
        for (int64_t c = 0; c < C; c++) {
            mean[c] = (float)acc[c];
            var[c] = (float)(acc[C + c] / (double)M);
        }
    }
    free(acc);
    return status;
}

int fnn_batchnorm_update_moving_f32(float *moving_mean, float *moving_var, const float *mean,
                                    const float *var, int64_t C, double momentum)
{
    const double rest = 1.0 - momentum;

    if (C < 0) {
        return FNN_ERR_ARG;
    }
    if (C > 0 && (moving_mean == NULL || moving_var == NULL || mean == NULL || var == NULL)) {
        return FNN_ERR_ARG;
    }
    /* C values: never worth a thread. */
    for (int64_t c = 0; c < C; c++) {
        moving_mean[c] = (float)((double)moving_mean[c] * momentum + (double)mean[c] * rest);
        moving_var[c] = (float)((double)moving_var[c] * momentum + (double)var[c] * rest);
    }
    return FNN_OK;
}

/* Rows per block of an element-wise pass: about BN_ELEM_BLOCK elements
 * (a function of C only, so every element is computed the same way). */
static int64_t elem_rows(int64_t C)
{
    const int64_t rows = BN_ELEM_BLOCK / (C > 0 ? C : 1);
    return rows > 0 ? rows : 1;
}

/* Y[r0:r1, :] = (X - mean) * k + beta (beta may be NULL). */
static void normalize_rows(float *Y, const float *X, const float *mean, const float *k,
                           const float *beta, int64_t r0, int64_t r1, int64_t C)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *x = X + r * C;
        float *y = Y + r * C;
        if (beta != NULL) {
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                y[c] = (x[c] - mean[c]) * k[c] + beta[c];
            }
        }
        else {
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                y[c] = (x[c] - mean[c]) * k[c];
            }
        }
    }
}

/* dX[r0:r1, :] = k * (dY - a - (X - mean) * b); with a == NULL (fixed
 * statistics) dX = k * dY. */
static void backward_rows(float *dX, const float *dY, const float *X, const float *mean,
                          const float *k, const float *a, const float *b,
                          int64_t r0, int64_t r1, int64_t C)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *dy = dY + r * C;
        float *dx = dX + r * C;
        if (a != NULL) {
            const float *x = X + r * C;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                dx[c] = k[c] * (dy[c] - a[c] - (x[c] - mean[c]) * b[c]);
            }
        }
        else {
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                dx[c] = k[c] * dy[c];
            }
        }
    }
}

/* One element-wise pass, for bn_row_blocks: normalize (Y from X) or, with
 * `backward`, dX from dY (see backward_rows). Units are blocks of `rows` rows. */
typedef struct {
    int backward;
    float *out;                 /* Y, or dX */
    const float *X, *dY, *mean, *k, *beta, *a, *b;
    int64_t rows, M, C;
} bn_rows;

static int bn_row_blocks(void *ctx, int64_t first, int64_t last, int slot)
{
    const bn_rows *br = (const bn_rows *)ctx;
    const int64_t r0 = first * br->rows;
    const int64_t r1 = last * br->rows < br->M ? last * br->rows : br->M;
    (void)slot;
    if (br->backward) {
        backward_rows(br->out, br->dY, br->X, br->mean, br->k, br->a, br->b, r0, r1, br->C);
    }
    else {
        normalize_rows(br->out, br->X, br->mean, br->k, br->beta, r0, r1, br->C);
    }
    return FNN_OK;
}

static void run_rows(const bn_rows *br, int nthreads)
{
    const int64_t blocks = (br->M + br->rows - 1) / br->rows;
    fnn_run_units(blocks,
                  fnn_threads_for((double)br->M * (double)br->C, BN_GRAIN, blocks, nthreads),
                  bn_row_blocks, (void *)br);
}

int fnn_batchnorm_forward_f32(float *Y, const float *X, const float *mean, const float *var,
                              const float *gamma, const float *beta, int64_t M, int64_t C,
                              double eps, int nthreads)
{
    float *k;
    int64_t rows;

    if (M < 0 || C < 0 || !(eps >= 0.0)) {
        return FNN_ERR_ARG;
    }
    if (M == 0 || C == 0) {
        return FNN_OK;
    }
    if (Y == NULL || X == NULL || mean == NULL || var == NULL) {
        return FNN_ERR_ARG;
    }
    k = (float *)malloc((size_t)C * sizeof(float));
    if (k == NULL) {
        return FNN_ERR_NOMEM;
    }
    for (int64_t c = 0; c < C; c++) {
        const double inv = 1.0 / sqrt((double)var[c] + eps);
        k[c] = (float)((gamma != NULL ? (double)gamma[c] : 1.0) * inv);
    }
    rows = elem_rows(C);
    {
        const bn_rows br = {.out = Y, .X = X, .mean = mean, .k = k, .beta = beta, .rows = rows,
                            .M = M, .C = C};
        run_rows(&br, nthreads);
    }
    free(k);
    return FNN_OK;
}

/* The derivation, per channel, with s = 1 / sqrt(var + eps),
 * xhat = (x - mean) s and y = gamma xhat + beta:
 *   dbeta  = sum dy,   dgamma = sum dy xhat = s * sum dy (x - mean)
 *   batch statistics:  dx = gamma s (dy - dbeta / M - (x - mean) s dgamma / M)
 *   fixed statistics:  dx = gamma s dy */
int fnn_batchnorm_backward_f32(float *dX, float *dgamma, float *dbeta, const float *dY,
                               const float *X, const float *mean, const float *var,
                               const float *gamma, int64_t M, int64_t C, double eps,
                               int batch_stats, int nthreads)
{
    const int need_sums = dgamma != NULL || dbeta != NULL || (dX != NULL && batch_stats);
    double *acc;      /* [mean | sum dy | sum dy (x - mean)], C each */
    float *coef;      /* [k | a | b], C each */
    int status = FNN_OK;

    if (M < 0 || C < 0 || !(eps >= 0.0)) {
        return FNN_ERR_ARG;
    }
    if (C == 0) {
        return FNN_OK;
    }
    if (mean == NULL || var == NULL || (M > 0 && (dY == NULL || X == NULL))) {
        return FNN_ERR_ARG;
    }
    acc = (double *)calloc((size_t)(3 * C), sizeof(double));
    coef = (float *)malloc((size_t)(3 * C) * sizeof(float));
    if (acc == NULL || coef == NULL) {
        free(acc);
        free(coef);
        return FNN_ERR_NOMEM;
    }
    for (int64_t c = 0; c < C; c++) {
        acc[c] = (double)mean[c];
    }
    if (need_sums && M > 0) {
        status = reduce(acc + C, acc + 2 * C, X, dY, acc, M, C, RED_BACKWARD, nthreads);
    }
    if (status == FNN_OK) {
        for (int64_t c = 0; c < C; c++) {
            const double s = 1.0 / sqrt((double)var[c] + eps);
            const double sdy = acc[C + c];
            const double sdyx = acc[2 * C + c];
            if (dbeta != NULL) {
                dbeta[c] = (float)sdy;
            }
            if (dgamma != NULL) {
                dgamma[c] = (float)(sdyx * s);
            }
            coef[c] = (float)((gamma != NULL ? (double)gamma[c] : 1.0) * s);
            if (M > 0) {
                coef[C + c] = (float)(sdy / (double)M);
                coef[2 * C + c] = (float)(sdyx * s * s / (double)M);
            }
        }
    }
    if (status == FNN_OK && dX != NULL && M > 0) {
        const float *a = batch_stats ? coef + C : NULL;
        const bn_rows br = {.backward = 1, .out = dX, .dY = dY, .X = X, .mean = mean,
                            .k = coef, .a = a, .b = coef + 2 * C, .rows = elem_rows(C), .M = M,
                            .C = C};
        run_rows(&br, nthreads);
    }
    free(acc);
    free(coef);
    return status;
}
