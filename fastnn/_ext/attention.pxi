# Fused scaled dot-product attention (csrc/attention.c), float32 and float64:
# the forward (out, lse, optional probs) and the backward (dq, dk, dv) of
# Keras's MultiHeadAttention core. fastnn.backend.ops.check_attention_args
# words the errors users see; these checks keep the kernels' memory safe when
# they are called directly (same rules: (N, T, H, X) arrays with C-contiguous
# inner axes and a batch stride of at least T*H*X elements; lse, probs,
# dprobs and the masks C-contiguous).
#
# The kernels allocate nothing: `work` (1-D uint8, at least
# attention_work_bytes(...) bytes) is their scratch, allocated here at exactly
# that size when None.

cdef int _att_type(cnp.ndarray a) noexcept:
    cdef int t = cnp.PyArray_TYPE(a)
    if (t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE) and cnp.PyArray_ISNOTSWAPPED(a):
        return t
    return -1


cdef int64_t _att_tensor(object obj, str name, int64_t n, int64_t t, int64_t h, int64_t x,
                         int typ, bint writable, str where) except -1:
    """Check a (n, t, h, x) array of type typ; return its batch stride in elements."""
    cdef cnp.ndarray a
    cdef cnp.npy_intp item
    cdef int64_t batch
    if not isinstance(obj, cnp.ndarray):
        raise ValueError(f"{where}: {name} must be an array, got {type(obj).__name__}")
    a = <cnp.ndarray>obj
    if (a.ndim != 4 or _att_type(a) != typ or a.shape[0] != n or a.shape[1] != t
            or a.shape[2] != h or a.shape[3] != x):
        raise ValueError(f"{where}: {name} must be {np.dtype(_att_dtype(typ)).name} of shape "
                         f"{(n, t, h, x)}, got {obj.shape} {obj.dtype}")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{where}: {name} must be writable")
    item = cnp.PyArray_ITEMSIZE(a)
    if n * t * h * x == 0:
        return t * h * x
    if ((t > 1 and a.strides[1] != h * x * item) or (h > 1 and a.strides[2] != x * item)
            or (x > 1 and a.strides[3] != item)):
        raise ValueError(f"{where}: {name} {obj.shape} must have its inner (T, H, features) "
                         f"axes C-contiguous, got strides {obj.strides}")
    if n == 1:
        return t * h * x
    batch = a.strides[0]
    if batch % item != 0 or batch // item < t * h * x:
        raise ValueError(f"{where}: {name} {obj.shape} needs a batch stride of at least "
                         f"T*H*features elements, got strides {obj.strides}")
    return batch // item


cdef object _att_dtype(int typ):
    return np.float32 if typ == cnp.NPY_FLOAT else np.float64


cdef void *_att_plain(object obj, str name, tuple shape, int typ, bint writable,
                      str where) except? NULL:
    """A C-contiguous array of `shape` and type typ (None: NULL)."""
    cdef cnp.ndarray a
    if obj is None:
        return NULL
    if not isinstance(obj, cnp.ndarray):
        raise ValueError(f"{where}: {name} must be an array, got {type(obj).__name__}")
    a = <cnp.ndarray>obj
    if _att_type(a) != typ or obj.shape != shape:
        raise ValueError(f"{where}: {name} must be {np.dtype(_att_dtype(typ)).name} of shape "
                         f"{shape}, got {obj.shape} {obj.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or (writable and not cnp.PyArray_ISWRITEABLE(a)):
        raise ValueError(f"{where}: {name} must be C-contiguous"
                         + (" and writable" if writable else ""))
    return cnp.PyArray_DATA(a)


cdef const uint8_t *_att_mask(object obj, str name, tuple shape, str where) except? NULL:
    """A C-contiguous bool / uint8 mask of `shape` (None: NULL)."""
    cdef cnp.ndarray a
    if obj is None:
        return NULL
    if (not isinstance(obj, cnp.ndarray) or obj.dtype not in (np.bool_, np.uint8)
            or obj.shape != shape or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>obj)):
        raise ValueError(f"{where}: {name} must be a C-contiguous bool or uint8 array of shape "
                         f"{shape}, got {getattr(obj, 'shape', type(obj).__name__)}")
    a = <cnp.ndarray>obj
    return <const uint8_t *>cnp.PyArray_DATA(a)


