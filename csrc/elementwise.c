/*
 * elementwise.c -- element-wise ops with NumPy's broadcasting and the
 * reductions over axes that back them, float32 and float64.
 *
 *   fnn_binary_forward_<f32|f64>   Y = A <op> B                     (Y may equal A or B)
 *   fnn_binary_backward_<f32|f64>  dA, dB = dY * d(A <op> B)/d(.), summed to the
 *                                  operands' shapes                 (OVERWRITTEN)
 *   fnn_sum_to_shape_<f32|f64>     Y = X summed over the axes Y is broadcast along
 *                                                                   (OVERWRITTEN)
 *   fnn_unary_forward_<f32|f64>    Y = op(X), contiguous            (Y may equal X)
 *   fnn_unary_backward_<f32|f64>   dX = dY * op'(X or Y)            (dX may equal an input)
 *   fnn_compare_<f32|f64|i64>      Y (uint8) = A <cmp> B
 *   fnn_where_<f32|f64>            Y = Cond ? A : B                 (Y may equal A or B)
 *   fnn_reduce_<f32|f64>           Y = sum / mean / max / min of X over the axes
 *                                  Y is laid out 0 along            (OVERWRITTEN)
 *   fnn_reduce_backward_<f32|f64>  dX from dY for each of those     (OVERWRITTEN)
 *
 * binary op: FNN_BINARY_ADD, _SUBTRACT, _MULTIPLY, _DIVIDE, _MAXIMUM,
 * _MINIMUM, _POWER. Broadcasting is described by the caller (see fastnn.h):
 * Y, dY and X are C-contiguous of shape[ndim]; each operand comes with
 * element strides over that shape, 0 where it is broadcast. The caller
 * first merges adjacent axes that are contiguous in every array, so the
 * common cases arrive as one axis (same shapes, a scalar) or two ((N, D)
 * with (D,) or (N, 1)).
 *
 * One source for both float types: elementwise_impl.h holds the
 * element-wise loops (binary, unary, where) and reduce_impl.h the
 * reductions, each written once over an element type FNN_T and included at
 * the end of this file once per type; compare_impl.h, written over any
 * ordered type, is included for float, double and int64_t. Only the index
 * arithmetic, which has no type, lives here.
 *
 * Element-wise: the output is cut into fixed blocks of EW_BLOCK elements,
 * shared out by fnn_run_units (run_elements). Inside a block an odometer walks the outer
 * axes and each row of the inner axis is one loop, specialised (by inlining
 * with constant strides) for the patterns broadcasting produces: operands
 * contiguous, or one of them repeated (stride 0). Those loops vectorise
 * (but for libm's log, log1p and pow, called once per element; exp is
 * vexp.h's vectorised one). Each element is computed by the same expression
 * whoever computes it.
 *
 * Reductions (the gradients, sum_to_shape, reduce): the axes of the input
 * split into those the reduced-into array keeps and those it is broadcast
 * along (reduced). Work units own disjoint sets of the reduced-into array's
 * elements:
 *   - inner axis kept ((N, D) -> (D,), or no reduction at all): a unit is a
 *     block of kept rows times a block of at most RED_COLS columns; each row's
 *     columns accumulate in double, visiting the reduced axes in C order,
 *     RED_GROUP contiguous row segments per pass over the accumulators;
 *   - inner axis reduced ((N, D) -> (N, 1)): a unit is a block of at most
 *     RED_ELEMS elements; each element reduces its contiguous inner runs in 8
 *     double lanes (lane j % 8 gets the j-th term of a run), the reduced
 *     outer axes in C order, and combines the lanes in a fixed tree.
 * The accumulators combine terms by a sum (gradients, sum_to_shape, sum,
 * mean: then divided by the count at the end) or a NaN-propagating max / min
 * (exact in double). Units group rows only until they hold about
 * RED_UNIT_TERMS terms, so a few long reductions still spread over the
 * threads. A result with the input's own shape reduces nothing: it is
 * computed element-wise, as the forward pass is. Every element is therefore
 * reduced by one thread in an order fixed by the shapes alone: results are
 * bitwise identical for any nthreads (and do not depend on the data's
 * alignment). Small calls never enter a parallel region.
 *
 * NaN and inf are not checked: they propagate as IEEE arithmetic says, and
 * maximum / minimum (binary and reduced) return NaN when an operand is NaN
 * (NumPy's rule).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fnn_omp.h"
#include "vexp.h"

/* Element-wise work per thread before a second thread pays off, and the
 * block a thread takes at a time (constants: never derived from threads).
 * libm calls (exp, log, pow, ...) cost ~10x an add per element. */
