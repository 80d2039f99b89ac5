/*
 * optim.c -- optimizer steps over a flat parameter range, and the
 * reductions and element-wise helpers the optimizers use (clipping, loss
 * scaling, NaN checks).
 *
 * Each update is one fused pass over p[n] and its state, with no
 * temporaries, in Keras 3's formulas and operation order (see fastnn.h and
 * fastnn.backend.numpy_ops, the reference):
 *   every optimizer first: p -= decay * p   (decoupled decay, skipped when
 *                                            decay == 0, as the reference does)
 *   SGD      plain (momentum == 0 or no velocity): p -= lr g
 *            else v = momentum v - lr g; p += v, or with nesterov
 *            p += momentum v - lr g
 *   Adam     m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
 *            amsgrad: vhat = max(vhat, v), used in place of v;
 *            p -= lr_t m / (sqrt(v) + eps)
 *   RMSprop  ms = rho ms + (1 - rho) g^2; centered: mg = rho mg + (1 - rho) g,
 *            denominator ms - mg^2, else ms; step = lr g / sqrt(denom + eps);
 *            with mom (and momentum > 0): mom = momentum mom + step, p -= mom;
 *            else p -= step
 *   Adagrad  acc += g^2; p -= lr g / sqrt(acc + eps)
 *   Nadam    m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
 *            mhat = cm m + cg g; p -= mhat lr / (sqrt(v / vc) + eps), where
 *            cm = u_{t+1} / (1 - prod_{s<=t+1} u_s), cg = (1 - u_t) /
 *            (1 - prod_{s<=t} u_s) and vc = 1 - b2^t come from the caller
 *   Adamax   m += (g - m)(1 - b1); u = max(b2 u, |g|);
 *            p -= lr m / (mc (u + eps)), mc = 1 - b1^t from the caller
 *   Lion     p -= lr sign(b1 m + (1 - b1) g); m = b2 m + (1 - b2) g
 * The pointers of one update never overlap (restrict). The loops carry no
 * dependence, so the compiler vectorises them (`omp simd`).
 *
 * Helpers: fnn_sum_squares_f32 (double accumulation), fnn_scale_f32,
 * fnn_clip_f32 (NaN stays NaN, as np.clip), fnn_all_finite_f32.
 *
 * Threads: fnn_run_units over BLOCK-element units (fnn_omp.h); element-wise
 * results do not depend on the split. sum_squares adds fixed chunks of SUMSQ_CHUNK
 * elements, each summed in a fixed lane pattern, the chunk sums in chunk
 * order: the same bits on one thread or many.
 */
#include <math.h>

#include "fastnn.h"
#include "fnn_omp.h"
#include "fnn_reduce.h"

/* The updates run with subnormal floats flushed to zero (FTZ: results;
 * DAZ: inputs), as TensorFlow's CPU kernels do. A weight whose gradient is
 * zero (a dead ReLU unit) has its Adam moment decay through the subnormals
 * for hundreds of steps, and subnormal arithmetic costs ~100x: on W1 the
 * update alone took a third of the step. Flushing changes values below
 * 1.2e-38 only; the results stay the same for any thread count. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define MXCSR_FTZ_DAZ 0x8040u
static inline unsigned flush_subnormals(void)
{
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | MXCSR_FTZ_DAZ);
    return saved;
}
static inline void restore_subnormals(unsigned saved)
{
    _mm_setcsr(saved);
}
#else
static inline unsigned flush_subnormals(void)
{
    return 0;
}
static inline void restore_subnormals(unsigned saved)
{
    (void)saved;
}
#endif

/* Elements per thread before a second thread pays off (an update streams
 * 3-5 arrays; a helper streams 1), and the block a thread takes at a time. */
#define UPDATE_GRAIN 32768.0
#define HELPER_GRAIN 65536.0
#define BLOCK 8192
/* sum_squares: elements per chunk and double lanes per chunk sum. */
#define SUMSQ_CHUNK 4096
#define SUMSQ_LANES 8

