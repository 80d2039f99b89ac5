/*
 * pool.c -- 2-D max and average pooling over NHWC images.
 *
 *   fnn_max_pool2d_forward_f32   Y[N,OH,OW,C] = max of X[N,H,W,C] over each window;
 *                                argmax[N,OH,OW,C] (may be NULL) = h * W + w of
 *                                the maximum, the first in row-major window order
 *                                on ties; a NaN is the maximum of its window (the
 *                                first NaN wins).
 *   fnn_max_pool2d_backward_f32  dX[N,H,W,C] (OVERWRITTEN) = zeros, plus each
 *                                dY[n,i,j,c] added at (n, argmax[n,i,j,c], c).
 *   fnn_avg_pool2d_forward_f32   Y = sum over the window / count of the window's
 *                                elements inside X (TF/Keras "same" padding).
 *   fnn_avg_pool2d_backward_f32  dX (OVERWRITTEN) = each dY / count spread over
 *                                the window's elements inside X.
 *
 * Window (i, j) covers rows i*SH - top ... + KH - 1 and columns j*SW - left
 * ... + KW - 1; rows and columns outside X are padding, which never wins a
 * maximum and is not counted in a mean. The caller computes OH, OW and the
 * top/left padding (Keras' formulas, fastnn.backend.ops); the kernels check
 * that every window holds at least one element of X, so they never read or
 * write outside the arrays whatever the arguments.
 *
 * Work is split over units of (image, block of POOL_CBLOCK channels): a unit
 * owns its slice of Y and of dX entirely (argmax indexes its own image's
 * plane), so there are no atomics, and every output is computed by one thread
 * in a fixed order: bitwise the same for any nthreads. The inner loops run
 * over the contiguous channels of a pixel.
 */
#include <string.h>

#include "fastnn.h"
#include "fnn_index.h"
#include "fnn_omp.h"

#define POOL_CBLOCK 64          /* channels per unit of work (fixed: determinism) */
#define POOL_GRAIN 65536.0      /* window elements per thread worth a parallel region */

typedef struct {
    int64_t N, H, W, C, OH, OW, KH, KW, SH, SW, top, left;
} pool_geom;

static int geom_check(const pool_geom *g)
{
    if (g->N < 0 || g->H < 0 || g->W < 0 || g->C < 0 || g->OH < 0 || g->OW < 0
        || g->KH < 1 || g->KW < 1 || g->SH < 1 || g->SW < 1 || g->top < 0 || g->left < 0) {
        return FNN_ERR_ARG;
    }
    if (g->N * g->C * g->OH * g->OW == 0) {
        return FNN_OK;
    }
    /* Every window must reach into X: the first starts at -top, the last at
     * (O - 1) * S - top. */
    if (g->top >= g->KH || g->left >= g->KW || (g->OH - 1) * g->SH - g->top >= g->H
        || (g->OW - 1) * g->SW - g->left >= g->W) {
        return FNN_ERR_ARG;
    }
    return FNN_OK;
}

/* The window's rows [*lo, *hi) inside X along one axis. */
static inline void clamp_window(int64_t i, int64_t S, int64_t pad, int64_t K, int64_t size,
                                int64_t *lo, int64_t *hi)
{
    const int64_t start = i * S - pad;
    *lo = start < 0 ? 0 : start;
    *hi = start + K > size ? size : start + K;
}

static int64_t units_of(const pool_geom *g)
{
    return g->N * ((g->C + POOL_CBLOCK - 1) / POOL_CBLOCK);
}

/* The window elements a forward pass (or average backward pass) visits. */
static double window_work(const pool_geom *g)
{
    return (double)g->N * (double)g->OH * (double)g->OW * (double)g->C * (double)(g->KH * g->KW);
}

