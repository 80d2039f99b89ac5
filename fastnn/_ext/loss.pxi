# Losses with their gradients, and metrics (csrc/loss.c). Uses the argument
# checks defined in act.pxi.


def loss_f32(object grad, cnp.ndarray Y_pred not None, object Y_true, object labels, int kind,
             bint from_logits, double huber_delta, int nthreads, object sample_weight=None):
    """The mean loss over the batch (a float); fills grad (N, D) with dloss/dY_pred.

    Y_pred is float32 (N, D). Targets: Y_true float32 (N, D) for every kind but
    sparse categorical cross-entropy, which takes labels, int64 (N,) in [0, D).
    grad may be None (loss only). sample_weight, float32 (N,) or None, multiplies
    each sample's loss and gradient row (the mean still divides by N).
    """
    cdef Py_ssize_t n = _k_rows2(Y_pred, "loss_f32", "Y_pred")
    cdef Py_ssize_t d = Y_pred.shape[1]
    cdef const float *p
    cdef const float *t = NULL
    cdef const int64_t *lab = NULL
    cdef const float *sw = NULL
    cdef float *g = NULL
    cdef double loss = 0.0
    cdef int status
    # fastnn.pxd does not declare FNN_LOSS_COUNT; sparse CE is the last code.
    if kind < 0 or kind > FNN_LOSS_SPARSE_CE:
        raise ValueError(f"loss_f32: unknown loss code {kind}; expected 0..{FNN_LOSS_SPARSE_CE}")
    if n == 0 or d == 0:
        raise ValueError(f"loss_f32: empty batch: Y_pred has shape {(<object>Y_pred).shape}")
    p = <const float *>data_of(Y_pred, _K_F32, "loss_f32", "Y_pred")
    if kind == FNN_LOSS_SPARSE_CE:
        if labels is None:
            raise ValueError("loss_f32: sparse categorical cross-entropy needs labels")
        lab = <const int64_t *>_k_arr1(labels, _K_I64, n, "loss_f32", "labels")
    else:
        if Y_true is None:
            raise ValueError("loss_f32: this loss needs Y_true")
        t = <const float *>_k_arr2(Y_true, _K_F32, n, d, "loss_f32", "Y_true")
    if kind == FNN_LOSS_HUBER and not huber_delta > 0.0:
        raise ValueError(f"loss_f32: huber delta must be > 0, got {huber_delta}")
    if sample_weight is not None:
        sw = <const float *>_k_arr1(sample_weight, _K_F32, n, "loss_f32", "sample_weight")
    if grad is not None:
        g = <float *>_k_arr2(grad, _K_F32, n, d, "loss_f32", "grad", True)
        _k_apart("loss_f32", "grad", grad, "Y_pred, Y_true, labels or sample_weight", Y_pred,
                 Y_true, labels, sample_weight)
    with nogil:
        status = fnn_loss_f32(&loss, g, p, t, lab, sw, n, d, kind, from_logits, huber_delta,
                              nthreads)
    if status == FNN_ERR_LABEL:
        raise ValueError(f"loss_f32: a class index in labels is out of range [0, {d})")
    check_status(status)
    return loss


def metric_f32(cnp.ndarray Y_pred not None, object Y_true, object labels, int kind,
               int nthreads):
    """The SUM over the N samples of the per-sample metric (a float).

    Y_pred is float32 (N, D); Y_true float32 (N, D), or for sparse categorical
    accuracy labels int64 (N,) (a label out of range never matches).
    """
    cdef Py_ssize_t n = _k_rows2(Y_pred, "metric_f32", "Y_pred")
    cdef Py_ssize_t d = Y_pred.shape[1]
    cdef const float *p
    cdef const float *t = NULL
    cdef const int64_t *lab = NULL
    cdef double total = 0.0
    cdef int status
    if kind < 0 or kind > FNN_METRIC_SPARSE_ACC:
        raise ValueError(f"metric_f32: unknown metric code {kind}; "
                         f"expected 0..{FNN_METRIC_SPARSE_ACC}")
    if d == 0:
        raise ValueError(f"metric_f32: Y_pred has shape {(<object>Y_pred).shape}; "
                         f"it needs at least one column")
    p = <const float *>data_of(Y_pred, _K_F32, "metric_f32", "Y_pred")
    if kind == FNN_METRIC_SPARSE_ACC:
        if labels is None:
            raise ValueError("metric_f32: sparse categorical accuracy needs labels")
        lab = <const int64_t *>_k_arr1(labels, _K_I64, n, "metric_f32", "labels")
    else:
        if Y_true is None:
            raise ValueError("metric_f32: this metric needs Y_true")
        t = <const float *>_k_arr2(Y_true, _K_F32, n, d, "metric_f32", "Y_true")
    with nogil:
        status = fnn_metric_f32(&total, p, t, lab, n, d, kind, nthreads)
    check_status(status)
    return total