/* One update or helper call: its buffers (NULL when unused) and scalars, and
 * `range`, which applies it to elements [lo, hi). Named by role: state1 is
 * SGD's velocity, Adam's m, RMSprop's ms or Adagrad's accumulator; state2
 * Adam's v or RMSprop's mg; state3 Adam's vhat or RMSprop's momentum. Nadam
 * and Adamax keep m in state1 and v (Adamax: u) in state2, Lion m in state1.
 * coef_m, coef_g and correction are the per-step scalars of Nadam and Adamax
 * (see the file's header); b1 and b2 are the betas themselves. */
typedef struct elem_call elem_call;
struct elem_call {
    void (*range)(const elem_call *c, int64_t lo, int64_t hi);
    float *p, *state1, *state2, *state3;
    const float *g;
    int64_t n;
    float lr, decay, momentum, omb1, omb2, rho, omr, eps, scale, clip_lo, clip_hi;
    float b1, b2, coef_m, coef_g, correction;
};

/* Units are BLOCK elements: a range of them is one call of c->range. */
static int elem_blocks(void *ctx, int64_t first, int64_t last, int slot)
{
    const elem_call *c = (const elem_call *)ctx;
    const int64_t hi = last * BLOCK < c->n ? last * BLOCK : c->n;
    const unsigned saved = flush_subnormals();
    (void)slot;
    c->range(c, first * BLOCK, hi);
    restore_subnormals(saved);
    return FNN_OK;
}

/* c->range over [0, c->n) on the threads `grain` elements each are worth. */
static int run_elems(elem_call *c, double grain, int nthreads)
{
    const int64_t blocks = (c->n + BLOCK - 1) / BLOCK;
    return fnn_run_units(blocks, fnn_threads_for((double)c->n, grain, blocks, nthreads),
                         elem_blocks, c);
}

/* The start every update shares: 1 when there is work (n > 0 and the
 * buffers a..d given; an update with fewer passes one twice), 0 for n == 0
 * (nothing to do, no buffer read), -1 for a negative n or a missing buffer. */
static int update_work(int64_t n, const void *a, const void *b, const void *c, const void *d)
{
    if (n < 0) {
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    return a != NULL && b != NULL && c != NULL && d != NULL ? 1 : -1;
}

/* ---- SGD ---------------------------------------------------------------- */

static void sgd_plain(float *restrict p, const float *restrict g, int64_t n, float lr, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i];
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        p[i] = pi - lr * g[i];
    }
}

static void sgd_momentum(float *restrict p, float *restrict v, const float *restrict g,
                         int64_t n, float lr, float momentum, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i];
        float vi = v[i] * momentum - lr * g[i];
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        v[i] = vi;
        p[i] = pi + vi;
    }
}

static void sgd_nesterov(float *restrict p, float *restrict v, const float *restrict g,
                         int64_t n, float lr, float momentum, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i];
        float lg = lr * g[i];
        float vi = v[i] * momentum - lg;
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        v[i] = vi;
        p[i] = pi + (momentum * vi - lg);
    }
}

static void sgd_plain_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    sgd_plain(c->p + lo, c->g + lo, hi - lo, c->lr, c->decay);
}

static void sgd_momentum_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    sgd_momentum(c->p + lo, c->state1 + lo, c->g + lo, hi - lo, c->lr, c->momentum, c->decay);
}

static void sgd_nesterov_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    sgd_nesterov(c->p + lo, c->state1 + lo, c->g + lo, hi - lo, c->lr, c->momentum, c->decay);
}

int fnn_sgd_update_f32(float *p, float *velocity, const float *g, int64_t n,
                       double lr, double momentum, int nesterov, double decay, int nthreads)
{
    const int work = update_work(n, p, g, p, p);
    if (work <= 0) {
        return work == 0 ? FNN_OK : FNN_ERR_ARG;
    }
    /* As the reference: no velocity, or momentum 0, is plain SGD and leaves
     * any velocity buffer untouched. */
    elem_call c = {.p = p, .state1 = velocity, .g = g, .n = n, .lr = (float)lr,
                   .momentum = (float)momentum, .decay = (float)decay};
    if (velocity == NULL || momentum == 0.0f) {
        c.range = sgd_plain_elems;
    }
    else {
        c.range = nesterov ? sgd_nesterov_elems : sgd_momentum_elems;
    }
    return run_elems(&c, UPDATE_GRAIN, nthreads);
}

