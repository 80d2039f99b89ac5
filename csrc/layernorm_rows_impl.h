/*
 * layernorm_rows_impl.h -- the per-row loops of layernorm.c, written once over
 * an element type and compiled once per ISA (layernorm_rows.h says why every
 * build gives the same values). Included with FNN_T (float or double),
 * FNN_LN_SFX (f32 or f64) and FNN_LN_ISA (generic, avx2, avx512) defined,
 * after layernorm_rows.h and <math.h>. No include guard.
 *
 * The per-row helpers are always_inline with constant flags (gamma present,
 * dX wanted, column sums wanted), so each combination compiles to its own
 * branch-free vector loops.
 */
#define FNN_LN_PASTE2(name, sfx) name##_##sfx
#define FNN_LN_PASTE(name, sfx) FNN_LN_PASTE2(name, sfx)
#define FN(name) FNN_LN_PASTE(name, FNN_LN_SFX)
#define FNL(name) FNN_LN_PASTE(FNN_LN_PASTE(name, FNN_LN_SFX), FNN_LN_ISA)

/* ---- forward ----------------------------------------------------------------- */

/* One row's statistics, x[0..C), C >= 1: *mean and *rstd rounded to FNN_T
 * (RMS: mean 0 and rstd from the mean square). One pass, in double lanes,
 * shifted by x[0] (layer norm) so a common offset cancels exactly. */
static FNN_LN_INLINE void FN(ln_row_stats)(FNN_T *mean, FNN_T *rstd, const FNN_T *x, int64_t C,
                                           double eps, const int rms)
{
    double s1[LN_LANES] = {0.0}, s2[LN_LANES] = {0.0};
    double mu = 0.0, ms;
    int64_t j = 0;

    if (rms) {
        for (; j + LN_LANES <= C; j += LN_LANES) {
            #pragma omp simd
            for (int l = 0; l < LN_LANES; l++) {
                const double v = (double)x[j + l];
                s2[l] += v * v;
            }
        }
        for (int l = 0; j + l < C; l++) {
            const double v = (double)x[j + l];
            s2[l] += v * v;
        }
        ms = ln_lane_total(s2) / (double)C;
    }
    else {
        const double shift = (double)x[0];
        double d1;
        for (; j + LN_LANES <= C; j += LN_LANES) {
            #pragma omp simd
            for (int l = 0; l < LN_LANES; l++) {
                const double d = (double)x[j + l] - shift;
                s1[l] += d;
                s2[l] += d * d;
            }
        }
        for (int l = 0; j + l < C; l++) {
            const double d = (double)x[j + l] - shift;
            s1[l] += d;
            s2[l] += d * d;
        }
        d1 = ln_lane_total(s1) / (double)C;
        mu = shift + d1;
        ms = ln_lane_total(s2) / (double)C - d1 * d1;
        ms = ms < 0.0 ? 0.0 : ms;       /* rounding below 0; NaN stays NaN */
    }
    *mean = (FNN_T)mu;
    *rstd = (FNN_T)(1.0 / sqrt(ms + eps));
}

/* y[0..C) = ((x - m) * r) * gamma + beta (gamma, beta read when has_g / has_b).
 * y may equal x: each element is read before it is written. */
static FNN_LN_INLINE void FN(ln_row_normalize)(FNN_T *y, const FNN_T *x, FNN_T m, FNN_T r,
                                               const FNN_T *gamma, const FNN_T *beta,
                                               int64_t C, const int has_g, const int has_b)
{
    #pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        FNN_T v = (x[c] - m) * r;
        if (has_g) {
            v = v * gamma[c];
        }
        if (has_b) {
            v = v + beta[c];
        }
        y[c] = v;
    }
}

void FNL(fnn_ln_forward_rows)(FNN_T *Y, FNN_T *mean, FNN_T *rstd, const FNN_T *X,
                              const FNN_T *gamma, const FNN_T *beta, int64_t r0, int64_t r1,
                              int64_t C, double eps, int rms)
{
    for (int64_t r = r0; r < r1; r++) {
        const FNN_T *x = X + r * C;
        FNN_T *y = Y + r * C;
        FNN_T m, s;
        if (rms) {
            FN(ln_row_stats)(&m, &s, x, C, eps, 1);
        }
        else {
            FN(ln_row_stats)(&m, &s, x, C, eps, 0);
        }
        if (mean != NULL) {
            mean[r] = m;
        }
        if (rstd != NULL) {
            rstd[r] = s;
        }
        if (gamma != NULL && beta != NULL) {
            FN(ln_row_normalize)(y, x, m, s, gamma, beta, C, 1, 1);
        }
        else if (gamma != NULL) {
            FN(ln_row_normalize)(y, x, m, s, gamma, beta, C, 1, 0);
        }
        else if (beta != NULL) {
            FN(ln_row_normalize)(y, x, m, s, gamma, beta, C, 0, 1);
        }
        else {
            FN(ln_row_normalize)(y, x, m, s, gamma, beta, C, 0, 0);
        }
    }
}

