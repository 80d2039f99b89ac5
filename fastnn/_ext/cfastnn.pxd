# C declarations of csrc/fastnn.h, for the Cython wrappers (.pxi files
# included by _core.pyx). Kernels are noexcept nogil: they report errors
# through their status code.
from libc.stdint cimport int64_t, uint8_t, uint64_t

cdef extern from "fastnn.h" nogil:
    enum:
        FNN_OK
        FNN_ERR_ARG
        FNN_ERR_NOMEM
        FNN_ERR_ISA
        FNN_ERR_LABEL
    const char *fnn_strerror(int status) noexcept

    int fnn_openmp_enabled() noexcept
    int fnn_num_procs() noexcept

cdef extern from "peak.h" nogil:
    double fnn_fma_peak_gflops(int nthreads, double seconds) noexcept

cdef extern from "fnn_omp.h" nogil:
    void fnn_set_oversubscription_guard(int enabled) noexcept
    int fnn_oversubscription_guard() noexcept
    int fnn_oversubscribed() noexcept
    void fnn_oversubscription_reset() noexcept
    int64_t fnn_oversubscription_backoff_ns() noexcept
    void fnn_report_team_wait(int64_t wait_ns, int64_t wall_ns) noexcept
    void fnn_runtime_init() noexcept
    int fnn_max_team_seen() noexcept
    void fnn_max_team_reset() noexcept
    int fnn_pool_started() noexcept
    int fnn_pool_lost() noexcept

