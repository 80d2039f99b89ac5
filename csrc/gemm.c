/*
 * gemm.c -- general matrix multiply with a fused epilogue, float32 and float64.
 *
 *     C[M,N] = act(alpha * op(A) @ op(B) + beta * C + bias[N])
 *
 * (declared in fastnn.h). float32 follows the Goto/BLIS scheme: B is packed
 * into KC x NR micro-panels (one KC x NC block at a time, shared by all
 * threads), A into MR x KC micro-panels (one MC x KC block at a time per
 * thread; or all of A's K block, shared, when there are few rows and several
 * threads; or read in place when N is small and A not transposed), and the
 * ISA's micro-kernel from the kernel table (cpu.c) computes each MR x NR
 * tile, edge tiles included, following the contract in gemm_internal.h. The
 * bias and activation are applied to each tile right after its last K block,
 * while it is in L1. Two extras ride on the same passes (fnn_gemm_run_f32):
 * the pre-activation kept in Z, copied from each tile before its activation,
 * and op(B)'s column sums, added up as B's rows are packed. float64 uses a
 * simpler portable tiled kernel.
 *
 * Threads: C is cut into work units of whole tiles (row blocks, or single B
 * micro-panels when there are few rows) that the threads take from a shared
 * counter, so a thread the OS has descheduled on a busy machine does not hold
 * the others up. K is never split and the blocking depends on the shapes and
 * the kernel table (the ISA; for AVX-512, the CPU vendor) only, so every
 * element is computed by the same sequence of operations whoever computes
 * it: results are bitwise identical for any nthreads. Below a few MFLOP, one thread, and no parallel region is entered
 * at all (a process forked after OpenMP started still runs).
 *
 * Scratch: small problems use a per-thread static buffer (no malloc); larger
 * ones allocate 64-byte aligned scratch per call, before any parallel region,
 * and return FNN_ERR_NOMEM if that fails. Several threads may call these
 * functions at once.
 */
#include <stdlib.h>
#include <string.h>

#include "act_scalar.h"
#include "fastnn.h"
#include "fnn_alloc.h"
#include "fnn_omp.h"
#include "gemm_internal.h"

/* Below this many FLOPs per thread a second thread costs more than it saves. */
#define GEMM_GRAIN_FLOPS 1.5e6
/* N at or below this many micro-panels: A is read in place, not packed (each
 * A block is then used by few tiles, so packing it would cost more than it
 * saves: 36864x288 @ 288x64 runs at 195 GFLOP/s on one Zen 5 core in place,
 * 150 packed). */
#define GEMM_UNPACKED_A_PANELS 4
/* Per-thread static scratch, one buffer per type (128 KiB each): problems
 * that fit need no malloc. */
#define TLS_SCRATCH_FLOATS (32 * 1024)
#define TLS_SCRATCH_DOUBLES (16 * 1024)

static _Thread_local float tls_scratch[TLS_SCRATCH_FLOATS] __attribute__((aligned(64)));
static _Thread_local double tls_scratch_f64[TLS_SCRATCH_DOUBLES] __attribute__((aligned(64)));

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static int64_t round_up(int64_t a, int64_t b)
{
    return ceil_div(a, b) * b;
}

static int is_elementwise_act(int act)
{
    return act >= 0 && act < FNN_ACT_COUNT && act != FNN_ACT_SOFTMAX;
}

static int act_in_ukr(int act)
{
    return act == FNN_ACT_LINEAR || act == FNN_ACT_RELU || act == FNN_ACT_LEAKY_RELU;
}

/* Apply an activation to an m x n tile of C in place, float64 (float32 uses
 * the kernel table's act_f32.tile). `act` is a constant in every call below,
 * so each case inlines its own scalar function. */
static inline __attribute__((always_inline)) void
act_loop_f64(double *c, int64_t ldc, int64_t m, int64_t n, const int act)
{
    int64_t i, j;
    for (i = 0; i < m; i++) {
        for (j = 0; j < n; j++) {
            c[i * ldc + j] = fnn_act_apply_f64(act, c[i * ldc + j]);
        }
    }
}