cdef void *_att_work(object work, int64_t need, int64_t *length, list keep,
                     str where) except? NULL:
    """Scratch of at least `need` bytes: `work` (1-D uint8) or a new array of exactly
    that size (held in `keep` for the call)."""
    cdef cnp.ndarray a
    if work is None:
        a = np.empty(need, np.uint8)
        keep.append(a)
    else:
        if (not isinstance(work, cnp.ndarray) or work.dtype != np.uint8 or work.ndim != 1
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>work)
                or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>work)):
            raise ValueError(f"{where}: work must be a writable 1-D C-contiguous uint8 array")
        a = <cnp.ndarray>work
        if a.shape[0] < need:
            raise ValueError(f"{where}: work holds {a.shape[0]} bytes; this call needs {need} "
                             f"(attention_work_bytes)")
    length[0] = a.shape[0]
    if need == 0:
        return <void *>&_EMPTY_SENTINEL
    return cnp.PyArray_DATA(a)


cdef int _att_params(fnn_attention_params *p, object Q, object K, object V, int typ,
                     double scale, bint causal, uint64_t seed, uint64_t threshold,
                     double keep_scale, str where) except -1:
    """Sizes and q/k/v batch strides from Q (N,Tq,H,D), K (N,Tk,H,D), V (N,Tk,H,Dv)."""
    if not isinstance(Q, cnp.ndarray) or (<cnp.ndarray>Q).ndim != 4:
        raise ValueError(f"{where}: q must be a 4-D array")
    if not isinstance(K, cnp.ndarray) or (<cnp.ndarray>K).ndim != 4:
        raise ValueError(f"{where}: k must be a 4-D array")
    if not isinstance(V, cnp.ndarray) or (<cnp.ndarray>V).ndim != 4:
        raise ValueError(f"{where}: v must be a 4-D array")
    p.N, p.Tq, p.H, p.D = Q.shape
    p.Tk = K.shape[1]
    p.Dv = V.shape[3]
    p.q_n = _att_tensor(Q, "q", p.N, p.Tq, p.H, p.D, typ, False, where)
    p.k_n = _att_tensor(K, "k", p.N, p.Tk, p.H, p.D, typ, False, where)
    p.v_n = _att_tensor(V, "v", p.N, p.Tk, p.H, p.Dv, typ, False, where)
    if p.Tk < 1 or p.D < 1 or p.Dv < 1:
        raise ValueError(f"{where}: Tk, D and Dv must be at least 1, got q {Q.shape}, k "
                         f"{K.shape}, v {V.shape}")
    if not (keep_scale >= 1.0) or threshold > (1 << 53):
        raise ValueError(f"{where}: invalid dropout threshold {threshold} / scale {keep_scale}")
    p.scale = scale
    p.causal = 1 if causal else 0
    p.seed = seed
    p.threshold = threshold
    p.keep_scale = keep_scale
    p.y_n = p.Tq * p.H * p.Dv
    p.dy_n = p.y_n
    p.dq_n = p.Tq * p.H * p.D
    p.dk_n = p.Tk * p.H * p.D
    p.dv_n = p.Tk * p.H * p.Dv
    return 0


def attention_work_bytes(int64_t n, int64_t tq, int64_t tk, int64_t h, int64_t d, int64_t dv,
                         int64_t itemsize, bint backward):
    """Bytes of scratch one attention forward (backward) call of these sizes needs."""
    cdef fnn_attention_params p
    cdef int64_t need
    p.N, p.Tq, p.Tk, p.H, p.D, p.Dv = n, tq, tk, h, d, dv
    p.q_n, p.k_n, p.v_n = tq * h * d, tk * h * d, tk * h * dv
    p.y_n = p.dy_n = tq * h * dv
    p.dq_n, p.dk_n, p.dv_n = p.q_n, p.k_n, p.v_n
    p.scale, p.causal, p.seed, p.threshold, p.keep_scale = 1.0, 0, 0, 0, 1.0
    need = fnn_attention_work_bytes(&p, itemsize, backward)
    if need < 0:
        raise ValueError(f"attention_work_bytes: invalid sizes n={n}, tq={tq}, tk={tk}, h={h}, "
                         f"d={d}, dv={dv}, itemsize={itemsize}")
    return need


