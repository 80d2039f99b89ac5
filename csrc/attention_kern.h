/*
 * attention_kern.h -- the task loops of attention.c, written once over an
 * element type and a vector ISA. Private to kernels/attention_<isa>.c, which
 * include it once per type after defining:
 *   ATT_T, ATT_SFX        float / f32 or double / f64
 *   ATT_ISA               generic, avx2 or avx512 (the exported names' suffix)
 *   ATT_EXP(x)            vexp.h's vexp1_soft_<f32|f64> (lane-wise in `omp simd` loops):
 *                         every exponent here is <= 0 (a score minus its row's max,
 *                         or lse)
 *   ATT_V, VL             the vector type and its lanes
 *   VZERO() VSET1(x) VLOAD(p) VSTORE(p, v) VFMA(a, b, c)    a * b + c
 *   VMAX(a, b)            lane-wise a > b ? a : b (b when a is NaN)
 *   VMASK_T VMASK(n) VLOADM(p, m) VSTOREM(p, v, m)           the first n lanes only
 *                         (masked lanes are neither read nor written)
 *   ATT_TRANSPOSE(dst, ldd, src, lds, s)  dst[c * ldd + r] = s * src[r * lds + c],
 *                         r, c < VL (one block, in registers)
 *   ATT_NV                vectors per register tile row
 *   ATT_MR_WIDE           rows of a tile of more than ATT_NV / 2 vectors
 *   ATT_MR_NARROW         rows of a tile of at most ATT_NV / 2 vectors
 * No include guard.
 *
 * Every product is one shape, C[R x W] (=|+=) A(R x P) B[P x W] (att_mm):
 * A read by scalars at a[r * ars + p * aps] (any strides), B and C by rows of
 * contiguous vectors (ldb, ldc), W's last vector masked when W % VL != 0. A
 * tile keeps MR x NVEC accumulators in registers, broadcasts one A value per
 * row and loads NVEC B vectors per step p; every element of C sums p = 0 ..
 * P-1 in order, one FMA each (the generic build: a multiply and an add).
 *
 * Forward of query blocks of one (n, h) (K and V rows packed contiguous
 * first, once per (n, h) and thread), with St the key-major score tile
 * St[j][i] (lanes = query rows):
 *   Qt = (scale * Q)^T                                  once per query block
 *   for each key block [j0, j0 + nk):
 *       St = K Qt                    (att_mm: rows j, lanes i, P = D)
 *       masked scores get -1e9 added; m' = max(m, max_j St); a = exp(m - m')
 *       St = exp(St - m'); l = a l + sum_j St; St *= keep * keep_scale
 *       Ot = a Ot + V^T St           (att_mm: rows c, lanes i, P = nk)
 *   Y = Ot^T / l, lse = m + log l (, probs = exp(s' - m) / l from the s' kept)
 * A causal key block wholly after the query block's last row is skipped --
 * with everything after it -- only when every row of the block has an
 * allowed key at or before its own position (then each skipped score is
 * exactly 0 after the softmax); a row with none must see all keys, as the
 * -1e9 rule gives.
 *
 * Backward of one (n, h) with the lanes swapped: S[i][j], lanes = keys.
 * Qs = scale * Q and dY rows packed once; per key block its K^T, V^T and K
 * rows; key blocks outer, query blocks inner:
 *   delta_i = dY_i . Y_i (+ sum_j p_ij dprobs_ij, an extra pass when given)
 *   S  = Qs K^T;  p = exp(s' - lse)   (a row with no allowed key: exp(s' - m) / l,
 *                                      m and l from an extra pass: float32 cannot
 *                                      hold its lse = -1e9 + log l)
 *   dP = dY V^T                       (dp' = dY . v)
 *   dp = dp' keep keep_scale (+ dprobs);  dS = p (dp - delta);  P' = p keep keep_scale
 *   dV^T += dY^T P'    (att_mm: rows c, lanes j, P = nq)
 *   dK^T += Qs^T dS    (rows d, lanes j, P = nq)
 *   dQ   += dS K       (rows i, lanes d, P = nk; times scale when copied out)
 * Every element is summed by this one task in block order; dK, dV are
 * copied out after their key block, dQ after the last.
 */
#define ATT_PASTE3(a, b, c) a##_##b##_##c
#define ATT_XPASTE3(a, b, c) ATT_PASTE3(a, b, c)
#define FN(name) ATT_XPASTE3(name, ATT_SFX, ATT_ISA)

#include <math.h>
#include <string.h>

#include "attention_internal.h"

#ifndef ATT_INLINE
#define ATT_INLINE inline __attribute__((always_inline))
/* Keeps a loaded B vector in a register: left alone, GCC folds the load into
 * each of the tile's FMAs (a memory operand per row), which makes the tile
 * bound by loads rather than FMAs. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__AVX__)
#define ATT_KEEP(x) __asm__("" : "+v"(x))
#else
#define ATT_KEEP(x) ((void)0)
#endif
#define ATT_MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

/* ---- the block product ------------------------------------------------------ */