static void act_tile_f64(double *c, int64_t ldc, int64_t m, int64_t n, int act)
{
    switch (act) {
    case FNN_ACT_RELU:
        act_loop_f64(c, ldc, m, n, FNN_ACT_RELU);
        break;
    case FNN_ACT_LEAKY_RELU:
        act_loop_f64(c, ldc, m, n, FNN_ACT_LEAKY_RELU);
        break;
    case FNN_ACT_ELU:
        act_loop_f64(c, ldc, m, n, FNN_ACT_ELU);
        break;
    case FNN_ACT_SIGMOID:
        act_loop_f64(c, ldc, m, n, FNN_ACT_SIGMOID);
        break;
    case FNN_ACT_TANH:
        act_loop_f64(c, ldc, m, n, FNN_ACT_TANH);
        break;
    case FNN_ACT_GELU:
        act_loop_f64(c, ldc, m, n, FNN_ACT_GELU);
        break;
    case FNN_ACT_SWISH:
        act_loop_f64(c, ldc, m, n, FNN_ACT_SWISH);
        break;
    default:
        break;
    }
}

/* Shared argument checks of both precisions. */
static int check_args(const void *C, const void *A, const void *B, int64_t M, int64_t N,
                      int64_t K, int64_t lda, int64_t ldb, int64_t ldc, int trans_a,
                      int trans_b, int act)
{
    if (M < 0 || N < 0 || K < 0 || !is_elementwise_act(act)) {
        return FNN_ERR_ARG;
    }
    if (ldc < N || lda < (trans_a ? M : K) || ldb < (trans_b ? K : N)) {
        return FNN_ERR_ARG;
    }
    if ((M > 0 && N > 0 && C == NULL) || (M > 0 && N > 0 && K > 0 && (A == NULL || B == NULL))) {
        return FNN_ERR_ARG;
    }
    return FNN_OK;
}

/* ======================================================================== */
/* float32                                                                   */
/* ======================================================================== */

/* K == 0: C = act(beta * C + bias), one body for both types (not a hot path:
 * no product to compute). */
#define GEMM_K0(T, SFX)                                                                    \
    static void gemm_k0_##SFX(T *C, const T *bias, int64_t M, int64_t N, int64_t ldc,     \
                              T beta, int act)                                            \
    {                                                                                      \
        for (int64_t i = 0; i < M; i++) {                                                  \
            T *ci = C + i * ldc;                                                           \
            for (int64_t j = 0; j < N; j++) {                                              \
                T t = beta != 0 ? beta * ci[j] : (T)0;                                     \
                if (bias != NULL) {                                                        \
                    t += bias[j];                                                          \
                }                                                                          \
                ci[j] = fnn_act_apply_##SFX(act, t);                                       \
            }                                                                              \
        }                                                                                  \
    }
GEMM_K0(float, f32)
GEMM_K0(double, f64)
#undef GEMM_K0

typedef struct {
    float *C;
    const float *A, *B, *bias;
    int64_t M, N, K, lda, ldb, ldc;
    int trans_a, trans_b;
    float alpha, beta;
    int act;
    fnn_gemm_kernel_f32 ker;
    fnn_act_tile_loop_f32 act_tile; /* the transcendental activations' epilogue */
    float *Z;         /* NULL, or receives the pre-activation (leading dim ldc) */
    double *bsum;     /* NULL, or the caller's N sums to add op(B)'s columns to, as B is packed */
    int64_t kc;       /* K block actually used (<= ker.kc, same for every block) */
    int64_t nc;       /* N block actually used */
    int pack_a;
    float *bpack;     /* kc x nc, shared */
    float *apack;     /* per thread: mc x kc each, stride apack_stride (shared
                         M x kc in column mode) */
    int64_t apack_stride;
    /* Work units: row blocks of unit_rows (a multiple of MC) times col_groups
     * groups of whole micro-panels. Threads take units from a shared counter,
     * so a thread the OS has descheduled does not hold the others up. */
    int64_t unit_rows;
    int64_t col_groups;
    /* Column mode, for few rows and several threads: all of op(A)'s K block
     * is packed once into apack (shared), and a unit is one B micro-panel
     * against every row, so units are many and even. */
    int col_mode;
    int64_t *counters; /* [2][2]: per phase parity, items packed, units taken */
} gemm_f32_plan;

/* Ask for the cache line holding p (an address inside an operand) to be
 * brought into L2: a hint, which never faults. */
static inline void prefetch_l2(const float *p)
{
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 2);
#else
    (void)p;
#endif
}

/* Ask for `rows` rows of `len` floats (stride ld) to be brought into L2:
 * the next tile's rows of an A read in place, fetched while this tile
 * computes (twelve row streams are more than the hardware prefetcher follows
 * well). */
static inline void prefetch_rows_l2(const float *p, int64_t ld, int64_t rows, int64_t len)
{
    int64_t r, x;
    for (r = 0; r < rows; r++) {
        for (x = 0; x < len; x += 16) {
            prefetch_l2(p + r * ld + x);
        }
    }
}

/* B block rows [pc, pc+kc), columns [j0, j0+w) -> one NR-wide micro-panel,
 * zero padded past w. */
