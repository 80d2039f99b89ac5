"""2-D convolution kernels (csrc/conv.c): CompiledOps against NumpyOps (float32)
for every buffer a call writes -- forward (y, preact), backward (dw, db, dx, dz)
-- over a grid of geometries and every activation, hypothesis-drawn shapes,
1 vs 2 threads bitwise, the cols scratch, and bad input."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend import compiled_ops as compiled_ops_module
from fastnn.backend.ops import ACTIVATIONS
from testing_utils import on_threads

RTOL = 2e-5


def _close(got, want, what):
    """float32 against float32: relative to the array's scale (sums of many terms)."""
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def _problem(rng, n, h, w, c, kh, kw, f, bias=True):
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wt = (rng.standard_normal((kh, kw, c, f)) / np.sqrt(kh * kw * c)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32) if bias else None
    return x, wt, b


def _forward(ops, x, wt, b, geom, activation, cols=None):
    y = ops.conv2d_forward(x, wt, b, activation=activation, cols=cols, **geom)
    z = np.full(y.shape, np.nan, np.float32)
    y2 = np.full(y.shape, np.nan, np.float32)
    ops.conv2d_forward(x, wt, b, activation=activation, out=y2, preact_out=z, cols=cols, **geom)
    return y, y2, z


def _backward(ops, dy, x, wt, y, z, geom, activation, bias, want_dx, cols=None):
    dw = np.full(wt.shape, np.nan, np.float32)      # overwritten, never accumulated into
    db = np.full(wt.shape[3], np.nan, np.float32) if bias else None
    scratch = np.full(dy.shape, np.nan, np.float32)
    dx = ops.conv2d_backward(dy, x, wt, y, z, activation=activation, dw_out=dw, db_out=db,
                             dx_out=None if want_dx else False, scratch=scratch, cols=cols,
                             **geom)
    return dw, db, dx, scratch


def _compare(numpy_ops, compiled_ops, rng, shape, geom, activation, bias=True, want_dx=True):
    x, wt, b = _problem(rng, *shape, bias=bias)
    ref = _forward(numpy_ops, x, wt, b, geom, activation)
    got = _forward(compiled_ops, x, wt, b, geom, activation)
    for label, r, g in zip(("y", "y(out)", "preact"), ref, got):
        assert g.shape == r.shape, label
        _close(g, r, f"{activation} {geom} forward {label}")
    y, z = ref[0], ref[2]
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ref = _backward(numpy_ops, dy, x, wt, y, z, geom, activation, bias, want_dx)
    got = _backward(compiled_ops, dy, x, wt, y, z, geom, activation, bias, want_dx)
    for label, r, g in zip(("dw", "db", "dx", "dz"), ref, got):
        if label == "dz" and activation in (None, "linear"):
            # dz is dy itself: the scratch is left as it was (NaN).
            assert np.isnan(r).all() and np.isnan(g).all()
            continue
        if r is None:
            assert g is None, label
            continue
        _close(g, r, f"{activation} {geom} backward {label}")


def _geom(strides=1, padding="valid", dilation=1):
    return {"strides": (strides, strides) if isinstance(strides, int) else strides,
                "padding": padding,
                "dilation": (dilation, dilation) if isinstance(dilation, int) else dilation}


# ---- the grid: every kernel x stride x padding x dilation ---------------------------
# Batch (1 or odd) and channels (1, 3, odd) cycle through the grid so each value
# meets several geometries; filters are odd.
KERNELS = [(1, 1), (3, 3), (5, 5), (2, 3)]
STRIDES = [1, 2, 3]
PADDINGS = ["valid", "same"]
DILATIONS = [1, 2]
GRID = list(itertools.product(KERNELS, STRIDES, PADDINGS, DILATIONS))
BATCH_CHANNELS = [(1, 1), (3, 3), (1, 5), (3, 1), (5, 3)]


def _grid_id(case):
    (kh, kw), s, p, d = case
    return f"k{kh}x{kw}-s{s}-{p}-d{d}"


@pytest.mark.parametrize("case", GRID, ids=[_grid_id(c) for c in GRID])
def test_grid_matches_numpy(numpy_ops, compiled_ops, rng, case):
    (kh, kw), s, p, d = case
    n, c = BATCH_CHANNELS[GRID.index(case) % len(BATCH_CHANNELS)]
    _compare(numpy_ops, compiled_ops, rng, (n, 11, 10, c, kh, kw, 7), _geom(s, p, d), "relu")