static ATT_INLINE void FN(tile)(ATT_T *c, int64_t ldc, const ATT_T *a, int64_t ars,
                                int64_t aps, const ATT_T *b, int64_t ldb, int64_t P, int acc,
                                ATT_T *cmax, VMASK_T m, const int ROWS, const int NVEC,
                                const int MASKED)
{
    ATT_V s[ATT_MR_NARROW][ATT_NV];
    const ATT_T *ap[ATT_MR_NARROW];
    int r, v;

#pragma GCC unroll 16
    for (r = 0; r < ROWS; r++) {
        ap[r] = a + r * ars;
#pragma GCC unroll 8
        for (v = 0; v < NVEC; v++) {
            ATT_T *cv = c + r * ldc + v * VL;
            if (!acc) {
                s[r][v] = VZERO();
            }
            else if (MASKED && v == NVEC - 1) {
                s[r][v] = VLOADM(cv, m);
            }
            else {
                s[r][v] = VLOAD(cv);
            }
        }
    }
    for (int64_t p = 0; p < P; p++) {
        ATT_V bv[ATT_NV];
#pragma GCC unroll 8
        for (v = 0; v < NVEC; v++) {
            bv[v] = (MASKED && v == NVEC - 1) ? VLOADM(b + v * VL, m) : VLOAD(b + v * VL);
            ATT_KEEP(bv[v]);
        }
#pragma GCC unroll 16
        for (r = 0; r < ROWS; r++) {
            const ATT_V ar = VSET1(*ap[r]);
            ap[r] += aps;
#pragma GCC unroll 8
            for (v = 0; v < NVEC; v++) {
                s[r][v] = VFMA(ar, bv[v], s[r][v]);
            }
        }
        b += ldb;
    }
    if (cmax != NULL) {
        /* the column maxima of C (forward scores; W a multiple of VL) */
#pragma GCC unroll 8
        for (v = 0; v < NVEC; v++) {
            ATT_V mv = VLOAD(cmax + v * VL);
#pragma GCC unroll 16
            for (r = 0; r < ROWS; r++) {
                mv = VMAX(s[r][v], mv);
            }
            VSTORE(cmax + v * VL, mv);
        }
    }
#pragma GCC unroll 16
    for (r = 0; r < ROWS; r++) {
#pragma GCC unroll 8
        for (v = 0; v < NVEC; v++) {
            ATT_T *cv = c + r * ldc + v * VL;
            if (MASKED && v == NVEC - 1) {
                VSTOREM(cv, s[r][v], m);
            }
            else {
                VSTORE(cv, s[r][v]);
            }
        }
    }
}

/* Rows of a tile of NV vectors: the register budget. */
#define ATT_MR_OF(NV_) ((NV_) * 2 <= ATT_NV ? ATT_MR_NARROW : ATT_MR_WIDE)

/* All R rows of one column chunk of NVEC vectors: full tiles of MR rows, then
 * one tile of the rows left (specialised, no call per tile). */
static ATT_INLINE void FN(rows)(ATT_T *c, int64_t ldc, const ATT_T *a, int64_t ars, int64_t aps,
                                const ATT_T *b, int64_t ldb, int64_t R, int64_t P, int acc,
                                ATT_T *cmax, VMASK_T m, const int NVEC, const int MASKED)
{
    const int MR = ATT_MR_OF(NVEC);
    int64_t r0 = 0;
    for (; r0 + MR <= R; r0 += MR) {
        FN(tile)(c + r0 * ldc, ldc, a + r0 * ars, ars, aps, b, ldb, P, acc, cmax, m, MR, NVEC,
                 MASKED);
    }
    c += r0 * ldc;
    a += r0 * ars;
    switch (R - r0) {
#define ATT_REST(ROWS_)                                                                   \
    case ROWS_:                                                                           \
        if (ROWS_ < MR) {                                                                 \
            FN(tile)(c, ldc, a, ars, aps, b, ldb, P, acc, cmax, m, ROWS_ < MR ? ROWS_ : 1, \
                     NVEC, MASKED);                                                       \
        }                                                                                 \
        break;
    ATT_REST(1)
    ATT_REST(2)
    ATT_REST(3)
    ATT_REST(4)
    ATT_REST(5)
    ATT_REST(6)
    ATT_REST(7)
#undef ATT_REST
    default:
        break;
    }
}

/* C[R x W] = (acc: C +) A(R x P) B[P x W]; see the file's comment. With cmax
 * (W elements, W a multiple of VL), cmax = max(cmax, every row of C). */
static void FN(mm)(ATT_T *c, int64_t ldc, const ATT_T *a, int64_t ars, int64_t aps,
                   const ATT_T *b, int64_t ldb, int64_t R, int64_t W, int64_t P, int acc,
                   ATT_T *cmax)
{
    for (int64_t w0 = 0; w0 < W; w0 += (int64_t)ATT_NV * VL) {
        const int64_t w = ATT_MIN(W - w0, (int64_t)ATT_NV * VL);
        const int nvec = (int)((w + VL - 1) / VL);
        const int last = (int)(w - (int64_t)(nvec - 1) * VL);
        const VMASK_T m = VMASK(last);
        ATT_T *cw = c + w0;
        const ATT_T *bw = b + w0;
        switch (nvec * 2 + (last != VL)) {
#define ATT_CHUNK(NV_, MK_)                                                               \
    case (NV_) * 2 + (MK_):                                                               \
        FN(rows)(cw, ldc, a, ars, aps, bw, ldb, R, P, acc, cmax == NULL ? NULL : cmax + w0, m, \
                 NV_, MK_);                                                               \
        break;
        ATT_CHUNK(1, 0)
        ATT_CHUNK(1, 1)
#if ATT_NV >= 2
        ATT_CHUNK(2, 0)
        ATT_CHUNK(2, 1)
#endif
#if ATT_NV >= 3
        ATT_CHUNK(3, 0)
        ATT_CHUNK(3, 1)
#endif
#if ATT_NV >= 4
        ATT_CHUNK(4, 0)
        ATT_CHUNK(4, 1)
#endif
#undef ATT_CHUNK
        default:
            break;
        }
    }
}

/* dst[c * ldd + r] = scale * src[r * lds + c] for r < rows, c < cols: VL x VL
 * blocks in registers, the edges element by element. */
