/*
 * rnn.c -- recurrent layers over whole sequences: SimpleRNN, LSTM and GRU
 * (Keras' reset_after=True), forward and back-propagation through time,
 * float32, one C call each.
 *
 *   fnn_rnn_cache_width     floats per (n, t) of the cache forward fills
 *   fnn_rnn_forward_f32     hs[N,T,U] from X[N,T,I], W[I,G*U], R[U,G*U], b
 *   fnn_rnn_backward_f32    dW, dR, db (OVERWRITTEN) and dX from dhs[N,T,U]
 *
 * Cells (G gates, Keras' orders; act = activation, ra = recurrent one):
 *   simple (G=1): h = act(x W + h R + b)
 *   lstm   (G=4): z = x W + h R + b; i, f, o = ra(z_i, z_f, z_o), g = act(z_c);
 *                 c = f c + i g; h = o act(c)
 *   gru    (G=3): [xz xr xh] = x W + b_in; [rz rr rh] = h R + b_rec;
 *                 z = ra(xz + rz); r = ra(xr + rr); hh = act(xh + r rh);
 *                 h = z h_prev + (1 - z) hh
 * The state starts at zero. Step k (k = 0..T-1) processes time t(k) = k, or
 * T-1-k with go_backwards; hs[n,k] is the state after step k. Where
 * mask[n,t] == 0 (mask may be NULL) the step keeps the previous h and c.
 *
 * How. Every batch row is an independent recurrence, so the rows are split
 * between threads once, for the whole sequence: ONE parallel region per call
 * and no barrier per step. Per thread:
 *   - forward: the input projection of all its rows and steps as one GEMM
 *     (fnn_gemm_f32, bias fused); then per step and per tile of MR rows the
 *     recurrent product h_prev R straight through the GEMM micro-kernel
 *     (A = h_prev read in place from hs, B = R packed once per call, C = the
 *     projection, accumulated) and the fused gate kernel on those rows while
 *     they are in L1;
 *   - backward (steps in reverse): the fused gate-backward kernel writes the
 *     gate gradients dG of all steps, and dh_prev = dG R^T goes through the
 *     micro-kernel (R^T packed once). After the loop the parameter
 *     gradients are three big GEMMs over all N*T rows (dW = X^T dG,
 *     dR = Hprev^T dG, dX = dG W^T) and a fixed-order column sum for db.
 * Each row's arithmetic is the same whichever thread runs it and whichever
 * tile it lands in (the micro-kernel contract, gemm_internal.h), the big
 * GEMMs split over outputs only and the column sum runs in row order: all
 * results are bitwise identical for any nthreads.
 *
 * The activations run on the kernel table's activation loops (act_loops.h:
 * vact.h's branch-free code, vectorised, built per ISA, the same values on
 * every ISA and the same as act.c's and the GEMM epilogue's). Derivatives
 * are taken from the stored activations (sigmoid y(1-y), tanh 1-y^2, elu
 * y + alpha) or, for gelu and swish, from the pre-activations, which the
 * cache then keeps.
 *
 * The cache (fnn_rnn_cache_width(cell, U) floats per (n, t), rows in
 * ORIGINAL time order, row (n, t) at cache + (n*T + t) * width) holds:
 *   simple: [z U | hp U]                          width 2U
 *   lstm:   [z 4U | a 4U | hp U | cp U | ac U]    width 11U
 *   gru:    [zx 3U | zr 3U | a 3U | hp U]         width 10U
 * z / zx: x W + b (+ h R for simple and lstm): the pre-activations; zr: h R +
 * b_rec; a: the activated gates (written over z, and the a columns left
 * unused, unless act or ra is gelu/swish, whose derivatives need the
 * pre-activations); hp / cp: h and c before the step; ac: act(c) after it.
 * The cache may be NULL (inference): forward then uses compact scratch.
 * Backward reads the cache and never writes it. Scratch: R packed (forward)
 * and dG plus small row states (backward) are allocated per call.
 */
#include "fnn_vector_opts.h"   /* first: see there */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "act_scalar.h"
#include "fastnn.h"
#include "fnn_alloc.h"
#include "fnn_omp.h"
#include "gemm_internal.h"

/* Recurrent FLOPs (whole sequence) per thread before a second one pays: the
 * region is entered once per call, so a few hundred microseconds of work
 * are enough. */
#define RNN_GRAIN_FLOPS 2e6

