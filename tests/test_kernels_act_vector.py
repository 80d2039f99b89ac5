"""The vectorised float32 activations (csrc/vact.h): accuracy against float64
math on a dense grid and at the extremes, special values, the same bits from
every ISA build and thread count, and a fused GEMM / dense / conv epilogue
bitwise equal to the separate activation kernel."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend.ops import ACTIVATIONS
from testing_utils import num_threads, on_threads

ELEMENTWISE = [a for a in ACTIVATIONS if a != "softmax"]
TRANSCENDENTAL = ["elu", "sigmoid", "tanh", "gelu", "swish"]
SUPPORTED_ISAS = [name for name in _core.ISA_NAMES if _core.isa_supported(name)]
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)

# Every 1e-3 on [-20, 20], and the extremes: tiny and subnormal inputs, the
# tails where e^x and Phi(x) go subnormal, overflow thresholds, huge values.
_EXTREMES = [0.0, 1e-45, 1e-40, F32_TINY, 1e-30, 1e-12, 1e-8, 1e-4, 0.2999, 0.3, 0.4999,
             0.5, 0.7518, 1.2785, 13.0, 13.2, 14.0, 14.2, 15.0, 15.5, 20.5, 30.0, 50.0, 87.0,
             87.5, 88.0, 88.7, 89.0, 90.0, 100.0, 103.0, 104.0, 108.0, 119.0, 121.0, 1e3,
             1e4, 1e20, 3e38, F32_MAX]
GRID = np.unique(np.concatenate([
    np.round(np.arange(-20000, 20001) * 1e-3, 3),
    np.array(_EXTREMES), -np.array(_EXTREMES)]).astype(np.float32))

# Max error in float32 ulps of the float64 value (derivatives: in ulps of the
# larger of their two terms, since gelu' and swish' cross zero, where no
# float32 formula has relative accuracy). Measured over every float32 input:
# gelu 3.9, sigmoid 2.4, tanh 2.3, swish 3.3, elu 0.9, e^x 2; gelu' and
# swish' 4.3 and 3.8.
FORWARD_ULPS = {"gelu": 4.5, "sigmoid": 3.0, "tanh": 3.0, "swish": 4.0, "elu": 1.5}
BACKWARD_ULPS = {"gelu": 5.0, "swish": 5.0, "elu": 3.0}


def _erfc(v):
    return np.vectorize(math.erfc, otypes=[np.float64])(v)


def _sigmoid64(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def reference(name, x):
    """act(x) in float64, and (act'(x), the scale its error is measured in)."""
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "gelu":
            cdf = 0.5 * _erfc(-x / math.sqrt(2.0))
            pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
            return x * cdf, cdf + x * pdf, np.maximum(cdf, np.abs(x * pdf))
        if name == "swish":
            s = _sigmoid64(x)
            one_minus = _sigmoid64(-x)
            return x * s, s * (1 + x * one_minus), np.maximum(s, np.abs(x * s * one_minus))
        if name == "sigmoid":
            return _sigmoid64(x), None, None
        if name == "tanh":
            return np.tanh(x), None, None
        if name == "elu":
            d = np.exp(np.minimum(x, 0.0))
            return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))), np.where(x > 0, 1.0, d), \
                np.where(x > 0, 1.0, d)
    raise ValueError(name)


