/*
 * layernorm_rows.h -- the per-row loops of layernorm.c (private to csrc/).
 *
 * The loops are written once, in layernorm_rows_impl.h, and compiled once per
 * ISA: in layernorm.c (the baseline) and in kernels/layernorm_avx2.c and
 * kernels/layernorm_avx512.c (with those flags); layernorm.c calls the build
 * in the kernel table (cpu.c's fnn_kernels()->layernorm). Every build computes the same values: ISO C mode
 * keeps -ffp-contract=off (no FMA is formed), the row sums run in LN_LANES
 * double lanes added in a fixed tree whatever the vector width, and the
 * element-wise steps are the same operations in the same order. So results
 * depend on neither the ISA nor the thread count.
 *
 * Rows [r0, r1) of X[M,C] (C >= 1):
 *   fnn_ln_forward_rows_<t>_<isa>   Y rows, and mean[r], rstd[r] when not NULL
 *                                   (RMS: mean not written). Y may equal X.
 *   fnn_ln_backward_rows_<t>_<isa>  dX rows when dX is not NULL; when cg is not
 *                                   NULL, cg[0..C) = sum over the rows of
 *                                   dY xhat and cb[0..C) = sum of dY, in row
 *                                   order (OVERWRITTEN). dX may equal dY or X.
 */
#ifndef FNN_LAYERNORM_ROWS_H
#define FNN_LAYERNORM_ROWS_H

#include <stddef.h>
#include <stdint.h>

/* Lanes of a row's sums: element j goes to lane j % LN_LANES (ln_lane_total
 * adds exactly eight). */
#define LN_LANES 8

/* Rows the backward walks together (ln_quad_backward is written for four). */
#define LN_GROUP 4

#define FNN_LN_INLINE inline __attribute__((always_inline))

static FNN_LN_INLINE double ln_lane_total(const double *lane)
{
    return ((lane[0] + lane[1]) + (lane[2] + lane[3]))
           + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

#define FNN_LN_ROWS_DECLARE(T, SFX, ISA)                                                   \
    void fnn_ln_forward_rows_##SFX##_##ISA(T *Y, T *mean, T *rstd, const T *X,             \
                                           const T *gamma, const T *beta, int64_t r0,      \
                                           int64_t r1, int64_t C, double eps, int rms);     \
    void fnn_ln_backward_rows_##SFX##_##ISA(T *dX, double *cg, double *cb, const T *dY,    \
                                            const T *X, const T *mean, const T *rstd,      \
                                            const T *gamma, int64_t r0, int64_t r1,        \
                                            int64_t C, int rms);

/* One ISA's build of the row loops: an entry of the kernel table (cpu.c),
 * which layernorm.c calls through. */
typedef struct {
    void (*forward_f32)(float *Y, float *mean, float *rstd, const float *X, const float *gamma,
                        const float *beta, int64_t r0, int64_t r1, int64_t C, double eps,
                        int rms);
    void (*backward_f32)(float *dX, double *cg, double *cb, const float *dY, const float *X,
                         const float *mean, const float *rstd, const float *gamma, int64_t r0,
                         int64_t r1, int64_t C, int rms);
    void (*forward_f64)(double *Y, double *mean, double *rstd, const double *X,
                        const double *gamma, const double *beta, int64_t r0, int64_t r1,
                        int64_t C, double eps, int rms);
    void (*backward_f64)(double *dX, double *cg, double *cb, const double *dY, const double *X,
                         const double *mean, const double *rstd, const double *gamma,
                         int64_t r0, int64_t r1, int64_t C, int rms);
} fnn_ln_kernel;

#define FNN_LN_KERNEL(ISA)                                                                 \
    ((fnn_ln_kernel){fnn_ln_forward_rows_f32_##ISA, fnn_ln_backward_rows_f32_##ISA,         \
                     fnn_ln_forward_rows_f64_##ISA, fnn_ln_backward_rows_f64_##ISA})

FNN_LN_ROWS_DECLARE(float, f32, generic)
FNN_LN_ROWS_DECLARE(double, f64, generic)
#ifdef FNN_HAVE_X86_KERNELS
FNN_LN_ROWS_DECLARE(float, f32, avx2)
FNN_LN_ROWS_DECLARE(double, f64, avx2)
FNN_LN_ROWS_DECLARE(float, f32, avx512)
FNN_LN_ROWS_DECLARE(double, f64, avx512)
#endif

#endif /* FNN_LAYERNORM_ROWS_H */