static void FN(transpose)(ATT_T *dst, int64_t ldd, const ATT_T *src, int64_t lds, int64_t rows,
                          int64_t cols, ATT_T scale)
{
    const int64_t rf = rows - rows % VL, cf = cols - cols % VL;
    int64_t r, c;
    for (r = 0; r < rf; r += VL) {
        for (c = 0; c < cf; c += VL) {
            ATT_TRANSPOSE(dst + c * ldd + r, ldd, src + r * lds + c, lds, scale);
        }
        for (c = cf; c < cols; c++) {
            for (int64_t k = r; k < r + VL; k++) {
                dst[c * ldd + k] = scale * src[k * lds + c];
            }
        }
    }
    for (r = rf; r < rows; r++) {
        for (c = 0; c < cols; c++) {
            dst[c * ldd + r] = scale * src[r * lds + c];
        }
    }
}

#ifndef ATT_LOG_POS_DEFINED
#define ATT_LOG_POS_DEFINED
/* log(x) for a finite x >= 1 (a softmax row's sum), branch-free so that a
 * loop of them vectorises: x = 2^e m with m in [sqrt(1/2), sqrt(2)), log m =
 * 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172, by its series to z^21
 * (error below 1e-19). */
static inline double att_log_pos(double x)
{
    uint64_t bits;
    double m, z, z2, t;
    int64_t e;
    memcpy(&bits, &x, sizeof bits);
    e = (int64_t)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    memcpy(&m, &bits, sizeof m);
    e += m > 1.41421356237309515 ? 1 : 0;
    m = m > 1.41421356237309515 ? m * 0.5 : m;
    z = (m - 1.0) / (m + 1.0);
    z2 = z * z;
    t = 1.0 / 21;
    t = t * z2 + 1.0 / 19;
    t = t * z2 + 1.0 / 17;
    t = t * z2 + 1.0 / 15;
    t = t * z2 + 1.0 / 13;
    t = t * z2 + 1.0 / 11;
    t = t * z2 + 1.0 / 9;
    t = t * z2 + 1.0 / 7;
    t = t * z2 + 1.0 / 5;
    t = t * z2 + 1.0 / 3;
    t = t * z2 + 1.0;
    return (double)e * 0.693147180559945309 + 2.0 * z * t;
}
#endif

/* ---- masks and dropout on a key-major tile ------------------------------------ */

/* Adds -1e9 to the disallowed scores of St's rows j < nk (keys j0 + j) for
 * the lanes of query rows i0 + i: qok[i] (query mask, 1 past the block's
 * rows), the key mask row km (NULL: all), the attention mask rows am (row i
 * at am + i * Tk; NULL: all) and causality; mx (BQ lanes) = max(mx, the
 * masked scores). amt: BQ bytes of scratch. */
static void FN(apply_mask)(ATT_T *St, int64_t nk, int64_t j0, int64_t i0, int64_t nq,
                           const uint8_t *qok, const uint8_t *km, const uint8_t *am,
                           int64_t Tk, int causal, uint8_t *amt, ATT_T *mx)
{
    const ATT_T neg = (ATT_T)ATT_MASK_VALUE;
    int i;
    if (am == NULL) {
        memset(amt, 1, ATT_BQ);
    }
    for (int64_t j = 0; j < nk; j++) {
        const int64_t jj = j0 + j;
        const int kj = km == NULL || km[jj] != 0;
        const int64_t last_ok = causal ? jj - i0 : 0; /* lanes i >= this pass causality */
        ATT_T *s = St + j * ATT_BQ;
        if (am != NULL) {
            for (i = 0; i < nq; i++) {
                amt[i] = am[(int64_t)i * Tk + jj] != 0;
            }
            for (; i < ATT_BQ; i++) {
                amt[i] = 1;
            }
        }
#pragma omp simd
        for (i = 0; i < ATT_BQ; i++) {
            const int ok = (qok[i] & amt[i] & kj) != 0 && i >= last_ok;
            const ATT_T v = ok ? s[i] : s[i] + neg;
            s[i] = v;
            mx[i] = v > mx[i] ? v : mx[i];
        }
    }
}

/* St[j][i] *= keep(flat index base + i * Tk + j) ? ks : 0 for j < nk, every lane;
 * keep as dropout.c's: (mix64(key + (idx + 1) * golden) >> 11) >= threshold. */
static void FN(dropout_tile)(ATT_T *St, int64_t nk, uint64_t base, int64_t Tk, uint64_t key,
                             uint64_t threshold, ATT_T ks)
{
    for (int64_t j = 0; j < nk; j++) {
        ATT_T *s = St + j * ATT_BQ;
        const uint64_t b = base + (uint64_t)j + 1u;
#pragma omp simd
        for (int i = 0; i < ATT_BQ; i++) {
            s[i] = fnn_att_draw(key, b + (uint64_t)i * (uint64_t)Tk) >= threshold ? s[i] * ks
                                                                              : (ATT_T)0;
        }
    }
}

/* ---- per-task setup shared by both directions -------------------------------- */

/* qok[i] = the query mask of rows i0 + i (1 past nq). With `live` (BQ bytes,
 * may be NULL), live[i] = whether row i0 + i has an allowed key at all
 * (causality included; 1 past nq), and the result is whether every row has
 * one; without, the result is 1. */
static int FN(live_rows)(uint8_t *qok, uint8_t *live, const fnn_attention_params *p,
                         const uint8_t *qm, const uint8_t *km, const uint8_t *am, int64_t i0,
                         int64_t nq)
{
    int64_t first = 0, i, j;
    int all = 1;
    for (i = 0; i < ATT_BQ; i++) {
        qok[i] = i >= nq || qm == NULL || qm[i0 + i] != 0;
    }
    if (live == NULL) {
        return 1;
    }
    if (km != NULL) {
        while (first < p->Tk && km[first] == 0) {
            first++;
        }
    }
    for (i = 0; i < ATT_BQ; i++) {
        int any = 1;
        if (i < nq) {
            const int64_t row = i0 + i;
            const int64_t upto = p->causal && row < p->Tk - 1 ? row : p->Tk - 1;
            any = 0;
            if (!qok[i]) {
                any = 0;
            }
            else if (am == NULL) {
                any = first <= upto;
            }
            else {
                for (j = first; j <= upto && !any; j++) {
                    any = (km == NULL || km[j] != 0) && am[i * p->Tk + j] != 0;
                }
            }
        }
        live[i] = (uint8_t)any;
        all &= any;
    }
    return all;
}

