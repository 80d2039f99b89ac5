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


def dense_stack_f32(cnp.ndarray Y not None, cnp.ndarray X not None, list kernels not None,
                    list biases not None, list acts not None, int nthreads):
    """Y = the dense layers (kernels[l] (I_l, O_l), biases[l] (O_l,) or None,
    acts[l] FNN_ACT_* codes) applied in order to X (N, I_0), float32, in one
    call (csrc/dense_stack.c: blocks of rows through every layer in cache).
    Bitwise what gemm_f32 (then the row softmax) gives layer by layer."""
    cdef str where = "dense_stack_f32"
    cdef int L = len(kernels), l
    cdef int64_t dims[FNN_DENSE_STACK_MAX_LAYERS + 1]
    cdef const float *wp[FNN_DENSE_STACK_MAX_LAYERS]
    cdef const float *bp[FNN_DENSE_STACK_MAX_LAYERS]
    cdef int codes[FNN_DENSE_STACK_MAX_LAYERS]
    cdef cnp.ndarray W
    cdef const float *x
    cdef float *y
    cdef Py_ssize_t n = _k_rows2(X, where, "X")
    cdef int status
    if L < 1 or L > FNN_DENSE_STACK_MAX_LAYERS or len(biases) != L or len(acts) != L:
        raise ValueError(f"{where}: 1 to {FNN_DENSE_STACK_MAX_LAYERS} layers, one kernel, bias "
                         f"and activation each; got {L} kernels, {len(biases)} biases, "
                         f"{len(acts)} activations")
    dims[0] = X.shape[1]
    for l in range(L):
        W = kernels[l]
        wp[l] = <const float *>_k_arr2(W, _K_F32, dims[l], W.shape[1] if W.ndim == 2 else -1,
                                       where, f"kernels[{l}]")
        dims[l + 1] = W.shape[1]
        bp[l] = NULL
        if biases[l] is not None:
            bp[l] = <const float *>_k_arr1(biases[l], _K_F32, dims[l + 1], where, f"biases[{l}]")
        codes[l] = acts[l]
        _k_check_act(codes[l], where)
        _k_apart(where, "Y", Y, f"kernels[{l}] or biases[{l}]", W, biases[l])
    x = <const float *>data_of(X, _K_F32, where, "X")
    y = <float *>_k_arr2(Y, _K_F32, n, dims[L], where, "Y", True)
    _k_apart(where, "Y", Y, "X", X)
    with nogil:
        status = fnn_dense_stack_f32(y, x, n, L, dims, wp, bp, codes, nthreads)
    check_status(status)
