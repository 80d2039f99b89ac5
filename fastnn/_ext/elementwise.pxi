# Broadcast element-wise ops (csrc/elementwise.c): Y = A <op> B with
# NumPy's broadcasting, the gradients summed back to each operand's shape,
# and sum_to_shape (the backward of broadcasting), float32 and float64.
#
# These run every training step on small tensors (merge layers, gradient
# sums), so the checks are C-level compares on the array headers, the output
# is allocated here, and the broadcast is worked out in C arrays; Python
# objects are built only to word an error. The kernels get the broadcast
# collapsed: size-1 axes dropped and neighbours merged where every array is
# contiguous across them, so same-shape calls reach them as one axis and
# row / column broadcasts as two. Non-contiguous inputs are copied to C order.
#
# Also unary ops, comparisons and where (fastnn.ops' element-wise primitives),
# and the layout helpers reduce.pxi, concat.pxi and batch_matmul.pxi use
# (included after this file by _core.pyx).
from cpython.mem cimport PyMem_Free, PyMem_Malloc

import operator

# Names of the FNN_BINARY_*, FNN_UNARY_* and FNN_COMPARE_* codes, in code
# order (the same tuples as fastnn.backend.ops.BINARY_OPS, UNARY_OPS and
# COMPARE_OPS; a test keeps them equal). Used in errors.
KERNEL_BINARY_OPS = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power")
KERNEL_UNARY_OPS = ("negative", "abs", "sign", "square", "sqrt", "exp", "log", "log1p",
                    "reciprocal")
KERNEL_COMPARE_OPS = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")

# Operands one broadcast layout describes at most (where: condition, a, b).
cdef enum:
    _EW_MAX_OPERANDS = 3


cdef inline int _ew_float_type(cnp.ndarray a) noexcept:
    """NPY_FLOAT or NPY_DOUBLE for a native float32 / float64 array, else -1."""
    cdef int t = cnp.PyArray_TYPE(a)
    if (t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE) and cnp.PyArray_ISNOTSWAPPED(a):
        return t
    return -1


cdef inline bint _ew_has_shape(cnp.ndarray a, int nd, const int64_t *shape) noexcept:
    cdef int d
    if a.ndim != nd:
        return False
    for d in range(nd):
        if a.shape[d] != shape[d]:
            return False
    return True


cdef inline tuple _ew_tuple(int nd, const int64_t *shape):
    return tuple([shape[d] for d in range(nd)])


cdef int _ew_out_fault(object out, int nd, const int64_t *shape, int t) noexcept:
    """0 when out is a C-contiguous, writable, native array of shape[nd] and type t
    (NPY_FLOAT, NPY_DOUBLE, NPY_BOOL); else what is wrong with it (1: not an
    array, 2: shape or dtype, 3: layout)."""
    cdef cnp.ndarray o
    if not isinstance(out, cnp.ndarray):
        return 1
    o = <cnp.ndarray>out
    if (not _ew_has_shape(o, nd, shape) or cnp.PyArray_TYPE(o) != t
            or not cnp.PyArray_ISNOTSWAPPED(o)):
        return 2
    if not cnp.PyArray_IS_C_CONTIGUOUS(o) or not cnp.PyArray_ISWRITEABLE(o):
        return 3
    return 0


cdef int _ew_raise_out(int fault, object out, str where, str name, int nd,
                       const int64_t *shape, int t, str why) except -1:
    """Raise the error _ew_out_fault found (TypeError or ValueError)."""
    if fault == 1:
        raise TypeError(f"{where}: {name} must be a numpy array, got {type(out).__name__}")
    if fault == 2:
        raise ValueError(f"{where}: {name} must have shape {_ew_tuple(nd, shape)} and dtype "
                         f"{cnp.PyArray_DescrFromType(t)}{why}, got {out.shape} {out.dtype}")
    raise ValueError(f"{where}: {name} must be C-contiguous and writable")