/* ---- forward -------------------------------------------------------------------- */

/* dst[r * w + k] = src[r * ld + k] for r < rows, k < w: rows gathered from a
 * (T, H, X) array into a contiguous block, the next rows prefetched. */
static void FN(copy_rows)(ATT_T *dst, const ATT_T *src, int64_t rows, int64_t w, int64_t ld)
{
    for (int64_t r = 0; r < rows; r++) {
        const ATT_T *in = src + r * ld;
        ATT_T *out = dst + r * w;
        if (r + 8 < rows) {
            for (int64_t k = 0; k < w; k += 64 / (int64_t)sizeof(ATT_T)) {
                __builtin_prefetch(in + 8 * ld + k);
            }
        }
#pragma omp simd
        for (int64_t k = 0; k < w; k++) {
            out[k] = in[k];
        }
    }
}

void FN(fnn_att_pack)(const att_ctx *c, int64_t bh, char *kv)
{
    const fnn_attention_params *p = c->p;
    const int64_t n = bh / p->H, h = bh % p->H;
    ATT_T *Kp = (ATT_T *)kv;
    ATT_T *Vp = (ATT_T *)(kv + att_round(p->Tk * p->D * (int64_t)sizeof(ATT_T), ATT_ALIGN));
    FN(copy_rows)(Kp, (const ATT_T *)c->K + n * p->k_n + h * p->D, p->Tk, p->D, p->H * p->D);
    FN(copy_rows)(Vp, (const ATT_T *)c->V + n * p->v_n + h * p->Dv, p->Tk, p->Dv,
                  p->H * p->Dv);
}

/* Query blocks [qb0, qb1) of (n, h) = bh; K and V rows packed at kv. */
void FN(fnn_att_forward)(const att_ctx *c, int64_t bh, int64_t qb0, int64_t qb1,
                         const char *kv, char *slot)
{
    const fnn_attention_params *p = c->p;
    const int64_t Tq = p->Tq, Tk = p->Tk, H = p->H, D = p->D, Dv = p->Dv;
    const int64_t HD = H * D, HDv = H * Dv, n = bh / H, h = bh % H;
    const ATT_T *Kp = (const ATT_T *)kv;
    const ATT_T *Vp = (const ATT_T *)(kv + att_round(Tk * D * (int64_t)sizeof(ATT_T), ATT_ALIGN));
    ATT_T *Qt = (ATT_T *)(slot + c->L.qt), *Ot = (ATT_T *)(slot + c->L.ot);
    ATT_T *St = (ATT_T *)(slot + c->L.st), *vec = (ATT_T *)(slot + c->L.vec);
    ATT_T *mrow = vec, *lrow = vec + ATT_BQ, *alpha = vec + 2 * ATT_BQ, *tmp = vec + 3 * ATT_BQ;
    uint8_t *qok = (uint8_t *)(slot + c->L.flags), *amt = qok + ATT_BQ;
    const uint8_t *qm = c->qmask == NULL ? NULL : c->qmask + n * Tq;
    const uint8_t *km = c->kmask == NULL ? NULL : c->kmask + n * Tk;
    const int masked = qm != NULL || km != NULL || c->amask != NULL;
    const ATT_T sc = (ATT_T)p->scale, ks = (ATT_T)p->keep_scale;
    const uint64_t key = p->threshold ? fnn_att_mix64(p->seed) : 0;

    for (int64_t qb = qb0; qb < qb1; qb++) {
        const int64_t i0 = qb * ATT_BQ, nq = ATT_MIN((int64_t)ATT_BQ, Tq - i0);
        const ATT_T *Q = (const ATT_T *)c->Q + n * p->q_n + h * D + i0 * HD;
        ATT_T *Y = (ATT_T *)c->Y + n * p->y_n + h * Dv + i0 * HDv;
        ATT_T *lse = (ATT_T *)c->lse + bh * Tq + i0;
        ATT_T *probs = c->probs == NULL ? NULL : (ATT_T *)c->probs + (bh * Tq + i0) * Tk;
        const uint8_t *am = c->amask == NULL ? NULL : c->amask + (n * Tq + i0) * Tk;
        int64_t jend = Tk, i, j, d;
        int all_ok, il;

        /* Qt = (scale * Q)^T, lanes past nq zero. */
        FN(transpose)(Qt, ATT_BQ, Q, HD, nq, D, sc);
        if (nq < ATT_BQ) {
            for (d = 0; d < D; d++) {
                for (i = nq; i < ATT_BQ; i++) {
                    Qt[d * ATT_BQ + i] = 0;
                }
            }
        }
        /* Skipping causal blocks needs every row live (the rows' flags in amt). */
        all_ok = FN(live_rows)(qok, p->causal ? amt : NULL, p, qm, km, am, i0, nq);
        for (il = 0; il < ATT_BQ; il++) {
            mrow[il] = (ATT_T)-INFINITY;
            lrow[il] = 0;
        }

        for (int64_t j0 = 0; j0 < Tk; j0 += ATT_BK) {
            const int64_t nk = ATT_MIN((int64_t)ATT_BK, Tk - j0);
            if (p->causal && j0 > i0 + nq - 1 && all_ok) {
                jend = j0;
                break;
            }
            const int mask_tile = masked || (p->causal && j0 + nk - 1 > i0);
            /* tmp = the new running max, taken as the scores are stored (or
             * masked) */
#pragma omp simd
            for (il = 0; il < ATT_BQ; il++) {
                tmp[il] = mrow[il];
            }
            FN(mm)(St, ATT_BQ, Kp + j0 * D, D, 1, Qt, ATT_BQ, nk, ATT_BQ, D, 0,
                   mask_tile ? NULL : tmp);
            if (mask_tile) {
                FN(apply_mask)(St, nk, j0, i0, nq, qok, km, am, Tk, p->causal, amt, tmp);
            }
            if (probs != NULL) {
                /* The masked scores, normalised once m and l are known. */
                for (i = 0; i < nq; i++) {
                    for (j = 0; j < nk; j++) {
                        probs[i * Tk + j0 + j] = St[j * ATT_BQ + i];
                    }
                }
            }
#pragma omp simd
            for (il = 0; il < ATT_BQ; il++) {
                alpha[il] = ATT_EXP(mrow[il] - tmp[il]);
                mrow[il] = tmp[il];
                tmp[il] = 0;
            }
            for (j = 0; j < nk; j++) {
                ATT_T *s = St + j * ATT_BQ;
#pragma omp simd
                for (il = 0; il < ATT_BQ; il++) {
                    const ATT_T e = ATT_EXP(s[il] - mrow[il]);
                    s[il] = e;
                    tmp[il] += e;
                }
            }
#pragma omp simd
            for (il = 0; il < ATT_BQ; il++) {
                lrow[il] = alpha[il] * lrow[il] + tmp[il];
            }
            if (p->threshold) {
                FN(dropout_tile)(St, nk, (uint64_t)((bh * Tq + i0) * Tk + j0), Tk, key,
                                 p->threshold, ks);
            }
            if (j0 > 0) {
                for (d = 0; d < Dv; d++) {
                    ATT_T *o = Ot + d * ATT_BQ;
#pragma omp simd
                    for (il = 0; il < ATT_BQ; il++) {
                        o[il] *= alpha[il];
                    }
                }
            }
            /* the first block overwrites Ot */
            FN(mm)(Ot, ATT_BQ, Vp + j0 * Dv, 1, Dv, St, ATT_BQ, Dv, ATT_BQ, nk, j0 > 0, NULL);
        }

        /* Y = Ot^T / l (alpha, tmp: 1 / l and log l of each lane) */
#pragma omp simd
        for (il = 0; il < ATT_BQ; il++) {
            alpha[il] = (ATT_T)1 / lrow[il];
            tmp[il] = (ATT_T)att_log_pos((double)lrow[il]);
        }
        for (d = 0; d < Dv; d++) {
            ATT_T *o = Ot + d * ATT_BQ;
#pragma omp simd
            for (il = 0; il < ATT_BQ; il++) {
                o[il] *= alpha[il];
            }
        }
        FN(transpose)(Y, HDv, Ot, ATT_BQ, Dv, nq, 1);
        for (i = 0; i < nq; i++) {
            lse[i] = mrow[i] + tmp[i];
            if (probs != NULL) {
                /* exp(s' - m) / l, not exp(s' - lse): a row with no allowed key has
                 * lse = -1e9 + log(l), which float32 rounds to -1e9. */
                const ATT_T mi = mrow[i], inv = alpha[i];
                ATT_T *row = probs + i * Tk;
#pragma omp simd
                for (j = 0; j < jend; j++) {
                    row[j] = ATT_EXP(row[j] - mi) * inv;
                }
                for (j = jend; j < Tk; j++) {
                    row[j] = 0;
                }
            }
        }
    }
}

