# Runtime queries, ISA selection and the shared argument checks every wrapper uses.
cimport numpy as cnp
from libc.stdint cimport int64_t
from fastnn._ext.cfastnn cimport *

import numpy as np

cnp.import_array()

# Dtype instances: a native array's .dtype *is* one of these, so data_of's
# identity test succeeds without a rich comparison.
cdef object _K_F32 = np.dtype(np.float32)
cdef object _K_F64 = np.dtype(np.float64)
cdef object _K_I64 = np.dtype(np.int64)
cdef object _K_U8 = np.dtype(np.uint8)

ISA_NAMES = tuple(fnn_isa_name(i).decode() for i in range(FNN_ISA_COUNT))


cdef inline int check_status(int status) except -1:
    """Turn a kernel's status into an exception (MemoryError, ValueError)."""
    if status == FNN_OK:
        return 0
    message = fnn_strerror(status).decode()
    if status == FNN_ERR_NOMEM:
        raise MemoryError(message)
    raise ValueError(message)


cdef inline void *data_of(cnp.ndarray a, object dtype, str where, str name,
                          bint writable=False) except NULL:
    """The pointer to a C-contiguous array of `dtype`, or a clear error."""
    if a.dtype is not dtype and a.dtype != dtype:
        raise TypeError(f"{where}: {name} must be {np.dtype(dtype).name}, got {a.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{where}: {name} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{where}: {name} must be writable")
    if cnp.PyArray_SIZE(a) == 0:
        return <void *>&_EMPTY_SENTINEL
    return cnp.PyArray_DATA(a)

cdef double _EMPTY_SENTINEL = 0.0


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(fnn_openmp_enabled())


def num_procs():
    """Cores OpenMP sees (1 without OpenMP)."""
    return fnn_num_procs()


def fma_peak_gflops(int nthreads=1, double seconds=0.2):
    """The float32 FMA peak (GFLOP/s) of ``nthreads`` threads running the ISA in
    force's register-only FMA loop for about ``seconds`` (csrc/peak.c)."""
    if nthreads < 1 or not seconds > 0:
        raise ValueError(f"fma_peak_gflops: nthreads must be >= 1 and seconds > 0, got "
                         f"{nthreads}, {seconds}")
    cdef double result
    with nogil:
        result = fnn_fma_peak_gflops(nthreads, seconds)
    return result


def set_oversubscription_guard(bint enabled):
    """Turn the oversubscription guard on or off (see fnn_omp.h); either way
    past reports are forgotten. Off, kernels never back off to one thread."""
    fnn_set_oversubscription_guard(enabled)


def oversubscription_guard():
    """True when the oversubscription guard is on (the default)."""
    return bool(fnn_oversubscription_guard())


def oversubscribed():
    """True while kernels run on one thread because a team recently waited on a
    descheduled thread (another process holding a core; see fnn_omp.h)."""
    return bool(fnn_oversubscribed())


def reset_oversubscription():
    """Forget past oversubscription reports: kernels use all their threads again."""
    fnn_oversubscription_reset()


def _report_team_wait(int64_t wait_ns, int64_t wall_ns):
    """Feed the oversubscription guard one team's barrier wait (for tests)."""
    fnn_report_team_wait(wait_ns, wall_ns)


def _oversubscription_backoff_ns():
    """How long the guard's next back-off lasts, in ns (for tests)."""
    return fnn_oversubscription_backoff_ns()


def max_team_seen():
    """The largest OpenMP team any kernel ran since reset_max_team_seen()
    (0: no parallel region ran). Tests use it to know threads really ran."""
    return fnn_max_team_seen()


def reset_max_team_seen():
    """Start max_team_seen() afresh."""
    fnn_max_team_reset()


def openmp_pool_started():
    """True once a kernel ran a team of 2+ threads in this process, or in the
    process it was forked from: OpenMP's thread pool exists."""
    return bool(fnn_pool_started())


def openmp_pool_lost():
    """True in a process forked after OpenMP's pool started. GNU libgomp
    cannot start a team there (it waits forever for the pool's threads, which
    fork did not copy), so every kernel runs on one thread."""
    return bool(fnn_pool_lost())


def isa_supported(str name):
    """True when this CPU and OS can run the named ISA's kernels."""
    return bool(fnn_isa_supported(ISA_NAMES.index(name)))


def isa_best():
    """Name of the best ISA this machine supports."""
    return ISA_NAMES[fnn_isa_best()]


def isa_current():
    """Name of the ISA whose kernels the table holds now."""
    return ISA_NAMES[fnn_isa_current()]


def gemm_blocking():
    """The float32 GEMM's tile and cache blocking in force: a dict of mr, nr
    (the micro-kernel's tile), mc, kc, nc (rows, depth and columns per block)."""
    cdef int64_t out[5]
    fnn_gemm_blocking(out)
    return dict(zip(("mr", "nr", "mc", "kc", "nc"), [out[i] for i in range(5)]))


def isa_select(str name):
    """Fill the kernel table with the named ISA's kernels (ValueError if unsupported)."""
    if name not in ISA_NAMES:
        raise ValueError(f"unknown ISA {name!r}; expected one of {list(ISA_NAMES)}")
    check_status(fnn_isa_select(ISA_NAMES.index(name)))


# The fork handler behind openmp_pool_lost(), registered once.
fnn_runtime_init()

# Fill the kernel table once, at import, with the best kernels this CPU runs;
# fastnn.backend applies env FASTNN_ISA on top of this.
check_status(fnn_isa_select(fnn_isa_best()))
