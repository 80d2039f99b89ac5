/*
 * loss.c -- losses with their gradients, and metrics, float32 in, double sums.
 *
 *   fnn_loss_f32     *loss = mean over the N samples of each sample's loss,
 *                    each multiplied by its weight when sample_weight[N] is
 *                    given (still divided by N, Keras' "sum over batch size",
 *                    not by the sum of the weights);
 *                    grad[N,D] (may be NULL) = dloss/dY_pred, overwritten.
 *   fnn_metric_f32   *sum  = sum over the N samples of each sample's metric.
 *
 * Semantics are those of fastnn.backend.numpy_ops (Keras' "sum over batch
 * size" reduction), computed element by element in double from the float32
 * inputs, each gradient rounded to float32 once:
 *   mse    mean_j e^2,                       grad 2 e / (N D),  e = p - t
 *   mae    mean_j |e|,                       grad sign(e) / (N D)  (0 at e == 0)
 *   huber  mean_j (q^2 / 2 + delta (|e| - q)), q = min(|e|, delta);
 *                                            grad clip(e, -delta, delta) / (N D)
 *   binary CE, from logits: mean_j max(p, 0) - p t + log1p(exp(-|p|));
 *                                            grad (sigmoid(p) - t) / (N D)
 *   binary CE, probabilities: q = clip(p, eps, 1 - eps),
 *       mean_j -(t log q + (1 - t) log(1 - q)); grad (q - t) / (q (1 - q)) / (N D)
 *       where eps <= p <= 1 - eps, else 0 (the clip's gradient)
 *   categorical CE, from logits: -sum_j t_j log softmax_j;
 *       grad (softmax_j sum_k t_k - t_j) / N (the exact gradient, which is
 *       the familiar softmax - t when each row of t sums to 1)
 *   categorical CE, probabilities: q = p / sum_k p_k, clipped to [eps, 1 - eps],
 *       -sum_j t_j log q_j; the gradient is taken through the normalisation
 *   sparse CE, from logits: -log softmax_label; grad (softmax - onehot) / N
 *   sparse CE, probabilities (Keras on TF): pc = clip(p), the loss is
 *       -log(pc_label / sum_k pc_k); grad (1 / sum pc - [j == label] / pc_j) / N
 *       where p_j is inside the clip range, else 0
 * with eps = 1e-7 (ops.PROB_EPSILON). Sparse labels must lie in [0, D):
 * otherwise FNN_ERR_LABEL and nothing is written. N must be >= 1 and D >= 1.
 *
 * Metrics (per sample, then summed): mae / mse (mean over D of |p - t| or
 * (p - t)^2, the difference taken in float32 as NumPy does), binary accuracy
 * (mean over D of (p > 0.5) == (t > 0.5)), categorical accuracy (argmax of p
 * equals argmax of t, first maximum wins, a NaN counts as the maximum as in
 * np.argmax), sparse accuracy (argmax of p equals the label; a label out of
 * range never matches).
 *
 * Determinism: rows are grouped into chunks of a fixed number of rows (from
 * D alone, never from the thread count); each chunk sums its samples in
 * order, and the chunk sums are added in chunk order, on one thread or many.
 */
#include <math.h>
#include <string.h>

#include "fastnn.h"
#include "fnn_index.h"
#include "fnn_omp.h"
#include "fnn_reduce.h"

#define PROB_EPS 1e-7
/* Elements per chunk of rows (rows per chunk = max(1, LOSS_CHUNK / D)). */
#define LOSS_CHUNK 4096
/* Elements per thread before a second thread pays off: each element costs
 * a log or an exp for the cross-entropies. */
#define LOSS_GRAIN 16384.0
/* Chunk sums kept on the stack; more chunks than this use the heap. */

typedef struct {
    float *grad;              /* NULL: loss only */
    const float *P;           /* predictions [N,D] */
    const float *T;           /* targets [N,D], or NULL (sparse) */
    const int64_t *labels;    /* class indices [N], or NULL */
    int *label_changed;       /* set when a label read in a row is out of range */
    const float *weights;     /* per-sample loss weights [N], or NULL (all 1) */
    int64_t N, D;
    int kind;                 /* FNN_LOSS_* or FNN_METRIC_* */
    int from_logits;
    double delta;             /* huber */
    double gscale;            /* the gradient's 1 / (N D) or 1 / N */
} loss_args;

static double clip_prob(double p)
{
    return p < PROB_EPS ? PROB_EPS : (p > 1.0 - PROB_EPS ? 1.0 - PROB_EPS : p);
}

static int inside_clip(double p)
{
    return p >= PROB_EPS && p <= 1.0 - PROB_EPS;
}

