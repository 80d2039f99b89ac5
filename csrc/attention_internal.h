/*
 * attention_internal.h -- the contract between the attention driver
 * (attention.c: checks, work layout, threads) and its per-ISA task loops
 * (kernels/attention_<isa>.c, each attention_kern.h compiled for one ISA).
 * Private to csrc/.
 *
 * Blocks: ATT_BQ query rows against ATT_BK keys. In the forward the query
 * rows are the vector lanes of the score tile (stored key-major, St[j][i]),
 * so the online softmax's per-row max and sum are lane-wise; in the backward
 * the keys are (S[i][j]), so dV and dK accumulate lane-wise and the per-row
 * terms (lse, delta) are broadcasts. The sizes are the same for every ISA
 * and type: the work a call needs does not depend on the ISA in force.
 *
 * Why everything is packed: the operands come as (T, H, D) rows, H*D
 * elements apart -- often a power of two in bytes (H*D*4 = 2 KiB), which maps
 * a head's rows onto a few cache sets and evicts them long before the
 * blocks reuse them. Each task copies what it reuses into contiguous scratch.
 *
 * The work area (64-byte aligned regions, T the element type, Tqp = Tq
 * rounded up to ATT_BQ):
 *   forward:  kvcopies x (Tk x D + Tk x Dv)   K and V of one (n, h), rows packed
 *             slots x forward slot:
 *               qt  D  x BQ   scale * Q of the query block, transposed
 *               ot  Dv x BQ   the output block, transposed, unnormalised
 *               st  BK x BQ   scores, then p, of one key block
 *               vec 4 x BQ    running max, sum, rescale factor, a spare
 *               flags 2 x BQ bytes: query mask, "the row has an allowed key"
 *             kvcopies = min(N*H, procs): with threads to spare over the (n, h)
 *             pairs, all K, V are packed first and query blocks are shared out;
 *             otherwise each thread packs the (n, h) it works on.
 *   backward: slots x backward slot (kvcopies = 0):
 *               qs  Tqp x D   scale * Q rows of the (n, h) (zero past Tq)
 *               dyr Tqp x Dv  dY rows
 *               dqs Tqp x D   dQ accumulated (times 1 / scale), copied out last
 *               kt  D x BK, vt Dv x BK   the key block transposed (zero past nk)
 *               kp  BK x D    the key block's rows
 *               dkt D x BK, dvt Dv x BK  dK^T and dV^T of the key block
 *               s, dp BQ x BK            p (then p after dropout), dp (then dS)
 *               vec 3 x Tqp + BK         shift and mul (p = exp(s' - shift) * mul:
 *                                        lse and 1, or for a row with no allowed key
 *                                        its max and 1 / sum), delta, a spare row
 *               flags 3 x Tqp + 2 x BK bytes: query mask, live rows, live query
 *                                        blocks, the key block's key mask, a spare
 * slots = min(tasks, procs); a thread uses slot omp_get_thread_num().
 */
#ifndef FNN_ATTENTION_INTERNAL_H
#define FNN_ATTENTION_INTERNAL_H

#include <stdint.h>

#include "fastnn.h"

#define ATT_BQ 64
#define ATT_BK 64
/* A forward of at most this many query rows, without probs, runs row by row
 * (att_rows_fn): the block loop would compute ATT_BQ lanes for each. */
#define ATT_ROWS_MAX 4
#define ATT_ALIGN 64
/* Keras's _large_negative_number for float32 / float64 (added, not set). */
#define ATT_MASK_VALUE (-1e9)

typedef struct {
    /* forward slot */
    int64_t qt, ot, st, vec, flags;
    /* backward slot */
    int64_t qs, dyr, dqs, kt, vt, kp, dkt, dvt, s, dp;
    int64_t bytes;   /* one slot */
    int64_t kv;      /* one packed K, V copy (forward), 0 in the backward */
    int64_t tqp;
} att_layout;

static inline int64_t att_round(int64_t x, int64_t to)
{
    return (x + to - 1) / to * to;
}

static inline int64_t att_region(int64_t *at, int64_t bytes)
{
    const int64_t here = *at;
    *at += att_round(bytes, ATT_ALIGN);
    return here;
}