@pytest.mark.parametrize("activation", [None, *ACTIVATIONS])
@pytest.mark.parametrize("shape, geom", [
    ((3, 9, 8, 3, 3, 3, 5), _geom(1, "same")),
    ((1, 12, 7, 5, 2, 3, 7), _geom((2, 1), "valid", (1, 2))),
    ((3, 6, 6, 3, 1, 1, 7), _geom(1, "same")),           # 1x1: no im2col
], ids=["3x3-same", "2x3-s2x1-d1x2", "1x1"])
def test_activations_match_numpy(numpy_ops, compiled_ops, rng, activation, shape, geom):
    _compare(numpy_ops, compiled_ops, rng, shape, geom, activation)


@pytest.mark.parametrize("activation", ["linear", "relu", "softmax", "gelu"])
def test_no_bias_and_no_dx(numpy_ops, compiled_ops, rng, activation):
    _compare(numpy_ops, compiled_ops, rng, (3, 8, 9, 3, 3, 3, 5), _geom(1, "same"), activation,
             bias=False, want_dx=False)
    _compare(numpy_ops, compiled_ops, rng, (3, 5, 4, 3, 1, 1, 5), _geom(), activation,
             bias=False, want_dx=False)


@pytest.mark.parametrize("shape", [
    (5, 28, 28, 1, 3, 3, 32),       # W3's first convolution
    (3, 26, 26, 32, 3, 3, 64),      # W3's second
    (2, 9, 9, 200, 5, 5, 3),        # K = 5000 > the chunk's width: chunks of the minimum rows
    (40, 5, 5, 2, 3, 3, 3),         # many small images: chunks span images
], ids=["w3-conv1", "w3-conv2", "wide-k", "tiny-images"])
def test_layer_shapes_match_numpy(numpy_ops, compiled_ops, rng, shape):
    _compare(numpy_ops, compiled_ops, rng, shape, _geom(), "relu")


@given(n=st.integers(1, 4), h=st.integers(1, 13), w=st.integers(1, 13), c=st.integers(1, 6),
       kh=st.integers(1, 5), kw=st.integers(1, 5), f=st.integers(1, 9),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
       padding=st.sampled_from(PADDINGS), activation=st.sampled_from(ACTIVATIONS),
       seed=st.integers(0, 2**31 - 1))
def test_drawn_shapes_match_numpy(numpy_ops, compiled_ops, n, h, w, c, kh, kw, f, sh, sw, dh,
                                  dw, padding, activation, seed):
    if padding == "valid" and ((kh - 1) * dh + 1 > h or (kw - 1) * dw + 1 > w):
        kh = kw = 1                  # keep the kernel inside the image
    _compare(numpy_ops, compiled_ops, np.random.default_rng(seed), (n, h, w, c, kh, kw, f),
             _geom((sh, sw), padding, (dh, dw)), activation)


# ---- determinism and scratch -----------------------------------------------------

def _all_outputs(ops, x, wt, b, geom, activation, dy, cols=None):
    y, _, z = _forward(ops, x, wt, b, geom, activation, cols)
    return (y, z) + _backward(ops, dy, x, wt, y, z, geom, activation, True, True, cols)


@pytest.mark.parametrize("shape, geom", [
    # 13 images of W3's second conv: 23 chunks of 336 rows in 12 dW groups.
    ((13, 26, 26, 32, 3, 3, 64), _geom()),
    ((5, 20, 20, 16, 3, 3, 32), _geom(2, "same", 1)),
    ((1, 40, 40, 8, 5, 5, 16), _geom(1, "same", 2)),     # one image: GEMM-level threads
], ids=["w3-conv2", "strided", "single-image"])
def test_one_and_two_threads_bitwise_equal(compiled_ops, rng, shape, geom):
    x, wt, b = _problem(rng, *shape)
    y = compiled_ops.conv2d_forward(x, wt, b, activation="relu", **geom)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    for n in (1, 2):
        with on_threads(n):
            results.append(_all_outputs(compiled_ops, x, wt, b, geom, "relu", dy))
    for label, a, c in zip(("y", "z", "dw", "db", "dx", "dz"), *results):
        np.testing.assert_array_equal(a, c, err_msg=label)


