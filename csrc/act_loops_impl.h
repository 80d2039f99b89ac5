/*
 * act_loops_impl.h -- the bodies of act_loops.h's loops, for the ISA named by
 * FNN_ACT_ISA (generic, avx2 or avx512). Included once, by act.c or by
 * kernels/act_<isa>.c, after fnn_vector_opts.h (see
 * vact.h) and with FNN_ACT_ISA defined.
 *
 * Each activation has its own loop with the code a compile-time constant, so
 * the switch inside fnn_act_apply_f32 / fnn_act_deriv_f32 folds away and
 * `omp simd` vectorises the branch-free body. `omp simd` is valid in place
 * (Y == X, dX == dY): iteration i reads element i before it writes it and
 * touches no other element.
 */
#include <string.h>

#include "act_loops.h"
#include "act_scalar.h"
#include "fastnn.h"
#include "vact.h"

#ifndef FNN_ACT_ISA
#error "define FNN_ACT_ISA before including act_loops_impl.h"
#endif

#define FNN_ACT_CAT2(a, b) a##b
#define FNN_ACT_CAT(a, b) FNN_ACT_CAT2(a, b)
#define FNN_ACT_FN(name) FNN_ACT_CAT(name, FNN_ACT_ISA)

#define FNN_ACT_FWD_LOOP(A)                                     \
    do {                                                        \
        _Pragma("omp simd")                                     \
        for (int64_t i = 0; i < n; i++) {                       \
            Y[i] = fnn_act_apply_f32((A), X[i]);                \
        }                                                       \
    } while (0)

void FNN_ACT_FN(fnn_act_forward_loop_f32_)(float *Y, const float *X, int64_t n, int act)
{
    switch (act) {
    case FNN_ACT_LINEAR:
        if (Y != X) {
            memmove(Y, X, (size_t)n * sizeof(float));
        }
        break;
    case FNN_ACT_RELU:
        FNN_ACT_FWD_LOOP(FNN_ACT_RELU);
        break;
    case FNN_ACT_LEAKY_RELU:
        FNN_ACT_FWD_LOOP(FNN_ACT_LEAKY_RELU);
        break;
    case FNN_ACT_ELU:
        FNN_ACT_FWD_LOOP(FNN_ACT_ELU);
        break;
    case FNN_ACT_SIGMOID:
        FNN_ACT_FWD_LOOP(FNN_ACT_SIGMOID);
        break;
    case FNN_ACT_TANH:
        FNN_ACT_FWD_LOOP(FNN_ACT_TANH);
        break;
    case FNN_ACT_GELU:
        FNN_ACT_FWD_LOOP(FNN_ACT_GELU);
        break;
    case FNN_ACT_SWISH:
        FNN_ACT_FWD_LOOP(FNN_ACT_SWISH);
        break;
    default:
        break;
    }
}

/* The derivative from Y (relu, leaky_relu, sigmoid, tanh) or from X (gelu,
 * swish); the other argument is a dummy the constant code ignores. */
#define FNN_ACT_BWD_LOOP_Y(A)                                           \
    do {                                                                \
        _Pragma("omp simd")                                             \
        for (int64_t i = 0; i < n; i++) {                               \
            dX[i] = dY[i] * fnn_act_deriv_f32((A), 0.0f, Y[i]);         \
        }                                                               \
    } while (0)

#define FNN_ACT_BWD_LOOP_X(A)                                           \
    do {                                                                \
        _Pragma("omp simd")                                             \
        for (int64_t i = 0; i < n; i++) {                               \
            dX[i] = dY[i] * fnn_act_deriv_f32((A), X[i], 0.0f);         \
        }                                                               \
    } while (0)

