/*
 * softmax_impl.h -- the loops of softmax.c, written once over an element
 * type. Private to softmax.c, which includes it once per type with FNN_T
 * (float or double), FNN_SM_SFX (f32 or f64) and FNN_M (libm's name for
 * FNN_T: FNN_M(exp) is expf or exp) defined. No include guard.
 */
#define FNN_SM_PASTE2(name, sfx) name##_##sfx
#define FNN_SM_PASTE(name, sfx) FNN_SM_PASTE2(name, sfx)
#define FN(name) FNN_SM_PASTE(name, FNN_SM_SFX)

/* ---- rows (inner == 1) ------------------------------------------------------ */

/* Rows [r0, r1) of length L: Y = softmax (is_log: log_softmax) of X. Y may equal
 * X: the row is read whole before each write of an element it read. */
static void FN(sm_rows)(FNN_T *Y, const FNN_T *X, int64_t r0, int64_t r1, int64_t L,
                        const int is_log)
{
    for (int64_t r = r0; r < r1; r++) {
        const FNN_T *x = X + r * L;
        FNN_T *y = Y + r * L;
        FNN_T mx = x[0];
        double sum = 0.0;
        for (int64_t j = 1; j < L; j++) {
            mx = x[j] > mx ? x[j] : mx;
        }
        if (is_log) {
            FNN_T lse;
            for (int64_t j = 0; j < L; j++) {
                sum += (double)FNN_M(exp)(x[j] - mx);
            }
            lse = (FNN_T)log(sum);
            for (int64_t j = 0; j < L; j++) {
                y[j] = (x[j] - mx) - lse;
            }
        }
        else {
            double inv;
            for (int64_t j = 0; j < L; j++) {
                const FNN_T e = FNN_M(exp)(x[j] - mx);
                y[j] = e;
                sum += (double)e;
            }
            /* In double: one rounding per element, as e / sum would give. */
            inv = 1.0 / sum;
            for (int64_t j = 0; j < L; j++) {
                y[j] = (FNN_T)((double)y[j] * inv);
            }
        }
    }
}

/* Rows [r0, r1): dX from dY and Y. The row's sum is finished before the row
 * is written, so dX may equal dY or Y. */
static void FN(sm_rows_backward)(FNN_T *dX, const FNN_T *dY, const FNN_T *Y, int64_t r0,
                                 int64_t r1, int64_t L, const int is_log)
{
    for (int64_t r = r0; r < r1; r++) {
        const FNN_T *dy = dY + r * L;
        const FNN_T *y = Y + r * L;
        FNN_T *dx = dX + r * L;
        double sum = 0.0;
        FNN_T d;
        if (is_log) {
            for (int64_t j = 0; j < L; j++) {
                sum += (double)dy[j];
            }
            d = (FNN_T)sum;
            for (int64_t j = 0; j < L; j++) {
                dx[j] = dy[j] - FNN_M(exp)(y[j]) * d;
            }
        }
        else {
            for (int64_t j = 0; j < L; j++) {
                sum += (double)dy[j] * (double)y[j];
            }
            d = (FNN_T)sum;
            for (int64_t j = 0; j < L; j++) {
                dx[j] = y[j] * (dy[j] - d);
            }
        }
    }
}

/* ---- columns (inner > 1) --------------------------------------------------- */

/* Unit: the w <= SM_COLS lines starting at column c0 of outer index o, each
 * the same operations as a row's (along L, stride inner). */