/* ---- Adam --------------------------------------------------------------- */

static void adam_range(float *restrict p, float *restrict m, float *restrict v,
                       const float *restrict g, int64_t n, float lr_t, float omb1, float omb2,
                       float eps, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        float mi = m[i] + (gi - m[i]) * omb1;
        float vi = v[i] + (gi * gi - v[i]) * omb2;
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - lr_t * mi / (sqrtf(vi) + eps);
    }
}

static void amsgrad_range(float *restrict p, float *restrict m, float *restrict v,
                          float *restrict vhat, const float *restrict g, int64_t n, float lr_t,
                          float omb1, float omb2, float eps, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        float mi = m[i] + (gi - m[i]) * omb1;
        float vi = v[i] + (gi * gi - v[i]) * omb2;
        /* np.maximum(vhat, vi): NaN in either propagates. */
        float hi = vhat[i];
        hi = (hi >= vi || hi != hi) ? hi : vi;
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        m[i] = mi;
        v[i] = vi;
        vhat[i] = hi;
        p[i] = pi - lr_t * mi / (sqrtf(hi) + eps);
    }
}

static void adam_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    adam_range(c->p + lo, c->state1 + lo, c->state2 + lo, c->g + lo, hi - lo, c->lr, c->omb1,
               c->omb2, c->eps, c->decay);
}

static void amsgrad_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    amsgrad_range(c->p + lo, c->state1 + lo, c->state2 + lo, c->state3 + lo, c->g + lo, hi - lo,
                  c->lr, c->omb1, c->omb2, c->eps, c->decay);
}

int fnn_adam_update_f32(float *p, float *m, float *v, float *vhat, const float *g, int64_t n,
                        double lr_t, double beta1, double beta2, double eps, double decay,
                        int nthreads)
{
    /* The complements rounded once to float, as float32(1 - beta) in NumPy. */
    const float omb1 = (float)(1.0 - beta1);
    const float omb2 = (float)(1.0 - beta2);

    const int work = update_work(n, p, m, v, g);
    if (work <= 0) {
        return work == 0 ? FNN_OK : FNN_ERR_ARG;
    }
    elem_call c = {.range = vhat == NULL ? adam_elems : amsgrad_elems, .p = p, .state1 = m,
                   .state2 = v, .state3 = vhat, .g = g, .n = n, .lr = (float)lr_t,
                   .omb1 = omb1, .omb2 = omb2, .eps = (float)eps, .decay = (float)decay};
    return run_elems(&c, UPDATE_GRAIN, nthreads);
}

/* ---- RMSprop ------------------------------------------------------------ */

/* One range of every RMSprop variant: mg and mom are NULL when unused. The
 * two tests are loop-invariant: the compiler unswitches them. */
static void rmsprop_range(float *restrict p, float *restrict ms, float *restrict mg,
                          float *restrict mom, const float *restrict g, int64_t n, float lr,
                          float rho, float omr, float momentum, float eps, float decay)
{
    if (mg == NULL && mom == NULL) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            float pi = p[i];
            float si = ms[i] * rho + omr * gi * gi;
            if (decay != 0.0f) {
                pi -= decay * pi;
            }
            ms[i] = si;
            p[i] = pi - lr * gi / sqrtf(si + eps);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        float si = ms[i] * rho + omr * gi * gi;
        float denom = si;
        float step;
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        ms[i] = si;
        if (mg != NULL) {
            float ai = mg[i] * rho + omr * gi;
            mg[i] = ai;
            denom = si - ai * ai;
        }
        step = lr * gi / sqrtf(denom + eps);
        if (mom != NULL) {
            float ui = mom[i] * momentum + step;
            mom[i] = ui;
            p[i] = pi - ui;
        }
        else {
            p[i] = pi - step;
        }
    }
}

static void rmsprop_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    rmsprop_range(c->p + lo, c->state1 + lo, c->state2 ? c->state2 + lo : NULL,
                  c->state3 ? c->state3 + lo : NULL, c->g + lo, hi - lo, c->lr, c->rho, c->omr,
                  c->momentum, c->eps, c->decay);
}