cdef int _ew_broadcast_with(int nd, int64_t *shape, cnp.ndarray A) noexcept:
    """Broadcast shape[nd] with A's shape, in place; returns the new rank, or -1
    when they do not broadcast."""
    cdef int na = A.ndim
    cdef int nn = na if na > nd else nd
    cdef int d
    cdef int64_t x, y
    # Right-align the shape so far (a rank grows by leading 1s).
    for d in range(nn - 1, -1, -1):
        shape[d] = shape[d - nn + nd] if d >= nn - nd else 1
    for d in range(nn):
        x = shape[d]
        y = A.shape[d - nn + na] if d >= nn - na else 1
        if x == y or y == 1:
            continue
        if x != 1:
            return -1
        shape[d] = y
    return nn


cdef int _ew_broadcast(cnp.ndarray A, cnp.ndarray B, int64_t *shape, str where,
                       int op) except -1:
    """The broadcast shape of A and B into shape[]; returns its rank. The error
    names `where` and the op (the string is built only then)."""
    cdef int nd = _ew_broadcast_with(_ew_broadcast_with(0, shape, A), shape, B)
    if nd < 0:
        raise ValueError(f"{where} {KERNEL_BINARY_OPS[op]}: a {(<object>A).shape} and b "
                         f"{(<object>B).shape} do not broadcast")
    return nd


cdef cnp.ndarray _ew_empty(int nd, const int64_t *shape, int t):
    """A new C-ordered array of shape[nd] and type t."""
    cdef cnp.npy_intp dims[FNN_MAX_DIMS]
    cdef int d
    for d in range(nd):
        dims[d] = <cnp.npy_intp>shape[d]
    return cnp.PyArray_EMPTY(nd, dims, t, 0)


cdef int _ew_collapse_k(int nd, const int64_t *shape, int k, const int *nds,
                        const cnp.npy_intp **dims, int64_t *cshape,
                        int64_t **strides) noexcept nogil:
    """The kernels' layout of a broadcast: output shape[nd], k <= _EW_MAX_OPERANDS
    C-contiguous operands, operand x of shape dims[x][nds[x]] (right-aligned to
    it). Writes the collapsed shape and each operand's element strides
    (strides[x], 0 where it is broadcast) and returns the collapsed rank (>= 1):
    axes of size 1 dropped, and an axis merged into its outer neighbour when
    each operand is either broadcast along both or along neither (then it is
    contiguous across them)."""
    cdef int64_t full[_EW_MAX_OPERANDS][FNN_MAX_DIMS]
    cdef int64_t run[_EW_MAX_OPERANDS]
    cdef int d, i, x, c = 0
    cdef bint merge
    for x in range(k):
        run[x] = 1
    for d in range(nd - 1, -1, -1):
        for x in range(k):
            i = d - nd + nds[x]
            if i >= 0 and dims[x][i] != 1:
                full[x][d] = run[x]
                run[x] *= dims[x][i]
            else:
                full[x][d] = 0
    for d in range(nd):
        if shape[d] == 1:
            continue
        merge = c > 0
        if merge:
            for x in range(k):
                if (strides[x][c - 1] == 0) != (full[x][d] == 0):
                    merge = False
        if merge:
            cshape[c - 1] *= shape[d]
        else:
            cshape[c] = shape[d]
            c += 1
        for x in range(k):
            strides[x][c - 1] = full[x][d]
    if c == 0:
        cshape[0] = 1
        for x in range(k):
            strides[x][0] = 0
        c = 1
    return c


cdef int _ew_collapse(int nd, const int64_t *shape, int na, const cnp.npy_intp *adims, int nb,
                      const cnp.npy_intp *bdims, int64_t *cshape, int64_t *sa,
                      int64_t *sb) noexcept nogil:
    """_ew_collapse_k for two operands, A (adims[na]) and B (bdims[nb]), whose
    strides go to sa and sb."""
    cdef int nds[2]
    cdef const cnp.npy_intp *dims[2]
    cdef int64_t *strides[2]
    nds[0] = na
    nds[1] = nb
    dims[0] = adims
    dims[1] = bdims
    strides[0] = sa
    strides[1] = sb
    return _ew_collapse_k(nd, shape, 2, nds, dims, cshape, strides)


