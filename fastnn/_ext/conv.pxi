# 2-D convolution over NHWC images (csrc/conv.c), float32: forward, and the
# backward pass (dZ, dW, db, dX) in one call. Uses the argument checks of
# act.pxi and gemm.pxi. The geometry (output size, padding) is the caller's:
# OH and OW are read from Y's (or dY's) shape, the top/left padding is given.


cdef int _conv_shape(fnn_conv2d_shape *s, str where, cnp.ndarray X, cnp.ndarray W,
                     cnp.ndarray Y, str y_name, tuple strides, tuple dilation,
                     tuple pads) except -1:
    """Fill `s` from X (N,H,W,C), W (KH,KW,C,F), Y (N,OH,OW,F) and the geometry."""
    if X.ndim != 4 or W.ndim != 4 or Y.ndim != 4:
        raise ValueError(f"{where}: X (N, H, W, C), W (KH, KW, C, F) and {y_name} (N, OH, OW, F) "
                         f"must be 4-D, got X {(<object>X).shape}, W {(<object>W).shape}, "
                         f"{y_name} {(<object>Y).shape}")
    if W.shape[2] != X.shape[3]:
        raise ValueError(f"{where}: channels differ: X {(<object>X).shape} has {X.shape[3]}, "
                         f"W {(<object>W).shape} expects {W.shape[2]}")
    s.N, s.H, s.W, s.C = X.shape[0], X.shape[1], X.shape[2], X.shape[3]
    s.KH, s.KW, s.F = W.shape[0], W.shape[1], W.shape[3]
    s.OH, s.OW = Y.shape[1], Y.shape[2]
    s.stride_h, s.stride_w = strides
    s.dil_h, s.dil_w = dilation
    s.pad_top, s.pad_left = pads
    if Y.shape[0] != s.N or Y.shape[3] != s.F or s.OH < 1 or s.OW < 1:
        raise ValueError(f"{where}: {y_name} must be (N={s.N}, OH >= 1, OW >= 1, F={s.F}) for "
                         f"X {(<object>X).shape} and W {(<object>W).shape}, got "
                         f"{(<object>Y).shape}")
    if (s.H < 1 or s.W < 1 or s.C < 1 or s.KH < 1 or s.KW < 1 or s.F < 1 or s.stride_h < 1
            or s.stride_w < 1 or s.dil_h < 1 or s.dil_w < 1 or s.pad_top < 0 or s.pad_left < 0):
        raise ValueError(f"{where}: invalid geometry: X {(<object>X).shape}, W "
                         f"{(<object>W).shape}, strides {strides}, dilation {dilation}, "
                         f"padding {pads} (sizes, strides, dilation >= 1, padding >= 0)")
    return 0


cdef float *_conv_work(object work, int64_t *n, str where) except? NULL:
    """Pointer and length of an optional 1-D float32 scratch (NULL, 0 for None)."""
    cdef cnp.ndarray a
    if work is None:
        n[0] = 0
        return NULL
    a = <cnp.ndarray?>work
    if a.ndim != 1:
        raise ValueError(f"{where}: cols must be 1-D, got shape {(<object>a).shape}")
    n[0] = a.shape[0]
    return <float *>data_of(a, _K_F32, where, "cols", True)


def conv2d_work_floats(cnp.ndarray X not None, cnp.ndarray W not None, cnp.ndarray Y not None,
                       tuple strides, tuple dilation, tuple pads, bint backward, int nthreads):
    """Floats of scratch conv2d_forward_f32 (backward: conv2d_backward_f32) uses."""
    cdef fnn_conv2d_shape s
    _conv_shape(&s, "conv2d_work_floats", X, W, Y, "Y", strides, dilation, pads)
    return fnn_conv2d_work_floats(&s, backward, nthreads)


