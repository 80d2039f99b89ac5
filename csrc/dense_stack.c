/*
 * dense_stack.c -- inference through a stack of dense layers in one call.
 *
 *     H_0 = X,  H_l = act_l(H_{l-1} @ W_l + b_l),  Y = H_L
 *
 * `predict` of an MLP spends more time between its layers (a Python call,
 * a fresh output array, the activations leaving the cache) than in them.
 * Here every thread takes whole blocks of rows and carries each block
 * through all the layers while it is in L1/L2: the weights are packed once
 * per call into the micro-kernel's panels, shared by the team.
 *
 * Every value equals what the layers give one at a time (fnn_gemm_f32 with
 * the activation fused, then the row softmax of act.c): the same micro-kernel
 * on the same packed panels, the same K blocking (the first KC block with
 * beta = 0, later ones accumulating with beta = 1, bias and the activation on
 * the last), the same activation loops -- a tile's value does not depend on
 * which rows share its block (gemm_internal.h), so the blocking here changes
 * the speed only. Tests compare the two bitwise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastnn.h"
#include "fnn_alloc.h"
#include "fnn_omp.h"
#include "gemm_internal.h"

/* Rows per block, in micro-kernel tiles: 4 tiles (48 rows with AVX-512's
 * 12-row tiles) keep a block of the widest layer of W2 (512 columns) at
 * 96 KB, in L2 with its input, and cut a 1024-row batch into 22 blocks that
 * two threads share evenly (W1's 3 layers, 8 batches of 1024 on 2 threads:
 * 250 us at 4 tiles, 297 at 8, 337 at 16). */
#define BLOCK_TILES 4
/* gemm.c's GEMM_UNPACKED_A_PANELS: wider layers pack A's row panels. */
#define UNPACKED_A_PANELS 4
/* FLOPs a thread should get before a second one joins (about 20 us). */
#define STACK_THREAD_GRAIN 2e6

typedef struct {
    const fnn_gemm_kernel_f32 *ker;
    fnn_act_tile_loop_f32 act_tile;
    int nlayers;
    const int64_t *dims;
    const float *const *b;
    const int *acts;
    float **packed;     /* each layer's W in NR-wide panels, all K per panel */
    const float *X;
    float *Y;
    int64_t rows, block_rows, max_width;
} stack_plan;

/* W (K x N, row-major) as micro-panels: panel q holds columns q*NR ... for
 * every k, NR values per k (zero past N), so any K block [p0, p0+kc) of it is
 * the contiguous B~ the micro-kernel reads, at q*K*NR + p0*NR. */
static void pack_panels(float *dst, const float *W, int64_t K, int64_t N, int64_t nr)
{
    int64_t q, p;
    for (q = 0; q * nr < N; q++) {
        const int64_t j0 = q * nr;
        const int64_t w = N - j0 < nr ? N - j0 : nr;
        float *panel = dst + q * K * nr;
        for (p = 0; p < K; p++) {
            memcpy(panel + p * nr, W + p * N + j0, (size_t)w * sizeof(float));
            memset(panel + p * nr + w, 0, (size_t)(nr - w) * sizeof(float));
        }
    }
}

/* The activation the micro-kernel's epilogue applies itself (gemm_internal.h). */
static int act_in_ukr(int act)
{
    return act == FNN_ACT_LINEAR || act == FNN_ACT_RELU || act == FNN_ACT_LEAKY_RELU;
}

/* One layer over an m-row block: C (m x N, ldc = N) from A (m x K, lda = K).
 * As gemm.c, A is read in place for narrow layers and packed into MR-row
 * panels (apack: MR x KC floats, KC at least the K block) when B has more micro-panels than that pays
 * for (GEMM_UNPACKED_A_PANELS there); either way the same values. */
static int layer_block(const stack_plan *sp, int l, const float *A, float *C, int64_t m,
                       float *apack)
{
    const fnn_gemm_kernel_f32 *ker = sp->ker;
    const int64_t K = sp->dims[l], N = sp->dims[l + 1];
    const int64_t mr = ker->mr, nr = ker->nr, panels = (N + nr - 1) / nr;
    const int64_t kb = fnn_gemm_k_block(K, ker->kc);
    const int act = sp->acts[l];
    const int pack = panels > UNPACKED_A_PANELS;
    const float *bias = sp->b[l];
    fnn_gemm_epi_f32 epi;
    int64_t i, q, pc;

    epi.alpha = 1.0f;
    for (i = 0; i < m; i += mr) {
        const int64_t mi = m - i < mr ? m - i : mr;
        for (pc = 0; pc < K; pc += kb) {
            const int64_t kc = K - pc < kb ? K - pc : kb;
            const int last = pc + kc == K;
            const float *a = A + i * K + pc;
            int64_t rs_a = K, cs_a = 1;
            if (pack) {
                ker->pack_bt(apack, a, K, kc, mi, mr);
                a = apack;
                rs_a = 1;
                cs_a = mr;
            }
            epi.beta = pc == 0 ? 0.0f : 1.0f;
            epi.act = last && act_in_ukr(act) ? act : FNN_ACT_LINEAR;
            for (q = 0; q < panels; q++) {
                const int64_t j = q * nr;
                epi.bias = last && bias != NULL ? bias + j : NULL;
                ker->ukr(kc, a, rs_a, cs_a, sp->packed[l] + q * K * nr + pc * nr, C + i * N + j,
                         N, mi, N - j < nr ? N - j : nr, &epi);
            }
        }
    }
    if (act == FNN_ACT_SOFTMAX) {
        return fnn_softmax_forward_f32(C, C, m, N, 1, 0, 1);
    }
    if (!act_in_ukr(act)) {
        sp->act_tile(C, N, m, N, act);
    }
    return FNN_OK;
}

