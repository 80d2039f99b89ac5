# Concatenation along an axis and its backward, the split (csrc/concat.c),
# float32 and float64. The kernels copy bytes; the dtype rule is fastnn's.
# Every array is viewed as `outer` rows (the axes before the concatenation
# axis); a piece's rows hold its size along the axis times the product of the
# axes after it. Non-contiguous pieces are copied to C order first.
# Uses _ew_* and operator (elementwise.pxi).

# Pieces whose pointer and width tables live on the stack; more are allocated.
cdef enum:
    _CC_STACK = 16


cdef int _cc_axis(object axis, int ndim, str where) except -100:
    """axis (an integer; negative counts from the end) counted from the front, or
    ValueError naming the rank."""
    axis = operator.index(axis)
    if axis < -ndim or axis >= ndim:
        raise ValueError(f"{where}: axis {axis} is out of range for {ndim}-D arrays")
    return axis + ndim if axis < 0 else axis


cdef void *_cc_tables(Py_ssize_t k, void **stack_ptrs, int64_t *stack_widths,
                      void ***ptrs, int64_t **widths) except NULL:
    """Point ptrs / widths at tables of k entries: the stack ones when k is small."""
    cdef void *block
    if k <= _CC_STACK:
        ptrs[0] = stack_ptrs
        widths[0] = stack_widths
        return <void *>stack_ptrs
    block = PyMem_Malloc(<size_t>k * (sizeof(void *) + sizeof(int64_t)))
    if block == NULL:
        raise MemoryError("concatenate: cannot allocate the piece tables")
    ptrs[0] = <void **>block
    widths[0] = <int64_t *>(<char *>block + <size_t>k * sizeof(void *))
    return block


def concat_forward(object Y, object xs, object axis, int nthreads):
    """Return Y = the arrays xs (float32 or float64, one dtype, equal shapes but
    along `axis`; negative counts from the end) concatenated along axis. Y
    (the result's shape and dtype, C-contiguous, writable, sharing no memory
    with xs) receives it; None allocates it."""
    cdef void *stack_ptrs[_CC_STACK]
    cdef int64_t stack_widths[_CC_STACK]
    cdef void **ptrs
    cdef int64_t *widths
    cdef void *block = NULL
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int64_t outer = 1, inner = 1, total = 0
    cdef Py_ssize_t k, i
    cdef int t, nd, ax, d, fault, status
    cdef cnp.ndarray x0, x, out
    cdef list keep = None
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise ValueError("concatenate: xs must be a non-empty list or tuple of arrays, got "
                         f"{xs!r:.80}")
    k = len(xs)
    for i in range(k):
        if not isinstance(xs[i], cnp.ndarray):
            raise TypeError(f"concatenate: xs[{i}] must be a numpy array, got "
                            f"{type(xs[i]).__name__}")
    x0 = <cnp.ndarray>xs[0]
    t = _ew_float_type(x0)
    nd = x0.ndim
    if nd == 0:
        raise ValueError("concatenate: 0-d arrays cannot be concatenated")
    ax = _cc_axis(axis, nd, "concatenate")
    for i in range(k):
        x = <cnp.ndarray>xs[i]
        if t < 0 or _ew_float_type(x) != t:
            raise TypeError(f"concatenate: the arrays must share a float32 or float64 dtype, "
                            f"got xs[0] {x0.dtype} and xs[{i}] {x.dtype}")
        if x.ndim != nd:
            raise ValueError(f"concatenate: every array must have the shape of xs[0] "
                             f"{(<object>x0).shape} but along axis {ax}, got xs[{i}] "
                             f"{(<object>x).shape}")
        for d in range(nd):
            if d != ax and x.shape[d] != x0.shape[d]:
                raise ValueError(f"concatenate: every array must have the shape of xs[0] "
                                 f"{(<object>x0).shape} but along axis {ax}, got xs[{i}] "
                                 f"{(<object>x).shape}")
        total += x.shape[ax]
    for d in range(nd):
        shape[d] = x0.shape[d]
        if d < ax:
            outer *= shape[d]
        elif d > ax:
            inner *= shape[d]
    shape[ax] = total
    if Y is None:
        out = _ew_empty(nd, shape, t)
    else:
        fault = _ew_out_fault(Y, nd, shape, t)
        if fault:
            _ew_raise_out(fault, Y, "concatenate", "out", nd, shape, t, "")
        out = <cnp.ndarray>Y
        for i in range(k):
            if _overlaps(out, <cnp.ndarray>xs[i]):
                raise ValueError(f"concatenate: out {Y.shape} must not share memory with "
                                 f"xs[{i}] {xs[i].shape}")
    if cnp.PyArray_SIZE(out) == 0:
        return out
    block = _cc_tables(k, stack_ptrs, stack_widths, &ptrs, &widths)
    try:
        for i in range(k):
            x = <cnp.ndarray>xs[i]
            if not cnp.PyArray_IS_C_CONTIGUOUS(x):
                x = cnp.PyArray_GETCONTIGUOUS(x)
                if keep is None:
                    keep = []
                keep.append(x)       # alive until the kernel has read it
            ptrs[i] = cnp.PyArray_DATA(x)
            widths[i] = x.shape[ax] * inner
        with nogil:
            status = fnn_concat_forward(cnp.PyArray_DATA(out), <const void *const *>ptrs,
                                        widths, k, outer, cnp.PyArray_ITEMSIZE(out), nthreads)
        check_status(status)
    finally:
        if block != <void *>stack_ptrs:
            PyMem_Free(block)
    return out


