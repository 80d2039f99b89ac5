/*
 * fastnn.h -- every C kernel of fastnn, declared in one place.
 *
 * Notation (used in C and Python alike):
 *   N batch, T time, I input features, O output features, H/W spatial,
 *   C channels, K kernel size / GEMM inner dimension.
 *   Arrays X, Y, W, b; gradients dX, dY, dW, db; recurrent state h, c.
 *
 * Contract shared by all kernels:
 *   - NumPy owns every buffer. Inputs are valid, C-contiguous (or described
 *     by an explicit leading dimension), and do not overlap outputs unless a
 *     kernel says it works in place. Shapes were checked above (Cython).
 *   - Argument order: outputs, then const inputs, then sizes/strides, then
 *     scalars, then `nthreads`.
 *   - Every kernel returns a status: FNN_OK (0) or a negative FNN_ERR_*.
 *     No kernel prints, exits, aborts or asserts on data.
 *   - `nthreads` is the caller's thread budget; a kernel may use fewer (small
 *     problems run on one thread). Work is split over outputs only and every
 *     reduction runs over fixed chunks combined in a fixed order, so results
 *     are bitwise identical for any `nthreads`.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------ */
enum {
    FNN_OK = 0,
    FNN_ERR_ARG = -1,      /* a size, stride or enum value is invalid */
    FNN_ERR_NOMEM = -2,    /* a scratch allocation failed */
    FNN_ERR_ISA = -3,      /* the requested ISA is not supported by this CPU/OS */
    FNN_ERR_LABEL = -4     /* a class index is out of range */
};
const char *fnn_strerror(int status);

/* ---- runtime: OpenMP and ISA dispatch (runtime.c, cpu.c) --------------- */
int fnn_openmp_enabled(void);        /* 1 when compiled with OpenMP */
int fnn_num_procs(void);             /* cores OpenMP sees (1 without OpenMP) */

enum { FNN_ISA_GENERIC = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2, FNN_ISA_COUNT = 3 };
int fnn_isa_supported(int isa);      /* CPU flags and OS register state (XGETBV) */
int fnn_isa_best(void);              /* best supported ISA */
int fnn_isa_select(int isa);         /* fill the kernel table; FNN_ERR_ISA if unsupported */
int fnn_isa_current(void);
const char *fnn_isa_name(int isa);   /* "generic", "avx2", "avx512" */
/* The float32 GEMM's tile (MR x NR) and cache blocking (MC, KC, NC) in force:
 * out[0..4] = MR, NR, MC, KC, NC. */
void fnn_gemm_blocking(int64_t out[5]);

/* ---- activations (act.c) ----------------------------------------------- */
/* Keras' built-ins; leaky_relu uses negative_slope 0.2 and elu alpha 1.0,
 * Keras' defaults; gelu is the exact (erf) form; swish is x * sigmoid(x). */
enum {
    FNN_ACT_LINEAR = 0, FNN_ACT_RELU = 1, FNN_ACT_LEAKY_RELU = 2, FNN_ACT_ELU = 3,
    FNN_ACT_SIGMOID = 4, FNN_ACT_TANH = 5, FNN_ACT_SOFTMAX = 6, FNN_ACT_GELU = 7,
    FNN_ACT_SWISH = 8, FNN_ACT_COUNT = 9
};
#define FNN_LEAKY_RELU_SLOPE 0.2
#define FNN_ELU_ALPHA 1.0

/* Y[N,O] = act(X[N,O]); softmax runs over the last axis (rows of length O).
 * Y may equal X (in place). */
int fnn_act_forward_f32(float *Y, const float *X, int64_t N, int64_t O, int act, int nthreads);
/* dX[N,O] = dY * act'(.) given the activation's input X and output Y.
 * Either may be NULL when `act` does not need it: fnn_act_needs_input(act)
 * says whether X is required (gelu, swish, elu...). dX may equal dY. */
int fnn_act_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                         int64_t N, int64_t O, int act, int nthreads);
int fnn_act_needs_input(int act);    /* 1 when the backward pass reads X, 0 when Y suffices */

/* ---- GEMM (gemm.c, kernels/gemm_<isa>.c) ------------------------------- */
/* C[M,N] = act(alpha * op(A) @ op(B) + beta * C + bias[N])
 *   op(A) is M x K: A is stored M x K (lda >= K), or K x M when trans_a (lda >= M).
 *   op(B) is K x N: B is stored K x N (ldb >= N), or N x K when trans_b (ldb >= K).
 *   C is M x N with ldc >= N. bias may be NULL. act is an FNN_ACT_* other than
 *   softmax. beta == 0 never reads C (it may hold NaN). K == 0 gives
 *   act(beta * C + bias). Split over output tiles only: bitwise identical for
 *   any nthreads. */
int fnn_gemm_f32(float *C, const float *A, const float *B, const float *bias,
                 int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                 int trans_a, int trans_b, float alpha, float beta, int act, int nthreads);
/* fnn_gemm_f32 that also keeps the pre-activation: Z (M x N, leading
 * dimension ldc, not C) = alpha * op(A) @ op(B) + beta * C + bias, and
 * C = act(Z), each tile's Z written while it is in cache. Z may be NULL
 * (then exactly fnn_gemm_f32). */
int fnn_gemm_keep_f32(float *C, float *Z, const float *A, const float *B, const float *bias,
                      int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                      int trans_a, int trans_b, float alpha, float beta, int act, int nthreads);
