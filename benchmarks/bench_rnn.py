"""Recurrent kernels (whole sequences), forward and BPTT, compiled vs NumPy, on W4's
shapes: batch 64, 50 steps of 32 features, 128 units (SimpleRNN, LSTM, GRU)."""
import numpy as np
import pytest

from fastnn.backend.ops import RNN_GATES

N, T, I, U = 64, 50, 32, 128
CELLS = ("simple_rnn", "lstm", "gru")
KW = dict(activation="tanh", recurrent_activation="sigmoid")


def _operands(rng, cell):
    g = RNN_GATES[cell]
    x = rng.uniform(-1, 1, size=(N, T, I)).astype(np.float32)
    kernel = rng.uniform(-0.3, 0.3, size=(I, g * U)).astype(np.float32)
    rec = rng.uniform(-0.1, 0.1, size=(U, g * U)).astype(np.float32)
    b = rng.uniform(-0.1, 0.1, size=(2, 3 * U) if cell == "gru" else (g * U,)).astype(np.float32)
    return x, kernel, rec, b


def _flops(cell, backward):
    """Multiply-adds x 2 of the products: projection + recurrence forward; backward
    adds dW, dR, the recurrence and dX (W4's first layer skips dX: not counted)."""
    gu = RNN_GATES[cell] * U
    proj, recur = 2.0 * N * T * I * gu, 2.0 * N * T * U * gu
    return proj + 2 * recur if backward else proj + recur


@pytest.mark.parametrize("cell", CELLS)
def test_rnn_forward(benchmark, ops, reference, threads, rng, assert_close, record_rate, cell):
    x, kernel, rec, b = _operands(rng, cell)
    hs = np.empty((N, T, U), np.float32)
    cache = np.empty(ops.rnn_cache_shape(cell, N, T, U), np.float32)
    ops.rnn_forward(cell, x, kernel, rec, b, hs_out=hs, cache_out=cache, **KW)
    assert_close(hs, reference.rnn_forward(cell, x, kernel, rec, b, **KW), "rnn_forward hs")
    benchmark.group = f"rnn_forward {cell} {N}x{T}x{I}x{U} {threads}t"
    benchmark(ops.rnn_forward, cell, x, kernel, rec, b, hs_out=hs, cache_out=cache, **KW)
    record_rate(N, "samples/s")
    record_rate(_flops(cell, False), "GFLOP/s", 1e9)


@pytest.mark.parametrize("cell", CELLS)
def test_rnn_backward(benchmark, ops, reference, threads, rng, assert_close, record_rate, cell):
    x, kernel, rec, b = _operands(rng, cell)
    # W4 returns the last state only: the gradient enters at the last step.
    dhs = np.zeros((N, T, U), np.float32)
    dhs[:, -1] = rng.standard_normal((N, U)).astype(np.float32)
    grads = {}
    for name, backend in (("got", ops), ("want", reference)):
        cache = np.empty(backend.rnn_cache_shape(cell, N, T, U), np.float32)
        hs = backend.rnn_forward(cell, x, kernel, rec, b, cache_out=cache, **KW)
        out = {"dkernel_out": np.empty_like(kernel), "drecurrent_out": np.empty_like(rec),
               "dbias_out": np.empty_like(b)}
        backend.rnn_backward(cell, dhs, x, kernel, rec, b, hs, cache, dx_out=False, **out, **KW)
        grads[name] = (hs, cache, out)
    for key in ("dkernel_out", "drecurrent_out", "dbias_out"):
        assert_close(grads["got"][2][key], grads["want"][2][key], f"rnn_backward {key}")
    hs, cache, out = grads["got"]
    benchmark.group = f"rnn_backward {cell} {N}x{T}x{I}x{U} {threads}t"
    benchmark(ops.rnn_backward, cell, dhs, x, kernel, rec, b, hs, cache, dx_out=False, **out,
              **KW)
    record_rate(N, "samples/s")
    record_rate(_flops(cell, True), "GFLOP/s", 1e9)