/* ---- forward, row by row (few query rows: decoding) -------------------------------- */

/* The forward of every query row of (n, h) = bh, one row at a time: for a call
 * of a few rows (decoding: one new position against the cache) the block loop
 * would compute ATT_BQ lanes for each. Per block of ATT_BK keys: Kt =
 * (scale * K)^T (qt region), s = q Kt (att_mm, lanes = keys), masked scores
 * get -1e9 added, and the block joins the running max m, sum l and output
 * o = sum p V (att_mm over V's rows in place) as in the block loop. Dropout
 * draws the same keep bits. No probs (the caller takes the block loop). */
void FN(fnn_att_rows)(const att_ctx *c, int64_t bh, char *slot)
{
    const fnn_attention_params *p = c->p;
    const int64_t Tq = p->Tq, Tk = p->Tk, H = p->H, D = p->D, Dv = p->Dv;
    const int64_t n = bh / H, h = bh % H;
    ATT_T *Kt = (ATT_T *)(slot + c->L.qt), *o = (ATT_T *)(slot + c->L.ot);
    ATT_T *s = (ATT_T *)(slot + c->L.st);
    const ATT_T *K = (const ATT_T *)c->K + n * p->k_n + h * D;
    const ATT_T *V = (const ATT_T *)c->V + n * p->v_n + h * Dv;
    const uint8_t *km = c->kmask == NULL ? NULL : c->kmask + n * Tk;
    const ATT_T sc = (ATT_T)p->scale, ks = (ATT_T)p->keep_scale, neg = (ATT_T)ATT_MASK_VALUE;
    const uint64_t key = p->threshold ? fnn_att_mix64(p->seed) : 0;

    for (int64_t i = 0; i < Tq; i++) {
        const ATT_T *q = (const ATT_T *)c->Q + n * p->q_n + i * H * D + h * D;
        const uint8_t *am = c->amask == NULL ? NULL : c->amask + (n * Tq + i) * Tk;
        const int qok = c->qmask == NULL || c->qmask[n * Tq + i] != 0;
        ATT_T m = (ATT_T)-INFINITY, l = 0;
        int64_t d, j;

        for (int64_t j0 = 0; j0 < Tk; j0 += ATT_BK) {
            const int64_t nk = ATT_MIN((int64_t)ATT_BK, Tk - j0);
            ATT_T mb = m, alpha, sum = 0;
            FN(transpose)(Kt, ATT_BK, K + j0 * H * D, H * D, nk, D, sc);
            FN(mm)(s, ATT_BK, q, 0, 1, Kt, ATT_BK, 1, nk, D, 0, NULL);
            for (j = 0; j < nk; j++) {
                const int64_t jj = j0 + j;
                const int ok = qok && (km == NULL || km[jj] != 0)
                               && (am == NULL || am[jj] != 0) && !(p->causal && jj > i);
                s[j] = ok ? s[j] : s[j] + neg;
                mb = s[j] > mb ? s[j] : mb;
            }
            alpha = ATT_EXP(m - mb);
            m = mb;
#pragma omp simd reduction(+ : sum)
            for (j = 0; j < nk; j++) {
                s[j] = ATT_EXP(s[j] - m);
                sum += s[j];
            }
            l = alpha * l + sum;
            if (p->threshold) {
                const uint64_t b = (uint64_t)((bh * Tq + i) * Tk + j0) + 1u;
                for (j = 0; j < nk; j++) {
                    s[j] = fnn_att_draw(key, b + (uint64_t)j) >= p->threshold ? s[j] * ks
                                                                            : (ATT_T)0;
                }
            }
            if (j0 > 0) {
#pragma omp simd
                for (d = 0; d < Dv; d++) {
                    o[d] *= alpha;
                }
            }
            FN(mm)(o, Dv, s, 0, 1, V + j0 * H * Dv, H * Dv, 1, Dv, nk, j0 > 0, NULL);
        }
        {
            const ATT_T inv = (ATT_T)1 / l;
            ATT_T *y = (ATT_T *)c->Y + n * p->y_n + i * H * Dv + h * Dv;
#pragma omp simd
            for (d = 0; d < Dv; d++) {
                y[d] = o[d] * inv;
            }
            ((ATT_T *)c->lse)[bh * Tq + i] = m + (ATT_T)att_log_pos((double)l);
        }
    }
}

