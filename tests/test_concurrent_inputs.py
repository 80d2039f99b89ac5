"""Integer inputs (indices, class labels, pooling argmax) that another thread
changes while a kernel runs with the GIL released: every kernel reads each
value once and checks it where it uses it, so the call raises ValueError or
returns in-range results -- it never reads or writes outside its arrays.

Each case runs in a subprocess: before the fix the process died of a
segmentation fault, which a test in this process could not report."""
import subprocess
import sys
import textwrap

import pytest

from fastnn._ext import _core  # noqa: F401  (skips nothing: the compiled backend is required)

FLIPPER = """
import threading
import numpy as np
from fastnn.backend.compiled_ops import CompiledOps
ops = CompiledOps()
stop = False

def flipping(array, index, bad, good):
    def run():
        while not stop:
            array[index] = bad
            array[index] = good
    thread = threading.Thread(target=run)
    thread.start()
    return thread

def calls(body, count):
    global stop
    done = 0
    try:
        for _ in range(count):
            try:
                body()
                done += 1
            except ValueError:
                pass
    finally:
        stop = True
    return done
"""

CASES = {
    "embedding_forward": """
        V, D = 50, 8
        table = np.arange(V * D, dtype=np.float32).reshape(V, D)
        idx = np.zeros((2000, 100), np.int64)
        thread = flipping(idx, (-1, -1), 10**12, 0)

        def body():
            y = ops.embedding_forward(idx, table)
            # every row is a row of the table (or zeros where an index changed)
            assert ((y[..., 0] % D == 0) & (y >= 0) & (y < V * D)).all()
        calls(body, 150)
        thread.join()
    """,
    "sparse_cross_entropy": """
        rng = np.random.default_rng(0)
        p = rng.standard_normal((100_000, 16)).astype(np.float32)
        labels = np.zeros(100_000, np.int64)
        grad = np.empty_like(p)
        thread = flipping(labels, -1, 10**12, 0)

        def body():
            value = ops.loss("sparse_categorical_crossentropy", p, labels, from_logits=True,
                             grad_out=grad)
            assert np.isfinite(value) and np.isfinite(grad).all()
        calls(body, 150)
        thread.join()
    """,
    "max_pool_backward": """
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 32, 32, 16)).astype(np.float32)
        argmax = np.empty((64, 16, 16, 16), np.int64)
        y = ops.max_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="valid",
                                   argmax_out=argmax)
        dy = np.ones_like(y)
        thread = flipping(argmax, (-1, -1, -1, -1), 10**12, 0)

        def body():
            dx = ops.max_pool2d_backward(dy, argmax, input_shape=x.shape)
            assert np.isfinite(dx).all() and dx.sum() <= dy.size
        calls(body, 150)
        thread.join()
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_integer_inputs_changed_during_a_call(case):
    script = FLIPPER + textwrap.dedent(CASES[case])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (
        f"{case}: exit status {result.returncode}\n{result.stdout}\n{result.stderr[-2000:]}")