int fnn_gemm_f64(double *C, const double *A, const double *B, const double *bias,
                 int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                 int trans_a, int trans_b, double alpha, double beta, int act, int nthreads);

/* ---- dense layers (dense.c) -------------------------------------------- */
/* Backward of Y = act(X W + b) for X[N,I], W[I,O], b[O]. (The parameter is
 * spelled `In`: <complex.h>, which NumPy's headers pull in, defines I.)
 *   dZ[N,O] (scratch, overwritten) = dY * act'(Z) using Z (pre-activation,
 *   may be NULL unless fnn_act_needs_input) or Y. act == FNN_ACT_LINEAR
 *   reads dY in place and leaves dZ untouched. dW[I,O] = X^T dZ and db[O] = column sums of dZ (both
 *   OVERWRITTEN; db may be NULL when the layer has no bias).
 *   dX[N,I] = dZ W^T (overwritten; may be NULL to skip, for the first layer). */
int fnn_dense_backward_f32(float *dX, float *dW, float *db, float *dZ,
                           const float *dY, const float *X, const float *W,
                           const float *Z, const float *Y,
                           int64_t N, int64_t In, int64_t O, int act, int nthreads);

/* Inference through a stack of dense layers (dense_stack.c):
 *   H_0 = X[rows, dims[0]], H_l = act_l(H_{l-1} W_l + b_l), Y[rows, dims[L]] = H_L
 * for l = 1..L (nlayers = L <= FNN_DENSE_STACK_MAX_LAYERS): W[l-1] row-major
 * dims[l-1] x dims[l], b[l-1] (dims[l]) or NULL, acts[l-1] any FNN_ACT_* code.
 * Each block of rows runs through every layer while in cache. Bitwise equal
 * to fnn_gemm_f32 layer by layer (softmax: fnn_softmax_forward_f32 after it),
 * for any nthreads. Y must not overlap X. */
#define FNN_DENSE_STACK_MAX_LAYERS 64
int fnn_dense_stack_f32(float *Y, const float *X, int64_t rows, int nlayers, const int64_t *dims,
                        const float *const *W, const float *const *b, const int *acts,
                        int nthreads);

/* db[O] = sum over rows of dY[N,O], fixed-chunk order (deterministic). */
int fnn_colsum_f32(float *out, const float *X, int64_t N, int64_t O, int nthreads);

/* ---- convolution (conv.c) ---------------------------------------------- */
/* Geometry of a 2-D convolution over NHWC images: X[N,H,W,C], kernel
 * W[KH,KW,C,F] (Keras' layout), output Y[N,OH,OW,F]. Output pixel (i, j)
 * reads X rows i*stride_h + p*dil_h - pad_top and columns j*stride_w +
 * q*dil_w - pad_left (zero outside X). The caller derives OH, OW and the
 * padding from Keras' rules; the kernels accept any geometry safely. */
typedef struct {
    int64_t N, H, W, C;
    int64_t KH, KW, F;
    int64_t OH, OW;
    int64_t stride_h, stride_w, dil_h, dil_w;
    int64_t pad_top, pad_left;
} fnn_conv2d_shape;

/* Y[N,OH,OW,F] = act(Z), Z = conv(X, W) + b (b may be NULL). Z (may be NULL)
 * receives the pre-activation; softmax runs over F. `work` (work_len floats,
 * may be NULL) is scratch: used when it holds fnn_conv2d_work_floats(shape,
 * 0, nthreads) floats (plus 16 for alignment), else the kernel allocates. */
int fnn_conv2d_forward_f32(float *Y, float *Z, float *work, const float *X, const float *Wt,
                           const float *b, const fnn_conv2d_shape *shape, int64_t work_len,
                           int act, int nthreads);
/* Backward of fnn_conv2d_forward_f32: dZ[N,OH,OW,F] (scratch, overwritten) =
 * dY * act'(Z or Y) (as fnn_dense_backward_f32: untouched for linear); dW[KH,KW,C,F] and db[F]
 * (may be NULL) OVERWRITTEN; dX[N,H,W,C] overwritten (may be NULL to skip).
 * `work` as for the forward pass, with backward = 1. */
int fnn_conv2d_backward_f32(float *dX, float *dW, float *db, float *dZ, float *work,
                            const float *dY, const float *X, const float *Wt, const float *Z,
                            const float *Y, const fnn_conv2d_shape *shape, int64_t work_len,
                            int act, int nthreads);
/* Scratch floats the kernels above use with `nthreads` (0 when none). */
int64_t fnn_conv2d_work_floats(const fnn_conv2d_shape *shape, int backward, int nthreads);

/* ---- losses (loss.c) --------------------------------------------------- */
/* Y_pred and the gradient are [N,D]. Targets: [N,D] floats for every loss
 * but sparse categorical, whose targets are N class indices (int64).
 * The loss is Keras' "sum over batch size": the mean over the N samples of
 * each sample's loss (itself a mean over D for mse, mae, huber and binary CE).
 * `grad` (may be NULL) receives dLoss/dY_pred, OVERWRITTEN.
 * `*loss` receives the mean loss, summed over fixed chunks in fixed order.
 * from_logits: Y_pred holds logits (sigmoid / softmax fused into the loss).
 * Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does. */
enum {
    FNN_LOSS_MSE = 0, FNN_LOSS_MAE = 1, FNN_LOSS_HUBER = 2,
    FNN_LOSS_BINARY_CE = 3, FNN_LOSS_CATEGORICAL_CE = 4, FNN_LOSS_SPARSE_CE = 5,
    FNN_LOSS_COUNT = 6
};
/* sample_weight[N] (may be NULL: every weight 1) multiplies each sample's loss
 * and gradient row; the mean still divides by N, not by the sum of weights. */