/* y[n] = act(z[n]); y may equal z. */
static void act_vec(const fnn_act_kernel_f32 *ak, float *y, const float *z, int64_t n, int act)
{
    int64_t j;
    switch (act) {
    case FNN_ACT_LINEAR:
        if (y != z) {
            memmove(y, z, (size_t)n * sizeof(float));
        }
        break;
    case FNN_ACT_RELU:
        #pragma omp simd
        for (j = 0; j < n; j++) {
            y[j] = z[j] < 0.0f ? 0.0f : z[j];
        }
        break;
    default:
        ak->forward(y, z, n, act);
        break;
    }
}

/* d[n] = g[n] * act'(z, y) with y = act(z) (z is read for gelu/swish only,
 * and may be NULL otherwise); d may equal g. */
static void mul_deriv(const fnn_act_kernel_f32 *ak, float *d, const float *g, const float *z,
                      const float *y, int64_t n, int act)
{
    int64_t j;
    switch (act) {
    case FNN_ACT_LINEAR:
        if (d != g) {
            memmove(d, g, (size_t)n * sizeof(float));
        }
        break;
    case FNN_ACT_SIGMOID:
        #pragma omp simd
        for (j = 0; j < n; j++) {
            d[j] = g[j] * (y[j] * (1.0f - y[j]));
        }
        break;
    case FNN_ACT_TANH:
        #pragma omp simd
        for (j = 0; j < n; j++) {
            d[j] = g[j] * (1.0f - y[j] * y[j]);
        }
        break;
    case FNN_ACT_RELU:
        #pragma omp simd
        for (j = 0; j < n; j++) {
            d[j] = y[j] > 0.0f ? g[j] : 0.0f;
        }
        break;
    case FNN_ACT_GELU:
    case FNN_ACT_SWISH:
        ak->backward(d, g, z, y, n, act);   /* g * act'(z), vectorised */
        break;
    default:
        for (j = 0; j < n; j++) {
            d[j] = g[j] * fnn_act_deriv_f32(act, z != NULL ? z[j] : 0.0f, y[j]);
        }
        break;
    }
}

/* ======================================================================== */
/* Layout and plan                                                           */
/* ======================================================================== */

enum { GATES_SIMPLE = 1, GATES_LSTM = 4, GATES_GRU = 3 };

/* A section of per-(n, t) vectors: (n, t) at p + n * sn + t * st. st == 0
 * for a per-row state reused by every step (compact scratch). */
typedef struct {
    float *p;
    int64_t sn, st;
} rnn_sec;

static inline float *at(rnn_sec s, int64_t n, int64_t t)
{
    return s.p + n * s.sn + t * s.st;
}

typedef struct {
    int cell, act, ract, go_backwards;
    int64_t N, T, In, U, G, GU;
    const float *X, *W, *R, *b_in, *b_rec;
    const uint8_t *mask;
    float *hs;
    const float *dhs;
    rnn_sec z, a, zr, hp, cp, ac;  /* absent sections have p == NULL */
    fnn_gemm_kernel_f32 ker;
    fnn_act_kernel_f32 ak;         /* the activation loops of the current ISA */
    float *bpack;                  /* R (forward) or R^T (backward), NR-wide panels */
    float *tmp;                    /* per-thread scratch, tmp_stride floats each */
    int64_t tmp_stride;
    float *dgx, *dgr;              /* backward: dG [N*T, GU] (dgr == dgx but for gru) */
    float *dhc, *dc;               /* backward: dh carried to step k-1, LSTM's dc [N, U] */
} rnn_plan;

static int gates_of(int cell)
{
    return cell == FNN_RNN_LSTM ? GATES_LSTM : cell == FNN_RNN_GRU ? GATES_GRU : GATES_SIMPLE;
}

int64_t fnn_rnn_cache_width(int cell, int64_t U)
{
    switch (cell) {
    case FNN_RNN_SIMPLE:
        return 2 * U;
    case FNN_RNN_LSTM:
        return 11 * U;
    case FNN_RNN_GRU:
        return 10 * U;
    default:
        return 0;
    }
}

static int is_elementwise(int act)
{
    return act >= 0 && act < FNN_ACT_COUNT && act != FNN_ACT_SOFTMAX;
}

/* The sections of a cache of rows (n, t) of `width` floats. The activated
 * gates overwrite the pre-activations unless a derivative needs those. */
