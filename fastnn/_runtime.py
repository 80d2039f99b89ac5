"""Process-wide settings: backend, thread count, float dtype and random seed.

They are read per call (the backend is resolved each time a model runs), so a
change takes effect on the next call. Nothing here touches other libraries'
settings: the thread count is passed to each kernel, never set globally in
OpenMP, and the seed is fastnn's own generator, not ``np.random``'s.
"""
import os
import warnings

import numpy as np

_BACKENDS = ("compiled", "numpy")


class _Settings:
    def __init__(self):
        self.backend = None          # resolved lazily: "compiled" or "numpy"
        self.num_threads = None      # None until first asked: OMP_NUM_THREADS, else the cores
        self.num_threads_chosen = False  # set_num_threads was called (a default must not override)
        self.forked_child = False    # after fork, OpenMP's pool is unusable: run serially
        self.floatx = "float32"
        self.rng = np.random.default_rng()
        self.warned_no_extension = False


settings = _Settings()


def _after_fork_in_child():
    settings.forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def extension():
    """The compiled extension module, or None when it cannot be imported."""
    try:
        from fastnn._ext import _core
    except ImportError:
        return None
    return _core


def set_backend(name):
    """Choose the backend every model uses from its next call: "compiled" or "numpy"."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(_BACKENDS)}")
    if name == "compiled" and extension() is None:
        raise RuntimeError("the compiled backend is not available: fastnn._ext did not import "
                           "(reinstall fastnn with a C compiler present)")
    settings.backend = name


def get_backend():
    """Name of the current backend ("compiled" or "numpy").

    The default is the compiled backend when the extension imports; env
    FASTNN_BACKEND overrides it. Without the extension, NumPy, with one warning.
    """
    if settings.backend is None:
        wanted = os.environ.get("FASTNN_BACKEND", "").strip().lower() or None
        if wanted is not None and wanted not in _BACKENDS:
            raise ValueError(f"FASTNN_BACKEND={wanted!r}; expected one of {list(_BACKENDS)}")
        if wanted == "numpy":
            settings.backend = "numpy"
        elif extension() is not None:
            settings.backend = "compiled"
        else:
            if not settings.warned_no_extension:
                settings.warned_no_extension = True
                warnings.warn("fastnn: the compiled extension did not import; using the "
                              "NumPy backend", RuntimeWarning, stacklevel=2)
            settings.backend = "numpy"
    return settings.backend


def set_num_threads(n):
    """Set the number of threads fastnn's kernels may use (n >= 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be an integer >= 1, got {n!r}")
    settings.num_threads = int(n)
    settings.num_threads_chosen = True


def set_default_num_threads(n):
    """Use n threads unless set_num_threads or OMP_NUM_THREADS chose the count
    (fastnn.distributed: the node's cores divided by its ranks)."""
    if not settings.num_threads_chosen and _omp_env_threads() is None:
        settings.num_threads = max(1, int(n))


def get_num_threads():
    """Threads fastnn's kernels may use: set_num_threads, else OMP_NUM_THREADS
    (read once), else the number of cores. 1 in a process forked after OpenMP
    started. Called before every kernel, so it answers from a cache."""
    if settings.forked_child:
        return 1
    if settings.num_threads is None:
        settings.num_threads = _default_num_threads()
    return settings.num_threads


def _omp_env_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(env) if env.isdigit() and int(env) >= 1 else None


def _default_num_threads():
    return _omp_env_threads() or available_cores()


def available_cores():
    """The cores this process may run on (OpenMP's count when it is built in)."""
    ext = extension()
    if ext is not None and ext.openmp_enabled():
        return ext.num_procs()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_seed(seed):
    """Seed fastnn's own generator (initializers, shuffling, dropout); np.random is untouched."""
    settings.rng = np.random.default_rng(seed)


def rng():
    """fastnn's random generator."""
    return settings.rng


def set_floatx(dtype):
    """Set the default float dtype of new layers: "float32" (default) or "float64"."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in ("float32", "float64"):
        raise ValueError(f"set_floatx: expected 'float32' or 'float64', got {dtype!r}")
    settings.floatx = name


def floatx():
    """The default float dtype name of new layers."""
    return settings.floatx
