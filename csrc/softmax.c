/*
 * softmax.c -- softmax and log-softmax along one axis, forward and backward,
 * float32 and float64.
 *
 *   fnn_softmax_forward_<f32|f64>   Y = softmax(X) or log_softmax(X)   (Y may equal X)
 *   fnn_softmax_backward_<f32|f64>  dX from dY and the output Y        (dX may equal dY or Y)
 *
 * Arrays are C-contiguous (outer, L, inner); the softmax runs along L for
 * each of the outer * inner lines. act.c's softmax activation is the case
 * inner == 1 (rows of a 2-D array).
 *
 * A line is computed as: its maximum m, then e = exp(x - m) and s = their
 * sum in double; then
 *   softmax:     y = (T)((double)e * (1 / s))
 *   log_softmax: y = (x - m) - (T)log(s)       (log in double)
 * and backward, with the line's sum in double:
 *   softmax:     d = (T)sum(dy * y);  dx = y * (dy - d)
 *   log_softmax: d = (T)sum(dy);      dx = dy - exp(y) * d
 * exp is vexp.h's (vectorised, the same values on every ISA). Rows (inner
 * == 1) sum in SM_LANES double lanes (lane j % SM_LANES, combined in a fixed
 * tree), so the adds vectorise; columns sum each line in order along L,
 * vectorised across the lines. Either way a line's sum is fixed by the shape:
 * results are bitwise the same for any thread count (lines are shared out,
 * never split).
 *
 * Layout of the work: rows are shared out in fixed blocks of rows;
 * otherwise a unit is one outer index times a block of at most SM_COLS
 * columns of inner, whose lines are walked together (contiguous loads).
 * Static ranges of units (fnn_run_units). Small calls never enter a parallel region.
 *
 * One source for both types: softmax_impl.h is included once per type.
 */
#include <math.h>

#include "fastnn.h"
#include "fnn_omp.h"
#include "vexp.h"

/* A second thread pays off from this many elements each (several passes
 * over each line, one of them exp). */
#define SM_GRAIN 4096.0
/* Columns of one unit when inner > 1 (stack buffers of SM_COLS doubles). */
#define SM_COLS 256
/* Rows: the lanes of a row's max and sums, and the segment exp'd at once
 * into a stack buffer (a multiple of SM_LANES). */
#define SM_LANES 8
#define SM_CHUNK 256
_Static_assert(SM_CHUNK % SM_LANES == 0, "a chunk starts on lane 0");
_Static_assert(SM_LANES == 8, "lane_total adds exactly eight lanes");

#define FNN_SM_INLINE inline __attribute__((always_inline))

static int64_t sm_min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Checks the sizes; *n = the number of elements. */
static int sm_check(int64_t outer, int64_t L, int64_t inner, int is_log, int64_t *n)
{
    if (outer < 0 || L < 0 || inner < 0 || (is_log != 0 && is_log != 1)) {
        return FNN_ERR_ARG;
    }
    if (outer == 0 || L == 0 || inner == 0) {
        *n = 0;
        return FNN_OK;
    }
    if (L > INT64_MAX / outer || inner > INT64_MAX / (outer * L)) {
        return FNN_ERR_ARG;
    }
    *n = outer * L * inner;
    return FNN_OK;
}

#define FNN_T float
#define FNN_SM_SFX f32
#include "softmax_impl.h"
#undef FNN_T
#undef FNN_SM_SFX

#define FNN_T double
#define FNN_SM_SFX f64
#include "softmax_impl.h"
#undef FNN_T
#undef FNN_SM_SFX