static void cache_sections(rnn_plan *pl, float *cache)
{
    const int64_t U = pl->U, W = fnn_rnn_cache_width(pl->cell, U);
    const int keep_pre = fnn_act_deriv_needs_input(pl->act)
                         || fnn_act_deriv_needs_input(pl->ract);
    rnn_sec none = {NULL, 0, 0};
    rnn_sec s = {cache, pl->T * W, W};

    pl->z = pl->a = pl->zr = pl->hp = pl->cp = pl->ac = none;
    pl->z = s;
    if (pl->cell == FNN_RNN_SIMPLE) {
        pl->hp = s;
        pl->hp.p += U;
    }
    else if (pl->cell == FNN_RNN_LSTM) {
        pl->a = s;
        pl->a.p += keep_pre ? 4 * U : 0;
        pl->hp = s;
        pl->hp.p += 8 * U;
        pl->cp = s;
        pl->cp.p += 9 * U;
        pl->ac = s;
        pl->ac.p += 10 * U;
    }
    else {
        pl->zr = s;
        pl->zr.p += 3 * U;
        pl->a = s;
        pl->a.p += keep_pre ? 6 * U : 0;
        pl->hp = s;
        pl->hp.p += 9 * U;
    }
}

/* Pack R[U, GU] (K x N, not transposed) into NR-wide panels of U rows,
 * zero padded past column GU: panel q at bpack + q * U * NR. */
static void pack_r(float *dst, const float *R, int64_t U, int64_t GU, int64_t nr)
{
    int64_t q, p, j;
    for (q = 0; q * nr < GU; q++) {
        const int64_t w = GU - q * nr < nr ? GU - q * nr : nr;
        float *d = dst + q * U * nr;
        for (p = 0; p < U; p++) {
            for (j = 0; j < w; j++) {
                d[p * nr + j] = R[p * GU + q * nr + j];
            }
            for (; j < nr; j++) {
                d[p * nr + j] = 0.0f;
            }
        }
    }
}

static inline int masked(const rnn_plan *pl, int64_t n, int64_t t)
{
    return pl->mask != NULL && pl->mask[n * pl->T + t] == 0;
}

static inline int64_t time_of(const rnn_plan *pl, int64_t k)
{
    return pl->go_backwards ? pl->T - 1 - k : k;
}

/* ======================================================================== */
/* Forward                                                                   */
/* ======================================================================== */

/* One row's gates at step k (time t); h_prev (U) is zeros at k == 0. */
static void fwd_row(const rnn_plan *pl, int64_t n, int64_t k, int64_t t, const float *h_prev,
                    float *tmp)
{
    const int64_t U = pl->U, T = pl->T;
    float *h = pl->hs + (n * T + k) * U;
    const int skip = masked(pl, n, t);
    int64_t j;

    if (pl->hp.p != NULL) {
        memcpy(at(pl->hp, n, t), h_prev, (size_t)U * sizeof(float));
    }
    if (pl->cell == FNN_RNN_SIMPLE) {
        if (skip) {
            memcpy(h, h_prev, (size_t)U * sizeof(float));
        }
        else {
            act_vec(&pl->ak, h, at(pl->z, n, t), U, pl->act);
        }
    }
    else if (pl->cell == FNN_RNN_LSTM) {
        /* c before the step is cp(n, t); c after it goes to the next step's
         * cp (the same place when st == 0), or to tmp after the last step. */
        const float *c_in = at(pl->cp, n, t);
        float *c_out = k + 1 < T ? at(pl->cp, n, time_of(pl, k + 1)) : tmp;
        if (skip) {
            memcpy(h, h_prev, (size_t)U * sizeof(float));
            if (c_out != c_in) {
                memcpy(c_out, c_in, (size_t)U * sizeof(float));
            }
        }
        else {
            const float *z = at(pl->z, n, t);
            float *a = at(pl->a, n, t);
            float *ac = pl->ac.p != NULL ? at(pl->ac, n, t) : tmp + U;
            act_vec(&pl->ak, a, z, U, pl->ract);
            act_vec(&pl->ak, a + U, z + U, U, pl->ract);
            act_vec(&pl->ak, a + 2 * U, z + 2 * U, U, pl->act);
            act_vec(&pl->ak, a + 3 * U, z + 3 * U, U, pl->ract);
            {
                const float *gi = a, *gf = a + U, *gg = a + 2 * U;
                #pragma omp simd
                for (j = 0; j < U; j++) {
                    c_out[j] = gf[j] * c_in[j] + gi[j] * gg[j];
                }
            }
            act_vec(&pl->ak, ac, c_out, U, pl->act);
            {
                const float *go = a + 3 * U;
                #pragma omp simd
                for (j = 0; j < U; j++) {
                    h[j] = go[j] * ac[j];
                }
            }
        }
    }
    else {
        if (skip) {
            memcpy(h, h_prev, (size_t)U * sizeof(float));
        }
        else {
            const float *zx = at(pl->z, n, t), *zr = at(pl->zr, n, t);
            float *a = at(pl->a, n, t);
            float *gz = a, *gr = a + U, *gh = a + 2 * U;
            #pragma omp simd
            for (j = 0; j < 2 * U; j++) {
                a[j] = zx[j] + zr[j];
            }
            act_vec(&pl->ak, a, a, 2 * U, pl->ract);
            #pragma omp simd
            for (j = 0; j < U; j++) {
                gh[j] = zx[2 * U + j] + gr[j] * zr[2 * U + j];
            }
            act_vec(&pl->ak, gh, gh, U, pl->act);
            #pragma omp simd
            for (j = 0; j < U; j++) {
                h[j] = gz[j] * h_prev[j] + (1.0f - gz[j]) * gh[j];
            }
        }
    }
}