static void pack_b_panel_f32(float *dst, const gemm_f32_plan *pl, int64_t pc, int64_t kc,
                             int64_t j0, int64_t w)
{
    const int64_t nr = pl->ker.nr;
    int64_t p, j;
    if (!pl->trans_b) {
        const float *src = pl->B + pc * pl->ldb + j0;
        for (p = 0; p < kc; p++) {
            const float *s = src + p * pl->ldb;
            float *d = dst + p * nr;
            if (w == nr) {
                memcpy(d, s, (size_t)nr * sizeof(float));
            }
            else {
                for (j = 0; j < w; j++) {
                    d[j] = s[j];
                }
                for (; j < nr; j++) {
                    d[j] = 0.0f;
                }
            }
        }
        if (pl->bsum != NULL) {
            /* The rows just copied are in L1: add them to the column sums, in
             * row order (the K blocks come in order, one packer per panel). */
            double *acc = pl->bsum + j0;
            for (p = 0; p < kc; p++) {
                const float *d = dst + p * nr;
#pragma omp simd
                for (j = 0; j < w; j++) {
                    acc[j] += (double)d[j];
                }
            }
        }
    }
    else {
        /* B is stored N x K: a transpose, done by the ISA's packer. */
        pl->ker.pack_bt(dst, pl->B + j0 * pl->ldb + pc, pl->ldb, kc, w, nr);
    }
}

/* A block rows [i0, i0+mc), columns [pc, pc+kc) -> MR-tall micro-panels,
 * zero padded past the last row of A. */
static void pack_a_block_f32(float *dst, const gemm_f32_plan *pl, int64_t i0, int64_t mc,
                             int64_t pc, int64_t kc)
{
    const int64_t mr = pl->ker.mr;
    int64_t r, p, i;
    for (r = 0; r < mc; r += mr) {
        int64_t h = mc - r < mr ? mc - r : mr;
        float *d = dst + r * kc;
        if (!pl->trans_a) {
            /* Rows of A are contiguous in k: the same transpose as packing a
             * transposed B, so the ISA's packer does it (zero padding too). */
            pl->ker.pack_bt(d, pl->A + (i0 + r) * pl->lda + pc, pl->lda, kc, h, mr);
            continue;
        }
        /* A is stored K x M: MR consecutive rows of op(A) per k step, read
         * from rows of A lda apart, which the hardware prefetcher follows
         * poorly: ask for the k step 16 ahead. */
        if (h == mr) {
            for (p = 0; p < kc; p++) {
                const float *s = pl->A + (pc + p) * pl->lda + i0 + r;
                if (pc + p + 16 < pl->K) {
                    prefetch_l2(s + 16 * pl->lda);
                    prefetch_l2(s + 16 * pl->lda + mr - 1);
                }
                for (i = 0; i < mr; i++) {
                    d[p * mr + i] = s[i];
                }
            }
            continue;
        }
        for (p = 0; p < kc; p++) {
            const float *s = pl->A + (pc + p) * pl->lda + i0 + r;
            for (i = 0; i < h; i++) {
                d[p * mr + i] = s[i];
            }
            for (; i < mr; i++) {
                d[p * mr + i] = 0.0f;
            }
        }
    }
}

/* A team barrier. `wait` (the calling thread's, else NULL) accumulates the
 * time spent in it, for the oversubscription guard (fnn_omp.h). */
static void barrier(int nt, int64_t *wait)
{
#ifdef _OPENMP
    if (nt > 1) {
        int64_t t0 = wait != NULL ? fnn_now_ns() : 0;
#pragma omp barrier
        if (wait != NULL) {
            *wait += fnn_now_ns() - t0;
        }
    }
#else
    (void)nt;
    (void)wait;
#endif
}

/* Whether the micro-kernel's epilogue applies the activation. Not when the
 * pre-activation is kept: the driver copies it out first (keep_then_act). */
static inline int ukr_applies_act(const gemm_f32_plan *pl)
{
    return act_in_ukr(pl->act) && pl->Z == NULL;
}

/* The epilogue the micro-kernel leaves to the driver, on the m x n block of
 * C at (i, j) once its last K block is done (still in L1 or L2): the
 * pre-activation copied to Z when kept, then the activation in place. */
static void keep_then_act(const gemm_f32_plan *pl, int64_t i, int64_t j, int64_t m, int64_t n)
{
    float *c = pl->C + i * pl->ldc + j;
    if (pl->Z != NULL) {
        int64_t r;
        for (r = 0; r < m; r++) {
            memcpy(pl->Z + (i + r) * pl->ldc + j, c + r * pl->ldc, (size_t)n * sizeof(float));
        }
    }
    if (pl->act != FNN_ACT_LINEAR) {
        pl->act_tile(c, pl->ldc, m, n, pl->act);
    }
}

