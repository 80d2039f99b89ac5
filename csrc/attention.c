/*
 * attention.c -- fused scaled dot-product attention, forward and backward,
 * float32 and float64 (declared in fastnn.h): the checks, the work layout,
 * the choice of the ISA's task loops and the threads.
 *
 *   fnn_attention_work_bytes     the scratch a call needs (the caller allocates it)
 *   fnn_attention_forward_<T>    Y, lse (, probs) from Q, K, V and the masks
 *   fnn_attention_backward_<T>   dQ, dK, dV from dY, Q, K, V, Y, lse (, dprobs)
 *
 * The math lives in attention_kern.h, compiled once per ISA in
 * kernels/attention_<isa>.c; attention_internal.h is the contract.
 *
 * Work is split into tasks whose outputs no other task touches. Forward:
 * one (n, h) pair -- its K and V rows packed into the thread's copy, then
 * its query blocks in turn (its rows of Y, lse and probs); with more threads
 * than pairs, every pair's K and V are packed first and each query block is
 * a task. A forward of a few query rows (decoding) goes row by row instead,
 * one (n, h) per task (V read in place, K transposed a block at a time). Backward: one (n, h) (its dQ,
 * dK and dV, each summed over the blocks in a fixed order). Pairs are shared out in contiguous
 * ranges (they cost the same), query blocks round-robin (causal ones differ in cost), both
 * by fnn_run_units; either way only who computes a task changes, never how: results are
 * bitwise the same for any thread count. Each thread uses
 * its own slot of `work`; there are min(tasks, fnn_num_procs()) slots and
 * min(pairs, fnn_num_procs()) K, V copies, so the scratch depends on the
 * shape and the machine, never on nthreads. Small calls run on the calling
 * thread without entering a parallel region.
 */
#include <string.h>

#include "attention_internal.h"
#include "fastnn.h"
#include "fnn_omp.h"
#include "gemm_internal.h"

/* FLOPs per thread before a second one pays (a parallel region costs a few
 * microseconds; this is some tens of them). */
#define ATT_GRAIN_FLOPS 2e6

/* Sizes and strides are sane; *tasks = the number of tasks. */
static int att_check(const fnn_attention_params *p, int backward, int64_t *tasks)
{
    int64_t nqb;
    if (p == NULL || p->N < 0 || p->Tq < 0 || p->Tk < 0 || p->H < 0 || p->D < 0 || p->Dv < 0) {
        return FNN_ERR_ARG;
    }
    if (p->N == 0 || p->H == 0 || (p->Tq == 0 && !backward)) {
        *tasks = 0;
        return FNN_OK;
    }
    if (p->Tk < 1 || p->D < 1 || p->Dv < 1) {
        return FNN_ERR_ARG;
    }
    /* Every index below fits an int64 comfortably. */
    if ((double)p->N * (double)p->H * ((double)p->Tq + 64.0) * ((double)p->Tk + 64.0)
            > 4e18
        || (double)(p->Tq + p->Tk + 64) * (double)(p->D + p->Dv) * (double)p->H > 4e18) {
        return FNN_ERR_ARG;
    }
    if (p->q_n < p->Tq * p->H * p->D || p->k_n < p->Tk * p->H * p->D
        || p->v_n < p->Tk * p->H * p->Dv || p->y_n < p->Tq * p->H * p->Dv) {
        return FNN_ERR_ARG;
    }
    if (backward
        && (p->dy_n < p->Tq * p->H * p->Dv || p->dq_n < p->Tq * p->H * p->D
            || p->dk_n < p->Tk * p->H * p->D || p->dv_n < p->Tk * p->H * p->Dv)) {
        return FNN_ERR_ARG;
    }
    if (p->threshold > ((uint64_t)1 << 53) || !(p->keep_scale >= 1.0) || p->causal < 0
        || p->causal > 1) {
        return FNN_ERR_ARG;
    }
    nqb = (p->Tq + ATT_BQ - 1) / ATT_BQ;
    *tasks = backward ? p->N * p->H : p->N * p->H * nqb;
    return FNN_OK;
}

static int64_t att_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t att_procs(void)
{
    const int64_t procs = fnn_num_procs();
    return procs < 1 ? 1 : procs;
}

/* Packed K, V copies and slots of the forward: one copy per (n, h) in flight,
 * one slot per thread; at most min(pairs, procs) and min(tasks, procs). */