/* Rows [r0, r1) over the whole sequence. proj_threads > 0: compute their
 * input projection first with that thread budget. tmp: 3U floats. */
static int fwd_rows(const rnn_plan *pl, int64_t r0, int64_t r1, int proj_threads, float *tmp)
{
    const int64_t U = pl->U, T = pl->T, GU = pl->GU;
    const int64_t mr = pl->ker.mr, nr = pl->ker.nr;
    float *zeros = tmp + 2 * U;
    fnn_gemm_epi_f32 epi;
    int64_t k, i0, n, q;

    if (r1 <= r0) {
        return FNN_OK;
    }
    memset(zeros, 0, (size_t)U * sizeof(float));
    if (proj_threads > 0) {
        /* z rows (n, t) are ldc = z.st apart and z.sn = T * z.st: one GEMM. */
        int status = fnn_gemm_f32(at(pl->z, r0, 0), pl->X + r0 * T * pl->In, pl->W, pl->b_in,
                                  (r1 - r0) * T, GU, pl->In, pl->In, GU, pl->z.st, 0, 0, 1.0f,
                                  0.0f, FNN_ACT_LINEAR, proj_threads);
        if (status != FNN_OK) {
            return status;
        }
    }
    if (pl->cell == FNN_RNN_LSTM) {
        const int64_t t0 = time_of(pl, 0);
        for (n = r0; n < r1; n++) {
            memset(at(pl->cp, n, t0), 0, (size_t)U * sizeof(float));
        }
    }

    epi.alpha = 1.0f;
    epi.act = FNN_ACT_LINEAR;
    for (k = 0; k < T; k++) {
        const int64_t t = time_of(pl, k);
        for (i0 = r0; i0 < r1; i0 += mr) {
            const int64_t m = r1 - i0 < mr ? r1 - i0 : mr;
            if (pl->cell != FNN_RNN_GRU) {
                /* z(i0.., t) += h_prev R; h_prev = hs[:, k-1] (zero at k = 0). */
                if (k > 0) {
                    epi.beta = 1.0f;
                    epi.bias = NULL;
                    for (q = 0; q * nr < GU; q++) {
                        pl->ker.ukr(U, pl->hs + (i0 * T + k - 1) * U, T * U, 1,
                                    pl->bpack + q * U * nr, at(pl->z, i0, t) + q * nr,
                                    pl->z.sn, m, GU - q * nr < nr ? GU - q * nr : nr, &epi);
                    }
                }
            }
            else if (k > 0) {
                /* zr(i0.., t) = h_prev R + b_rec. */
                epi.beta = 0.0f;
                for (q = 0; q * nr < GU; q++) {
                    epi.bias = pl->b_rec != NULL ? pl->b_rec + q * nr : NULL;
                    pl->ker.ukr(U, pl->hs + (i0 * T + k - 1) * U, T * U, 1,
                                pl->bpack + q * U * nr, at(pl->zr, i0, t) + q * nr,
                                pl->zr.sn, m, GU - q * nr < nr ? GU - q * nr : nr, &epi);
                }
            }
            else {
                for (n = i0; n < i0 + m; n++) {
                    float *zr = at(pl->zr, n, t);
                    if (pl->b_rec != NULL) {
                        memcpy(zr, pl->b_rec, (size_t)GU * sizeof(float));
                    }
                    else {
                        memset(zr, 0, (size_t)GU * sizeof(float));
                    }
                }
            }
            for (n = i0; n < i0 + m; n++) {
                fwd_row(pl, n, k, t, k > 0 ? pl->hs + (n * T + k - 1) * U : zeros, tmp);
            }
        }
    }
    return FNN_OK;
}