/* One micro-kernel call: the tile at rows [i, i+MR), micro-panel q of the
 * current B block (columns jc + q*NR ...), K block [pc, pc+kc). The epilogue
 * template `epi` carries alpha, beta and act for this K block; the
 * transcendental activations are left to the caller (act_rows) unless
 * `with_act`. */
static inline void run_tile(const gemm_f32_plan *pl, fnn_gemm_epi_f32 *epi, const float *a,
                            int64_t rs_a, int64_t cs_a, int64_t i, int64_t pc, int64_t kc,
                            int64_t jc, int64_t q, int with_act)
{
    const int64_t mr = pl->ker.mr, nr = pl->ker.nr;
    const int64_t j = jc + q * nr;
    const int64_t m = pl->M - i < mr ? pl->M - i : mr;
    const int64_t n = pl->N - j < nr ? pl->N - j : nr;
    const int last = pc + kc == pl->K;
    float *c = pl->C + i * pl->ldc + j;

    epi->bias = last && pl->bias != NULL ? pl->bias + j : NULL;
    pl->ker.ukr(kc, a, rs_a, cs_a, pl->bpack + q * kc * nr, c, pl->ldc, m, n, epi);
    if (with_act && last && !ukr_applies_act(pl)) {
        keep_then_act(pl, i, j, m, n);
    }
}

/* The transcendental activation over rows [i, i+m) of micro-panels
 * [q_lo, q_hi) of the current B block, once their last K block is done: a
 * block of up to MC x NC still in L2, in rows of up to NC elements (per tile,
 * rows of NR would cost loop overhead for every 32 elements). The values are
 * the same either way (act_loops.h). */
static void act_rows(const gemm_f32_plan *pl, int64_t i, int64_t m, int64_t pc, int64_t kc,
                     int64_t jc, int64_t q_lo, int64_t q_hi)
{
    const int64_t nr = pl->ker.nr;
    const int64_t j0 = jc + q_lo * nr;
    const int64_t j1 = jc + q_hi * nr < pl->N ? jc + q_hi * nr : pl->N;
    if (pc + kc == pl->K && !ukr_applies_act(pl) && j1 > j0) {
        keep_then_act(pl, i, j0, m, j1 - j0);
    }
}

/* Take the next index from a counter shared by the team. */
static inline int64_t take(int64_t *counter)
{
    int64_t v;
#ifdef _OPENMP
#pragma omp atomic capture
#endif
    v = (*counter)++;
    return v;
}

/* Rows [i0, i0+mc) of one work unit against micro-panels [q_lo, q_hi) of
 * the current B block. */
static void run_unit(const gemm_f32_plan *pl, fnn_gemm_epi_f32 *epi, float *apack,
                     int64_t i0, int64_t rows, int64_t pc, int64_t kc, int64_t jc,
                     int64_t q_lo, int64_t q_hi)
{
    const int64_t mr = pl->ker.mr;
    int64_t ic, q;
    for (ic = i0; ic < i0 + rows; ic += pl->ker.mc) {
        const int64_t mc = i0 + rows - ic < pl->ker.mc ? i0 + rows - ic : pl->ker.mc;
        int64_t ir;
        if (pl->pack_a) {
            pack_a_block_f32(apack, pl, ic, mc, pc, kc);
            /* B micro-panel outer: it stays in cache while the A block's
             * micro-panels stream past it. */
            for (q = q_lo; q < q_hi; q++) {
                for (ir = 0; ir < mc; ir += mr) {
                    run_tile(pl, epi, apack + ir * kc, 1, mr, ic + ir, pc, kc, jc, q, 0);
                }
            }
            act_rows(pl, ic, mc, pc, kc, jc, q_lo, q_hi);
            continue;
        }
        /* A read in place (never transposed: that is always packed): its MR
         * rows stay in L1 for the few B micro-panels (N is small on this path). */
        for (ir = 0; ir < mc; ir += mr) {
            const int64_t i = ic + ir;
            if (kc >= 64 && i + 2 * mr <= pl->M) {
                prefetch_rows_l2(pl->A + (i + mr) * pl->lda + pc, pl->lda, mr, kc);
            }
            for (q = q_lo; q < q_hi; q++) {
                run_tile(pl, epi, pl->A + i * pl->lda + pc, pl->lda, 1, i, pc, kc, jc, q, 0);
            }
            act_rows(pl, i, pl->M - i < mr ? pl->M - i : mr, pc, kc, jc, q_lo, q_hi);
        }
    }
}

