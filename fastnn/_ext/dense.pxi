# Dense-layer backward (csrc/dense.c) and the deterministic column sum.
# Uses the argument checks defined in act.pxi.


def dense_backward_f32(object dX, cnp.ndarray dW not None, object db, cnp.ndarray dZ not None,
                       cnp.ndarray dY not None, cnp.ndarray X not None, cnp.ndarray W not None,
                       object Z, object Y, int act, int nthreads):
    """Backward of Y = act(X W + b), X (N, I), W (I, O), all float32.

    Overwrites dZ (N, O) = dY * act'(Z or Y) (for linear, dZ is dY, read in place,
    and dZ is left as it was), dW (I, O) = X^T dZ, db (O,) =
    column sums of dZ (db may be None) and dX (N, I) = dZ W^T (dX may be None
    to skip it). Z, the pre-activation, is needed for elu/gelu/swish; Y, the
    output, for the other non-linear activations; either may be None otherwise.
    """
    cdef Py_ssize_t n = _k_rows2(X, "dense_backward_f32", "X")
    cdef Py_ssize_t i = X.shape[1]
    cdef Py_ssize_t o
    cdef const float *x
    cdef const float *w
    cdef const float *dy
    cdef float *dz
    cdef float *dw
    cdef float *dbp = NULL
    cdef float *dxp = NULL
    cdef const float *z = NULL
    cdef const float *y = NULL
    cdef int status
    _k_rows2(W, "dense_backward_f32", "W")
    if W.shape[0] != i:
        raise ValueError(f"dense_backward_f32: X {(<object>X).shape} and W {(<object>W).shape} "
                         f"disagree (X is (N, I), W is (I, O))")
    o = W.shape[1]
    _k_check_act(act, "dense_backward_f32")
    x = <const float *>data_of(X, _K_F32, "dense_backward_f32", "X")
    w = <const float *>data_of(W, _K_F32, "dense_backward_f32", "W")
    dy = <const float *>_k_arr2(dY, _K_F32, n, o, "dense_backward_f32", "dY")
    dz = <float *>_k_arr2(dZ, _K_F32, n, o, "dense_backward_f32", "dZ", True)
    dw = <float *>_k_arr2(dW, _K_F32, i, o, "dense_backward_f32", "dW", True)
    if db is not None:
        dbp = <float *>_k_arr1(db, _K_F32, o, "dense_backward_f32", "db", True)
    if dX is not None:
        dxp = <float *>_k_arr2(dX, _K_F32, n, i, "dense_backward_f32", "dX", True)
    if Z is not None:
        z = <const float *>_k_arr2(Z, _K_F32, n, o, "dense_backward_f32", "Z")
    if Y is not None:
        y = <const float *>_k_arr2(Y, _K_F32, n, o, "dense_backward_f32", "Y")
    if act != FNN_ACT_LINEAR:
        if fnn_act_needs_input(act):
            if Z is None:
                raise ValueError(f"dense_backward_f32: {KERNEL_ACTIVATIONS[act]} needs the "
                                 f"pre-activation Z (got None)")
        elif Y is None:
            raise ValueError(f"dense_backward_f32: {KERNEL_ACTIVATIONS[act]} needs the "
                             f"layer output Y (got None)")
    _k_layer_grads_apart("dense_backward_f32", dX, dW, db, dZ, dY, X, W, Z, Y)
    with nogil:
        status = fnn_dense_backward_f32(dxp, dw, dbp, dz, dy, x, w, z, y, n, i, o, act, nthreads)
    check_status(status)


def colsum_f32(cnp.ndarray out not None, cnp.ndarray X not None, int nthreads):
    """out (O,) = column sums of float32 X (N, O), in double: each fixed chunk of rows
    in row order, the chunks in order (the same bits for any nthreads)."""
    cdef Py_ssize_t n = _k_rows2(X, "colsum_f32", "X")
    cdef Py_ssize_t o = X.shape[1]
    cdef const float *x = <const float *>data_of(X, _K_F32, "colsum_f32", "X")
    cdef float *outp = <float *>_k_arr1(out, _K_F32, o, "colsum_f32", "out", True)
    cdef int status
    with nogil:
        status = fnn_colsum_f32(outp, x, n, o, nthreads)
    check_status(status)