/* Rows [r0, r1) of the forward recurrence, their projection included, on
 * per-slot scratch (fnn_run_units' range function). Rows are independent,
 * so any split gives the same bits. */
static int fwd_range(void *ctx, int64_t r0, int64_t r1, int slot)
{
    const rnn_plan *pl = (const rnn_plan *)ctx;
    return fwd_rows(pl, r0, r1, 1, pl->tmp + slot * pl->tmp_stride);
}

static int check_common(int cell, int act, int ract, int64_t N, int64_t T, int64_t In,
                        int64_t U)
{
    if (cell < 0 || cell >= FNN_RNN_COUNT || !is_elementwise(act) || !is_elementwise(ract)) {
        return FNN_ERR_ARG;
    }
    if (N < 0 || T < 0 || In < 0 || U < 1) {
        return FNN_ERR_ARG;
    }
    return FNN_OK;
}

int fnn_rnn_forward_f32(float *hs, float *cache, const float *X, const float *W, const float *R,
                        const float *b, const uint8_t *mask, int64_t N, int64_t T, int64_t In,
                        int64_t U, int cell, int act, int ract, int go_backwards, int nthreads)
{
    rnn_plan pl;
    int64_t bpack_size, compact = 0, tmp_stride;
    float *heap;
    int nt, status = check_common(cell, act, ract, N, T, In, U);

    if (status != FNN_OK) {
        return status;
    }
    if (N == 0 || T == 0) {
        return FNN_OK;
    }
    if (hs == NULL || R == NULL || (In > 0 && (X == NULL || W == NULL))) {
        return FNN_ERR_ARG;
    }
    memset(&pl, 0, sizeof pl);
    pl.cell = cell;
    pl.act = act;
    pl.ract = ract;
    pl.go_backwards = go_backwards != 0;
    pl.N = N;
    pl.T = T;
    pl.In = In;
    pl.U = U;
    pl.G = gates_of(cell);
    pl.GU = pl.G * U;
    pl.X = X;
    pl.W = W;
    pl.R = R;
    pl.b_in = b;
    pl.b_rec = cell == FNN_RNN_GRU && b != NULL ? b + pl.GU : NULL;
    pl.mask = mask;
    pl.hs = hs;
    pl.ker = fnn_kernels()->gemm_f32;
    pl.ak = fnn_kernels()->act_f32;

    nt = fnn_threads_for(2.0 * (double)N * (double)T * (double)U * (double)pl.GU,
                         RNN_GRAIN_FLOPS, N, nthreads);
    bpack_size = U * ((pl.GU + pl.ker.nr - 1) / pl.ker.nr) * pl.ker.nr;
    tmp_stride = (3 * U + 15) / 16 * 16;
    if (cache == NULL) {
        /* Compact scratch: the projection [N*T, GU] (activations written over
         * it), and per-row states reused by every step. */
        compact = N * T * pl.GU + (cell == FNN_RNN_GRU ? N * pl.GU : 0)
                  + (cell == FNN_RNN_LSTM ? N * U : 0);
    }
    heap = fnn_aligned_alloc((size_t)(bpack_size + nt * tmp_stride + compact) * sizeof(float));
    if (heap == NULL) {
        return FNN_ERR_NOMEM;
    }
    pl.bpack = heap;
    pl.tmp = heap + bpack_size;
    pl.tmp_stride = tmp_stride;
    if (cache != NULL) {
        cache_sections(&pl, cache);
    }
    else {
        float *base = pl.tmp + nt * tmp_stride;
        rnn_sec z = {base, T * pl.GU, pl.GU};
        pl.z = pl.a = z;
        base += N * T * pl.GU;
        if (cell == FNN_RNN_GRU) {
            rnn_sec zr = {base, pl.GU, 0};
            pl.zr = zr;
            base += N * pl.GU;
        }
        if (cell == FNN_RNN_LSTM) {
            rnn_sec cp = {base, U, 0};
            pl.cp = cp;
        }
    }
    if (cell == FNN_RNN_SIMPLE) {
        pl.a = pl.z;
    }
    pack_r(pl.bpack, R, U, pl.GU, pl.ker.nr);

    if (nt <= 1) {
        /* The projection may still use threads of its own. */
        status = fnn_gemm_f32(pl.z.p, X, W, pl.b_in, N * T, pl.GU, In, In, pl.GU, pl.z.st, 0, 0,
                              1.0f, 0.0f, FNN_ACT_LINEAR, nthreads);
        if (status == FNN_OK) {
            status = fwd_rows(&pl, 0, N, 0, pl.tmp);
        }
    }
    else {
        status = fnn_run_units(N, nt, fwd_range, &pl);
    }
    free(heap);
    return status;
}