/* ---- backward ------------------------------------------------------------------- */

/* Adds -1e9 to the disallowed scores of S's rows i < nq (query rows i0 + i)
 * at lanes j < nk (keys j0 + j): qok[i] (query mask), kok[j] (key mask of the
 * block), am (attention mask rows, row i at am + i * Tk; NULL: all) and
 * causality. */
static void FN(mask_rows)(ATT_T *S, int64_t nq, int64_t nk, int64_t i0, int64_t j0,
                          const uint8_t *qok, const uint8_t *kok, const uint8_t *am,
                          int64_t Tk, int causal)
{
    const ATT_T neg = (ATT_T)ATT_MASK_VALUE;
    for (int64_t i = 0; i < nq; i++) {
        ATT_T *s = S + i * ATT_BK;
        const int qi = qok[i] != 0;
        const int64_t lim = causal ? i0 + i - j0 : ATT_BK; /* lanes j <= lim pass */
        int64_t j;
        if (am != NULL) {
            const uint8_t *ar = am + i * Tk + j0;
#pragma omp simd
            for (j = 0; j < nk; j++) {
                const int ok = qi && kok[j] != 0 && ar[j] != 0 && j <= lim;
                s[j] = ok ? s[j] : s[j] + neg;
            }
        }
        else {
#pragma omp simd
            for (j = 0; j < nk; j++) {
                const int ok = qi && kok[j] != 0 && j <= lim;
                s[j] = ok ? s[j] : s[j] + neg;
            }
        }
    }
}

/* Per key block [j0, j0 + nk): Kt (D x BK) and Vt (Dv x BK) transposed with
 * zero lanes past nk, Kp (nk x D) rows, kok the key mask (1 past nk). */
static void FN(pack_keys)(ATT_T *Kt, ATT_T *Vt, ATT_T *Kp, uint8_t *kok, const ATT_T *K,
                          const ATT_T *Vm, const uint8_t *km, int64_t j0, int64_t nk,
                          int64_t D, int64_t Dv, int64_t HD, int64_t HDv)
{
    const ATT_T *Kb = K + j0 * HD, *Vb = Vm + j0 * HDv;
    int64_t j, d;
    int jl;
    FN(copy_rows)(Kp, Kb, nk, D, HD);
    FN(transpose)(Kt, ATT_BK, Kp, D, nk, D, 1);
    FN(transpose)(Vt, ATT_BK, Vb, HDv, nk, Dv, 1);
    if (nk < ATT_BK) {
        for (d = 0; d < D; d++) {
            for (jl = (int)nk; jl < ATT_BK; jl++) {
                Kt[d * ATT_BK + jl] = 0;
            }
        }
        for (d = 0; d < Dv; d++) {
            for (jl = (int)nk; jl < ATT_BK; jl++) {
                Vt[d * ATT_BK + jl] = 0;
            }
        }
    }
    for (j = 0; j < ATT_BK; j++) {
        kok[j] = j >= nk || km == NULL || km[j0 + j] != 0;
    }
}

