# Memory overlap between a kernel's outputs and its other arrays.
#
# The kernels read their inputs while they write their outputs, with the GIL
# released and across threads, so an output that shares memory with another
# argument gives wrong values (NumPy would copy first). Every wrapper refuses
# that, in words naming both arrays; an output may be exactly one input (the
# same memory, shape and C order) only where the kernel's docstring says it
# is in-place safe. These are pointer compares on the array headers: the
# wrappers run them on every call.


cdef inline void _extent(cnp.ndarray a, char **lo, char **hi) noexcept:
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


cdef inline bint _overlaps(cnp.ndarray a, cnp.ndarray b) noexcept:
    """True when the memory spans of a and b intersect (np.may_share_memory's test)."""
    cdef char *alo
    cdef char *ahi
    cdef char *blo
    cdef char *bhi
    _extent(a, &alo, &ahi)
    _extent(b, &blo, &bhi)
    return alo < ahi and blo < bhi and alo < bhi and blo < ahi


cdef inline bint _is_alias(cnp.ndarray out, cnp.ndarray x) noexcept:
    """True when x is out itself (or a view of exactly the same C-contiguous memory)."""
    return (cnp.PyArray_DATA(out) == cnp.PyArray_DATA(x) and cnp.PyArray_SAMESHAPE(out, x)
            and cnp.PyArray_IS_C_CONTIGUOUS(x))


cdef inline bint _partial_overlap(cnp.ndarray out, object x):
    """True when out shares memory with x (an array or None) without being it."""
    return x is not None and _overlaps(out, <cnp.ndarray>x) and not _is_alias(out, x)


cdef inline bint _hits(char *lo, char *hi, object x) noexcept:
    """x (an array; anything else is not an operand) shares a byte of [lo, hi)."""
    cdef char *xlo
    cdef char *xhi
    if not isinstance(x, cnp.ndarray):
        return False
    _extent(<cnp.ndarray>x, &xlo, &xhi)
    return xlo < xhi and lo < xhi and xlo < hi


cdef int _k_apart(str where, str out_name, object out, str others, object a,
                  object b=None, object c=None, object d=None, object e=None,
                  object f=None, object g=None) except -1:
    """Refuse an output `out` (an array or None) that shares memory with any of
    a..g (arrays or None, named together by `others`)."""
    cdef char *lo
    cdef char *hi
    if not isinstance(out, cnp.ndarray):
        return 0
    _extent(<cnp.ndarray>out, &lo, &hi)
    if lo == hi:
        return 0
    if (_hits(lo, hi, a) or _hits(lo, hi, b) or _hits(lo, hi, c) or _hits(lo, hi, d)
            or _hits(lo, hi, e) or _hits(lo, hi, f) or _hits(lo, hi, g)):
        raise ValueError(f"{where}: {out_name} must not share memory with {others}")
    return 0


cdef int _k_apart_or_alias(str where, str out_name, cnp.ndarray out, str x_name,
                           object x) except -1:
    """Refuse `out` partly overlapping `x`; `out` may be `x` itself (an in-place call)."""
    if _partial_overlap(out, x):
        raise ValueError(f"{where}: {out_name} must be {x_name} itself or not share memory "
                         f"with it")
    return 0


cdef int _k_layer_grads_apart(str where, object dX, object dW, object db, object dZ,
                              object dY, object X, object W, object Z, object Y) except -1:
    """The outputs of a dense or convolution backward (dX, dW, db, dZ; dX and db
    may be None) apart from each other and from the inputs (dY, X, W, Z, Y).
    dZ may be dY itself: the kernels read dY into dZ element by element."""
    cdef str others = "the other arrays (dX, dW, db, dZ, dY, X, W, Z, Y)"
    _k_apart(where, "dX", dX, others, dW, db, dZ, dY, X, W, Z)
    _k_apart(where, "dX", dX, others, Y)
    _k_apart(where, "dW", dW, others, db, dZ, dY, X, W, Z, Y)
    _k_apart(where, "db", db, others, dZ, dY, X, W, Z, Y)
    _k_apart_or_alias(where, "dZ", dZ, "dY", dY)
    _k_apart(where, "dZ", dZ, others, X, W, Z, Y)
    return 0
