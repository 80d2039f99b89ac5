# Recurrent layers over whole sequences (csrc/rnn.c): SimpleRNN, LSTM and GRU
# forward and back-propagation through time, float32, one kernel call each.
# Uses the argument checks defined in runtime.pxi and act.pxi.

# Cell names in FNN_RNN_* code order (fastnn.backend.ops.RNN_CELLS).
KERNEL_RNN_CELLS = ("simple_rnn", "lstm", "gru")
cdef tuple _RNN_GATES = (1, 4, 3)


def rnn_cache_width(int cell, Py_ssize_t units):
    """Floats per (sequence, step) of the cache rnn_forward_f32 fills."""
    _rnn_check_cell(cell, "rnn_cache_width")
    return fnn_rnn_cache_width(cell, units)


cdef inline int _rnn_check_cell(int cell, str where) except -1:
    if cell < 0 or cell >= FNN_RNN_COUNT:
        raise ValueError(f"{where}: unknown cell code {cell}; expected 0..{FNN_RNN_COUNT - 1}")
    return 0


cdef inline void *_rnn_arr(cnp.ndarray a, tuple shape, object dtype, str where, str name,
                           bint writable=False) except NULL:
    """Pointer to `a`, a C-contiguous array of exactly `shape` and `dtype`."""
    if (<object>a).shape != shape:
        raise ValueError(f"{where}: {name} must have shape {shape}, got {(<object>a).shape}")
    return data_of(a, dtype, where, name, writable)


cdef tuple _rnn_dims(cnp.ndarray X, cnp.ndarray W, cnp.ndarray R, object b, object mask,
                     int cell, int act, int ract, str where):
    """Check X (N,T,I), W (I,G*U), R (U,G*U), b and mask; return (N, T, I, U, G)."""
    cdef Py_ssize_t n, t, i, u, g
    cdef tuple bias_shape
    _rnn_check_cell(cell, where)
    _k_check_act(act, where)
    _k_check_act(ract, where)
    if act == FNN_ACT_SOFTMAX or ract == FNN_ACT_SOFTMAX:
        raise ValueError(f"{where}: softmax is not an element-wise activation")
    g = _RNN_GATES[cell]
    if X.ndim != 3:
        raise ValueError(f"{where}: X must be 3-D (N, T, I), got shape {(<object>X).shape}")
    n, t, i = X.shape[0], X.shape[1], X.shape[2]
    if R.ndim != 2 or R.shape[1] != g * R.shape[0] or R.shape[0] < 1:
        raise ValueError(f"{where}: recurrent kernel R must be (U, {g}*U) for "
                         f"{KERNEL_RNN_CELLS[cell]}, got {(<object>R).shape}")
    u = R.shape[0]
    if (<object>W).shape != (i, g * u):
        raise ValueError(f"{where}: kernel W must have shape {(i, g * u)} for X "
                         f"{(<object>X).shape} and R {(<object>R).shape}, got {(<object>W).shape}")
    bias_shape = (g * u,)
    if cell == FNN_RNN_GRU:
        bias_shape = (2, 3 * u)
    if b is not None:
        _rnn_arr(b, bias_shape, _K_F32, where, "bias")
    if mask is not None:
        _rnn_arr(mask, (n, t), _K_U8, where, "mask")
    return n, t, i, u, g


def rnn_forward_f32(cnp.ndarray hs not None, object cache, cnp.ndarray X not None,
                    cnp.ndarray W not None, cnp.ndarray R not None, object b, object mask,
                    int cell, int act, int ract, bint go_backwards, int nthreads):
    """Run a recurrent cell (FNN_RNN_* code) over X (N, T, I), all float32.

    Writes hs (N, T, U), the state after each processed step, and fills cache
    (N, T, rnn_cache_width(cell, U)) for rnn_backward_f32 (cache may be None:
    inference). W (I, G*U), R (U, G*U); b (G*U,) or (2, 3U) for gru, or None;
    mask (N, T) uint8 or None (0 keeps the previous state).
    """
    cdef Py_ssize_t n, t, i, u, g
    n, t, i, u, g = _rnn_dims(X, W, R, b, mask, cell, act, ract, "rnn_forward_f32")
    cdef float *hsp = <float *>_rnn_arr(hs, (n, t, u), _K_F32, "rnn_forward_f32", "hs", True)
    cdef const float *x = <const float *>data_of(X, _K_F32, "rnn_forward_f32", "X")
    cdef const float *w = <const float *>data_of(W, _K_F32, "rnn_forward_f32", "W")
    cdef const float *r = <const float *>data_of(R, _K_F32, "rnn_forward_f32", "R")
    cdef const float *bp = NULL
    cdef const uint8_t *mp = NULL
    cdef float *cp = NULL
    cdef int status
    if b is not None:
        bp = <const float *>data_of(b, _K_F32, "rnn_forward_f32", "bias")
    if mask is not None:
        mp = <const uint8_t *>data_of(mask, _K_U8, "rnn_forward_f32", "mask")
    if cache is not None:
        cp = <float *>_rnn_arr(cache, (n, t, fnn_rnn_cache_width(cell, u)), _K_F32,
                               "rnn_forward_f32", "cache", True)
    _k_apart("rnn_forward_f32", "hs", hs, "cache, X, W, R, bias or mask", cache, X, W, R, b, mask)
    _k_apart("rnn_forward_f32", "cache", cache, "X, W, R, bias or mask", X, W, R, b, mask)
    with nogil:
        status = fnn_rnn_forward_f32(hsp, cp, x, w, r, bp, mp, n, t, i, u, cell, act, ract,
                                     go_backwards, nthreads)
    check_status(status)