/* The loops, run by thread `tid` of a team of `nt` (nt == 1: serial, called
 * outside any parallel region). Each (N block, K block) is a phase: pack the
 * B block, wait, compute every unit, wait. `wait` (NULL when serial)
 * accumulates this thread's time at barriers. */
static void gemm_f32_worker(const gemm_f32_plan *pl, int tid, int nt, int64_t *wait)
{
    const int64_t nr = pl->ker.nr;
    const int64_t M = pl->M, N = pl->N, K = pl->K;
    const int64_t row_units = ceil_div(M, pl->unit_rows);
    float *apack = pl->apack + (int64_t)tid * pl->apack_stride;
    int64_t jc, pc, phase = 0;

    for (jc = 0; jc < N; jc += pl->nc) {
        const int64_t nc = N - jc < pl->nc ? N - jc : pl->nc;
        const int64_t npanels = ceil_div(nc, nr);
        const int64_t groups = pl->col_groups < npanels ? pl->col_groups : npanels;

        for (pc = 0; pc < K; pc += pl->kc, phase++) {
            const int64_t kc = K - pc < pl->kc ? K - pc : pl->kc;
            int64_t *packed = &pl->counters[2 * (phase & 1)];
            int64_t *taken = packed + 1;
            fnn_gemm_epi_f32 epi;
            int64_t q, u;

            if (pl->col_mode) {
                /* Pack A's micro-panels and B's, whoever is free, then wait. */
                const int64_t apanels = ceil_div(M, pl->ker.mr);
                while ((q = take(packed)) < apanels + npanels) {
                    if (q < apanels) {
                        const int64_t i0 = q * pl->ker.mr;
                        pack_a_block_f32(pl->apack + i0 * kc, pl, i0,
                                         M - i0 < pl->ker.mr ? M - i0 : pl->ker.mr, pc, kc);
                    }
                    else {
                        const int64_t j0 = jc + (q - apanels) * nr;
                        pack_b_panel_f32(pl->bpack + (q - apanels) * kc * nr, pl, pc, kc, j0,
                                         N - j0 < nr ? N - j0 : nr);
                    }
                }
            }
            else {
                while ((q = take(packed)) < npanels) {
                    const int64_t j0 = jc + q * nr;
                    pack_b_panel_f32(pl->bpack + q * kc * nr, pl, pc, kc, j0,
                                     N - j0 < nr ? N - j0 : nr);
                }
            }
            barrier(nt, wait);
            if (tid == 0) {
                /* Nobody uses the other parity's counters until the barrier
                 * closing this phase: reset them for the next phase. */
                int64_t *next = &pl->counters[2 * ((phase + 1) & 1)];
                next[0] = 0;
                next[1] = 0;
            }

            epi.alpha = pl->alpha;
            epi.beta = pc == 0 ? pl->beta : 1.0f;
            epi.act = pc + kc == K && ukr_applies_act(pl) ? pl->act : FNN_ACT_LINEAR;
            epi.bias = NULL;

            if (pl->col_mode) {
                /* Unit u is panel u/nt of chunk u%nt (nt chunks of contiguous
                 * panels): threads starting together work far apart, so
                 * they do not share the cache lines of C's tile edges
                 * (NumPy rows are only 16-byte aligned). Taken from a shared
                 * counter, not in static ranges: that pays here (2 threads,
                 * Sapphire Rapids, medians of 3 runs: 128x784@784x512 246
                 * vs 228 GFLOP/s). */
                const int64_t chunk = ceil_div(npanels, nt);
                while ((u = take(taken)) < chunk * nt) {
                    const int64_t c = u % nt;
                    const int64_t lo = npanels * c / nt, hi = npanels * (c + 1) / nt;
                    int64_t i;
                    q = lo + u / nt;
                    if (q >= hi) {
                        continue;
                    }
                    for (i = 0; i < M; i += pl->ker.mr) {
                        run_tile(pl, &epi, pl->apack + i * kc, 1, pl->ker.mr, i, pc, kc, jc, q,
                                 1);
                    }
                }
            }
            else {
                /* Taken from a shared counter too: the last row block is
                 * usually short, so static ranges leave one thread idle
                 * (64x9216@9216x128, one 48-row and one 16-row block: 136
                 * GFLOP/s taken vs 123 static on 2 threads); where units
                 * cost alike, static ranges were within 4% either way. */
                while ((u = take(taken)) < row_units * groups) {
                    const int64_t i0 = (u / groups) * pl->unit_rows;
                    const int64_t g = u % groups;
                    run_unit(pl, &epi, apack, i0,
                             M - i0 < pl->unit_rows ? M - i0 : pl->unit_rows, pc, kc, jc,
                             npanels * g / groups, npanels * (g + 1) / groups);
                }
            }
            /* The next B block overwrites this one: wait for every reader. */
            barrier(nt, wait);
        }
    }
}