int fnn_rmsprop_update_f32(float *p, float *ms, float *mg, float *mom, const float *g,
                           int64_t n, double lr, double rho, double momentum, double eps,
                           double decay, int nthreads)
{
    const float omr = (float)(1.0 - rho);

    const int work = update_work(n, p, ms, g, p);
    if (work <= 0) {
        return work == 0 ? FNN_OK : FNN_ERR_ARG;
    }
    /* As the reference: the momentum buffer is used only when momentum > 0. */
    if (!(momentum > 0.0f)) {
        mom = NULL;
    }
    elem_call c = {.range = rmsprop_elems, .p = p, .state1 = ms, .state2 = mg, .state3 = mom,
                   .g = g, .n = n, .lr = (float)lr, .rho = (float)rho, .omr = omr,
                   .momentum = (float)momentum, .eps = (float)eps, .decay = (float)decay};
    return run_elems(&c, UPDATE_GRAIN, nthreads);
}

/* ---- Adagrad ------------------------------------------------------------ */

static void adagrad_range(float *restrict p, float *restrict acc, const float *restrict g,
                          int64_t n, float lr, float eps, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        float ai = acc[i] + gi * gi;
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        acc[i] = ai;
        p[i] = pi - lr * gi / sqrtf(ai + eps);
    }
}

static void adagrad_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    adagrad_range(c->p + lo, c->state1 + lo, c->g + lo, hi - lo, c->lr, c->eps, c->decay);
}

int fnn_adagrad_update_f32(float *p, float *acc, const float *g, int64_t n,
                           double lr, double eps, double decay, int nthreads)
{
    const int work = update_work(n, p, acc, g, p);
    if (work <= 0) {
        return work == 0 ? FNN_OK : FNN_ERR_ARG;
    }
    elem_call c = {.range = adagrad_elems, .p = p, .state1 = acc, .g = g, .n = n,
                   .lr = (float)lr, .eps = (float)eps, .decay = (float)decay};
    return run_elems(&c, UPDATE_GRAIN, nthreads);
}

/* ---- Nadam -------------------------------------------------------------- */

static void nadam_range(float *restrict p, float *restrict m, float *restrict v,
                        const float *restrict g, int64_t n, float lr, float omb1, float omb2,
                        float coef_m, float coef_g, float v_correction, float eps, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        float mi = m[i] + (gi - m[i]) * omb1;
        float vi = v[i] + (gi * gi - v[i]) * omb2;
        float mhat = coef_m * mi + coef_g * gi;
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - mhat * lr / (sqrtf(vi / v_correction) + eps);
    }
}

static void nadam_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    nadam_range(c->p + lo, c->state1 + lo, c->state2 + lo, c->g + lo, hi - lo, c->lr, c->omb1,
                c->omb2, c->coef_m, c->coef_g, c->correction, c->eps, c->decay);
}

int fnn_nadam_update_f32(float *p, float *m, float *v, const float *g, int64_t n, double lr,
                         double beta1, double beta2, double coef_m, double coef_g,
                         double v_correction, double eps, double decay, int nthreads)
{
    const int work = update_work(n, p, m, v, g);
    if (work <= 0) {
        return work == 0 ? FNN_OK : FNN_ERR_ARG;
    }
    elem_call c = {.range = nadam_elems, .p = p, .state1 = m, .state2 = v, .g = g, .n = n,
                   .lr = (float)lr, .omb1 = (float)(1.0 - beta1), .omb2 = (float)(1.0 - beta2),
                   .coef_m = (float)coef_m, .coef_g = (float)coef_g,
                   .correction = (float)v_correction, .eps = (float)eps, .decay = (float)decay};
    return run_elems(&c, UPDATE_GRAIN, nthreads);
}

/* ---- Adamax ------------------------------------------------------------- */

