"""Process-wide settings: backend, thread count, float dtype and random seed.

They are read per call (the backend is resolved each time a model runs), so a
change takes effect on the next call. Nothing here touches other libraries'
settings: the thread count is passed to each kernel, never set globally in
OpenMP, and the seed is fastnn's own generator, not ``np.random``'s.
"""
import contextvars
import os
import sys
import threading
import warnings

import numpy as np

from fastnn import _cpus

_BACKENDS = ("compiled", "numpy")


class _Settings:
    def __init__(self):
        self.backend = None          # resolved lazily: "compiled" or "numpy"
        self.num_threads = None      # None until first asked: OMP_NUM_THREADS, else the cores
        self.num_threads_chosen = False  # set_num_threads was called (a default must not override)
        self.oversubscription_guard = True  # back off to one thread on a busy machine
        self.openmp_pool_lost = False  # forked after OpenMP's pool started: run serially
        self.floatx = "float32"
        self.rng = np.random.default_rng()
        self.seed_count = 0          # set_seed calls so far (fastnn.models' generators)
        self.warned_no_extension = False


settings = _Settings()


def _after_fork_in_child():
    # Only a child of a process whose OpenMP pool is live must stay on one thread
    # (the compiled runtime knows: its own fork handler ran first, inside fork()).
    # A parent that never imported the extension never started a pool.
    core = sys.modules.get("fastnn._ext._core")
    settings.openmp_pool_lost = core is not None and core.openmp_pool_lost()


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
    """Set the number of threads fastnn's kernels may use (n >= 1).

    Kernels too small to share run on one thread whatever n is, and so does
    every kernel while the oversubscription guard backs off (see
    ``set_oversubscription_guard``). In a process forked after fastnn's
    OpenMP threads started, kernels stay on one thread (with a
    RuntimeWarning if n > 1): GNU libgomp cannot start threads there.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be an integer >= 1, got {n!r}")
    # Not honoured in such a child: its first team of two threads would wait
    # forever for the parent's pool threads (checked with gcc 12's libgomp).
    if n > 1 and settings.openmp_pool_lost:
        warnings.warn(f"fastnn: set_num_threads({n}) in a process forked after fastnn's "
                      "OpenMP threads started: kernels stay on one thread here (GNU libgomp "
                      "cannot start threads after such a fork)", RuntimeWarning, stacklevel=2)
    settings.num_threads = int(n)
    settings.num_threads_chosen = True


def set_oversubscription_guard(enabled):
    """Choose whether kernels back off to one thread on a busy machine (on by default).

    When another process holds one of the cores fastnn's threads run on, a
    team's barriers wait for a descheduled thread and two threads run far
    slower than one. With the guard on, a kernel that sees this sends fastnn's
    kernels to one thread for 20 ms, doubling while it recurs, at most 1 s,
    then tries its threads again. Results are bitwise the same either way;
    only speed changes. Off, kernels always use ``get_num_threads()`` threads
    (when they are large enough to share): what a benchmark or a test that
    must compare thread counts wants. Either way past reports are forgotten.
    """
    if not isinstance(enabled, (bool, np.bool_)):
        raise ValueError(f"set_oversubscription_guard: enabled must be True or False, "
                         f"got {enabled!r}")
    ext = extension()
    if ext is not None:
        ext.set_oversubscription_guard(bool(enabled))
    settings.oversubscription_guard = bool(enabled)


def get_oversubscription_guard():
    """True when kernels back off to one thread on a busy machine (the default)."""
    ext = extension()
    return settings.oversubscription_guard if ext is None else ext.oversubscription_guard()


def set_default_num_threads(n):
    """Use n threads unless set_num_threads or OMP_NUM_THREADS chose the count
    (fastnn.distributed: the node's cores divided by its ranks)."""
    if not settings.num_threads_chosen and _omp_env_threads() is None:
        settings.num_threads = max(1, int(n))


def get_num_threads():
    """Threads fastnn's kernels may use: set_num_threads, else OMP_NUM_THREADS
    (read once), else the CPUs this process may use (its affinity mask, capped
    by its cgroup's CPU quota). 1 in a process forked after fastnn's OpenMP
    threads started. Called before every kernel, so it answers from a cache."""
    if settings.openmp_pool_lost:
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
    """The CPUs this process may use: those its affinity mask allows, capped by
    its cgroup's CPU quota rounded up (a container limited to 1.5 CPUs: 2)."""
    return _cpus.usable_cpus()


# ---- random generators ---------------------------------------------------------------
# fastnn's process generator, and the generator of each model (fastnn.models): a
# model takes the process generator's stream when it is created, under the lock,
# so models created in a fixed order get the same streams whatever threads later
# train them, and the process continues on a stream of its own.
_seed_lock = threading.Lock()
# The generator source of the model call running in this thread (a callable
# returning that model's generator), or None: draw from the process generator.
_drawing_for = contextvars.ContextVar("fastnn_drawing_for", default=None)


def set_seed(seed):
    """Seed fastnn's own generator; np.random is untouched.

    Everything random in fastnn draws from it or from the generators models
    take from it: initializers, fit's shuffles, dropout masks. A model takes
    its generator when it is created, and takes a new one at its next draw
    after each set_seed; so set_seed(s) followed by building and fitting gives
    the same results run after run, and models created in a fixed order after
    it give the same results even when several threads fit them at once.
    """
    with _seed_lock:
        settings.rng = np.random.default_rng(seed)
        settings.seed_count += 1


def rng():
    """The generator fastnn draws from here: the running model's own (inside one
    of its calls in this thread), else the process generator."""
    source = _drawing_for.get()
    return settings.rng if source is None else source()


def seed_count():
    """How many times set_seed was called: a model's generator taken before the
    last call is stale."""
    return settings.seed_count


def take_generator():
    """Hand the process generator's stream over to a new owner (a model):
    returns (that generator, seed_count()); from here on the process draws
    from an independent stream (the old one jumped about 2**127 draws ahead)."""
    with _seed_lock:
        taken = settings.rng
        settings.rng = _independent_stream(taken)
        return taken, settings.seed_count


def drawing_from(source):
    """Make ``source()`` (a model's generator) the one rng() returns in this
    thread until ``stop_drawing(token)`` with the returned token."""
    return _drawing_for.set(source)


def stop_drawing(token):
    """Undo the ``drawing_from`` that returned ``token``."""
    _drawing_for.reset(token)


def _independent_stream(generator):
    bit_generator = generator.bit_generator
    if hasattr(bit_generator, "jumped"):          # PCG64 (the default), MT19937, Philox
        return np.random.Generator(bit_generator.jumped())
    # no jump-ahead (an SFC64 the caller passed to set_seed): a child seeded from
    # its next draws, which the new owner then skips
    return np.random.default_rng(generator.integers(0, 2**63, size=4))


def set_floatx(dtype):
    """Set the default float dtype of new layers: "float32" (default) or "float64"."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in ("float32", "float64"):
        raise ValueError(f"set_floatx: expected 'float32' or 'float64', got {dtype!r}")
    settings.floatx = name


def floatx():
    """The default float dtype name of new layers."""
    return settings.floatx
