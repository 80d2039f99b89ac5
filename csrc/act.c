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
 * elements (fnn_run_units), softmax into blocks of rows; every
 * output element is computed by the same code whatever the split, so results
 * do not depend on the thread count. Small calls never enter a parallel region.
 */
#include "fnn_vector_opts.h"   /* first: see there */

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

/* One call: its arrays and activation, for act_blocks. Forward uses Y, X;
 * backward dX, dY and whichever of X, Y it reads (NULL otherwise). */
typedef struct {
    fnn_act_forward_loop_f32 fwd;     /* NULL for backward */
    fnn_act_backward_loop_f32 bwd;
    float *out;                       /* Y, or dX */
    const float *dY, *X, *Y;
    int64_t n;
    int act;
} act_call;

/* Units are ACT_BLOCK elements; a range of them is one loop call. */
static int act_blocks(void *ctx, int64_t first, int64_t last, int slot)
{
    const act_call *c = (const act_call *)ctx;
    const int64_t lo = first * ACT_BLOCK;
    const int64_t len = (last * ACT_BLOCK < c->n ? last * ACT_BLOCK : c->n) - lo;
    (void)slot;
    if (c->fwd != NULL) {
        c->fwd(c->out + lo, c->X + lo, len, c->act);
    }
    else {
        c->bwd(c->out + lo, c->dY + lo, c->X ? c->X + lo : NULL, c->Y ? c->Y + lo : NULL, len,
               c->act);
    }
    return FNN_OK;
}

static int run_act(const act_call *c, int nthreads)
{
    const int64_t blocks = (c->n + ACT_BLOCK - 1) / ACT_BLOCK;
    const int nt = fnn_threads_for(
        (double)c->n, is_transcendental(c->act) ? ACT_GRAIN_TRANSCENDENTAL : ACT_GRAIN, blocks,
        nthreads);
    return fnn_run_units(blocks, nt, act_blocks, (void *)c);
}

/* ---- entry points ------------------------------------------------------- */

int fnn_act_forward_f32(float *Y, const float *X, int64_t N, int64_t O, int act, int nthreads)
{
    int64_t n;

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
    {
        const act_call c = {.fwd = fnn_kernels()->act_f32.forward, .out = Y, .X = X, .n = n,
                            .act = act};
        return run_act(&c, nthreads);
    }
}

int fnn_act_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                         int64_t N, int64_t O, int act, int nthreads)
{
    int64_t n;

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
    {
        const act_call c = {.bwd = fnn_kernels()->act_f32.backward, .out = dX, .dY = dY, .X = X,
                            .Y = Y, .n = n, .act = act};
        return run_act(&c, nthreads);
    }
}