/* 1 / (1 + exp(-z)) with exp() only of a non-positive argument. */
static double sigmoid(double z)
{
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    else {
        double e = exp(z);
        return e / (1.0 + e);
    }
}

/* Rows of at most this many classes keep their exponentials (on the stack)
 * for the gradient's softmax; wider rows take exp again. */
#define LOSS_EXP_KEEP 1024

/* sum_j exp(p_j - max) of a row, and its maximum (the shift). With e (may be
 * NULL), e[j] = exp(p_j - max) as well, so that the gradient's softmax
 * q_j = e[j] / sum takes no second exp. */
static double row_expsum(const float *p, int64_t D, double *mx_out, double *e)
{
    double mx = p[0];
    double s = 0.0;
    for (int64_t j = 1; j < D; j++) {
        mx = p[j] > mx ? p[j] : mx;
    }
    for (int64_t j = 0; j < D; j++) {
        const double ej = exp((double)p[j] - mx);
        s += ej;
        if (e != NULL) {
            e[j] = ej;
        }
    }
    *mx_out = mx;
    return s;
}

/* ---- one row of each loss: returns the sample's loss, writes its gradient
 *      row g (when not NULL), scaled by c (gscale times the sample's weight) */

static double row_elementwise(const loss_args *a, const float *p, const float *t, float *g,
                              double c)
{
    const int64_t D = a->D;
    double s = 0.0;

    switch (a->kind) {
    case FNN_LOSS_MSE:
        for (int64_t j = 0; j < D; j++) {
            double e = (double)p[j] - (double)t[j];
            s += e * e;
            if (g) {
                g[j] = (float)(2.0 * e * c);
            }
        }
        break;
    case FNN_LOSS_MAE:
        for (int64_t j = 0; j < D; j++) {
            double e = (double)p[j] - (double)t[j];
            s += fabs(e);
            if (g) {
                g[j] = (float)((double)((e > 0.0) - (e < 0.0)) * c);
            }
        }
        break;
    case FNN_LOSS_HUBER: {
        const double delta = a->delta;
        for (int64_t j = 0; j < D; j++) {
            double e = (double)p[j] - (double)t[j];
            double ae = fabs(e);
            double q = ae < delta ? ae : delta;
            s += 0.5 * q * q + delta * (ae - q);
            if (g) {
                double ge = e < -delta ? -delta : (e > delta ? delta : e);
                g[j] = (float)(ge * c);
            }
        }
        break;
    }
    case FNN_LOSS_BINARY_CE:
        if (a->from_logits) {
            for (int64_t j = 0; j < D; j++) {
                double z = p[j];
                double y = t[j];
                s += (z > 0.0 ? z : 0.0) - z * y + log1p(exp(-fabs(z)));
                if (g) {
                    g[j] = (float)((sigmoid(z) - y) * c);
                }
            }
        }
        else {
            for (int64_t j = 0; j < D; j++) {
                double pj = p[j];
                double y = t[j];
                double q = clip_prob(pj);
                s += -(y * log(q) + (1.0 - y) * log(1.0 - q));
                if (g) {
                    g[j] = inside_clip(pj) ? (float)((q - y) / (q * (1.0 - q)) * c) : 0.0f;
                }
            }
        }
        break;
    default:
        break;
    }
    return s / (double)D;
}

static double row_categorical(const loss_args *a, const float *p, const float *t, float *g,
                              double c)
{
    const int64_t D = a->D;
    double loss = 0.0;

    if (a->from_logits) {
        double mx, ebuf[LOSS_EXP_KEEP];
        double *e = g != NULL && D <= LOSS_EXP_KEEP ? ebuf : NULL;
        const double sum = row_expsum(p, D, &mx, e);
        const double lse = log(sum), inv = 1.0 / sum;
        double tsum = 0.0;
        for (int64_t j = 0; j < D; j++) {
            double logq = ((double)p[j] - mx) - lse;
            loss -= (double)t[j] * logq;
            tsum += t[j];
        }
        if (g) {
            for (int64_t j = 0; j < D; j++) {
                double q = e != NULL ? e[j] * inv : exp(((double)p[j] - mx) - lse);
                g[j] = (float)((q * tsum - (double)t[j]) * c);
            }
        }
    }
    else {
        /* q = p / s, clipped; through the normalisation, with
         * u_j = dL/dq_j = -t_j / clip(q_j) inside the clip range (else 0):
         * dL/dp_k = (u_k - sum_j u_j q_j) / s. */
        double s = 0.0;
        double uq = 0.0;
        for (int64_t j = 0; j < D; j++) {
            s += p[j];
        }
        for (int64_t j = 0; j < D; j++) {
            double q = (double)p[j] / s;
            double qc = clip_prob(q);
            loss -= (double)t[j] * log(qc);
            if (inside_clip(q)) {
                uq += (-(double)t[j] / qc) * q;
            }
        }
        if (g) {
            for (int64_t j = 0; j < D; j++) {
                double q = (double)p[j] / s;
                double u = inside_clip(q) ? -(double)t[j] / clip_prob(q) : 0.0;
                g[j] = (float)((u - uq) / s * c);
            }
        }
    }
    return loss;
}

