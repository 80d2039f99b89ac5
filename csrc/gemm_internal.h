/*
 * gemm_internal.h -- the contract between the GEMM driver (gemm.c), the
 * per-ISA micro-kernels (kernels/gemm_<isa>.c) and the kernel table (cpu.c).
 * Private to csrc/: nothing here is part of fastnn.h.
 *
 * The micro-kernel computes one MR x NR tile of C:
 *
 *     C[0:m, 0:n] = epi( alpha * A~[0:MR, 0:k] @ B~[0:k, 0:NR] , beta * C )
 *
 *   A~ (MR x k): element (i, p) at a[i * rs_a + p * cs_a]. Two layouts reach
 *       the kernel: packed (rs_a == 1, cs_a == MR: MR values per k step,
 *       rows past m are zero padding) and unpacked (A read in place: rs_a =
 *       lda, cs_a = 1, or rs_a = 1, cs_a = lda for a transposed A). With an
 *       unpacked A the kernel never reads rows i >= m (they may not exist).
 *   B~ (k x NR): always packed by the driver: NR consecutive values per k
 *       step (b[p * NR + j]), columns past n zero padded, 64-byte aligned.
 *   C: row-major with leading dimension ldc; only the m x n corner
 *       (1 <= m <= MR, 1 <= n <= NR) is read or written: edge tiles are the
 *       kernel's job, never a read or write past row m or column n.
 *   k >= 1.
 *
 * The epilogue, in this order and with these roundings (every kernel of one
 * ISA does exactly this, so a tile's value does not depend on whether it is
 * an edge tile, hence not on how the driver splits C between threads):
 *     t = alpha * acc                   (one rounding)
 *     if beta != 0: t = beta * C + t    (one FMA in the SIMD kernels, a multiply
 *                                        and an add in the portable one; beta == 0
 *                                        never reads C: C may hold NaN)
 *     if bias:      t = t + bias[j]     (bias points at this tile's first column)
 *     relu:         t = t < 0 ? 0 : t   (NaN passes through)
 *     leaky_relu:   t = t < 0 ? slope * t : t
 *     C = t
 * `act` in the epilogue is FNN_ACT_LINEAR, _RELU or _LEAKY_RELU only; the
 * driver applies the transcendental activations itself, on the tile just
 * written (still in L1), with the table's act_f32.tile loop (act_loops.h: the
 * same values as act.c's kernels).
 *
 * The driver accumulates over K in blocks of KC: the first block passes the
 * caller's beta, later blocks beta = 1; bias and act ride only on the last
 * block. acc always starts at zero and sums p = 0..k-1 in order with one FMA
 * per step (multiply then add in the portable kernel), so every element's
 * rounding sequence is fixed by K, KC and the ISA alone.
 */
#ifndef FNN_GEMM_INTERNAL_H
#define FNN_GEMM_INTERNAL_H

#include <stdint.h>

#include "act_loops.h"
#include "attention_internal.h"
#include "layernorm_rows.h"
#include "fastnn.h"

typedef struct {
    float alpha;
    float beta;
    const float *bias; /* NULL, or this tile's n bias values */
    int act;           /* FNN_ACT_LINEAR, FNN_ACT_RELU or FNN_ACT_LEAKY_RELU */
} fnn_gemm_epi_f32;

typedef void (*fnn_gemm_ukr_f32)(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                 const float *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                 const fnn_gemm_epi_f32 *epi);

/* Packs an NR-wide micro-panel of B from a transposed B (stored N x K):
 *     dst[p * nr + j] = bt[j * ldb + p]   for p < kc, j < w,
 *     dst[p * nr + j] = 0                 for p < kc, w <= j < nr.
 * A transpose is the slow part of packing; SIMD versions do it 8x8 at a time.
 * The driver also packs row-major A panels with it (nr = MR, w = rows). */
typedef void (*fnn_gemm_packbt_f32)(float *dst, const float *bt, int64_t ldb, int64_t kc,
                                    int64_t w, int64_t nr);

