/*
 * compare_impl.h -- element-wise comparisons with broadcasting, written once
 * over an ordered element type. Private to elementwise.c, which includes it
 * with FNN_CT (float, double or int64_t) and FNN_EW_SFX (f32, f64 or i64)
 * defined. No include guard: being included three times is the point.
 *
 * Y (uint8, C-contiguous) = A <op> B, laid out as the binary ops (the same
 * odometer and stride specialisations). IEEE comparisons: with a NaN operand
 * every op is false but not_equal, as NumPy's.
 */
#define FNN_EW_PASTE2(name, sfx) name##_##sfx
#define FNN_EW_PASTE(name, sfx) FNN_EW_PASTE2(name, sfx)
#define FN(name) FNN_EW_PASTE(name, FNN_EW_SFX)

static FNN_EW_INLINE uint8_t FN(cmp_apply)(const int op, const FNN_CT a, const FNN_CT b)
{
    switch (op) {
    case FNN_COMPARE_EQUAL:
        return a == b;
    case FNN_COMPARE_NOT_EQUAL:
        return a != b;
    case FNN_COMPARE_LESS:
        return a < b;
    case FNN_COMPARE_LESS_EQUAL:
        return a <= b;
    case FNN_COMPARE_GREATER:
        return a > b;
    case FNN_COMPARE_GREATER_EQUAL:
        return a >= b;
    default:
        return 0;
    }
}

static FNN_EW_INLINE void FN(cmp_loop)(const int op, uint8_t *y, const FNN_CT *a,
                                       const FNN_CT *b, int64_t n, const int64_t sa,
                                       const int64_t sb)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        y[i] = FN(cmp_apply)(op, a[i * sa], b[i * sb]);
    }
}

static FNN_EW_INLINE void FN(cmp_range_op)(const int op, uint8_t *Y, const FNN_CT *A,
                                           const FNN_CT *B, int ndim, const int64_t *shape,
                                           const int64_t *as, const int64_t *bs, int64_t lo,
                                           int64_t hi)
{
    const int64_t L = shape[ndim - 1], sa = as[ndim - 1], sb = bs[ndim - 1];
    int64_t idx[FNN_MAX_DIMS], oa, ob;
    int64_t pos = lo, j = lo % L;

    seek_row(ndim, shape, as, bs, lo / L, idx, &oa, &ob);
    while (pos < hi) {
        const int64_t len = min64(L - j, hi - pos);
        const FNN_CT *a = A + oa + j * sa, *b = B + ob + j * sb;
        if (sa == 1 && sb == 1) {
            FN(cmp_loop)(op, Y + pos, a, b, len, 1, 1);
        }
        else if (sa == 1 && sb == 0) {
            FN(cmp_loop)(op, Y + pos, a, b, len, 1, 0);
        }
        else if (sa == 0 && sb == 1) {
            FN(cmp_loop)(op, Y + pos, a, b, len, 0, 1);
        }
        else {
            FN(cmp_loop)(op, Y + pos, a, b, len, sa, sb);
        }
        pos += len;
        j = 0;
        next_row(ndim, shape, as, bs, idx, &oa, &ob);
    }
}

static void FN(cmp_range)(int op, uint8_t *Y, const FNN_CT *A, const FNN_CT *B, int ndim,
                          const int64_t *shape, const int64_t *as, const int64_t *bs,
                          int64_t lo, int64_t hi)
{
    switch (op) {
    case FNN_COMPARE_EQUAL:
        FN(cmp_range_op)(FNN_COMPARE_EQUAL, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_COMPARE_NOT_EQUAL:
        FN(cmp_range_op)(FNN_COMPARE_NOT_EQUAL, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_COMPARE_LESS:
        FN(cmp_range_op)(FNN_COMPARE_LESS, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_COMPARE_LESS_EQUAL:
        FN(cmp_range_op)(FNN_COMPARE_LESS_EQUAL, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_COMPARE_GREATER:
        FN(cmp_range_op)(FNN_COMPARE_GREATER, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    case FNN_COMPARE_GREATER_EQUAL:
        FN(cmp_range_op)(FNN_COMPARE_GREATER_EQUAL, Y, A, B, ndim, shape, as, bs, lo, hi);
        break;
    default:
        break;
    }
}

static void FN(cmp_elems)(const ew_call *c, int64_t lo, int64_t hi)
{
    FN(cmp_range)(c->op, (uint8_t *)c->out, (const FNN_CT *)c->a, (const FNN_CT *)c->b, c->ndim,
                  c->shape, c->sa, c->sb, lo, hi);
}

/* Y[shape] = A <op> B as 0 / 1. */
int FN(fnn_compare)(uint8_t *Y, const FNN_CT *A, const FNN_CT *B, int ndim,
                    const int64_t *shape, const int64_t *as, const int64_t *bs, int op,
                    int nthreads)
{
    int64_t n;
    int status = check_layout(ndim, shape, &n);

    if (status != FNN_OK) {
        return status;
    }
    if (op < 0 || op >= FNN_COMPARE_COUNT || Y == NULL || A == NULL || B == NULL || as == NULL
        || bs == NULL) {
        return FNN_ERR_ARG;
    }
    {
        const ew_call c = {.range = FN(cmp_elems), .op = op, .out = Y, .a = A, .b = B,
                           .ndim = ndim, .shape = shape, .sa = as, .sb = bs};
        run_elements(&c, n, 0, nthreads);
    }
    return FNN_OK;
}

#undef FN
#undef FNN_EW_PASTE
#undef FNN_EW_PASTE2