int fnn_loss_f32(double *loss, float *grad, const float *Y_pred, const float *Y_true,
                 const int64_t *labels, const float *sample_weight, int64_t N, int64_t D,
                 int kind, int from_logits, double huber_delta, int nthreads);

/* ---- metrics (loss.c) -------------------------------------------------- */
/* Sum over the N samples of the per-sample metric (the caller divides):
 * mae/mse (mean over D), binary accuracy (threshold 0.5, mean over D),
 * categorical accuracy (argmax match), sparse categorical accuracy. */
enum {
    FNN_METRIC_MAE = 0, FNN_METRIC_MSE = 1, FNN_METRIC_BINARY_ACC = 2,
    FNN_METRIC_CATEGORICAL_ACC = 3, FNN_METRIC_SPARSE_ACC = 4, FNN_METRIC_COUNT = 5
};
int fnn_metric_f32(double *sum, const float *Y_pred, const float *Y_true,
                   const int64_t *labels, int64_t N, int64_t D, int kind, int nthreads);

/* ---- optimizers (optim.c): one fused loop over a flat range ------------- */
/* Every update first applies decoupled weight decay, p -= decay * p, where
 * decay = learning_rate * weight_decay (Keras 3), then the optimizer's step.
 * Scalars that change per step (bias corrections, scheduled rates) are
 * computed by the caller. */
int fnn_sgd_update_f32(float *p, float *velocity, const float *g, int64_t n,
                       double lr, double momentum, int nesterov, double decay, int nthreads);
/* Keras' Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
 * p -= lr_t * m / (sqrt(v) + eps), lr_t = lr sqrt(1 - b2^t) / (1 - b1^t).
 * vhat (may be NULL) enables amsgrad: vhat = max(vhat, v) replaces v. */
int fnn_adam_update_f32(float *p, float *m, float *v, float *vhat, const float *g, int64_t n,
                        double lr_t, double beta1, double beta2, double eps, double decay,
                        int nthreads);
/* Keras' RMSprop: ms = rho ms + (1 - rho) g^2; centered keeps mg = rho mg + (1-rho) g
 * and uses ms - mg^2; step = lr g / sqrt(denominator + eps); with momentum,
 * mom = momentum mom + step, p -= mom; else p -= step. mg/mom may be NULL. */
int fnn_rmsprop_update_f32(float *p, float *ms, float *mg, float *mom, const float *g,
                           int64_t n, double lr, double rho, double momentum, double eps,
                           double decay, int nthreads);
/* Keras' Adagrad: acc += g^2; p -= lr g / sqrt(acc + eps). */
int fnn_adagrad_update_f32(float *p, float *acc, const float *g, int64_t n,
                           double lr, double eps, double decay, int nthreads);
/* Keras' Nadam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
 * p -= (coef_m m + coef_g g) lr / (sqrt(v / v_correction) + eps), with the
 * momentum schedule u_t = b1 (1 - 0.5 * 0.96^t) folded into coef_m =
 * u_{t+1} / (1 - u_1...u_{t+1}) and coef_g = (1 - u_t) / (1 - u_1...u_t), and
 * v_correction = 1 - b2^t. */
int fnn_nadam_update_f32(float *p, float *m, float *v, const float *g, int64_t n, double lr,
                         double beta1, double beta2, double coef_m, double coef_g,
                         double v_correction, double eps, double decay, int nthreads);
/* Keras' Adamax: m += (g - m)(1 - b1); u = max(b2 u, |g|);
 * p -= lr m / (m_correction (u + eps)), m_correction = 1 - b1^t. */
int fnn_adamax_update_f32(float *p, float *m, float *u, const float *g, int64_t n, double lr,
                          double beta1, double beta2, double m_correction, double eps,
                          double decay, int nthreads);
/* Keras' Lion: p -= lr sign(b1 m + (1 - b1) g); then m = b2 m + (1 - b2) g. */
int fnn_lion_update_f32(float *p, float *m, const float *g, int64_t n, double lr, double beta1,
                        double beta2, double decay, int nthreads);

/* ---- reductions and elementwise helpers (optim.c) ---------------------- */
int fnn_sum_squares_f32(double *out, const float *X, int64_t n, int nthreads); /* fixed chunks */
int fnn_scale_f32(float *X, int64_t n, float s, int nthreads);                 /* X *= s */
int fnn_clip_f32(float *X, int64_t n, float lo, float hi, int nthreads);       /* in place */
/* 1 when every element is finite, else 0 (written to *ok). */
int fnn_all_finite_f32(int *ok, const float *X, int64_t n, int nthreads);

/* ---- weight regularizers (regularize.c) -------------------------------- */
/* Keras' L1 / L2 penalties on one flat range W[n]:
 *   *penalty = l1 sum |W| + l2 sum W^2 (double, fixed chunks and lanes);
 *   dW[n] += l1 sign(W) + 2 l2 W (ACCUMULATES; dW may be NULL for the penalty
 *   alone). l1, l2 must be finite and >= 0. */
int fnn_regularize_f32(double *penalty, float *dW, const float *W, int64_t n, double l1,
                       double l2, int nthreads);

