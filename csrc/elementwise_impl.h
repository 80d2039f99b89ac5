/*
 * elementwise_impl.h -- the element-wise loops of elementwise.c (binary,
 * unary, where), written once over an element type. Private to
 * elementwise.c, which includes it once per type with FNN_T (float or
 * double), FNN_BITS (the unsigned integer of its size), FNN_EW_SFX (f32 or
 * f64) and FNN_M (libm's name for FNN_T: FNN_M(exp) is expf or exp)
 * defined; every name below gets the suffix, so the two copies coexist. No
 * include guard: being included twice is the point. reduce_impl.h, included
 * right after it, uses keep_if.
 *
 * Specialisation without macros: the op and the inner strides are
 * arguments of always-inline functions, and each call site passes constants
 * (a switch over the op, a test of the stride pattern), so the compiler
 * emits one straight, vectorisable loop per case.
 */
#define FNN_EW_PASTE2(name, sfx) name##_##sfx
#define FNN_EW_PASTE(name, sfx) FNN_EW_PASTE2(name, sfx)
#define FN(name) FNN_EW_PASTE(name, FNN_EW_SFX)

/* ---- one element ----------------------------------------------------------- */

static FNN_EW_INLINE FNN_T FN(apply)(const int op, const FNN_T a, const FNN_T b)
{
    switch (op) {
    case FNN_BINARY_ADD:
        return a + b;
    case FNN_BINARY_SUBTRACT:
        return a - b;
    case FNN_BINARY_MULTIPLY:
        return a * b;
    case FNN_BINARY_DIVIDE:
        return a / b;
    /* NaN propagates (np.maximum's rule): a NaN a through the a != a test, a
     * NaN b through the comparison's false branch. */
    case FNN_BINARY_MAXIMUM:
        return (a >= b || a != a) ? a : b;
    case FNN_BINARY_MINIMUM:
        return (a <= b || a != a) ? a : b;
    case FNN_BINARY_POWER:
        return FNN_M(pow)(a, b);
    default:
        return a;
    }
}

/* d where c, else +0. A bit mask rather than `c ? d : 0`: GCC does not
 * if-convert a select of floats under -ftrapping-math (the default), so the
 * ?: form leaves the loops around it scalar. */
static FNN_EW_INLINE FNN_T FN(keep_if)(const int c, const FNN_T d)
{
    FNN_BITS u;
    FNN_T r;
    memcpy(&u, &d, sizeof u);
    u &= (FNN_BITS)0 - (FNN_BITS)c;
    memcpy(&r, &u, sizeof r);
    return r;
}

/* ---- binary: forward ----------------------------------------------------------- */

/* y[i] = a[i*sa] <op> b[i*sb], i < n. `omp simd` is valid with y == a or
 * y == b: iteration i reads element i before writing it and touches no other. */
static FNN_EW_INLINE void FN(fwd_loop)(const int op, FNN_T *y, const FNN_T *a, const FNN_T *b,
                                       int64_t n, const int64_t sa, const int64_t sb)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        y[i] = FN(apply)(op, a[i * sa], b[i * sb]);
    }
}

static FNN_EW_INLINE void FN(fwd_row)(const int op, FNN_T *y, const FNN_T *a, const FNN_T *b,
                                      int64_t n, int64_t sa, int64_t sb)
{
    if (sa == 1 && sb == 1) {
        FN(fwd_loop)(op, y, a, b, n, 1, 1);
    }
    else if (sa == 1 && sb == 0) {
        FN(fwd_loop)(op, y, a, b, n, 1, 0);
    }
    else if (sa == 0 && sb == 1) {
        FN(fwd_loop)(op, y, a, b, n, 0, 1);
    }
    else {
        FN(fwd_loop)(op, y, a, b, n, sa, sb);
    }
}

/* Output elements [lo, hi): the rest of a row, whole rows, the start of one. */
static FNN_EW_INLINE void FN(fwd_range_op)(const int op, FNN_T *Y, const FNN_T *A,
                                           const FNN_T *B, int ndim, const int64_t *shape,
                                           const int64_t *as, const int64_t *bs, int64_t lo,
                                           int64_t hi)
{
    const int64_t L = shape[ndim - 1], sa = as[ndim - 1], sb = bs[ndim - 1];
    int64_t idx[FNN_MAX_DIMS], oa, ob;
    int64_t pos = lo, j = lo % L;

    seek_row(ndim, shape, as, bs, lo / L, idx, &oa, &ob);
    while (pos < hi) {
        const int64_t len = min64(L - j, hi - pos);
        FN(fwd_row)(op, Y + pos, A + oa + j * sa, B + ob + j * sb, len, sa, sb);
        pos += len;
        j = 0;
        next_row(ndim, shape, as, bs, idx, &oa, &ob);
    }
}

