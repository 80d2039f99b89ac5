/*
 * dropout.c -- inverted dropout with a counter-based mask, float32.
 *
 *   fnn_dropout_mask          mask[n] = keep(seed, i)                 (uint8, 1 keep / 0 drop)
 *   fnn_dropout_forward_f32   Y[n] = keep(seed, i) ? X[i] * scale : 0 (Y may equal X)
 *                             mask[n] = keep(seed, i)                  (mask may be NULL)
 *   fnn_dropout_backward_f32  dX[n] = mask[i] ? dY[i] * scale : 0     (dX may equal dY)
 *
 * keep(seed, i) is a pure function of the step's seed and the element's flat
 * index, never of a generator's running state: element i's decision is the
 * same whichever thread computes it and whichever backend (NumpyOps mirrors
 * it in uint64 arithmetic). It is splitmix64 read at position i:
 *
 *   key  = mix64(seed)
 *   h(i) = mix64(key + (i + 1) * 0x9E3779B97F4A7C15)      (mod 2^64)
 *   keep = (h(i) >> 11) >= threshold,   threshold = floor(rate * 2^53)
 *
 * so an element is dropped with probability threshold / 2^53 (= rate to
 * within 2^-53). The caller computes threshold and scale = 1 / (1 - rate).
 *
 * Threads: fixed blocks of DROP_BLOCK elements (fnn_run_units); small
 * calls never enter a parallel region.
 */
#include "fastnn.h"
#include "fnn_omp.h"

#define DROP_GOLDEN 0x9E3779B97F4A7C15ULL
/* A hash costs about three 64-bit multiplies: a few times a copy. */
#define DROP_GRAIN 16384.0
#define DROP_BLOCK 4096

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint8_t keep_at(uint64_t key, int64_t i, uint64_t threshold)
{
    const uint64_t h = mix64(key + (uint64_t)(i + 1) * DROP_GOLDEN);
    return (uint8_t)((h >> 11) >= threshold);
}

/* Elements [i0, i1): the mask, and Y when X is given. */
static void forward_range(float *Y, uint8_t *mask, const float *X, int64_t i0, int64_t i1,
                          uint64_t key, uint64_t threshold, float scale)
{
    for (int64_t i = i0; i < i1; i++) {
        const uint8_t k = keep_at(key, i, threshold);
        if (mask != NULL) {
            mask[i] = k;
        }
        if (Y != NULL) {
            Y[i] = k ? X[i] * scale : 0.0f;
        }
    }
}

static void backward_range(float *dX, const float *dY, const uint8_t *mask,
                           int64_t i0, int64_t i1, float scale)
{
    #pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        dX[i] = mask[i] ? dY[i] * scale : 0.0f;
    }
}

/* One call, for drop_blocks: forward when dY is NULL (Y and X NULL too when
 * only the mask is drawn), else backward. */
typedef struct {
    float *out;           /* Y, or dX */
    uint8_t *mask;
    const uint8_t *mask_in;
    const float *X, *dY;
    int64_t n;
    uint64_t key, threshold;
    float scale;
} drop_call;

/* Units are DROP_BLOCK elements. Each element's draw hashes its own index, so
 * any split draws the same mask. */
static int drop_blocks(void *ctx, int64_t first, int64_t last, int slot)
{
    const drop_call *c = (const drop_call *)ctx;
    const int64_t i0 = first * DROP_BLOCK;
    const int64_t i1 = last * DROP_BLOCK < c->n ? last * DROP_BLOCK : c->n;
    (void)slot;
    if (c->dY == NULL) {
        forward_range(c->out, c->mask, c->X, i0, i1, c->key, c->threshold, c->scale);
    }
    else {
        backward_range(c->out, c->dY, c->mask_in, i0, i1, c->scale);
    }
    return FNN_OK;
}

static int run_drop(const drop_call *c, double grain, int nthreads)
{
    const int64_t blocks = (c->n + DROP_BLOCK - 1) / DROP_BLOCK;
    return fnn_run_units(blocks, fnn_threads_for((double)c->n, grain, blocks, nthreads),
                         drop_blocks, (void *)c);
}

/* Both public forward kernels: Y and X NULL for the mask alone. */
static int dropout_run(float *Y, uint8_t *mask, const float *X, int64_t n, uint64_t seed,
                       uint64_t threshold, float scale, int nthreads)
{
    if (n < 0) {
        return FNN_ERR_ARG;
    }
    if (n == 0) {
        return FNN_OK;
    }
    {
        const drop_call c = {.out = Y, .mask = mask, .X = X, .n = n, .key = mix64(seed),
                             .threshold = threshold, .scale = scale};
        return run_drop(&c, DROP_GRAIN, nthreads);
    }
}

int fnn_dropout_mask(uint8_t *mask, int64_t n, uint64_t seed, uint64_t threshold, int nthreads)
{
    if (n > 0 && mask == NULL) {
        return FNN_ERR_ARG;
    }
    return dropout_run(NULL, mask, NULL, n, seed, threshold, 1.0f, nthreads);
}

int fnn_dropout_forward_f32(float *Y, uint8_t *mask, const float *X, int64_t n, uint64_t seed,
                            uint64_t threshold, float scale, int nthreads)
{
    if (n > 0 && (Y == NULL || X == NULL)) {
        return FNN_ERR_ARG;
    }
    return dropout_run(Y, mask, X, n, seed, threshold, scale, nthreads);
}

int fnn_dropout_backward_f32(float *dX, const float *dY, const uint8_t *mask, int64_t n,
                             float scale, int nthreads)
{
    if (n < 0) {
        return FNN_ERR_ARG;
    }
    if (n == 0) {
        return FNN_OK;
    }
    if (dX == NULL || dY == NULL || mask == NULL) {
        return FNN_ERR_ARG;
    }
    {
        /* A select and a multiply per element: memory-bound, like a copy. */
        const drop_call c = {.out = dX, .mask_in = mask, .dY = dY, .n = n, .scale = scale};
        return run_drop(&c, 4.0 * DROP_GRAIN, nthreads);
    }
}