def ulps(got, ref, scale=None):
    """|got - ref| in units of the float32 spacing at |scale| (default |ref|)."""
    scale = np.abs(ref if scale is None else scale)
    with np.errstate(over="ignore"):
        spacing = np.spacing(np.minimum(scale, F32_MAX).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / spacing


def run(compiled_ops, name, x, dy=None):
    x2 = x.reshape(1, -1)
    y = compiled_ops.activation_forward(name, x2)
    dy = np.ones_like(x2) if dy is None else dy.reshape(1, -1)
    dx = compiled_ops.activation_backward(name, dy, x2, y)
    return y.reshape(x.shape), dx.reshape(x.shape)


# ---- accuracy ----------------------------------------------------------------------

@pytest.mark.parametrize("name", TRANSCENDENTAL)
def test_forward_within_a_few_ulps_on_the_whole_line(compiled_ops, name):
    y, _ = run(compiled_ops, name, GRID)
    ref, _, _ = reference(name, GRID)
    err = ulps(y, ref)
    worst = int(np.argmax(err))
    assert err[worst] <= FORWARD_ULPS[name], \
        f"{name}({GRID[worst]!r}) = {y[worst]!r}, float64 {ref[worst]!r}: {err[worst]:.2f} ulp"


@pytest.mark.parametrize("name", ["gelu", "swish", "elu"])
def test_derivative_within_a_few_ulps_on_the_whole_line(compiled_ops, name):
    # The derivatives computed from X (sigmoid's and tanh's are y (1 - y) and
    # 1 - y^2 from Y, exact up to Y's own rounding).
    _, dx = run(compiled_ops, name, GRID)
    _, ref, scale = reference(name, GRID)
    err = ulps(dx, ref, scale)
    worst = int(np.argmax(err))
    assert err[worst] <= BACKWARD_ULPS[name], \
        f"{name}'({GRID[worst]!r}) = {dx[worst]!r}, float64 {ref[worst]!r}: {err[worst]:.2f} ulp"


@given(x=st.floats(-200.0, 200.0, width=32) | st.floats(width=32, allow_nan=False,
                                                        allow_infinity=False))
def test_drawn_inputs_are_accurate(compiled_ops, x):
    xs = np.array([x], np.float32)
    for name in TRANSCENDENTAL:
        y, dx = run(compiled_ops, name, xs)
        ref, dref, scale = reference(name, xs)
        assert ulps(y, ref)[0] <= FORWARD_ULPS[name], (name, x, y[0], ref[0])
        if name in BACKWARD_ULPS:
            assert ulps(dx, dref, scale)[0] <= BACKWARD_ULPS[name], (name, x, dx[0], dref[0])


def test_tails_keep_relative_precision(compiled_ops):
    # Where 1 + erf(x / sqrt 2) would cancel to 0 (gelu) or e^x is subnormal.
    x = np.array([-5.0, -8.0, -10.0, -12.0, -13.0], np.float32)
    y, _ = run(compiled_ops, "gelu", x)
    ref, _, _ = reference("gelu", x)
    np.testing.assert_allclose(y, ref, rtol=5e-7)
    assert (y < 0).all()
    x = np.array([-30.0, -60.0, -85.0, -87.0], np.float32)
    for name in ("sigmoid", "swish"):
        y, _ = run(compiled_ops, name, x)
        ref, _, _ = reference(name, x)
        np.testing.assert_allclose(y, ref, rtol=5e-7, err_msg=name)


# ---- special values ------------------------------------------------------------------

def test_large_inputs_saturate_without_nan_or_inf(compiled_ops):
    big = np.array([20.0, 89.0, 120.0, 1e4, 1e30, F32_MAX], np.float32)
    for name in TRANSCENDENTAL:
        for sign in (1, -1):
            x = sign * big
            y, dx = run(compiled_ops, name, x)
            assert np.isfinite(y).all() and np.isfinite(dx).all(), (name, sign, y, dx)
    y, _ = run(compiled_ops, "sigmoid", big)
    assert (y == 1.0).all()
    y, _ = run(compiled_ops, "sigmoid", -big[2:])
    assert (y == 0.0).all()
    y, _ = run(compiled_ops, "tanh", big)
    assert (y == 1.0).all()
    y, _ = run(compiled_ops, "tanh", -big)
    assert (y == -1.0).all()
    for name in ("gelu", "swish"):
        y, dx = run(compiled_ops, name, big)
        np.testing.assert_array_equal(y, big)
        np.testing.assert_array_equal(dx, 1.0)
        y, dx = run(compiled_ops, name, -big[2:])
        assert (y == 0.0).all() and (dx == 0.0).all(), name
        assert np.signbit(y).all(), f"{name}(x << 0) should be -0, the sign of x Phi(x)"
    y, _ = run(compiled_ops, "elu", -big)
    assert (y == -1.0).all()


def test_infinities_give_the_limits(compiled_ops):
    x = np.array([np.inf, -np.inf], np.float32)
    limits = {"sigmoid": [1.0, 0.0], "tanh": [1.0, -1.0], "elu": [np.inf, -1.0],
              "gelu": [np.inf, -0.0], "swish": [np.inf, -0.0]}
    for name, want in limits.items():
        y, _ = run(compiled_ops, name, x)
        np.testing.assert_array_equal(y, np.array(want, np.float32), err_msg=name)
    for name in ("gelu", "swish"):
        _, dx = run(compiled_ops, name, x)
        np.testing.assert_array_equal(dx, [1.0, 0.0], err_msg=name)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_nan_propagates(compiled_ops, name):
    x = np.array([np.nan, 1.0, -np.nan, -2.0], np.float32)
    y, dx = run(compiled_ops, name, x)
    assert np.isnan(y[[0, 2]]).all() and np.isfinite(y[[1, 3]]).all(), y
    # relu's and leaky_relu's derivatives come from Y's sign: 0 (slope) for a NaN
    # Y, as NumPy's dy * (y > 0) gives.
    if name not in ("linear", "relu", "leaky_relu"):
        assert np.isnan(dx[[0, 2]]).all() and np.isfinite(dx[[1, 3]]).all(), dx


def test_zero_and_tiny_inputs(compiled_ops):
    x = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38], np.float32)
    y, dx = run(compiled_ops, "gelu", x)
    np.testing.assert_array_equal(y, (0.5 * x.astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(dx, 0.5)
    y, _ = run(compiled_ops, "tanh", x)
    np.testing.assert_array_equal(y, x)
    y, _ = run(compiled_ops, "sigmoid", x)
    np.testing.assert_array_equal(y, 0.5)


# ---- the same bits everywhere -------------------------------------------------------

def _all_outputs(compiled_ops, x, dy):
    out = {}
    for name in ELEMENTWISE:
        y = compiled_ops.activation_forward(name, x)
        out[name] = (y, compiled_ops.activation_backward(name, dy, x, y))
    return out


def _grid_case(seed=5):
    rng = np.random.default_rng(seed)
    x = np.concatenate([GRID, (rng.standard_normal(50000) * 4).astype(np.float32)])
    x = np.concatenate([x, np.zeros(-x.size % 509, np.float32)]).reshape(-1, 509)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    return x, dy


def test_bitwise_equal_for_every_isa(compiled_ops):
    """The loops are built once per ISA; every build gives the same bits."""
    x, dy = _grid_case()
    before = _core.isa_current()
    results = {}
    try:
        for isa in SUPPORTED_ISAS:
            _core.isa_select(isa)
            results[isa] = _all_outputs(compiled_ops, x, dy)
    finally:
        _core.isa_select(before)
    first = results[SUPPORTED_ISAS[0]]
    for isa, got in results.items():
        for name, (y, dx) in got.items():
            np.testing.assert_array_equal(y, first[name][0], err_msg=f"{isa} {name} forward")
            np.testing.assert_array_equal(dx, first[name][1], err_msg=f"{isa} {name} backward")


_HASH_SCRIPT = """
import hashlib, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_kernels_act_vector import _all_outputs, _grid_case
from fastnn.backend import get_ops
from fastnn._ext import _core
ops = get_ops('compiled')   # applies FASTNN_ISA
assert _core.isa_current() == {isa!r}, _core.isa_current()
x, dy = _grid_case()
h = hashlib.sha256()
for name, (y, dx) in sorted(_all_outputs(ops, x, dy).items()):
    h.update(y.tobytes()); h.update(dx.tobytes())
print(h.hexdigest())
"""


def test_fastnn_isa_override_gives_the_same_bits():
    """FASTNN_ISA=generic|avx2|avx512 in a fresh process: identical outputs."""
    digests = {}
    for isa in SUPPORTED_ISAS:
        script = _HASH_SCRIPT.format(tests=os.path.dirname(__file__), isa=isa)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=dict(os.environ, FASTNN_ISA=isa), timeout=180)
        assert proc.returncode == 0, proc.stderr
        digests[isa] = proc.stdout.strip()
    assert len(set(digests.values())) == 1, digests


def test_one_and_two_threads_bitwise_equal_on_the_grid(compiled_ops):
    x, dy = _grid_case(6)
    with on_threads(1):
        one = _all_outputs(compiled_ops, x, dy)
    with on_threads(2):
        two = _all_outputs(compiled_ops, x, dy)
    for name in ELEMENTWISE:
        np.testing.assert_array_equal(one[name][0], two[name][0], err_msg=name)
        np.testing.assert_array_equal(one[name][1], two[name][1], err_msg=name)


# ---- a fused epilogue computes what the activation kernel computes --------------------

def _dense_case(rng, n, i, o, scale=1.0):
    x = (rng.standard_normal((n, i)) * scale).astype(np.float32)
    w = (rng.standard_normal((i, o)) / np.sqrt(i) * 3).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    return x, w, b


# (N, I, O): A read in place (O of a few micro-panels), A packed, and with two
# threads the GEMM's column mode (few rows) and row blocks (many).
FUSED_SHAPES = [(1, 3, 1), (7, 13, 33), (61, 70, 257), (300, 64, 40), (40, 512, 1024),
                (600, 256, 300)]


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", FUSED_SHAPES, ids=[f"{n}x{i}x{o}" for n, i, o in FUSED_SHAPES])
def test_fused_dense_equals_separate_activation(compiled_ops, rng, isa, name, shape):
    x, w, b = _dense_case(rng, *shape)
    before = _core.isa_current()
    try:
        _core.isa_select(isa)
        with num_threads(2):
            fused = compiled_ops.dense_forward(x, w, b, name)
            z = np.empty_like(fused)
            separate = compiled_ops.dense_forward(x, w, b, name, preact_out=z)
            direct = compiled_ops.activation_forward(name, z)
    finally:
        _core.isa_select(before)
    np.testing.assert_array_equal(fused, separate)
    np.testing.assert_array_equal(fused, direct)


@pytest.mark.parametrize("name", TRANSCENDENTAL)
def test_fused_gemm_and_conv_equal_separate_activation(compiled_ops, rng, name):
    a = rng.standard_normal((45, 30)).astype(np.float32)
    b = rng.standard_normal((30, 77)).astype(np.float32)
    bias = rng.standard_normal(77).astype(np.float32)
    fused = compiled_ops.gemm(a, b, bias=bias, activation=name)
    z = compiled_ops.gemm(a, b, bias=bias)
    np.testing.assert_array_equal(fused, compiled_ops.activation_forward(name, z))

    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    cb = rng.standard_normal(5).astype(np.float32)
    geom = dict(strides=(1, 1), padding="same", dilation=(1, 1))
    y = compiled_ops.conv2d_forward(x, k, cb, activation=name, **geom)
    z = compiled_ops.conv2d_forward(x, k, cb, activation="linear", **geom)
    np.testing.assert_array_equal(y, compiled_ops.activation_forward(name, z))