#define EW_GRAIN 32768.0
#define EW_GRAIN_TRANSCENDENTAL 4096.0
#define EW_BLOCK 8192
/* Reductions: columns accumulated at once (a 4 KiB double buffer on the
 * stack); terms a unit should hold when rows are grouped into units; at most
 * this many out elements per unit when the inner axis is reduced. */
#define RED_COLS 512
#define RED_UNIT_TERMS 16384
#define RED_ELEMS 64
#define RED_LANES 8
/* Reduced positions whose row segments one pass of the accumulators adds
 * (acc_group_loop spells out four). */
#define RED_GROUP 4
_Static_assert(RED_GROUP == 4, "acc_group_loop adds exactly four row segments");
/* Operands an odometer steps together (where: the condition, A and B). */
#define EW_MAX_OPERANDS 3

#define FNN_EW_INLINE inline __attribute__((always_inline))

/* A reduction is a combination of terms, one per input element; each op's
 * gradients name their terms here (see binary_terms), and the reduce
 * kernels theirs. */
enum {
    TERM_DY = 0,          /* dy                          add (a, b); subtract (a); reduce */
    TERM_NEG_DY = 1,      /* -dy                         subtract (b) */
    TERM_DY_B = 2,        /* dy * b                      multiply (a) */
    TERM_DY_A = 3,        /* dy * a                      multiply (b) */
    TERM_DY_OVER_B = 4,   /* dy / b                      divide (a) */
    TERM_DIVIDE_B = 5,    /* (-dy * a) / (b * b)         divide (b) */
    TERM_A_GE_B = 6,      /* a >= b ? dy : 0             maximum (a) */
    TERM_A_NOT_GE_B = 7,  /* a >= b ? 0 : dy             maximum (b) */
    TERM_A_LE_B = 8,      /* a <= b ? dy : 0             minimum (a) */
    TERM_A_NOT_LE_B = 9,  /* a <= b ? 0 : dy             minimum (b) */
    TERM_POW_A = 10,      /* (dy * b) * pow(a, b - 1)    power (a) */
    TERM_POW_B = 11,      /* a > 0 ? (dy * pow(a, b)) * log(a) : 0   power (b) */
    TERM_EQ = 12,         /* dy == a ? 1 : 0             reduce max / min backward: ties */
    TERM_EQ_B = 13        /* dy == a ? b : 0             reduce max / min backward: dX */
};

/* How a reduction combines its terms (max / min propagate NaN). */
enum { COMB_SUM = 0, COMB_MAX = 1, COMB_MIN = 2 };

/* The terms of dA and dB for each FNN_BINARY_* op. For maximum / minimum B
 * takes every dy that A does not (so a NaN comparison sends it to B, as
 * TensorFlow's where(a >= b, dy, 0) / where(a >= b, 0, dy) does). */
static const int binary_terms[FNN_BINARY_COUNT][2] = {
    {TERM_DY, TERM_DY},                 /* add */
    {TERM_DY, TERM_NEG_DY},             /* subtract */
    {TERM_DY_B, TERM_DY_A},             /* multiply */
    {TERM_DY_OVER_B, TERM_DIVIDE_B},    /* divide */
    {TERM_A_GE_B, TERM_A_NOT_GE_B},     /* maximum */
    {TERM_A_LE_B, TERM_A_NOT_LE_B},     /* minimum */
    {TERM_POW_A, TERM_POW_B},           /* power */
};

/* Strides of an operand that is not read (add's and subtract's gradients,
 * sum_to_shape): its pointer is then dY's, so every load stays in bounds. */
