"""Dense layer kernels, forward and backward, compiled vs NumPy, on W1/W2's shapes."""
import numpy as np
import pytest

# (N, I, O, activation): W1's layers at batch 32 and 1024 (predict), W2's at batch 128.
CASES = [
    (32, 10, 64, "relu"), (32, 64, 32, "relu"), (32, 32, 1, "linear"),
    (1024, 10, 64, "relu"),
    (128, 784, 512, "relu"), (128, 512, 512, "relu"), (128, 512, 10, "linear"),
]


def _id(case):
    n, i, o, act = case
    return f"{n}x{i}x{o}-{act}"


def _layer(rng, n, i, o):
    x = rng.uniform(-1, 1, size=(n, i)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, size=(i, o)).astype(np.float32)
    b = rng.uniform(-0.1, 0.1, size=o).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_dense_forward(benchmark, ops, reference, threads, rng, assert_close, record_rate, case):
    n, i, o, act = case
    x, w, b = _layer(rng, n, i, o)
    out = np.empty((n, o), dtype=np.float32)
    assert_close(ops.dense_forward(x, w, b, act, out), reference.dense_forward(x, w, b, act),
                 "dense_forward")
    benchmark.group = f"dense_forward {_id(case)} {threads}t"
    benchmark(ops.dense_forward, x, w, b, act, out)
    record_rate(2.0 * n * i * o, "GFLOP/s", 1e9)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_dense_backward(benchmark, ops, reference, threads, rng, assert_close, record_rate, case):
    n, i, o, act = case
    x, w, b = _layer(rng, n, i, o)
    y = reference.dense_forward(x, w, b, act)
    dy = rng.standard_normal((n, o)).astype(np.float32)
    outs = _grad_buffers(n, i, o)
    want = _grad_buffers(n, i, o)
    ops.dense_backward(dy, x, w, y, None, act, outs["dW"], outs["db"], outs["dX"], outs["dZ"])
    reference.dense_backward(dy, x, w, y, None, act, want["dW"], want["db"], want["dX"],
                             want["dZ"])
    for key in ("dW", "db", "dX"):
        assert_close(outs[key], want[key], f"dense_backward {key}")
    benchmark.group = f"dense_backward {_id(case)} {threads}t"
    benchmark(ops.dense_backward, dy, x, w, y, None, act, outs["dW"], outs["db"], outs["dX"],
              outs["dZ"])
    record_rate(4.0 * n * i * o, "GFLOP/s", 1e9)      # dW = X^T dZ and dX = dZ W^T


def _grad_buffers(n, i, o):
    return {"dW": np.empty((i, o), np.float32), "db": np.empty(o, np.float32),
            "dX": np.empty((n, i), np.float32), "dZ": np.empty((n, o), np.float32)}