/* ---- dropout (dropout.c) ---------------------------------------------- */
/* Inverted dropout with a counter-based mask: element i of a call is kept
 * when (h(i) >> 11) >= threshold, h(i) = mix64(mix64(seed) + (i + 1) *
 * 0x9E3779B97F4A7C15) mod 2^64, mix64 = splitmix64's finaliser. The caller
 * passes threshold = floor(rate * 2^53) and scale = 1 / (1 - rate). The mask
 * depends on (seed, i) alone: identical for any nthreads, and NumpyOps
 * computes the same one.
 *   fnn_dropout_mask:         mask[n] = keep (1) or drop (0)
 *   fnn_dropout_forward_f32:  Y[n] = keep ? X * scale : 0, mask[n] (may be NULL);
 *                             Y may equal X
 *   fnn_dropout_backward_f32: dX[n] = mask ? dY * scale : 0; dX may equal dY */
int fnn_dropout_mask(uint8_t *mask, int64_t n, uint64_t seed, uint64_t threshold, int nthreads);
int fnn_dropout_forward_f32(float *Y, uint8_t *mask, const float *X, int64_t n, uint64_t seed,
                            uint64_t threshold, float scale, int nthreads);
int fnn_dropout_backward_f32(float *dX, const float *dY, const uint8_t *mask, int64_t n,
                             float scale, int nthreads);

/* ---- batch normalization (norm.c) -------------------------------------- */
/* X[M,C]: M rows (every axis but the last) of C channels. Sums in double
 * over fixed row chunks combined in fixed order (bitwise for any nthreads).
 *   stats:   mean[C], var[C] = batch mean and biased variance (OVERWRITTEN);
 *            M >= 1
 *   update_moving: moving = moving * momentum + batch * (1 - momentum), in place
 *   forward: Y[M,C] = (X - mean) * k + beta, k = gamma / sqrt(var + eps);
 *            gamma, beta may be NULL (1, 0); Y may equal X
 *   backward: dbeta = sum dY, dgamma = sum dY (X - mean) / sqrt(var + eps)
 *            (both OVERWRITTEN, either may be NULL); dX[M,C] (may be NULL) =
 *            the gradient through the batch statistics when batch_stats,
 *            else through fixed (moving) statistics: dY * k. */
int fnn_batchnorm_stats_f32(float *mean, float *var, const float *X, int64_t M, int64_t C,
                            int nthreads);
int fnn_batchnorm_update_moving_f32(float *moving_mean, float *moving_var, const float *mean,
                                    const float *var, int64_t C, double momentum);
int fnn_batchnorm_forward_f32(float *Y, const float *X, const float *mean, const float *var,
                              const float *gamma, const float *beta, int64_t M, int64_t C,
                              double eps, int nthreads);
int fnn_batchnorm_backward_f32(float *dX, float *dgamma, float *dbeta, const float *dY,
                               const float *X, const float *mean, const float *var,
                               const float *gamma, int64_t M, int64_t C, double eps,
                               int batch_stats, int nthreads);

/* ---- layer / RMS normalization over the last axis (layernorm.c) -------- */
/* X, Y, dX, dY [M,C] C-contiguous: M rows of C >= 1 features; gamma, beta,
 * dgamma, dbeta [C]; mean, rstd [M]. Keras 3's formulas:
 *   layer norm: mean, biased var of each row; rstd = 1 / sqrt(var + eps);
 *               Y = (X - mean) * rstd * gamma + beta
 *   rms (1):    rstd = 1 / sqrt(mean(X^2) + eps); Y = X * rstd * gamma; no
 *               beta (FNN_ERR_ARG if given); mean is neither written nor read
 * gamma, beta may be NULL (1, 0). Row statistics in double, one pass shifted
 * by the row's first element (a large offset does not cancel the variance).
 *   forward:  Y (may equal X); mean, rstd rounded to the element type, when
 *             not NULL (what the backward takes). eps >= 0 and finite.
 *   backward: from the forward's mean and rstd: dX (may be NULL; may equal
 *             dY or X), the exact gradient through the row statistics;
 *             dgamma = sum over rows of dY * xhat, dbeta = sum of dY
 *             (OVERWRITTEN; either may be NULL), xhat = (X - mean) * rstd.
 *             Column sums over fixed row chunks added in order: bitwise
 *             identical for any nthreads. M == 0 gives zero dgamma, dbeta. */
int fnn_layernorm_forward_f32(float *Y, float *mean, float *rstd, const float *X,
                              const float *gamma, const float *beta, int64_t M, int64_t C,
                              double eps, int rms, int nthreads);
int fnn_layernorm_forward_f64(double *Y, double *mean, double *rstd, const double *X,
                              const double *gamma, const double *beta, int64_t M, int64_t C,
                              double eps, int rms, int nthreads);
int fnn_layernorm_backward_f32(float *dX, float *dgamma, float *dbeta, const float *dY,
                               const float *X, const float *mean, const float *rstd,
                               const float *gamma, int64_t M, int64_t C, int rms,
                               int nthreads);
int fnn_layernorm_backward_f64(double *dX, double *dgamma, double *dbeta, const double *dY,
                               const double *X, const double *mean, const double *rstd,
                               const double *gamma, int64_t M, int64_t C, int rms,
                               int nthreads);