static const int64_t zero_strides[FNN_MAX_DIMS];

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Checks a layout; *n = the number of output elements. */
static int check_layout(int ndim, const int64_t *shape, int64_t *n)
{
    int64_t count = 1;

    if (ndim < 1 || ndim > FNN_MAX_DIMS || shape == NULL) {
        return FNN_ERR_ARG;
    }
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1 || count > INT64_MAX / shape[d]) {
            return FNN_ERR_ARG;
        }
        count *= shape[d];
    }
    *n = count;
    return FNN_OK;
}

/* Element strides of a C-contiguous array of shape[ndim]. */
static void contiguous_strides(int ndim, const int64_t *shape, int64_t *st)
{
    int64_t run = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        st[d] = run;
        run *= shape[d];
    }
}

/* One element-wise call for run_elements: `range` computes output elements
 * [lo, hi). The impl headers fill the fields their range functions read
 * (their element type cast from void): op (or term), the output, up to three
 * operands and their strides over `shape`. */
typedef struct ew_call ew_call;
struct ew_call {
    void (*range)(const ew_call *c, int64_t lo, int64_t hi);
    int op;
    void *out;
    const void *a, *b, *c;
    int ndim;
    const int64_t *shape, *sa, *sb, *sc;
};

typedef struct {
    const ew_call *call;
    int64_t n;
} ew_pass;

static int ew_blocks(void *ctx, int64_t first, int64_t last, int slot)
{
    const ew_pass *pass = (const ew_pass *)ctx;
    (void)slot;
    pass->call->range(pass->call, first * EW_BLOCK, min64(last * EW_BLOCK, pass->n));
    return FNN_OK;
}

/* Elements per thread before a second thread pays off. */
static double ew_grain(int transcendental)
{
    return transcendental ? EW_GRAIN_TRANSCENDENTAL : EW_GRAIN;
}

/* call->range over n elements in EW_BLOCK units, on the threads they are
 * worth; each element is computed the same way whoever computes it. */
static void run_elements(const ew_call *call, int64_t n, int transcendental, int nthreads)
{
    const int64_t blocks = (n + EW_BLOCK - 1) / EW_BLOCK;
    const ew_pass pass = {call, n};
    fnn_run_units(blocks,
                  fnn_threads_for((double)n, ew_grain(transcendental), blocks, nthreads),
                  ew_blocks, (void *)&pass);
}

/* ---- element-wise: the odometer over the outer axes ---------------------- */

/* idx[0..ndim-2] of output row `row` (rows of the inner axis, in C order) and
 * the offsets there of k operands with strides st[0..k). */
static FNN_EW_INLINE void seek_row_k(int ndim, const int64_t *shape, const int k,
                                     const int64_t *const *st, int64_t row, int64_t *idx,
                                     int64_t *off)
{
    for (int x = 0; x < k; x++) {
        off[x] = 0;
    }
    for (int d = ndim - 2; d >= 0; d--) {
        idx[d] = row % shape[d];
        row /= shape[d];
        for (int x = 0; x < k; x++) {
            off[x] += idx[d] * st[x][d];
        }
    }
}

/* Moves idx / offsets to the next row (past the last row they wrap to 0). */
static FNN_EW_INLINE void next_row_k(int ndim, const int64_t *shape, const int k,
                                     const int64_t *const *st, int64_t *idx, int64_t *off)
{
    for (int d = ndim - 2; d >= 0; d--) {
        for (int x = 0; x < k; x++) {
            off[x] += st[x][d];
        }
        if (++idx[d] < shape[d]) {
            return;
        }
        for (int x = 0; x < k; x++) {
            off[x] -= shape[d] * st[x][d];
        }
        idx[d] = 0;
    }
}

/* The two-operand odometer (A and B). */
static FNN_EW_INLINE void seek_row(int ndim, const int64_t *shape, const int64_t *as,
                                   const int64_t *bs, int64_t row, int64_t *idx, int64_t *oa,
                                   int64_t *ob)
{
    const int64_t *st[2] = {as, bs};
    int64_t off[2];
    seek_row_k(ndim, shape, 2, st, row, idx, off);
    *oa = off[0];
    *ob = off[1];
}

static FNN_EW_INLINE void next_row(int ndim, const int64_t *shape, const int64_t *as,
                                   const int64_t *bs, int64_t *idx, int64_t *oa, int64_t *ob)
{
    const int64_t *st[2] = {as, bs};
    int64_t off[2] = {*oa, *ob};
    next_row_k(ndim, shape, 2, st, idx, off);
    *oa = off[0];
    *ob = off[1];
}

