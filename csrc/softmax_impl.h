/*
 * softmax_impl.h -- the loops of softmax.c, written once over an element
 * type. Private to softmax.c, which includes it once per type with FNN_T
 * (float or double) and FNN_SM_SFX (f32 or f64) defined; exp is vexp.h's
 * fnn_vexp_<sfx>, applied to whole row segments. No include guard.
 */
#define FNN_SM_PASTE2(name, sfx) name##_##sfx
#define FNN_SM_PASTE(name, sfx) FNN_SM_PASTE2(name, sfx)
#define FN(name) FNN_SM_PASTE(name, FNN_SM_SFX)

/* ---- rows (inner == 1): lanes ------------------------------------------------ */

/* The maximum of x[0..n) (-inf for none): SM_LANES running maxima, lane
 * j % SM_LANES, then combined. NaN is skipped here, but a row holding one
 * comes out all NaN anyway (exp(NaN - m) is NaN, and so is the sum). */
static FNN_T FN(row_max)(const FNN_T *x, int64_t n)
{
    FNN_T lane[SM_LANES], m;
    int64_t j = 0;
    for (int l = 0; l < SM_LANES; l++) {
        lane[l] = (FNN_T)-INFINITY;
    }
    for (; j + SM_LANES <= n; j += SM_LANES) {
        #pragma omp simd
        for (int l = 0; l < SM_LANES; l++) {
            const FNN_T v = x[j + l], w = lane[l];
            lane[l] = v > w ? v : w;
        }
    }
    for (int l = 0; j + l < n; l++) {
        lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
    }
    m = lane[0];
    for (int l = 1; l < SM_LANES; l++) {
        m = lane[l] > m ? lane[l] : m;
    }
    return m;
}

/* lane[j % SM_LANES] += v[j] (b == NULL) or v[j] * b[j], in double, j < n.
 * Callers pass row segments that start at a multiple of SM_LANES, so a
 * term's lane depends on its position in the row alone. */
static FNN_SM_INLINE void FN(lane_add)(double *lane, const FNN_T *v, const FNN_T *b, int64_t n)
{
    int64_t j = 0;
    if (b == NULL) {
        for (; j + SM_LANES <= n; j += SM_LANES) {
            #pragma omp simd
            for (int l = 0; l < SM_LANES; l++) {
                lane[l] += (double)v[j + l];
            }
        }
        for (int l = 0; j + l < n; l++) {
            lane[l] += (double)v[j + l];
        }
    }
    else {
        for (; j + SM_LANES <= n; j += SM_LANES) {
            #pragma omp simd
            for (int l = 0; l < SM_LANES; l++) {
                lane[l] += (double)v[j + l] * (double)b[j + l];
            }
        }
        for (int l = 0; j + l < n; l++) {
            lane[l] += (double)v[j + l] * (double)b[j + l];
        }
    }
}