cdef int _ew_check_binary(int op, cnp.ndarray A, cnp.ndarray B, str where) except -1:
    """Checks op and the operands' dtype; returns the type both share."""
    cdef int t
    if op < 0 or op >= FNN_BINARY_COUNT:
        raise ValueError(f"{where}: unknown op code {op}; expected 0..{FNN_BINARY_COUNT - 1}")
    t = _ew_float_type(A)
    if t < 0 or _ew_float_type(B) != t:
        raise TypeError(f"{where} {KERNEL_BINARY_OPS[op]}: a and b must share a float32 or "
                        f"float64 dtype, got {A.dtype} and {B.dtype}")
    return t


def binary_forward(object Y, cnp.ndarray A not None, cnp.ndarray B not None, int op,
                   int nthreads):
    """Return Y = A <op> B (FNN_BINARY_* code op) with NumPy's broadcasting.

    A and B are float32 or float64 of one dtype, any rank. Y (the broadcast
    shape and dtype, C-contiguous, writable) may be A or B itself when that
    operand has Y's shape; no other overlap. None allocates it."""
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int64_t cshape[FNN_MAX_DIMS]
    cdef int64_t sa[FNN_MAX_DIMS]
    cdef int64_t sb[FNN_MAX_DIMS]
    cdef int t = _ew_check_binary(op, A, B, "binary")
    cdef int nd = _ew_broadcast(A, B, shape, "binary", op)
    cdef int cnd, fault, status
    cdef cnp.ndarray out
    if Y is None:
        out = _ew_empty(nd, shape, t)
    else:
        fault = _ew_out_fault(Y, nd, shape, t)
        if fault:
            _ew_raise_out(fault, Y, "binary " + KERNEL_BINARY_OPS[op], "out", nd, shape, t,
                          f" for a {(<object>A).shape} and b {(<object>B).shape}")
        out = <cnp.ndarray>Y
        if ((_overlaps(out, A) and not _is_alias(out, A))
                or (_overlaps(out, B) and not _is_alias(out, B))):
            raise ValueError(f"binary {KERNEL_BINARY_OPS[op]}: out {Y.shape} shares memory with "
                             f"a {(<object>A).shape} or b {(<object>B).shape} without being "
                             f"that operand itself")
    if cnp.PyArray_SIZE(out) == 0:
        return out
    if not cnp.PyArray_IS_C_CONTIGUOUS(A):
        A = cnp.PyArray_GETCONTIGUOUS(A)
    if not cnp.PyArray_IS_C_CONTIGUOUS(B):
        B = cnp.PyArray_GETCONTIGUOUS(B)
    cnd = _ew_collapse(nd, shape, A.ndim, cnp.PyArray_DIMS(A), B.ndim, cnp.PyArray_DIMS(B),
                       cshape, sa, sb)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_binary_forward_f32(<float *>cnp.PyArray_DATA(out),
                                            <const float *>cnp.PyArray_DATA(A),
                                            <const float *>cnp.PyArray_DATA(B), cnd, cshape, sa,
                                            sb, op, nthreads)
        else:
            status = fnn_binary_forward_f64(<double *>cnp.PyArray_DATA(out),
                                            <const double *>cnp.PyArray_DATA(A),
                                            <const double *>cnp.PyArray_DATA(B), cnd, cshape, sa,
                                            sb, op, nthreads)
    check_status(status)
    return out


cdef object _ew_grad_out(object given, cnp.ndarray operand, int t, int op, str name,
                         str operand_name):
    """The array a gradient is written to: None when skipped (given is False), a
    new one when given is None, else `given`, checked to be like the operand."""
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int d, fault
    if given is False:
        return None
    if given is None:
        return cnp.PyArray_EMPTY(operand.ndim, cnp.PyArray_DIMS(operand), t, 0)
    for d in range(operand.ndim):
        shape[d] = operand.shape[d]
    fault = _ew_out_fault(given, operand.ndim, shape, t)
    if fault:
        _ew_raise_out(fault, given, "binary_backward " + KERNEL_BINARY_OPS[op], name,
                      operand.ndim, shape, t, f" like {operand_name} {(<object>operand).shape}")
    return given


