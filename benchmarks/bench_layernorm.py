"""Layer and RMS normalization over the last axis (csrc/layernorm.c), compiled vs
NumPy vs PyTorch.

Run:  python -m pytest benchmarks/bench_layernorm.py --benchmark-only

x (M, C) float32 at (4096, 128) and (4096, 768) (tokens x features), with gamma
and beta, as Keras' LayerNormalization runs in training:
- forward: y and each row's mean and rstd, into preallocated buffers;
- backward: dx, dgamma and dbeta from dy, x and the forward's mean and rstd.
compiled and numpy call ``ops.layer_norm`` / ``ops.layer_norm_backward``
(validation included; NumpyOps is the reference's own speed: NumPy has no layer
norm). torch (when installed; layer norm only) calls ATen's kernels directly:
``native_layer_norm`` (y, mean, rstd) and ``native_layer_norm_backward`` from
those saved statistics, so each side times the same work, with
``torch.set_num_threads`` at the row's thread count. The three run back to back
for each case at 1 and 2 threads, each checked against NumpyOps before it is
timed. RMS normalization (gamma, no beta) runs compiled vs NumPy.

GB/s in ``extra_info``: bytes of the (M, C) arrays read and written per call
(forward x in, y out; backward dy and x in, dx out; the (M,) and (C,) vectors
left out) / the median.
"""
import numpy as np
import pytest

from fastnn.backend import get_ops
from fastnn.bench.peers import torch_available
from fastnn.bench.timing import compiled_available, compiled_import_error, using_backend

SHAPES = [(4096, 128), (4096, 768)]
EPS = 1e-3


@pytest.fixture(params=["numpy", "compiled", "torch"])
def backend(request):
    """This module's backends: conftest's two and PyTorch's ATen kernels."""
    if request.param == "compiled" and not compiled_available():
        pytest.skip(f"compiled extension not built ({compiled_import_error()})")
    if request.param == "torch" and not torch_available():
        pytest.skip("torch is not installed")
    return request.param


@pytest.fixture
def ops(backend):
    """The Ops of ``backend`` (None for torch), made the current backend for the test."""
    if backend == "torch":
        yield None
        return
    with using_backend(backend):
        yield get_ops(backend)


@pytest.fixture
def torch_threads(backend, threads):
    """torch's intra-op threads set to the row's count (and restored) for torch rows."""
    if backend != "torch":
        yield
        return
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _case(rng, shape, rms):
    m, c = shape
    x = rng.standard_normal(shape, dtype=np.float32) * 2.0 + 0.5
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = None if rms else rng.standard_normal(c, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    return x, gamma, beta, dy


def _torch_calls(x, gamma, beta, dy):
    """(forward, backward, fetch) on ATen's layer norm; fetch() gives the results
    of the last calls as NumPy arrays (y, mean, rstd, dx, dgamma, dbeta)."""
    import torch
    aten = torch.ops.aten
    tx, tg, tb, tdy = (torch.from_numpy(a) for a in (x, gamma, beta, dy))
    c = x.shape[1]
    saved = {}

    def forward():
        with torch.no_grad():
            saved["fwd"] = aten.native_layer_norm(tx, [c], tg, tb, EPS)

    forward()
    _, tmean, trstd = saved["fwd"]

    def backward():
        with torch.no_grad():
            saved["bwd"] = aten.native_layer_norm_backward(tdy, tx, [c], tmean, trstd, tg, tb,
                                                           [True, True, True])

    def fetch():
        y, mean, rstd = saved["fwd"]
        return [t.numpy().reshape(-1) if t.dim() == 2 and t.shape[1] == 1 else t.numpy()
                for t in (y, mean, rstd, *saved["bwd"])]

    return forward, backward, fetch


@pytest.mark.parametrize("rms", [False, True], ids=["layer", "rms"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{c}" for m, c in SHAPES])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_layer_norm(benchmark, backend, ops, threads, torch_threads, rng, reference,
                    assert_close, record_rate, direction, shape, rms):
    if backend == "torch" and rms:
        pytest.skip("torch rows: layer norm only (ATen has no CPU fused RMS-norm backward)")
    m, c = shape
    x, gamma, beta, dy = _case(rng, shape, rms)
    want_mean, want_rstd = np.empty(m, np.float32), np.empty(m, np.float32)
    want_y = reference.layer_norm(x, gamma, beta, epsilon=EPS, rms=rms, mean_out=want_mean,
                                  rstd_out=want_rstd)
    want = [want_y, want_mean, want_rstd,
            *reference.layer_norm_backward(dy, x, want_mean, want_rstd, gamma, rms=rms,
                                           has_beta=not rms)]
    if backend == "torch":
        forward, backward, fetch = _torch_calls(x, gamma, beta, dy)
        backward()
    else:
        y, mean, rstd = np.empty_like(x), np.empty(m, np.float32), np.empty(m, np.float32)
        dx, dgamma = np.empty_like(x), np.empty(c, np.float32)
        dbeta = None if rms else np.empty(c, np.float32)

        def forward():
            ops.layer_norm(x, gamma, beta, epsilon=EPS, rms=rms, out=y, mean_out=mean,
                           rstd_out=rstd)

        def backward():
            ops.layer_norm_backward(dy, x, mean, rstd, gamma, rms=rms, has_beta=not rms,
                                    dx_out=dx, dgamma_out=dgamma, dbeta_out=dbeta)

        def fetch():
            return [y, mean, rstd, dx, dgamma, dbeta]

        forward()
        backward()
    for name, got, ref in zip(["y", "mean", "rstd", "dx", "dgamma", "dbeta"], fetch(), want):
        if ref is not None:
            assert_close(got, ref, f"layer_norm {name}")
    fn = forward if direction == "forward" else backward
    benchmark.group = f"{'rms' if rms else 'layer'}_norm {direction} {m}x{c} {threads}t"
    benchmark.extra_info.update(shape=list(shape), rms=rms, direction=direction)
    benchmark(fn)
    record_rate((2 if direction == "forward" else 3) * x.nbytes, "GB/s", 1e9)