static void adamax_range(float *restrict p, float *restrict m, float *restrict u,
                         const float *restrict g, int64_t n, float lr, float omb1, float b2,
                         float m_correction, float eps, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        float mi = m[i] + (gi - m[i]) * omb1;
        /* np.maximum(b2 u, |g|): NaN in either propagates. */
        float decayed = b2 * u[i];
        float ag = fabsf(gi);
        float ui = (decayed >= ag || decayed != decayed) ? decayed : ag;
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        m[i] = mi;
        u[i] = ui;
        p[i] = pi - lr * mi / (m_correction * (ui + eps));
    }
}

static void adamax_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    adamax_range(c->p + lo, c->state1 + lo, c->state2 + lo, c->g + lo, hi - lo, c->lr, c->omb1,
                 c->b2, c->correction, c->eps, c->decay);
}

int fnn_adamax_update_f32(float *p, float *m, float *u, const float *g, int64_t n, double lr,
                          double beta1, double beta2, double m_correction, double eps,
                          double decay, int nthreads)
{
    const int work = update_work(n, p, m, u, g);
    if (work <= 0) {
        return work == 0 ? FNN_OK : FNN_ERR_ARG;
    }
    elem_call c = {.range = adamax_elems, .p = p, .state1 = m, .state2 = u, .g = g, .n = n,
                   .lr = (float)lr, .omb1 = (float)(1.0 - beta1), .b2 = (float)beta2,
                   .correction = (float)m_correction, .eps = (float)eps,
                   .decay = (float)decay};
    return run_elems(&c, UPDATE_GRAIN, nthreads);
}

/* ---- Lion --------------------------------------------------------------- */

static void lion_range(float *restrict p, float *restrict m, const float *restrict g, int64_t n,
                       float lr, float b1, float omb1, float b2, float omb2, float decay)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        float mi = m[i];
        float c = mi * b1 + gi * omb1;
        /* np.sign: +1, -1, 0 for either zero, NaN stays NaN. */
        float s = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : (c == 0.0f ? 0.0f : c));
        if (decay != 0.0f) {
            pi -= decay * pi;
        }
        p[i] = pi - lr * s;
        m[i] = mi * b2 + gi * omb2;
    }
}

static void lion_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    lion_range(c->p + lo, c->state1 + lo, c->g + lo, hi - lo, c->lr, c->b1, c->omb1, c->b2,
               c->omb2, c->decay);
}

int fnn_lion_update_f32(float *p, float *m, const float *g, int64_t n, double lr, double beta1,
                        double beta2, double decay, int nthreads)
{
    const int work = update_work(n, p, m, g, p);
    if (work <= 0) {
        return work == 0 ? FNN_OK : FNN_ERR_ARG;
    }
    elem_call c = {.range = lion_elems, .p = p, .state1 = m, .g = g, .n = n, .lr = (float)lr,
                   .b1 = (float)beta1, .omb1 = (float)(1.0 - beta1), .b2 = (float)beta2,
                   .omb2 = (float)(1.0 - beta2), .decay = (float)decay};
    return run_elems(&c, UPDATE_GRAIN, nthreads);
}

/* ---- reductions and element-wise helpers -------------------------------- */

/* sum of x[0:n]^2 in double, lane k taking elements k, k + LANES, ...; the
 * lanes are added in lane order. The pattern is fixed by the source, not by
 * how the compiler vectorises it, so it is the same on every machine. */
static double sumsq_chunk(const float *restrict x, int64_t n)
{
    double lane[SUMSQ_LANES] = {0.0};
    double s = 0.0;
    int64_t i = 0;

    for (; i + SUMSQ_LANES <= n; i += SUMSQ_LANES) {
        for (int k = 0; k < SUMSQ_LANES; k++) {
            double d = (double)x[i + k];
            lane[k] += d * d;
        }
    }
    for (int k = 0; i < n; i++, k++) {
        double d = (double)x[i];
        lane[k] += d * d;
    }
    for (int k = 0; k < SUMSQ_LANES; k++) {
        s += lane[k];
    }
    return s;
}

typedef struct {
    const float *X;
    int64_t n;
} sumsq_chunks;

static void sumsq_chunk_fn(const void *ctx, int64_t chunk, double *out)
{
    const sumsq_chunks *sc = (const sumsq_chunks *)ctx;
    const int64_t lo = chunk * SUMSQ_CHUNK;
    out[0] = sumsq_chunk(sc->X + lo, sc->n - lo < SUMSQ_CHUNK ? sc->n - lo : SUMSQ_CHUNK);
}

