"""Fused scaled dot-product attention (csrc/attention.c), compiled vs NumPy (and
PyTorch's scaled_dot_product_attention when torch is installed).

Run:  python -m pytest benchmarks/bench_attention.py --benchmark-only

Shapes (float32, Keras's layout q, k, v (N, T, H, D)): W6's training batch
(N=32, T=128, H=4, D=32) and longer sequences, T=512 (N=4, H=8, D=64) and
T=1024 (N=2, H=8, D=64), plain and causal. Each case times the forward alone
(``attention``, writing out and lse into preallocated buffers) and the
forward plus the backward (``attention_backward`` into preallocated dq, dk,
dv), at 1 and 2 threads, every result checked against NumpyOps first. The
NumPy side is NumpyOps itself (the O(T^2) reference); the PyTorch side runs
``torch.nn.functional.scaled_dot_product_attention`` on (N, H, T, D) tensors,
under ``torch.no_grad()`` for the forward and with autograd for
forward+backward (torch.set_num_threads at the same count).

GFLOP/s counts the products only: 4*N*H*Tq*Tk*D for the forward (QK^T and PV,
2*N*H*Tq*Tk*D each, D = Dv here), and 3.5 times that for forward+backward (the
backward's five products: QK^T again, dO V^T, P^T dO, dS^T Q and dS K --
FlashAttention's 2.5x); halved when causal. exp and the masking are not
counted. With FASTNN_FMA_PEAK_GFLOPS set (one core's float32 FMA peak, e.g.
2 FMA units x 16 lanes x 2 x GHz for AVX-512), ``extra_info["peak_fraction"]``
is GFLOP/s / (threads x that peak); fastnn.bench does not measure it.
"""
import os

import numpy as np
import pytest

# (name, N, T, H, D, causal)
CASES = [
    ("w6", 32, 128, 4, 32, False),
    ("t512", 4, 512, 8, 64, False),
    ("t1024", 2, 1024, 8, 64, False),
    ("t1024-causal", 2, 1024, 8, 64, True),
]
MODES = ("forward", "forward+backward")


def _ids(case):
    return case[0]


def _flops(case, mode):
    _, n, t, h, d, causal = case
    f = 4.0 * n * h * t * t * d * (0.5 if causal else 1.0)
    return f * (3.5 if mode == "forward+backward" else 1.0)


def _problem(rng, case):
    _, n, t, h, d, _ = case
    q, k, v, dout = (rng.standard_normal((n, t, h, d), dtype=np.float32) for _ in range(4))
    return q, k, v, dout


def _reference(reference, case, q, k, v, dout):
    causal, scale = case[5], 1.0 / np.sqrt(case[4])
    lse = np.empty((q.shape[0], q.shape[2], q.shape[1]), np.float32)
    out = reference.attention(q, k, v, scale=scale, causal=causal, lse_out=lse)
    return (out,) + reference.attention_backward(dout, q, k, v, out, lse, scale=scale,
                                                 causal=causal)


def _record(benchmark, record_rate, case, mode, threads):
    flops = _flops(case, mode)
    record_rate(flops, "GFLOP/s", 1e9)
    peak = os.environ.get("FASTNN_FMA_PEAK_GFLOPS")
    rate = benchmark.extra_info.get("GFLOP/s")
    if peak and rate:
        benchmark.extra_info["peak_fraction"] = rate / (threads * float(peak))


def _run(benchmark, fn, slow):
    if slow:      # the NumPy reference at T >= 512 takes seconds a call
        benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)
    else:
        benchmark(fn)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_attention(benchmark, ops, backend, threads, rng, reference, assert_close,
                   record_rate, case, mode):
    name, n, t, h, d, causal = case
    q, k, v, dout = _problem(rng, case)
    scale = 1.0 / np.sqrt(d)
    out = np.empty_like(q)
    lse = np.empty((n, h, t), np.float32)
    grads = [np.empty_like(q) for _ in range(3)]

    def forward():
        ops.attention(q, k, v, scale=scale, causal=causal, out=out, lse_out=lse)

    def forward_backward():
        forward()
        ops.attention_backward(dout, q, k, v, out, lse, scale=scale, causal=causal,
                               dq_out=grads[0], dk_out=grads[1], dv_out=grads[2])

    forward_backward()
    want = _reference(reference, case, q, k, v, dout)
    for label, got, ref in zip(("out", "dq", "dk", "dv"), [out] + grads, want):
        assert_close(got, ref, f"attention {name} {label}")
    benchmark.group = f"attention {mode} {name} {threads}t"
    benchmark.extra_info.update(case=name, mode=mode)
    _run(benchmark, forward if mode == "forward" else forward_backward,
         slow=backend == "numpy" and t >= 512)
    _record(benchmark, record_rate, case, mode, threads)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_attention_torch(benchmark, threads, rng, reference, assert_close, record_rate, case,
                         mode):
    """The peer: torch.nn.functional.scaled_dot_product_attention (CPU)."""
    torch = pytest.importorskip("torch")
    from fastnn.bench.peers import torch_threads
    name, n, t, h, d, causal = case
    q, k, v, dout = _problem(rng, case)
    tq, tk, tv = (torch.tensor(a.transpose(0, 2, 1, 3).copy(), requires_grad=True)
                  for a in (q, k, v))
    tdout = torch.tensor(dout.transpose(0, 2, 1, 3).copy())
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            return sdpa(tq, tk, tv, is_causal=causal)

    def forward_backward():
        tq.grad = tk.grad = tv.grad = None
        y = sdpa(tq, tk, tv, is_causal=causal)
        y.backward(tdout)
        return y

    with torch_threads(threads):
        y = forward_backward()
        want = _reference(reference, case, q, k, v, dout)
        got = [y.detach().numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()]
        for label, g, ref in zip(("out", "dq", "dk", "dv"), got, want):
            assert_close(g.transpose(0, 2, 1, 3), ref, f"torch sdpa {name} {label}")
        benchmark.group = f"attention {mode} {name} {threads}t"
        benchmark.extra_info.update(case=name, mode=mode, peer="torch")
        _run(benchmark, forward if mode == "forward" else forward_backward, slow=False)
    _record(benchmark, record_rate, case, mode, threads)