cdef int _rnn_gradients_apart(object dX, object dW, object dR, object db, object dhs,
                              object X, object W, object R, object hs, object cache,
                              object mask) except -1:
    """Each gradient rnn_backward_f32 writes apart from the others and its inputs."""
    cdef str where = "rnn_backward_f32"
    cdef str others = "the other arrays (dX, dW, dR, db, dhs, X, W, R, hs, cache, mask)"
    cdef object out
    for name, out in (("dX", dX), ("dW", dW), ("dR", dR), ("db", db)):
        _k_apart(where, name, out, others, dhs, X, W, R, hs, cache, mask)
    _k_apart(where, "dX", dX, others, dW, dR, db)
    _k_apart(where, "dW", dW, others, dR, db)
    _k_apart(where, "dR", dR, others, db)
    return 0


def rnn_backward_f32(object dX, cnp.ndarray dW not None, cnp.ndarray dR not None, object db,
                     cnp.ndarray dhs not None, cnp.ndarray X not None, cnp.ndarray W not None,
                     cnp.ndarray R not None, cnp.ndarray hs not None, cnp.ndarray cache not None,
                     object mask, int cell, int act, int ract, bint go_backwards, int nthreads):
    """Back-propagation through time of rnn_forward_f32 (same X, W, R, mask, codes).

    dhs (N, T, U) = dLoss/dhs; hs and cache as forward wrote them. Overwrites
    dW (I, G*U), dR (U, G*U), db (G*U,) or (2, 3U) for gru (None to skip) and
    dX (N, T, I) (None to skip).
    """
    cdef Py_ssize_t n, t, i, u, g
    n, t, i, u, g = _rnn_dims(X, W, R, db, mask, cell, act, ract, "rnn_backward_f32")
    cdef const float *x = <const float *>data_of(X, _K_F32, "rnn_backward_f32", "X")
    cdef const float *w = <const float *>data_of(W, _K_F32, "rnn_backward_f32", "W")
    cdef const float *r = <const float *>data_of(R, _K_F32, "rnn_backward_f32", "R")
    cdef const float *dy = <const float *>_rnn_arr(dhs, (n, t, u), _K_F32, "rnn_backward_f32",
                                                   "dhs")
    cdef const float *hsp = <const float *>_rnn_arr(hs, (n, t, u), _K_F32, "rnn_backward_f32",
                                                    "hs")
    cdef const float *cp = <const float *>_rnn_arr(
        cache, (n, t, fnn_rnn_cache_width(cell, u)), _K_F32, "rnn_backward_f32", "cache")
    cdef float *dwp = <float *>_rnn_arr(dW, (i, g * u), _K_F32, "rnn_backward_f32", "dW", True)
    cdef float *drp = <float *>_rnn_arr(dR, (u, g * u), _K_F32, "rnn_backward_f32", "dR", True)
    cdef float *dbp = NULL
    cdef float *dxp = NULL
    cdef const uint8_t *mp = NULL
    cdef int status
    if db is not None:
        dbp = <float *>data_of(db, _K_F32, "rnn_backward_f32", "db", True)
    if dX is not None:
        dxp = <float *>_rnn_arr(dX, (n, t, i), _K_F32, "rnn_backward_f32", "dX", True)
    if mask is not None:
        mp = <const uint8_t *>data_of(mask, _K_U8, "rnn_backward_f32", "mask")
    _rnn_gradients_apart(dX, dW, dR, db, dhs, X, W, R, hs, cache, mask)
    with nogil:
        status = fnn_rnn_backward_f32(dxp, dwp, drp, dbp, dy, x, w, r, hsp, cp, mp, n, t, i, u,
                                      cell, act, ract, go_backwards, nthreads)
    check_status(status)
