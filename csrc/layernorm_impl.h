/*
 * layernorm_impl.h -- the loops of layernorm.c, written once over an element
 * type. Private to layernorm.c, which includes it once per type with FNN_T
 * (float or double) and FNN_LN_SFX (f32 or f64) defined. No include guard.
 *
 * The per-row helpers are always_inline with constant flags (gamma present,
 * dX wanted, column sums wanted), so each combination compiles to its own
 * branch-free vector loops.
 */
#define FNN_LN_PASTE2(name, sfx) name##_##sfx
#define FNN_LN_PASTE(name, sfx) FNN_LN_PASTE2(name, sfx)
#define FN(name) FNN_LN_PASTE(name, FNN_LN_SFX)

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

/* Rows [r0, r1): Y, and mean / rstd when not NULL. */
static void FN(ln_forward_rows)(FNN_T *Y, FNN_T *mean, FNN_T *rstd, const FNN_T *X,
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

int FN(fnn_layernorm_forward)(FNN_T *Y, FNN_T *mean, FNN_T *rstd, const FNN_T *X,
                              const FNN_T *gamma, const FNN_T *beta, int64_t M, int64_t C,
                              double eps, int rms, int nthreads)
{
    int64_t per, nblocks;
    int nt;
    int status = ln_check(M, C, rms);

    if (status != FNN_OK) {
        return status;
    }
    if (!(eps >= 0.0 && eps < INFINITY) || (rms && beta != NULL)) {
        return FNN_ERR_ARG;
    }
    if (M == 0) {
        return FNN_OK;
    }
    if (Y == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    per = ln_block_rows(C);
    nblocks = (M + per - 1) / per;
    nt = fnn_threads_for((double)M * (double)C, LN_GRAIN, nthreads);
    if (nt > nblocks) {
        nt = (int)nblocks;
    }
    if (nt <= 1) {
        FN(ln_forward_rows)(Y, mean, rstd, X, gamma, beta, 0, M, C, eps, rms);
    }
    else {
        int64_t b;
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (b = 0; b < nblocks; b++) {
            FN(ln_forward_rows)(Y, mean, rstd, X, gamma, beta, b * per,
                                ln_min64(b * per + per, M), C, eps, rms);
        }
    }
    return FNN_OK;
}

/* ---- backward ---------------------------------------------------------------- */

/* One row, with m, r its statistics (m = 0 for RMS), xhat = (x - m) * r and
 * g = dy * gamma (dy when !has_g):
 *   want_dx: dx[0..C) = r * ((g - a) - xhat * b), a = (T)(sum g / C) (0 for
 *            RMS), b = (T)(sum g xhat / C), the sums in double lanes;
 *   cols:    cg[c] += dy xhat, cb[c] += dy (double).
 * dx may equal dy or x: the row's sums are finished before dx is written,
 * and each element is read before it is written. */
static FNN_LN_INLINE void FN(ln_row_backward)(FNN_T *dx, double *cg, double *cb,
                                              const FNN_T *dy, const FNN_T *x, FNN_T m,
                                              FNN_T r, const FNN_T *gamma, int64_t C, int rms,
                                              const int has_g, const int want_dx,
                                              const int cols)
{
    FNN_T a = 0, b = 0;

    if (want_dx) {
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
        a = rms ? (FNN_T)0 : (FNN_T)(ln_lane_total(sg) / (double)C);
        b = (FNN_T)(ln_lane_total(sgx) / (double)C);
    }
    #pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        const FNN_T d = dy[c];
        const FNN_T xh = (x[c] - m) * r;
        if (cols) {
            cg[c] += (double)d * (double)xh;
            cb[c] += (double)d;
        }
        if (want_dx) {
            const FNN_T g = has_g ? d * gamma[c] : d;
            dx[c] = r * ((g - a) - xh * b);
        }
    }
}

/* Rows [r0, r1): dX rows when dX is not NULL; when cg is not NULL, cg[0..C)
 * and cb[0..C) = this chunk's column sums of dy xhat and dy (OVERWRITTEN). */
static void FN(ln_backward_rows)(FNN_T *dX, double *cg, double *cb, const FNN_T *dY,
                                 const FNN_T *X, const FNN_T *mean, const FNN_T *rstd,
                                 const FNN_T *gamma, int64_t r0, int64_t r1, int64_t C, int rms)
{
    if (cg != NULL) {
        for (int64_t c = 0; c < C; c++) {
            cg[c] = 0.0;
            cb[c] = 0.0;
        }
    }
    for (int64_t r = r0; r < r1; r++) {
        const FNN_T *dy = dY + r * C;
        const FNN_T *x = X + r * C;
        FNN_T *dx = dX != NULL ? dX + r * C : NULL;
        const FNN_T m = rms ? (FNN_T)0 : mean[r];
        const FNN_T s = rstd[r];
#define LN_ROW(g, w, k) FN(ln_row_backward)(dx, cg, cb, dy, x, m, s, gamma, C, rms, g, w, k)
        if (gamma != NULL) {
            if (dx != NULL) {
                if (cg != NULL) {
                    LN_ROW(1, 1, 1);
                }
                else {
                    LN_ROW(1, 1, 0);
                }
            }
            else {
                LN_ROW(1, 0, 1);
            }
        }
        else {
            if (dx != NULL) {
                if (cg != NULL) {
                    LN_ROW(0, 1, 1);
                }
                else {
                    LN_ROW(0, 1, 0);
                }
            }
            else {
                LN_ROW(0, 0, 1);
            }
        }
#undef LN_ROW
    }
}

int FN(fnn_layernorm_backward)(FNN_T *dX, FNN_T *dgamma, FNN_T *dbeta, const FNN_T *dY,
                               const FNN_T *X, const FNN_T *mean, const FNN_T *rstd,
                               const FNN_T *gamma, int64_t M, int64_t C, int rms, int nthreads)
{
    const int cols = dgamma != NULL || dbeta != NULL;
    int64_t per, nchunks;
    double *partial = NULL;     /* chunk k: [sum dy xhat | sum dy] at k * 2C */
    int nt;
    int status = ln_check(M, C, rms);

    if (status != FNN_OK) {
        return status;
    }
    if (M == 0) {
        for (int64_t c = 0; c < C; c++) {
            if (dgamma != NULL) {
                dgamma[c] = 0;
            }
            if (dbeta != NULL) {
                dbeta[c] = 0;
            }
        }
        return FNN_OK;
    }
    if (dY == NULL || X == NULL || rstd == NULL || (!rms && mean == NULL)) {
        return FNN_ERR_ARG;
    }
    if (dX == NULL && !cols) {
        return FNN_OK;
    }
    per = ln_chunk_rows(M, C);
    nchunks = (M + per - 1) / per;
    if (cols) {
        partial = (double *)malloc((size_t)(nchunks * 2 * C) * sizeof(double));
        if (partial == NULL) {
            return FNN_ERR_NOMEM;
        }
    }
    nt = fnn_threads_for((double)M * (double)C, LN_GRAIN, nthreads);
    if (nt > nchunks) {
        nt = (int)nchunks;
    }
#define LN_CHUNK(k)                                                                  \
    FN(ln_backward_rows)(dX, partial != NULL ? partial + (k) * 2 * C : NULL,          \
                         partial != NULL ? partial + (k) * 2 * C + C : NULL, dY, X,   \
                         mean, rstd, gamma, (k) * per, ln_min64((k) * per + per, M), C, rms)
    if (nt <= 1) {
        for (int64_t k = 0; k < nchunks; k++) {
            LN_CHUNK(k);
        }
    }
    else {
        int64_t k;
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (k = 0; k < nchunks; k++) {
            LN_CHUNK(k);
        }
    }
#undef LN_CHUNK
    if (cols) {
        /* Chunk 0's slot becomes the total, the others added in chunk order. */
        for (int64_t k = 1; k < nchunks; k++) {
            const double *p = partial + k * 2 * C;
            #pragma omp simd
            for (int64_t c = 0; c < 2 * C; c++) {
                partial[c] += p[c];
            }
        }
        for (int64_t c = 0; c < C; c++) {
            if (dgamma != NULL) {
                dgamma[c] = (FNN_T)partial[c];
            }
            if (dbeta != NULL) {
                dbeta[c] = (FNN_T)partial[C + c];
            }
        }
        free(partial);
    }
    return FNN_OK;
}

#undef FN
#undef FNN_LN_PASTE
#undef FNN_LN_PASTE2