void FNN_ACT_FN(fnn_act_backward_loop_f32_)(float *dX, const float *dY, const float *X,
                                            const float *Y, int64_t n, int act)
{
    switch (act) {
    case FNN_ACT_LINEAR:
        if (dX != dY) {
            memmove(dX, dY, (size_t)n * sizeof(float));
        }
        break;
    /* relu and leaky relu spelled out as a 0/1 (slope/1) factor: GCC then
     * vectorises them, which it does not through the generic derivative's
     * branches; the products are the same. */
    case FNN_ACT_RELU:
        _Pragma("omp simd")
        for (int64_t i = 0; i < n; i++) {
            const float m = Y[i] > 0.0f ? 1.0f : 0.0f;
            dX[i] = dY[i] * m;
        }
        break;
    case FNN_ACT_LEAKY_RELU: {
        const float slope = (float)FNN_LEAKY_RELU_SLOPE;
        _Pragma("omp simd")
        for (int64_t i = 0; i < n; i++) {
            const float m = Y[i] > 0.0f ? 1.0f : slope;
            dX[i] = dY[i] * m;
        }
        break;
    }
    case FNN_ACT_SIGMOID:
        FNN_ACT_BWD_LOOP_Y(FNN_ACT_SIGMOID);
        break;
    case FNN_ACT_TANH:
        FNN_ACT_BWD_LOOP_Y(FNN_ACT_TANH);
        break;
    case FNN_ACT_ELU: {
        /* alpha e^x from X rather than y + alpha from Y: for very negative x,
         * y + alpha cancels to 0 while e^x keeps its relative precision. */
        const float alpha = (float)FNN_ELU_ALPHA;
        _Pragma("omp simd")
        for (int64_t i = 0; i < n; i++) {
            const float x = X[i];
            const float d = alpha * vexp1_f32(x);
            dX[i] = x > 0.0f ? dY[i] : dY[i] * d;
        }
        break;
    }
    case FNN_ACT_GELU:
        FNN_ACT_BWD_LOOP_X(FNN_ACT_GELU);
        break;
    case FNN_ACT_SWISH:
        FNN_ACT_BWD_LOOP_X(FNN_ACT_SWISH);
        break;
    default:
        break;
    }
}

/* A block of C: m rows of n contiguous elements, ldc apart, in place. One
 * switch per block and the row loop inlined in each case: the GEMM also calls
 * this on single tiles (12 x 32 with AVX-512), where a call and a switch per
 * row would cost a quarter of the work. */
#define FNN_ACT_TILE_LOOP(A)                                            \
    do {                                                                \
        for (int64_t r = 0; r < m; r++) {                               \
            float *c = C + r * ldc;                                     \
            _Pragma("omp simd")                                         \
            for (int64_t j = 0; j < n; j++) {                           \
                c[j] = fnn_act_apply_f32((A), c[j]);                    \
            }                                                           \
        }                                                               \
    } while (0)

void FNN_ACT_FN(fnn_act_tile_loop_f32_)(float *C, int64_t ldc, int64_t m, int64_t n, int act)
{
    switch (act) {
    case FNN_ACT_RELU:
        FNN_ACT_TILE_LOOP(FNN_ACT_RELU);
        break;
    case FNN_ACT_LEAKY_RELU:
        FNN_ACT_TILE_LOOP(FNN_ACT_LEAKY_RELU);
        break;
    case FNN_ACT_ELU:
        FNN_ACT_TILE_LOOP(FNN_ACT_ELU);
        break;
    case FNN_ACT_SIGMOID:
        FNN_ACT_TILE_LOOP(FNN_ACT_SIGMOID);
        break;
    case FNN_ACT_TANH:
        FNN_ACT_TILE_LOOP(FNN_ACT_TANH);
        break;
    case FNN_ACT_GELU:
        FNN_ACT_TILE_LOOP(FNN_ACT_GELU);
        break;
    case FNN_ACT_SWISH:
        FNN_ACT_TILE_LOOP(FNN_ACT_SWISH);
        break;
    default: /* linear */
        break;
    }
}

#undef FNN_ACT_FWD_LOOP
#undef FNN_ACT_TILE_LOOP
#undef FNN_ACT_BWD_LOOP_Y
#undef FNN_ACT_BWD_LOOP_X
#undef FNN_ACT_FN
#undef FNN_ACT_CAT
#undef FNN_ACT_CAT2