cdef int _att_forward_outputs_apart(object Y, object lse, object probs, object work, object Q,
                                    object K, object V, object qmask, object kmask,
                                    object amask) except -1:
    cdef str where = "attention"
    cdef str others = "the other arrays (out, lse_out, probs_out, q, k, v, masks, scratch)"
    cdef object out
    for name, out in (("out", Y), ("lse_out", lse), ("probs_out", probs), ("scratch", work)):
        _k_apart(where, name, out, others, Q, K, V, qmask, kmask, amask)
    _k_apart(where, "out", Y, others, lse, probs, work)
    _k_apart(where, "lse_out", lse, others, probs, work)
    _k_apart(where, "probs_out", probs, others, work)
    return 0


cdef int _att_gradients_apart(object dQ, object dK, object dV, object work, object dY,
                              object Q, object K, object V, object Y, object lse,
                              object dprobs) except -1:
    cdef str where = "attention_backward"
    cdef str others = "the other arrays (dq_out, dk_out, dv_out, dout, q, k, v, out, lse, dprobs)"
    cdef object out
    for name, out in (("dq_out", dQ), ("dk_out", dK), ("dv_out", dV), ("scratch", work)):
        _k_apart(where, name, out, others, dY, Q, K, V, Y, lse, dprobs)
    _k_apart(where, "dq_out", dQ, others, dK, dV, work)
    _k_apart(where, "dk_out", dK, others, dV, work)
    _k_apart(where, "dv_out", dV, others, work)
    return 0


def attention_forward(object Y, object lse, object probs, object work, object Q, object K,
                      object V, object qmask, object kmask, object amask, double scale,
                      bint causal, uint64_t seed, uint64_t threshold, double keep_scale,
                      int nthreads):
    """Y (N,Tq,H,Dv), lse (N,H,Tq) and probs (N,H,Tq,Tk; may be None) of attention
    over Q (N,Tq,H,D), K (N,Tk,H,D), V (N,Tk,H,Dv). Returns Y."""
    cdef str where = "attention"
    cdef fnn_attention_params p
    cdef int typ, status
    cdef int64_t need, wlen
    cdef list keep = []
    cdef void *y
    cdef void *l
    cdef void *pr
    cdef void *w
    cdef const void *q
    cdef const void *k
    cdef const void *v
    cdef const uint8_t *qm
    cdef const uint8_t *km
    cdef const uint8_t *am
    if not isinstance(Q, cnp.ndarray) or _att_type(<cnp.ndarray>Q) < 0:
        raise ValueError(f"{where}: q must be a float32 or float64 array")
    typ = _att_type(<cnp.ndarray>Q)
    _att_params(&p, Q, K, V, typ, scale, causal, seed, threshold, keep_scale, where)
    p.y_n = _att_tensor(Y, "out", p.N, p.Tq, p.H, p.Dv, typ, True, where)
    l = _att_plain(lse, "lse_out", (p.N, p.H, p.Tq), typ, True, where)
    pr = _att_plain(probs, "probs_out", (p.N, p.H, p.Tq, p.Tk), typ, True, where)
    if lse is None:
        raise ValueError(f"{where}: lse_out is required by the kernel")
    qm = _att_mask(qmask, "query_mask", (p.N, p.Tq), where)
    km = _att_mask(kmask, "key_mask", (p.N, p.Tk), where)
    am = _att_mask(amask, "attention_mask", (p.N, p.Tq, p.Tk), where)
    need = fnn_attention_work_bytes(&p, 4 if typ == cnp.NPY_FLOAT else 8, 0)
    if need < 0:
        raise ValueError(f"{where}: invalid sizes q {Q.shape}, k {K.shape}, v {V.shape}")
    _att_forward_outputs_apart(Y, lse, probs, work, Q, K, V, qmask, kmask, amask)
    w = _att_work(work, need, &wlen, keep, where)
    y = cnp.PyArray_DATA(<cnp.ndarray>Y)
    q = cnp.PyArray_DATA(<cnp.ndarray>Q)
    k = cnp.PyArray_DATA(<cnp.ndarray>K)
    v = cnp.PyArray_DATA(<cnp.ndarray>V)
    with nogil:
        if typ == cnp.NPY_FLOAT:
            status = fnn_attention_forward_f32(<float *>y, <float *>l, <float *>pr, w,
                                               <const float *>q, <const float *>k,
                                               <const float *>v, qm, km, am, &p, wlen,
                                               nthreads)
        else:
            status = fnn_attention_forward_f64(<double *>y, <double *>l, <double *>pr, w,
                                               <const double *>q, <const double *>k,
                                               <const double *>v, qm, km, am, &p, wlen,
                                               nthreads)
    check_status(status)
    return Y