/* ---- reductions: the plan and its odometers ------------------------------ */

/* 1 when an array of strides `so` has the output's own C-contiguous layout:
 * then every element is the sum of exactly one term (no axis is summed). */
static int sums_nothing(int ndim, const int64_t *shape, const int64_t *so)
{
    int64_t run = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] != 1 && so[d] != run) {
            return 0;
        }
        run *= shape[d];
    }
    return 1;
}

/* The number of elements reduced into each element of an array laid out by
 * `so` (the product of the axes it is broadcast along). */
static int64_t reduced_count(int ndim, const int64_t *shape, const int64_t *so)
{
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (so[d] == 0) {
            count *= shape[d];
        }
    }
    return count;
}

/* Array slots in the strides table: the array summed into, dY (or X), A, B. */
enum { S_OUT = 0, S_DY = 1, S_A = 2, S_B = 3, S_COUNT = 4 };

typedef struct {
    int nd;
    const int64_t *shape;
    const int64_t *st[S_COUNT];     /* element strides of each array over shape */
    int64_t dy_strides[FNN_MAX_DIMS];
    int kaxes[FNN_MAX_DIMS];        /* outer axes the out array keeps, in order */
    int raxes[FNN_MAX_DIMS];        /* outer axes summed over, in order */
    int nk, nr;
    int inner_kept;                 /* the inner axis is kept (else summed) */
    int64_t L;                      /* inner length */
    int64_t nkept;                  /* elements over the kept outer axes */
    int64_t rows, cols;             /* a unit: `rows` kept rows (or elements) x `cols` */
    int64_t ncb;                    /* column blocks per row block */
    int64_t nunits;
    double div;                     /* each result is divided by this (mean's count; else 1) */
} reduce_plan;

/* out has strides `so` (0 on the summed axes); dY is C-contiguous. */
static void plan_reduce(reduce_plan *p, int ndim, const int64_t *shape, const int64_t *so,
                        const int64_t *sa, const int64_t *sb, double div)
{
    const int in = ndim - 1;
    int64_t summed = 1;

    p->nd = ndim;
    p->shape = shape;
    p->div = div;
    contiguous_strides(ndim, shape, p->dy_strides);
    p->st[S_OUT] = so;
    p->st[S_DY] = p->dy_strides;
    p->st[S_A] = sa;
    p->st[S_B] = sb;
    p->nk = 0;
    p->nr = 0;
    p->nkept = 1;
    for (int d = 0; d < in; d++) {
        if (so[d] != 0) {
            p->kaxes[p->nk++] = d;
            p->nkept *= shape[d];
        }
        else {
            p->raxes[p->nr++] = d;
            summed *= shape[d];
        }
    }
    p->L = shape[in];
    p->inner_kept = so[in] != 0;
    /* A unit groups rows (or out elements) until it holds about RED_UNIT_TERMS
     * terms, so long sums are shared out one row each and short ones in
     * blocks; the sizes depend on the shape alone. */
    if (p->inner_kept) {
        p->cols = p->L < RED_COLS ? p->L : RED_COLS;
        p->rows = RED_UNIT_TERMS / (p->cols * summed);
        if (p->rows > RED_COLS / p->cols) {
            p->rows = RED_COLS / p->cols;
        }
        p->ncb = (p->L + p->cols - 1) / p->cols;
    }
    else {
        p->cols = 1;
        p->rows = RED_UNIT_TERMS / (p->L * summed);
        if (p->rows > RED_ELEMS) {
            p->rows = RED_ELEMS;
        }
        p->ncb = 1;
    }
    if (p->rows < 1) {
        p->rows = 1;
    }
    p->nunits = (p->nkept + p->rows - 1) / p->rows * p->ncb;
}

/* Kept-axes index of element `flat` (C order over the kept outer axes) and
 * the offsets of every array there. */
