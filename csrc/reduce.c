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
    if (nthreads > nchunks) {
        nthreads = (int)nchunks;
    }
    if (nthreads <= 1) {
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
    #pragma omp parallel num_threads(nthreads)
    {
        fnn_note_team();
        #pragma omp for schedule(static) nowait
        for (c = 0; c < nchunks; c++) {
            fn(ctx, c, part + c * width);
        }
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