/* ---- pooling (pool.c) ---------------------------------------------------- */
/* NHWC: X[N,H,W,C], Y and dY [N,OH,OW,C]. Window (i, j) covers rows
 * i*SH - top .. + KH - 1 and columns j*SW - left .. + KW - 1 of X; positions
 * outside X are padding: never a maximum, not counted in a mean. OH, OW, top
 * and left come from the caller (Keras' "valid"/"same" formulas); every window
 * must reach into X (else FNN_ERR_ARG).
 *   max forward:  Y = window maximum; argmax[N,OH,OW,C] (int64, may be NULL)
 *                 = h * W + w of the first maximum in row-major window order;
 *                 a NaN is its window's maximum (the first NaN wins)
 *   max backward: dX (OVERWRITTEN) = zeros plus dY[n,i,j,c] at (n, argmax, c)
 *   avg forward:  Y = window sum / count of the window's elements inside X
 *   avg backward: dX (OVERWRITTEN) = each dY / count over those elements
 * Split over (image, channel block): bitwise identical for any nthreads. */
int fnn_max_pool2d_forward_f32(float *Y, int64_t *argmax, const float *X,
                               int64_t N, int64_t H, int64_t W, int64_t C,
                               int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                               int64_t SH, int64_t SW, int64_t top, int64_t left, int nthreads);
int fnn_max_pool2d_backward_f32(float *dX, const float *dY, const int64_t *argmax,
                                int64_t N, int64_t H, int64_t W, int64_t C,
                                int64_t OH, int64_t OW, int nthreads);
int fnn_avg_pool2d_forward_f32(float *Y, const float *X,
                               int64_t N, int64_t H, int64_t W, int64_t C,
                               int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                               int64_t SH, int64_t SW, int64_t top, int64_t left, int nthreads);
int fnn_avg_pool2d_backward_f32(float *dX, const float *dY,
                                int64_t N, int64_t H, int64_t W, int64_t C,
                                int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                                int64_t SH, int64_t SW, int64_t top, int64_t left, int nthreads);

/* ---- embedding (embedding.c) ------------------------------------------ */
/* M = N*T lookups idx[M] (int64, each in [0, V), else FNN_ERR_ARG before any
 * output is written) into table[V,D].
 *   forward:  Y[M,D] = table[idx[m]]
 *   backward: dtable[V,D] (OVERWRITTEN) = scatter-add of dY[M,D] rows; each
 *             thread owns a fixed range of table rows and adds in increasing
 *             m, so the sums are bitwise the same for any nthreads. */
int fnn_embedding_forward_f32(float *Y, const int64_t *idx, const float *table,
                              int64_t M, int64_t V, int64_t D, int nthreads);
int fnn_embedding_forward_f64(double *Y, const int64_t *idx, const double *table,
                              int64_t M, int64_t V, int64_t D, int nthreads);
int fnn_embedding_backward_f32(float *dtable, const float *dY, const int64_t *idx,
                               int64_t M, int64_t V, int64_t D, int nthreads);
int fnn_embedding_backward_f64(double *dtable, const double *dY, const int64_t *idx,
                               int64_t M, int64_t V, int64_t D, int nthreads);

/* ---- recurrent layers (rnn.c) ------------------------------------------- */
/* Whole sequences in one call. X[N,T,In], W[In,G*U] (Keras' kernel),
 * R[U,G*U] (recurrent_kernel), b: G*U floats (simple, lstm) or 2*3U (gru:
 * input bias then recurrent bias, reset_after) or NULL; mask[N,T] (0 = the
 * step keeps the previous state, indexed by original time) or NULL. Gates
 * G = 1 (simple), 4 (lstm: i f c o), 3 (gru: z r h); act and ract are
 * element-wise FNN_ACT_* codes (not softmax). Step k processes time k, or
 * T-1-k with go_backwards; hs[N,T,U] holds the state after each step, in
 * processing order. cache: N*T*fnn_rnn_cache_width(cell, U) floats filled
 * by forward for backward (contents private to rnn.c; NULL in forward for
 * inference). Backward: dhs[N,T,U] = dLoss/dhs; dW, dR and db (shaped like
 * W, R, b; db may be NULL) are OVERWRITTEN; dX[N,T,In] (may be NULL) is
 * overwritten. Bitwise identical for any nthreads. */
enum { FNN_RNN_SIMPLE = 0, FNN_RNN_LSTM = 1, FNN_RNN_GRU = 2, FNN_RNN_COUNT = 3 };
int64_t fnn_rnn_cache_width(int cell, int64_t U);   /* 0 for an unknown cell */
int fnn_rnn_forward_f32(float *hs, float *cache, const float *X, const float *W, const float *R,
                        const float *b, const uint8_t *mask, int64_t N, int64_t T, int64_t In,
                        int64_t U, int cell, int act, int ract, int go_backwards, int nthreads);
int fnn_rnn_backward_f32(float *dX, float *dW, float *dR, float *db, const float *dhs,
                         const float *X, const float *W, const float *R, const float *hs,
                         const float *cache, const uint8_t *mask, int64_t N, int64_t T,
                         int64_t In, int64_t U, int cell, int act, int ract, int go_backwards,
                         int nthreads);

