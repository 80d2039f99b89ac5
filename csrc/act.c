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
/*
 * act.c -- activation functions, forward and backward, float32.
 *
 *   fnn_act_forward_f32    Y[N,O] = act(X[N,O])          (Y may equal X)
 *   fnn_act_backward_f32   dX[N,O] = dY * act'(X or Y)   (dX may equal dY)
 *   fnn_act_needs_input    whether the backward pass reads X
 *
 * The element-wise loops are act_loops_impl.h's, built here for the baseline
 * ISA and in kernels/act_<isa>.c with AVX2 / AVX-512 flags; they are called
 * through the kernel table (fnn_kernels()->act_f32). They take their values
 * from act_scalar.h / vact.h, the same inline functions the GEMM epilogue and
 * the recurrent kernels use, and every ISA's build gives the same bits: a
 * fused act(X W + b) and a separate act(Z) give bitwise the same Y, whatever
 * the ISA. Softmax runs over each row of length O, shifted by the row
 * maximum so exp() never overflows: it is softmax.c's kernel (rows of a 2-D
 * array), the one Ops.softmax uses too.
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
/* Before the includes: the loops built here need it (see vact.h), and every
 * function of this file gets the same options. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "fastnn.h"
#include "fnn_omp.h"
#include "gemm_internal.h"

#define FNN_ACT_ISA generic
#include "act_loops_impl.h"
#undef FNN_ACT_ISA

/* Element-wise work per thread before a second thread pays off, and the
 * block a thread takes at a time (a constant: never derived from threads). */
#define ACT_GRAIN 32768.0
#define ACT_BLOCK 8192
/* The transcendental activations cost 2-4x a relu per element (vact.h),
 * softmax more. */
#define ACT_GRAIN_TRANSCENDENTAL 8192.0

static int is_transcendental(int act)
{
    return act == FNN_ACT_ELU || act == FNN_ACT_SIGMOID || act == FNN_ACT_TANH
           || act == FNN_ACT_SOFTMAX || act == FNN_ACT_GELU || act == FNN_ACT_SWISH;
}

int fnn_act_needs_input(int act)
{
    return act == FNN_ACT_ELU || act == FNN_ACT_GELU || act == FNN_ACT_SWISH;
}

/* ---- entry points ------------------------------------------------------- */

int fnn_act_forward_f32(float *Y, const float *X, int64_t N, int64_t O, int act, int nthreads)
{
    fnn_act_forward_loop_f32 fwd;
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
    fwd = fnn_kernels()->act_f32.forward;
    nt = fnn_threads_for((double)n,
                         is_transcendental(act) ? ACT_GRAIN_TRANSCENDENTAL : ACT_GRAIN,
                         nthreads);

    if (nt <= 1) {
        fwd(Y, X, n, act);
    }
    else {
        const int64_t nblocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
        int64_t b;
        #pragma omp parallel num_threads(nt)
        {
            fnn_note_team();
            #pragma omp for schedule(static) nowait
            for (b = 0; b < nblocks; b++) {
                const int64_t lo = b * ACT_BLOCK;
                const int64_t len = n - lo < ACT_BLOCK ? n - lo : ACT_BLOCK;
                fwd(Y + lo, X + lo, len, act);
            }
        }
    }
    return FNN_OK;
}

int fnn_act_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                         int64_t N, int64_t O, int act, int nthreads)
{
    fnn_act_backward_loop_f32 bwd;
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
    bwd = fnn_kernels()->act_f32.backward;
    nt = fnn_threads_for((double)n,
                         is_transcendental(act) ? ACT_GRAIN_TRANSCENDENTAL : ACT_GRAIN,
                         nthreads);

    if (nt <= 1) {
        bwd(dX, dY, X, Y, n, act);
    }
    else {
        const int64_t nblocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
        int64_t b;
        #pragma omp parallel num_threads(nt)
        {
            fnn_note_team();
            #pragma omp for schedule(static) nowait
            for (b = 0; b < nblocks; b++) {
                const int64_t lo = b * ACT_BLOCK;
                const int64_t len = n - lo < ACT_BLOCK ? n - lo : ACT_BLOCK;
                bwd(dX + lo, dY + lo, X ? X + lo : NULL, Y ? Y + lo : NULL, len, act);
            }
        }
    }
    return FNN_OK;
}
