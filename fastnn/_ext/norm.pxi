# Dropout (csrc/dropout.c) and batch normalization (csrc/norm.c). Dropout
# takes flat 1-D arrays (the caller passes reshape(-1) views); batch norm
# takes X as (M, C) rows of channels and per-channel (C,) vectors. float32,
# masks uint8. Uses the argument checks in runtime.pxi and act.pxi.
from libc.stdint cimport uint8_t, uint64_t


def dropout_mask(cnp.ndarray mask not None, uint64_t seed, uint64_t threshold, int nthreads):
    """mask (n,) uint8 = 1 where element i is kept for `seed`, else 0."""
    cdef uint8_t *mp = <uint8_t *>data_of(mask, _K_U8, "dropout_mask", "mask", True)
    cdef int status
    if mask.ndim != 1:
        raise ValueError(f"dropout_mask: mask must be 1-D, got shape {(<object>mask).shape}")
    with nogil:
        status = fnn_dropout_mask(mp, cnp.PyArray_SIZE(mask), seed, threshold, nthreads)
    check_status(status)


def dropout_forward_f32(cnp.ndarray Y not None, object mask, cnp.ndarray X not None,
                        uint64_t seed, uint64_t threshold, float scale, int nthreads):
    """Y (n,) = X * scale where kept, else 0; mask (n,) uint8 (or None) = kept."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(X)
    cdef const float *x
    cdef float *y
    cdef uint8_t *mp = NULL
    cdef int status
    if X.ndim != 1:
        raise ValueError(f"dropout_forward_f32: X must be 1-D, got shape {(<object>X).shape}")
    x = <const float *>data_of(X, _K_F32, "dropout_forward_f32", "X")
    y = <float *>_k_arr1(Y, _K_F32, n, "dropout_forward_f32", "Y", True)
    if mask is not None:
        mp = <uint8_t *>_k_arr1(mask, _K_U8, n, "dropout_forward_f32", "mask", True)
    _k_apart_or_alias("dropout_forward_f32", "Y", Y, "X", X)
    _k_apart("dropout_forward_f32", "mask", mask, "X or Y", X, Y)
    with nogil:
        status = fnn_dropout_forward_f32(y, mp, x, n, seed, threshold, scale, nthreads)
    check_status(status)


def dropout_backward_f32(cnp.ndarray dX not None, cnp.ndarray dY not None,
                         cnp.ndarray mask not None, float scale, int nthreads):
    """dX (n,) = dY * scale where mask is 1, else 0. dX may be dY."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dY)
    cdef const float *dy
    cdef float *dx
    cdef const uint8_t *mp
    cdef int status
    if dY.ndim != 1:
        raise ValueError(f"dropout_backward_f32: dY must be 1-D, got shape {(<object>dY).shape}")
    dy = <const float *>data_of(dY, _K_F32, "dropout_backward_f32", "dY")
    dx = <float *>_k_arr1(dX, _K_F32, n, "dropout_backward_f32", "dX", True)
    mp = <const uint8_t *>_k_arr1(mask, _K_U8, n, "dropout_backward_f32", "mask")
    _k_apart_or_alias("dropout_backward_f32", "dX", dX, "dY", dY)
    _k_apart("dropout_backward_f32", "dX", dX, "mask", mask)
    with nogil:
        status = fnn_dropout_backward_f32(dx, dy, mp, n, scale, nthreads)
    check_status(status)


cdef inline const float *_bn_vec(object a, Py_ssize_t c, str where, str name) except? NULL:
    """Pointer to an optional (C,) float32 vector; NULL for None."""
    if a is None:
        return NULL
    return <const float *>_k_arr1(a, _K_F32, c, where, name)


def batchnorm_stats_f32(cnp.ndarray mean not None, cnp.ndarray var not None,
                        cnp.ndarray X not None, int nthreads):
    """mean (C,), var (C,) = per-channel mean and biased variance of X (M, C), M >= 1."""
    cdef Py_ssize_t m = _k_rows2(X, "batchnorm_stats_f32", "X")
    cdef Py_ssize_t c = X.shape[1]
    cdef const float *x = <const float *>data_of(X, _K_F32, "batchnorm_stats_f32", "X")
    cdef float *mp = <float *>_k_arr1(mean, _K_F32, c, "batchnorm_stats_f32", "mean", True)
    cdef float *vp = <float *>_k_arr1(var, _K_F32, c, "batchnorm_stats_f32", "var", True)
    cdef int status
    if m < 1:
        raise ValueError("batchnorm_stats_f32: X has no rows; batch statistics need at least one")
    with nogil:
        status = fnn_batchnorm_stats_f32(mp, vp, x, m, c, nthreads)
    check_status(status)