/* ---- broadcast element-wise binary ops (elementwise.c) ----------------- */
/* Y = A <op> B with NumPy's broadcasting, described by the caller: Y is
 * C-contiguous of shape[ndim] (1 <= ndim <= FNN_MAX_DIMS, every shape[d] >= 1:
 * empty outputs are the caller's), and the operand element read at output
 * index (i_0, .., i_{ndim-1}) is A[sum_d i_d * as[d]] (likewise B with bs):
 * element strides, 0 on an axis the operand is broadcast along. The caller
 * collapses adjacent axes first (same-shape calls become one axis, row and
 * column broadcasts two), so the inner loop runs over a contiguous (stride 1)
 * or repeated (stride 0) operand. maximum/minimum propagate NaN (NumPy's
 * np.maximum / np.minimum); nothing checks for NaN or inf.
 *   forward:  Y = A <op> B. Y may equal A or B when that operand has Y's
 *             layout (in place); no other overlap.
 *   backward: dA (laid out by `as`, like A: A C-contiguous) = the sum of
 *             dY * d(A <op> B)/dA over the output elements that read each A
 *             element (broadcast axes summed), OVERWRITTEN; dB likewise with
 *             `bs`. Either may be NULL (skipped). maximum: A gets dY where
 *             A >= B, B elsewhere; minimum: A where A <= B, B elsewhere
 *             (TensorFlow's rule for ties). divide: dA = dY / B, dB = -dY A / B^2.
 *             power (Y = A^B, pow(0, 0) = 1): dA = dY B A^(B-1), dB = dY A^B log(A)
 *             where A > 0, else 0 (TensorFlow's rule).
 *             A and B are read for every op but add and subtract.
 *   sum_to_shape: Y (laid out by `ys`, 0 on the axes summed) = X summed over
 *             those axes; X C-contiguous of shape[ndim]. OVERWRITTEN.
 * Sums run in double; each output element is summed by one thread in a fixed
 * order (the output's axes in C order), so results are bitwise identical for
 * any nthreads. */
enum {
    FNN_BINARY_ADD = 0, FNN_BINARY_SUBTRACT = 1, FNN_BINARY_MULTIPLY = 2,
    FNN_BINARY_DIVIDE = 3, FNN_BINARY_MAXIMUM = 4, FNN_BINARY_MINIMUM = 5,
    FNN_BINARY_POWER = 6, FNN_BINARY_COUNT = 7
};
#define FNN_MAX_DIMS 64
int fnn_binary_forward_f32(float *Y, const float *A, const float *B, int ndim,
                           const int64_t *shape, const int64_t *as, const int64_t *bs, int op,
                           int nthreads);
int fnn_binary_forward_f64(double *Y, const double *A, const double *B, int ndim,
                           const int64_t *shape, const int64_t *as, const int64_t *bs, int op,
                           int nthreads);
int fnn_binary_backward_f32(float *dA, float *dB, const float *dY, const float *A,
                            const float *B, int ndim, const int64_t *shape, const int64_t *as,
                            const int64_t *bs, int op, int nthreads);
int fnn_binary_backward_f64(double *dA, double *dB, const double *dY, const double *A,
                            const double *B, int ndim, const int64_t *shape, const int64_t *as,
                            const int64_t *bs, int op, int nthreads);
int fnn_sum_to_shape_f32(float *Y, const float *X, int ndim, const int64_t *shape,
                         const int64_t *ys, int nthreads);
int fnn_sum_to_shape_f64(double *Y, const double *X, int ndim, const int64_t *shape,
                         const int64_t *ys, int nthreads);

/* ---- unary element-wise ops, comparisons, select (elementwise.c) ------- */
/* Unary: Y[n] = op(X[n]) and dX[n] = dY * op'(.), over n contiguous elements
 * (any shape, flattened by the caller). Y may equal X; dX may equal dY, X or
 * Y. NumPy's values: sign(0) = 0 and sign(NaN) = NaN; sqrt and log of a
 * negative are NaN, log(0) = -inf; log, log1p and sqrt are libm's, exp is
 * vectorised (a couple of ulp from libm's; the same on every ISA).
 * Derivatives (TensorFlow's rules): negative -dY; abs dY sign(X) (0 at 0);
 * sign 0; square dY (2 X); sqrt (dY 0.5) / Y; exp dY Y; log dY / X; log1p
 * dY / (1 + X); reciprocal dY (-(Y Y)). Each reads X or Y, never both
 * (negative and sign read neither); the one not read may be NULL. */
enum {
    FNN_UNARY_NEGATIVE = 0, FNN_UNARY_ABS = 1, FNN_UNARY_SIGN = 2, FNN_UNARY_SQUARE = 3,
    FNN_UNARY_SQRT = 4, FNN_UNARY_EXP = 5, FNN_UNARY_LOG = 6, FNN_UNARY_LOG1P = 7,
    FNN_UNARY_RECIPROCAL = 8, FNN_UNARY_COUNT = 9
};
int fnn_unary_forward_f32(float *Y, const float *X, int64_t n, int op, int nthreads);
int fnn_unary_forward_f64(double *Y, const double *X, int64_t n, int op, int nthreads);
int fnn_unary_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                           int64_t n, int op, int nthreads);
int fnn_unary_backward_f64(double *dX, const double *dY, const double *X, const double *Y,
                           int64_t n, int op, int nthreads);
int fnn_unary_reads(int op);    /* what op's derivative reads: 0 nothing, 1 X, 2 Y */

/* Comparisons with broadcasting, laid out as the binary ops (Y is the
 * C-contiguous uint8 output, 1 where A <op> B holds, else 0; IEEE: every
 * comparison with NaN is false but not_equal). */
enum {
    FNN_COMPARE_EQUAL = 0, FNN_COMPARE_NOT_EQUAL = 1, FNN_COMPARE_LESS = 2,
    FNN_COMPARE_LESS_EQUAL = 3, FNN_COMPARE_GREATER = 4, FNN_COMPARE_GREATER_EQUAL = 5,
    FNN_COMPARE_COUNT = 6
};
int fnn_compare_f32(uint8_t *Y, const float *A, const float *B, int ndim, const int64_t *shape,
                    const int64_t *as, const int64_t *bs, int op, int nthreads);