cdef extern from "fastnn.h" nogil:

    enum:
        FNN_ISA_GENERIC
        FNN_ISA_AVX2
        FNN_ISA_AVX512
        FNN_ISA_COUNT
    int fnn_isa_supported(int isa) noexcept
    int fnn_isa_best() noexcept
    int fnn_isa_select(int isa) noexcept
    int fnn_isa_current() noexcept
    void fnn_gemm_blocking(int64_t *out) noexcept
    const char *fnn_isa_name(int isa) noexcept

    enum:
        FNN_ACT_LINEAR
        FNN_ACT_RELU
        FNN_ACT_LEAKY_RELU
        FNN_ACT_ELU
        FNN_ACT_SIGMOID
        FNN_ACT_TANH
        FNN_ACT_SOFTMAX
        FNN_ACT_GELU
        FNN_ACT_SWISH
        FNN_ACT_COUNT
    int fnn_act_forward_f32(float *Y, const float *X, int64_t N, int64_t O, int act,
                            int nthreads) noexcept
    int fnn_act_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                             int64_t N, int64_t O, int act, int nthreads) noexcept
    int fnn_act_needs_input(int act) noexcept

    int fnn_gemm_f32(float *C, const float *A, const float *B, const float *bias,
                     int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                     int trans_a, int trans_b, float alpha, float beta, int act,
                     int nthreads) noexcept
    int fnn_gemm_keep_f32(float *C, float *Z, const float *A, const float *B,
                          const float *bias, int64_t M, int64_t N, int64_t K, int64_t lda,
                          int64_t ldb, int64_t ldc, int trans_a, int trans_b, float alpha,
                          float beta, int act, int nthreads) noexcept
    int fnn_gemm_f64(double *C, const double *A, const double *B, const double *bias,
                     int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                     int trans_a, int trans_b, double alpha, double beta, int act,
                     int nthreads) noexcept

    int fnn_dense_backward_f32(float *dX, float *dW, float *db, float *dZ,
                               const float *dY, const float *X, const float *W,
                               const float *Z, const float *Y,
                               int64_t N, int64_t In, int64_t O, int act, int nthreads) noexcept
    int fnn_colsum_f32(float *out, const float *X, int64_t N, int64_t O, int nthreads) noexcept
    enum: FNN_DENSE_STACK_MAX_LAYERS
    int fnn_dense_stack_f32(float *Y, const float *X, int64_t rows, int nlayers,
                            const int64_t *dims, const float *const *W, const float *const *b,
                            const int *acts, int nthreads) noexcept
    ctypedef struct fnn_conv2d_shape:
        int64_t N, H, W, C
        int64_t KH, KW, F
        int64_t OH, OW
        int64_t stride_h, stride_w, dil_h, dil_w
        int64_t pad_top, pad_left
    int fnn_conv2d_forward_f32(float *Y, float *Z, float *work, const float *X,
                               const float *Wt, const float *b, const fnn_conv2d_shape *shape,
                               int64_t work_len, int act, int nthreads) noexcept
    int fnn_conv2d_backward_f32(float *dX, float *dW, float *db, float *dZ, float *work,
                                const float *dY, const float *X, const float *Wt,
                                const float *Z, const float *Y, const fnn_conv2d_shape *shape,
                                int64_t work_len, int act, int nthreads) noexcept
    int64_t fnn_conv2d_work_floats(const fnn_conv2d_shape *shape, int backward,
                                   int nthreads) noexcept

    enum:
        FNN_LOSS_MSE
        FNN_LOSS_MAE
        FNN_LOSS_HUBER
        FNN_LOSS_BINARY_CE
        FNN_LOSS_CATEGORICAL_CE
        FNN_LOSS_SPARSE_CE
        FNN_LOSS_COUNT
    int fnn_loss_f32(double *loss, float *grad, const float *Y_pred, const float *Y_true,
                     const int64_t *labels, const float *sample_weight, int64_t N,
                     int64_t D, int kind, int from_logits, double huber_delta,
                     int nthreads) noexcept

    enum:
        FNN_METRIC_MAE
        FNN_METRIC_MSE
        FNN_METRIC_BINARY_ACC
        FNN_METRIC_CATEGORICAL_ACC
        FNN_METRIC_SPARSE_ACC
        FNN_METRIC_COUNT
    int fnn_metric_f32(double *sum, const float *Y_pred, const float *Y_true,
                       const int64_t *labels, int64_t N, int64_t D, int kind,
                       int nthreads) noexcept

    int fnn_sgd_update_f32(float *p, float *velocity, const float *g, int64_t n,
                           double lr, double momentum, int nesterov, double decay,
                           int nthreads) noexcept
    int fnn_adam_update_f32(float *p, float *m, float *v, float *vhat, const float *g,
                            int64_t n, double lr_t, double beta1, double beta2, double eps,
                            double decay, int nthreads) noexcept
    int fnn_rmsprop_update_f32(float *p, float *ms, float *mg, float *mom, const float *g,
                               int64_t n, double lr, double rho, double momentum, double eps,
                               double decay, int nthreads) noexcept
    int fnn_adagrad_update_f32(float *p, float *acc, const float *g, int64_t n,
                               double lr, double eps, double decay, int nthreads) noexcept
    int fnn_nadam_update_f32(float *p, float *m, float *v, const float *g, int64_t n,
                             double lr, double beta1, double beta2, double coef_m,
                             double coef_g, double v_correction, double eps, double decay,
                             int nthreads) noexcept
    int fnn_adamax_update_f32(float *p, float *m, float *u, const float *g, int64_t n,
                              double lr, double beta1, double beta2, double m_correction,
                              double eps, double decay, int nthreads) noexcept
    int fnn_lion_update_f32(float *p, float *m, const float *g, int64_t n, double lr,
                            double beta1, double beta2, double decay, int nthreads) noexcept

    int fnn_sum_squares_f32(double *out, const float *X, int64_t n, int nthreads) noexcept
    int fnn_scale_f32(float *X, int64_t n, float s, int nthreads) noexcept
    int fnn_clip_f32(float *X, int64_t n, float lo, float hi, int nthreads) noexcept
    int fnn_all_finite_f32(int *ok, const float *X, int64_t n, int nthreads) noexcept

    int fnn_regularize_f32(double *penalty, float *dW, const float *W, int64_t n, double l1,
                           double l2, int nthreads) noexcept

    int fnn_dropout_mask(uint8_t *mask, int64_t n, uint64_t seed, uint64_t threshold,
                         int nthreads) noexcept
    int fnn_dropout_forward_f32(float *Y, uint8_t *mask, const float *X, int64_t n,
                                uint64_t seed, uint64_t threshold, float scale,
                                int nthreads) noexcept
    int fnn_dropout_backward_f32(float *dX, const float *dY, const uint8_t *mask, int64_t n,
                                 float scale, int nthreads) noexcept

    int fnn_batchnorm_stats_f32(float *mean, float *var, const float *X, int64_t M, int64_t C,
                                int nthreads) noexcept
    int fnn_batchnorm_update_moving_f32(float *moving_mean, float *moving_var,
                                        const float *mean, const float *var, int64_t C,
                                        double momentum) noexcept
    int fnn_batchnorm_forward_f32(float *Y, const float *X, const float *mean, const float *var,
                                  const float *gamma, const float *beta, int64_t M, int64_t C,
                                  double eps, int nthreads) noexcept
    int fnn_batchnorm_backward_f32(float *dX, float *dgamma, float *dbeta, const float *dY,
                                   const float *X, const float *mean, const float *var,
                                   const float *gamma, int64_t M, int64_t C, double eps,
                                   int batch_stats, int nthreads) noexcept

    int fnn_layernorm_forward_f32(float *Y, float *mean, float *rstd, const float *X,
                                  const float *gamma, const float *beta, int64_t M, int64_t C,
                                  double eps, int rms, int nthreads) noexcept
    int fnn_layernorm_forward_f64(double *Y, double *mean, double *rstd, const double *X,
                                  const double *gamma, const double *beta, int64_t M,
                                  int64_t C, double eps, int rms, int nthreads) noexcept
    int fnn_layernorm_backward_f32(float *dX, float *dgamma, float *dbeta, const float *dY,
                                   const float *X, const float *mean, const float *rstd,
                                   const float *gamma, int64_t M, int64_t C, int rms,
                                   int nthreads) noexcept
    int fnn_layernorm_backward_f64(double *dX, double *dgamma, double *dbeta,
                                   const double *dY, const double *X, const double *mean,
                                   const double *rstd, const double *gamma, int64_t M,
                                   int64_t C, int rms, int nthreads) noexcept

    int fnn_max_pool2d_forward_f32(float *Y, int64_t *argmax, const float *X,
                                   int64_t N, int64_t H, int64_t W, int64_t C,
                                   int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                                   int64_t SH, int64_t SW, int64_t top, int64_t left,
                                   int nthreads) noexcept
    int fnn_max_pool2d_backward_f32(float *dX, const float *dY, const int64_t *argmax,
                                    int64_t N, int64_t H, int64_t W, int64_t C,
                                    int64_t OH, int64_t OW, int nthreads) noexcept
    int fnn_avg_pool2d_forward_f32(float *Y, const float *X,
                                   int64_t N, int64_t H, int64_t W, int64_t C,
                                   int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                                   int64_t SH, int64_t SW, int64_t top, int64_t left,
                                   int nthreads) noexcept
    int fnn_avg_pool2d_backward_f32(float *dX, const float *dY,
                                    int64_t N, int64_t H, int64_t W, int64_t C,
                                    int64_t OH, int64_t OW, int64_t KH, int64_t KW,
                                    int64_t SH, int64_t SW, int64_t top, int64_t left,
                                    int nthreads) noexcept