static double row_sparse(const loss_args *a, const float *p, int64_t label, float *g,
                         double c)
{
    const int64_t D = a->D;

    if (a->from_logits) {
        double mx, ebuf[LOSS_EXP_KEEP];
        double *e = g != NULL && D <= LOSS_EXP_KEEP ? ebuf : NULL;
        const double sum = row_expsum(p, D, &mx, e);
        const double lse = log(sum), inv = 1.0 / sum;
        if (g) {
            for (int64_t j = 0; j < D; j++) {
                double q = e != NULL ? e[j] * inv : exp(((double)p[j] - mx) - lse);
                g[j] = (float)((q - (j == label ? 1.0 : 0.0)) * c);
            }
        }
        return -(((double)p[label] - mx) - lse);
    }
    else {
        double s = 0.0;
        for (int64_t j = 0; j < D; j++) {
            s += clip_prob(p[j]);
        }
        if (g) {
            const double inv_s = 1.0 / s;
            for (int64_t j = 0; j < D; j++) {
                double pj = p[j];
                double v = 0.0;
                if (inside_clip(pj)) {
                    v = (j == label ? -1.0 / clip_prob(pj) : 0.0) + inv_s;
                }
                g[j] = (float)(v * c);
            }
        }
        return -(log(clip_prob(p[label])) - log(s));
    }
}

/* ---- one row of each metric ------------------------------------------- */

/* Index of the first maximum of x[0:D]; a NaN wins, as in np.argmax. */
static int64_t row_argmax(const float *x, int64_t D)
{
    int64_t best = 0;
    if (isnan(x[0])) {
        return 0;
    }
    for (int64_t j = 1; j < D; j++) {
        if (isnan(x[j])) {
            return j;
        }
        if (x[j] > x[best]) {
            best = j;
        }
    }
    return best;
}

static double row_metric(const loss_args *a, int64_t r)
{
    const int64_t D = a->D;
    const float *p = a->P + r * D;
    const float *t = a->T ? a->T + r * D : NULL;
    double s = 0.0;

    switch (a->kind) {
    case FNN_METRIC_MAE:
        for (int64_t j = 0; j < D; j++) {
            float d = p[j] - t[j];
            s += fabs((double)d);
        }
        return s / (double)D;
    case FNN_METRIC_MSE:
        for (int64_t j = 0; j < D; j++) {
            double d = (double)(p[j] - t[j]);
            s += d * d;
        }
        return s / (double)D;
    case FNN_METRIC_BINARY_ACC: {
        int64_t hits = 0;
        for (int64_t j = 0; j < D; j++) {
            hits += (p[j] > 0.5f) == (t[j] > 0.5f);
        }
        return (double)hits / (double)D;
    }
    case FNN_METRIC_CATEGORICAL_ACC:
        return row_argmax(p, D) == row_argmax(t, D) ? 1.0 : 0.0;
    case FNN_METRIC_SPARSE_ACC:
        return row_argmax(p, D) == a->labels[r] ? 1.0 : 0.0;
    default:
        return 0.0;
    }
}

/* ---- chunked, ordered sums -------------------------------------------- */

/* Sum over rows [r0, r1) of the per-sample loss (or metric), in row order. */
static double chunk_sum(const loss_args *a, int metric, int64_t r0, int64_t r1)
{
    double s = 0.0;
    const int64_t D = a->D;

    for (int64_t r = r0; r < r1; r++) {
        const float *p = a->P + r * D;
        float *g = a->grad ? a->grad + r * D : NULL;
        /* A sample's weight scales its loss and its gradient row alike. */
        const double w = a->weights ? (double)a->weights[r] : 1.0;
        const double c = a->gscale * w;
        if (metric) {
            s += row_metric(a, r);
        }
        else if (a->kind == FNN_LOSS_SPARSE_CE) {
            /* read once and checked where used: another thread may have
             * changed the label since the scan (fnn_index.h) */
            const int64_t label = fnn_read_index(a->labels + r);
            if (label < 0 || label >= D) {
                if (g != NULL) {
                    memset(g, 0, (size_t)D * sizeof(float));
                }
                #pragma omp atomic write
                *a->label_changed = 1;
                continue;
            }
            s += w * row_sparse(a, p, label, g, c);
        }
        else if (a->kind == FNN_LOSS_CATEGORICAL_CE) {
            s += w * row_categorical(a, p, a->T + r * D, g, c);
        }
        else {
            s += w * row_elementwise(a, p, a->T + r * D, g, c);
        }
    }
    return s;
}

