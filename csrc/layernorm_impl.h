/*
 * layernorm_impl.h -- layernorm.c's entry points, written once over an
 * element type: checks, the blocks of rows shared out over threads, the
 * column sums' chunks and their ordered total. The per-row loops are
 * layernorm_rows_impl.h's, in the build of the ISA in force. Private to
 * layernorm.c, which includes it once per type with FNN_T (float or double)
 * and FNN_LN_SFX (f32 or f64) defined. No include guard.
 */
#define FNN_LN_PASTE2(name, sfx) name##_##sfx
#define FNN_LN_PASTE(name, sfx) FNN_LN_PASTE2(name, sfx)
#define FN(name) FNN_LN_PASTE(name, FNN_LN_SFX)
#define FNI(name, isa) FNN_LN_PASTE(FN(name), isa)

typedef void (*FN(ln_forward_rows_fn))(FNN_T *Y, FNN_T *mean, FNN_T *rstd, const FNN_T *X,
                                       const FNN_T *gamma, const FNN_T *beta, int64_t r0,
                                       int64_t r1, int64_t C, double eps, int rms);
typedef void (*FN(ln_backward_rows_fn))(FNN_T *dX, double *cg, double *cb, const FNN_T *dY,
                                        const FNN_T *X, const FNN_T *mean, const FNN_T *rstd,
                                        const FNN_T *gamma, int64_t r0, int64_t r1, int64_t C,
                                        int rms);

/* One call, for the range functions below: forward uses fwd, Y (the output)
 * and beta, eps; backward bwd, Y (dX, may be NULL), dY and partial. */
typedef struct {
    FN(ln_forward_rows_fn) fwd;
    FN(ln_backward_rows_fn) bwd;
    FNN_T *Y, *mean_out, *rstd_out;
    double *partial;            /* NULL, or chunk k's [sum dy xhat | sum dy] at k * 2C */
    const FNN_T *X, *dY, *mean, *rstd, *gamma, *beta;
    int64_t per, M, C;          /* per: rows of a unit */
    double eps;
    int rms;
} FN(ln_call);

/* Forward: row blocks [first, last); rows are independent. */
static int FN(ln_forward_blocks)(void *ctx, int64_t first, int64_t last, int slot)
{
    const FN(ln_call) *c = (const FN(ln_call) *)ctx;
    (void)slot;
    c->fwd(c->Y, c->mean_out, c->rstd_out, c->X, c->gamma, c->beta, first * c->per,
           ln_min64(last * c->per, c->M), c->C, c->eps, c->rms);
    return FNN_OK;
}

/* Backward: row chunks [first, last), each into its own partials. */
static int FN(ln_backward_chunks)(void *ctx, int64_t first, int64_t last, int slot)
{
    const FN(ln_call) *c = (const FN(ln_call) *)ctx;
    const int64_t C = c->C;
    (void)slot;
    for (int64_t k = first; k < last; k++) {
        double *part = c->partial != NULL ? c->partial + k * 2 * C : NULL;
        c->bwd(c->Y, part, part != NULL ? part + C : NULL, c->dY, c->X, c->mean, c->rstd,
               c->gamma, k * c->per, ln_min64(k * c->per + c->per, c->M), C, c->rms);
    }
    return FNN_OK;
}

/* `units` of c's M x C elements, on the threads they are worth. */
static void FN(ln_run)(const FN(ln_call) *c, int64_t units, fnn_unit_fn fn, int nthreads)
{
    fnn_run_units(units, fnn_threads_for((double)c->M * (double)c->C, LN_GRAIN, units, nthreads),
                  fn, (void *)c);
}

/* ---- forward ----------------------------------------------------------------- */

int FN(fnn_layernorm_forward)(FNN_T *Y, FNN_T *mean, FNN_T *rstd, const FNN_T *X,
                              const FNN_T *gamma, const FNN_T *beta, int64_t M, int64_t C,
                              double eps, int rms, int nthreads)
{
    const FN(ln_forward_rows_fn) rows = fnn_kernels()->layernorm.FN(forward);
    int64_t per, nblocks;
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
    {
        const FN(ln_call) c = {.fwd = rows, .Y = Y, .mean_out = mean, .rstd_out = rstd, .X = X,
                               .gamma = gamma, .beta = beta, .per = per, .M = M, .C = C,
                               .eps = eps, .rms = rms};
        FN(ln_run)(&c, nblocks, FN(ln_forward_blocks), nthreads);
    }
    return FNN_OK;
}

/* ---- backward ---------------------------------------------------------------- */

int FN(fnn_layernorm_backward)(FNN_T *dX, FNN_T *dgamma, FNN_T *dbeta, const FNN_T *dY,
                               const FNN_T *X, const FNN_T *mean, const FNN_T *rstd,
                               const FNN_T *gamma, int64_t M, int64_t C, int rms, int nthreads)
{
    const FN(ln_backward_rows_fn) rows = fnn_kernels()->layernorm.FN(backward);
    const int cols = dgamma != NULL || dbeta != NULL;
    int64_t per, nchunks;
    double *partial = NULL;     /* chunk k: [sum dy xhat | sum dy] at k * 2C */
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
    {
        const FN(ln_call) c = {.bwd = rows, .Y = dX, .partial = partial, .dY = dY, .X = X,
                               .mean = mean, .rstd = rstd, .gamma = gamma, .per = per, .M = M,
                               .C = C, .rms = rms};
        FN(ln_run)(&c, nchunks, FN(ln_backward_chunks), nthreads);
    }
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

#undef FNI
#undef FN
#undef FNN_LN_PASTE
#undef FNN_LN_PASTE2