cdef extern from "fastnn.h" nogil:
    int fnn_embedding_forward_f32(float *Y, const int64_t *idx, const float *table,
                                  int64_t M, int64_t V, int64_t D, int nthreads) noexcept
    int fnn_embedding_forward_f64(double *Y, const int64_t *idx, const double *table,
                                  int64_t M, int64_t V, int64_t D, int nthreads) noexcept
    int fnn_embedding_backward_f32(float *dtable, const float *dY, const int64_t *idx,
                                   int64_t M, int64_t V, int64_t D, int nthreads) noexcept
    int fnn_embedding_backward_f64(double *dtable, const double *dY, const int64_t *idx,
                                   int64_t M, int64_t V, int64_t D, int nthreads) noexcept

cdef extern from "fastnn.h" nogil:
    enum:
        FNN_RNN_SIMPLE
        FNN_RNN_LSTM
        FNN_RNN_GRU
        FNN_RNN_COUNT
    int64_t fnn_rnn_cache_width(int cell, int64_t U) noexcept
    int fnn_rnn_forward_f32(float *hs, float *cache, const float *X, const float *W,
                            const float *R, const float *b, const uint8_t *mask, int64_t N,
                            int64_t T, int64_t In, int64_t U, int cell, int act, int ract,
                            int go_backwards, int nthreads) noexcept
    int fnn_rnn_backward_f32(float *dX, float *dW, float *dR, float *db, const float *dhs,
                             const float *X, const float *W, const float *R, const float *hs,
                             const float *cache, const uint8_t *mask, int64_t N, int64_t T,
                             int64_t In, int64_t U, int cell, int act, int ract,
                             int go_backwards, int nthreads) noexcept

