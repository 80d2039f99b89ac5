# Layer and RMS normalization over the last axis (csrc/layernorm.c), float32
# and float64: X, Y, dX, dY (M, C); gamma, beta, dgamma, dbeta (C,); mean,
# rstd (M,). The argument rules are fastnn.backend.ops.check_layer_norm_args';
# these checks repeat what the kernel relies on (dtype, shape, contiguity).
# Uses runtime.pxi, act.pxi and elementwise.pxi's helpers (included before).


cdef inline void *_ln_vec(object a, object dtype, Py_ssize_t n, str where, str name,
                          bint writable) except? NULL:
    """Pointer to an optional C-contiguous (n,) array of `dtype`; NULL for None."""
    if a is None:
        return NULL
    return _k_arr1(a, dtype, n, where, name, writable)


cdef inline object _ln_dtype(cnp.ndarray X, str where, int *t):
    """X's dtype (float32 or float64, else TypeError); t = its NPY type."""
    t[0] = _ew_float_type(X)
    if t[0] < 0:
        raise TypeError(f"{where}: x must be float32 or float64, got {X.dtype}")
    return _K_F32 if t[0] == cnp.NPY_FLOAT else _K_F64


def layer_norm_forward(cnp.ndarray Y not None, object mean, object rstd, cnp.ndarray X not None,
                       object gamma, object beta, double eps, bint rms, int nthreads):
    """Y (M, C) = layer norm of X's rows (RMS norm when rms: no beta), with gamma,
    beta (C,) or None; mean, rstd (M,) (either may be None) receive each row's
    statistics (mean is not written when rms). Y may be X itself."""
    cdef str where = "rms_norm" if rms else "layer_norm"
    cdef int t
    cdef object dt = _ln_dtype(X, where, &t)
    cdef Py_ssize_t m = _k_rows2(X, where, "x")
    cdef Py_ssize_t c = X.shape[1]
    cdef void *x = data_of(X, dt, where, "x")
    cdef void *y = _k_arr2(Y, dt, m, c, where, "out", True)
    cdef void *mp = NULL if rms else _ln_vec(mean, dt, m, where, "mean_out", True)
    cdef void *sp = _ln_vec(rstd, dt, m, where, "rstd_out", True)
    cdef void *gp = _ln_vec(gamma, dt, c, where, "gamma", False)
    cdef void *bp = _ln_vec(beta, dt, c, where, "beta", False)
    cdef int status
    _k_apart_or_alias(where, "out", Y, "x", X)
    _k_apart(where, "out", Y, "mean_out, rstd_out, gamma or beta", mean, rstd, gamma, beta)
    _k_apart(where, "mean_out", mean, "x, out, rstd_out, gamma or beta", X, Y, rstd, gamma, beta)
    _k_apart(where, "rstd_out", rstd, "x, out, gamma or beta", X, Y, gamma, beta)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_layernorm_forward_f32(<float *>y, <float *>mp, <float *>sp,
                                               <const float *>x, <const float *>gp,
                                               <const float *>bp, m, c, eps, rms, nthreads)
        else:
            status = fnn_layernorm_forward_f64(<double *>y, <double *>mp, <double *>sp,
                                               <const double *>x, <const double *>gp,
                                               <const double *>bp, m, c, eps, rms, nthreads)
    check_status(status)


cdef int _ln_gradients_apart(str where, object dX, object dgamma, object dbeta, object dY,
                            object X, object mean, object rstd, object gamma) except -1:
    """dx_out may be dy or x itself (the kernel reads a row before writing it);
    every other overlap between an output and any array is refused."""
    cdef str others = "the other arrays (dx_out, dgamma_out, dbeta_out, dy, x, mean, rstd, gamma)"
    if dX is not None and dX is not dY and dX is not X:
        if _is_alias(dX, dY):
            _k_apart(where, "dx_out", dX, "x", X)
        elif _is_alias(dX, X):
            _k_apart(where, "dx_out", dX, "dy", dY)
        else:
            _k_apart(where, "dx_out", dX, "dy or x", dY, X)
    _k_apart(where, "dx_out", dX, others, dgamma, dbeta, mean, rstd, gamma)
    _k_apart(where, "dgamma_out", dgamma, others, dX, dbeta, dY, X, mean, rstd, gamma)
    _k_apart(where, "dbeta_out", dbeta, others, dX, dgamma, dY, X, mean, rstd, gamma)
    return 0


def layer_norm_backward(object dX, object dgamma, object dbeta, cnp.ndarray dY not None,
                        cnp.ndarray X not None, object mean, cnp.ndarray rstd not None,
                        object gamma, bint rms, int nthreads):
    """The gradients of layer_norm_forward from its mean and rstd (mean unread, may
    be None, when rms): dX (M, C), dgamma, dbeta (C,) OVERWRITTEN; any may be None.
    dX may be dY or X itself."""
    cdef str where = "rms_norm_backward" if rms else "layer_norm_backward"
    cdef int t
    cdef object dt = _ln_dtype(X, where, &t)
    cdef Py_ssize_t m = _k_rows2(X, where, "x")
    cdef Py_ssize_t c = X.shape[1]
    cdef void *x = data_of(X, dt, where, "x")
    cdef void *dy = _k_arr2(dY, dt, m, c, where, "dy")
    cdef void *mp = NULL if rms else _k_arr1(mean, dt, m, where, "mean")
    cdef void *sp = _k_arr1(rstd, dt, m, where, "rstd")
    cdef void *gp = _ln_vec(gamma, dt, c, where, "gamma", False)
    cdef void *dxp = NULL
    cdef void *dgp = _ln_vec(dgamma, dt, c, where, "dgamma_out", True)
    cdef void *dbp = _ln_vec(dbeta, dt, c, where, "dbeta_out", True)
    cdef int status
    if dX is not None:
        dxp = _k_arr2(dX, dt, m, c, where, "dx_out", True)
    _ln_gradients_apart(where, dX, dgamma, dbeta, dY, X, mean, rstd, gamma)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_layernorm_backward_f32(<float *>dxp, <float *>dgp, <float *>dbp,
                                                <const float *>dy, <const float *>x,
                                                <const float *>mp, <const float *>sp,
                                                <const float *>gp, m, c, rms, nthreads)
        else:
            status = fnn_layernorm_backward_f64(<double *>dxp, <double *>dgp, <double *>dbp,
                                                <const double *>dy, <const double *>x,
                                                <const double *>mp, <const double *>sp,
                                                <const double *>gp, m, c, rms, nthreads)
    check_status(status)