cdef inline bint _ew_grad_overlaps(object g, object other, cnp.ndarray dY, cnp.ndarray A,
                                   cnp.ndarray B):
    """True when gradient g (None: skipped) shares memory with an input or `other`."""
    if g is None:
        return False
    return (_overlaps(g, dY) or _overlaps(g, A) or _overlaps(g, B)
            or (other is not None and _overlaps(g, other)))


def binary_backward(object dA, object dB, cnp.ndarray dY not None, cnp.ndarray A not None,
                    cnp.ndarray B not None, int op, int nthreads):
    """Return (dA, dB), the gradients of Y = A <op> B given dY (Y's shape), each
    summed to its operand's shape (OVERWRITTEN). dA / dB: an array of the
    operand's shape, None to allocate, or False to skip (None returned)."""
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int64_t cshape[FNN_MAX_DIMS]
    cdef int64_t sa[FNN_MAX_DIMS]
    cdef int64_t sb[FNN_MAX_DIMS]
    cdef int t = _ew_check_binary(op, A, B, "binary_backward")
    cdef int nd = _ew_broadcast(A, B, shape, "binary_backward", op)
    cdef int cnd, status
    cdef object da, db
    cdef void *pa = NULL
    cdef void *pb = NULL
    if _ew_float_type(dY) != t:
        raise TypeError(f"binary_backward {KERNEL_BINARY_OPS[op]}: dy must be {A.dtype} like "
                        f"a and b, got {dY.dtype}")
    if not _ew_has_shape(dY, nd, shape):
        raise ValueError(f"binary_backward {KERNEL_BINARY_OPS[op]}: dy must have shape "
                         f"{_ew_tuple(nd, shape)}, the broadcast of a {(<object>A).shape} and "
                         f"b {(<object>B).shape}, got {(<object>dY).shape}")
    da = _ew_grad_out(dA, A, t, op, "da_out", "a")
    db = _ew_grad_out(dB, B, t, op, "db_out", "b")
    if _ew_grad_overlaps(da, db, dY, A, B) or _ew_grad_overlaps(db, None, dY, A, B):
        raise ValueError(f"binary_backward {KERNEL_BINARY_OPS[op]}: da_out and db_out must not "
                         f"share memory with dy, a, b or each other")
    if da is not None:
        pa = cnp.PyArray_DATA(da)
    if db is not None:
        pb = cnp.PyArray_DATA(db)
    if cnp.PyArray_SIZE(dY) == 0:
        # Sums over nothing: the operands' elements (if any) get zeros.
        if da is not None:
            cnp.PyArray_FILLWBYTE(da, 0)
        if db is not None:
            cnp.PyArray_FILLWBYTE(db, 0)
        return da, db
    if not cnp.PyArray_IS_C_CONTIGUOUS(dY):
        dY = cnp.PyArray_GETCONTIGUOUS(dY)
    if not cnp.PyArray_IS_C_CONTIGUOUS(A):
        A = cnp.PyArray_GETCONTIGUOUS(A)
    if not cnp.PyArray_IS_C_CONTIGUOUS(B):
        B = cnp.PyArray_GETCONTIGUOUS(B)
    cnd = _ew_collapse(nd, shape, A.ndim, cnp.PyArray_DIMS(A), B.ndim, cnp.PyArray_DIMS(B),
                       cshape, sa, sb)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_binary_backward_f32(<float *>pa, <float *>pb,
                                             <const float *>cnp.PyArray_DATA(dY),
                                             <const float *>cnp.PyArray_DATA(A),
                                             <const float *>cnp.PyArray_DATA(B), cnd, cshape, sa,
                                             sb, op, nthreads)
        else:
            status = fnn_binary_backward_f64(<double *>pa, <double *>pb,
                                             <const double *>cnp.PyArray_DATA(dY),
                                             <const double *>cnp.PyArray_DATA(A),
                                             <const double *>cnp.PyArray_DATA(B), cnd, cshape, sa,
                                             sb, op, nthreads)
    check_status(status)
    return da, db


