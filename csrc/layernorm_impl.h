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

/* The build of the row loops for `isa` (the baseline's when it has none). */
static FN(ln_forward_rows_fn) FN(ln_forward_rows_for)(int isa)
{
#ifdef FNN_HAVE_X86_KERNELS
    if (isa == FNN_ISA_AVX512) {
        return FNI(fnn_ln_forward_rows, avx512);
    }
    if (isa == FNN_ISA_AVX2) {
        return FNI(fnn_ln_forward_rows, avx2);
    }
#endif
    (void)isa;
    return FNI(fnn_ln_forward_rows, generic);
}

static FN(ln_backward_rows_fn) FN(ln_backward_rows_for)(int isa)
{
#ifdef FNN_HAVE_X86_KERNELS
    if (isa == FNN_ISA_AVX512) {
        return FNI(fnn_ln_backward_rows, avx512);
    }
    if (isa == FNN_ISA_AVX2) {
        return FNI(fnn_ln_backward_rows, avx2);
    }
#endif
    (void)isa;
    return FNI(fnn_ln_backward_rows, generic);
}

/* ---- forward ----------------------------------------------------------------- */

int FN(fnn_layernorm_forward)(FNN_T *Y, FNN_T *mean, FNN_T *rstd, const FNN_T *X,
                              const FNN_T *gamma, const FNN_T *beta, int64_t M, int64_t C,
                              double eps, int rms, int nthreads)
{
    const FN(ln_forward_rows_fn) rows = FN(ln_forward_rows_for)(fnn_isa_current());
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
        rows(Y, mean, rstd, X, gamma, beta, 0, M, C, eps, rms);
    }
    else {
        int64_t b;
        #pragma omp parallel num_threads(nt)
        {
            fnn_note_team();
            #pragma omp for schedule(static) nowait
            for (b = 0; b < nblocks; b++) {
                rows(Y, mean, rstd, X, gamma, beta, b * per, ln_min64(b * per + per, M), C, eps,
                     rms);
            }
        }
    }
    return FNN_OK;
}

/* ---- backward ---------------------------------------------------------------- */

int FN(fnn_layernorm_backward)(FNN_T *dX, FNN_T *dgamma, FNN_T *dbeta, const FNN_T *dY,
                               const FNN_T *X, const FNN_T *mean, const FNN_T *rstd,
                               const FNN_T *gamma, int64_t M, int64_t C, int rms, int nthreads)
{
    const FN(ln_backward_rows_fn) rows = FN(ln_backward_rows_for)(fnn_isa_current());
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
#define LN_CHUNK(k)                                                                       \
    rows(dX, partial != NULL ? partial + (k) * 2 * C : NULL,                               \
         partial != NULL ? partial + (k) * 2 * C + C : NULL, dY, X, mean, rstd, gamma,      \
         (k) * per, ln_min64((k) * per + per, M), C, rms)
    if (nt <= 1) {
        for (int64_t k = 0; k < nchunks; k++) {
            LN_CHUNK(k);
        }
    }
    else {
        int64_t k;
        #pragma omp parallel num_threads(nt)
        {
            fnn_note_team();
            #pragma omp for schedule(static) nowait
            for (k = 0; k < nchunks; k++) {
                LN_CHUNK(k);
            }
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

#undef FNI
#undef FN
#undef FNN_LN_PASTE
#undef FNN_LN_PASTE2
