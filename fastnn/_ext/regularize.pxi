# Weight regularizers (csrc/regularize.c): Keras' L1 / L2 penalty of a flat
# float32 range and its gradient, in one pass. Uses the argument checks in act.pxi.


def regularize_f32(object grad, cnp.ndarray param not None, double l1, double l2,
                   int nthreads):
    """Return l1 sum|param| + l2 sum param^2 (a float); when grad is not None,
    grad += l1 sign(param) + 2 l2 param in place (grad shaped like param)."""
    cdef const float *wp = <const float *>data_of(param, _K_F32, "regularize_f32", "param")
    cdef float *gp = NULL
    cdef double penalty = 0.0
    cdef int status
    if not (l1 >= 0.0 and l2 >= 0.0) or l1 == float("inf") or l2 == float("inf"):
        raise ValueError(f"regularize_f32: l1 and l2 must be finite and >= 0, got "
                         f"l1={l1}, l2={l2}")
    if grad is not None:
        gp = <float *>_k_like(grad, param, "regularize_f32", "grad", "param", True)
    with nogil:
        status = fnn_regularize_f32(&penalty, gp, wp, cnp.PyArray_SIZE(param), l1, l2,
                                    nthreads)
    check_status(status)
    return penalty