def concat_backward(object outs, cnp.ndarray dY not None, object sizes, object axis,
                    int nthreads):
    """Return the list of pieces of dY (float32 or float64) cut along `axis` into
    `sizes` (non-negative, summing to dY.shape[axis]). outs: None, or one entry
    per piece: an array of the piece's shape to write into, None to allocate,
    or False to skip the piece (None in its place)."""
    cdef void *stack_ptrs[_CC_STACK]
    cdef int64_t stack_widths[_CC_STACK]
    cdef void **ptrs
    cdef int64_t *widths
    cdef void *block = NULL
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int64_t outer = 1, inner = 1, total = 0, size
    cdef Py_ssize_t k, i
    cdef int t = _ew_float_type(dY)
    cdef int nd = dY.ndim, ax, d, fault, status
    cdef list pieces
    cdef object given, piece
    if t < 0:
        raise TypeError(f"split: x must be float32 or float64, got {dY.dtype}")
    if nd == 0:
        raise ValueError("split: a 0-d array cannot be split")
    ax = _cc_axis(axis, nd, "split")
    if not isinstance(sizes, (list, tuple)) or len(sizes) == 0:
        raise ValueError(f"split: sizes must be a non-empty list of ints, got {sizes!r:.80}")
    k = len(sizes)
    for i in range(k):
        try:
            size = operator.index(sizes[i])
        except (TypeError, OverflowError):
            total = -1
            break
        if size < 0:
            total = -1
            break
        total += size
    if total != dY.shape[ax]:
        raise ValueError(f"split: sizes {list(sizes)} must be non-negative ints summing to "
                         f"x.shape[{ax}] = {dY.shape[ax]} (x {(<object>dY).shape})")
    if outs is not None and (not isinstance(outs, (list, tuple)) or len(outs) != k):
        raise ValueError(f"split: outs must be None or a list of {k} entries, got {outs!r:.80}")
    for d in range(nd):
        shape[d] = dY.shape[d]
        if d < ax:
            outer *= shape[d]
        elif d > ax:
            inner *= shape[d]
    pieces = [None] * k
    for i in range(k):
        shape[ax] = sizes[i]
        given = None if outs is None else outs[i]
        if given is False:
            continue
        if given is None:
            pieces[i] = _ew_empty(nd, shape, t)
            continue
        fault = _ew_out_fault(given, nd, shape, t)
        if fault:
            _ew_raise_out(fault, given, "split", f"outs[{i}]", nd, shape, t,
                          f" for piece {i} of x {(<object>dY).shape}")
        if _overlaps(<cnp.ndarray>given, dY):
            raise ValueError(f"split: outs[{i}] must not share memory with x")
        for d in range(i):
            if pieces[d] is not None and _overlaps(<cnp.ndarray>given, pieces[d]):
                raise ValueError(f"split: outs[{i}] shares memory with outs[{d}]")
        pieces[i] = given
    if cnp.PyArray_SIZE(dY) == 0:
        return pieces
    if not cnp.PyArray_IS_C_CONTIGUOUS(dY):
        dY = cnp.PyArray_GETCONTIGUOUS(dY)
    block = _cc_tables(k, stack_ptrs, stack_widths, &ptrs, &widths)
    try:
        for i in range(k):
            piece = pieces[i]
            ptrs[i] = NULL if piece is None else cnp.PyArray_DATA(<cnp.ndarray>piece)
            widths[i] = <int64_t>sizes[i] * inner
        with nogil:
            status = fnn_concat_backward(<void *const *>ptrs, cnp.PyArray_DATA(dY), widths, k,
                                         outer, cnp.PyArray_ITEMSIZE(dY), nthreads)
        check_status(status)
    finally:
        if block != <void *>stack_ptrs:
            PyMem_Free(block)
    return pieces