/* One chunk of rows for fnn_ordered_sum: the chunking is a function of D
 * only, so one thread and many give the same bits. */
typedef struct {
    const loss_args *a;
    int metric;
    int64_t rows;
} loss_chunks;

static void loss_chunk(const void *ctx, int64_t chunk, double *out)
{
    const loss_chunks *lc = (const loss_chunks *)ctx;
    const int64_t r0 = chunk * lc->rows;
    const int64_t r1 = r0 + lc->rows < lc->a->N ? r0 + lc->rows : lc->a->N;
    out[0] = chunk_sum(lc->a, lc->metric, r0, r1);
}

static int ordered_sum(double *out, const loss_args *a, int metric, int nthreads)
{
    loss_chunks lc;
    int64_t nchunks;
    lc.a = a;
    lc.metric = metric;
    lc.rows = LOSS_CHUNK / a->D > 0 ? LOSS_CHUNK / a->D : 1;
    nchunks = (a->N + lc.rows - 1) / lc.rows;
    return fnn_ordered_sum(out, 1, nchunks, loss_chunk, &lc,
                           fnn_threads_for((double)a->N * (double)a->D, LOSS_GRAIN, nchunks,
                                           nthreads));
}

/* ---- entry points ------------------------------------------------------- */

int fnn_loss_f32(double *loss, float *grad, const float *Y_pred, const float *Y_true,
                 const int64_t *labels, const float *sample_weight, int64_t N, int64_t D,
                 int kind, int from_logits, double huber_delta, int nthreads)
{
    loss_args a;
    double total;
    int status, label_changed = 0;

    if (loss == NULL || Y_pred == NULL || N < 1 || D < 1 || kind < 0
        || kind >= FNN_LOSS_COUNT) {
        return FNN_ERR_ARG;
    }
    if (kind == FNN_LOSS_SPARSE_CE) {
        if (labels == NULL) {
            return FNN_ERR_ARG;
        }
        /* Checked up front, so a bad label leaves grad untouched. */
        for (int64_t i = 0; i < N; i++) {
            if (labels[i] < 0 || labels[i] >= D) {
                return FNN_ERR_LABEL;
            }
        }
    }
    else if (Y_true == NULL) {
        return FNN_ERR_ARG;
    }
    if (kind == FNN_LOSS_HUBER && !(huber_delta > 0.0)) {
        return FNN_ERR_ARG;
    }

    a.grad = grad;
    a.P = Y_pred;
    a.T = kind == FNN_LOSS_SPARSE_CE ? NULL : Y_true;
    a.labels = labels;
    a.label_changed = &label_changed;
    a.weights = sample_weight;
    a.N = N;
    a.D = D;
    a.kind = kind;
    a.from_logits = from_logits != 0;
    a.delta = huber_delta;
    /* The per-sample loss of mse .. binary CE is a mean over D; the batch
     * loss is a mean over N. */
    a.gscale = (kind == FNN_LOSS_CATEGORICAL_CE || kind == FNN_LOSS_SPARSE_CE)
                   ? 1.0 / (double)N
                   : 1.0 / ((double)N * (double)D);

    status = ordered_sum(&total, &a, 0, nthreads);
    if (status != FNN_OK) {
        return status;
    }
    if (label_changed) {
        return FNN_ERR_LABEL;
    }
    *loss = total / (double)N;
    return FNN_OK;
}

int fnn_metric_f32(double *sum, const float *Y_pred, const float *Y_true,
                   const int64_t *labels, int64_t N, int64_t D, int kind, int nthreads)
{
    loss_args a;

    if (sum == NULL || N < 0 || D < 1 || kind < 0 || kind >= FNN_METRIC_COUNT) {
        return FNN_ERR_ARG;
    }
    if (N == 0) {
        *sum = 0.0;
        return FNN_OK;
    }
    if (Y_pred == NULL || (kind == FNN_METRIC_SPARSE_ACC ? labels == NULL : Y_true == NULL)) {
        return FNN_ERR_ARG;
    }
    a.grad = NULL;
    a.P = Y_pred;
    a.T = kind == FNN_METRIC_SPARSE_ACC ? NULL : Y_true;
    a.labels = labels;
    a.label_changed = NULL;   /* metrics never index by a label */
    a.weights = NULL;
    a.N = N;
    a.D = D;
    a.kind = kind;
    a.from_logits = 0;
    a.delta = 0.0;
    a.gscale = 0.0;
    return ordered_sum(sum, &a, 1, nthreads);
}