static double FN(lane_total)(const double *lane)
{
    return ((lane[0] + lane[1]) + (lane[2] + lane[3]))
           + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* Rows [r0, r1) of length L: Y = softmax (is_log: log_softmax) of X. Y may
 * equal X: each element is read before it is written, and X is not read
 * after. */
static void FN(sm_rows)(FNN_T *Y, const FNN_T *X, int64_t r0, int64_t r1, int64_t L,
                        const int is_log)
{
    FNN_T tmp[SM_CHUNK];
    for (int64_t r = r0; r < r1; r++) {
        const FNN_T *x = X + r * L;
        FNN_T *y = Y + r * L;
        const FNN_T mx = FN(row_max)(x, L);
        double lane[SM_LANES] = {0.0};
        #pragma omp simd
        for (int64_t j = 0; j < L; j++) {
            y[j] = x[j] - mx;
        }
        if (is_log) {
            FNN_T lse;
            for (int64_t j = 0; j < L; j += SM_CHUNK) {
                const int64_t w = sm_min64(SM_CHUNK, L - j);
                FN(fnn_vexp)(tmp, y + j, w);
                FN(lane_add)(lane, tmp, NULL, w);
            }
            lse = (FNN_T)log(FN(lane_total)(lane));
            #pragma omp simd
            for (int64_t j = 0; j < L; j++) {
                y[j] = y[j] - lse;
            }
        }
        else {
            double inv;
            FN(fnn_vexp)(y, y, L);
            FN(lane_add)(lane, y, NULL, L);
            /* In double: one rounding per element, as e / sum would give. */
            inv = 1.0 / FN(lane_total)(lane);
            #pragma omp simd
            for (int64_t j = 0; j < L; j++) {
                y[j] = (FNN_T)((double)y[j] * inv);
            }
        }
    }
}

/* Rows [r0, r1): dX from dY and Y. The row's sum is finished before the row
 * is written, and each element read before it is written: dX may equal dY
 * or Y. */
static void FN(sm_rows_backward)(FNN_T *dX, const FNN_T *dY, const FNN_T *Y, int64_t r0,
                                 int64_t r1, int64_t L, const int is_log)
{
    FNN_T tmp[SM_CHUNK];
    for (int64_t r = r0; r < r1; r++) {
        const FNN_T *dy = dY + r * L;
        const FNN_T *y = Y + r * L;
        FNN_T *dx = dX + r * L;
        double lane[SM_LANES] = {0.0};
        FNN_T d;
        if (is_log) {
            FN(lane_add)(lane, dy, NULL, L);
            d = (FNN_T)FN(lane_total)(lane);
            for (int64_t j = 0; j < L; j += SM_CHUNK) {
                const int64_t w = sm_min64(SM_CHUNK, L - j);
                FN(fnn_vexp)(tmp, y + j, w);
                #pragma omp simd
                for (int64_t c = 0; c < w; c++) {
                    dx[j + c] = dy[j + c] - tmp[c] * d;
                }
            }
        }
        else {
            FN(lane_add)(lane, dy, y, L);
            d = (FNN_T)FN(lane_total)(lane);
            #pragma omp simd
            for (int64_t j = 0; j < L; j++) {
                dx[j] = y[j] * (dy[j] - d);
            }
        }
    }
}

/* ---- columns (inner > 1) --------------------------------------------------- */

/* Unit: the w <= SM_COLS lines starting at column c0 of outer index o, walked
 * together along L (stride inner), each its maximum and its sum in order
 * along L, vectorised across the columns. Y may equal X. */
static void FN(sm_cols)(FNN_T *Y, const FNN_T *X, int64_t o, int64_t c0, int64_t w, int64_t L,
                        int64_t inner, const int is_log)
{
    const FNN_T *x = X + o * L * inner + c0;
    FNN_T *y = Y + o * L * inner + c0;
    FNN_T mx[SM_COLS], tmp[SM_COLS];
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
    for (int64_t j = 0; j < L; j++) {
        const FNN_T *xj = x + j * inner;
        FNN_T *e = is_log ? tmp : y + j * inner;
        #pragma omp simd
        for (int64_t c = 0; c < w; c++) {
            e[c] = xj[c] - mx[c];
        }
        FN(fnn_vexp)(e, e, w);
        #pragma omp simd
        for (int64_t c = 0; c < w; c++) {
            sum[c] += (double)e[c];
        }
    }
    if (is_log) {
        for (int64_t c = 0; c < w; c++) {
            tmp[c] = (FNN_T)log(sum[c]);
        }
        for (int64_t j = 0; j < L; j++) {
            const FNN_T *xj = x + j * inner;
            FNN_T *yj = y + j * inner;
            #pragma omp simd
            for (int64_t c = 0; c < w; c++) {
                yj[c] = (xj[c] - mx[c]) - tmp[c];
            }
        }
    }
    else {
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
    FNN_T d[SM_COLS], tmp[SM_COLS];

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
            FN(fnn_vexp)(tmp, yj, w);
            #pragma omp simd
            for (int64_t c = 0; c < w; c++) {
                dxj[c] = dyj[c] - tmp[c] * d[c];
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

/* One call, for sm_units: forward (dY NULL) writes out = Y from X; backward
 * out = dX from dY and Y. inner == 1: units are `per` whole rows; otherwise
 * (row, block of SM_COLS columns) pairs, ncb blocks a row. */
typedef struct {
    FNN_T *out;
    const FNN_T *X, *dY, *Y;
    int64_t outer, L, inner, per, ncb;
    int is_log;
} FN(sm_call);

static int FN(sm_units)(void *ctx, int64_t first, int64_t last, int slot)
{
    const FN(sm_call) *c = (const FN(sm_call) *)ctx;
    (void)slot;
    if (c->inner == 1) {
        const int64_t r0 = first * c->per, r1 = sm_min64(last * c->per, c->outer);
        if (c->dY == NULL) {
            FN(sm_rows)(c->out, c->X, r0, r1, c->L, c->is_log);
        }
        else {
            FN(sm_rows_backward)(c->out, c->dY, c->Y, r0, r1, c->L, c->is_log);
        }
        return FNN_OK;
    }
    for (int64_t u = first; u < last; u++) {
        const int64_t c0 = (u % c->ncb) * SM_COLS;
        const int64_t w = sm_min64(SM_COLS, c->inner - c0);
        if (c->dY == NULL) {
            FN(sm_cols)(c->out, c->X, u / c->ncb, c0, w, c->L, c->inner, c->is_log);
        }
        else {
            FN(sm_cols_backward)(c->out, c->dY, c->Y, u / c->ncb, c0, w, c->L, c->inner,
                                 c->is_log);
        }
    }
    return FNN_OK;
}

/* Both directions: cut the work into units, then share them out. */
static void FN(sm_run)(FN(sm_call) *c, int64_t n, int nthreads)
{
    int64_t units;
    if (c->inner == 1) {
        c->per = FN(sm_rows_per_unit)(c->L);
        units = (c->outer + c->per - 1) / c->per;
    }
    else {
        c->ncb = (c->inner + SM_COLS - 1) / SM_COLS;
        units = c->outer * c->ncb;
    }
    fnn_run_units(units, fnn_threads_for((double)n, SM_GRAIN, units, nthreads), FN(sm_units), c);
}

int FN(fnn_softmax_forward)(FNN_T *Y, const FNN_T *X, int64_t outer, int64_t L, int64_t inner,
                            int is_log, int nthreads)
{
    int64_t n;
    int status = sm_check(outer, L, inner, is_log, &n);

    if (status != FNN_OK || n == 0) {
        return status;
    }
    if (Y == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    {
        FN(sm_call) c = {.out = Y, .X = X, .outer = outer, .L = L, .inner = inner,
                         .is_log = is_log};
        FN(sm_run)(&c, n, nthreads);
    }
    return FNN_OK;
}

int FN(fnn_softmax_backward)(FNN_T *dX, const FNN_T *dY, const FNN_T *Y, int64_t outer,
                             int64_t L, int64_t inner, int is_log, int nthreads)
{
    int64_t n;
    int status = sm_check(outer, L, inner, is_log, &n);

    if (status != FNN_OK || n == 0) {
        return status;
    }
    if (dX == NULL || dY == NULL || Y == NULL) {
        return FNN_ERR_ARG;
    }
    {
        FN(sm_call) c = {.out = dX, .dY = dY, .Y = Y, .outer = outer, .L = L, .inner = inner,
                         .is_log = is_log};
        FN(sm_run)(&c, n, nthreads);
    }
    return FNN_OK;
}

#undef FN
#undef FNN_SM_PASTE
#undef FNN_SM_PASTE2
