# GEMM: C[M,N] = act(alpha * op(A) @ op(B) + beta * C + bias[N])  (csrc/gemm.c)
#
# C is the preallocated output; A, B, C (and bias) are C-contiguous 2-D arrays
# of one dtype, so their leading dimensions are their row lengths.


cdef int _gemm_check(str where, cnp.ndarray C, cnp.ndarray A, cnp.ndarray B, cnp.ndarray bias,
                     bint trans_a, bint trans_b, int64_t *mnk) except -1:
    """Check the shapes of a GEMM call; store M, N, K in mnk."""
    cdef int64_t M, N, K, K2
    if A.ndim != 2 or B.ndim != 2 or C.ndim != 2:
        raise ValueError(f"{where}: A, B and C must be 2-D, got A {(<object>A).shape}, B {(<object>B).shape}, "
                         f"C {(<object>C).shape}")
    M = A.shape[1] if trans_a else A.shape[0]
    K = A.shape[0] if trans_a else A.shape[1]
    K2 = B.shape[1] if trans_b else B.shape[0]
    N = B.shape[0] if trans_b else B.shape[1]
    if K != K2:
        raise ValueError(f"{where}: inner dimensions differ: op(A) is ({M}, {K}) and op(B) is "
                         f"({K2}, {N}) (A {(<object>A).shape}, trans_a={trans_a}; B {(<object>B).shape}, "
                         f"trans_b={trans_b})")
    if C.shape[0] != M or C.shape[1] != N:
        raise ValueError(f"{where}: C must have shape ({M}, {N}) for op(A) ({M}, {K}) @ "
                         f"op(B) ({K}, {N}), got {(<object>C).shape}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != N):
        raise ValueError(f"{where}: bias must have shape ({N},), got {(<object>bias).shape}")
    if _overlaps(C, A) or _overlaps(C, B) or (bias is not None and _overlaps(C, bias)):
        raise ValueError(f"{where}: C must not share memory with A, B or bias")
    mnk[0] = M
    mnk[1] = N
    mnk[2] = K
    return 0


cdef int _gemm32(str where, cnp.ndarray C, cnp.ndarray A, cnp.ndarray B, object bias,
                 bint trans_a, bint trans_b, double alpha, double beta, int act,
                 int nthreads) except -1:
    cdef int64_t mnk[3]
    cdef float *c
    cdef const float *a
    cdef const float *b
    cdef const float *bp = NULL
    cdef int status
    _gemm_check(where, C, A, B, bias, trans_a, trans_b, mnk)
    c = <float *>data_of(C, _K_F32, where, "C", True)
    a = <const float *>data_of(A, _K_F32, where, "A")
    b = <const float *>data_of(B, _K_F32, where, "B")
    if bias is not None:
        bp = <const float *>data_of(bias, _K_F32, where, "bias")
    with nogil:
        status = fnn_gemm_f32(c, a, b, bp, mnk[0], mnk[1], mnk[2], A.shape[1], B.shape[1],
                              C.shape[1], trans_a, trans_b, <float>alpha, <float>beta, act,
                              nthreads)
    return check_status(status)


cdef int _gemm64(str where, cnp.ndarray C, cnp.ndarray A, cnp.ndarray B, object bias,
                 bint trans_a, bint trans_b, double alpha, double beta, int act,
                 int nthreads) except -1:
    cdef int64_t mnk[3]
    cdef double *c
    cdef const double *a
    cdef const double *b
    cdef const double *bp = NULL
    cdef int status
    _gemm_check(where, C, A, B, bias, trans_a, trans_b, mnk)
    c = <double *>data_of(C, _K_F64, where, "C", True)
    a = <const double *>data_of(A, _K_F64, where, "A")
    b = <const double *>data_of(B, _K_F64, where, "B")
    if bias is not None:
        bp = <const double *>data_of(bias, _K_F64, where, "bias")
    with nogil:
        status = fnn_gemm_f64(c, a, b, bp, mnk[0], mnk[1], mnk[2], A.shape[1], B.shape[1],
                              C.shape[1], trans_a, trans_b, alpha, beta, act, nthreads)
    return check_status(status)


def gemm_f32(cnp.ndarray C not None, cnp.ndarray A not None, cnp.ndarray B not None,
             cnp.ndarray bias, bint trans_a, bint trans_b, double alpha, double beta,
             int act, int nthreads):
    """C = act(alpha * op(A) @ op(B) + beta * C + bias), float32, in place in C.

    op(A) is A.T when trans_a (likewise B); bias (N,) may be None; act is an
    FNN_ACT_* code other than softmax. beta == 0 never reads C.
    """
    _gemm32("gemm_f32", C, A, B, bias, trans_a, trans_b, alpha, beta, act, nthreads)


def gemm_f64(cnp.ndarray C not None, cnp.ndarray A not None, cnp.ndarray B not None,
             cnp.ndarray bias, bint trans_a, bint trans_b, double alpha, double beta,
             int act, int nthreads):
    """C = act(alpha * op(A) @ op(B) + beta * C + bias), float64, in place in C.

    Same arguments and semantics as gemm_f32.
    """
    _gemm64("gemm_f64", C, A, B, bias, trans_a, trans_b, alpha, beta, act, nthreads)


def gemm(object C, cnp.ndarray A not None, cnp.ndarray B not None, object bias, bint trans_a,
         bint trans_b, double alpha, double beta, int act, int nthreads):
    """fastnn.ops.gemm's one call: gemm_f32 or gemm_f64 by A's dtype, C allocated
    when None (beta is then ignored: there is nothing to scale), non-contiguous
    A or B copied. Returns C. Apps call small GEMMs in loops, so the whole path,
    the allocation included, stays in C."""
    cdef cnp.npy_intp dims[2]
    cdef int t = cnp.PyArray_TYPE(A)
    if not cnp.PyArray_IS_C_CONTIGUOUS(A):
        A = cnp.PyArray_GETCONTIGUOUS(A)
    if not cnp.PyArray_IS_C_CONTIGUOUS(B):
        B = cnp.PyArray_GETCONTIGUOUS(B)
    if C is None:
        if A.ndim != 2 or B.ndim != 2:
            raise ValueError(f"gemm: A and B must be 2-D, got A {(<object>A).shape}, "
                             f"B {(<object>B).shape}")
        dims[0] = A.shape[1] if trans_a else A.shape[0]
        dims[1] = B.shape[0] if trans_b else B.shape[1]
        C = cnp.PyArray_EMPTY(2, dims, cnp.NPY_DOUBLE if t == cnp.NPY_DOUBLE else cnp.NPY_FLOAT,
                              0)
        beta = 0.0
    if t == cnp.NPY_DOUBLE:
        _gemm64("gemm", C, A, B, bias, trans_a, trans_b, alpha, beta, act, nthreads)
    else:
        _gemm32("gemm", C, A, B, bias, trans_a, trans_b, alpha, beta, act, nthreads)
    return C


def gemm_keep_f32(cnp.ndarray C not None, cnp.ndarray Z not None, cnp.ndarray A not None,
                  cnp.ndarray B not None, cnp.ndarray bias, bint trans_a, bint trans_b,
                  double alpha, double beta, int act, int nthreads):
    """gemm_f32 that also keeps the pre-activation: Z = alpha * op(A) @ op(B) +
    beta * C + bias and C = act(Z), both float32 of C's shape, in place.

    Z is written tile by tile while the tile is in cache, so keeping it costs
    a copy, not another pass over C.
    """
    cdef int64_t mnk[3]
    cdef float *c
    cdef float *z
    cdef const float *a
    cdef const float *b
    cdef const float *bp = NULL
    cdef int status
    _gemm_check("gemm_keep_f32", C, A, B, bias, trans_a, trans_b, mnk)
    if Z.ndim != 2 or Z.shape[0] != C.shape[0] or Z.shape[1] != C.shape[1]:
        raise ValueError(f"gemm_keep_f32: Z must have C's shape {(<object>C).shape}, "
                         f"got {(<object>Z).shape}")
    if (_overlaps(Z, C) or _overlaps(Z, A) or _overlaps(Z, B)
            or (bias is not None and _overlaps(Z, bias))):
        raise ValueError("gemm_keep_f32: Z must not share memory with C, A, B or bias")
    c = <float *>data_of(C, _K_F32, "gemm_keep_f32", "C", True)
    z = <float *>data_of(Z, _K_F32, "gemm_keep_f32", "Z", True)
    a = <const float *>data_of(A, _K_F32, "gemm_keep_f32", "A")
    b = <const float *>data_of(B, _K_F32, "gemm_keep_f32", "B")
    if bias is not None:
        bp = <const float *>data_of(bias, _K_F32, "gemm_keep_f32", "bias")
    with nogil:
        status = fnn_gemm_keep_f32(c, z, a, b, bp, mnk[0], mnk[1], mnk[2], A.shape[1],
                                   B.shape[1], C.shape[1], trans_a, trans_b, <float>alpha,
                                   <float>beta, act, nthreads)
    check_status(status)
