"""Helpers shared by the tests (imported as a plain module: tests/ is on sys.path)."""
import contextlib

import numpy as np
import pytest

from fastnn import _runtime


@contextlib.contextmanager
def num_threads(n):
    """Run the block with fastnn limited to ``n`` threads; restore the setting after."""
    old = _runtime.settings.num_threads
    _runtime.set_num_threads(n)
    try:
        yield
    finally:
        _runtime.settings.num_threads = old


@contextlib.contextmanager
def on_threads(n, check=True):
    """Run the block with fastnn on ``n`` threads and the oversubscription guard
    off, restoring both after; then check that its kernels really ran that many:
    a team of 2..n threads when n >= 2, never more than one thread when n == 1.
    A test that compares thread counts thus never compares one thread with one
    thread (what the guard did on a busy machine, or a problem too small to
    share). ``check=False``: the block runs the NumPy backend, no fastnn threads.

    Skips the test when n >= 2 and the extension has no OpenMP. One CPU is no
    reason to skip: with the guard off, OpenMP runs two threads on it."""
    from fastnn._ext import _core
    if check and n >= 2 and not _core.openmp_enabled():
        pytest.skip("built without OpenMP: kernels cannot run on 2 threads")
    old_threads, old_chosen = _runtime.settings.num_threads, _runtime.settings.num_threads_chosen
    old_guard = _runtime.get_oversubscription_guard()
    _runtime.set_num_threads(n)
    _runtime.set_oversubscription_guard(False)
    _core.reset_max_team_seen()
    try:
        yield
    finally:
        _runtime.settings.num_threads = old_threads
        _runtime.settings.num_threads_chosen = old_chosen
        _runtime.set_oversubscription_guard(old_guard)
    if check:
        seen = _core.max_team_seen()
        if n == 1:
            assert seen <= 1, f"asked for 1 thread, a kernel ran a team of {seen}"
        else:
            assert 2 <= seen <= n, (f"asked for {n} threads, the largest team was {seen}: "
                                    "no kernel of this block really ran threaded")


def numeric_grad(f, x, step=1e-6):
    """d f() / d x for a scalar function f of the array x (changed in place and
    restored), by central differences."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + step
        up = f()
        flat[i] = keep - step
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * step)
    return grad


def model_gradient(model, x, y):
    """The flat gradient of a compiled model's loss on all of (x, y) as one batch,
    leaving its weights as they were (one step of plain SGD with rate 0)."""
    optimizer = model.optimizer
    rate = optimizer.learning_rate
    optimizer.learning_rate = 0.0
    try:
        model.train_on_batch(x, y)
    finally:
        optimizer.learning_rate = rate
    return model.buffers.grads.copy()


def model_numeric_gradient(model, x, y, step=1e-6):
    """The same gradient by central differences of ``test_on_batch`` over every
    packed parameter (float64 models)."""
    def loss():
        value = model.test_on_batch(x, y)
        return float(value[0] if isinstance(value, list) else value)
    return numeric_grad(loss, model.buffers.params, step)


class Payload:
    """Unpickling this would run code; a loader must never get that far."""
    ran = False

    def __reduce__(self):
        return (Payload._run, ())

    @staticmethod
    def _run():
        Payload.ran = True