def conv2d_forward_f32(cnp.ndarray Y not None, object Z, cnp.ndarray X not None,
                       cnp.ndarray W not None, object b, tuple strides, tuple dilation,
                       tuple pads, object work, int act, int nthreads):
    """Y (N,OH,OW,F) = act(conv(X, W) + b) for X (N,H,W,C), W (KH,KW,C,F), float32.

    Z (like Y, may be None) receives conv + b. strides, dilation: (h, w) >= 1;
    pads: (top, left) >= 0. work: optional 1-D float32 scratch (see
    conv2d_work_floats; the kernel allocates when it is too small).
    """
    cdef fnn_conv2d_shape s
    cdef float *y
    cdef float *z = NULL
    cdef const float *x
    cdef const float *w
    cdef const float *bp = NULL
    cdef float *wk
    cdef int64_t nwork
    cdef int status
    _conv_shape(&s, "conv2d_forward_f32", X, W, Y, "Y", strides, dilation, pads)
    _k_check_act(act, "conv2d_forward_f32")
    x = <const float *>data_of(X, _K_F32, "conv2d_forward_f32", "X")
    w = <const float *>data_of(W, _K_F32, "conv2d_forward_f32", "W")
    y = <float *>data_of(Y, _K_F32, "conv2d_forward_f32", "Y", True)
    if Z is not None:
        z = <float *>_k_like(Z, Y, "conv2d_forward_f32", "Z", "Y", True)
    if b is not None:
        bp = <const float *>_k_arr1(b, _K_F32, s.F, "conv2d_forward_f32", "b")
    _k_apart("conv2d_forward_f32", "Y", Y, "Z, X, W or b", Z, X, W, b)
    _k_apart("conv2d_forward_f32", "Z", Z, "X, W or b", X, W, b)
    _k_apart("conv2d_forward_f32", "work", work, "Y, Z, X, W or b", Y, Z, X, W, b)
    wk = _conv_work(work, &nwork, "conv2d_forward_f32")
    with nogil:
        status = fnn_conv2d_forward_f32(y, z, wk, x, w, bp, &s, nwork, act, nthreads)
    check_status(status)


def conv2d_backward_f32(object dX, cnp.ndarray dW not None, object db, cnp.ndarray dZ not None,
                        cnp.ndarray dY not None, cnp.ndarray X not None, cnp.ndarray W not None,
                        object Z, object Y, tuple strides, tuple dilation, tuple pads,
                        object work, int act, int nthreads):
    """Backward of conv2d_forward_f32, float32.

    Overwrites dZ (like dY) = dY * act'(Z or Y), dW (like W) and db (F,) (may
    be None), and dX (like X; None to skip it, for a first layer). Z, the
    pre-activation, is needed for elu/gelu/swish; Y, the output, for the other
    non-linear activations.
    """
    cdef fnn_conv2d_shape s
    cdef float *dxp = NULL
    cdef float *dw
    cdef float *dbp = NULL
    cdef float *dz
    cdef const float *dy
    cdef const float *x
    cdef const float *w
    cdef const float *z = NULL
    cdef const float *y = NULL
    cdef float *wk
    cdef int64_t nwork
    cdef int status
    _conv_shape(&s, "conv2d_backward_f32", X, W, dY, "dY", strides, dilation, pads)
    _k_check_act(act, "conv2d_backward_f32")
    x = <const float *>data_of(X, _K_F32, "conv2d_backward_f32", "X")
    w = <const float *>data_of(W, _K_F32, "conv2d_backward_f32", "W")
    dy = <const float *>data_of(dY, _K_F32, "conv2d_backward_f32", "dY")
    dz = <float *>_k_like(dZ, dY, "conv2d_backward_f32", "dZ", "dY", True)
    dw = <float *>_k_like(dW, W, "conv2d_backward_f32", "dW", "W", True)
    if db is not None:
        dbp = <float *>_k_arr1(db, _K_F32, s.F, "conv2d_backward_f32", "db", True)
    if dX is not None:
        dxp = <float *>_k_like(dX, X, "conv2d_backward_f32", "dX", "X", True)
    if Z is not None:
        z = <const float *>_k_like(Z, dY, "conv2d_backward_f32", "Z", "dY")
    if Y is not None:
        y = <const float *>_k_like(Y, dY, "conv2d_backward_f32", "Y", "dY")
    if act != FNN_ACT_LINEAR:
        if fnn_act_needs_input(act):
            if Z is None:
                raise ValueError(f"conv2d_backward_f32: {KERNEL_ACTIVATIONS[act]} needs the "
                                 f"pre-activation Z (got None)")
        elif Y is None:
            raise ValueError(f"conv2d_backward_f32: {KERNEL_ACTIVATIONS[act]} needs the "
                             f"layer output Y (got None)")
    _k_layer_grads_apart("conv2d_backward_f32", dX, dW, db, dZ, dY, X, W, Z, Y)
    _k_apart("conv2d_backward_f32", "work", work, "the other arrays", dX, dW, db, dZ, dY, X, W)
    _k_apart("conv2d_backward_f32", "work", work, "the other arrays", Z, Y)
    wk = _conv_work(work, &nwork, "conv2d_backward_f32")
    with nogil:
        status = fnn_conv2d_backward_f32(dxp, dw, dbp, dz, wk, dy, x, w, z, y, &s, nwork, act,
                                         nthreads)
    check_status(status)
