/*
 * act.c -- activation functions, forward and backward, float32.
 *
 *   fnn_act_forward_f32    Y[N,O] = act(X[N,O])          (Y may equal X)
 *   fnn_act_backward_f32   dX[N,O] = dY * act'(X or Y)   (dX may equal dY)
 *   fnn_act_needs_input    whether the backward pass reads X
 *
 * The element-wise activations take their values from act_scalar.h, the
 * same inline functions the GEMM epilogue uses, so a fused act(X W + b) and
 * a separate act(Z) give bitwise the same Y. Softmax runs over each row of
 * length O, shifted by the row maximum so exp() never overflows: it is
 * softmax.c's kernel (rows of a 2-D array), the one Ops.softmax uses too.
 *
 * Backward: relu, leaky_relu, sigmoid, tanh and softmax read Y only; elu,
 * gelu and swish read X (ops.NEEDS_PREACTIVATION). elu's derivative is taken
 * as alpha * exp(x) from X rather than y + alpha from Y: for very negative x
 * y + alpha cancels to 0 while exp(x) keeps its relative precision.
 *
 * Threads: element-wise work is split into fixed blocks of contiguous
 * elements, softmax into blocks of rows, both schedule(static); every
 * output element is computed by the same code whatever the split, so results
 * do not depend on the thread count. Small calls never enter a parallel region.
 */
#include <math.h>
#include <string.h>

#include "act_scalar.h"
#include "fastnn.h"
#include "fnn_omp.h"

/* Element-wise work per thread before a second thread pays off, and the
 * block a thread takes at a time (a constant: never derived from threads). */
#define ACT_GRAIN 32768.0
#define ACT_BLOCK 8192
/* Transcendental activations cost ~10x a relu per element. */
#define ACT_GRAIN_TRANSCENDENTAL 4096.0

static int is_transcendental(int act)
{
    return act == FNN_ACT_ELU || act == FNN_ACT_SIGMOID || act == FNN_ACT_TANH
           || act == FNN_ACT_SOFTMAX || act == FNN_ACT_GELU || act == FNN_ACT_SWISH;
}

int fnn_act_needs_input(int act)
{
    return act == FNN_ACT_ELU || act == FNN_ACT_GELU || act == FNN_ACT_SWISH;
}

/* ---- element-wise forward ---------------------------------------------- */

/* One loop per activation with the code a compile-time constant, so the
 * switch inside fnn_act_apply_f32 folds away and relu/leaky vectorise.
 * `omp simd` is valid with Y == X: iteration i reads X[i] before it writes
 * Y[i] and touches no other element. */
#define FWD_LOOP(A)                                             \
    do {                                                        \
        _Pragma("omp simd")                                     \
        for (int64_t i = 0; i < n; i++) {                       \
            Y[i] = fnn_act_apply_f32((A), X[i]);                \
        }                                                       \
    } while (0)

static void forward_range(float *Y, const float *X, int64_t n, int act)
{
    switch (act) {
    case FNN_ACT_LINEAR:
        if (Y != X) {
            memcpy(Y, X, (size_t)n * sizeof(float));
        }
        break;
    case FNN_ACT_RELU:
        FWD_LOOP(FNN_ACT_RELU);
        break;
    case FNN_ACT_LEAKY_RELU:
        FWD_LOOP(FNN_ACT_LEAKY_RELU);
        break;
    case FNN_ACT_ELU:
        FWD_LOOP(FNN_ACT_ELU);
        break;
    case FNN_ACT_SIGMOID:
        FWD_LOOP(FNN_ACT_SIGMOID);
        break;
    case FNN_ACT_TANH:
        FWD_LOOP(FNN_ACT_TANH);
        break;
    case FNN_ACT_GELU:
        FWD_LOOP(FNN_ACT_GELU);
        break;
    case FNN_ACT_SWISH:
        FWD_LOOP(FNN_ACT_SWISH);
        break;
    default:
        break;
    }
}

/* ---- element-wise backward --------------------------------------------- */

/* dX may equal dY (same-index read then write, as in forward). X and Y are
 * only read. */
#define BWD_LOOP_Y(A)                                                   \
    do {                                                                \
        _Pragma("omp simd")                                             \
        for (int64_t i = 0; i < n; i++) {                               \
            dX[i] = dY[i] * fnn_act_deriv_f32((A), 0.0f, Y[i]);         \
        }                                                               \
    } while (0)

#define BWD_LOOP_X(A)                                                   \
    do {                                                                \
        _Pragma("omp simd")                                             \
        for (int64_t i = 0; i < n; i++) {                               \
            dX[i] = dY[i] * fnn_act_deriv_f32((A), X[i], 0.0f);         \
        }                                                               \
    } while (0)