def attention_backward(object dQ, object dK, object dV, object work, object dY, object Q,
                       object K, object V, object Y, object lse, object dprobs, object qmask,
                       object kmask, object amask, double scale, bint causal, uint64_t seed,
                       uint64_t threshold, double keep_scale, int nthreads):
    """dQ, dK, dV (the shapes of Q, K, V; overwritten) of attention for dY, given the
    forward's Y and lse, and dprobs (N,H,Tq,Tk; may be None)."""
    cdef str where = "attention_backward"
    cdef fnn_attention_params p
    cdef int typ, status
    cdef int64_t need, wlen
    cdef list keep = []
    cdef void *w
    cdef const void *l
    cdef const void *dpr
    cdef void *dq
    cdef void *dk
    cdef void *dv
    cdef const void *dy
    cdef const void *q
    cdef const void *k
    cdef const void *v
    cdef const void *y
    cdef const uint8_t *qm
    cdef const uint8_t *km
    cdef const uint8_t *am
    if not isinstance(Q, cnp.ndarray) or _att_type(<cnp.ndarray>Q) < 0:
        raise ValueError(f"{where}: q must be a float32 or float64 array")
    typ = _att_type(<cnp.ndarray>Q)
    _att_params(&p, Q, K, V, typ, scale, causal, seed, threshold, keep_scale, where)
    p.dy_n = _att_tensor(dY, "dout", p.N, p.Tq, p.H, p.Dv, typ, False, where)
    p.y_n = _att_tensor(Y, "out", p.N, p.Tq, p.H, p.Dv, typ, False, where)
    p.dq_n = _att_tensor(dQ, "dq_out", p.N, p.Tq, p.H, p.D, typ, True, where)
    p.dk_n = _att_tensor(dK, "dk_out", p.N, p.Tk, p.H, p.D, typ, True, where)
    p.dv_n = _att_tensor(dV, "dv_out", p.N, p.Tk, p.H, p.Dv, typ, True, where)
    if lse is None:
        raise ValueError(f"{where}: lse is required")
    l = _att_plain(lse, "lse", (p.N, p.H, p.Tq), typ, False, where)
    dpr = _att_plain(dprobs, "dprobs", (p.N, p.H, p.Tq, p.Tk), typ, False, where)
    qm = _att_mask(qmask, "query_mask", (p.N, p.Tq), where)
    km = _att_mask(kmask, "key_mask", (p.N, p.Tk), where)
    am = _att_mask(amask, "attention_mask", (p.N, p.Tq, p.Tk), where)
    need = fnn_attention_work_bytes(&p, 4 if typ == cnp.NPY_FLOAT else 8, 1)
    if need < 0:
        raise ValueError(f"{where}: invalid sizes q {Q.shape}, k {K.shape}, v {V.shape}")
    _att_gradients_apart(dQ, dK, dV, work, dY, Q, K, V, Y, lse, dprobs)
    w = _att_work(work, need, &wlen, keep, where)
    dq = cnp.PyArray_DATA(<cnp.ndarray>dQ)
    dk = cnp.PyArray_DATA(<cnp.ndarray>dK)
    dv = cnp.PyArray_DATA(<cnp.ndarray>dV)
    dy = cnp.PyArray_DATA(<cnp.ndarray>dY)
    q = cnp.PyArray_DATA(<cnp.ndarray>Q)
    k = cnp.PyArray_DATA(<cnp.ndarray>K)
    v = cnp.PyArray_DATA(<cnp.ndarray>V)
    y = cnp.PyArray_DATA(<cnp.ndarray>Y)
    with nogil:
        if typ == cnp.NPY_FLOAT:
            status = fnn_attention_backward_f32(<float *>dq, <float *>dk, <float *>dv, w,
                                                <const float *>dy, <const float *>q,
                                                <const float *>k, <const float *>v,
                                                <const float *>y, <const float *>l,
                                                <const float *>dpr, qm, km, am, &p, wlen,
                                                nthreads)
        else:
            status = fnn_attention_backward_f64(<double *>dq, <double *>dk, <double *>dv, w,
                                                <const double *>dy, <const double *>q,
                                                <const double *>k, <const double *>v,
                                                <const double *>y, <const double *>l,
                                                <const double *>dpr, qm, km, am, &p, wlen,
                                                nthreads)
    check_status(status)
    return dQ, dK, dV