int fnn_compare_f64(uint8_t *Y, const double *A, const double *B, int ndim,
                    const int64_t *shape, const int64_t *as, const int64_t *bs, int op,
                    int nthreads);
int fnn_compare_i64(uint8_t *Y, const int64_t *A, const int64_t *B, int ndim,
                    const int64_t *shape, const int64_t *as, const int64_t *bs, int op,
                    int nthreads);
/* Y = Cond ? A : B with broadcasting of all three (Cond uint8, nonzero true;
 * element strides cs, as, bs over Y's shape). Y may equal A or B when that
 * operand has Y's layout. */
int fnn_where_f32(float *Y, const uint8_t *Cond, const float *A, const float *B, int ndim,
                  const int64_t *shape, const int64_t *cs, const int64_t *as, const int64_t *bs,
                  int nthreads);
int fnn_where_f64(double *Y, const uint8_t *Cond, const double *A, const double *B, int ndim,
                  const int64_t *shape, const int64_t *cs, const int64_t *as, const int64_t *bs,
                  int nthreads);

/* ---- reductions over axes (elementwise.c: sum_to_shape's engine) ------- */
/* X C-contiguous of shape[ndim]; Y laid out by `ys` (element strides over
 * that shape, 0 on the axes reduced), as sum_to_shape's Y. The caller
 * collapses axes first and handles empty arrays.
 *   forward:  Y = op over the reduced axes: sum, mean (the sum / the count
 *             of reduced elements), max, min (NaN propagates). Sums run in
 *             double; each Y element is reduced by one thread in a fixed
 *             order: bitwise identical for any nthreads. OVERWRITTEN.
 *   backward: dX[shape] (C-contiguous, OVERWRITTEN) from dY (laid out by ys):
 *             sum dY; mean dY / count; max / min: where X == Y (Y the
 *             forward's result, laid out by ys), dY / (the number of such
 *             X in the reduction), else 0 (TensorFlow's rule for ties).
 *             X and Y are read for max and min only (may be NULL for the
 *             others). FNN_ERR_NOMEM when max / min's scratch (one element
 *             per Y element) cannot be allocated. */
enum { FNN_REDUCE_SUM = 0, FNN_REDUCE_MEAN = 1, FNN_REDUCE_MAX = 2, FNN_REDUCE_MIN = 3,
       FNN_REDUCE_COUNT = 4 };
int fnn_reduce_f32(float *Y, const float *X, int ndim, const int64_t *shape, const int64_t *ys,
                   int op, int nthreads);
int fnn_reduce_f64(double *Y, const double *X, int ndim, const int64_t *shape,
                   const int64_t *ys, int op, int nthreads);
int fnn_reduce_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                            int ndim, const int64_t *shape, const int64_t *ys, int op,
                            int nthreads);
int fnn_reduce_backward_f64(double *dX, const double *dY, const double *X, const double *Y,
                            int ndim, const int64_t *shape, const int64_t *ys, int op,
                            int nthreads);

/* ---- softmax / log-softmax along one axis (softmax.c) ------------------ */
/* X, Y (outer, L, inner) C-contiguous: the softmax runs along L for each of
 * the outer * inner lines (inner == 1: rows; act.c's softmax is this with
 * outer = N, L = O). Shifted by the line's maximum; the line's sum of exp in
 * double, in order along L, by one thread: bitwise identical for any
 * nthreads, and for any axis (a line's values do not depend on its stride).
 *   forward:  softmax Y = exp(X - m) / s; log: Y = (X - m) - log(s)
 *             (m the maximum, s = sum exp(X - m)). Y may equal X.
 *   backward: from the output Y: softmax dX = Y (dY - sum(dY Y));
 *             log: dX = dY - exp(Y) sum(dY). dX may equal dY or Y. */
int fnn_softmax_forward_f32(float *Y, const float *X, int64_t outer, int64_t L, int64_t inner,
                            int is_log, int nthreads);
int fnn_softmax_forward_f64(double *Y, const double *X, int64_t outer, int64_t L,
                            int64_t inner, int is_log, int nthreads);
int fnn_softmax_backward_f32(float *dX, const float *dY, const float *Y, int64_t outer,
                             int64_t L, int64_t inner, int is_log, int nthreads);
int fnn_softmax_backward_f64(double *dX, const double *dY, const double *Y, int64_t outer,
                             int64_t L, int64_t inner, int is_log, int nthreads);

/* ---- concatenation (concat.c) ------------------------------------------ */
/* Concatenation of k pieces along one axis, every array C-contiguous and
 * viewed as `outer` rows (the product of the axes before the concatenation
 * axis): piece i's rows hold widths[i] elements (its size along the axis
 * times the product of the axes after it), Y's rows hold W = sum of widths,
 * and piece i sits at column off_i = widths[0] + .. + widths[i-1] of them.
 * Pure copies of `elem`-byte elements: one version serves every dtype.
 *   forward:  Y[o, off_i + j] = X_i[o, j]
 *   backward: dX_i[o, j] = dY[o, off_i + j]   (dX_i NULL: piece skipped)
 * Returns FNN_ERR_NOMEM when k > 64 and its offset table cannot be allocated. */
int fnn_concat_forward(void *Y, const void *const *X, const int64_t *widths, int64_t k,
                       int64_t outer, int64_t elem, int nthreads);
