/*
 * conv.c -- 2-D convolution over NHWC images, float32, forward and backward.
 *
 *   X[N,H,W,C] input, W[KH,KW,C,F] kernel (Keras' layout), b[F] bias,
 *   Y[N,OH,OW,F] = act(Z), Z = conv(X, W) + b, with
 *   Z[n,i,j,f] = b[f] + sum_{p,q,c} X[n, i*sh + p*dh - top, j*sw + q*dw - left, c] W[p,q,c,f]
 *   (X is zero outside [0,H) x [0,W)). The geometry (OH, OW, strides,
 *   dilation, top/left padding) comes in an fnn_conv2d_shape; the caller
 *   derives it from Keras' padding rules. Any geometry is memory-safe: every
 *   read of X is bounds-checked, and Y/Z/dY/dZ are N*OH*OW*F.
 *
 *   fnn_conv2d_forward_f32   Y (and Z, when given) as above.
 *   fnn_conv2d_backward_f32  dZ = dY * act'(Z or Y) (overwritten; unused for linear),
 *                            dW = sum over pixels of patch^T dZ (OVERWRITTEN),
 *                            db = column sums of dZ (OVERWRITTEN; may be NULL),
 *                            dX = col2im(dZ W^T)    (overwritten; may be NULL).
 *   fnn_conv2d_work_floats   the scratch (floats) those two use, given nthreads.
 *
 * Algorithm (chosen by measurement on W3's convolutions):
 *   im2col: the patch matrix has one row per output pixel (rows = N*OH*OW in
 *   (n, i, j) order) and KD = KH*KW*C columns in (p, q, c) order, so W viewed
 *   as KD x F is its right operand, as is. It is never built whole: rows are
 *   processed in chunks of R (R*KD about 384 KiB, R a multiple of 48), so a
 *   chunk is written and read back while it is in L2, and the scratch stays
 *   bounded whatever N is.
 *   - forward: per chunk, Y_chunk = act(cols @ W + b) with the GEMM's fused
 *     bias + activation epilogue. Threads take whole chunks (each its own
 *     cols buffer, the GEMM on one thread): no barrier, no shared scratch.
 *   - backward-filter: the chunks are grouped into P <= 16 fixed groups of
 *     consecutive chunks; group g accumulates its partial dW_g = sum over its
 *     chunks of cols^T dZ_chunk (GEMM, trans_a, beta = 1 after the first
 *     chunk), and dW = ((dW_0 + dW_1) + dW_2) + ... in group order. Threads
 *     take whole groups.
 *   - backward-data: per image, chunk by chunk, dcols = dZ_chunk W^T (W
 *     transposed once into the scratch, so the GEMM packs without a
 *     transpose), then col2im adds each dcols row's KH*KW segments into
 *     dX[n] in pixel order, then tap order. Threads take whole images, so each
 *     element of dX is written by one thread, in that fixed order.
 *   - 1x1 kernels with stride 1 and no padding need no im2col: X is already
 *     the (N*H*W) x C patch matrix, so the dense kernels do the work.
 *
 * Determinism: R, the groups and every summation order depend on the shapes
 * alone, never on nthreads; the GEMM's result for a row does not depend on
 * how many rows it is given. Threads only decide who computes a chunk, a
 * group or an image: static contiguous ranges of them (fnn_run_units; the
 * units cost the same, and a descheduled thread is the oversubscription
 * guard's business). Results are bitwise identical for any nthreads. Work
 * below a few MFLOP runs on one thread; there are no nested parallel regions
 * (inside a parallel loop, the GEMM runs on one thread).
 * Each parallel loop reports the final wait of its first thread to run out of
 * work to the oversubscription guard (fnn_omp.h).
 *
 * Scratch: `work` (work_len floats) when it holds fnn_conv2d_work_floats(),
 * else one aligned allocation per call (FNN_ERR_NOMEM if that fails).
 */
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fnn_alloc.h"
#include "fnn_omp.h"

/* Floats of patch matrix per chunk: with the GEMM's packed operands it stays
 * in a 1 MiB L2. R is a multiple of CONV_ROW_ALIGN (a multiple of every
 * micro-kernel's MR: 4, 6, 12) and at most CONV_MAX_ROWS. */
