/*
 * concat.c -- concatenation along one axis and its backward (the split).
 *
 *   fnn_concat_forward    Y[o, off_i + j] = X_i[o, j]      Y (outer, W)
 *   fnn_concat_backward   dX_i[o, j] = dY[o, off_i + j]    dX_i (outer, widths[i])
 *
 * Every array is C-contiguous and viewed as `outer` rows: the product of the
 * axes before the concatenation axis. Piece i's rows hold widths[i] elements
 * (its size along the axis times the product of the axes after it); Y's rows
 * hold W = the sum of the widths, piece i starting at column off_i = widths[0]
 * + .. + widths[i-1]. Nothing is computed, only copied, so one byte-level
 * version (elements of `elem` bytes) serves float32, float64 and any other
 * type.
 *
 * Threads: the copy is cut into units -- one row of one piece, or a
 * CONCAT_CHUNK-byte slice of it when the piece's rows are long (a
 * concatenation along axis 0 is one long row per piece) -- and the units are
 * shared out by fnn_run_units. Small calls never enter a parallel region.
 */
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fnn_omp.h"

/* Bytes per unit at most, and bytes per thread before a second pays off. */
#define CONCAT_CHUNK 65536
#define CONCAT_GRAIN 262144.0
/* Pieces whose offset tables live on the stack; more are allocated. */
#define CONCAT_STACK_PIECES 64

typedef struct {
    char *whole;                 /* Y (forward) or dY (backward) */
    char *const *pieces;         /* X_i or dX_i (a NULL dX_i is skipped) */
    int64_t k, row_bytes;        /* pieces; bytes in a row of the whole */
    const int64_t *widths;
    int64_t elem;
    const int64_t *first_unit;   /* k + 1 entries: units of a row before piece i */
    const int64_t *byte_off;     /* k entries: off_i in bytes */
    int forward;
} concat_plan;

/* Copies unit u: row u / units_per_row, then the piece and chunk of that row
 * (the last piece whose first unit is <= the rest, by bisection). */
static void copy_unit(const concat_plan *p, int64_t u)
{
    const int64_t per_row = p->first_unit[p->k];
    const int64_t row = u / per_row, r = u % per_row;
    int64_t lo = 0, hi = p->k - 1;
    int64_t i, piece_bytes, b0, len;
    char *whole, *piece;

    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (p->first_unit[mid] <= r) {
            lo = mid;
        }
        else {
            hi = mid - 1;
        }
    }
    i = lo;
    if (p->pieces[i] == NULL) {
        return;
    }
    piece_bytes = p->widths[i] * p->elem;
    b0 = (r - p->first_unit[i]) * CONCAT_CHUNK;
    len = piece_bytes - b0 < CONCAT_CHUNK ? piece_bytes - b0 : CONCAT_CHUNK;
    whole = p->whole + row * p->row_bytes + p->byte_off[i] + b0;
    piece = p->pieces[i] + row * piece_bytes + b0;
    if (p->forward) {
        memcpy(whole, piece, (size_t)len);
    }
    else {
        memcpy(piece, whole, (size_t)len);
    }
}

static int copy_units(void *ctx, int64_t first, int64_t last, int slot)
{
    const concat_plan *p = (const concat_plan *)ctx;
    (void)slot;
    for (int64_t u = first; u < last; u++) {
        copy_unit(p, u);
    }
    return FNN_OK;
}

/* Both directions: the offset tables, then the units. */
static int concat_copy(char *whole, char *const *pieces, const int64_t *widths, int64_t k,
                       int64_t outer, int64_t elem, int forward, int nthreads)
{
    int64_t stack[2 * CONCAT_STACK_PIECES + 1];
    int64_t *table = stack, *first_unit, *byte_off;
    int64_t row_bytes = 0, units;
    concat_plan p;

    if (k < 1 || outer < 0 || elem < 1 || widths == NULL || pieces == NULL) {
        return FNN_ERR_ARG;
    }
    for (int64_t i = 0; i < k; i++) {
        if (widths[i] < 0) {
            return FNN_ERR_ARG;
        }
        row_bytes += widths[i] * elem;
    }
    if (outer == 0 || row_bytes == 0) {
        return FNN_OK;
    }
    if (whole == NULL) {
        return FNN_ERR_ARG;
    }
    if (k > CONCAT_STACK_PIECES) {
        table = (int64_t *)malloc((size_t)(2 * k + 1) * sizeof(int64_t));
        if (table == NULL) {
            return FNN_ERR_NOMEM;
        }
    }
    first_unit = table;
    byte_off = table + k + 1;
    first_unit[0] = 0;
    for (int64_t i = 0, off = 0; i < k; i++) {
        const int64_t bytes = widths[i] * elem;
        byte_off[i] = off;
        off += bytes;
        first_unit[i + 1] = first_unit[i] + (bytes + CONCAT_CHUNK - 1) / CONCAT_CHUNK;
    }
    p.whole = whole;
    p.pieces = pieces;
    p.k = k;
    p.row_bytes = row_bytes;
    p.widths = widths;
    p.elem = elem;
    p.first_unit = first_unit;
    p.byte_off = byte_off;
    p.forward = forward;

    units = outer * first_unit[k];
    fnn_run_units(units,
                  fnn_threads_for((double)outer * (double)row_bytes, CONCAT_GRAIN, units, nthreads),
                  copy_units, &p);
    if (table != stack) {
        free(table);
    }
    return FNN_OK;
}

int fnn_concat_forward(void *Y, const void *const *X, const int64_t *widths, int64_t k,
                       int64_t outer, int64_t elem, int nthreads)
{
    if (X != NULL) {
        for (int64_t i = 0; i < k; i++) {
            if (X[i] == NULL && widths != NULL && widths[i] > 0 && outer > 0) {
                return FNN_ERR_ARG;
            }
        }
    }
    /* The pieces are only read in this direction. */
    return concat_copy((char *)Y, (char *const *)X, widths, k, outer, elem, 1, nthreads);
}

int fnn_concat_backward(void *const *dX, const void *dY, const int64_t *widths, int64_t k,
                        int64_t outer, int64_t elem, int nthreads)
{
    /* dY is only read in this direction. */
    return concat_copy((char *)dY, (char *const *)dX, widths, k, outer, elem, 0, nthreads);
}
