# Batched matrix product (csrc/batch_matmul.c): C[i] = op(A[i]) @ op(B[i]) for
# 3-D float32 or float64 arrays, each product one GEMM call (bitwise the same
# for any thread count). Non-contiguous operands are copied to C order.
# Uses _ew_* (elementwise.pxi).


def batch_matmul(object C, cnp.ndarray A not None, cnp.ndarray B not None, bint trans_a,
                 bint trans_b, int nthreads):
    """Return C (batch, M, N) = op(A[i]) @ op(B[i]) for every i: A (batch, M, K), or
    (batch, K, M) when trans_a; B (batch, K, N), or (batch, N, K) when trans_b. C
    (C-contiguous, writable, sharing no memory with A or B) receives it; None
    allocates it."""
    cdef int64_t shape[3]
    cdef int64_t batch, M, N, K, K2
    cdef int t = _ew_float_type(A)
    cdef int fault, status
    cdef cnp.ndarray out
    if t < 0 or _ew_float_type(B) != t:
        raise TypeError(f"batch_matmul: a and b must share a float32 or float64 dtype, got "
                        f"{A.dtype} and {B.dtype}")
    if A.ndim != 3 or B.ndim != 3:
        raise ValueError(f"batch_matmul: a and b must be 3-D (batch, rows, columns), got a "
                         f"{(<object>A).shape} and b {(<object>B).shape}")
    batch = A.shape[0]
    M = A.shape[2] if trans_a else A.shape[1]
    K = A.shape[1] if trans_a else A.shape[2]
    K2 = B.shape[2] if trans_b else B.shape[1]
    N = B.shape[1] if trans_b else B.shape[2]
    if B.shape[0] != batch or K != K2:
        raise ValueError(f"batch_matmul: op(a) is {(batch, M, K)} and op(b) is "
                         f"{(B.shape[0], K2, N)}: the batch sizes and inner dimensions must "
                         f"match (a {(<object>A).shape}, transpose_a={trans_a}; b "
                         f"{(<object>B).shape}, transpose_b={trans_b})")
    shape[0] = batch
    shape[1] = M
    shape[2] = N
    if C is None:
        out = _ew_empty(3, shape, t)
    else:
        fault = _ew_out_fault(C, 3, shape, t)
        if fault:
            _ew_raise_out(fault, C, "batch_matmul", "out", 3, shape, t,
                          f" for op(a) {(batch, M, K)} @ op(b) {(batch, K, N)}")
        out = <cnp.ndarray>C
        if _overlaps(out, A) or _overlaps(out, B):
            raise ValueError("batch_matmul: out must not share memory with a or b")
    if cnp.PyArray_SIZE(out) == 0:
        return out
    if not cnp.PyArray_IS_C_CONTIGUOUS(A):
        A = cnp.PyArray_GETCONTIGUOUS(A)
    if not cnp.PyArray_IS_C_CONTIGUOUS(B):
        B = cnp.PyArray_GETCONTIGUOUS(B)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = fnn_batch_matmul_f32(<float *>cnp.PyArray_DATA(out),
                                          <const float *>cnp.PyArray_DATA(A),
                                          <const float *>cnp.PyArray_DATA(B), batch, M, N, K,
                                          trans_a, trans_b, nthreads)
        else:
            status = fnn_batch_matmul_f64(<double *>cnp.PyArray_DATA(out),
                                          <const double *>cnp.PyArray_DATA(A),
                                          <const double *>cnp.PyArray_DATA(B), batch, M, N, K,
                                          trans_a, trans_b, nthreads)
    check_status(status)
    return out