/* Size the work units for `nt` threads. Few rows (under 8 MC blocks per
 * thread, A packed): column mode, one unit per B micro-panel. Otherwise row
 * blocks of whole MC blocks, big enough (~1 MFLOP) that taking one costs
 * nothing, and about 8 units per thread (splitting the columns when there
 * are few row blocks) for the dynamic split to balance. Unit boundaries fall
 * on tile boundaries, so they change nothing in the arithmetic. */
static void choose_units(gemm_f32_plan *pl, int nt)
{
    const double block_flops = 2.0 * (double)pl->ker.mc * (double)pl->N * (double)pl->K;
    const int64_t panels = ceil_div(pl->nc, pl->ker.nr);
    const int64_t row_blocks = ceil_div(pl->M, pl->ker.mc);
    int64_t blocks = (int64_t)(1e6 / (block_flops > 1.0 ? block_flops : 1.0)) + 1;
    int64_t row_units;

    pl->col_mode = 0;
    pl->unit_rows = pl->M;
    pl->col_groups = 1;
    if (nt == 1) {
        return;
    }
    if (pl->pack_a && row_blocks < 8 * nt) {
        pl->col_mode = 1;
        return;
    }
    if (blocks * 8 * nt > row_blocks) {
        blocks = row_blocks / (8 * nt);
    }
    if (blocks < 1) {
        blocks = 1;
    }
    pl->unit_rows = blocks * pl->ker.mc;
    row_units = ceil_div(pl->M, pl->unit_rows);
    pl->col_groups = ceil_div(8 * nt, row_units);
    if (pl->col_groups > panels) {
        pl->col_groups = panels;
    }
}

int fnn_gemm_f32(float *C, const float *A, const float *B, const float *bias,
                 int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                 int trans_a, int trans_b, float alpha, float beta, int act, int nthreads)
{
    return fnn_gemm_run_f32(C, NULL, NULL, A, B, bias, M, N, K, lda, ldb, ldc, trans_a,
                            trans_b, alpha, beta, act, nthreads);
}

int fnn_gemm_keep_f32(float *C, float *Z, const float *A, const float *B, const float *bias,
                      int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                      int trans_a, int trans_b, float alpha, float beta, int act, int nthreads)
{
    return fnn_gemm_run_f32(C, Z, NULL, A, B, bias, M, N, K, lda, ldb, ldc, trans_a, trans_b,
                            alpha, beta, act, nthreads);
}