static void backward_range(float *dX, const float *dY, const float *X, const float *Y,
                           int64_t n, int act)
{
    switch (act) {
    case FNN_ACT_LINEAR:
        if (dX != dY) {
            memcpy(dX, dY, (size_t)n * sizeof(float));
        }
        break;
    /* relu and leaky relu spelled out as a 0/1 (slope/1) factor: GCC then
     * vectorises them, which it does not through the generic derivative's
     * branches (30x on large layers); the products are the same. */
    case FNN_ACT_RELU:
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            const float m = Y[i] > 0.0f ? 1.0f : 0.0f;
            dX[i] = dY[i] * m;
        }
        break;
    case FNN_ACT_LEAKY_RELU: {
        const float slope = (float)FNN_LEAKY_RELU_SLOPE;
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            const float m = Y[i] > 0.0f ? 1.0f : slope;
            dX[i] = dY[i] * m;
        }
        break;
    }
    case FNN_ACT_SIGMOID:
        BWD_LOOP_Y(FNN_ACT_SIGMOID);
        break;
    case FNN_ACT_TANH:
        BWD_LOOP_Y(FNN_ACT_TANH);
        break;
    case FNN_ACT_ELU: {
        const float alpha = (float)FNN_ELU_ALPHA;
        for (int64_t i = 0; i < n; i++) {
            float x = X[i];
            dX[i] = x > 0.0f ? dY[i] : dY[i] * (alpha * expf(x));
        }
        break;
    }
    case FNN_ACT_GELU:
        BWD_LOOP_X(FNN_ACT_GELU);
        break;
    case FNN_ACT_SWISH:
        BWD_LOOP_X(FNN_ACT_SWISH);
        break;
    default:
        break;
    }
}

/* ---- entry points ------------------------------------------------------- */

int fnn_act_forward_f32(float *Y, const float *X, int64_t N, int64_t O, int act, int nthreads)
{
    int64_t n;
    int nt;

    if (N < 0 || O < 0 || act < 0 || act >= FNN_ACT_COUNT) {
        return FNN_ERR_ARG;
    }
    n = N * O;
    if (n == 0) {
        return FNN_OK;
    }
    if (Y == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    if (act == FNN_ACT_SOFTMAX) {
        return fnn_softmax_forward_f32(Y, X, N, O, 1, 0, nthreads);
    }
    nt = fnn_threads_for((double)n,
                         is_transcendental(act) ? ACT_GRAIN_TRANSCENDENTAL : ACT_GRAIN,
                         nthreads);

    if (nt <= 1) {
        forward_range(Y, X, n, act);
    }
    else {
        const int64_t nblocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
        int64_t b;
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (b = 0; b < nblocks; b++) {
            const int64_t lo = b * ACT_BLOCK;
            const int64_t len = n - lo < ACT_BLOCK ? n - lo : ACT_BLOCK;
            forward_range(Y + lo, X + lo, len, act);
        }
    }
    return FNN_OK;
}

int fnn_act_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                         int64_t N, int64_t O, int act, int nthreads)
{
    int64_t n;
    int nt;

    if (N < 0 || O < 0 || act < 0 || act >= FNN_ACT_COUNT) {
        return FNN_ERR_ARG;
    }
    n = N * O;
    if (n == 0) {
        return FNN_OK;
    }
    if (dX == NULL || dY == NULL) {
        return FNN_ERR_ARG;
    }
    /* linear reads neither; the others read exactly one of X and Y. */
    if (act != FNN_ACT_LINEAR) {
        if (fnn_act_needs_input(act) ? X == NULL : Y == NULL) {
            return FNN_ERR_ARG;
        }
    }
    if (act == FNN_ACT_SOFTMAX) {
        return fnn_softmax_backward_f32(dX, dY, Y, N, O, 1, 0, nthreads);
    }
    nt = fnn_threads_for((double)n,
                         is_transcendental(act) ? ACT_GRAIN_TRANSCENDENTAL : ACT_GRAIN,
                         nthreads);

    if (nt <= 1) {
        backward_range(dX, dY, X, Y, n, act);
    }
    else {
        const int64_t nblocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
        int64_t b;
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (b = 0; b < nblocks; b++) {
            const int64_t lo = b * ACT_BLOCK;
            const int64_t len = n - lo < ACT_BLOCK ? n - lo : ACT_BLOCK;
            backward_range(dX + lo, dY + lo, X ? X + lo : NULL, Y ? Y + lo : NULL, len, act);
        }
    }
    return FNN_OK;
}
