# Activation kernels (csrc/act.c): Y = act(X) and dX = dY * act'(.), on 2-D
# float32 arrays (rows, last axis). Softmax runs over each row.
#
# Also the argument checks shared by act.pxi, dense.pxi, loss.pxi and
# optim.pxi (included after this file by _core.pyx). These wrappers sit on
# the hot path of a training step, so the checks are C-level compares on the
# array header; Python objects are only built to word an error.

# Names of the FNN_ACT_* codes, in code order (the same tuple as
# fastnn.backend.ops.ACTIVATIONS; a test keeps them equal). Used in errors.
KERNEL_ACTIVATIONS = ("linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax",
                      "gelu", "swish")


cdef inline int _k_check_act(int act, str where) except -1:
    if act < 0 or act >= FNN_ACT_COUNT:
        raise ValueError(f"{where}: unknown activation code {act}; expected 0..{FNN_ACT_COUNT - 1}")
    return 0


cdef inline void *_k_arr2(cnp.ndarray a, object dtype, Py_ssize_t d0, Py_ssize_t d1,
                          str where, str name, bint writable=False) except NULL:
    """Pointer to `a`, a C-contiguous (d0, d1) array of `dtype`, or a clear error."""
    if a.ndim != 2 or a.shape[0] != d0 or a.shape[1] != d1:
        raise ValueError(f"{where}: {name} must have shape {(d0, d1)}, got {(<object>a).shape}")
    return data_of(a, dtype, where, name, writable)


cdef inline void *_k_arr1(cnp.ndarray a, object dtype, Py_ssize_t d0,
                          str where, str name, bint writable=False) except NULL:
    """Pointer to `a`, a C-contiguous (d0,) array of `dtype`, or a clear error."""
    if a.ndim != 1 or a.shape[0] != d0:
        raise ValueError(f"{where}: {name} must have shape {(d0,)}, got {(<object>a).shape}")
    return data_of(a, dtype, where, name, writable)


cdef inline void *_k_like(cnp.ndarray a, cnp.ndarray ref, str where, str name, str ref_name,
                          bint writable=False) except NULL:
    """Pointer to `a`, a C-contiguous float32 array shaped exactly like `ref`."""
    if not cnp.PyArray_SAMESHAPE(a, ref):
        raise ValueError(f"{where}: {name} must have the shape of {ref_name} "
                         f"{(<object>ref).shape}, got {(<object>a).shape}")
    return data_of(a, _K_F32, where, name, writable)


cdef inline Py_ssize_t _k_rows2(cnp.ndarray a, str where, str name) except -1:
    """Check that `a` is 2-D; return its number of rows."""
    if a.ndim != 2:
        raise ValueError(f"{where}: {name} must be 2-D, got shape {(<object>a).shape}")
    return a.shape[0]


def act_forward_f32(cnp.ndarray Y not None, cnp.ndarray X not None, int act, int nthreads):
    """Y = act(X) for 2-D float32 X (softmax over rows). Y may be X (in place)."""
    cdef Py_ssize_t n = _k_rows2(X, "act_forward_f32", "X")
    cdef Py_ssize_t o = X.shape[1]
    cdef const float *x = <const float *>data_of(X, _K_F32, "act_forward_f32", "X")
    cdef float *y = <float *>_k_arr2(Y, _K_F32, n, o, "act_forward_f32", "Y", True)
    cdef int status
    _k_check_act(act, "act_forward_f32")
    _k_apart_or_alias("act_forward_f32", "Y", Y, "X", X)
    with nogil:
        status = fnn_act_forward_f32(y, x, n, o, act, nthreads)
    check_status(status)


def act_backward_f32(cnp.ndarray dX not None, cnp.ndarray dY not None, object X, object Y,
                     int act, int nthreads):
    """dX = dY * act'(.) for 2-D float32 arrays, from the activation's input X
    (elu, gelu, swish) or output Y (the others); the one not read may be None.
    dX may be dY, X or Y itself (each row is read before it is written)."""
    cdef Py_ssize_t n = _k_rows2(dY, "act_backward_f32", "dY")
    cdef Py_ssize_t o = dY.shape[1]
    cdef const float *dy = <const float *>data_of(dY, _K_F32, "act_backward_f32", "dY")
    cdef float *dx = <float *>_k_arr2(dX, _K_F32, n, o, "act_backward_f32", "dX", True)
    cdef const float *x = NULL
    cdef const float *y = NULL
    cdef int status
    _k_check_act(act, "act_backward_f32")
    _k_apart_or_alias("act_backward_f32", "dX", dX, "dY", dY)
    _k_apart_or_alias("act_backward_f32", "dX", dX, "X", X)
    _k_apart_or_alias("act_backward_f32", "dX", dX, "Y", Y)
    if X is not None:
        x = <const float *>_k_arr2(X, _K_F32, n, o, "act_backward_f32", "X")
    if Y is not None:
        y = <const float *>_k_arr2(Y, _K_F32, n, o, "act_backward_f32", "Y")
    if act != FNN_ACT_LINEAR:
        if fnn_act_needs_input(act):
            if X is None:
                raise ValueError(f"act_backward_f32: {KERNEL_ACTIVATIONS[act]} needs the "
                                 f"activation's input X (got None)")
        elif Y is None:
            raise ValueError(f"act_backward_f32: {KERNEL_ACTIVATIONS[act]} needs the "
                             f"activation's output Y (got None)")
    with nogil:
        status = fnn_act_backward_f32(dx, dy, x, y, n, o, act, nthreads)
    check_status(status)


def act_needs_input(int act):
    """True when the backward pass of activation code `act` reads its input X."""
    _k_check_act(act, "act_needs_input")
    return bool(fnn_act_needs_input(act))