def test_cols_scratch_changes_nothing(compiled_ops, rng):
    shape, geom = (3, 12, 11, 4, 3, 3, 6), _geom(1, "same")
    x, wt, b = _problem(rng, *shape)
    y = compiled_ops.conv2d_forward(x, wt, b, activation="tanh", **geom)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    size = compiled_ops.conv2d_scratch_size(x, wt, strides=geom["strides"],
                                            padding=geom["padding"], dilation=geom["dilation"])
    assert size > 0
    plain = _all_outputs(compiled_ops, x, wt, b, geom, "tanh", dy)
    for cols in (np.full(size, np.nan, np.float32), np.zeros(7, np.float32),
                 np.full(size + 1000, np.nan, np.float32)[3:]):     # misaligned, too small
        got = _all_outputs(compiled_ops, x, wt, b, geom, "tanh", dy, cols)
        for label, a, c in zip(("y", "z", "dw", "db", "dx", "dz"), plain, got):
            np.testing.assert_array_equal(a, c, err_msg=label)


def test_work_size_is_bounded():
    # W3's second conv at batch 64: the full im2col matrix is 10.6 M floats; the
    # kernels work on chunks of it.
    x = np.empty((64, 26, 26, 32), np.float32)
    w = np.empty((3, 3, 32, 64), np.float32)
    y = np.empty((64, 24, 24, 64), np.float32)
    for backward in (False, True):
        size = _core.conv2d_work_floats(x, w, y, (1, 1), (1, 1), (0, 0), backward, 2)
        assert 0 < size < 1_000_000


def test_scratch_size_per_backend(numpy_ops, compiled_ops):
    x = np.zeros((64, 26, 26, 32), np.float32)
    w = np.zeros((3, 3, 32, 64), np.float32)
    geom = {"strides": (1, 1), "padding": "valid", "dilation": (1, 1)}
    assert numpy_ops.conv2d_scratch_size(x, w, **geom) == 0
    assert 0 < compiled_ops.conv2d_scratch_size(x, w, **geom) < 1_000_000
    assert compiled_ops.conv2d_scratch_size(x.astype(np.float64), w.astype(np.float64),
                                            **geom) == 0


def test_empty_batch(compiled_ops):
    x = np.empty((0, 5, 5, 2), np.float32)
    wt = np.ones((3, 3, 2, 4), np.float32)
    b = np.ones(4, np.float32)
    y = compiled_ops.conv2d_forward(x, wt, b, activation="relu", **_geom())
    assert y.shape == (0, 3, 3, 4)
    dw = np.full(wt.shape, np.nan, np.float32)
    db = np.full(4, np.nan, np.float32)
    dx = compiled_ops.conv2d_backward(y, x, wt, y, None, activation="relu", dw_out=dw,
                                      db_out=db, **_geom())
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, 0.0)
    np.testing.assert_array_equal(db, 0.0)


def test_float64_is_handed_to_numpy_visibly(numpy_ops, compiled_ops, rng):
    x, wt, b = (a.astype(np.float64) for a in _problem(rng, 2, 6, 6, 2, 3, 3, 3))
    got = compiled_ops.conv2d_forward(x, wt, b, activation="relu", **_geom())
    np.testing.assert_array_equal(
        got, numpy_ops.conv2d_forward(x, wt, b, activation="relu", **_geom()))
    assert "conv2d_forward float64" in compiled_ops_module.FALLBACKS


# ---- bad input: ValueError naming the shapes, never a crash ---------------------

def _call_forward(ops, x=None, wt=None, b=None, **geom):
    x = np.zeros((2, 6, 6, 3), np.float32) if x is None else x
    wt = np.zeros((3, 3, 3, 4), np.float32) if wt is None else wt
    return ops.conv2d_forward(x, wt, b, activation="relu", **{**_geom(), **geom})


@pytest.mark.parametrize("change, match", [
    ({"x": np.zeros((6, 6, 3), np.float32)}, r"\(6, 6, 3\)"),                 # rank
    ({"wt": np.zeros((3, 3, 4), np.float32)}, r"\(3, 3, 4\)"),
    ({"wt": np.zeros((3, 3, 2, 4), np.float32)}, r"\(3, 3, 2, 4\)"),          # channels
    ({"wt": np.zeros((7, 3, 3, 4), np.float32)}, r"\(2, 6, 6, 3\)"),          # kernel > input
    ({"wt": np.zeros((3, 3, 3, 4), np.float32), "dilation": (3, 1)}, r"\(2, 6, 6, 3\)"),
    ({"strides": (0, 1)}, r"\(2, 6, 6, 3\)"),                                 # stride 0
    ({"strides": (1, -2)}, r"\(2, 6, 6, 3\)"),
    ({"dilation": (1, 0)}, r"\(2, 6, 6, 3\)"),
    ({"padding": "full"}, r"\(2, 6, 6, 3\)"),
    ({"b": np.zeros(3, np.float32)}, r"\(4,\)"),
])
def test_forward_bad_input(compiled_ops, change, match):
    with pytest.raises(ValueError, match=match):
        _call_forward(compiled_ops, **change)