/* ======================================================================== */
/* Backward                                                                  */
/* ======================================================================== */

/* One unmasked row at step k (time t): dh (U) is dLoss/dh after the step.
 * Writes dG rows (dgx, and dgr for gru); updates dc (lstm); for gru writes
 * the direct term dh * z into dhc (the GEMM adds dG R^T to it). tmp: 4U. */
static void bwd_row(const rnn_plan *pl, int64_t n, int64_t k, int64_t t, const float *dh,
                    float *tmp)
{
    const int64_t U = pl->U, T = pl->T, GU = pl->GU;
    float *dgx = pl->dgx + (n * T + t) * GU;
    int64_t j;

    if (pl->cell == FNN_RNN_SIMPLE) {
        mul_deriv(&pl->ak, dgx, dh, at(pl->z, n, t), pl->hs + (n * T + k) * U, U, pl->act);
    }
    else if (pl->cell == FNN_RNN_LSTM) {
        const float *z = at(pl->z, n, t), *a = at(pl->a, n, t);
        const float *gi = a, *gf = a + U, *gg = a + 2 * U, *go = a + 3 * U;
        const float *cp = at(pl->cp, n, t), *ac = at(pl->ac, n, t);
        float *dc = pl->dc + n * U;
        float *cn = NULL;
        if (fnn_act_deriv_needs_input(pl->act)) {
            /* c after the step, recomputed with the forward's operations. */
            cn = tmp + U;
            for (j = 0; j < U; j++) {
                cn[j] = gf[j] * cp[j] + gi[j] * gg[j];
            }
        }
        #pragma omp simd
        for (j = 0; j < U; j++) {
            tmp[j] = dh[j] * go[j];
        }
        mul_deriv(&pl->ak, tmp, tmp, cn, ac, U, pl->act);
        #pragma omp simd
        for (j = 0; j < U; j++) {
            const float dct = dc[j] + tmp[j];
            dgx[j] = dct * gg[j];
            dgx[U + j] = dct * cp[j];
            dgx[2 * U + j] = dct * gi[j];
            dgx[3 * U + j] = dh[j] * ac[j];
            dc[j] = dct * gf[j];
        }
        mul_deriv(&pl->ak, dgx, dgx, z, gi, U, pl->ract);
        mul_deriv(&pl->ak, dgx + U, dgx + U, z + U, gf, U, pl->ract);
        mul_deriv(&pl->ak, dgx + 2 * U, dgx + 2 * U, z + 2 * U, gg, U, pl->act);
        mul_deriv(&pl->ak, dgx + 3 * U, dgx + 3 * U, z + 3 * U, go, U, pl->ract);
    }
    else {
        const float *zx = at(pl->z, n, t), *zr = at(pl->zr, n, t), *a = at(pl->a, n, t);
        const float *gz = a, *gr = a + U, *gh = a + 2 * U, *rh = zr + 2 * U;
        const float *hp = at(pl->hp, n, t);
        float *dgr = pl->dgr + (n * T + t) * GU;
        float *dhc = pl->dhc + n * U;
        float *pre = NULL;
        if (fnn_act_deriv_needs_input(pl->act) || fnn_act_deriv_needs_input(pl->ract)) {
            /* The pre-activations, recomputed with the forward's operations. */
            pre = tmp;
            for (j = 0; j < 2 * U; j++) {
                pre[j] = zx[j] + zr[j];
            }
            for (j = 0; j < U; j++) {
                pre[2 * U + j] = zx[2 * U + j] + gr[j] * rh[j];
            }
        }
        #pragma omp simd
        for (j = 0; j < U; j++) {
            dgx[2 * U + j] = dh[j] * (1.0f - gz[j]);
            dgx[j] = dh[j] * (hp[j] - gh[j]);
            dhc[j] = dh[j] * gz[j];
        }
        mul_deriv(&pl->ak, dgx + 2 * U, dgx + 2 * U, pre != NULL ? pre + 2 * U : NULL, gh, U,
                  pl->act);
        mul_deriv(&pl->ak, dgx, dgx, pre, gz, U, pl->ract);
        #pragma omp simd
        for (j = 0; j < U; j++) {
            dgx[U + j] = dgx[2 * U + j] * rh[j];
        }
        mul_deriv(&pl->ak, dgx + U, dgx + U, pre != NULL ? pre + U : NULL, gr, U, pl->ract);
        memcpy(dgr, dgx, (size_t)(2 * U) * sizeof(float));
        #pragma omp simd
        for (j = 0; j < U; j++) {
            dgr[2 * U + j] = dgx[2 * U + j] * gr[j];
        }
    }
}