def batchnorm_update_moving_f32(cnp.ndarray moving_mean not None, cnp.ndarray moving_var not None,
                                cnp.ndarray mean not None, cnp.ndarray var not None,
                                double momentum):
    """moving = moving * momentum + batch * (1 - momentum), in place, (C,) each."""
    cdef Py_ssize_t c = cnp.PyArray_SIZE(moving_mean)
    cdef float *mm = <float *>_k_arr1(moving_mean, _K_F32, c, "batchnorm_update_moving_f32",
                                      "moving_mean", True)
    cdef float *mv = <float *>_k_arr1(moving_var, _K_F32, c, "batchnorm_update_moving_f32",
                                      "moving_var", True)
    cdef const float *bm = <const float *>_k_arr1(mean, _K_F32, c,
                                                  "batchnorm_update_moving_f32", "mean")
    cdef const float *bv = <const float *>_k_arr1(var, _K_F32, c,
                                                  "batchnorm_update_moving_f32", "var")
    cdef int status
    with nogil:
        status = fnn_batchnorm_update_moving_f32(mm, mv, bm, bv, c, momentum)
    check_status(status)


def batchnorm_forward_f32(cnp.ndarray Y not None, cnp.ndarray X not None,
                          cnp.ndarray mean not None, cnp.ndarray var not None,
                          object gamma, object beta, double eps, int nthreads):
    """Y (M, C) = (X - mean) * gamma / sqrt(var + eps) + beta; gamma/beta may be None."""
    cdef Py_ssize_t m = _k_rows2(X, "batchnorm_forward_f32", "X")
    cdef Py_ssize_t c = X.shape[1]
    cdef const float *x = <const float *>data_of(X, _K_F32, "batchnorm_forward_f32", "X")
    cdef float *y = <float *>_k_arr2(Y, _K_F32, m, c, "batchnorm_forward_f32", "Y", True)
    cdef const float *mp = <const float *>_k_arr1(mean, _K_F32, c, "batchnorm_forward_f32", "mean")
    cdef const float *vp = <const float *>_k_arr1(var, _K_F32, c, "batchnorm_forward_f32", "var")
    cdef const float *gp = _bn_vec(gamma, c, "batchnorm_forward_f32", "gamma")
    cdef const float *bp = _bn_vec(beta, c, "batchnorm_forward_f32", "beta")
    cdef int status
    _k_apart_or_alias("batchnorm_forward_f32", "Y", Y, "X", X)
    _k_apart("batchnorm_forward_f32", "Y", Y, "mean, var, gamma or beta", mean, var, gamma, beta)
    with nogil:
        status = fnn_batchnorm_forward_f32(y, x, mp, vp, gp, bp, m, c, eps, nthreads)
    check_status(status)


cdef int _bn_outputs_apart(object dX, object dgamma, object dbeta, object dY, object X,
                          object mean, object var, object gamma) except -1:
    cdef str where = "batchnorm_backward_f32"
    cdef str others = "the other arrays (dX, dgamma, dbeta, dY, X, mean, var, gamma)"
    _k_apart(where, "dX", dX, others, dgamma, dbeta, dY, X, mean, var, gamma)
    _k_apart(where, "dgamma", dgamma, others, dX, dbeta, dY, X, mean, var, gamma)
    _k_apart(where, "dbeta", dbeta, others, dX, dgamma, dY, X, mean, var, gamma)
    return 0


def batchnorm_backward_f32(object dX, object dgamma, object dbeta, cnp.ndarray dY not None,
                           cnp.ndarray X not None, cnp.ndarray mean not None,
                           cnp.ndarray var not None, object gamma, double eps,
                           bint batch_stats, int nthreads):
    """dgamma, dbeta (C,) OVERWRITTEN (either may be None) and dX (M, C) (may be
    None): the gradients of batchnorm_forward_f32, through the batch statistics
    when batch_stats, else through fixed statistics."""
    cdef Py_ssize_t m = _k_rows2(X, "batchnorm_backward_f32", "X")
    cdef Py_ssize_t c = X.shape[1]
    cdef const float *x = <const float *>data_of(X, _K_F32, "batchnorm_backward_f32", "X")
    cdef const float *dy = <const float *>_k_arr2(dY, _K_F32, m, c, "batchnorm_backward_f32",
                                                  "dY")
    cdef const float *mp = <const float *>_k_arr1(mean, _K_F32, c, "batchnorm_backward_f32",
                                                  "mean")
    cdef const float *vp = <const float *>_k_arr1(var, _K_F32, c, "batchnorm_backward_f32", "var")
    cdef const float *gp = _bn_vec(gamma, c, "batchnorm_backward_f32", "gamma")
    cdef float *dxp = NULL
    cdef float *dgp = NULL
    cdef float *dbp = NULL
    cdef int status
    if dX is not None:
        dxp = <float *>_k_arr2(dX, _K_F32, m, c, "batchnorm_backward_f32", "dX", True)
    if dgamma is not None:
        dgp = <float *>_k_arr1(dgamma, _K_F32, c, "batchnorm_backward_f32", "dgamma", True)
    if dbeta is not None:
        dbp = <float *>_k_arr1(dbeta, _K_F32, c, "batchnorm_backward_f32", "dbeta", True)
    _bn_outputs_apart(dX, dgamma, dbeta, dY, X, mean, var, gamma)
    with nogil:
        status = fnn_batchnorm_backward_f32(dxp, dgp, dbp, dy, x, mp, vp, gp, m, c, eps,
                                            batch_stats, nthreads)
    check_status(status)
