# Broadcast element-wise binary ops (csrc/elementwise.c): Y = A <op> B with
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
# Also the layout helpers concat.pxi and batch_matmul.pxi use (included after
# this file by _core.pyx).
from cpython.mem cimport PyMem_Free, PyMem_Malloc

import operator

# Names of the FNN_BINARY_* codes, in code order (the same tuple as
# fastnn.backend.ops.BINARY_OPS; a test keeps them equal). Used in errors.
KERNEL_BINARY_OPS = ("add", "subtract", "multiply", "divide", "maximum", "minimum")


cdef inline int _ew_float_type(cnp.ndarray a) noexcept:
    """NPY_FLOAT or NPY_DOUBLE for a native float32 / float64 array, else -1."""
    cdef int t = cnp.PyArray_TYPE(a)
    if (t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE) and cnp.PyArray_ISNOTSWAPPED(a):
        return t
    return -1


cdef inline void _ew_extent(cnp.ndarray a, char **lo, char **hi) noexcept:
    """[lo, hi): the bytes a's elements span (an empty range when a is empty)."""
    cdef char *first = <char *>cnp.PyArray_DATA(a)
    cdef char *last = first
    cdef int d
    cdef cnp.npy_intp n, s
    if cnp.PyArray_SIZE(a) == 0:
        lo[0] = first
        hi[0] = first
        return
    for d in range(a.ndim):
        n = cnp.PyArray_DIMS(a)[d]
        s = cnp.PyArray_STRIDES(a)[d]
        if s < 0:
            first += (n - 1) * s
        else:
            last += (n - 1) * s
    lo[0] = first
    hi[0] = last + cnp.PyArray_ITEMSIZE(a)


cdef inline bint _ew_overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    """True when the memory spans of a and b intersect (np.may_share_memory's test)."""
    cdef char *alo
    cdef char *ahi
    cdef char *blo
    cdef char *bhi
    _ew_extent(a, &alo, &ahi)
    _ew_extent(b, &blo, &bhi)
    return alo < ahi and blo < bhi and alo < bhi and blo < ahi


cdef inline bint _ew_is_alias(cnp.ndarray out, cnp.ndarray x) noexcept:
    """True when x is out itself (or a view of exactly the same C-contiguous memory)."""
    return (cnp.PyArray_DATA(out) == cnp.PyArray_DATA(x) and cnp.PyArray_SAMESHAPE(out, x)
            and cnp.PyArray_IS_C_CONTIGUOUS(x))


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
    """0 when out is a C-contiguous, writable array of shape[nd] and type t; else
    what is wrong with it (1: not an array, 2: shape or dtype, 3: layout)."""
    cdef cnp.ndarray o
    if not isinstance(out, cnp.ndarray):
        return 1
    o = <cnp.ndarray>out
    if not _ew_has_shape(o, nd, shape) or _ew_float_type(o) != t:
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


cdef int _ew_broadcast(cnp.ndarray A, cnp.ndarray B, int64_t *shape, str where,
                       int op) except -1:
    """The broadcast shape of A and B into shape[]; returns its rank. The error
    names `where` and the op (the string is built only then)."""
    cdef int na = A.ndim, nb = B.ndim
    cdef int nd = na if na > nb else nb
    cdef int d
    cdef int64_t x, y
    for d in range(nd):
        x = A.shape[d - nd + na] if d >= nd - na else 1
        y = B.shape[d - nd + nb] if d >= nd - nb else 1
        if x == y or y == 1:
            shape[d] = x
        elif x == 1:
            shape[d] = y
        else:
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


cdef int _ew_collapse(int nd, const int64_t *shape, int na, const cnp.npy_intp *adims, int nb,
                      const cnp.npy_intp *bdims, int64_t *cshape, int64_t *sa,
                      int64_t *sb) noexcept nogil:
    """The kernels' layout of a broadcast: output shape[nd], C-contiguous operands
    of shapes adims[na] and bdims[nb] (right-aligned to it). Writes the
    collapsed shape and each operand's element strides (0 where it is
    broadcast) and returns the collapsed rank (>= 1): axes of size 1 dropped,
    and an axis merged into its outer neighbour when each operand is either
    broadcast along both or along neither (then it is contiguous across them)."""
    cdef int64_t fa[FNN_MAX_DIMS]
    cdef int64_t fb[FNN_MAX_DIMS]
    cdef int64_t run_a = 1, run_b = 1
    cdef int d, i, c = 0
    for d in range(nd - 1, -1, -1):
        i = d - nd + na
        if i >= 0 and adims[i] != 1:
            fa[d] = run_a
            run_a *= adims[i]
        else:
            fa[d] = 0
        i = d - nd + nb
        if i >= 0 and bdims[i] != 1:
            fb[d] = run_b
            run_b *= bdims[i]
        else:
            fb[d] = 0
    for d in range(nd):
        if shape[d] == 1:
            continue
        if c > 0 and (sa[c - 1] == 0) == (fa[d] == 0) and (sb[c - 1] == 0) == (fb[d] == 0):
            cshape[c - 1] *= shape[d]
        else:
            cshape[c] = shape[d]
            c += 1
        sa[c - 1] = fa[d]
        sb[c - 1] = fb[d]
    if c == 0:
        cshape[0] = 1
        sa[0] = 0
        sb[0] = 0
        c = 1
    return c


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
        if ((_ew_overlap(out, A) and not _ew_is_alias(out, A))
                or (_ew_overlap(out, B) and not _ew_is_alias(out, B))):
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
    return (_ew_overlap(g, dY) or _ew_overlap(g, A) or _ew_overlap(g, B)
            or (other is not None and _ew_overlap(g, other)))


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
        if _ew_overlap(out, X) and not (same and _ew_is_alias(out, X)):
            raise ValueError(f"sum_to_shape: out {Y.shape} must not share memory with x "
                             f"{(<object>X).shape}")
        if same:
            if not _ew_is_alias(out, X):
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