#define CONV_CHUNK_FLOATS (96 * 1024)
#define CONV_ROW_ALIGN 48
#define CONV_MAX_ROWS 4096
/* Partial dW sums (groups of chunks) of the backward-filter pass. */
#define CONV_MAX_GROUPS 16
/* A thread's share of a pass must be at least this many FLOPs. */
#define CONV_GRAIN_FLOPS 2e6
/* Buffers inside the scratch start on 64-byte boundaries. */
#define CONV_ALIGN_FLOATS 16

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static int64_t round_up(int64_t a, int64_t b)
{
    return ceil_div(a, b) * b;
}

/* What every pass derives from the shape. */
typedef struct {
    const fnn_conv2d_shape *s;
    int64_t kd;      /* KH * KW * C: columns of the patch matrix */
    int64_t pix;     /* OH * OW: rows per image */
    int64_t rows;    /* N * OH * OW */
    int64_t R;       /* rows per chunk */
    int64_t nchunks; /* ceil(rows / R) */
    int64_t gsize;   /* chunks per dW group */
    int64_t groups;  /* dW groups (partial sums) */
    int direct;      /* 1x1, stride 1, no padding: X is the patch matrix */
} conv_plan;

static int check_shape(const fnn_conv2d_shape *s)
{
    if (s == NULL) {
        return FNN_ERR_ARG;
    }
    if (s->N < 0 || s->H < 1 || s->W < 1 || s->C < 1 || s->KH < 1 || s->KW < 1 || s->F < 1
        || s->OH < 1 || s->OW < 1 || s->stride_h < 1 || s->stride_w < 1 || s->dil_h < 1
        || s->dil_w < 1 || s->pad_top < 0 || s->pad_left < 0) {
        return FNN_ERR_ARG;
    }
    return FNN_OK;
}

static void make_plan(conv_plan *pl, const fnn_conv2d_shape *s)
{
    int64_t r;

    pl->s = s;
    pl->kd = s->KH * s->KW * s->C;
    pl->pix = s->OH * s->OW;
    pl->rows = s->N * pl->pix;
    r = CONV_CHUNK_FLOATS / pl->kd;
    r -= r % CONV_ROW_ALIGN;
    if (r < CONV_ROW_ALIGN) {
        r = CONV_ROW_ALIGN;
    }
    if (r > CONV_MAX_ROWS) {
        r = CONV_MAX_ROWS;
    }
    pl->R = r;
    pl->nchunks = pl->rows > 0 ? ceil_div(pl->rows, r) : 0;
    pl->gsize = pl->nchunks > 0 ? ceil_div(pl->nchunks, CONV_MAX_GROUPS) : 1;
    pl->groups = pl->nchunks > 0 ? ceil_div(pl->nchunks, pl->gsize) : 0;
    pl->direct = s->KH == 1 && s->KW == 1 && s->stride_h == 1 && s->stride_w == 1
                 && s->pad_top == 0 && s->pad_left == 0 && s->OH == s->H && s->OW == s->W;
}

/* ---- scratch layout ------------------------------------------------------ */

/* Floats of one thread's chunk buffer (cols or dcols). */
static int64_t chunk_floats(const conv_plan *pl)
{
    int64_t r = pl->R < pl->rows ? pl->R : pl->rows;
    return round_up(r * pl->kd, CONV_ALIGN_FLOATS);
}

static int forward_threads(const conv_plan *pl, int nthreads)
{
    const double flops = 2.0 * (double)pl->rows * (double)pl->kd * (double)pl->s->F;
    return fnn_threads_for(flops, CONV_GRAIN_FLOPS, pl->nchunks, nthreads);
}

static int filter_threads(const conv_plan *pl, int nthreads)
{
    const double flops = 2.0 * (double)pl->rows * (double)pl->kd * (double)pl->s->F;
    return fnn_threads_for(flops, CONV_GRAIN_FLOPS, pl->groups, nthreads);
}

static int data_threads(const conv_plan *pl, int nthreads)
{
    const double flops = 2.0 * (double)pl->rows * (double)pl->kd * (double)pl->s->F;
    return fnn_threads_for(flops, CONV_GRAIN_FLOPS, pl->s->N, nthreads);
}

/* Backward scratch: [W^T: F x KD][partials: (groups - 1) x KD x F][nt chunk buffers]. */
static int64_t backward_floats(const conv_plan *pl, int nt, int64_t *off_part, int64_t *off_cols)
{
    const int64_t wsize = round_up(pl->kd * pl->s->F, CONV_ALIGN_FLOATS);
    const int64_t parts = pl->groups > 1 ? pl->groups - 1 : 0;
    *off_part = wsize;
    *off_cols = wsize + parts * wsize;
    return *off_cols + (int64_t)nt * chunk_floats(pl);
}