int fnn_concat_backward(void *const *dX, const void *dY, const int64_t *widths, int64_t k,
                        int64_t outer, int64_t elem, int nthreads);

/* ---- batched matrix product (batch_matmul.c) --------------------------- */
/* C[b] = op(A[b]) @ op(B[b]) for b < batch, each product one fnn_gemm_<f32|f64>
 * call (alpha 1, beta 0, no bias, linear): A (batch, M, K), or (batch, K, M)
 * when trans_a; B (batch, K, N), or (batch, N, K) when trans_b; C (batch, M, N);
 * all C-contiguous, C overlapping neither. Small products run one per thread,
 * large ones one after another on all threads: bitwise identical for any
 * nthreads either way. */
int fnn_batch_matmul_f32(float *C, const float *A, const float *B, int64_t batch, int64_t M,
                         int64_t N, int64_t K, int trans_a, int trans_b, int nthreads);
int fnn_batch_matmul_f64(double *C, const double *A, const double *B, int64_t batch,
                         int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                         int nthreads);

/* ---- fused scaled dot-product attention (attention.c, kernels/attention_<isa>.c) ---- */
/* Keras's MultiHeadAttention core, FlashAttention style (online softmax over
 * key blocks; the backward recomputes p from the forward's log-sum-exp), so
 * no call holds anything of size Tq * Tk unless `probs` / `dprobs` is given.
 *   Q (N, Tq, H, D), K (N, Tk, H, D), V (N, Tk, H, Dv), Y and dY (N, Tq, H, Dv),
 *   dQ, dK, dV the shapes of Q, K, V: each with its inner (T, H, D|Dv) axes
 *   C-contiguous and a batch stride (elements, params below) of at least
 *   T*H*D|Dv. lse (N, H, Tq), probs and dprobs (N, H, Tq, Tk): C-contiguous.
 *   qmask (N, Tq), kmask (N, Tk), amask (N, Tq, Tk): uint8, nonzero = allowed;
 *   NULL = all allowed.
 * Scores s = (scale * Q) . K in the working type; a score not allowed by
 * every mask (and, when causal, with j > i) gets -1e9 added (Keras's
 * _masked_softmax); p = softmax over the keys; dropout (threshold > 0)
 * multiplies p by keep * keep_scale, keep = fnn_dropout_mask's hash of the
 * flat index ((n*H + h)*Tq + i)*Tk + j with `seed`; Y = p' V.
 *   forward:  Y, lse = each row's log-sum-exp of the masked scores, probs (may
 *             be NULL) = p before dropout. All OVERWRITTEN.
 *   backward: dQ, dK, dV OVERWRITTEN from dY, the forward's Y and lse, and
 *             dprobs (may be NULL), an extra gradient on p.
 * `work` holds fnn_attention_work_bytes(params, sizeof(T), backward) bytes
 * (any alignment): the kernels allocate nothing. It is O(T * (D + Dv)) per
 * (n, h) in flight, for at most fnn_num_procs() threads; it depends on the
 * sizes and the machine, not on nthreads. FNN_ERR_ARG for bad sizes or a
 * short `work`. Tasks (an (n, h) pair, or in the forward one query block of
 * it) each sum their outputs in a fixed order: bitwise identical for any
 * nthreads. Every exponent is computed with vexp.h's vexp1_soft (e^x below
 * the smallest normal flushed to 0). */
typedef struct {
    int64_t N, Tq, Tk, H, D, Dv;
    int64_t q_n, k_n, v_n, y_n, dy_n;   /* batch strides, elements */
    int64_t dq_n, dk_n, dv_n;           /* (backward outputs) */
    double scale;
    int causal;                         /* Keras's tril: j <= i allowed */
    uint64_t seed, threshold;           /* dropout (fnn_dropout_mask's); threshold 0: none */
    double keep_scale;                  /* 1 / (1 - rate) */
} fnn_attention_params;

int64_t fnn_attention_work_bytes(const fnn_attention_params *params, int64_t elem, int backward);
int fnn_attention_forward_f32(float *Y, float *lse, float *probs, void *work, const float *Q,
                              const float *K, const float *V, const uint8_t *qmask,
                              const uint8_t *kmask, const uint8_t *amask,
                              const fnn_attention_params *params, int64_t work_bytes,
                              int nthreads);
int fnn_attention_forward_f64(double *Y, double *lse, double *probs, void *work, const double *Q,
                              const double *K, const double *V, const uint8_t *qmask,
                              const uint8_t *kmask, const uint8_t *amask,
                              const fnn_attention_params *params, int64_t work_bytes,
                              int nthreads);
int fnn_attention_backward_f32(float *dQ, float *dK, float *dV, void *work, const float *dY,
                               const float *Q, const float *K, const float *V, const float *Y,
                               const float *lse, const float *dprobs, const uint8_t *qmask,
                               const uint8_t *kmask, const uint8_t *amask,
                               const fnn_attention_params *params, int64_t work_bytes,
                               int nthreads);
int fnn_attention_backward_f64(double *dQ, double *dK, double *dV, void *work, const double *dY,
                               const double *Q, const double *K, const double *V,
                               const double *Y, const double *lse, const double *dprobs,
                               const uint8_t *qmask, const uint8_t *kmask, const uint8_t *amask,
                               const fnn_attention_params *params, int64_t work_bytes,
                               int nthreads);

#ifdef __cplusplus
}
#endif
#endif /* FASTNN_H */