int fnn_sum_squares_f32(double *out, const float *X, int64_t n, int nthreads)
{
    sumsq_chunks sc;
    const int64_t nchunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;

    if (out == NULL || n < 0 || (n > 0 && X == NULL)) {
        return FNN_ERR_ARG;
    }
    sc.X = X;
    sc.n = n;
    return fnn_ordered_sum(out, 1, nchunks, sumsq_chunk_fn, &sc,
                           fnn_threads_for((double)n, HELPER_GRAIN, nchunks, nthreads));
}

static void scale_range(float *restrict x, int64_t n, float s)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        x[i] *= s;
    }
}

static void scale_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    scale_range(c->p + lo, hi - lo, c->scale);
}

int fnn_scale_f32(float *X, int64_t n, float s, int nthreads)
{
    if (n < 0 || (n > 0 && X == NULL)) {
        return FNN_ERR_ARG;
    }
    if (n == 0) {
        return FNN_OK;
    }
    elem_call c = {.range = scale_elems, .p = X, .n = n, .scale = s};
    return run_elems(&c, HELPER_GRAIN, nthreads);
}

static void clip_range(float *restrict x, int64_t n, float lo, float hi)
{
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float xi = x[i];
        /* Both tests are false for NaN, which is kept (np.clip keeps it). */
        xi = xi < lo ? lo : xi;
        xi = xi > hi ? hi : xi;
        x[i] = xi;
    }
}

static void clip_elems(const elem_call *c, int64_t lo, int64_t hi)
{
    clip_range(c->p + lo, hi - lo, c->clip_lo, c->clip_hi);
}

int fnn_clip_f32(float *X, int64_t n, float lo, float hi, int nthreads)
{
    /* lo > hi is not an error: like np.clip, every value becomes hi. */
    if (n < 0 || (n > 0 && X == NULL)) {
        return FNN_ERR_ARG;
    }
    if (n == 0) {
        return FNN_OK;
    }
    elem_call c = {.range = clip_elems, .p = X, .n = n, .clip_lo = lo, .clip_hi = hi};
    return run_elems(&c, HELPER_GRAIN, nthreads);
}

/* Count of elements that are NaN or +-inf in x[0:n]. |x| <= FLT_MAX is
 * false exactly for those; the count (not an early exit) lets it vectorise. */
static int64_t count_nonfinite(const float *restrict x, int64_t n)
{
    int64_t bad = 0;
    #pragma omp simd reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) {
        bad += !(fabsf(x[i]) <= 3.402823466e38f);
    }
    return bad;
}

typedef struct {
    const float *X;
    int64_t n;
    int found;    /* set (atomically) by the first range to see a non-finite value */
} finite_scan;

/* Block by block, so a NaN early in a large buffer stops the scan (this
 * range's, and the others' at their next block). */
static int finite_blocks(void *ctx, int64_t first, int64_t last, int slot)
{
    finite_scan *fs = (finite_scan *)ctx;
    (void)slot;
    for (int64_t b = first; b < last && !__atomic_load_n(&fs->found, __ATOMIC_RELAXED); b++) {
        const int64_t lo = b * BLOCK;
        if (count_nonfinite(fs->X + lo, fs->n - lo < BLOCK ? fs->n - lo : BLOCK) != 0) {
            __atomic_store_n(&fs->found, 1, __ATOMIC_RELAXED);
        }
    }
    return FNN_OK;
}

int fnn_all_finite_f32(int *ok, const float *X, int64_t n, int nthreads)
{
    finite_scan fs = {.X = X, .n = n, .found = 0};
    int64_t blocks;
    int status;

    if (ok == NULL || n < 0 || (n > 0 && X == NULL)) {
        return FNN_ERR_ARG;
    }
    blocks = (n + BLOCK - 1) / BLOCK;
    status = fnn_run_units(blocks, fnn_threads_for((double)n, HELPER_GRAIN, blocks, nthreads),
                           finite_blocks, &fs);
    *ok = !fs.found;
    return status;
}
