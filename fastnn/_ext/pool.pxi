# Pooling kernels (csrc/pool.c): 2-D max and average pooling over NHWC float32
# images. The window geometry (pool size, strides, top/left padding) comes
# from fastnn.backend.ops' Keras formulas; the output shapes are read from the
# arrays and the C kernel checks that every window reaches into the input.
# Uses data_of (runtime.pxi) and _K_F32 / _K_I64 (act.pxi).


cdef inline void *_p_arr4(cnp.ndarray a, object dtype, str where, str name,
                          bint writable=False) except NULL:
    """Pointer to `a`, a C-contiguous 4-D (N, H, W, C) array of `dtype`."""
    if a.ndim != 4:
        raise ValueError(f"{where}: {name} must be 4-D (N, H, W, C), got shape "
                         f"{(<object>a).shape}")
    return data_of(a, dtype, where, name, writable)


cdef inline int _p_same_nc(cnp.ndarray a, cnp.ndarray x, str where, str name,
                           str x_name) except -1:
    """`a` (N, OH, OW, C) must share batch and channels with `x` (N, H, W, C)."""
    if a.shape[0] != x.shape[0] or a.shape[3] != x.shape[3]:
        raise ValueError(f"{where}: {name} {(<object>a).shape} and {x_name} "
                         f"{(<object>x).shape} differ in batch or channels")
    return 0


def max_pool2d_forward_f32(cnp.ndarray Y not None, object argmax, cnp.ndarray X not None,
                           int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t top,
                           int64_t left, int nthreads):
    """Y (N, OH, OW, C) = window maxima of X (N, H, W, C); argmax (int64, Y's
    shape, or None) = h * W + w of each first maximum."""
    cdef str where = "max_pool2d_forward_f32"
    cdef const float *x = <const float *>_p_arr4(X, _K_F32, where, "X")
    cdef float *y = <float *>_p_arr4(Y, _K_F32, where, "Y", True)
    cdef int64_t *am = NULL
    cdef int status
    _p_same_nc(Y, X, where, "Y", "X")
    if argmax is not None:
        am = <int64_t *>_p_arr4(argmax, _K_I64, where, "argmax", True)
        if not cnp.PyArray_SAMESHAPE(<cnp.ndarray>argmax, Y):
            raise ValueError(f"{where}: argmax must have Y's shape {(<object>Y).shape}, "
                             f"got {argmax.shape}")
    _k_apart(where, "Y", Y, "X or argmax", X, argmax)
    _k_apart(where, "argmax", argmax, "X", X)
    with nogil:
        status = fnn_max_pool2d_forward_f32(y, am, x, X.shape[0], X.shape[1], X.shape[2],
                                            X.shape[3], Y.shape[1], Y.shape[2], kh, kw, sh,
                                            sw, top, left, nthreads)
    check_status(status)


def max_pool2d_backward_f32(cnp.ndarray dX not None, cnp.ndarray dY not None,
                            cnp.ndarray argmax not None, int nthreads):
    """dX (N, H, W, C) = zeros plus each dY (N, OH, OW, C) added at its argmax."""
    cdef str where = "max_pool2d_backward_f32"
    cdef float *dx = <float *>_p_arr4(dX, _K_F32, where, "dX", True)
    cdef const float *dy = <const float *>_p_arr4(dY, _K_F32, where, "dY")
    cdef const int64_t *am = <const int64_t *>_p_arr4(argmax, _K_I64, where, "argmax")
    cdef int status
    _p_same_nc(dY, dX, where, "dY", "dX")
    if not cnp.PyArray_SAMESHAPE(argmax, dY):
        raise ValueError(f"{where}: argmax must have dY's shape {(<object>dY).shape}, "
                         f"got {(<object>argmax).shape}")
    _k_apart(where, "dX", dX, "dY or argmax", dY, argmax)
    with nogil:
        status = fnn_max_pool2d_backward_f32(dx, dy, am, dX.shape[0], dX.shape[1],
                                             dX.shape[2], dX.shape[3], dY.shape[1],
                                             dY.shape[2], nthreads)
    check_status(status)


def avg_pool2d_forward_f32(cnp.ndarray Y not None, cnp.ndarray X not None, int64_t kh,
                           int64_t kw, int64_t sh, int64_t sw, int64_t top, int64_t left,
                           int nthreads):
    """Y (N, OH, OW, C) = window means of X (N, H, W, C) over non-padded elements."""
    cdef str where = "avg_pool2d_forward_f32"
    cdef const float *x = <const float *>_p_arr4(X, _K_F32, where, "X")
    cdef float *y = <float *>_p_arr4(Y, _K_F32, where, "Y", True)
    cdef int status
    _p_same_nc(Y, X, where, "Y", "X")
    _k_apart(where, "Y", Y, "X", X)
    with nogil:
        status = fnn_avg_pool2d_forward_f32(y, x, X.shape[0], X.shape[1], X.shape[2],
                                            X.shape[3], Y.shape[1], Y.shape[2], kh, kw, sh,
                                            sw, top, left, nthreads)
    check_status(status)


def avg_pool2d_backward_f32(cnp.ndarray dX not None, cnp.ndarray dY not None, int64_t kh,
                            int64_t kw, int64_t sh, int64_t sw, int64_t top, int64_t left,
                            int nthreads):
    """dX (N, H, W, C) = each dY (N, OH, OW, C) / count spread over its window."""
    cdef str where = "avg_pool2d_backward_f32"
    cdef float *dx = <float *>_p_arr4(dX, _K_F32, where, "dX", True)
    cdef const float *dy = <const float *>_p_arr4(dY, _K_F32, where, "dY")
    cdef int status
    _p_same_nc(dY, dX, where, "dY", "dX")
    _k_apart(where, "dX", dX, "dY", dY)
    with nogil:
        status = fnn_avg_pool2d_backward_f32(dx, dy, dX.shape[0], dX.shape[1], dX.shape[2],
                                             dX.shape[3], dY.shape[1], dY.shape[2], kh, kw,
                                             sh, sw, top, left, nthreads)
    check_status(status)