static void FN(sm_cols)(FNN_T *Y, const FNN_T *X, int64_t o, int64_t c0, int64_t w, int64_t L,
                        int64_t inner, const int is_log)
{
    const FNN_T *x = X + o * L * inner + c0;
    FNN_T *y = Y + o * L * inner + c0;
    FNN_T mx[SM_COLS];
    double sum[SM_COLS];

    for (int64_t c = 0; c < w; c++) {
        mx[c] = x[c];
        sum[c] = 0.0;
    }
    for (int64_t j = 1; j < L; j++) {
        const FNN_T *xj = x + j * inner;
        #pragma omp simd
        for (int64_t c = 0; c < w; c++) {
            const FNN_T v = xj[c], m = mx[c];
            mx[c] = v > m ? v : m;
        }
    }
    if (is_log) {
        FNN_T lse[SM_COLS];
        for (int64_t j = 0; j < L; j++) {
            const FNN_T *xj = x + j * inner;
            for (int64_t c = 0; c < w; c++) {
                sum[c] += (double)FNN_M(exp)(xj[c] - mx[c]);
            }
        }
        for (int64_t c = 0; c < w; c++) {
            lse[c] = (FNN_T)log(sum[c]);
        }
        for (int64_t j = 0; j < L; j++) {
            const FNN_T *xj = x + j * inner;
            FNN_T *yj = y + j * inner;
            #pragma omp simd
            for (int64_t c = 0; c < w; c++) {
                yj[c] = (xj[c] - mx[c]) - lse[c];
            }
        }
    }
    else {
        for (int64_t j = 0; j < L; j++) {
            const FNN_T *xj = x + j * inner;
            FNN_T *yj = y + j * inner;
            for (int64_t c = 0; c < w; c++) {
                const FNN_T e = FNN_M(exp)(xj[c] - mx[c]);
                yj[c] = e;
                sum[c] += (double)e;
            }
        }
        for (int64_t c = 0; c < w; c++) {
            sum[c] = 1.0 / sum[c];
        }
        for (int64_t j = 0; j < L; j++) {
            FNN_T *yj = y + j * inner;
            #pragma omp simd
            for (int64_t c = 0; c < w; c++) {
                yj[c] = (FNN_T)((double)yj[c] * sum[c]);
            }
        }
    }
}

static void FN(sm_cols_backward)(FNN_T *dX, const FNN_T *dY, const FNN_T *Y, int64_t o,
                                 int64_t c0, int64_t w, int64_t L, int64_t inner,
                                 const int is_log)
{
    const int64_t base = o * L * inner + c0;
    const FNN_T *dy = dY + base, *y = Y + base;
    FNN_T *dx = dX + base;
    double sum[SM_COLS];
    FNN_T d[SM_COLS];

    for (int64_t c = 0; c < w; c++) {
        sum[c] = 0.0;
    }
    for (int64_t j = 0; j < L; j++) {
        const FNN_T *dyj = dy + j * inner, *yj = y + j * inner;
        if (is_log) {
            #pragma omp simd
            for (int64_t c = 0; c < w; c++) {
                sum[c] += (double)dyj[c];
            }
        }
        else {
            #pragma omp simd
            for (int64_t c = 0; c < w; c++) {
                sum[c] += (double)dyj[c] * (double)yj[c];
            }
        }
    }
    for (int64_t c = 0; c < w; c++) {
        d[c] = (FNN_T)sum[c];
    }
    for (int64_t j = 0; j < L; j++) {
        const FNN_T *dyj = dy + j * inner, *yj = y + j * inner;
        FNN_T *dxj = dx + j * inner;
        if (is_log) {
            for (int64_t c = 0; c < w; c++) {
                dxj[c] = dyj[c] - FNN_M(exp)(yj[c]) * d[c];
            }
        }
        else {
            #pragma omp simd
            for (int64_t c = 0; c < w; c++) {
                dxj[c] = yj[c] * (dyj[c] - d[c]);
            }
        }
    }
}

/* ---- entry points ------------------------------------------------------------ */

/* Rows per unit: about SM_GRAIN elements (a constant of the shape). */
static int64_t FN(sm_rows_per_unit)(int64_t L)
{
    const int64_t r = (int64_t)SM_GRAIN / L;
    return r < 1 ? 1 : r;
}

