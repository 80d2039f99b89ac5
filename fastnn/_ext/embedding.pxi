# Embedding kernels (csrc/embedding.c): row lookup Y = table[idx] and the
# deterministic scatter-add gradient, float32 and float64. Indices are int64
# of any shape (M = their count); Y / dY hold M rows of D features. The
# kernel rejects an index outside [0, V) before touching any output; this
# wrapper checks first so the error names the shapes and the bad values.
# Uses data_of and the dtype constants (runtime.pxi).


cdef inline int _e_check(cnp.ndarray rows, cnp.ndarray idx, cnp.ndarray table, str where,
                         str rows_name) except -1:
    """rows must be idx.shape + (D,) for table (V, D); every index in [0, V)."""
    cdef Py_ssize_t v, d
    if table.ndim != 2:
        raise ValueError(f"{where}: the table must be 2-D (V, D), got {(<object>table).shape}")
    v, d = table.shape[0], table.shape[1]
    if (<object>rows).shape != (<object>idx).shape + (d,):
        raise ValueError(f"{where}: {rows_name} must have shape {(<object>idx).shape + (d,)} "
                         f"for indices {(<object>idx).shape} and a table {(<object>table).shape}, "
                         f"got {(<object>rows).shape}")
    if rows.dtype != table.dtype:
        raise TypeError(f"{where}: {rows_name} must be {table.dtype} like the table, "
                        f"got {rows.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= v):
        raise ValueError(f"{where}: indices {(<object>idx).shape} must lie in [0, {v}), got "
                         f"values in [{idx.min()}, {idx.max()}]")
    return 0


def embedding_forward(cnp.ndarray Y not None, cnp.ndarray idx not None,
                      cnp.ndarray table not None, int nthreads):
    """Y (idx.shape + (D,)) = table[idx]; table (V, D) float32 or float64."""
    cdef str where = "embedding_forward"
    cdef const int64_t *ip = <const int64_t *>data_of(idx, _K_I64, where, "indices")
    cdef int64_t m = cnp.PyArray_SIZE(idx), v, d
    cdef bint f32 = table.dtype == _K_F32
    cdef object dtype = _K_F32 if f32 else _K_F64
    cdef void *yp
    cdef const void *tp
    cdef int status
    _e_check(Y, idx, table, where, "Y")
    v, d = table.shape[0], table.shape[1]
    yp = data_of(Y, dtype, where, "Y", True)
    tp = data_of(table, dtype, where, "table")
    _k_apart(where, "Y", Y, "indices or table", idx, table)
    with nogil:
        if f32:
            status = fnn_embedding_forward_f32(<float *>yp, ip, <const float *>tp, m, v, d,
                                               nthreads)
        else:
            status = fnn_embedding_forward_f64(<double *>yp, ip, <const double *>tp, m, v, d,
                                               nthreads)
    check_status(status)


def embedding_backward(cnp.ndarray dtable not None, cnp.ndarray dY not None,
                       cnp.ndarray idx not None, int nthreads):
    """dtable (V, D) OVERWRITTEN with the scatter-add of dY rows at idx."""
    cdef str where = "embedding_backward"
    cdef const int64_t *ip = <const int64_t *>data_of(idx, _K_I64, where, "indices")
    cdef int64_t m = cnp.PyArray_SIZE(idx), v, d
    cdef bint f32 = dtable.dtype == _K_F32
    cdef object dtype = _K_F32 if f32 else _K_F64
    cdef void *gp
    cdef const void *dyp
    cdef int status
    _e_check(dY, idx, dtable, where, "dY")
    v, d = dtable.shape[0], dtable.shape[1]
    gp = data_of(dtable, dtype, where, "dtable", True)
    dyp = data_of(dY, dtype, where, "dY")
    _k_apart(where, "dtable", dtable, "dY or indices", dY, idx)
    with nogil:
        if f32:
            status = fnn_embedding_backward_f32(<float *>gp, <const float *>dyp, ip, m, v, d,
                                                nthreads)
        else:
            status = fnn_embedding_backward_f64(<double *>gp, <const double *>dyp, ip, m, v,
                                                d, nthreads)
    check_status(status)
