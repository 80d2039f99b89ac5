/*
 * act_loops.h -- the float32 element-wise activation loops, built once per
 * ISA (private to csrc/).
 *
 * The loops are written once, in act_loops_impl.h, over the definitions of
 * act_scalar.h / vact.h, and compiled in act.c (the baseline ISA) and in
 * kernels/act_avx2.c and kernels/act_avx512.c (with those flags). cpu.c puts
 * the build of the selected ISA in the kernel table (fnn_kernels()->act_f32);
 * act.c, the GEMM epilogue (gemm.c) and the recurrent kernels (rnn.c) call
 * through it. Every build gives the same bits (vact.h says why), so which
 * one runs changes the speed only.
 *
 * act is any element-wise FNN_ACT_* code (not softmax: the loops leave the
 * output alone for it and for unknown codes).
 *   forward(Y, X, n, act)            Y[n] = act(X[n])            (Y may equal X)
 *   backward(dX, dY, X, Y, n, act)   dX[n] = dY * act'(X or Y)   (dX may equal dY);
 *                                    X is read for elu, gelu and swish
 *                                    (fnn_act_needs_input), Y for the others
 *                                    (elu's derivative is taken as e^x from X)
 *   tile(C, ldc, m, n, act)          C[i*ldc + j] = act(C[i*ldc + j]), i < m, j < n
 *                                    (the GEMM epilogue: blocks of C in cache)
 */
#ifndef FNN_ACT_LOOPS_H
#define FNN_ACT_LOOPS_H

#include <stdint.h>

typedef void (*fnn_act_forward_loop_f32)(float *Y, const float *X, int64_t n, int act);
typedef void (*fnn_act_backward_loop_f32)(float *dX, const float *dY, const float *X,
                                          const float *Y, int64_t n, int act);
typedef void (*fnn_act_tile_loop_f32)(float *C, int64_t ldc, int64_t m, int64_t n, int act);

typedef struct {
    fnn_act_forward_loop_f32 forward;
    fnn_act_backward_loop_f32 backward;
    fnn_act_tile_loop_f32 tile;
} fnn_act_kernel_f32;

#define FNN_ACT_LOOPS_DECLARE(ISA)                                                       \
    void fnn_act_forward_loop_f32_##ISA(float *Y, const float *X, int64_t n, int act);   \
    void fnn_act_backward_loop_f32_##ISA(float *dX, const float *dY, const float *X,     \
                                         const float *Y, int64_t n, int act);            \
    void fnn_act_tile_loop_f32_##ISA(float *C, int64_t ldc, int64_t m, int64_t n, int act);

FNN_ACT_LOOPS_DECLARE(generic)
#ifdef FNN_HAVE_X86_KERNELS
FNN_ACT_LOOPS_DECLARE(avx2)
FNN_ACT_LOOPS_DECLARE(avx512)
#endif

#endif /* FNN_ACT_LOOPS_H */