int64_t fnn_conv2d_work_floats(const fnn_conv2d_shape *shape, int backward, int nthreads)
{
    conv_plan pl;
    int64_t op, oc;
    int nt;

    if (check_shape(shape) != FNN_OK) {
        return 0;
    }
    make_plan(&pl, shape);
    if (pl.direct || pl.rows == 0) {
        return 0;
    }
    if (!backward) {
        return (int64_t)forward_threads(&pl, nthreads) * chunk_floats(&pl);
    }
    nt = filter_threads(&pl, nthreads);
    if (data_threads(&pl, nthreads) > nt) {
        nt = data_threads(&pl, nthreads);
    }
    return backward_floats(&pl, nt, &op, &oc);
}

/* `work` when it is large enough, else a fresh aligned buffer (*heap). */
static float *scratch(float *work, int64_t work_len, int64_t need, float **heap)
{
    *heap = NULL;
    if (need <= 0) {
        return work;
    }
    if (work != NULL && work_len >= need + CONV_ALIGN_FLOATS) {
        /* Start on a 64-byte boundary (NumPy aligns to 16 bytes). */
        uintptr_t p = (uintptr_t)work;
        return (float *)((p + 63) & ~(uintptr_t)63);
    }
    *heap = fnn_aligned_alloc((size_t)round_up(need, CONV_ALIGN_FLOATS) * sizeof(float));
    return *heap;
}

/* ---- im2col / col2im ------------------------------------------------------ */

static inline void copy_floats(float *restrict d, const float *restrict s, int64_t n)
{
    if (n >= 16) {
        memcpy(d, s, (size_t)n * sizeof(float));
    }
    else {
        for (int64_t i = 0; i < n; i++) {
            d[i] = s[i];
        }
    }
}

static inline void zero_floats(float *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        d[i] = 0.0f;
    }
}

static inline void add_floats(float *restrict d, const float *restrict s, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        d[i] += s[i];
    }
}

/* cols[m, KD] = patches of rows [r0, r0+m) of the patch matrix (rows in
 * (n, i, j) order; they may span images). */
static void im2col(float *cols, const float *X, const conv_plan *pl, int64_t r0, int64_t m)
{
    const fnn_conv2d_shape *s = pl->s;
    const int64_t C = s->C, KW = s->KW, seg = KW * C;
    int64_t n = r0 / pl->pix, i = (r0 % pl->pix) / s->OW, j = r0 % s->OW;

    for (int64_t r = 0; r < m; r++) {
        const float *xn = X + n * s->H * s->W * C;
        const int64_t ih0 = i * s->stride_h - s->pad_top;
        const int64_t iw0 = j * s->stride_w - s->pad_left;
        const int contiguous = s->dil_w == 1 && iw0 >= 0 && iw0 + KW <= s->W;
        float *d = cols + r * pl->kd;

        for (int64_t p = 0; p < s->KH; p++, d += seg) {
            const int64_t ih = ih0 + p * s->dil_h;
            const float *xr;
            if (ih < 0 || ih >= s->H) {
                zero_floats(d, seg);
                continue;
            }
            xr = xn + ih * s->W * C;
            if (contiguous) {
                copy_floats(d, xr + iw0 * C, seg);
                continue;
            }
            for (int64_t q = 0; q < KW; q++) {
                const int64_t iw = iw0 + q * s->dil_w;
                if (iw < 0 || iw >= s->W) {
                    zero_floats(d + q * C, C);
                }
                else {
                    copy_floats(d + q * C, xr + iw * C, C);
                }
            }
        }
        if (++j == s->OW) {
            j = 0;
            if (++i == s->OH) {
                i = 0;
                n++;
            }
        }
    }
}

/* dXn[H,W,C] += col2im(dcols[m, KD]) for rows [p0, p0+m) of ONE image (p0 is
 * the pixel index within the image). Pixels in order, then taps (p, q) in
 * order: the order every element of dX receives its terms in. */