static void att_counts(const fnn_attention_params *p, int backward, int64_t *copies,
                       int64_t *slots)
{
    const int64_t pairs = p->N * p->H, nqb = (p->Tq + ATT_BQ - 1) / ATT_BQ;
    *copies = backward ? 0 : att_min(pairs, att_procs());
    *slots = att_min(backward ? pairs : pairs * nqb, att_procs());
}

int64_t fnn_attention_work_bytes(const fnn_attention_params *p, int64_t elem, int backward)
{
    int64_t tasks, copies, slots;
    att_layout L;
    if ((elem != 4 && elem != 8) || att_check(p, backward != 0, &tasks) != FNN_OK) {
        return -1;
    }
    if (tasks == 0) {
        return 0;
    }
    att_slot_layout(p, elem, backward != 0, &L);
    att_counts(p, backward != 0, &copies, &slots);
    return ATT_ALIGN + copies * L.kv + slots * L.bytes;
}

/* One call's task loops and scratch, for the range functions below. */
typedef struct {
    att_ctx *c;
    fnn_att_kernel fns;
    char *kv, *slot;        /* K, V copies (L.kv bytes each); per-slot scratch (L.bytes) */
    int64_t nqb, pairs;
    int nt, backward, by_rows;
} att_call;

/* (n, h) pairs [first, last), one at a time on this slot's scratch (and, for
 * the forward by blocks, its K, V copy). Pairs cost the same: contiguous
 * ranges of neighbouring pairs, so each thread streams its own part of the
 * arrays, and the same part call after call (it may still be in that core's
 * cache). */
static int att_pairs(void *ctx, int64_t first, int64_t last, int slot)
{
    const att_call *a = (const att_call *)ctx;
    char *mine = a->slot + slot * a->c->L.bytes;
    char *kv = a->kv + slot * a->c->L.kv;
    for (int64_t u = first; u < last; u++) {
        if (a->backward) {
            a->fns.backward(a->c, u, mine);
        }
        else if (a->by_rows) {
            a->fns.rows(a->c, u, mine);
        }
        else {
            a->fns.pack(a->c, u, kv);
            a->fns.forward(a->c, u, 0, a->nqb, kv, mine);
        }
    }
    return FNN_OK;
}

/* Pairs [first, last): K, V packed into each pair's own copy. */
static int att_pack_pairs(void *ctx, int64_t first, int64_t last, int slot)
{
    const att_call *a = (const att_call *)ctx;
    (void)slot;
    for (int64_t u = first; u < last; u++) {
        a->fns.pack(a->c, u, a->kv + u * a->c->L.kv);
    }
    return FNN_OK;
}

/* Lanes [first, last) of nt: lane l computes query blocks l, l + nt, ... of
 * all pairs (block u is pair u / nqb's block u % nqb). */
static int att_query_lanes(void *ctx, int64_t first, int64_t last, int slot)
{
    const att_call *a = (const att_call *)ctx;
    char *mine = a->slot + slot * a->c->L.bytes;
    for (int64_t lane = first; lane < last; lane++) {
        for (int64_t u = lane; u < a->pairs * a->nqb; u += a->nt) {
            a->fns.forward(a->c, u / a->nqb, u % a->nqb, u % a->nqb + 1,
                           a->kv + (u / a->nqb) * a->c->L.kv, mine);
        }
    }
    return FNN_OK;
}