/* One kernel call: its arrays and geometry, for the per-unit workers below. */
typedef struct pool_call pool_call;
typedef void (*pool_unit_fn)(const pool_call *call, int64_t unit);
struct pool_call {
    float *out;                 /* Y, or dX */
    const float *in;            /* X, or dY */
    int64_t *argmax_out;        /* max forward (may be NULL) */
    const int64_t *argmax_in;   /* max backward */
    pool_geom g;
    pool_unit_fn unit;          /* the worker run_pool_units gives each unit */
};

static int pool_units(void *ctx, int64_t first, int64_t last, int slot)
{
    const pool_call *call = (const pool_call *)ctx;
    (void)slot;
    for (int64_t u = first; u < last; u++) {
        call->unit(call, u);
    }
    return FNN_OK;
}

/* Every unit of work (one image's block of channels), on the threads `work`
 * (window elements) is worth; each unit's outputs are its own, so any thread
 * count gives the same bits. */
static void run_pool_units(pool_unit_fn fn, pool_call *call, double work, int nthreads)
{
    const int64_t units = units_of(&call->g);
    call->unit = fn;
    fnn_run_units(units, fnn_threads_for(work, POOL_GRAIN, units, nthreads), pool_units, call);
}

/* ---- max pooling ---------------------------------------------------------- */

static void max_forward_unit(const pool_call *call, int64_t unit)
{
    const pool_geom *g = &call->g;
    float *Y = call->out;
    int64_t *argmax = call->argmax_out;
    const float *X = call->in;
    const int64_t cblocks = (g->C + POOL_CBLOCK - 1) / POOL_CBLOCK;
    const int64_t n = unit / cblocks;
    const int64_t c0 = (unit % cblocks) * POOL_CBLOCK;
    const int64_t nc = g->C - c0 < POOL_CBLOCK ? g->C - c0 : POOL_CBLOCK;
    const float *Xn = X + n * g->H * g->W * g->C + c0;

    for (int64_t i = 0; i < g->OH; i++) {
        int64_t h0, h1;
        clamp_window(i, g->SH, g->top, g->KH, g->H, &h0, &h1);
        for (int64_t j = 0; j < g->OW; j++) {
            const int64_t o = ((n * g->OH + i) * g->OW + j) * g->C + c0;
            float *y = Y + o;
            int64_t w0, w1;
            float best[POOL_CBLOCK];
            int64_t at[POOL_CBLOCK];
            clamp_window(j, g->SW, g->left, g->KW, g->W, &w0, &w1);
            for (int64_t c = 0; c < nc; c++) {
                best[c] = Xn[(h0 * g->W + w0) * g->C + c];
                at[c] = h0 * g->W + w0;
            }
            for (int64_t h = h0; h < h1; h++) {
                for (int64_t w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                    const float *x = Xn + (h * g->W + w) * g->C;
                    const int64_t idx = h * g->W + w;
                    for (int64_t c = 0; c < nc; c++) {
                        const float v = x[c];
                        /* strictly greater: the first maximum wins; a NaN
                         * replaces a number, never another NaN */
                        if (v > best[c] || (v != v && best[c] == best[c])) {
                            best[c] = v;
                            at[c] = idx;
                        }
                    }
                }
            }
            memcpy(y, best, (size_t)nc * sizeof(float));
            if (argmax != NULL) {
                memcpy(argmax + o, at, (size_t)nc * sizeof(int64_t));
            }
        }
    }
}

