"""Dense backward and the column sum: CompiledOps against NumpyOps (float32)
for every buffer the call writes, odd shapes, 1 vs 2 threads, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend.ops import ACTIVATIONS
from testing_utils import on_threads

SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (3, 5, 1), (13, 17, 11), (32, 64, 10), (2, 3, 31)]
RTOL, ATOL = 2e-5, 2e-6


def _layer(numpy_ops, rng, n, i, o, activation, bias=True):
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = (rng.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    preact = np.empty((n, o), np.float32)
    y = numpy_ops.dense_forward(x, w, b, activation, preact_out=preact)
    dy = rng.standard_normal((n, o)).astype(np.float32)
    return x, w, y, preact, dy


def _backward(ops, x, w, y, preact, dy, activation, bias, want_dx):
    n, i = x.shape
    o = w.shape[1]
    dw = np.full((i, o), np.nan, np.float32)     # overwritten, never accumulated into
    db = np.full(o, np.nan, np.float32) if bias else None
    scratch = np.full((n, o), np.nan, np.float32)
    dx = ops.dense_backward(dy, x, w, y, preact, activation, dw, db,
                            dx_out=None if want_dx else False, scratch=scratch)
    return dw, db, dx, scratch


def _compare(numpy_ops, compiled_ops, x, w, y, preact, dy, activation, bias, want_dx):
    ref = _backward(numpy_ops, x, w, y, preact, dy, activation, bias, want_dx)
    got = _backward(compiled_ops, x, w, y, preact, dy, activation, bias, want_dx)
    for label, r, g in zip(("dw", "db", "dx", "dz"), ref, got):
        if label == "dz" and activation == "linear":
            # dz is dy itself: the scratch is left as it was (NaN).
            assert np.isnan(r).all() and np.isnan(g).all()
            continue
        if r is None:
            assert g is None, label
            continue
        np.testing.assert_allclose(g, r, rtol=RTOL, atol=ATOL, err_msg=f"{activation} {label}")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy(numpy_ops, compiled_ops, rng, activation, shape):
    x, w, y, preact, dy = _layer(numpy_ops, rng, *shape, activation)
    _compare(numpy_ops, compiled_ops, x, w, y, preact, dy, activation, True, True)


@pytest.mark.parametrize("activation", ["linear", "relu", "softmax", "gelu"])
def test_no_bias_and_no_dx(numpy_ops, compiled_ops, rng, activation):
    x, w, y, preact, dy = _layer(numpy_ops, rng, 11, 7, 5, activation, bias=False)
    _compare(numpy_ops, compiled_ops, x, w, y, preact, dy, activation, False, False)


@given(n=st.integers(1, 40), i=st.integers(1, 40), o=st.integers(1, 40),
       activation=st.sampled_from(ACTIVATIONS), seed=st.integers(0, 2**31 - 1))
def test_matches_numpy_drawn_shapes(numpy_ops, compiled_ops, n, i, o, activation, seed):
    rng = np.random.default_rng(seed)
    x, w, y, preact, dy = _layer(numpy_ops, rng, n, i, o, activation)
    _compare(numpy_ops, compiled_ops, x, w, y, preact, dy, activation, True, True)


@pytest.mark.parametrize("activation", ["gelu", "relu", "linear"])
def test_empty_batch_forward_keeping_the_preactivation(compiled_ops, activation):
    """No rows: empty outputs (the kept pre-activation and the output are
    distinct arrays even when both are empty)."""
    w = np.ones((4, 3), np.float32)
    y = compiled_ops.dense_forward(np.zeros((0, 4), np.float32), w, None, activation,
                                   preact_out=np.empty((0, 3), np.float32))
    assert y.shape == (0, 3)


def test_empty_batch_gives_zero_gradients(compiled_ops):
    x = np.empty((0, 4), np.float32)
    w = np.ones((4, 3), np.float32)
    dy = np.empty((0, 3), np.float32)
    dw = np.full((4, 3), np.nan, np.float32)
    db = np.full(3, np.nan, np.float32)
    dx = compiled_ops.dense_backward(dy, x, w, dy, None, "relu", dw, db)
    assert dx.shape == (0, 4)
    np.testing.assert_array_equal(dw, 0.0)
    np.testing.assert_array_equal(db, 0.0)


@pytest.mark.parametrize("activation", ["relu", "gelu", "softmax"])
def test_one_and_two_threads_bitwise_equal(numpy_ops, compiled_ops, rng, activation):
    # O > 256 so the column sum has several blocks; N * O well past the grain.
    x, w, y, preact, dy = _layer(numpy_ops, rng, 257, 31, 521, activation)
    results = []
    for n in (1, 2):
        with on_threads(n):
            results.append(_backward(compiled_ops, x, w, y, preact, dy, activation, True, True))
    for label, a, b in zip(("dw", "db", "dx", "dz"), *results):
        np.testing.assert_array_equal(a, b, err_msg=label)


@pytest.mark.parametrize("n,i,o", [(1023, 37, 70), (3001, 37, 70), (20000, 37, 70),
                                   (3001, 600, 500)])
def test_many_rows_chunked_weight_gradient(numpy_ops, compiled_ops, rng, n, i, o):
    """Past 2048 rows a small dW and its db are summed over fixed row chunks
    (partials added in order, at most 8); a large dW (600 x 500) is one GEMM:
    against NumPy, 1 and 2 threads bitwise equal, and db exact where the sums
    are (integer dY)."""
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = rng.standard_normal((i, o)).astype(np.float32)
    dy = rng.integers(-1000, 1000, size=(n, o)).astype(np.float32)
    want = _backward(numpy_ops, x, w, None, None, dy, "linear", True, True)
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            results.append(_backward(compiled_ops, x, w, None, None, dy, "linear", True, True))
    for label, a, b, r in zip(("dw", "db", "dx"), *results, want):
        np.testing.assert_array_equal(a, b, err_msg=label)
        np.testing.assert_allclose(a, r, rtol=RTOL, atol=ATOL * np.abs(r).max(), err_msg=label)
    np.testing.assert_array_equal(results[0][1], dy.astype(np.int64).sum(axis=0))


# ---- colsum ---------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (7, 1), (13, 17), (1000, 3), (5, 257),
                                   (0, 4)])
def test_colsum_matches_float64_sum(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    out = np.full(shape[1], np.nan, np.float32)
    _core.colsum_f32(out, x, 2)
    np.testing.assert_allclose(out, x.astype(np.float64).sum(axis=0), rtol=1e-6, atol=1e-6)


def test_colsum_is_exact_on_integers_and_deterministic(rng):
    x = rng.integers(-1000, 1000, size=(4099, 600)).astype(np.float32)
    outs = []
    for n in (1, 2):
        out = np.empty(600, np.float32)
        with on_threads(n):
            _core.colsum_f32(out, x, n)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], x.astype(np.int64).sum(axis=0))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_colsum_bad_input():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        _core.colsum_f32(np.zeros(3, np.float32), x, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.colsum_f32(np.zeros(4, np.float32), x.astype(np.float64), 1)
    with pytest.raises(ValueError, match="2-D"):
        _core.colsum_f32(np.zeros(4, np.float32), np.zeros(4, np.float32), 1)


# ---- bad input to dense_backward ------------------------------------------------

def _args(n=3, i=4, o=5):
    f = np.float32
    return dict(dX=np.zeros((n, i), f), dW=np.zeros((i, o), f), db=np.zeros(o, f),
                dZ=np.zeros((n, o), f), dY=np.zeros((n, o), f), X=np.zeros((n, i), f),
                W=np.zeros((i, o), f), Z=np.zeros((n, o), f), Y=np.zeros((n, o), f))


def _call(act=1, **changes):
    a = _args()
    a.update(changes)
    _core.dense_backward_f32(a["dX"], a["dW"], a["db"], a["dZ"], a["dY"], a["X"], a["W"],
                             a["Z"], a["Y"], act, 1)


def test_dense_backward_accepts_good_arguments():
    _call()
    _call(dX=None, db=None, Z=None)


@pytest.mark.parametrize("name, bad", [
    ("W", np.zeros((5, 4), np.float32)),
    ("dW", np.zeros((5, 4), np.float32)),
    ("db", np.zeros(4, np.float32)),
    ("dX", np.zeros((3, 5), np.float32)),
    ("dY", np.zeros((3, 4), np.float32)),
    ("dZ", np.zeros((2, 5), np.float32)),
    ("Z", np.zeros((3, 4), np.float32)),
    ("Y", np.zeros((3, 5, 1), np.float32)),
    ("X", np.zeros(12, np.float32)),
])
def test_dense_backward_wrong_shapes(name, bad):
    with pytest.raises(ValueError, match=r"\("):
        _call(**{name: bad})


@pytest.mark.parametrize("name", ["dX", "dW", "db", "dZ", "dY", "X", "W", "Z", "Y"])
def test_dense_backward_wrong_dtype(name):
    with pytest.raises(TypeError, match="float32"):
        _call(**{name: _args()[name].astype(np.float64)})


def test_dense_backward_missing_operands_and_read_only():
    with pytest.raises(ValueError, match="pre-activation"):
        _call(act=ACTIVATIONS.index("swish"), Z=None)
    with pytest.raises(ValueError, match="output Y"):
        _call(act=ACTIVATIONS.index("tanh"), Y=None)
    with pytest.raises(ValueError, match="activation code"):
        _call(act=42)
    ro = np.zeros((4, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _call(dW=ro)
    with pytest.raises(TypeError):
        _call(dW=None)