static void FN(fwd_range)(int op, FNN_T *Y, const FNN_T *A, const FNN_T *B, int ndim,
                          const int64_t *shape, const int64_t *as, const int64_t *bs,
                          int64_t lo, int64_t hi)
{
    switch (op) {
    case FNN_BINARY_ADD:
        FN(fwd_range_op)(FNN_BINARY_ADD, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_BINARY_SUBTRACT:
        FN(fwd_range_op)(FNN_BINARY_SUBTRACT, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_BINARY_MULTIPLY:
        FN(fwd_range_op)(FNN_BINARY_MULTIPLY, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_BINARY_DIVIDE:
        FN(fwd_range_op)(FNN_BINARY_DIVIDE, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_BINARY_MAXIMUM:
        FN(fwd_range_op)(FNN_BINARY_MAXIMUM, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_BINARY_MINIMUM:
        FN(fwd_range_op)(FNN_BINARY_MINIMUM, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_BINARY_POWER:
        FN(fwd_range_op)(FNN_BINARY_POWER, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    default:
        break;
    }
}

static void FN(fwd_elems)(const ew_call *c, int64_t lo, int64_t hi)
{
    FN(fwd_range)(c->op, (FNN_T *)c->out, (const FNN_T *)c->a, (const FNN_T *)c->b, c->ndim,
                  c->shape, c->sa, c->sb, lo, hi);
}

/* Y[shape] = A <op> B. */
int FN(fnn_binary_forward)(FNN_T *Y, const FNN_T *A, const FNN_T *B, int ndim,
                           const int64_t *shape, const int64_t *as, const int64_t *bs, int op,
                           int nthreads)
{
    int64_t n;
    int status = check_layout(ndim, shape, &n);

    if (status != FNN_OK) {
        return status;
    }
    if (op < 0 || op >= FNN_BINARY_COUNT || Y == NULL || A == NULL || B == NULL || as == NULL
        || bs == NULL) {
        return FNN_ERR_ARG;
    }
    {
        const ew_call c = {.range = FN(fwd_elems), .op = op, .out = Y, .a = A, .b = B,
                           .ndim = ndim, .shape = shape, .sa = as, .sb = bs};
        run_elements(&c, n, op == FNN_BINARY_POWER, nthreads);
    }
    return FNN_OK;
}

/* ---- unary ------------------------------------------------------------------------ */

/* np.sign: +-1, +0 for both zeros, NaN for NaN. */
static FNN_EW_INLINE FNN_T FN(sign)(const FNN_T x)
{
    return x > 0 ? (FNN_T)1 : x < 0 ? (FNN_T)-1 : x == 0 ? (FNN_T)0 : x;
}

static FNN_EW_INLINE FNN_T FN(unary_apply)(const int op, const FNN_T x)
{
    switch (op) {
    case FNN_UNARY_NEGATIVE:
        return -x;
    case FNN_UNARY_ABS:
        return FNN_M(fabs)(x);
    case FNN_UNARY_SIGN:
        return FN(sign)(x);
    case FNN_UNARY_SQUARE:
        return x * x;
    case FNN_UNARY_SQRT:
        return FNN_M(sqrt)(x);
    case FNN_UNARY_EXP:             /* unary_range calls vexp.h's loop instead */
        return FNN_M(exp)(x);
    case FNN_UNARY_LOG:
        return FNN_M(log)(x);
    case FNN_UNARY_LOG1P:
        return FNN_M(log1p)(x);
    case FNN_UNARY_RECIPROCAL:
        return (FNN_T)1 / x;
    default:
        return x;
    }
}

/* dy * op'(x), from the input x or the output y (fnn_unary_reads says
 * which); the rounding sequence of each matches NumpyOps' expression. */
static FNN_EW_INLINE FNN_T FN(unary_deriv)(const int op, const FNN_T dy, const FNN_T x,
                                           const FNN_T y)
{
    switch (op) {
    case FNN_UNARY_NEGATIVE:
        return -dy;
    case FNN_UNARY_ABS:
        return dy * FN(sign)(x);
    case FNN_UNARY_SIGN:
        return (FNN_T)0;
    case FNN_UNARY_SQUARE:
        return dy * ((FNN_T)2 * x);
    case FNN_UNARY_SQRT:
        return (dy * (FNN_T)0.5) / y;
    case FNN_UNARY_EXP:
        return dy * y;
    case FNN_UNARY_LOG:
        return dy / x;
    case FNN_UNARY_LOG1P:
        return dy / ((FNN_T)1 + x);
    case FNN_UNARY_RECIPROCAL:
        return dy * -(y * y);
    default:
        return dy;
    }
}

/* Y[i] = op(X[i]), i < n (Y may equal X: iteration i reads X[i] first). */
static FNN_EW_INLINE void FN(unary_loop)(const int op, FNN_T *Y, const FNN_T *X, int64_t n)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        Y[i] = FN(unary_apply)(op, X[i]);
    }
}

static void FN(unary_range)(int op, FNN_T *Y, const FNN_T *X, int64_t n)
{
    switch (op) {
    case FNN_UNARY_NEGATIVE:
        FN(unary_loop)(FNN_UNARY_NEGATIVE, Y, X, n);
        break;
    case FNN_UNARY_ABS:
        FN(unary_loop)(FNN_UNARY_ABS, Y, X, n);
        break;
    case FNN_UNARY_SIGN:
        FN(unary_loop)(FNN_UNARY_SIGN, Y, X, n);
        break;
    case FNN_UNARY_SQUARE:
        FN(unary_loop)(FNN_UNARY_SQUARE, Y, X, n);
        break;
    case FNN_UNARY_SQRT:
        FN(unary_loop)(FNN_UNARY_SQRT, Y, X, n);
        break;
    case FNN_UNARY_EXP:
        FN(fnn_vexp)(Y, X, n);      /* vexp.h: vectorised, not libm's */
        break;
    case FNN_UNARY_LOG:
        FN(unary_loop)(FNN_UNARY_LOG, Y, X, n);
        break;
    case FNN_UNARY_LOG1P:
        FN(unary_loop)(FNN_UNARY_LOG1P, Y, X, n);
        break;
    case FNN_UNARY_RECIPROCAL:
        FN(unary_loop)(FNN_UNARY_RECIPROCAL, Y, X, n);
        break;
    default:
        break;
    }
}

/* dX[i] = dY[i] * op'(X[i] or Y[i]), i < n; dX may equal any input. The
 * operand not read is passed as dY (in bounds, never used). */
static FNN_EW_INLINE void FN(unary_bwd_loop)(const int op, FNN_T *dX, const FNN_T *dY,
                                             const FNN_T *X, const FNN_T *Y, int64_t n)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        dX[i] = FN(unary_deriv)(op, dY[i], X[i], Y[i]);
    }
}

static void FN(unary_bwd_range)(int op, FNN_T *dX, const FNN_T *dY, const FNN_T *X,
                                const FNN_T *Y, int64_t n)
{
    switch (op) {
    case FNN_UNARY_NEGATIVE:
        FN(unary_bwd_loop)(FNN_UNARY_NEGATIVE, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_ABS:
        FN(unary_bwd_loop)(FNN_UNARY_ABS, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_SIGN:
        FN(unary_bwd_loop)(FNN_UNARY_SIGN, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_SQUARE:
        FN(unary_bwd_loop)(FNN_UNARY_SQUARE, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_SQRT:
        FN(unary_bwd_loop)(FNN_UNARY_SQRT, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_EXP:
        FN(unary_bwd_loop)(FNN_UNARY_EXP, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_LOG:
        FN(unary_bwd_loop)(FNN_UNARY_LOG, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_LOG1P:
        FN(unary_bwd_loop)(FNN_UNARY_LOG1P, dX, dY, X, Y, n);
        break;
    case FNN_UNARY_RECIPROCAL:
        FN(unary_bwd_loop)(FNN_UNARY_RECIPROCAL, dX, dY, X, Y, n);
        break;
    default:
        break;
    }
}

static void FN(unary_elems)(const ew_call *c, int64_t lo, int64_t hi)
{
    FN(unary_range)(c->op, (FNN_T *)c->out + lo, (const FNN_T *)c->a + lo, hi - lo);
}

/* Y[n] = op(X[n]). */
int FN(fnn_unary_forward)(FNN_T *Y, const FNN_T *X, int64_t n, int op, int nthreads)
{
    if (n < 0 || op < 0 || op >= FNN_UNARY_COUNT) {
        return FNN_ERR_ARG;
    }
    if (n == 0) {
        return FNN_OK;
    }
    if (Y == NULL || X == NULL) {
        return FNN_ERR_ARG;
    }
    {
        const ew_call c = {.range = FN(unary_elems), .op = op, .out = Y, .a = X};
        run_elements(&c, n, unary_is_transcendental(op), nthreads);
    }
    return FNN_OK;
}

static void FN(unary_bwd_elems)(const ew_call *c, int64_t lo, int64_t hi)
{
    FN(unary_bwd_range)(c->op, (FNN_T *)c->out + lo, (const FNN_T *)c->a + lo,
                        (const FNN_T *)c->b + lo, (const FNN_T *)c->c + lo, hi - lo);
}

/* dX[n] = dY * op'(X or Y); the one op does not read may be NULL. */
int FN(fnn_unary_backward)(FNN_T *dX, const FNN_T *dY, const FNN_T *X, const FNN_T *Y,
                           int64_t n, int op, int nthreads)
{
    const int reads = fnn_unary_reads(op);

    if (n < 0 || op < 0 || op >= FNN_UNARY_COUNT) {
        return FNN_ERR_ARG;
    }
    if (n == 0) {
        return FNN_OK;
    }
    if (dX == NULL || dY == NULL || (reads == 1 && X == NULL) || (reads == 2 && Y == NULL)) {
        return FNN_ERR_ARG;
    }
    if (reads != 1) {
        X = dY;
    }
    if (reads != 2) {
        Y = dY;
    }
    {
        const ew_call c = {.range = FN(unary_bwd_elems), .op = op, .out = dX, .a = dY, .b = X,
                           .c = Y};
        run_elements(&c, n, 0, nthreads);
    }
    return FNN_OK;
}

/* ---- where --------------------------------------------------------------------- */

/* y[i] = c[i*sc] ? a[i*sa] : b[i*sb]: both values loaded, then selected, so
 * the loop vectorises (and y may be a or b, same index). */
static FNN_EW_INLINE void FN(where_loop)(FNN_T *y, const uint8_t *c, const FNN_T *a,
                                         const FNN_T *b, int64_t n, const int64_t sc,
                                         const int64_t sa, const int64_t sb)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        const FNN_T u = a[i * sa], v = b[i * sb];
        y[i] = c[i * sc] ? u : v;
    }
}

/* The patterns of where(cond, dy, 0) and where(cond, 0, dy) (a 0-d zero), and
 * all three alike. */
static FNN_EW_INLINE void FN(where_row)(FNN_T *y, const uint8_t *c, const FNN_T *a,
                                        const FNN_T *b, int64_t n, int64_t sc, int64_t sa,
                                        int64_t sb)
{
    if (sc == 1 && sa == 1 && sb == 1) {
        FN(where_loop)(y, c, a, b, n, 1, 1, 1);
    }
    else if (sc == 1 && sa == 1 && sb == 0) {
        FN(where_loop)(y, c, a, b, n, 1, 1, 0);
    }
    else if (sc == 1 && sa == 0 && sb == 1) {
        FN(where_loop)(y, c, a, b, n, 1, 0, 1);
    }
    else {
        FN(where_loop)(y, c, a, b, n, sc, sa, sb);
    }
}

static void FN(where_range)(FNN_T *Y, const uint8_t *C, const FNN_T *A, const FNN_T *B,
                            int ndim, const int64_t *shape, const int64_t *const *st,
                            int64_t lo, int64_t hi)
{
    const int64_t L = shape[ndim - 1];
    const int64_t sc = st[0][ndim - 1], sa = st[1][ndim - 1], sb = st[2][ndim - 1];
    int64_t idx[FNN_MAX_DIMS], off[3];
    int64_t pos = lo, j = lo % L;

    seek_row_k(ndim, shape, 3, st, lo / L, idx, off);
    while (pos < hi) {
        const int64_t len = min64(L - j, hi - pos);
        FN(where_row)(Y + pos, C + off[0] + j * sc, A + off[1] + j * sa, B + off[2] + j * sb,
                      len, sc, sa, sb);
        pos += len;
        j = 0;
        next_row_k(ndim, shape, 3, st, idx, off);
    }
}

static void FN(where_elems)(const ew_call *c, int64_t lo, int64_t hi)
{
    const int64_t *st[3] = {c->sc, c->sa, c->sb};
    FN(where_range)((FNN_T *)c->out, (const uint8_t *)c->c, (const FNN_T *)c->a,
                    (const FNN_T *)c->b, c->ndim, c->shape, st, lo, hi);
}

/* Y[shape] = Cond ? A : B. */
int FN(fnn_where)(FNN_T *Y, const uint8_t *Cond, const FNN_T *A, const FNN_T *B, int ndim,
                  const int64_t *shape, const int64_t *cs, const int64_t *as, const int64_t *bs,
                  int nthreads)
{
    int64_t n;
    int status = check_layout(ndim, shape, &n);

    if (status != FNN_OK) {
        return status;
    }
    if (Y == NULL || Cond == NULL || A == NULL || B == NULL || cs == NULL || as == NULL
        || bs == NULL) {
        return FNN_ERR_ARG;
    }
    {
        const ew_call c = {.range = FN(where_elems), .out = Y, .a = A, .b = B, .c = Cond,
                           .ndim = ndim, .shape = shape, .sa = as, .sb = bs, .sc = cs};
        run_elements(&c, n, 0, nthreads);
    }
    return FNN_OK;
}

#undef FN
#undef FNN_EW_PASTE
#undef FNN_EW_PASTE2