int FN(fnn_softmax_forward)(FNN_T *Y, const FNN_T *X, int64_t outer, int64_t L, int64_t inner,
                            int is_log, int nthreads)
{
    int64_t n, nunits, per, ncb;
    int nt;
    int status = sm_check(outer, L, inner, is_log, &n);

    if (status != FNN_OK || n == 0) {
        return status;
    }
    if (Y == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    nt = fnn_threads_for((double)n, SM_GRAIN, nthreads);
    if (inner == 1) {
        per = FN(sm_rows_per_unit)(L);
        nunits = (outer + per - 1) / per;
        if (nt > nunits) {
            nt = (int)nunits;
        }
        if (nt <= 1) {
            FN(sm_rows)(Y, X, 0, outer, L, is_log);
        }
        else {
            int64_t u;
            #pragma omp parallel for schedule(static) num_threads(nt)
            for (u = 0; u < nunits; u++) {
                FN(sm_rows)(Y, X, u * per, sm_min64(u * per + per, outer), L, is_log);
            }
        }
        return FNN_OK;
    }
    ncb = (inner + SM_COLS - 1) / SM_COLS;
    nunits = outer * ncb;
    if (nt > nunits) {
        nt = (int)nunits;
    }
    if (nt <= 1) {
        for (int64_t u = 0; u < nunits; u++) {
            const int64_t c0 = (u % ncb) * SM_COLS;
            FN(sm_cols)(Y, X, u / ncb, c0, sm_min64(SM_COLS, inner - c0), L, inner, is_log);
        }
    }
    else {
        int64_t u;
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (u = 0; u < nunits; u++) {
            const int64_t c0 = (u % ncb) * SM_COLS;
            FN(sm_cols)(Y, X, u / ncb, c0, sm_min64(SM_COLS, inner - c0), L, inner, is_log);
        }
    }
    return FNN_OK;
}

int FN(fnn_softmax_backward)(FNN_T *dX, const FNN_T *dY, const FNN_T *Y, int64_t outer,
                             int64_t L, int64_t inner, int is_log, int nthreads)
{
    int64_t n, nunits, per, ncb;
    int nt;
    int status = sm_check(outer, L, inner, is_log, &n);

    if (status != FNN_OK || n == 0) {
        return status;
    }
    if (dX == NULL || dY == NULL || Y == NULL) {
        return FNN_ERR_ARG;
    }
    nt = fnn_threads_for((double)n, SM_GRAIN, nthreads);
    if (inner == 1) {
        per = FN(sm_rows_per_unit)(L);
        nunits = (outer + per - 1) / per;
        if (nt > nunits) {
            nt = (int)nunits;
        }
        if (nt <= 1) {
            FN(sm_rows_backward)(dX, dY, Y, 0, outer, L, is_log);
        }
        else {
            int64_t u;
            #pragma omp parallel for schedule(static) num_threads(nt)
            for (u = 0; u < nunits; u++) {
                FN(sm_rows_backward)(dX, dY, Y, u * per, sm_min64(u * per + per, outer), L,
                                     is_log);
            }
        }
        return FNN_OK;
    }
    ncb = (inner + SM_COLS - 1) / SM_COLS;
    nunits = outer * ncb;
    if (nt > nunits) {
        nt = (int)nunits;
    }
    if (nt <= 1) {
        for (int64_t u = 0; u < nunits; u++) {
            const int64_t c0 = (u % ncb) * SM_COLS;
            FN(sm_cols_backward)(dX, dY, Y, u / ncb, c0, sm_min64(SM_COLS, inner - c0), L, inner,
                                 is_log);
        }
    }
    else {
        int64_t u;
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (u = 0; u < nunits; u++) {
            const int64_t c0 = (u % ncb) * SM_COLS;
            FN(sm_cols_backward)(dX, dY, Y, u / ncb, c0, sm_min64(SM_COLS, inner - c0), L, inner,
                                 is_log);
        }
    }
    return FNN_OK;
}

#undef FN
#undef FNN_SM_PASTE
#undef FNN_SM_PASTE2