void FN(fnn_att_backward)(const att_ctx *c, int64_t bh, char *slot)
{
    const fnn_attention_params *p = c->p;
    const int64_t Tq = p->Tq, Tk = p->Tk, H = p->H, D = p->D, Dv = p->Dv;
    const int64_t HD = H * D, HDv = H * Dv, Tqp = c->L.tqp, n = bh / H, h = bh % H;
    const ATT_T *Q = (const ATT_T *)c->Q + n * p->q_n + h * D;
    const ATT_T *K = (const ATT_T *)c->K + n * p->k_n + h * D;
    const ATT_T *Vm = (const ATT_T *)c->V + n * p->v_n + h * Dv;
    const ATT_T *dY = (const ATT_T *)c->dY + n * p->dy_n + h * Dv;
    const ATT_T *Yin = (const ATT_T *)c->Yin + n * p->y_n + h * Dv;
    const ATT_T *lse_in = (const ATT_T *)c->lse_in + bh * Tq;
    const ATT_T *dprobs = c->dprobs == NULL ? NULL : (const ATT_T *)c->dprobs + bh * Tq * Tk;
    ATT_T *dQ = (ATT_T *)c->dQ + n * p->dq_n + h * D;
    ATT_T *dK = (ATT_T *)c->dK + n * p->dk_n + h * D;
    ATT_T *dV = (ATT_T *)c->dV + n * p->dv_n + h * Dv;
    ATT_T *Qs = (ATT_T *)(slot + c->L.qs), *dYr = (ATT_T *)(slot + c->L.dyr);
    ATT_T *dQs = (ATT_T *)(slot + c->L.dqs), *Kt = (ATT_T *)(slot + c->L.kt);
    ATT_T *Vt = (ATT_T *)(slot + c->L.vt), *Kp = (ATT_T *)(slot + c->L.kp);
    ATT_T *dKt = (ATT_T *)(slot + c->L.dkt), *dVt = (ATT_T *)(slot + c->L.dvt);
    ATT_T *S = (ATT_T *)(slot + c->L.s), *dP = (ATT_T *)(slot + c->L.dp);
    ATT_T *shift = (ATT_T *)(slot + c->L.vec), *mul = shift + Tqp, *delta = mul + Tqp;
    ATT_T *row = delta + Tqp;
    uint8_t *qok = (uint8_t *)(slot + c->L.flags), *live = qok + Tqp, *blk_ok = live + Tqp;
    uint8_t *kok = blk_ok + Tqp;
    const uint8_t *qm = c->qmask == NULL ? NULL : c->qmask + n * Tq;
    const uint8_t *km = c->kmask == NULL ? NULL : c->kmask + n * Tk;
    const int masked = qm != NULL || km != NULL || c->amask != NULL;
    const ATT_T sc = (ATT_T)p->scale, ks = (ATT_T)p->keep_scale, neg_inf = (ATT_T)-INFINITY;
    const uint64_t key = p->threshold ? fnn_att_mix64(p->seed) : 0;
    int any_dead = 0;
    int64_t i, j, d, i0, j0;

    /* Rows of the (n, h): Qs = scale * Q, dY (zero past Tq); delta = dY . Y;
     * p = exp(s' - shift) * mul with shift = lse, mul = 1; dQ accumulates
     * from 0. */
    for (i = 0; i < Tqp; i++) {
        double dot = 0.0;
        if (i < Tq) {
            const ATT_T *q = Q + i * HD, *dy = dY + i * HDv, *y = Yin + i * HDv;
            ATT_T *qs = Qs + i * D, *dyr = dYr + i * Dv;
            if (i + 4 < Tq) {
                __builtin_prefetch(q + 4 * HD);
                __builtin_prefetch(dy + 4 * HDv);
                __builtin_prefetch(y + 4 * HDv);
            }
#pragma omp simd
            for (d = 0; d < D; d++) {
                qs[d] = sc * q[d];
            }
#pragma omp simd reduction(+ : dot)
            for (d = 0; d < Dv; d++) {
                dyr[d] = dy[d];
                dot += (double)dy[d] * (double)y[d];
            }
            shift[i] = lse_in[i];
        }
        else {
            memset(Qs + i * D, 0, (size_t)D * sizeof(ATT_T));
            memset(dYr + i * Dv, 0, (size_t)Dv * sizeof(ATT_T));
            shift[i] = 0;
        }
        memset(dQs + i * D, 0, (size_t)D * sizeof(ATT_T));
        mul[i] = 1;
        delta[i] = (ATT_T)dot;
    }
    for (j = 0; j < ATT_BK; j++) {
        row[j] = 0;
    }
    /* Which rows have an allowed key; each query block whether all do. A row
     * with none gets shift = its max, mul = its sum (inverted below). */
    for (i0 = 0; i0 < Tq; i0 += ATT_BQ) {
        const int64_t nq = ATT_MIN((int64_t)ATT_BQ, Tq - i0);
        const uint8_t *am = c->amask == NULL ? NULL : c->amask + (n * Tq + i0) * Tk;
        blk_ok[i0 / ATT_BQ] =
            (uint8_t)FN(live_rows)(qok + i0, live + i0, p, qm, km, am, i0, nq);
        for (i = 0; i < nq; i++) {
            if (!live[i0 + i]) {
                shift[i0 + i] = neg_inf;
                mul[i0 + i] = 0;
                any_dead = 1;
            }
        }
    }

    /* Extra passes over the scores: the dead rows' softmax statistics, then
     * delta += rowsum(p * dprobs). */
    for (int pass = 0; pass < 2; pass++) {
        if ((pass == 0 && !any_dead) || (pass == 1 && dprobs == NULL)) {
            continue;
        }
        for (j0 = 0; j0 < Tk; j0 += ATT_BK) {
            const int64_t nk = ATT_MIN((int64_t)ATT_BK, Tk - j0);
            FN(pack_keys)(Kt, Vt, Kp, kok, K, Vm, km, j0, nk, D, Dv, HD, HDv);
            for (i0 = 0; i0 < Tq; i0 += ATT_BQ) {
                const int64_t nq = ATT_MIN((int64_t)ATT_BQ, Tq - i0), qb = i0 / ATT_BQ;
                const uint8_t *am = c->amask == NULL ? NULL : c->amask + (n * Tq + i0) * Tk;
                if (blk_ok[qb] && (pass == 0 || (p->causal && j0 > i0 + nq - 1))) {
                    continue;
                }
                FN(mm)(S, ATT_BK, Qs + i0 * D, D, 1, Kt, ATT_BK, nq, ATT_BK, D, 0, NULL);
                if (masked || (p->causal && j0 + nk - 1 > i0)) {
                    FN(mask_rows)(S, nq, nk, i0, j0, qok + i0, kok, am, Tk, p->causal);
                }
                for (i = 0; i < nq; i++) {
                    const ATT_T *s = S + i * ATT_BK;
                    const int64_t r = i0 + i;
                    if (pass == 0) {
                        ATT_T mx = shift[r], sum = 0;
                        if (live[r]) {
                            continue;
                        }
                        for (j = 0; j < nk; j++) {
                            mx = s[j] > mx ? s[j] : mx;
                        }
#pragma omp simd reduction(+ : sum)
                        for (j = 0; j < nk; j++) {
                            sum += ATT_EXP(s[j] - mx);
                        }
                        mul[r] = mul[r] * ATT_EXP(shift[r] - mx) + sum;
                        shift[r] = mx;
                    }
                    else {
                        const ATT_T *dpr = dprobs + r * Tk + j0;
                        const ATT_T si = shift[r], mi = mul[r];
                        ATT_T acc = 0;
#pragma omp simd reduction(+ : acc)
                        for (j = 0; j < nk; j++) {
                            acc += (ATT_EXP(s[j] - si) * mi) * dpr[j];
                        }
                        delta[r] += acc;
                    }
                }
            }
        }
        if (pass == 0) {
            for (i = 0; i < Tq; i++) {
                if (!live[i]) {
                    mul[i] = (ATT_T)1 / mul[i];
                }
            }
        }
    }

    for (j0 = 0; j0 < Tk; j0 += ATT_BK) {
        const int64_t nk = ATT_MIN((int64_t)ATT_BK, Tk - j0);
        int first = 1;
        FN(pack_keys)(Kt, Vt, Kp, kok, K, Vm, km, j0, nk, D, Dv, HD, HDv);
        for (i0 = 0; i0 < Tq; i0 += ATT_BQ) {
            const int64_t nq = ATT_MIN((int64_t)ATT_BQ, Tq - i0);
            const uint8_t *am = c->amask == NULL ? NULL : c->amask + (n * Tq + i0) * Tk;
            if (p->causal && j0 > i0 + nq - 1 && blk_ok[i0 / ATT_BQ]) {
                continue; /* wholly in this query block's future */
            }
            FN(mm)(S, ATT_BK, Qs + i0 * D, D, 1, Kt, ATT_BK, nq, ATT_BK, D, 0, NULL);
            if (masked || (p->causal && j0 + nk - 1 > i0)) {
                FN(mask_rows)(S, nq, nk, i0, j0, qok + i0, kok, am, Tk, p->causal);
            }
            FN(mm)(dP, ATT_BK, dYr + i0 * Dv, Dv, 1, Vt, ATT_BK, nq, ATT_BK, Dv, 0, NULL);
            for (i = 0; i < nq; i++) {
                const int64_t r = i0 + i;
                const ATT_T si = shift[r], mi = mul[r], de = delta[r];
                ATT_T *s = S + i * ATT_BK, *dp = dP + i * ATT_BK;
                const ATT_T *dpr = row; /* zeros without dprobs */
                int jl;
                if (dprobs != NULL) {
                    dpr = dprobs + r * Tk + j0;
                    if (nk < ATT_BK) {
                        /* a padded copy: the lanes past nk must not read past the row */
                        for (j = 0; j < nk; j++) {
                            row[j] = dpr[j];
                        }
                        for (; j < ATT_BK; j++) {
                            row[j] = 0;
                        }
                        dpr = row;
                    }
                }
                if (p->threshold) {
                    const uint64_t b = (uint64_t)((bh * Tq + r) * Tk + j0) + 1u;
                    const uint64_t th = p->threshold;
#pragma omp simd
                    for (jl = 0; jl < ATT_BK; jl++) {
                        const ATT_T kf = fnn_att_draw(key, b + (uint64_t)jl) >= th ? ks
                                                                                   : (ATT_T)0;
                        ATT_T pe, g;
                        pe = ATT_EXP(s[jl] - si) * mi;
                        g = dp[jl] * kf + dpr[jl];
                        dp[jl] = pe * (g - de);
                        s[jl] = pe * kf;
                    }
                }
                else if (dprobs != NULL) {
#pragma omp simd
                    for (jl = 0; jl < ATT_BK; jl++) {
                        const ATT_T pe = ATT_EXP(s[jl] - si) * mi;
                        dp[jl] = pe * ((dp[jl] + dpr[jl]) - de);
                        s[jl] = pe;
                    }
                }
                else {
#pragma omp simd
                    for (jl = 0; jl < ATT_BK; jl++) {
                        const ATT_T pe = ATT_EXP(s[jl] - si) * mi;
                        dp[jl] = pe * (dp[jl] - de);
                        s[jl] = pe;
                    }
                }
            }
            /* The first contribution overwrites the block's dK^T, dV^T. */
            FN(mm)(dVt, ATT_BK, dYr + i0 * Dv, 1, Dv, S, ATT_BK, Dv, ATT_BK, nq, !first, NULL);
            FN(mm)(dKt, ATT_BK, Qs + i0 * D, 1, D, dP, ATT_BK, D, ATT_BK, nq, !first, NULL);
            FN(mm)(dQs + i0 * D, D, dP, ATT_BK, 1, Kp, D, nq, D, nk, 1, NULL);
            first = 0;
        }
        if (first) {
            /* no query block saw these keys (causal): their gradients are 0 */
            memset(dKt, 0, (size_t)(D * ATT_BK) * sizeof(ATT_T));
            memset(dVt, 0, (size_t)(Dv * ATT_BK) * sizeof(ATT_T));
        }
        FN(transpose)(dK + j0 * HD, HD, dKt, ATT_BK, D, nk, 1);
        FN(transpose)(dV + j0 * HDv, HDv, dVt, ATT_BK, Dv, nk, 1);
    }
    for (i = 0; i < Tq; i++) {
        ATT_T *dq = dQ + i * HD;
        const ATT_T *g = dQs + i * D;
#pragma omp simd
        for (d = 0; d < D; d++) {
            dq[d] = sc * g[d];
        }
    }
}

#undef FN
#undef ATT_XPASTE3
#undef ATT_PASTE3
#undef ATT_MR_OF
