# Reductions over axes (csrc/elementwise.c, the engine of sum_to_shape and of
# the binary gradients): sum / mean / max / min of x over any axes, and their
# gradients, float32 and float64. Softmax and log-softmax along one axis
# (csrc/softmax.c).
#
# Like elementwise.pxi (whose layout helpers these use: included after it by
# _core.pyx), the checks are C-level compares on the array headers and the
# reduction is described to the kernel as x's shape with y's strides (0
# along the reduced axes), collapsed. The errors are worded as the shared
# checks in fastnn.backend.ops (check_axes, check_reduce_args, ...).

# Names of the FNN_REDUCE_* codes, in code order (fastnn.backend.ops.REDUCE_OPS;
# a test keeps them equal).
KERNEL_REDUCE_OPS = ("sum", "mean", "max", "min")


cdef int _red_mark(object a, object axes, cnp.ndarray X, bint *mask, str where) except -1:
    """Mark axis `a` (an int, negative from the end) of X in mask (ops.check_axes)."""
    cdef int nd = X.ndim
    cdef object v
    cdef int d
    if type(a) is int:
        v = a
    else:
        try:
            if isinstance(a, bool):
                raise TypeError
            v = operator.index(a)
        except TypeError:
            raise TypeError(f"{where}: axes must be None, an int or a tuple of ints, got "
                            f"{axes!r}") from None
    if not -nd <= v < nd:
        raise ValueError(f"{where}: axis {v} is out of range for x of shape "
                         f"{(<object>X).shape}")
    d = v % nd
    if mask[d]:
        raise ValueError(f"{where}: axes {axes!r} repeat axis {d} of x {(<object>X).shape}")
    mask[d] = True
    return 1


cdef int _red_axes(object axes, cnp.ndarray X, bint *mask, str where) except -1:
    """mask[d] = whether axis d of X is reduced, for ``axes`` (None: all; an int or
    a tuple / list of ints), with ops.check_axes's rules and errors."""
    cdef int d
    cdef object a
    for d in range(X.ndim):
        mask[d] = axes is None
    if axes is None:
        return 0
    if isinstance(axes, (tuple, list)):
        for a in axes:
            _red_mark(a, axes, X, mask, where)
    else:
        _red_mark(axes, axes, X, mask, where)
    return 0


cdef tuple _red_axes_tuple(int nd, const bint *mask):
    return tuple([d for d in range(nd) if mask[d]])


cdef int _red_shapes(cnp.ndarray X, const bint *mask, bint keepdims, cnp.npy_intp *kdims,
                     int64_t *yshape) noexcept:
    """kdims[X.ndim]: X's shape with the reduced axes 1; yshape: the result's shape
    (kdims when keepdims, else without those axes). Returns the result's rank."""
    cdef int d, ny = 0
    for d in range(X.ndim):
        kdims[d] = 1 if mask[d] else X.shape[d]
        if keepdims or not mask[d]:
            yshape[ny] = kdims[d]
            ny += 1
    return ny


cdef tuple _REDUCE_WHERE = tuple(["reduce " + name for name in KERNEL_REDUCE_OPS])
cdef tuple _REDUCE_BACKWARD_WHERE = tuple(["reduce_backward " + name
                                           for name in KERNEL_REDUCE_OPS])


cdef int _red_layout(cnp.ndarray X, const cnp.npy_intp *kdims, int64_t *cshape, int64_t *sy,
                     int64_t *sx) noexcept:
    """The kernel's collapsed layout: X's shape, y laid out by sy (0 where reduced)."""
    cdef int64_t xshape[FNN_MAX_DIMS]
    cdef int d, nd = X.ndim
    for d in range(nd):
        xshape[d] = X.shape[d]
    # y is the one operand (passed twice; sx repeats sy), X the output's shape.
    return _ew_collapse(nd, xshape, nd, kdims, nd, kdims, cshape, sy, sx)