static void col2im(float *dXn, const float *dcols, const conv_plan *pl, int64_t p0, int64_t m)
{
    const fnn_conv2d_shape *s = pl->s;
    const int64_t C = s->C, KW = s->KW, seg = KW * C;
    int64_t i = p0 / s->OW, j = p0 % s->OW;

    for (int64_t r = 0; r < m; r++) {
        const int64_t ih0 = i * s->stride_h - s->pad_top;
        const int64_t iw0 = j * s->stride_w - s->pad_left;
        const int contiguous = s->dil_w == 1 && iw0 >= 0 && iw0 + KW <= s->W;
        const float *src = dcols + r * pl->kd;

        for (int64_t p = 0; p < s->KH; p++, src += seg) {
            const int64_t ih = ih0 + p * s->dil_h;
            float *dr;
            if (ih < 0 || ih >= s->H) {
                continue;
            }
            dr = dXn + ih * s->W * C;
            if (contiguous) {
                add_floats(dr + iw0 * C, src, seg);
                continue;
            }
            for (int64_t q = 0; q < KW; q++) {
                const int64_t iw = iw0 + q * s->dil_w;
                if (iw >= 0 && iw < s->W) {
                    add_floats(dr + iw * C, src + q * C, C);
                }
            }
        }
        if (++j == s->OW) {
            j = 0;
            i++;
        }
    }
}

/* ---- forward ------------------------------------------------------------- */

/* Rows [r0, r0+m) of the output: Y = act(cols @ W + b), Z = cols @ W + b when
 * Z is wanted (then Y = act(Z) by the activation kernel), softmax likewise. */
static int forward_chunk(float *Y, float *Z, float *cols, const float *X, const float *Wt,
                         const float *b, const conv_plan *pl, int64_t r0, int64_t m, int act,
                         int nthreads)
{
    const int64_t F = pl->s->F;
    const int fused = Z == NULL && act != FNN_ACT_SOFTMAX;
    float *dst = (Z != NULL ? Z : Y) + r0 * F;
    const float *a = X + r0 * pl->kd;
    int status;

    if (!pl->direct) {
        im2col(cols, X, pl, r0, m);
        a = cols;
    }
    status = fnn_gemm_f32(dst, a, Wt, b, m, F, pl->kd, pl->kd, F, F, 0, 0, 1.0f, 0.0f,
                          fused ? act : FNN_ACT_LINEAR, nthreads);
    if (status != FNN_OK || fused) {
        return status;
    }
    return fnn_act_forward_f32(Y + r0 * F, dst, m, F, act, nthreads);
}

/* One call's arrays and plan, for the range functions below (each uses the
 * fields its pass needs). A range computed on its own thread gives its GEMMs
 * one thread; on the caller's thread alone, the whole budget. */
typedef struct {
    const conv_plan *pl;
    float *Y, *Z, *dW, *part, *dX;
    float *buf;             /* per-slot chunk buffers, chunk_floats() apart */
    const float *X, *Wt, *b, *dZ, *WT;
    int act;
    int inner_threads;
} conv_call;

static float *slot_buffer(const conv_call *c, int slot)
{
    return c->buf + (int64_t)slot * chunk_floats(c->pl);
}

/* Forward: chunks [first, last) of patch rows. */
static int forward_chunks(void *ctx, int64_t first, int64_t last, int slot)
{
    const conv_call *c = (const conv_call *)ctx;
    const conv_plan *pl = c->pl;
    int status = FNN_OK;
    for (int64_t k = first; k < last && status == FNN_OK; k++) {
        const int64_t r0 = k * pl->R;
        status = forward_chunk(c->Y, c->Z, slot_buffer(c, slot), c->X, c->Wt, c->b, pl, r0,
                               pl->rows - r0 < pl->R ? pl->rows - r0 : pl->R, c->act,
                               c->inner_threads);
    }
    return status;
}

