/*
 * reduce.c -- fnn_ordered_sum: chunk partials computed on any number of
 * threads, added in chunk order (see fnn_reduce.h).
 */
#include <stdlib.h>

#include "fastnn.h"
#include "fnn_omp.h"
#include "fnn_reduce.h"

/* Partials kept on the stack up to this many doubles; more are allocated. */
#define PARTIALS_ON_STACK 512

typedef struct {
    fnn_chunk_fn fn;
    const void *ctx;
    int width;
    double *part;   /* chunk c's partials at part[c * width] */
} chunk_call;

static int chunk_partials(void *ctx, int64_t first, int64_t last, int slot)
{
    const chunk_call *call = (const chunk_call *)ctx;
    (void)slot;
    for (int64_t c = first; c < last; c++) {
        call->fn(call->ctx, c, call->part + c * call->width);
    }
    return FNN_OK;
}

int fnn_ordered_sum(double *total, int width, int64_t nchunks, fnn_chunk_fn fn, const void *ctx,
                    int nthreads)
{
    double stack[PARTIALS_ON_STACK];
    double *part = stack;
    int64_t c;
    int k;

    if (total == NULL || fn == NULL || width < 1 || width > FNN_REDUCE_MAX_WIDTH || nchunks < 0) {
        return FNN_ERR_ARG;
    }
    for (k = 0; k < width; k++) {
        total[k] = 0.0;
    }
    if (nthreads <= 1 || nchunks <= 1) {
        /* Serial: each chunk's partials added as they come, no buffer. */
        double one[FNN_REDUCE_MAX_WIDTH];
        for (c = 0; c < nchunks; c++) {
            fn(ctx, c, one);
            for (k = 0; k < width; k++) {
                total[k] += one[k];
            }
        }
        return FNN_OK;
    }
    if (nchunks * width > PARTIALS_ON_STACK) {
        part = (double *)malloc((size_t)(nchunks * width) * sizeof(double));
        if (part == NULL) {
            return FNN_ERR_NOMEM;
        }
    }
    {
        chunk_call call = {.fn = fn, .ctx = ctx, .width = width, .part = part};
        fnn_run_units(nchunks, nthreads, chunk_partials, &call);
    }
    for (c = 0; c < nchunks; c++) {
        for (k = 0; k < width; k++) {
            total[k] += part[c * width + k];
        }
    }
    if (part != stack) {
        free(part);
    }
    return FNN_OK;
}