def reduce(object Y, cnp.ndarray X not None, object axes, bint keepdims, int op, int nthreads):
    """Return X reduced (FNN_REDUCE_* code op) over ``axes`` (None: all; an int or a
    tuple of ints), keeping them as 1 when keepdims. Y, when given, receives the
    result (C-contiguous, writable, sharing no memory with X unless nothing is
    reduced and Y is X itself)."""
    cdef str where
    cdef int t = _ew_float_type(X)
    cdef bint mask[FNN_MAX_DIMS]
    cdef cnp.npy_intp kdims[FNN_MAX_DIMS]
    cdef int64_t yshape[FNN_MAX_DIMS]
    cdef int64_t cshape[FNN_MAX_DIMS]
    cdef int64_t sy[FNN_MAX_DIMS]
    cdef int64_t sx[FNN_MAX_DIMS]
    cdef int nd = X.ndim, ny, d, cnd, fault, status
    cdef bint same
    cdef cnp.ndarray out
    _ew_check_code(op, FNN_REDUCE_COUNT, "reduce")
    where = <str>_REDUCE_WHERE[op]
    if t < 0:
        raise TypeError(f"{where}: x must be float32 or float64, got {X.dtype}")
    _red_axes(axes, X, mask, where)
    if op == FNN_REDUCE_MAX or op == FNN_REDUCE_MIN:
        for d in range(nd):
            if mask[d] and X.shape[d] == 0:
                raise ValueError(f"{where}: x {(<object>X).shape} is empty along the reduced "
                                 f"axes {_red_axes_tuple(nd, mask)} (a "
                                 f"{KERNEL_REDUCE_OPS[op]} of nothing has no value)")
    ny = _red_shapes(X, mask, keepdims, kdims, yshape)
    if Y is None:
        out = _ew_empty(ny, yshape, t)
    else:
        fault = _ew_out_fault(Y, ny, yshape, t)
        if fault:
            _ew_raise_out(fault, Y, where, "out", ny, yshape, t,
                          f" for x {(<object>X).shape} reduced over axes "
                          f"{_red_axes_tuple(nd, mask)}")
        out = <cnp.ndarray>Y
        same = cnp.PyArray_SAMESHAPE(out, X)
        if _overlaps(out, X) and not (same and _is_alias(out, X)):
            raise ValueError(f"{where}: out {Y.shape} must not share memory with x "
                             f"{(<object>X).shape}")
    if cnp.PyArray_SIZE(out) == 0:
        return out
    if cnp.PyArray_SIZE(X) == 0:
        # A sum of nothing is 0; a mean of nothing 0 / 0 (NumPy's NaN).
        if op == FNN_REDUCE_SUM:
            cnp.PyArray_FILLWBYTE(out, 0)
        else:
            out.fill(np.nan)
        return out
    X = _ew_contiguous(X)
    cnd = _red_layout(X, kdims, cshape, sy, sx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_reduce_f32(<float *>cnp.PyArray_DATA(out),
                                    <const float *>cnp.PyArray_DATA(X), cnd, cshape, sy, op,
                                    nthreads)
        else:
            status = fnn_reduce_f64(<double *>cnp.PyArray_DATA(out),
                                    <const double *>cnp.PyArray_DATA(X), cnd, cshape, sy, op,
                                    nthreads)
    check_status(status)
    return out


cdef int _red_check_grad_input(object a, str name, cnp.ndarray X, int t, int ny,
                               const int64_t *yshape, const bint *mask, bint keepdims,
                               str where) except -1:
    """dy / y: an array of X's dtype and the result's shape (ops.check_reduce_backward_args)."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy array, got {type(a).__name__}")
    if _ew_float_type(<cnp.ndarray>a) != t:
        raise TypeError(f"{where}: {name} must be {X.dtype} like x, got {a.dtype}")
    if not _ew_has_shape(<cnp.ndarray>a, ny, yshape):
        raise ValueError(f"{where}: {name} must have shape {_ew_tuple(ny, yshape)} (x "
                         f"{(<object>X).shape} reduced over axes "
                         f"{_red_axes_tuple(X.ndim, mask)}, keepdims={bool(keepdims)}), got "
                         f"{a.shape}")
    return 0


def reduce_backward(object dX, cnp.ndarray dY not None, cnp.ndarray X not None, object Y,
                    object axes, bint keepdims, int op, int nthreads):
    """Return dX (X's shape) = the gradient of Y = reduce(op, X, axes, keepdims)
    given dY (Y's shape). Y is read by max and min only (None allowed for sum and
    mean). dX, when given, must share no memory with dY, X or Y (OVERWRITTEN)."""
    cdef str where
    cdef int t = _ew_float_type(X)
    cdef bint mask[FNN_MAX_DIMS]
    cdef cnp.npy_intp kdims[FNN_MAX_DIMS]
    cdef int64_t yshape[FNN_MAX_DIMS]
    cdef int64_t cshape[FNN_MAX_DIMS]
    cdef int64_t sy[FNN_MAX_DIMS]
    cdef int64_t sx[FNN_MAX_DIMS]
    cdef int ny, cnd, status
    cdef bint extreme = op == FNN_REDUCE_MAX or op == FNN_REDUCE_MIN
    cdef cnp.ndarray out
    cdef cnp.ndarray y
    cdef void *px = NULL
    cdef void *py = NULL
    _ew_check_code(op, FNN_REDUCE_COUNT, "reduce_backward")
    where = <str>_REDUCE_BACKWARD_WHERE[op]
    if t < 0:
        raise TypeError(f"{where}: x must be float32 or float64, got {X.dtype}")
    _red_axes(axes, X, mask, where)
    ny = _red_shapes(X, mask, keepdims, kdims, yshape)
    _red_check_grad_input(dY, "dy", X, t, ny, yshape, mask, keepdims, where)
    if Y is not None or extreme:
        _red_check_grad_input(Y, "y", X, t, ny, yshape, mask, keepdims, where)
    out = _ew_out_like(dX, X, t, where, "x")
    if dX is not None and (_overlaps(out, dY) or _overlaps(out, X)
                           or (Y is not None and _overlaps(out, <cnp.ndarray>Y))):
        raise ValueError(f"{where}: out must not share memory with dy, x or y")
    if cnp.PyArray_SIZE(out) == 0:
        return out
    dY = _ew_contiguous(dY)
    if extreme:
        X = _ew_contiguous(X)
        y = _ew_contiguous(<cnp.ndarray>Y)
        px = cnp.PyArray_DATA(X)
        py = cnp.PyArray_DATA(y)
    cnd = _red_layout(X, kdims, cshape, sy, sx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_reduce_backward_f32(<float *>cnp.PyArray_DATA(out),
                                             <const float *>cnp.PyArray_DATA(dY),
                                             <const float *>px, <const float *>py, cnd, cshape,
                                             sy, op, nthreads)
        else:
            status = fnn_reduce_backward_f64(<double *>cnp.PyArray_DATA(out),
                                             <const double *>cnp.PyArray_DATA(dY),
                                             <const double *>px, <const double *>py, cnd,
                                             cshape, sy, op, nthreads)
    check_status(status)
    return out


# ---- softmax / log-softmax along one axis (csrc/softmax.c) -----------------------

cdef int _sm_axis(object axis, cnp.ndarray X, str where, str name) except -1:
    """One int axis of X (negative from the end) as an axis >= 0 (ops._check_one_axis)."""
    cdef int nd = X.ndim
    cdef object v
    if type(axis) is int:
        v = axis
    else:
        try:
            if isinstance(axis, bool):
                raise TypeError
            v = operator.index(axis)
        except TypeError:
            raise TypeError(f"{where}: axis must be an int, got {axis!r}") from None
    if not -nd <= v < nd:
        raise ValueError(f"{where}: axis {v} is out of range for {name} of shape "
                         f"{(<object>X).shape}")
    return v % nd


cdef void _sm_lines(cnp.ndarray X, int axis, int64_t *outer, int64_t *L,
                    int64_t *inner) noexcept:
    """X viewed as (outer, L, inner) around `axis`."""
    cdef int d
    outer[0] = 1
    inner[0] = 1
    for d in range(axis):
        outer[0] *= X.shape[d]
    L[0] = X.shape[axis]
    for d in range(axis + 1, X.ndim):
        inner[0] *= X.shape[d]


def softmax_forward(object Y, cnp.ndarray X not None, object axis, bint is_log, int nthreads):
    """Return Y = softmax (log_softmax when is_log) of X along ``axis``. Y (X's shape
    and dtype, C-contiguous, writable) may be X itself; None allocates it."""
    cdef str where = "log_softmax" if is_log else "softmax"
    cdef int t = _ew_float_type(X)
    cdef int d, status
    cdef int64_t outer, L, inner
    cdef cnp.ndarray out
    if t < 0:
        raise TypeError(f"{where}: x must be float32 or float64, got {X.dtype}")
    d = _sm_axis(axis, X, where, "x")
    out = _ew_out_like(Y, X, t, where, "x")
    if Y is not None and _partial_overlap(out, X):
        raise ValueError(f"{where}: out {(<object>out).shape} shares memory with x without "
                         f"being that array itself")
    X = _ew_contiguous(X)
    _sm_lines(X, d, &outer, &L, &inner)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_softmax_forward_f32(<float *>cnp.PyArray_DATA(out),
                                             <const float *>cnp.PyArray_DATA(X), outer, L,
                                             inner, is_log, nthreads)
        else:
            status = fnn_softmax_forward_f64(<double *>cnp.PyArray_DATA(out),
                                             <const double *>cnp.PyArray_DATA(X), outer, L,
                                             inner, is_log, nthreads)
    check_status(status)
    return out


def softmax_backward(object dX, cnp.ndarray dY not None, cnp.ndarray Y not None, object axis,
                     bint is_log, int nthreads):
    """Return dX, the gradient of Y = softmax / log_softmax (is_log) along ``axis``,
    from dY and Y. dX may be dY or Y itself; None allocates it."""
    cdef str where = "log_softmax_backward" if is_log else "softmax_backward"
    cdef int t = _ew_float_type(dY)
    cdef int d, status
    cdef int64_t outer, L, inner
    cdef cnp.ndarray out
    if t < 0:
        raise TypeError(f"{where}: dy must be float32 or float64, got {dY.dtype}")
    _ew_check_like(Y, "y", dY, t, where)
    d = _sm_axis(axis, dY, where, "dy")
    out = _ew_out_like(dX, dY, t, where, "dy")
    if dX is not None and (_partial_overlap(out, dY) or _partial_overlap(out, Y)):
        raise ValueError(f"{where}: out {(<object>out).shape} shares memory with dy or y "
                         f"without being that array itself")
    dY = _ew_contiguous(dY)
    Y = _ew_contiguous(Y)
    _sm_lines(dY, d, &outer, &L, &inner)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_softmax_backward_f32(<float *>cnp.PyArray_DATA(out),
                                              <const float *>cnp.PyArray_DATA(dY),
                                              <const float *>cnp.PyArray_DATA(Y), outer, L,
                                              inner, is_log, nthreads)
        else:
            status = fnn_softmax_backward_f64(<double *>cnp.PyArray_DATA(out),
                                              <const double *>cnp.PyArray_DATA(dY),
                                              <const double *>cnp.PyArray_DATA(Y), outer, L,
                                              inner, is_log, nthreads)
    check_status(status)
    return out