int fnn_conv2d_forward_f32(float *Y, float *Z, float *work, const float *X, const float *Wt,
                           const float *b, const fnn_conv2d_shape *shape, int64_t work_len,
                           int act, int nthreads)
{
    conv_plan pl;
    float *heap = NULL, *buf;
    int nt, status = check_shape(shape);

    if (status != FNN_OK || act < 0 || act >= FNN_ACT_COUNT) {
        return FNN_ERR_ARG;
    }
    make_plan(&pl, shape);
    if (pl.rows == 0) {
        return FNN_OK;
    }
    if (Y == NULL || X == NULL || Wt == NULL) {
        return FNN_ERR_ARG;
    }
    if (pl.direct) {
        /* One GEMM over every pixel: it splits the rows between threads. */
        return forward_chunk(Y, Z, NULL, X, Wt, b, &pl, 0, pl.rows, act, nthreads);
    }

    nt = forward_threads(&pl, nthreads);
    buf = scratch(work, work_len, (int64_t)nt * chunk_floats(&pl), &heap);
    if (buf == NULL) {
        return FNN_ERR_NOMEM;
    }
    {
        /* One thread, or too few chunks to share: the GEMM may still split
         * a large chunk's rows. */
        const conv_call c = {.pl = &pl, .Y = Y, .Z = Z, .buf = buf, .X = X, .Wt = Wt, .b = b,
                             .act = act, .inner_threads = nt == 1 ? nthreads : 1};
        status = fnn_run_units(pl.nchunks, nt, forward_chunks, (void *)&c);
    }
    free(heap);
    return status;
}

/* ---- backward ------------------------------------------------------------ */

/* dWg[KD,F] = sum over the chunks of group g of cols^T dZ_chunk. */
static int filter_group(float *dWg, float *cols, const float *X, const float *dZ,
                        const conv_plan *pl, int64_t g, int nthreads)
{
    const int64_t F = pl->s->F;
    const int64_t c_end = (g + 1) * pl->gsize < pl->nchunks ? (g + 1) * pl->gsize : pl->nchunks;
    int status = FNN_OK;

    for (int64_t c = g * pl->gsize; c < c_end && status == FNN_OK; c++) {
        const int64_t r0 = c * pl->R;
        const int64_t m = pl->rows - r0 < pl->R ? pl->rows - r0 : pl->R;
        im2col(cols, X, pl, r0, m);
        /* op(A) = cols^T: cols stored m x KD (trans_a, lda = KD). */
        status = fnn_gemm_f32(dWg, cols, dZ + r0 * F, NULL, pl->kd, F, m, pl->kd, F, F, 1, 0,
                              1.0f, c == g * pl->gsize ? 0.0f : 1.0f, FNN_ACT_LINEAR, nthreads);
    }
    return status;
}

/* dX[n] = col2im(dZ[n] W^T), chunk by chunk; WT is W transposed (F x KD). */
static int data_image(float *dX, float *dcols, const float *dZ, const float *WT,
                      const conv_plan *pl, int64_t n, int nthreads)
{
    const fnn_conv2d_shape *s = pl->s;
    const int64_t F = s->F;
    const int64_t R = pl->R < pl->pix ? pl->R : pl->pix;
    float *dXn = dX + n * s->H * s->W * s->C;
    int status = FNN_OK;

    memset(dXn, 0, (size_t)(s->H * s->W * s->C) * sizeof(float));
    for (int64_t p0 = 0; p0 < pl->pix && status == FNN_OK; p0 += R) {
        const int64_t m = pl->pix - p0 < R ? pl->pix - p0 : R;
        status = fnn_gemm_f32(dcols, dZ + (n * pl->pix + p0) * F, WT, NULL, m, pl->kd, F, F,
                              pl->kd, pl->kd, 0, 0, 1.0f, 0.0f, FNN_ACT_LINEAR, nthreads);
        if (status == FNN_OK) {
            col2im(dXn, dcols, pl, p0, m);
        }
    }
    return status;
}

/* Backward-filter: groups [first, last), group 0 into dW, group g > 0 into
 * its partial. */
static int filter_groups(void *ctx, int64_t first, int64_t last, int slot)
{
    const conv_call *c = (const conv_call *)ctx;
    const int64_t wsize = round_up(c->pl->kd * c->pl->s->F, CONV_ALIGN_FLOATS);
    int status = FNN_OK;
    for (int64_t g = first; g < last && status == FNN_OK; g++) {
        status = filter_group(g == 0 ? c->dW : c->part + (g - 1) * wsize, slot_buffer(c, slot),
                              c->X, c->dZ, c->pl, g, c->inner_threads);
    }
    return status;
}

