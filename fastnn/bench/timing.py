"""Timing helpers and the settings a measurement runs under.

Each measurement is a list of wall-clock seconds, one per repeat, taken after
a warm-up; the reported figure is their median. The context managers here
set fastnn's backend and thread count (and NumPy's BLAS thread count) and put the previous values back afterwards.
"""
import contextlib
import gc
import importlib.util
import math
import os
import statistics
import time

from fastnn import _runtime
from fastnn.bench import blas


def median(values):
    """The median of a non-empty sequence of numbers."""
    return statistics.median(values)


def settle(max_s=3.0, window_s=0.02):
    """Wait until this process's threads are idle, then clear fastnn's
    oversubscription back-off, so each row is timed in a steady state.

    A library's worker threads keep spinning after its last call (OpenBLAS's
    for a few hundred milliseconds here): a row timed sooner would share the
    cores with the previous row's threads -- and fastnn's kernels, seeing
    their team wait, would rightly fall back to one thread. Idle means the
    process used under 10% of one core over a ``window_s`` window.
    """
    deadline = time.perf_counter() + max_s
    while time.perf_counter() < deadline:
        before = time.process_time()
        time.sleep(window_s)
        if time.process_time() - before < 0.1 * window_s:
            break
    _forget_warmup()


def _forget_warmup():
    """Clear the oversubscription back-off: a warm-up's first parallel regions
    wait for threads to start or wake, which is not another process's load."""
    ext = _runtime.extension()
    if ext is not None:
        ext.reset_oversubscription()


def measure(fn, repeats, warmup=1):
    """Call ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns the seconds of each timed call. The garbage collector is paused
    while a call is timed (as ``timeit`` does); reference counting still frees.
    """
    if repeats < 1:
        raise ValueError(f"measure: repeats must be >= 1, got {repeats}")
    settle()
    for _ in range(warmup):
        fn()
    _forget_warmup()
    times = []
    for _ in range(repeats):
        times.append(_timed(fn, 1))
    return times


def measure_per_call(fn, repeats, min_sample_s=0.02):
    """Seconds per call of a fast ``fn``, one figure per repeat.

    After one warm-up call, the number of calls per repeat is chosen so that a
    repeat lasts at least ``min_sample_s`` (timer resolution and loop overhead
    then stay small); each figure is that repeat's time divided by its calls.
    """
    if repeats < 1:
        raise ValueError(f"measure_per_call: repeats must be >= 1, got {repeats}")
    settle()
    first = _timed(fn, 1)
    _forget_warmup()
    loops = max(1, math.ceil(min_sample_s / max(first, 1e-9)))
    return [_timed(fn, loops) / loops for _ in range(repeats)]


def _timed(fn, loops):
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def machine_cores():
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---- backends --------------------------------------------------------------------

def compiled_available():
    """Whether fastnn's compiled extension imports (the compiled rows depend on it)."""
    return _runtime.extension() is not None


def compiled_import_error():
    """Why ``fastnn._ext._core`` does not import (a short string), or None when it does."""
    if compiled_available():
        return None
    try:
        from fastnn._ext import _core  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def using_backend(name):
    """Run the block with fastnn's backend set to ``name``; restore the previous one."""
    previous = _runtime.settings.backend      # None means "not resolved yet": keep it so
    _runtime.set_backend(name)
    try:
        yield
    finally:
        _runtime.settings.backend = previous


# ---- threads -----------------------------------------------------------------------

def have_threadpoolctl():
    """Whether threadpoolctl is installed (it limits NumPy's BLAS threads)."""
    return importlib.util.find_spec("threadpoolctl") is not None


def can_limit_blas():
    """Whether NumPy's BLAS threads can be limited (threadpoolctl, or OpenBLAS found)."""
    return have_threadpoolctl() or blas.available()


@contextlib.contextmanager
def blas_threads(n):
    """Limit NumPy's BLAS to ``n`` threads for the block (threadpoolctl when
    installed, else NumPy's OpenBLAS directly); yields whether the limit is in force."""
    if have_threadpoolctl():
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=n, user_api="blas"):
            yield True
        return
    previous = blas.get_threads()
    if previous is None:
        yield False
        return
    blas.set_threads(n)
    try:
        yield True
    finally:
        blas.set_threads(previous)


@contextlib.contextmanager
def fastnn_threads(n):
    """Run the block with ``fastnn.set_num_threads(n)``; restore the previous setting."""
    previous = _runtime.settings.num_threads   # None means "the default": keep it so
    _runtime.set_num_threads(n)
    try:
        yield
    finally:
        _runtime.settings.num_threads = previous


@contextlib.contextmanager
def thread_limit(n):
    """fastnn's kernels and NumPy's BLAS both limited to ``n`` threads (BLAS only
    with threadpoolctl); yields whether the BLAS limit is in force."""
    with fastnn_threads(n), blas_threads(n) as limited:
        yield limited