def sum_to_shape(object Y, cnp.ndarray X not None, object shape, int nthreads):
    """Return X summed over the axes broadcasting from `shape` to X.shape added
    (leading) or stretched (size 1 in `shape`). X itself when shape == X.shape
    and Y is None; Y (of `shape`, X's dtype), when given, receives the result."""
    cdef int64_t target[FNN_MAX_DIMS]
    cdef int64_t cshape[FNN_MAX_DIMS]
    cdef int64_t sy[FNN_MAX_DIMS]
    cdef int64_t sx[FNN_MAX_DIMS]
    cdef cnp.npy_intp tdims[FNN_MAX_DIMS]
    cdef int64_t xshape[FNN_MAX_DIMS]
    cdef int t = _ew_float_type(X)
    cdef int nx = X.ndim, nt, d, cnd, fault, status
    cdef bint same
    cdef object v
    cdef cnp.ndarray out
    if t < 0:
        raise TypeError(f"sum_to_shape: x must be float32 or float64, got {X.dtype}")
    if not isinstance(shape, tuple):
        shape = tuple(shape)
    nt = len(shape)
    if nt > nx:
        raise ValueError(f"sum_to_shape: shape {shape} does not broadcast to x "
                         f"{(<object>X).shape}")
    same = nt == nx
    for d in range(nt):
        v = shape[d]
        target[d] = v if type(v) is int else operator.index(v)
        tdims[d] = <cnp.npy_intp>target[d]
        if target[d] != X.shape[d + nx - nt]:
            same = False
            if target[d] != 1:
                raise ValueError(f"sum_to_shape: shape {shape} does not broadcast to x "
                                 f"{(<object>X).shape}")
    if Y is None:
        if same:
            return X
        out = cnp.PyArray_EMPTY(nt, tdims, t, 0)
    else:
        fault = _ew_out_fault(Y, nt, target, t)
        if fault:
            _ew_raise_out(fault, Y, "sum_to_shape", "out", nt, target, t,
                          f" for x {(<object>X).shape}")
        out = <cnp.ndarray>Y
        if _overlaps(out, X) and not (same and _is_alias(out, X)):
            raise ValueError(f"sum_to_shape: out {Y.shape} must not share memory with x "
                             f"{(<object>X).shape}")
        if same:
            if not _is_alias(out, X):
                cnp.PyArray_CopyInto(out, X)
            return out
    if cnp.PyArray_SIZE(out) == 0:
        return out
    if cnp.PyArray_SIZE(X) == 0:
        cnp.PyArray_FILLWBYTE(out, 0)
        return out
    if not cnp.PyArray_IS_C_CONTIGUOUS(X):
        X = cnp.PyArray_GETCONTIGUOUS(X)
    for d in range(nx):
        xshape[d] = X.shape[d]
    # Y is the one operand (passed twice; sx repeats sy), X the output's shape.
    cnd = _ew_collapse(nx, xshape, nt, tdims, nt, tdims, cshape, sy, sx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_sum_to_shape_f32(<float *>cnp.PyArray_DATA(out),
                                          <const float *>cnp.PyArray_DATA(X), cnd, cshape, sy,
                                          nthreads)
        else:
            status = fnn_sum_to_shape_f64(<double *>cnp.PyArray_DATA(out),
                                          <const double *>cnp.PyArray_DATA(X), cnd, cshape, sy,
                                          nthreads)
    check_status(status)
    return out


# ---- unary ops, comparisons, where (fastnn.ops' element-wise primitives) -----

# Each op's name in errors, "<method> <op>", built once (a hot path builds no string).
cdef tuple _UNARY_WHERE = tuple(["unary " + name for name in KERNEL_UNARY_OPS])
cdef tuple _UNARY_BACKWARD_WHERE = tuple(["unary_backward " + name for name in KERNEL_UNARY_OPS])
cdef tuple _COMPARE_WHERE = tuple(["compare " + name for name in KERNEL_COMPARE_OPS])


cdef inline int _ew_check_code(int op, int count, str method) except -1:
    if op < 0 or op >= count:
        raise ValueError(f"{method}: unknown op code {op}; expected 0..{count - 1}")
    return 0


cdef cnp.ndarray _ew_out_like(object out, cnp.ndarray ref, int t, str where, str ref_name):
    """out (checked: ref's shape, type t, C-contiguous, writable) or, when None, a
    new C-ordered array like that. The error says "like <ref_name> <shape>"."""
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int d, fault
    if out is None:
        return cnp.PyArray_EMPTY(ref.ndim, cnp.PyArray_DIMS(ref), t, 0)
    for d in range(ref.ndim):
        shape[d] = ref.shape[d]
    fault = _ew_out_fault(out, ref.ndim, shape, t)
    if fault:
        _ew_raise_out(fault, out, where, "out", ref.ndim, shape, t,
                      f" like {ref_name} {(<object>ref).shape}")
    return <cnp.ndarray>out


cdef inline cnp.ndarray _ew_contiguous(cnp.ndarray a):
    return a if cnp.PyArray_IS_C_CONTIGUOUS(a) else cnp.PyArray_GETCONTIGUOUS(a)


def unary_forward(object Y, cnp.ndarray X not None, int op, int nthreads):
    """Return Y = op(X) element-wise (FNN_UNARY_* code op) for float32 / float64 X
    of any shape. Y (X's shape and dtype, C-contiguous, writable) may be X
    itself; no other overlap. None allocates it."""
    cdef int t = _ew_float_type(X)
    cdef str where
    cdef cnp.ndarray out
    cdef int status
    _ew_check_code(op, FNN_UNARY_COUNT, "unary")
    where = <str>_UNARY_WHERE[op]
    if t < 0:
        raise TypeError(f"{where}: x must be float32 or float64, got {X.dtype}")
    out = _ew_out_like(Y, X, t, where, "x")
    if Y is not None and _partial_overlap(out, X):
        raise ValueError(f"{where}: out {(<object>out).shape} shares memory with x without "
                         f"being that array itself")
    X = _ew_contiguous(X)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_unary_forward_f32(<float *>cnp.PyArray_DATA(out),
                                           <const float *>cnp.PyArray_DATA(X),
                                           cnp.PyArray_SIZE(X), op, nthreads)
        else:
            status = fnn_unary_forward_f64(<double *>cnp.PyArray_DATA(out),
                                           <const double *>cnp.PyArray_DATA(X),
                                           cnp.PyArray_SIZE(X), op, nthreads)
    check_status(status)
    return out


cdef int _ew_check_like(cnp.ndarray a, str name, cnp.ndarray ref, int t, str where) except -1:
    """a must have ref's type t (TypeError) and shape (ValueError): ops._check_like."""
    if _ew_float_type(a) != t:
        raise TypeError(f"{where}: {name} must be {ref.dtype} like dy, got {a.dtype}")
    if not cnp.PyArray_SAMESHAPE(a, ref):
        raise ValueError(f"{where}: {name} must have dy's shape {(<object>ref).shape}, got "
                         f"{(<object>a).shape}")
    return 0


def unary_backward(object dX, cnp.ndarray dY not None, cnp.ndarray X not None,
                   cnp.ndarray Y not None, int op, int nthreads):
    """Return dX = dY * op'(X or Y) for the op's input X and output Y (dY's shape
    and dtype). dX may be dY, X or Y itself; no other overlap. None allocates it."""
    cdef int t = _ew_float_type(dY)
    cdef int reads
    cdef str where
    cdef cnp.ndarray out
    cdef void *px = NULL
    cdef void *py = NULL
    cdef int status
    _ew_check_code(op, FNN_UNARY_COUNT, "unary_backward")
    where = <str>_UNARY_BACKWARD_WHERE[op]
    reads = fnn_unary_reads(op)
    if t < 0:
        raise TypeError(f"{where}: dy must be float32 or float64, got {dY.dtype}")
    _ew_check_like(X, "x", dY, t, where)
    _ew_check_like(Y, "y", dY, t, where)
    out = _ew_out_like(dX, dY, t, where, "dy")
    if dX is not None and (_partial_overlap(out, dY) or _partial_overlap(out, X)
                           or _partial_overlap(out, Y)):
        raise ValueError(f"{where}: out {(<object>out).shape} shares memory with dy, x or y "
                         f"without being that array itself")
    dY = _ew_contiguous(dY)
    if reads == 1:
        X = _ew_contiguous(X)
        px = cnp.PyArray_DATA(X)
    elif reads == 2:
        Y = _ew_contiguous(Y)
        py = cnp.PyArray_DATA(Y)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_unary_backward_f32(<float *>cnp.PyArray_DATA(out),
                                            <const float *>cnp.PyArray_DATA(dY),
                                            <const float *>px, <const float *>py,
                                            cnp.PyArray_SIZE(dY), op, nthreads)
        else:
            status = fnn_unary_backward_f64(<double *>cnp.PyArray_DATA(out),
                                            <const double *>cnp.PyArray_DATA(dY),
                                            <const double *>px, <const double *>py,
                                            cnp.PyArray_SIZE(dY), op, nthreads)
    check_status(status)
    return out


cdef inline int _ew_compare_type(cnp.ndarray a) noexcept:
    """NPY_FLOAT, NPY_DOUBLE or NPY_INT64 for a native float32 / float64 / int64
    array (any 8-byte signed integer type counts as int64), else -1."""
    cdef int t = cnp.PyArray_TYPE(a)
    if not cnp.PyArray_ISNOTSWAPPED(a):
        return -1
    if t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE:
        return t
    if (t == cnp.NPY_LONG or t == cnp.NPY_LONGLONG) and cnp.PyArray_ITEMSIZE(a) == 8:
        return cnp.NPY_INT64
    return -1


def compare(object Y, cnp.ndarray A not None, cnp.ndarray B not None, int op, int nthreads):
    """Return Y = A <op> B (FNN_COMPARE_* code op) as a bool array of the broadcast
    shape; A and B float32, float64 or int64 of one dtype. Y, when given, must be
    a C-contiguous, writable bool array sharing no memory with A or B."""
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int64_t cshape[FNN_MAX_DIMS]
    cdef int64_t sa[FNN_MAX_DIMS]
    cdef int64_t sb[FNN_MAX_DIMS]
    cdef int t, nd, cnd, fault, status
    cdef str where
    cdef cnp.ndarray out
    _ew_check_code(op, FNN_COMPARE_COUNT, "compare")
    where = <str>_COMPARE_WHERE[op]
    t = _ew_compare_type(A)
    if t < 0 or _ew_compare_type(B) != t:
        raise TypeError(f"{where}: a and b must share a float32, float64 or int64 dtype, got "
                        f"{A.dtype} and {B.dtype}")
    nd = _ew_broadcast_with(_ew_broadcast_with(0, shape, A), shape, B)
    if nd < 0:
        raise ValueError(f"{where}: a {(<object>A).shape} and b {(<object>B).shape} do not "
                         f"broadcast")
    if Y is None:
        out = _ew_empty(nd, shape, cnp.NPY_BOOL)
    else:
        fault = _ew_out_fault(Y, nd, shape, cnp.NPY_BOOL)
        if fault:
            _ew_raise_out(fault, Y, where, "out", nd, shape, cnp.NPY_BOOL,
                          f" for a {(<object>A).shape} and b {(<object>B).shape}")
        out = <cnp.ndarray>Y
        if _overlaps(out, A) or _overlaps(out, B):
            raise ValueError(f"{where}: out must not share memory with a or b")
    if cnp.PyArray_SIZE(out) == 0:
        return out
    A = _ew_contiguous(A)
    B = _ew_contiguous(B)
    cnd = _ew_collapse(nd, shape, A.ndim, cnp.PyArray_DIMS(A), B.ndim, cnp.PyArray_DIMS(B),
                       cshape, sa, sb)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_compare_f32(<uint8_t *>cnp.PyArray_DATA(out),
                                     <const float *>cnp.PyArray_DATA(A),
                                     <const float *>cnp.PyArray_DATA(B), cnd, cshape, sa, sb,
                                     op, nthreads)
        elif t == cnp.NPY_DOUBLE:
            status = fnn_compare_f64(<uint8_t *>cnp.PyArray_DATA(out),
                                     <const double *>cnp.PyArray_DATA(A),
                                     <const double *>cnp.PyArray_DATA(B), cnd, cshape, sa, sb,
                                     op, nthreads)
        else:
            status = fnn_compare_i64(<uint8_t *>cnp.PyArray_DATA(out),
                                     <const int64_t *>cnp.PyArray_DATA(A),
                                     <const int64_t *>cnp.PyArray_DATA(B), cnd, cshape, sa,
                                     sb, op, nthreads)
    check_status(status)
    return out


def where(object Y, cnp.ndarray C not None, cnp.ndarray A not None, cnp.ndarray B not None,
          int nthreads):
    """Return Y = C ? A : B with NumPy's broadcasting of all three: C bool, A and B
    float32 or float64 of one dtype. Y (the broadcast shape) may be A or B itself
    when that operand has Y's shape; no other overlap. None allocates it."""
    cdef int64_t shape[FNN_MAX_DIMS]
    cdef int64_t cshape[FNN_MAX_DIMS]
    cdef int64_t sc[FNN_MAX_DIMS]
    cdef int64_t sa[FNN_MAX_DIMS]
    cdef int64_t sb[FNN_MAX_DIMS]
    cdef int nds[3]
    cdef const cnp.npy_intp *dims[3]
    cdef int64_t *strides[3]
    cdef int t, nd, cnd, fault, status
    cdef cnp.ndarray out
    if cnp.PyArray_TYPE(C) != cnp.NPY_BOOL:
        raise TypeError(f"where: condition must be a bool array, got {C.dtype}")
    t = _ew_float_type(A)
    if t < 0 or _ew_float_type(B) != t:
        raise TypeError(f"where: a and b must share a float32 or float64 dtype, got {A.dtype} "
                        f"and {B.dtype}")
    nd = _ew_broadcast_with(_ew_broadcast_with(_ew_broadcast_with(0, shape, C), shape, A),
                            shape, B)
    if nd < 0:
        raise ValueError(f"where: condition {(<object>C).shape}, a {(<object>A).shape} and b "
                         f"{(<object>B).shape} do not broadcast")
    if Y is None:
        out = _ew_empty(nd, shape, t)
    else:
        fault = _ew_out_fault(Y, nd, shape, t)
        if fault:
            _ew_raise_out(fault, Y, "where", "out", nd, shape, t,
                          f" for condition {(<object>C).shape}, a {(<object>A).shape} and b "
                          f"{(<object>B).shape}")
        out = <cnp.ndarray>Y
        if _overlaps(out, C):
            raise ValueError("where: out must not share memory with condition")
        if _partial_overlap(out, A) or _partial_overlap(out, B):
            raise ValueError(f"where: out {Y.shape} shares memory with a or b without being "
                             f"that array itself")
    if cnp.PyArray_SIZE(out) == 0:
        return out
    C = _ew_contiguous(C)
    A = _ew_contiguous(A)
    B = _ew_contiguous(B)
    nds[0] = C.ndim
    nds[1] = A.ndim
    nds[2] = B.ndim
    dims[0] = cnp.PyArray_DIMS(C)
    dims[1] = cnp.PyArray_DIMS(A)
    dims[2] = cnp.PyArray_DIMS(B)
    strides[0] = sc
    strides[1] = sa
    strides[2] = sb
    cnd = _ew_collapse_k(nd, shape, 3, nds, dims, cshape, strides)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_where_f32(<float *>cnp.PyArray_DATA(out),
                                   <const uint8_t *>cnp.PyArray_DATA(C),
                                   <const float *>cnp.PyArray_DATA(A),
                                   <const float *>cnp.PyArray_DATA(B), cnd, cshape, sc, sa, sb,
                                   nthreads)
        else:
            status = fnn_where_f64(<double *>cnp.PyArray_DATA(out),
                                   <const uint8_t *>cnp.PyArray_DATA(C),
                                   <const double *>cnp.PyArray_DATA(A),
                                   <const double *>cnp.PyArray_DATA(B), cnd, cshape, sc, sa,
                                   sb, nthreads)
    check_status(status)
    return out