/* Rows [r0, r0+m) through every layer, ping-ponging between two scratch
 * blocks; the last layer writes straight into Y. */
static int run_block(const stack_plan *sp, int64_t r0, int64_t m, float *buf0, float *buf1,
                     float *apack)
{
    const float *in = sp->X + r0 * sp->dims[0];
    int l;
    for (l = 0; l < sp->nlayers; l++) {
        float *out = l == sp->nlayers - 1 ? sp->Y + r0 * sp->dims[sp->nlayers]
                                          : (l % 2 == 0 ? buf0 : buf1);
        const int status = layer_block(sp, l, in, out, m, apack);
        if (status != FNN_OK) {
            return status;
        }
        in = out;
    }
    return FNN_OK;
}

/* Blocks [first, last) of the rows, with this thread's scratch: two blocks
 * of activations and one packed A panel. */
static int run_blocks(void *ctx, int64_t first, int64_t last, int slot)
{
    const stack_plan *sp = ctx;
    const int64_t block = sp->block_rows;
    const int64_t apack_floats = sp->ker->mr * sp->ker->kc;
    float *scratch = fnn_aligned_alloc((size_t)(2 * block * sp->max_width + apack_floats)
                                       * sizeof(float));
    float *apack = scratch + 2 * block * sp->max_width;
    int64_t k;
    int status = FNN_OK;
    (void)slot;
    if (scratch == NULL) {
        return FNN_ERR_NOMEM;
    }
    for (k = first; k < last && status == FNN_OK; k++) {
        const int64_t r0 = k * block;
        const int64_t m = sp->rows - r0 < block ? sp->rows - r0 : block;
        status = run_block(sp, r0, m, scratch, scratch + block * sp->max_width, apack);
    }
    free(scratch);
    return status;
}

static int check_args(float *Y, const float *X, int64_t rows, int nlayers, const int64_t *dims,
                      const float *const *W, const int *acts)
{
    int l;
    if (Y == NULL || X == NULL || dims == NULL || W == NULL || acts == NULL || rows < 0
        || nlayers < 1) {
        return FNN_ERR_ARG;
    }
    for (l = 0; l <= nlayers; l++) {
        if (dims[l] < 1) {
            return FNN_ERR_ARG;
        }
    }
    for (l = 0; l < nlayers; l++) {
        if (W[l] == NULL || acts[l] < 0 || acts[l] >= FNN_ACT_COUNT) {
            return FNN_ERR_ARG;
        }
    }
    return FNN_OK;
}

int fnn_dense_stack_f32(float *Y, const float *X, int64_t rows, int nlayers, const int64_t *dims,
                        const float *const *W, const float *const *b, const int *acts,
                        int nthreads)
{
    const fnn_kernel_table *table = fnn_kernels();
    stack_plan sp;
    float *panels[FNN_DENSE_STACK_MAX_LAYERS];
    double flops = 0.0;
    int64_t blocks;
    int l, nt, status = check_args(Y, X, rows, nlayers, dims, W, acts);

    if (status != FNN_OK || nlayers > FNN_DENSE_STACK_MAX_LAYERS) {
        return FNN_ERR_ARG;
    }
    if (rows == 0) {
        return FNN_OK;
    }
    sp.ker = &table->gemm_f32;
    sp.act_tile = table->act_f32.tile;
    sp.nlayers = nlayers;
    sp.dims = dims;
    sp.b = b;
    sp.acts = acts;
    sp.packed = panels;
    sp.X = X;
    sp.Y = Y;
    sp.rows = rows;
    sp.block_rows = BLOCK_TILES * (int64_t)sp.ker->mr;
    sp.max_width = 1;
    for (l = 0; l < nlayers; l++) {
        const int64_t K = dims[l], N = dims[l + 1];
        const int64_t width = (N + sp.ker->nr - 1) / sp.ker->nr * sp.ker->nr;
        flops += 2.0 * (double)rows * (double)K * (double)N;
        if (l < nlayers - 1 && N > sp.max_width) {
            sp.max_width = N;
        }
        panels[l] = fnn_aligned_alloc((size_t)(K * width) * sizeof(float));
        if (panels[l] == NULL) {
            status = FNN_ERR_NOMEM;
            nlayers = l;
            break;
        }
        pack_panels(panels[l], W[l], K, N, sp.ker->nr);
    }

    blocks = (rows + sp.block_rows - 1) / sp.block_rows;
    if (status == FNN_OK) {
        nt = fnn_threads_for(flops, STACK_THREAD_GRAIN, blocks, nthreads);
        status = fnn_run_units(blocks, nt, run_blocks, &sp);
    }
    for (l = 0; l < nlayers; l++) {
        free(panels[l]);
    }
    return status;
}