/* BPTT over rows [r0, r1). tmp: MR*U (dh of a tile) + 4U floats. */
static int bwd_rows(const rnn_plan *pl, int64_t r0, int64_t r1, float *tmp)
{
    const int64_t U = pl->U, T = pl->T, GU = pl->GU;
    const int64_t mr = pl->ker.mr, nr = pl->ker.nr;
    float *dht = tmp, *rtmp = tmp + mr * U;
    fnn_gemm_epi_f32 epi;
    int64_t k, i0, n, q, j;

    if (r1 <= r0) {
        return FNN_OK;
    }
    memset(pl->dhc + r0 * U, 0, (size_t)((r1 - r0) * U) * sizeof(float));
    if (pl->dc != NULL) {
        memset(pl->dc + r0 * U, 0, (size_t)((r1 - r0) * U) * sizeof(float));
    }
    epi.alpha = 1.0f;
    epi.beta = pl->cell == FNN_RNN_GRU ? 1.0f : 0.0f;
    epi.bias = NULL;
    epi.act = FNN_ACT_LINEAR;
    for (k = T - 1; k >= 0; k--) {
        const int64_t t = time_of(pl, k);
        for (i0 = r0; i0 < r1; i0 += mr) {
            const int64_t m = r1 - i0 < mr ? r1 - i0 : mr;
            for (n = i0; n < i0 + m; n++) {
                float *dh = dht + (n - i0) * U;
                const float *dy = pl->dhs + (n * T + k) * U, *dc_ = pl->dhc + n * U;
                #pragma omp simd
                for (j = 0; j < U; j++) {
                    dh[j] = dy[j] + dc_[j];
                }
                if (masked(pl, n, t)) {
                    /* The state passed through: so does its gradient (dhc is
                     * set after the GEMM, dc is left as it is). */
                    memset(pl->dgx + (n * T + t) * GU, 0, (size_t)GU * sizeof(float));
                    if (pl->dgr != pl->dgx) {
                        memset(pl->dgr + (n * T + t) * GU, 0, (size_t)GU * sizeof(float));
                    }
                }
                else {
                    bwd_row(pl, n, k, t, dh, rtmp);
                }
            }
            if (k == 0) {
                continue;
            }
            /* dhc(i0..) (+)= dG(i0.., t) R^T, K = GU. */
            for (q = 0; q * nr < U; q++) {
                pl->ker.ukr(GU, pl->dgr + (i0 * T + t) * GU, T * GU, 1, pl->bpack + q * GU * nr,
                            pl->dhc + i0 * U + q * nr, U, m, U - q * nr < nr ? U - q * nr : nr,
                            &epi);
            }
            for (n = i0; n < i0 + m; n++) {
                if (masked(pl, n, t)) {
                    memcpy(pl->dhc + n * U, dht + (n - i0) * U, (size_t)U * sizeof(float));
                }
            }
        }
    }
    return FNN_OK;
}

/* Rows [r0, r1) of the backward recurrence on per-slot scratch, as fwd_range. */
static int bwd_range(void *ctx, int64_t r0, int64_t r1, int slot)
{
    const rnn_plan *pl = (const rnn_plan *)ctx;
    return bwd_rows(pl, r0, r1, pl->tmp + slot * pl->tmp_stride);
}