/* ---- backward ---------------------------------------------------------------- */

/* One row's sums for its dx, with m, r its statistics (m = 0 for RMS),
 * xhat = (x - m) * r and g = dy * gamma (dy when !has_g), in double lanes:
 * *a = (T)(sum g / C) (0 for RMS), *b = (T)(sum g xhat / C). */
static FNN_LN_INLINE void FN(ln_row_sums)(FNN_T *a, FNN_T *b, const FNN_T *dy, const FNN_T *x,
                                          FNN_T m, FNN_T r, const FNN_T *gamma, int64_t C,
                                          int rms, const int has_g)
{
    double sg[LN_LANES] = {0.0}, sgx[LN_LANES] = {0.0};
    int64_t j = 0;
    for (; j + LN_LANES <= C; j += LN_LANES) {
        #pragma omp simd
        for (int l = 0; l < LN_LANES; l++) {
            const FNN_T xh = (x[j + l] - m) * r;
            const FNN_T g = has_g ? dy[j + l] * gamma[j + l] : dy[j + l];
            sg[l] += (double)g;
            sgx[l] += (double)g * (double)xh;
        }
    }
    for (int l = 0; j + l < C; l++) {
        const FNN_T xh = (x[j + l] - m) * r;
        const FNN_T g = has_g ? dy[j + l] * gamma[j + l] : dy[j + l];
        sg[l] += (double)g;
        sgx[l] += (double)g * (double)xh;
    }
    *a = rms ? (FNN_T)0 : (FNN_T)(ln_lane_total(sg) / (double)C);
    *b = (FNN_T)(ln_lane_total(sgx) / (double)C);
}

/* dx of one element: g = d * gm (d when !has_g), r * ((g - a) - xh * b). */
static FNN_LN_INLINE FNN_T FN(ln_dx)(FNN_T d, FNN_T xh, FNN_T gm, FNN_T a, FNN_T b, FNN_T r,
                                     const int has_g)
{
    const FNN_T g = has_g ? d * gm : d;
    return r * ((g - a) - xh * b);
}

/* One row r, with xhat = (x - m) * s its normalised input:
 *   want_dx: dx = s * ((g - a) - xhat * b) with ln_row_sums' a, b;
 *   cols:    cg[c] += dy xhat, cb[c] += dy (double).
 * dx may equal dy or x: the row's sums are finished before dx is written, and
 * each element is read before it is written. */
static FNN_LN_INLINE void FN(ln_row_backward)(FNN_T *dX, double *cg, double *cb,
                                              const FNN_T *dY, const FNN_T *X,
                                              const FNN_T *mean, const FNN_T *rstd,
                                              const FNN_T *gamma, int64_t r, int64_t C,
                                              int rms, const int has_g, const int want_dx,
                                              const int cols)
{
    const FNN_T *dy = dY + r * C, *x = X + r * C;
    FNN_T *dx = want_dx ? dX + r * C : NULL;
    const FNN_T m = rms ? (FNN_T)0 : mean[r], s = rstd[r];
    FNN_T a = 0, b = 0;

    if (want_dx) {
        FN(ln_row_sums)(&a, &b, dy, x, m, s, gamma, C, rms, has_g);
    }
    #pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        const FNN_T d = dy[c];
        const FNN_T h = (x[c] - m) * s;
        if (want_dx) {
            dx[c] = FN(ln_dx)(d, h, has_g ? gamma[c] : (FNN_T)0, a, b, s, has_g);
        }
        if (cols) {
            cg[c] += (double)d * (double)h;
            cb[c] += (double)d;
        }
    }
}

/* LN_GROUP = 4 rows r .. r + 3 walked together, as ln_row_backward each, so
 * the column sums are loaded and stored once per four rows: cg[c] += the
 * four rows' dy xhat, added in a fixed tree ((0 + 1) + (2 + 3)) first; cb
 * likewise. Plain scalars (no arrays) keep the loop vectorised. */
