/*
 * layernorm.c -- layer normalization and RMS normalization over the last
 * axis of X[M,C] (M rows of C features), forward and backward, float32 and
 * float64. Keras 3's formulas:
 *
 *   layer norm:  mean = sum(x) / C,  var = sum((x - mean)^2) / C  (biased),
 *                rstd = 1 / sqrt(var + eps),
 *                y = (x - mean) * rstd * gamma + beta
 *   RMS norm:    rstd = 1 / sqrt(sum(x^2) / C + eps),  y = x * rstd * gamma
 *                (no mean, no beta: the mean is taken as 0)
 *
 *   fnn_layernorm_forward_<f32|f64>   Y, and each row's mean and rstd (for
 *                                     the backward)               (Y may equal X)
 *   fnn_layernorm_backward_<f32|f64>  dX, and dgamma, dbeta (OVERWRITTEN)
 *                                     (dX may equal dY or X)
 *
 * Row statistics: one pass over the row, in double, of x shifted by the
 * row's first element (d = x - x[0]: sum d and sum d^2; var = sum d^2 / C -
 * (sum d / C)^2). A large common offset is removed exactly by the shift, so
 * rows like 1e4 + N(0, 1) keep their variance; what remains is bounded by
 * (x[0] - mean)^2 <= C var, a factor C at worst, never the offset. The sums
 * run in LN_LANES double lanes (element j in lane j % LN_LANES, lanes added in
 * a fixed tree), so they vectorise and a row's statistics depend on the row
 * alone. mean and rstd are rounded to the element type, stored, and the
 * element-wise passes use those rounded values, so the backward sees exactly
 * the statistics the forward used:
 *   forward:  xhat = (x - mean) * rstd;  y = xhat * gamma + beta     (type T)
 *   backward: g = dy * gamma;  a = (T)(sum g / C);  b = (T)(sum g xhat / C)
 *             (sums in double lanes; RMS: a = 0), then
 *             dx = rstd * ((g - a) - xhat * b)                       (type T)
 * with dgamma = sum over rows of dy xhat, dbeta = sum of dy (in double).
 *
 * Determinism. Rows are independent, so the element-wise work is shared out
 * in blocks of rows. The column sums dgamma and dbeta run over a fixed
 * partition of the rows into chunks (a function of M and C alone): each chunk
 * sums its rows into its own slot of a scratch array, in the same pass that
 * writes its rows of dX -- four rows at a time from the chunk's first (their
 * terms added in a fixed tree, then to the slot: one load and store of the
 * slot per four rows), the last rows one by one; the slots are then added in
 * chunk order. Chunks go to threads in static ranges (fnn_run_units), each writing only its own
 * slot, so every result is bitwise identical for any thread count. Small
 * calls never enter a parallel region.
 *
 * One source for both types and every ISA: the per-row loops are
 * layernorm_rows_impl.h, compiled here for the baseline ISA and in
 * kernels/layernorm_<isa>.c with AVX2 / AVX-512 flags (the same values from
 * every build: layernorm_rows.h); the entry points are layernorm_impl.h, which
 * call the build in the kernel table (cpu.c). Each is included once per type.
 */
#include <math.h>
#include <stdlib.h>

#include "fastnn.h"
#include "fnn_omp.h"
#include "gemm_internal.h"
#include "layernorm_rows.h"

/* Elements per block of rows (forward) or per chunk of the column sums
 * (backward), about: rows per block = ceil(LN_BLOCK / C). */
#define LN_BLOCK 8192
/* Chunks of the column sums at most: the scratch is 2 * LN_MAX_CHUNKS * C
 * doubles, and the chunks are added in order by one thread at the end. */
#define LN_MAX_CHUNKS 64
/* Elements per thread before a second one pays off (two or three passes
 * over each row, all of them in cache). */
#define LN_GRAIN 16384.0

static int64_t ln_min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Rows per block of the forward pass. */
static int64_t ln_block_rows(int64_t C)
{
    return LN_BLOCK / C + (LN_BLOCK % C != 0);     /* ceil, C >= 1 */
}

/* Rows per chunk of the backward pass: a block, or more when there would
 * be more than LN_MAX_CHUNKS chunks. */
static int64_t ln_chunk_rows(int64_t M, int64_t C)
{
    const int64_t rows = ln_block_rows(C);
    const int64_t least = (M + LN_MAX_CHUNKS - 1) / LN_MAX_CHUNKS;
    return rows > least ? rows : least;
}

/* The checks both directions share. */
static int ln_check(int64_t M, int64_t C, int rms)
{
    if (M < 0 || C < 1 || (rms != 0 && rms != 1)) {
        return FNN_ERR_ARG;     /* C == 0: the statistics of no features are undefined */
    }
    if (M > INT64_MAX / C) {
        return FNN_ERR_ARG;
    }
    return FNN_OK;
}

/* The baseline build of the row loops. */
#define FNN_LN_ISA generic
#define FNN_T float
#define FNN_LN_SFX f32
#include "layernorm_rows_impl.h"
#include "layernorm_impl.h"
#undef FNN_T
#undef FNN_LN_SFX

#define FNN_T double
#define FNN_LN_SFX f64
#include "layernorm_rows_impl.h"
#include "layernorm_impl.h"
#undef FNN_T
#undef FNN_LN_SFX
#undef FNN_LN_ISA