/* The layout of one slot (and one K, V copy) for elements of `elem` bytes. */
static inline void att_slot_layout(const fnn_attention_params *p, int64_t elem, int backward,
                                   att_layout *L)
{
    const int64_t tqp = att_round(p->Tq, ATT_BQ), BQ = ATT_BQ, BK = ATT_BK;
    int64_t at = 0;
    L->tqp = tqp;
    L->qt = L->ot = L->st = L->vec = L->flags = 0;
    L->qs = L->dyr = L->dqs = L->kt = L->vt = L->kp = L->dkt = L->dvt = L->s = L->dp = 0;
    if (!backward) {
        L->qt = att_region(&at, p->D * BQ * elem);
        L->ot = att_region(&at, p->Dv * BQ * elem);
        L->st = att_region(&at, BK * BQ * elem);
        L->vec = att_region(&at, 4 * BQ * elem);
        L->flags = att_region(&at, 2 * BQ);
        L->bytes = at;
        L->kv = att_round(p->Tk * p->D * elem, ATT_ALIGN)
                + att_round(p->Tk * p->Dv * elem, ATT_ALIGN);
        return;
    }
    L->qs = att_region(&at, tqp * p->D * elem);
    L->dyr = att_region(&at, tqp * p->Dv * elem);
    L->dqs = att_region(&at, tqp * p->D * elem);
    L->kt = att_region(&at, p->D * BK * elem);
    L->vt = att_region(&at, p->Dv * BK * elem);
    L->kp = att_region(&at, BK * p->D * elem);
    L->dkt = att_region(&at, p->D * BK * elem);
    L->dvt = att_region(&at, p->Dv * BK * elem);
    L->s = att_region(&at, BQ * BK * elem);
    L->dp = att_region(&at, BQ * BK * elem);
    L->vec = att_region(&at, (3 * tqp + BK) * elem);
    L->flags = att_region(&at, 3 * tqp + 2 * BK);
    L->bytes = at;
    L->kv = 0;
}

/* dropout.c's mix64 (splitmix64's finaliser): the dropout key is mix64(seed). */
static inline __attribute__((always_inline)) uint64_t fnn_att_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* dropout.c's draw for flat index idx (passed as idx + 1) under `key`: the
 * element is kept when it is >= the threshold. Inlined, so the lane loops
 * over it vectorise. */
static inline __attribute__((always_inline)) uint64_t fnn_att_draw(uint64_t key, uint64_t idx1)
{
    return fnn_att_mix64(key + idx1 * 0x9E3779B97F4A7C15ULL) >> 11;
}

/* What one task reads and writes (pointers at element 0 of each array). */
typedef struct {
    const fnn_attention_params *p;
    att_layout L;
    void *Y, *lse, *probs;             /* forward outputs */
    void *dQ, *dK, *dV;                /* backward outputs */
    const void *Q, *K, *V;
    const void *dY, *Yin, *lse_in, *dprobs;
    const uint8_t *qmask, *kmask, *amask;
    int64_t groups;                    /* forward: query-block groups per (n, h) */
} att_ctx;

/* Forward:
 *   pack(c, bh, kv):       K and V rows of (n, h) = bh into the copy at kv
 *   run(c, bh, qb0, qb1, kv, slot):  query blocks [qb0, qb1) of bh, K and V at kv
 *   rows(c, bh, slot):     every query row of bh, one at a time: V read in place,
 *                          (scale * K)^T a block at a time into qt; ot, st scratch
 * Backward:
 *   task(c, bh, slot):     all of (n, h) = bh.
 * kv and slot are 64-byte aligned. */
typedef void (*att_pack_fn)(const att_ctx *c, int64_t bh, char *kv);
typedef void (*att_fwd_fn)(const att_ctx *c, int64_t bh, int64_t qb0, int64_t qb1,
                           const char *kv, char *slot);
typedef void (*att_rows_fn)(const att_ctx *c, int64_t bh, char *slot);
typedef void (*att_bwd_fn)(const att_ctx *c, int64_t bh, char *slot);

/* One ISA's build of the task loops, for one element type: an entry of the
 * kernel table (cpu.c), which attention.c calls through. */
typedef struct {
    att_pack_fn pack;
    att_fwd_fn forward;
    att_rows_fn rows;
    att_bwd_fn backward;
} fnn_att_kernel;

#define FNN_ATT_KERNEL(SFX, ISA)                                                     \
    ((fnn_att_kernel){fnn_att_pack_##SFX##_##ISA, fnn_att_forward_##SFX##_##ISA,     \
                      fnn_att_rows_##SFX##_##ISA, fnn_att_backward_##SFX##_##ISA})

#define ATT_DECLARE_T(SFX, ISA)                                                          \
    void fnn_att_pack_##SFX##_##ISA(const att_ctx *c, int64_t bh, char *kv);             \
    void fnn_att_forward_##SFX##_##ISA(const att_ctx *c, int64_t bh, int64_t qb0,        \
                                        int64_t qb1, const char *kv, char *slot);         \
    void fnn_att_rows_##SFX##_##ISA(const att_ctx *c, int64_t bh, char *slot);           \
    void fnn_att_backward_##SFX##_##ISA(const att_ctx *c, int64_t bh, char *slot);
#define ATT_DECLARE(ISA) ATT_DECLARE_T(f32, ISA) ATT_DECLARE_T(f64, ISA)

ATT_DECLARE(generic)
#ifdef FNN_HAVE_X86_KERNELS
ATT_DECLARE(avx2)
ATT_DECLARE(avx512)
#endif

#endif /* FNN_ATTENTION_INTERNAL_H */