/* Runs the call described by `c`: checks, lays out `work`, shares out tasks. */
static int att_run(att_ctx *c, void *work, int64_t work_bytes, int64_t elem, int backward,
                   int nthreads)
{
    const fnn_attention_params *p = c->p;
    int64_t tasks, need, copies, slots, pairs, nqb;
    int by_rows;
    double flops;
    char *base, *kv, *slot;
    fnn_att_kernel fns;
    int nt, status = att_check(p, backward, &tasks);

    if (status != FNN_OK) {
        return status;
    }
    if (tasks == 0) {
        return FNN_OK;
    }
    need = fnn_attention_work_bytes(p, elem, backward);
    if (work == NULL || work_bytes < need) {
        return FNN_ERR_ARG;
    }
    att_slot_layout(p, elem, backward, &c->L);
    att_counts(p, backward, &copies, &slots);
    base = (char *)work + (ATT_ALIGN - (int64_t)((uintptr_t)work % ATT_ALIGN)) % ATT_ALIGN;
    kv = base;
    slot = base + copies * c->L.kv;
    fns = elem == 8 ? fnn_kernels()->att_f64 : fnn_kernels()->att_f32;
    pairs = p->N * p->H;
    nqb = (p->Tq + ATT_BQ - 1) / ATT_BQ;
    by_rows = !backward && p->Tq <= ATT_ROWS_MAX && c->probs == NULL;

    flops = 2.0 * (double)pairs * (double)p->Tq * (double)p->Tk * (double)(p->D + p->Dv)
            * (backward ? 2.5 : 1.0);
    nt = fnn_threads_for(flops, ATT_GRAIN_FLOPS, slots, nthreads);
    {
        att_call call = {.c = c, .fns = fns, .kv = kv, .slot = slot, .nqb = nqb, .nt = nt,
                         .pairs = pairs, .backward = backward, .by_rows = by_rows};
        if (backward || by_rows || nt <= pairs) {
            return fnn_run_units(pairs, nt, att_pairs, &call);
        }
        /* Fewer pairs than threads (pairs <= copies): every K, V packed once,
         * then the query blocks are shared out round-robin (lane l takes
         * blocks l, l + nt, ...), so lanes get even work even where later
         * blocks cost more. */
        fnn_run_units(pairs, nt, att_pack_pairs, &call);
        return fnn_run_units(nt, nt, att_query_lanes, &call);
    }
}

#define ATT_ENTRY_POINTS(T, SFX, ELEM)                                                        \
    int fnn_attention_forward_##SFX(T *Y, T *lse, T *probs, void *work, const T *Q,           \
                                    const T *K, const T *V, const uint8_t *qmask,             \
                                    const uint8_t *kmask, const uint8_t *amask,               \
                                    const fnn_attention_params *params, int64_t work_bytes,   \
                                    int nthreads)                                             \
    {                                                                                         \
        att_ctx c;                                                                            \
        memset(&c, 0, sizeof c);                                                              \
        if (params != NULL && params->N > 0 && params->H > 0 && params->Tq > 0                \
            && (Y == NULL || lse == NULL || Q == NULL || K == NULL || V == NULL)) {           \
            return FNN_ERR_ARG;                                                               \
        }                                                                                     \
        c.p = params;                                                                         \
        c.Y = Y;                                                                              \
        c.lse = lse;                                                                          \
        c.probs = probs;                                                                      \
        c.Q = Q;                                                                              \
        c.K = K;                                                                              \
        c.V = V;                                                                              \
        c.qmask = qmask;                                                                      \
        c.kmask = kmask;                                                                      \
        c.amask = amask;                                                                      \
        return att_run(&c, work, work_bytes, ELEM, 0, nthreads);                              \
    }                                                                                         \
    int fnn_attention_backward_##SFX(T *dQ, T *dK, T *dV, void *work, const T *dY,            \
                                     const T *Q, const T *K, const T *V, const T *Y,          \
                                     const T *lse, const T *dprobs, const uint8_t *qmask,     \
                                     const uint8_t *kmask, const uint8_t *amask,              \
                                     const fnn_attention_params *params, int64_t work_bytes,  \
                                     int nthreads)                                            \
    {                                                                                         \
        att_ctx c;                                                                            \
        memset(&c, 0, sizeof c);                                                              \
        if (params != NULL && params->N > 0 && params->H > 0                                  \
            && (dQ == NULL || dK == NULL || dV == NULL || dY == NULL || Q == NULL             \
                || K == NULL || V == NULL || Y == NULL || lse == NULL)) {                     \
            return FNN_ERR_ARG;                                                               \
        }                                                                                     \
        c.p = params;                                                                         \
        c.dQ = dQ;                                                                            \
        c.dK = dK;                                                                            \
        c.dV = dV;                                                                            \
        c.dY = dY;                                                                            \
        c.Q = Q;                                                                              \
        c.K = K;                                                                              \
        c.V = V;                                                                              \
        c.Yin = Y;                                                                            \
        c.lse_in = lse;                                                                       \
        c.dprobs = dprobs;                                                                    \
        c.qmask = qmask;                                                                      \
        c.kmask = kmask;                                                                      \
        c.amask = amask;                                                                      \
        return att_run(&c, work, work_bytes, ELEM, 1, nthreads);                              \
    }

ATT_ENTRY_POINTS(float, f32, 4)
ATT_ENTRY_POINTS(double, f64, 8)