int fnn_gemm_run_f32(float *C, float *Z, double *bsum, const float *A, const float *B,
                     const float *bias, int64_t M, int64_t N, int64_t K, int64_t lda,
                     int64_t ldb, int64_t ldc, int trans_a, int trans_b, float alpha,
                     float beta, int act, int nthreads)
{
    gemm_f32_plan pl;
    int64_t counters[4] = {0, 0, 0, 0};
    int64_t need, mc_eff;
    float *scratch = NULL, *heap = NULL;
    int nt;
    int status = check_args(C, A, B, M, N, K, lda, ldb, ldc, trans_a, trans_b, act);

    if (status != FNN_OK) {
        return status;
    }
    if (M == 0 || N == 0) {
        if (bsum != NULL && !trans_b && N > 0 && K > 0) {
            /* nothing gets packed: the sums straight from B */
            if (B == NULL) {
                return FNN_ERR_ARG;
            }
            for (int64_t p = 0; p < K; p++) {
                for (int64_t j = 0; j < N; j++) {
                    bsum[j] += (double)B[p * ldb + j];
                }
            }
        }
        return bsum != NULL && trans_b ? FNN_ERR_ARG : FNN_OK;
    }
    if ((Z != NULL && Z == C) || (bsum != NULL && trans_b)) {
        return FNN_ERR_ARG;
    }

    pl.C = C;
    pl.Z = Z;
    pl.bsum = bsum;
    pl.A = A;
    pl.B = B;
    pl.bias = bias;
    pl.M = M;
    pl.N = N;
    pl.K = K;
    pl.lda = lda;
    pl.ldb = ldb;
    pl.ldc = ldc;
    pl.trans_a = trans_a;
    pl.trans_b = trans_b;
    pl.alpha = alpha;
    pl.beta = beta;
    pl.act = act;
    pl.ker = fnn_kernels()->gemm_f32;
    pl.act_tile = fnn_kernels()->act_f32.tile;
    if (K == 0) {
        gemm_k0_f32(C, bias, M, N, ldc, beta, Z != NULL ? FNN_ACT_LINEAR : act);
        if (Z != NULL) {
            keep_then_act(&pl, 0, 0, M, N);
        }
        return FNN_OK;
    }

    pl.kc = fnn_gemm_k_block(K, pl.ker.kc);
    pl.nc = N < pl.ker.nc ? round_up(N, pl.ker.nr) : pl.ker.nc;
    /* A transposed A is always packed: read in place, a tile's k steps
     * each take MR values from another row of A, a cache line or two apiece,
     * which do not stay in L1 across the B micro-panels (512x4096^T
     * @ 4096x128: 70 -> 105 GFLOP/s on one Sapphire Rapids core). */
    pl.pack_a = trans_a || ceil_div(N, pl.ker.nr) > GEMM_UNPACKED_A_PANELS;

    /* No more threads than MR x NR tiles of C. */
    nt = fnn_threads_for(2.0 * (double)M * (double)N * (double)K, GEMM_GRAIN_FLOPS,
                         ceil_div(M, pl.ker.mr) * ceil_div(N, pl.ker.nr), nthreads);
    choose_units(&pl, nt);
    pl.counters = counters;

    mc_eff = pl.ker.mc < round_up(M, pl.ker.mr) ? pl.ker.mc : round_up(M, pl.ker.mr);
    pl.apack_stride = pl.pack_a ? round_up(mc_eff * pl.kc, 16) : 0;
    need = round_up(pl.kc * pl.nc, 16) + (int64_t)nt * pl.apack_stride;
    if (pl.col_mode) {
        pl.apack_stride = 0;
        need = round_up(pl.kc * pl.nc, 16) + round_up(M, pl.ker.mr) * pl.kc;
    }
    if (need <= TLS_SCRATCH_FLOATS) {
        scratch = tls_scratch;
    }
    else {
        heap = fnn_aligned_alloc((size_t)need * sizeof(float));
        if (heap == NULL) {
            return FNN_ERR_NOMEM;
        }
        scratch = heap;
    }
    pl.bpack = scratch;
    pl.apack = scratch + round_up(pl.kc * pl.nc, 16);

    if (nt == 1) {
        gemm_f32_worker(&pl, 0, 1, NULL);
    }
    else {
        int64_t start = fnn_now_ns(), first_done = INT64_MAX;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            fnn_note_team();
            /* The runtime may give fewer threads than asked: the units are
             * shared out dynamically, so any team size computes the same. */
            int64_t wait = 0;
            gemm_f32_worker(&pl, fnn_omp_thread_num(), fnn_omp_num_threads(), &wait);
            fnn_team_note_done(&first_done, wait);
        }
        fnn_team_report(start, first_done);
    }
    free(heap);
    return FNN_OK;
}

/* ======================================================================== */
/* float64: a simpler portable kernel                                        */
/* ======================================================================== */

#define MR64 4
#define NR64 8
#define KC64 256

/* acc[4, 8] += Ap[4, kc] @ Bp[kc, 8], both packed (Ap: 4 values per k step,
 * Bp: 8), so every stride is a constant the compiler vectorizes. */
static void kernel_f64(double acc[MR64][NR64], const double *restrict ap,
                       const double *restrict bp, int64_t kc)
{
    double c[MR64][NR64];
    int64_t p;
    int i, j;
    for (i = 0; i < MR64; i++) {
        for (j = 0; j < NR64; j++) {
            c[i][j] = acc[i][j];
        }
    }
    for (p = 0; p < kc; p++) {
        for (i = 0; i < MR64; i++) {
            const double ai = ap[p * MR64 + i];
            for (j = 0; j < NR64; j++) {
                c[i][j] += ai * bp[p * NR64 + j];
            }
        }
    }
    for (i = 0; i < MR64; i++) {
        for (j = 0; j < NR64; j++) {
            acc[i][j] = c[i][j];
        }
    }
}

typedef struct {
    double *C;
    const double *A, *B, *bias;
    int64_t M, N, K, lda, ldb, ldc;
    int trans_a, trans_b;
    double alpha, beta;
    int act;
    double *panels;         /* per-slot packed B panels, panel_stride doubles apart */
    int64_t panel_stride;
} gemm_f64_args;