/* One ISA's GEMM: its micro-kernel, the tile it computes and the cache
 * blocking it was tuned with (MC a multiple of MR, NC a multiple of NR).
 * Block sizes belong to the kernel, never to the thread count. */
typedef struct {
    fnn_gemm_ukr_f32 ukr;
    fnn_gemm_packbt_f32 pack_bt;
    int mr, nr;
    int64_t mc, kc, nc;
} fnn_gemm_kernel_f32;

/* e^x over arrays (vexp.h), one build per ISA. */
typedef struct {
    void (*f32)(float *y, const float *x, int64_t n);
    void (*f64)(double *y, const double *x, int64_t n);
} fnn_vexp_kernel;

/* The K block the driver accumulates over: K in equal blocks of at most KC,
 * each a multiple of 8 (no thin last block), so the blocking -- hence every
 * rounding -- depends on K and the kernel table alone. dense_stack.c blocks
 * K the same way to give the same bits. */
static inline int64_t fnn_gemm_k_block(int64_t K, int64_t kc)
{
    const int64_t nblocks = (K + kc - 1) / kc;
    const int64_t block = ((K + nblocks - 1) / nblocks + 7) / 8 * 8;
    return block < K ? block : K;
}

/* The kernel table: portable entries first, overridden by the chosen ISA. */
typedef struct {
    int isa;
    fnn_gemm_kernel_f32 gemm_f32;
    fnn_act_kernel_f32 act_f32; /* the activation loops (act_loops.h) */
    fnn_vexp_kernel vexp;       /* fnn_vexp_f32 / _f64's loops (vexp.h) */
    fnn_ln_kernel layernorm;    /* layer norm's row loops (layernorm_rows.h) */
    fnn_att_kernel att_f32;     /* attention's task loops (attention_internal.h) */
    fnn_att_kernel att_f64;
} fnn_kernel_table;

/* The table in force now (never NULL once fastnn's module has imported;
 * falls back to the portable table before any fnn_isa_select). */
const fnn_kernel_table *fnn_kernels(void);

/* fnn_gemm_keep_f32 that can also sum op(B)'s columns over K (the dense
 * layers' bias gradient, taken from B's rows while they are packed):
 * bsum[j] += op(B)[k, j] for k = 0 .. K-1 in order, in double. bsum (N
 * doubles, the caller's to zero) may be NULL; it needs trans_b == 0. */
int fnn_gemm_run_f32(float *C, float *Z, double *bsum, const float *A, const float *B,
                     const float *bias, int64_t M, int64_t N, int64_t K, int64_t lda,
                     int64_t ldb, int64_t ldc, int trans_a, int trans_b, float alpha,
                     float beta, int act, int nthreads);

/* ---- micro-kernels (kernels/gemm_<isa>.c) ------------------------------ */
#define FNN_GEMM_GENERIC_MR 4
#define FNN_GEMM_GENERIC_NR 16
void fnn_gemm_ukr_f32_generic_4x16(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                   const float *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                   const fnn_gemm_epi_f32 *epi);

void fnn_gemm_packbt_f32_generic(float *dst, const float *bt, int64_t ldb, int64_t kc, int64_t w,
                                 int64_t nr);

#ifdef FNN_HAVE_X86_KERNELS
void fnn_gemm_packbt_f32_avx2(float *dst, const float *bt, int64_t ldb, int64_t kc, int64_t w,
                              int64_t nr);
#define FNN_GEMM_AVX2_MR 6
#define FNN_GEMM_AVX2_NR 16
void fnn_gemm_ukr_f32_avx2_6x16(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                const float *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                const fnn_gemm_epi_f32 *epi);

#define FNN_GEMM_AVX512_MR 12
#define FNN_GEMM_AVX512_NR 32
void fnn_gemm_ukr_f32_avx512_12x32(int64_t k, const float *a, int64_t rs_a, int64_t cs_a,
                                   const float *b, float *c, int64_t ldc, int64_t m, int64_t n,
                                   const fnn_gemm_epi_f32 *epi);
#endif

#endif /* FNN_GEMM_INTERNAL_H */