static FNN_LN_INLINE void FN(ln_quad_backward)(FNN_T *dX, double *cg, double *cb,
                                               const FNN_T *dY, const FNN_T *X,
                                               const FNN_T *mean, const FNN_T *rstd,
                                               const FNN_T *gamma, int64_t r, int64_t C,
                                               int rms, const int has_g, const int want_dx,
                                               const int cols)
{
    const FNN_T *dy0 = dY + r * C, *dy1 = dy0 + C, *dy2 = dy1 + C, *dy3 = dy2 + C;
    const FNN_T *x0 = X + r * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
    FNN_T *dx0 = want_dx ? dX + r * C : NULL;
    FNN_T *dx1 = want_dx ? dx0 + C : NULL, *dx2 = want_dx ? dx0 + 2 * C : NULL;
    FNN_T *dx3 = want_dx ? dx0 + 3 * C : NULL;
    const FNN_T m0 = rms ? (FNN_T)0 : mean[r], m1 = rms ? (FNN_T)0 : mean[r + 1];
    const FNN_T m2 = rms ? (FNN_T)0 : mean[r + 2], m3 = rms ? (FNN_T)0 : mean[r + 3];
    const FNN_T s0 = rstd[r], s1 = rstd[r + 1], s2 = rstd[r + 2], s3 = rstd[r + 3];
    FNN_T a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;

    if (want_dx) {
        FN(ln_row_sums)(&a0, &b0, dy0, x0, m0, s0, gamma, C, rms, has_g);
        FN(ln_row_sums)(&a1, &b1, dy1, x1, m1, s1, gamma, C, rms, has_g);
        FN(ln_row_sums)(&a2, &b2, dy2, x2, m2, s2, gamma, C, rms, has_g);
        FN(ln_row_sums)(&a3, &b3, dy3, x3, m3, s3, gamma, C, rms, has_g);
    }
    #pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        const FNN_T d0 = dy0[c], d1 = dy1[c], d2 = dy2[c], d3 = dy3[c];
        const FNN_T h0 = (x0[c] - m0) * s0, h1 = (x1[c] - m1) * s1;
        const FNN_T h2 = (x2[c] - m2) * s2, h3 = (x3[c] - m3) * s3;
        if (want_dx) {
            const FNN_T gm = has_g ? gamma[c] : (FNN_T)0;
            dx0[c] = FN(ln_dx)(d0, h0, gm, a0, b0, s0, has_g);
            dx1[c] = FN(ln_dx)(d1, h1, gm, a1, b1, s1, has_g);
            dx2[c] = FN(ln_dx)(d2, h2, gm, a2, b2, s2, has_g);
            dx3[c] = FN(ln_dx)(d3, h3, gm, a3, b3, s3, has_g);
        }
        if (cols) {
            cg[c] += ((double)d0 * (double)h0 + (double)d1 * (double)h1)
                     + ((double)d2 * (double)h2 + (double)d3 * (double)h3);
            cb[c] += ((double)d0 + (double)d1) + ((double)d2 + (double)d3);
        }
    }
}

void FNL(fnn_ln_backward_rows)(FNN_T *dX, double *cg, double *cb, const FNN_T *dY,
                               const FNN_T *X, const FNN_T *mean, const FNN_T *rstd,
                               const FNN_T *gamma, int64_t r0, int64_t r1, int64_t C, int rms)
{
    const int has_g = gamma != NULL, want_dx = dX != NULL, cols = cg != NULL;
    int64_t r = r0;

    if (cols) {
        for (int64_t c = 0; c < C; c++) {
            cg[c] = 0.0;
            cb[c] = 0.0;
        }
    }
    /* Groups of LN_GROUP rows from r0, then the rest one by one: fixed by the
     * chunk's rows alone. Each flag combination gets its own loops. */
#define LN_ROWS(fn, g, w, k) FN(fn)(dX, cg, cb, dY, X, mean, rstd, gamma, r, C, rms, g, w, k)
#define LN_DISPATCH(fn)                                                           \
    do {                                                                          \
        if (has_g && want_dx && cols) { LN_ROWS(fn, 1, 1, 1); }                   \
        else if (has_g && want_dx) { LN_ROWS(fn, 1, 1, 0); }                      \
        else if (want_dx && cols) { LN_ROWS(fn, 0, 1, 1); }                       \
        else if (want_dx) { LN_ROWS(fn, 0, 1, 0); }                               \
        else { LN_ROWS(fn, 0, 0, 1); }  /* column sums only: gamma unread */      \
    } while (0)
    for (; r + LN_GROUP <= r1; r += LN_GROUP) {
        LN_DISPATCH(ln_quad_backward);
    }
    for (; r < r1; r++) {
        LN_DISPATCH(ln_row_backward);
    }
#undef LN_DISPATCH
#undef LN_ROWS
}

#undef FNL
#undef FN
#undef FNN_LN_PASTE
#undef FNN_LN_PASTE2