int fnn_rnn_backward_f32(float *dX, float *dW, float *dR, float *db, const float *dhs,
                         const float *X, const float *W, const float *R, const float *hs,
                         const float *cache, const uint8_t *mask, int64_t N, int64_t T,
                         int64_t In, int64_t U, int cell, int act, int ract, int go_backwards,
                         int nthreads)
{
    rnn_plan pl;
    int64_t G, GU, NT, bpack_size, tmp_stride, dg_size, state_size;
    float *heap;
    int nt, status = check_common(cell, act, ract, N, T, In, U);

    if (status != FNN_OK) {
        return status;
    }
    G = gates_of(cell);
    GU = G * U;
    NT = N * T;
    if (dR == NULL || (In > 0 && dW == NULL)) {
        return FNN_ERR_ARG;
    }
    if (NT == 0) {
        /* No steps: every gradient is an empty sum. */
        memset(dR, 0, (size_t)(U * GU) * sizeof(float));
        if (In > 0) {
            memset(dW, 0, (size_t)(In * GU) * sizeof(float));
        }
        if (db != NULL) {
            memset(db, 0, (size_t)((cell == FNN_RNN_GRU ? 2 : 1) * GU) * sizeof(float));
        }
        return FNN_OK;
    }
    if (dhs == NULL || hs == NULL || cache == NULL || R == NULL
        || (In > 0 && (X == NULL || W == NULL))) {
        return FNN_ERR_ARG;
    }
    memset(&pl, 0, sizeof pl);
    pl.cell = cell;
    pl.act = act;
    pl.ract = ract;
    pl.go_backwards = go_backwards != 0;
    pl.N = N;
    pl.T = T;
    pl.In = In;
    pl.U = U;
    pl.G = G;
    pl.GU = GU;
    pl.X = X;
    pl.W = W;
    pl.R = R;
    pl.mask = mask;
    pl.hs = (float *)hs;    /* read only here */
    pl.dhs = dhs;
    pl.ker = fnn_kernels()->gemm_f32;
    pl.ak = fnn_kernels()->act_f32;
    cache_sections(&pl, (float *)cache);    /* read only here */

    nt = fnn_threads_for(2.0 * (double)NT * (double)U * (double)GU, RNN_GRAIN_FLOPS, N, nthreads);
    bpack_size = GU * ((U + pl.ker.nr - 1) / pl.ker.nr) * pl.ker.nr;
    tmp_stride = ((pl.ker.mr + 4) * U + 15) / 16 * 16;
    dg_size = (NT * GU + 15) / 16 * 16;
    state_size = (N * U + 15) / 16 * 16;
    heap = fnn_aligned_alloc((size_t)(bpack_size + nt * tmp_stride
                                      + (cell == FNN_RNN_GRU ? 2 : 1) * dg_size
                                      + (cell == FNN_RNN_LSTM ? 2 : 1) * state_size)
                                 * sizeof(float));
    if (heap == NULL) {
        return FNN_ERR_NOMEM;
    }
    pl.bpack = heap;
    pl.tmp = heap + bpack_size;
    pl.tmp_stride = tmp_stride;
    pl.dgx = pl.tmp + nt * tmp_stride;
    pl.dgr = cell == FNN_RNN_GRU ? pl.dgx + dg_size : pl.dgx;
    pl.dhc = pl.dgr + dg_size;
    pl.dc = cell == FNN_RNN_LSTM ? pl.dhc + state_size : NULL;
    {
        /* R^T [GU, U] in NR-wide panels of GU rows: R is R^T stored transposed. */
        int64_t q;
        for (q = 0; q * pl.ker.nr < U; q++) {
            const int64_t w = U - q * pl.ker.nr < pl.ker.nr ? U - q * pl.ker.nr : pl.ker.nr;
            pl.ker.pack_bt(pl.bpack + q * GU * pl.ker.nr, R + q * pl.ker.nr * GU, GU, GU, w,
                           pl.ker.nr);
        }
    }

    status = fnn_run_units(N, nt, bwd_range, &pl);
    if (status != FNN_OK) {
        free(heap);
        return status;
    }

    /* dW[In, GU] = X^T dGx over all N*T rows (X rows and dG rows share the
     * original time order). */
    if (In > 0) {
        status = fnn_gemm_f32(dW, X, pl.dgx, NULL, In, GU, NT, In, GU, GU, 1, 0, 1.0f, 0.0f,
                              FNN_ACT_LINEAR, nthreads);
    }
    /* dR[U, GU] = Hprev^T dGr; Hprev is the cache's hp section (lda = width). */
    if (status == FNN_OK) {
        status = fnn_gemm_f32(dR, pl.hp.p, pl.dgr, NULL, U, GU, NT, pl.hp.st, GU, GU, 1, 0,
                              1.0f, 0.0f, FNN_ACT_LINEAR, nthreads);
    }
    if (status == FNN_OK && db != NULL) {
        status = fnn_colsum_f32(db, pl.dgx, NT, GU, nthreads);
        if (status == FNN_OK && cell == FNN_RNN_GRU) {
            status = fnn_colsum_f32(db + GU, pl.dgr, NT, GU, nthreads);
        }
    }
    /* dX[N*T, In] = dGx W^T. */
    if (status == FNN_OK && dX != NULL && In > 0) {
        status = fnn_gemm_f32(dX, pl.dgx, W, NULL, NT, In, GU, GU, GU, In, 0, 1, 1.0f, 0.0f,
                              FNN_ACT_LINEAR, nthreads);
    }
    free(heap);
    return status;
}
