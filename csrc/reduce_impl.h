/*
 * reduce_impl.h -- the reductions of elementwise.c (binary gradients,
 * sum_to_shape, reduce and its backward), written once over an element
 * type. Private to elementwise.c, which includes it once per type right
 * after elementwise_impl.h, with the same FNN_T, FNN_BITS, FNN_EW_SFX and
 * FNN_M defined. No include guard: being included twice is the point.
 *
 * Every reduction is "out (laid out by so) = the combination, over the axes
 * so is 0 along, of term(dy, a, b)", dy C-contiguous of the full shape and a,
 * b read through their strides; the plan and the odometers are in
 * elementwise.c. The term, the combination (sum / max / min) and the inner
 * strides are arguments of always-inline functions, and each call site
 * passes constants, so each case is one straight loop.
 */
#define FNN_EW_PASTE2(name, sfx) name##_##sfx
#define FNN_EW_PASTE(name, sfx) FNN_EW_PASTE2(name, sfx)
#define FN(name) FNN_EW_PASTE(name, FNN_EW_SFX)

/* The rounding sequence of each term matches NumpyOps' expression. */
static FNN_EW_INLINE FNN_T FN(term)(const int term, const FNN_T dy, const FNN_T a,
                                    const FNN_T b)
{
    switch (term) {
    case TERM_DY:
        return dy;
    case TERM_NEG_DY:
        return -dy;
    case TERM_DY_B:
        return dy * b;
    case TERM_DY_A:
        return dy * a;
    case TERM_DY_OVER_B:
        return dy / b;
    case TERM_DIVIDE_B:
        return (-dy * a) / (b * b);
    case TERM_A_GE_B:
        return FN(keep_if)(a >= b, dy);
    case TERM_A_NOT_GE_B:
        return FN(keep_if)(!(a >= b), dy);
    case TERM_A_LE_B:
        return FN(keep_if)(a <= b, dy);
    case TERM_A_NOT_LE_B:
        return FN(keep_if)(!(a <= b), dy);
    case TERM_POW_A:
        return (dy * b) * FNN_M(pow)(a, b - (FNN_T)1);
    /* log(a) is NaN or -inf where a <= 0: the mask drops it (TF's rule). */
    case TERM_POW_B:
        return FN(keep_if)(a > 0, (dy * FNN_M(pow)(a, b)) * FNN_M(log)(a));
    case TERM_EQ:
        return (FNN_T)(dy == a);
    case TERM_EQ_B:
        return FN(keep_if)(dy == a, b);
    default:
        return (FNN_T)0;
    }
}

static int FN(term_is_transcendental)(int term)
{
    return term == TERM_POW_A || term == TERM_POW_B;
}

/* ---- results that reduce nothing: element-wise ------------------------------- */

/* The gradient of an operand with the output's shape sums one term per
 * element: out[i] = term(dy[i], a, b) directly (the same value the
 * accumulators would give, a single term being exact in double). out may be
 * dy or b (same index). */
static FNN_EW_INLINE void FN(map_loop)(const int term, FNN_T *out, const FNN_T *dy,
                                       const FNN_T *a, const FNN_T *b, int64_t n,
                                       const int64_t sa, const int64_t sb)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        out[i] = FN(term)(term, dy[i], a[i * sa], b[i * sb]);
    }
}

static FNN_EW_INLINE void FN(map_row)(const int term, FNN_T *out, const FNN_T *dy,
                                      const FNN_T *a, const FNN_T *b, int64_t n, int64_t sa,
                                      int64_t sb)
{
    if (sa == 1 && sb == 1) {
        FN(map_loop)(term, out, dy, a, b, n, 1, 1);
    }
    else if (sa == 1 && sb == 0) {
        FN(map_loop)(term, out, dy, a, b, n, 1, 0);
    }
    else if (sa == 0 && sb == 1) {
        FN(map_loop)(term, out, dy, a, b, n, 0, 1);
    }
    else {
        FN(map_loop)(term, out, dy, a, b, n, sa, sb);
    }
}

/* Output elements [lo, hi) of a gradient with the output's shape (out and dY
 * share the C-contiguous layout; A and B are read through their strides). */
