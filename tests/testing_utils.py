"""Helpers shared by the tests (imported as a plain module: tests/ is on sys.path)."""
import contextlib

import numpy as np

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