cdef extern from "fastnn.h" nogil:
    enum:
        FNN_BINARY_ADD
        FNN_BINARY_SUBTRACT
        FNN_BINARY_MULTIPLY
        FNN_BINARY_DIVIDE
        FNN_BINARY_MAXIMUM
        FNN_BINARY_MINIMUM
        FNN_BINARY_POWER
        FNN_BINARY_COUNT
        FNN_MAX_DIMS
    int fnn_binary_forward_f32(float *Y, const float *A, const float *B, int ndim,
                               const int64_t *shape, const int64_t *as_, const int64_t *bs,
                               int op, int nthreads) noexcept
    int fnn_binary_forward_f64(double *Y, const double *A, const double *B, int ndim,
                               const int64_t *shape, const int64_t *as_, const int64_t *bs,
                               int op, int nthreads) noexcept
    int fnn_binary_backward_f32(float *dA, float *dB, const float *dY, const float *A,
                                const float *B, int ndim, const int64_t *shape,
                                const int64_t *as_, const int64_t *bs, int op,
                                int nthreads) noexcept
    int fnn_binary_backward_f64(double *dA, double *dB, const double *dY, const double *A,
                                const double *B, int ndim, const int64_t *shape,
                                const int64_t *as_, const int64_t *bs, int op,
                                int nthreads) noexcept
    int fnn_sum_to_shape_f32(float *Y, const float *X, int ndim, const int64_t *shape,
                             const int64_t *ys, int nthreads) noexcept
    int fnn_sum_to_shape_f64(double *Y, const double *X, int ndim, const int64_t *shape,
                             const int64_t *ys, int nthreads) noexcept

    enum:
        FNN_UNARY_COUNT
        FNN_COMPARE_COUNT
        FNN_REDUCE_SUM
        FNN_REDUCE_MEAN
        FNN_REDUCE_MAX
        FNN_REDUCE_MIN
        FNN_REDUCE_COUNT
    int fnn_unary_forward_f32(float *Y, const float *X, int64_t n, int op, int nthreads) noexcept
    int fnn_unary_forward_f64(double *Y, const double *X, int64_t n, int op,
                              int nthreads) noexcept
    int fnn_unary_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                               int64_t n, int op, int nthreads) noexcept
    int fnn_unary_backward_f64(double *dX, const double *dY, const double *X, const double *Y,
                               int64_t n, int op, int nthreads) noexcept
    int fnn_unary_reads(int op) noexcept
    int fnn_compare_f32(uint8_t *Y, const float *A, const float *B, int ndim,
                        const int64_t *shape, const int64_t *as_, const int64_t *bs, int op,
                        int nthreads) noexcept
    int fnn_compare_f64(uint8_t *Y, const double *A, const double *B, int ndim,
                        const int64_t *shape, const int64_t *as_, const int64_t *bs, int op,
                        int nthreads) noexcept
    int fnn_compare_i64(uint8_t *Y, const int64_t *A, const int64_t *B, int ndim,
                        const int64_t *shape, const int64_t *as_, const int64_t *bs, int op,
                        int nthreads) noexcept
    int fnn_where_f32(float *Y, const uint8_t *Cond, const float *A, const float *B, int ndim,
                      const int64_t *shape, const int64_t *cs, const int64_t *as_,
                      const int64_t *bs, int nthreads) noexcept
    int fnn_where_f64(double *Y, const uint8_t *Cond, const double *A, const double *B,
                      int ndim, const int64_t *shape, const int64_t *cs, const int64_t *as_,
                      const int64_t *bs, int nthreads) noexcept
    int fnn_reduce_f32(float *Y, const float *X, int ndim, const int64_t *shape,
                       const int64_t *ys, int op, int nthreads) noexcept
    int fnn_reduce_f64(double *Y, const double *X, int ndim, const int64_t *shape,
                       const int64_t *ys, int op, int nthreads) noexcept
    int fnn_reduce_backward_f32(float *dX, const float *dY, const float *X, const float *Y,
                                int ndim, const int64_t *shape, const int64_t *ys, int op,
                                int nthreads) noexcept
    int fnn_reduce_backward_f64(double *dX, const double *dY, const double *X,
                                const double *Y, int ndim, const int64_t *shape,
                                const int64_t *ys, int op, int nthreads) noexcept
    int fnn_softmax_forward_f32(float *Y, const float *X, int64_t outer, int64_t L,
                                int64_t inner, int is_log, int nthreads) noexcept
    int fnn_softmax_forward_f64(double *Y, const double *X, int64_t outer, int64_t L,
                                int64_t inner, int is_log, int nthreads) noexcept
    int fnn_softmax_backward_f32(float *dX, const float *dY, const float *Y, int64_t outer,
                                 int64_t L, int64_t inner, int is_log, int nthreads) noexcept
    int fnn_softmax_backward_f64(double *dX, const double *dY, const double *Y, int64_t outer,
                                 int64_t L, int64_t inner, int is_log, int nthreads) noexcept

    int fnn_concat_forward(void *Y, const void *const *X, const int64_t *widths, int64_t k,
                           int64_t outer, int64_t elem, int nthreads) noexcept
    int fnn_concat_backward(void *const *dX, const void *dY, const int64_t *widths, int64_t k,
                            int64_t outer, int64_t elem, int nthreads) noexcept

    int fnn_batch_matmul_f32(float *C, const float *A, const float *B, int64_t batch,
                             int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                             int nthreads) noexcept
    int fnn_batch_matmul_f64(double *C, const double *A, const double *B, int64_t batch,
                             int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                             int nthreads) noexcept

    ctypedef struct fnn_attention_params:
        int64_t N, Tq, Tk, H, D, Dv
        int64_t q_n, k_n, v_n, y_n, dy_n
        int64_t dq_n, dk_n, dv_n
        double scale
        int causal
        uint64_t seed, threshold
        double keep_scale
    int64_t fnn_attention_work_bytes(const fnn_attention_params *params, int64_t elem,
                                     int backward) noexcept
    int fnn_attention_forward_f32(float *Y, float *lse, float *probs, void *work,
                                  const float *Q, const float *K, const float *V,
                                  const uint8_t *qmask, const uint8_t *kmask,
                                  const uint8_t *amask, const fnn_attention_params *params,
                                  int64_t work_bytes, int nthreads) noexcept
    int fnn_attention_forward_f64(double *Y, double *lse, double *probs, void *work,
                                  const double *Q, const double *K, const double *V,
                                  const uint8_t *qmask, const uint8_t *kmask,
                                  const uint8_t *amask, const fnn_attention_params *params,
                                  int64_t work_bytes, int nthreads) noexcept
    int fnn_attention_backward_f32(float *dQ, float *dK, float *dV, void *work, const float *dY,
                                   const float *Q, const float *K, const float *V,
                                   const float *Y, const float *lse, const float *dprobs,
                                   const uint8_t *qmask, const uint8_t *kmask,
                                   const uint8_t *amask, const fnn_attention_params *params,
                                   int64_t work_bytes, int nthreads) noexcept
    int fnn_attention_backward_f64(double *dQ, double *dK, double *dV, void *work,
                                   const double *dY, const double *Q, const double *K,
                                   const double *V, const double *Y, const double *lse,
                                   const double *dprobs, const uint8_t *qmask,
                                   const uint8_t *kmask, const uint8_t *amask,
                                   const fnn_attention_params *params, int64_t work_bytes,
                                   int nthreads) noexcept