static int backward_filter(float *dW, float *part, float *buf, const float *X, const float *dZ,
                           const conv_plan *pl, int nt, int nthreads)
{
    const int64_t wsize = round_up(pl->kd * pl->s->F, CONV_ALIGN_FLOATS);
    const int64_t len = pl->kd * pl->s->F;
    const conv_call c = {.pl = pl, .dW = dW, .part = part, .buf = buf, .X = X, .dZ = dZ,
                         .inner_threads = nt == 1 ? nthreads : 1};
    int status = fnn_run_units(pl->groups, nt, filter_groups, (void *)&c);

    if (status != FNN_OK) {
        return status;
    }
    /* dW = ((dW_0 + dW_1) + dW_2) + ...: each element in group order. */
    for (int64_t g = 1; g < pl->groups; g++) {
        add_floats(dW, part + (g - 1) * wsize, len);
    }
    return FNN_OK;
}

/* Backward-data: images [first, last). */
static int data_images(void *ctx, int64_t first, int64_t last, int slot)
{
    const conv_call *c = (const conv_call *)ctx;
    int status = FNN_OK;
    for (int64_t n = first; n < last && status == FNN_OK; n++) {
        status = data_image(c->dX, slot_buffer(c, slot), c->dZ, c->WT, c->pl, n,
                            c->inner_threads);
    }
    return status;
}

static int backward_data(float *dX, float *buf, const float *dZ, const float *WT,
                         const conv_plan *pl, int nt, int nthreads)
{
    const conv_call c = {.pl = pl, .dX = dX, .buf = buf, .dZ = dZ, .WT = WT,
                         .inner_threads = nt == 1 ? nthreads : 1};
    return fnn_run_units(pl->s->N, nt, data_images, (void *)&c);
}

int fnn_conv2d_backward_f32(float *dX, float *dW, float *db, float *dZ, float *work,
                            const float *dY, const float *X, const float *Wt, const float *Z,
                            const float *Y, const fnn_conv2d_shape *shape, int64_t work_len,
                            int act, int nthreads)
{
    conv_plan pl;
    float *heap = NULL, *buf;
    int64_t off_part, off_cols, need;
    int ntf, ntd, status = check_shape(shape);

    if (status != FNN_OK || act < 0 || act >= FNN_ACT_COUNT) {
        return FNN_ERR_ARG;
    }
    if (dW == NULL || Wt == NULL) {
        return FNN_ERR_ARG;
    }
    make_plan(&pl, shape);
    if (pl.direct) {
        /* Y = act(X W + b) with X (N*H*W) x C: a dense layer. */
        return fnn_dense_backward_f32(dX, dW, db, dZ, dY, X, Wt, Z, Y, pl.rows, shape->C,
                                      shape->F, act, nthreads);
    }
    if (pl.rows == 0) {
        memset(dW, 0, (size_t)(pl.kd * shape->F) * sizeof(float));
        if (db != NULL) {
            memset(db, 0, (size_t)shape->F * sizeof(float));
        }
        if (dX != NULL) {
            memset(dX, 0, (size_t)(shape->N * shape->H * shape->W * shape->C) * sizeof(float));
        }
        return FNN_OK;
    }
    if (dZ == NULL || dY == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }

    /* dZ = dY * act'(.) (dY itself, read in place, for linear); db = its
     * column sums. */
    status = FNN_OK;
    if (act == FNN_ACT_LINEAR) {
        dZ = (float *)dY;
    }
    else {
        status = fnn_act_backward_f32(dZ, dY, Z, Y, pl.rows, shape->F, act, nthreads);
    }
    if (status == FNN_OK && db != NULL) {
        status = fnn_colsum_f32(db, dZ, pl.rows, shape->F, nthreads);
    }
    if (status != FNN_OK) {
        return status;
    }

    ntf = filter_threads(&pl, nthreads);
    ntd = dX != NULL ? data_threads(&pl, nthreads) : 1;
    need = backward_floats(&pl, ntf > ntd ? ntf : ntd, &off_part, &off_cols);
    buf = scratch(work, work_len, need, &heap);
    if (buf == NULL) {
        return FNN_ERR_NOMEM;
    }

    status = backward_filter(dW, buf + off_part, buf + off_cols, X, dZ, &pl, ntf, nthreads);
    if (status == FNN_OK && dX != NULL) {
        /* WT[F,KD] = W^T, so the GEMM's B operand packs by plain copies. */
        float *WT = buf;
        for (int64_t k = 0; k < pl.kd; k++) {
            for (int64_t f = 0; f < shape->F; f++) {
                WT[f * pl.kd + k] = Wt[k * shape->F + f];
            }
        }
        status = backward_data(dX, buf + off_cols, dZ, WT, &pl, ntd, nthreads);
    }
    free(heap);
    return status;
}