static FNN_EW_INLINE void FN(map_range_term)(const int term, FNN_T *out, const FNN_T *dy,
                                             const FNN_T *A, const FNN_T *B, int ndim,
                                             const int64_t *shape, const int64_t *as,
                                             const int64_t *bs, int64_t lo, int64_t hi)
{
    const int64_t L = shape[ndim - 1], sa = as[ndim - 1], sb = bs[ndim - 1];
    int64_t idx[FNN_MAX_DIMS], oa, ob;
    int64_t pos = lo, j = lo % L;

    seek_row(ndim, shape, as, bs, lo / L, idx, &oa, &ob);
    while (pos < hi) {
        const int64_t len = min64(L - j, hi - pos);
        FN(map_row)(term, out + pos, dy + pos, A + oa + j * sa, B + ob + j * sb, len, sa, sb);
        pos += len;
        j = 0;
        next_row(ndim, shape, as, bs, idx, &oa, &ob);
    }
}

static void FN(map_range)(int term, FNN_T *out, const FNN_T *dy, const FNN_T *A,
                          const FNN_T *B, int ndim, const int64_t *shape, const int64_t *as,
                          const int64_t *bs, int64_t lo, int64_t hi)
{
    switch (term) {
    case TERM_DY:
        FN(map_range_term)(TERM_DY, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_NEG_DY:
        FN(map_range_term)(TERM_NEG_DY, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_DY_B:
        FN(map_range_term)(TERM_DY_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_DY_A:
        FN(map_range_term)(TERM_DY_A, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_DY_OVER_B:
        FN(map_range_term)(TERM_DY_OVER_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_DIVIDE_B:
        FN(map_range_term)(TERM_DIVIDE_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_A_GE_B:
        FN(map_range_term)(TERM_A_GE_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_A_NOT_GE_B:
        FN(map_range_term)(TERM_A_NOT_GE_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_A_LE_B:
        FN(map_range_term)(TERM_A_LE_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_A_NOT_LE_B:
        FN(map_range_term)(TERM_A_NOT_LE_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_POW_A:
        FN(map_range_term)(TERM_POW_A, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_POW_B:
        FN(map_range_term)(TERM_POW_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_EQ:
        FN(map_range_term)(TERM_EQ, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case TERM_EQ_B:
        FN(map_range_term)(TERM_EQ_B, out, dy, A, B, ndim, shape, as, bs, lo, hi);
        break;
    default:
        break;
    }
}

/* ---- reductions: the accumulator loops ------------------------------------------ */

/* acc[j] = comb(acc[j], term(dy[j], a[j*sa], b[j*sb])), j < w: one row segment
 * into the column accumulators (inner axis kept). */
static FNN_EW_INLINE void FN(acc_loop)(const int term, const int comb, double *acc,
                                       const FNN_T *dy, const FNN_T *a, const FNN_T *b,
                                       int64_t w, const int64_t sa, const int64_t sb)
{
    #pragma omp simd
    for (int64_t j = 0; j < w; j++) {
        acc[j] = comb_apply(comb, acc[j], (double)FN(term)(term, dy[j], a[j * sa], b[j * sb]));
    }
}

static FNN_EW_INLINE void FN(acc_row)(const int term, const int comb, double *acc,
                                      const FNN_T *dy, const FNN_T *a, const FNN_T *b,
                                      int64_t w, int64_t sa, int64_t sb)
{
    if (sa == 1 && sb == 1) {
        FN(acc_loop)(term, comb, acc, dy, a, b, w, 1, 1);
    }
    else if (sa == 1 && sb == 0) {
        FN(acc_loop)(term, comb, acc, dy, a, b, w, 1, 0);
    }
    else if (sa == 0 && sb == 1) {
        FN(acc_loop)(term, comb, acc, dy, a, b, w, 0, 1);
    }
    else {
        FN(acc_loop)(term, comb, acc, dy, a, b, w, sa, sb);
    }
}

/* acc[j] combined with the terms of RED_GROUP row segments, in segment
 * order: the same operations as RED_GROUP acc_loop calls, with one load and
 * store of acc[j] instead of RED_GROUP (the accumulators' traffic bounds
 * that loop). */
static FNN_EW_INLINE void FN(acc_group_loop)(const int term, const int comb, double *acc,
                                             const FNN_T *const *d, const FNN_T *const *a,
                                             const FNN_T *const *b, int64_t w,
                                             const int64_t sa, const int64_t sb)
{
    const FNN_T *d0 = d[0], *d1 = d[1], *d2 = d[2], *d3 = d[3];
    const FNN_T *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    const FNN_T *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    #pragma omp simd
    for (int64_t j = 0; j < w; j++) {
        double s = acc[j];
        s = comb_apply(comb, s, (double)FN(term)(term, d0[j], a0[j * sa], b0[j * sb]));
        s = comb_apply(comb, s, (double)FN(term)(term, d1[j], a1[j * sa], b1[j * sb]));
        s = comb_apply(comb, s, (double)FN(term)(term, d2[j], a2[j * sa], b2[j * sb]));
        s = comb_apply(comb, s, (double)FN(term)(term, d3[j], a3[j * sa], b3[j * sb]));
        acc[j] = s;
    }
}

static FNN_EW_INLINE void FN(acc_group_row)(const int term, const int comb, double *acc,
                                            const FNN_T *const *d, const FNN_T *const *a,
                                            const FNN_T *const *b, int64_t w, int64_t sa,
                                            int64_t sb)
{
    if (sa == 1 && sb == 1) {
        FN(acc_group_loop)(term, comb, acc, d, a, b, w, 1, 1);
    }
    else if (sa == 1 && sb == 0) {
        FN(acc_group_loop)(term, comb, acc, d, a, b, w, 1, 0);
    }
    else if (sa == 0 && sb == 1) {
        FN(acc_group_loop)(term, comb, acc, d, a, b, w, 0, 1);
    }
    else {
        FN(acc_group_loop)(term, comb, acc, d, a, b, w, sa, sb);
    }
}

/* lane[j % 8] = comb(lane[j % 8], term(dy[j], a[j*sa], b[j*sb])), j < L: one
 * contiguous run reduced into the lanes (inner axis reduced). The lane of a
 * term depends on j alone, so the combination's grouping is fixed by the
 * shape. */
static FNN_EW_INLINE void FN(lane_loop)(const int term, const int comb, double *lane,
                                        const FNN_T *dy, const FNN_T *a, const FNN_T *b,
                                        int64_t L, const int64_t sa, const int64_t sb)
{
    int64_t j = 0;
    for (; j + RED_LANES <= L; j += RED_LANES) {
        #pragma omp simd
        for (int l = 0; l < RED_LANES; l++) {
            lane[l] = comb_apply(comb, lane[l], (double)FN(term)(term, dy[j + l],
                                                                 a[(j + l) * sa],
                                                                 b[(j + l) * sb]));
        }
    }
    for (int l = 0; j + l < L; l++) {
        lane[l] = comb_apply(comb, lane[l], (double)FN(term)(term, dy[j + l], a[(j + l) * sa],
                                                             b[(j + l) * sb]));
    }
}

static FNN_EW_INLINE void FN(lane_row)(const int term, const int comb, double *lane,
                                       const FNN_T *dy, const FNN_T *a, const FNN_T *b,
                                       int64_t L, int64_t sa, int64_t sb)
{
    if (sa == 1 && sb == 1) {
        FN(lane_loop)(term, comb, lane, dy, a, b, L, 1, 1);
    }
    else if (sa == 1 && sb == 0) {
        FN(lane_loop)(term, comb, lane, dy, a, b, L, 1, 0);
    }
    else if (sa == 0 && sb == 1) {
        FN(lane_loop)(term, comb, lane, dy, a, b, L, 0, 1);
    }
    else {
        FN(lane_loop)(term, comb, lane, dy, a, b, L, sa, sb);
    }
}

/* ---- reductions: the work units --------------------------------------------------- */

/* Unit u of a reduction whose inner axis is kept: kept rows [r0, r1) times
 * columns [c0, c0 + w); each row's columns combine the reduced axes in C order. */
static FNN_EW_INLINE void FN(unit_kept_term)(const int term, const int comb, FNN_T *out,
                                             const FNN_T *dy, const FNN_T *a, const FNN_T *b,
                                             const reduce_plan *p, int64_t u)
{
    const int in = p->nd - 1;
    const int64_t so = p->st[S_OUT][in], sa = p->st[S_A][in], sb = p->st[S_B][in];
    const int64_t c0 = (u % p->ncb) * p->cols, w = min64(p->cols, p->L - c0);
    const int64_t r0 = u / p->ncb * p->rows, r1 = min64(r0 + p->rows, p->nkept);
    double acc[RED_COLS];
    int64_t kidx[FNN_MAX_DIMS], ridx[FNN_MAX_DIMS], off[S_COUNT], roff[S_COUNT];

    seek_kept(p, r0, kidx, off);
    for (int r = 0; r < p->nr; r++) {
        ridx[r] = 0;
    }
    for (int64_t row = r0; row < r1; row++) {
        FNN_T *o = out + off[S_OUT] + c0 * so;
        int more = 1;
        for (int64_t j = 0; j < w; j++) {
            acc[j] = comb_init(comb);
        }
        memcpy(roff, off, sizeof(roff));
        while (more) {
            /* The next RED_GROUP reduced positions (fewer at the end). */
            const FNN_T *pd[RED_GROUP], *pa[RED_GROUP], *pb[RED_GROUP];
            int m = 0;
            do {
                pd[m] = dy + roff[S_DY] + c0;
                pa[m] = a + roff[S_A] + c0 * sa;
                pb[m] = b + roff[S_B] + c0 * sb;
                m++;
                more = next_reduced(p, ridx, roff);
            } while (more && m < RED_GROUP);
            if (m == RED_GROUP) {
                FN(acc_group_row)(term, comb, acc, pd, pa, pb, w, sa, sb);
            }
            else {
                for (int i = 0; i < m; i++) {
                    FN(acc_row)(term, comb, acc, pd[i], pa[i], pb[i], w, sa, sb);
                }
            }
        }
        for (int64_t j = 0; j < w; j++) {
            o[j * so] = (FNN_T)(acc[j] / p->div);
        }
        next_kept(p, kidx, off);
    }
}

/* Unit u of a reduction whose inner axis is reduced: elements [e0, e1) of the
 * out array, each the lane combination of its runs, the reduced outer axes in
 * C order. */
static FNN_EW_INLINE void FN(unit_summed_term)(const int term, const int comb, FNN_T *out,
                                               const FNN_T *dy, const FNN_T *a, const FNN_T *b,
                                               const reduce_plan *p, int64_t u)
{
    const int in = p->nd - 1;
    const int64_t sa = p->st[S_A][in], sb = p->st[S_B][in];
    const int64_t e0 = u * p->rows, e1 = min64(e0 + p->rows, p->nkept);
    int64_t kidx[FNN_MAX_DIMS], ridx[FNN_MAX_DIMS], off[S_COUNT], roff[S_COUNT];

    seek_kept(p, e0, kidx, off);
    for (int r = 0; r < p->nr; r++) {
        ridx[r] = 0;
    }
    for (int64_t e = e0; e < e1; e++) {
        double lane[RED_LANES];
        for (int l = 0; l < RED_LANES; l++) {
            lane[l] = comb_init(comb);
        }
        memcpy(roff, off, sizeof(roff));
        do {
            FN(lane_row)(term, comb, lane, dy + roff[S_DY], a + roff[S_A], b + roff[S_B], p->L,
                         sa, sb);
        } while (next_reduced(p, ridx, roff));
        out[off[S_OUT]] = (FNN_T)(comb_apply(comb,
                                             comb_apply(comb, comb_apply(comb, lane[0], lane[1]),
                                                        comb_apply(comb, lane[2], lane[3])),
                                             comb_apply(comb, comb_apply(comb, lane[4], lane[5]),
                                                        comb_apply(comb, lane[6], lane[7])))
                                  / p->div);
        next_kept(p, kidx, off);
    }
}

static FNN_EW_INLINE void FN(unit_term)(const int term, const int comb, FNN_T *out,
                                        const FNN_T *dy, const FNN_T *a, const FNN_T *b,
                                        const reduce_plan *p, int64_t u)
{
    if (p->inner_kept) {
        FN(unit_kept_term)(term, comb, out, dy, a, b, p, u);
    }
    else {
        FN(unit_summed_term)(term, comb, out, dy, a, b, p, u);
    }
}

/* Sums of every term but TERM_EQ_B (element-wise only); max / min of dy. */
static void FN(unit)(int term, int comb, FNN_T *out, const FNN_T *dy, const FNN_T *a,
                     const FNN_T *b, const reduce_plan *p, int64_t u)
{
    if (comb == COMB_MAX) {
        FN(unit_term)(TERM_DY, COMB_MAX, out, dy, a, b, p, u);
        return;
    }
    if (comb == COMB_MIN) {
        FN(unit_term)(TERM_DY, COMB_MIN, out, dy, a, b, p, u);
        return;
    }
    switch (term) {
    case TERM_DY:
        FN(unit_term)(TERM_DY, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_NEG_DY:
        FN(unit_term)(TERM_NEG_DY, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_DY_B:
        FN(unit_term)(TERM_DY_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_DY_A:
        FN(unit_term)(TERM_DY_A, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_DY_OVER_B:
        FN(unit_term)(TERM_DY_OVER_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_DIVIDE_B:
        FN(unit_term)(TERM_DIVIDE_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_A_GE_B:
        FN(unit_term)(TERM_A_GE_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_A_NOT_GE_B:
        FN(unit_term)(TERM_A_NOT_GE_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_A_LE_B:
        FN(unit_term)(TERM_A_LE_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_A_NOT_LE_B:
        FN(unit_term)(TERM_A_NOT_LE_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_POW_A:
        FN(unit_term)(TERM_POW_A, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_POW_B:
        FN(unit_term)(TERM_POW_B, COMB_SUM, out, dy, a, b, p, u);
        break;
    case TERM_EQ:
        FN(unit_term)(TERM_EQ, COMB_SUM, out, dy, a, b, p, u);
        break;
    default:
        break;
    }
}

static void FN(map_elems)(const ew_call *c, int64_t lo, int64_t hi)
{
    FN(map_range)(c->op, (FNN_T *)c->out, (const FNN_T *)c->c, (const FNN_T *)c->a,
                  (const FNN_T *)c->b, c->ndim, c->shape, c->sa, c->sb, lo, hi);
}

typedef struct {
    int term, comb;
    FNN_T *out;
    const FNN_T *dy, *a, *b;
    const reduce_plan *p;
} FN(unit_call);

static int FN(units)(void *ctx, int64_t first, int64_t last, int slot)
{
    const FN(unit_call) *c = (const FN(unit_call) *)ctx;
    (void)slot;
    for (int64_t u = first; u < last; u++) {
        FN(unit)(c->term, c->comb, c->out, c->dy, c->a, c->b, c->p, u);
    }
    return FNN_OK;
}

/* out (strides so) = the combination (comb; sums divided by div) of
 * term(dY, A, B) over the axes where so is 0. The units are independent and
 * each is computed the same way by any thread. */
static void FN(reduce)(int term, int comb, double div, FNN_T *out, const FNN_T *dy,
                       const FNN_T *a, const int64_t *sa, const FNN_T *b, const int64_t *sb,
                       int ndim, const int64_t *shape, const int64_t *so, int64_t n,
                       int nthreads)
{
    reduce_plan p;

    if (sums_nothing(ndim, shape, so)) {
        /* One term per element: its own value (div is 1 here). */
        const ew_call c = {.range = FN(map_elems), .op = term, .out = out, .a = a, .b = b,
                           .c = dy, .ndim = ndim, .shape = shape, .sa = sa, .sb = sb};
        run_elements(&c, n, FN(term_is_transcendental)(term), nthreads);
        return;
    }
    plan_reduce(&p, ndim, shape, so, sa, sb, div);
    {
        const FN(unit_call) c = {.term = term, .comb = comb, .out = out, .dy = dy, .a = a,
                                 .b = b, .p = &p};
        fnn_run_units(p.nunits,
                      fnn_threads_for((double)n, ew_grain(FN(term_is_transcendental)(term)),
                                      p.nunits, nthreads),
                      FN(units), (void *)&c);
    }
}

/* ---- entry points ------------------------------------------------------------------- */

/* dA (strides as) and dB (strides bs), either may be NULL, from dY[shape]. */
int FN(fnn_binary_backward)(FNN_T *dA, FNN_T *dB, const FNN_T *dY, const FNN_T *A,
                            const FNN_T *B, int ndim, const int64_t *shape, const int64_t *as,
                            const int64_t *bs, int op, int nthreads)
{
    const int64_t *ra = as, *rb = bs;
    int64_t n;
    int status = check_layout(ndim, shape, &n);

    if (status != FNN_OK) {
        return status;
    }
    if (op < 0 || op >= FNN_BINARY_COUNT || dY == NULL || as == NULL || bs == NULL) {
        return FNN_ERR_ARG;
    }
    if (op == FNN_BINARY_ADD || op == FNN_BINARY_SUBTRACT) {
        /* A and B are not read (and may be NULL): point them at dY. */
        A = dY;
        B = dY;
        ra = zero_strides;
        rb = zero_strides;
    }
    else if (A == NULL || B == NULL) {
        return FNN_ERR_ARG;
    }
    if (dA != NULL) {
        FN(reduce)(binary_terms[op][0], COMB_SUM, 1.0, dA, dY, A, ra, B, rb, ndim, shape, as, n,
                   nthreads);
    }
    if (dB != NULL) {
        FN(reduce)(binary_terms[op][1], COMB_SUM, 1.0, dB, dY, A, ra, B, rb, ndim, shape, bs, n,
                   nthreads);
    }
    return FNN_OK;
}

/* Y (strides ys) = op of X[shape] over the axes where ys is 0. */
int FN(fnn_reduce)(FNN_T *Y, const FNN_T *X, int ndim, const int64_t *shape, const int64_t *ys,
                   int op, int nthreads)
{
    static const int combs[FNN_REDUCE_COUNT] = {COMB_SUM, COMB_SUM, COMB_MAX, COMB_MIN};
    int64_t n;
    int status = check_layout(ndim, shape, &n);

    if (status != FNN_OK) {
        return status;
    }
    if (Y == NULL || X == NULL || ys == NULL || op < 0 || op >= FNN_REDUCE_COUNT) {
        return FNN_ERR_ARG;
    }
    FN(reduce)(TERM_DY, combs[op],
               op == FNN_REDUCE_MEAN ? (double)reduced_count(ndim, shape, ys) : 1.0, Y, X, X,
               zero_strides, X, zero_strides, ndim, shape, ys, n, nthreads);
    return FNN_OK;
}

/* Y (strides ys) = X[shape] summed over the axes where ys is 0. */
int FN(fnn_sum_to_shape)(FNN_T *Y, const FNN_T *X, int ndim, const int64_t *shape,
                         const int64_t *ys, int nthreads)
{
    return FN(fnn_reduce)(Y, X, ndim, shape, ys, FNN_REDUCE_SUM, nthreads);
}

/* dX[shape] from dY (strides ys) for Y = op of X over the axes where ys is 0. */
int FN(fnn_reduce_backward)(FNN_T *dX, const FNN_T *dY, const FNN_T *X, const FNN_T *Y,
                            int ndim, const int64_t *shape, const int64_t *ys, int op,
                            int nthreads)
{
    int64_t n, count, ny;
    int64_t xs[FNN_MAX_DIMS];
    static const int64_t unit_stride[1] = {1};
    FNN_T *share;
    int status = check_layout(ndim, shape, &n);

    if (status != FNN_OK) {
        return status;
    }
    if (dX == NULL || dY == NULL || ys == NULL || op < 0 || op >= FNN_REDUCE_COUNT) {
        return FNN_ERR_ARG;
    }
    count = reduced_count(ndim, shape, ys);
    if (op == FNN_REDUCE_SUM || op == FNN_REDUCE_MEAN) {
        /* dY broadcast back, times 1 or divided by the count: the binary
         * forward pass with a scalar B. */
        const FNN_T c = op == FNN_REDUCE_SUM ? (FNN_T)1 : (FNN_T)count;
        return FN(fnn_binary_forward)(dX, dY, &c, ndim, shape, ys, zero_strides,
                                      op == FNN_REDUCE_SUM ? FNN_BINARY_MULTIPLY
                                                           : FNN_BINARY_DIVIDE, nthreads);
    }
    if (X == NULL || Y == NULL) {
        return FNN_ERR_ARG;
    }
    /* max / min: share[k] = the number of X equal to Y[k] in its reduction,
     * then dY[k] / share[k] (in place), then dX = X == Y ? share : 0. Where Y
     * is NaN no X equals it and dX is 0 (share's inf or NaN is never read). */
    ny = n / count;
    share = (FNN_T *)malloc((size_t)ny * sizeof(FNN_T));
    if (share == NULL) {
        return FNN_ERR_NOMEM;
    }
    contiguous_strides(ndim, shape, xs);
    FN(reduce)(TERM_EQ, COMB_SUM, 1.0, share, X, Y, ys, X, zero_strides, ndim, shape, ys, n,
               nthreads);
    FN(reduce)(TERM_DY_OVER_B, COMB_SUM, 1.0, share, dY, dY, zero_strides, share, unit_stride,
               1, &ny, unit_stride, ny, nthreads);
    FN(reduce)(TERM_EQ_B, COMB_SUM, 1.0, dX, X, Y, ys, share, ys, ndim, shape, xs, n,
               nthreads);
    free(share);
    return FNN_OK;
}

#undef FN
#undef FNN_EW_PASTE
#undef FNN_EW_PASTE2