int fnn_max_pool2d_forward_f32(float *Y, int64_t *argmax, const float *X,
                               int64_t N, int64_t H, int64_t W, int64_t C,
                               int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                               int64_t SH, int64_t SW, int64_t top, int64_t left, int nthreads)
{
    const pool_geom g = {N, H, W, C, OH, OW, KH, KW, SH, SW, top, left};
    const int status = geom_check(&g);

    if (status != FNN_OK || N * C * OH * OW == 0) {
        return status;
    }
    if (Y == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    {
        pool_call call = {Y, X, argmax, NULL, g, NULL};
        run_pool_units(max_forward_unit, &call, window_work(&g), nthreads);
    }
    return FNN_OK;
}

/* Zero a unit's slice of dX[n, :, :, c0:c0+nc]. */
static void zero_unit(float *dX, const pool_geom *g, int64_t n, int64_t c0, int64_t nc)
{
    float *d = dX + n * g->H * g->W * g->C + c0;
    if (nc == g->C) {
        memset(d, 0, (size_t)(g->H * g->W * g->C) * sizeof(float));
        return;
    }
    for (int64_t p = 0; p < g->H * g->W; p++) {
        memset(d + p * g->C, 0, (size_t)nc * sizeof(float));
    }
}

static void max_backward_unit(const pool_call *call, int64_t unit)
{
    const pool_geom *g = &call->g;
    float *dX = call->out;
    const float *dY = call->in;
    const int64_t *argmax = call->argmax_in;
    const int64_t cblocks = (g->C + POOL_CBLOCK - 1) / POOL_CBLOCK;
    const int64_t n = unit / cblocks;
    const int64_t c0 = (unit % cblocks) * POOL_CBLOCK;
    const int64_t nc = g->C - c0 < POOL_CBLOCK ? g->C - c0 : POOL_CBLOCK;
    const int64_t plane = g->H * g->W;
    float *dXn = dX + n * plane * g->C + c0;

    zero_unit(dX, g, n, c0, nc);
    for (int64_t p = 0; p < g->OH * g->OW; p++) {
        const int64_t o = (n * g->OH * g->OW + p) * g->C + c0;
        const float *dy = dY + o;
        const int64_t *at = argmax + o;
        for (int64_t c = 0; c < nc; c++) {
            /* an index outside the plane (a corrupted argmax) is skipped,
             * never written through; read once (fnn_index.h) */
            const int64_t a = fnn_read_index(at + c);
            if (a >= 0 && a < plane) {
                dXn[a * g->C + c] += dy[c];
            }
        }
    }
}

int fnn_max_pool2d_backward_f32(float *dX, const float *dY, const int64_t *argmax,
                                int64_t N, int64_t H, int64_t W, int64_t C,
                                int64_t OH, int64_t OW, int nthreads)
{
    /* The window size only sets the thread count here: use 1x1. */
    const pool_geom g = {N, H, W, C, OH, OW, 1, 1, 1, 1, 0, 0};

    if (N < 0 || H < 0 || W < 0 || C < 0 || OH < 0 || OW < 0) {
        return FNN_ERR_ARG;
    }
    if (N * H * W * C == 0) {
        return FNN_OK;
    }
    if (dX == NULL || (N * C * OH * OW > 0 && (dY == NULL || argmax == NULL))) {
        return FNN_ERR_ARG;
    }
    {
        pool_call call = {dX, dY, NULL, argmax, g, NULL};
        run_pool_units(max_backward_unit, &call, (double)N * (double)(H * W + OH * OW) * (double)C,
                  nthreads);
    }
    return FNN_OK;
}

/* ---- average pooling ------------------------------------------------------ */

static void avg_forward_unit(const pool_call *call, int64_t unit)
{
    const pool_geom *g = &call->g;
    float *Y = call->out;
    const float *X = call->in;
    const int64_t cblocks = (g->C + POOL_CBLOCK - 1) / POOL_CBLOCK;
    const int64_t n = unit / cblocks;
    const int64_t c0 = (unit % cblocks) * POOL_CBLOCK;
    const int64_t nc = g->C - c0 < POOL_CBLOCK ? g->C - c0 : POOL_CBLOCK;
    const float *Xn = X + n * g->H * g->W * g->C + c0;

    for (int64_t i = 0; i < g->OH; i++) {
        int64_t h0, h1;
        clamp_window(i, g->SH, g->top, g->KH, g->H, &h0, &h1);
        for (int64_t j = 0; j < g->OW; j++) {
            float *y = Y + ((n * g->OH + i) * g->OW + j) * g->C + c0;
            float acc[POOL_CBLOCK];
            int64_t w0, w1;
            float count;
            clamp_window(j, g->SW, g->left, g->KW, g->W, &w0, &w1);
            count = (float)((h1 - h0) * (w1 - w0));
            for (int64_t c = 0; c < nc; c++) {
                acc[c] = 0.0f;
            }
            for (int64_t h = h0; h < h1; h++) {
                for (int64_t w = w0; w < w1; w++) {
                    const float *x = Xn + (h * g->W + w) * g->C;
                    #pragma omp simd
                    for (int64_t c = 0; c < nc; c++) {
                        acc[c] += x[c];
                    }
                }
            }
            for (int64_t c = 0; c < nc; c++) {
                y[c] = acc[c] / count;
            }
        }
    }
}

int fnn_avg_pool2d_forward_f32(float *Y, const float *X,
                               int64_t N, int64_t H, int64_t W, int64_t C,
                               int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                               int64_t SH, int64_t SW, int64_t top, int64_t left, int nthreads)
{
    const pool_geom g = {N, H, W, C, OH, OW, KH, KW, SH, SW, top, left};
    const int status = geom_check(&g);

    if (status != FNN_OK || N * C * OH * OW == 0) {
        return status;
    }
    if (Y == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    {
        pool_call call = {Y, X, NULL, NULL, g, NULL};
        run_pool_units(avg_forward_unit, &call, window_work(&g), nthreads);
    }
    return FNN_OK;
}

static void avg_backward_unit(const pool_call *call, int64_t unit)
{
    const pool_geom *g = &call->g;
    float *dX = call->out;
    const float *dY = call->in;
    const int64_t cblocks = (g->C + POOL_CBLOCK - 1) / POOL_CBLOCK;
    const int64_t n = unit / cblocks;
    const int64_t c0 = (unit % cblocks) * POOL_CBLOCK;
    const int64_t nc = g->C - c0 < POOL_CBLOCK ? g->C - c0 : POOL_CBLOCK;
    float *dXn = dX + n * g->H * g->W * g->C + c0;

    zero_unit(dX, g, n, c0, nc);
    for (int64_t i = 0; i < g->OH; i++) {
        int64_t h0, h1;
        clamp_window(i, g->SH, g->top, g->KH, g->H, &h0, &h1);
        for (int64_t j = 0; j < g->OW; j++) {
            const float *dy = dY + ((n * g->OH + i) * g->OW + j) * g->C + c0;
            float share[POOL_CBLOCK];
            int64_t w0, w1;
            float count;
            clamp_window(j, g->SW, g->left, g->KW, g->W, &w0, &w1);
            count = (float)((h1 - h0) * (w1 - w0));
            for (int64_t c = 0; c < nc; c++) {
                share[c] = dy[c] / count;
            }
            for (int64_t h = h0; h < h1; h++) {
                for (int64_t w = w0; w < w1; w++) {
                    float *d = dXn + (h * g->W + w) * g->C;
                    #pragma omp simd
                    for (int64_t c = 0; c < nc; c++) {
                        d[c] += share[c];
                    }
                }
            }
        }
    }
}

int fnn_avg_pool2d_backward_f32(float *dX, const float *dY,
                                int64_t N, int64_t H, int64_t W, int64_t C,
                                int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                                int64_t SH, int64_t SW, int64_t top, int64_t left, int nthreads)
{
    const pool_geom g = {N, H, W, C, OH, OW, KH, KW, SH, SW, top, left};
    const int status = geom_check(&g);

    if (status != FNN_OK || N * H * W * C == 0) {
        return status;
    }
    if (dX == NULL || (N * C * OH * OW > 0 && dY == NULL)) {
        return FNN_ERR_ARG;
    }
    {
        pool_call call = {dX, dY, NULL, NULL, g, NULL};
        run_pool_units(avg_backward_unit, &call, window_work(&g), nthreads);
    }
    return FNN_OK;
}