static void seek_kept(const reduce_plan *p, int64_t flat, int64_t *idx, int64_t *off)
{
    for (int x = 0; x < S_COUNT; x++) {
        off[x] = 0;
    }
    for (int k = p->nk - 1; k >= 0; k--) {
        const int d = p->kaxes[k];
        idx[k] = flat % p->shape[d];
        flat /= p->shape[d];
        for (int x = 0; x < S_COUNT; x++) {
            off[x] += idx[k] * p->st[x][d];
        }
    }
}

static void next_kept(const reduce_plan *p, int64_t *idx, int64_t *off)
{
    for (int k = p->nk - 1; k >= 0; k--) {
        const int d = p->kaxes[k];
        for (int x = 0; x < S_COUNT; x++) {
            off[x] += p->st[x][d];
        }
        if (++idx[k] < p->shape[d]) {
            return;
        }
        for (int x = 0; x < S_COUNT; x++) {
            off[x] -= p->shape[d] * p->st[x][d];
        }
        idx[k] = 0;
    }
}

/* Steps the summed outer axes (idx starts all 0) in C order; returns 0 once
 * past the last position, with idx and the offsets back at the start. */
static int next_reduced(const reduce_plan *p, int64_t *idx, int64_t *off)
{
    for (int r = p->nr - 1; r >= 0; r--) {
        const int d = p->raxes[r];
        for (int x = 0; x < S_COUNT; x++) {
            off[x] += p->st[x][d];
        }
        if (++idx[r] < p->shape[d]) {
            return 1;
        }
        for (int x = 0; x < S_COUNT; x++) {
            off[x] -= p->shape[d] * p->st[x][d];
        }
        idx[r] = 0;
    }
    return 0;
}

/* ---- accumulators: how terms combine (in double, whatever FNN_T) ---------- */

/* The value a reduction starts from. */
static FNN_EW_INLINE double comb_init(const int comb)
{
    return comb == COMB_MAX ? -INFINITY : comb == COMB_MIN ? INFINITY : 0.0;
}

/* s combined with t. max / min keep a NaN s and take a NaN t (the comparison
 * is false), so NaN propagates whatever its position. */
static FNN_EW_INLINE double comb_apply(const int comb, const double s, const double t)
{
    switch (comb) {
    case COMB_MAX:
        return (s >= t || s != s) ? s : t;
    case COMB_MIN:
        return (s <= t || s != s) ? s : t;
    default:
        return s + t;
    }
}

/* ---- unary op properties ---------------------------------------------------- */

int fnn_unary_reads(int op)
{
    switch (op) {
    case FNN_UNARY_ABS:
    case FNN_UNARY_SQUARE:
    case FNN_UNARY_LOG:
    case FNN_UNARY_LOG1P:
        return 1;
    case FNN_UNARY_SQRT:
    case FNN_UNARY_EXP:
    case FNN_UNARY_RECIPROCAL:
        return 2;
    default:
        return 0;
    }
}

/* The ops that call libm once per element (exp is vectorised: vexp.h). */
static int unary_is_transcendental(int op)
{
    return op == FNN_UNARY_LOG || op == FNN_UNARY_LOG1P;
}

/* ---- the loops, once per element type ------------------------------------ */

/* FNN_M(exp) is expf for float, exp for double (likewise log, pow, ...). */
#define FNN_T float
#define FNN_BITS uint32_t
#define FNN_EW_SFX f32
#define FNN_M(name) name##f
#include "elementwise_impl.h"
#include "reduce_impl.h"
#undef FNN_T
#undef FNN_BITS
#undef FNN_EW_SFX
#undef FNN_M

#define FNN_T double
#define FNN_BITS uint64_t
#define FNN_EW_SFX f64
#define FNN_M(name) name
#include "elementwise_impl.h"
#include "reduce_impl.h"
#undef FNN_T
#undef FNN_BITS
#undef FNN_EW_SFX
#undef FNN_M

/* Comparisons: float, double and int64 operands. */
#define FNN_CT float
#define FNN_EW_SFX f32
#include "compare_impl.h"
#undef FNN_CT
#undef FNN_EW_SFX

#define FNN_CT double
#define FNN_EW_SFX f64
#include "compare_impl.h"
#undef FNN_CT
#undef FNN_EW_SFX

#define FNN_CT int64_t
#define FNN_EW_SFX i64
#include "compare_impl.h"
#undef FNN_CT
#undef FNN_EW_SFX