/* Rows [row_lo, row_hi) of C, all columns; bpanel holds K x 8 doubles. */
static void gemm_f64_rows(const gemm_f64_args *g, int64_t row_lo, int64_t row_hi,
                          double *bpanel)
{
    const int64_t rs_a = g->trans_a ? 1 : g->lda, cs_a = g->trans_a ? g->lda : 1;
    double apanel[KC64 * MR64];
    int64_t j0, i0, p, i, j;

    for (j0 = 0; j0 < g->N; j0 += NR64) {
        const int64_t n = g->N - j0 < NR64 ? g->N - j0 : NR64;
        /* Pack op(B)[:, j0:j0+n] once for all this thread's rows. */
        for (p = 0; p < g->K; p++) {
            for (j = 0; j < NR64; j++) {
                double v = 0.0;
                if (j < n) {
                    v = g->trans_b ? g->B[(j0 + j) * g->ldb + p] : g->B[p * g->ldb + j0 + j];
                }
                bpanel[p * NR64 + j] = v;
            }
        }
        for (i0 = row_lo; i0 < row_hi; i0 += MR64) {
            const int64_t m = row_hi - i0 < MR64 ? row_hi - i0 : MR64;
            double acc[MR64][NR64] = {{0.0}};
            int64_t pc;
            for (pc = 0; pc < g->K; pc += KC64) {
                const int64_t kc = g->K - pc < KC64 ? g->K - pc : KC64;
                /* op(A)[i0:i0+m, pc:pc+kc], zero padded to 4 rows. */
                for (p = 0; p < kc; p++) {
                    for (i = 0; i < MR64; i++) {
                        apanel[p * MR64 + i] =
                            i < m ? g->A[(i0 + i) * rs_a + (pc + p) * cs_a] : 0.0;
                    }
                }
                kernel_f64(acc, apanel, bpanel + pc * NR64, kc);
            }
            for (i = 0; i < m; i++) {
                double *ci = g->C + (i0 + i) * g->ldc + j0;
                for (j = 0; j < n; j++) {
                    double t = g->alpha * acc[i][j];
                    if (g->beta != 0.0) {
                        t = g->beta * ci[j] + t;
                    }
                    if (g->bias != NULL) {
                        t = t + g->bias[j0 + j];
                    }
                    ci[j] = t;
                }
            }
            if (g->act != FNN_ACT_LINEAR) {
                act_tile_f64(g->C + i0 * g->ldc + j0, g->ldc, m, n, g->act);
            }
        }
    }
}

/* Row tiles [first, last) of C, packing B into this slot's panel. */
static int gemm_f64_tiles(void *ctx, int64_t first, int64_t last, int slot)
{
    const gemm_f64_args *g = (const gemm_f64_args *)ctx;
    const int64_t hi = last * MR64 < g->M ? last * MR64 : g->M;
    gemm_f64_rows(g, first * MR64, hi, g->panels + slot * g->panel_stride);
    return FNN_OK;
}

int fnn_gemm_f64(double *C, const double *A, const double *B, const double *bias,
                 int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                 int trans_a, int trans_b, double alpha, double beta, int act, int nthreads)
{
    gemm_f64_args g;
    int64_t tiles_m, per_thread;
    double *heap = NULL, *scratch;
    int nt;
    int status = check_args(C, A, B, M, N, K, lda, ldb, ldc, trans_a, trans_b, act);

    if (status != FNN_OK) {
        return status;
    }
    if (M == 0 || N == 0) {
        return FNN_OK;
    }
    if (K == 0) {
        gemm_k0_f64(C, bias, M, N, ldc, beta, act);
        return FNN_OK;
    }
    g.C = C;
    g.A = A;
    g.B = B;
    g.bias = bias;
    g.M = M;
    g.N = N;
    g.K = K;
    g.lda = lda;
    g.ldb = ldb;
    g.ldc = ldc;
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.alpha = alpha;
    g.beta = beta;
    g.act = act;

    /* Rows split in whole tiles; each thread packs its own B panel. */
    tiles_m = ceil_div(M, MR64);
    nt = fnn_threads_for(2.0 * (double)M * (double)N * (double)K, GEMM_GRAIN_FLOPS, tiles_m,
                         nthreads);
    per_thread = round_up(K * NR64, 8);
    g.panel_stride = per_thread;
    if (per_thread * nt <= TLS_SCRATCH_DOUBLES) {
        scratch = tls_scratch_f64;
    }
    else {
        heap = fnn_aligned_alloc((size_t)(per_thread * nt) * sizeof(double));
        if (heap == NULL) {
            return FNN_ERR_NOMEM;
        }
        scratch = heap;
    }

    g.panels = scratch;
    fnn_run_units(tiles_m, nt, gemm_f64_tiles, &g);
    free(heap);
    return FNN_OK;
}
