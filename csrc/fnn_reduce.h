/*
 * fnn_reduce.h -- deterministic sums over fixed chunks (reduce.c).
 *
 * A kernel that reduces (a loss, a norm, a penalty) cuts its input into
 * chunks whose size depends on the shapes only, has `fn` compute each
 * chunk's partial sums, and adds the partials in chunk order. The result is
 * therefore bitwise the same for any thread count.
 */
#ifndef FNN_REDUCE_H
#define FNN_REDUCE_H

#include <stdint.h>

#define FNN_REDUCE_MAX_WIDTH 4

/* Writes chunk `chunk`'s `width` partial sums to out[0..width). It may also
 * write outputs of its own (a gradient), for its chunk only. */
typedef void (*fnn_chunk_fn)(const void *ctx, int64_t chunk, double *out);

/* total[k] = sum over chunks, in chunk order, of fn's k-th partial
 * (k < width <= FNN_REDUCE_MAX_WIDTH), on `nthreads` threads (<= 1: serial,
 * no parallel region). Returns FNN_OK, FNN_ERR_ARG or FNN_ERR_NOMEM. */
int fnn_ordered_sum(double *total, int width, int64_t nchunks, fnn_chunk_fn fn, const void *ctx,
                    int nthreads);

#endif /* FNN_REDUCE_H */
