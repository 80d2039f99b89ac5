"""2-D convolution kernels, forward and backward, compiled vs NumPy, on W3's two
convolutions (batch 64): 28x28x1 -> 32 3x3 relu and 26x26x32 -> 64 3x3 relu.

Three timings per case: forward; backward-filter (dz, dw, db: ``dx_out=False``,
what a first layer runs); backward (dz, dw, db and dx: backward-filter plus
backward-data). The backward-data cost is the difference of the last two.
GFLOP/s count 2 * N*OH*OW * KH*KW*C * F per product (one for forward and for
backward-filter, two for the full backward).
"""
import numpy as np
import pytest

from fastnn.backend import get_ops

# (N, H, W, C, KH, KW, F, activation): W3's convolutions.
CASES = [(64, 28, 28, 1, 3, 3, 32, "relu"), (64, 26, 26, 32, 3, 3, 64, "relu")]
GEOM = {"strides": (1, 1), "padding": "valid", "dilation": (1, 1)}


def _id(case):
    n, h, w, c, kh, kw, f, act = case
    return f"{n}x{h}x{w}x{c}-{kh}x{kw}x{f}-{act}"


def _layer(rng, case):
    n, h, w, c, kh, kw, f, _act = case
    x = rng.uniform(-1, 1, size=(n, h, w, c)).astype(np.float32)
    wt = rng.uniform(-0.5, 0.5, size=(kh, kw, c, f)).astype(np.float32) / np.float32(kh * kw)
    b = rng.uniform(-0.1, 0.1, size=f).astype(np.float32)
    cols = np.empty(get_ops("compiled").conv2d_scratch_size(x, wt, **GEOM), np.float32)
    return x, wt, b, cols


def _flops(y_shape, wt_shape):
    n, oh, ow, f = y_shape
    kh, kw, c, _ = wt_shape
    return 2.0 * n * oh * ow * kh * kw * c * f


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_conv2d_forward(benchmark, ops, reference, threads, rng, assert_close, record_rate,
                        case):
    act = case[-1]
    x, wt, b, cols = _layer(rng, case)
    want = reference.conv2d_forward(x, wt, b, activation=act, **GEOM)
    out = np.empty_like(want)
    assert_close(ops.conv2d_forward(x, wt, b, activation=act, out=out, cols=cols, **GEOM), want,
                 "conv2d_forward")
    benchmark.group = f"conv2d_forward {_id(case)} {threads}t"
    benchmark(ops.conv2d_forward, x, wt, b, activation=act, out=out, cols=cols, **GEOM)
    record_rate(_flops(out.shape, wt.shape), "GFLOP/s", 1e9)


@pytest.mark.parametrize("with_dx", [False, True], ids=["filter", "filter+data"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_conv2d_backward(benchmark, ops, reference, threads, rng, assert_close, record_rate,
                         case, with_dx):
    act = case[-1]
    x, wt, b, cols = _layer(rng, case)
    y = reference.conv2d_forward(x, wt, b, activation=act, **GEOM)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    outs, want = _grad_buffers(x, wt, y), _grad_buffers(x, wt, y)

    def run(o, backend, c=None):
        return backend.conv2d_backward(dy, x, wt, y, None, activation=act, dw_out=o["dW"],
                                       db_out=o["db"], dx_out=o["dX"] if with_dx else False,
                                       scratch=o["dZ"], cols=c, **GEOM)

    run(outs, ops, cols)
    run(want, reference)
    for key in ("dW", "db", "dZ") + (("dX",) if with_dx else ()):
        assert_close(outs[key], want[key], f"conv2d_backward {key}")
    benchmark.group = f"conv2d_backward-{'filter+data' if with_dx else 'filter'} {_id(case)} " \
                      f"{threads}t"
    benchmark(run, outs, ops, cols)
    record_rate(_flops(y.shape, wt.shape) * (2 if with_dx else 1), "GFLOP/s", 1e9)


def _grad_buffers(x, wt, y):
    return {"dW": np.empty_like(wt), "db": np.empty(wt.shape[3], np.float32),
            "dX": np.empty_like(x), "dZ": np.empty_like(y)}