def test_backward_bad_input(compiled_ops):
    x = np.zeros((2, 6, 6, 3), np.float32)
    wt = np.zeros((3, 3, 3, 4), np.float32)
    dy = np.zeros((2, 4, 4, 4), np.float32)
    good = dict(activation="relu", dw_out=np.zeros_like(wt), db_out=np.zeros(4, np.float32),
                **_geom())
    compiled_ops.conv2d_backward(dy, x, wt, dy, None, **good)
    with pytest.raises(ValueError, match=r"\(2, 5, 4, 4\)"):
        compiled_ops.conv2d_backward(np.zeros((2, 5, 4, 4), np.float32), x, wt, dy, None,
                                     **good)
    with pytest.raises(ValueError, match=r"\(3, 3, 3, 3\)"):
        compiled_ops.conv2d_backward(dy, x, wt, dy, None,
                                     **{**good, "dw_out": np.zeros((3, 3, 3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"\(3,\)"):
        compiled_ops.conv2d_backward(dy, x, wt, dy, None,
                                     **{**good, "db_out": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"\(2, 6, 6, 2\)"):
        compiled_ops.conv2d_backward(dy, x, wt, dy, None,
                                     **{**good, "dx_out": np.zeros((2, 6, 6, 2), np.float32)})
    with pytest.raises(ValueError, match="output Y"):
        compiled_ops.conv2d_backward(dy, x, wt, None, None, **good)
    with pytest.raises(ValueError, match="pre-activation"):
        compiled_ops.conv2d_backward(dy, x, wt, dy, None, **{**good, "activation": "gelu"})
    with pytest.raises(TypeError, match="float32"):
        compiled_ops.conv2d_backward(dy, x, wt.astype(np.float64), dy, None, **good)


def test_kernel_wrappers_check_everything():
    """The _core wrappers on their own: inconsistent arguments raise, never crash."""
    f = np.float32
    x, w = np.zeros((2, 6, 6, 3), f), np.zeros((3, 3, 3, 4), f)
    y = np.zeros((2, 4, 4, 4), f)
    geom = ((1, 1), (1, 1), (0, 0))
    _core.conv2d_forward_f32(y, None, x, w, None, *geom, None, 1, 1)
    for bad_y in (np.zeros((3, 4, 4, 4), f), np.zeros((2, 4, 4, 5), f), np.zeros((2, 0, 4, 4), f),
                  np.zeros((2, 4, 4), f)):
        with pytest.raises(ValueError, match=r"\("):
            _core.conv2d_forward_f32(bad_y, None, x, w, None, *geom, None, 1, 1)
    for bad_geom in (((0, 1), (1, 1), (0, 0)), ((1, 1), (1, 0), (0, 0)), ((1, 1), (1, 1), (-1, 0))):
        with pytest.raises(ValueError, match="geometry"):
            _core.conv2d_forward_f32(y, None, x, w, None, *bad_geom, None, 1, 1)
    with pytest.raises(ValueError, match="share memory"):
        _core.conv2d_forward_f32(x, None, x, np.zeros((1, 1, 3, 3), f), None, *geom, None, 1, 1)
    with pytest.raises(ValueError, match="activation code"):
        _core.conv2d_forward_f32(y, None, x, w, None, *geom, None, 42, 1)
    with pytest.raises(ValueError, match="1-D"):
        _core.conv2d_forward_f32(y, None, x, w, None, *geom, np.zeros((2, 2), f), 1, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.conv2d_forward_f32(y, None, x, w, None, *geom, np.zeros(9), 1, 1)
    ro = np.zeros_like(y)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.conv2d_forward_f32(ro, None, x, w, None, *geom, None, 1, 1)
    # A geometry larger than the data reads zeros past the edges: still safe.
    big = np.zeros((2, 9, 9, 4), f)
    _core.conv2d_forward_f32(big, None, x, w, None, (2, 2), (2, 2), (5, 5), None, 1, 1)
    assert not big.any()
