"""Losses and metrics: CompiledOps against NumpyOps (float32 inputs) for the
loss, its gradient and the metric sums; odd shapes, clip boundaries, 1 vs 2
threads bitwise, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend.compiled_ops import LOSS_CODES, METRIC_CODES
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import LOSSES, METRICS
from testing_utils import on_threads

SHAPES = [(1, 1), (1, 7), (5, 1), (13, 17), (64, 10), (3, 31)]
DENSE_LOSSES = [name for name in LOSSES if name != "sparse_categorical_crossentropy"]
SPARSE = "sparse_categorical_crossentropy"
# Both backends compute in double from the same float32 inputs: the loss
# agrees to double rounding, each gradient element to about one float32 ulp.
LOSS_RTOL = 1e-9
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-12


def _data(rng, name, shape, from_logits):
    """Predictions and targets of the kind each loss expects."""
    n, d = shape
    if from_logits or name in ("mse", "mae", "huber"):
        p = (rng.standard_normal(shape) * 3).astype(np.float32)
    else:
        p = rng.uniform(0.01, 0.99, shape).astype(np.float32)
    if name == SPARSE:
        return p, rng.integers(0, d, n).astype(np.int64)
    if name == "categorical_crossentropy":
        t = np.eye(d, dtype=np.float32)[rng.integers(0, d, n)]
        return p, t
    if name == "binary_crossentropy":
        return p, rng.integers(0, 2, shape).astype(np.float32)
    return p, rng.standard_normal(shape).astype(np.float32)


def _loss_and_grad(ops, name, p, t, from_logits, delta=1.0):
    grad = np.full(p.shape, np.nan, np.float32)
    value = ops.loss(name, p, t, from_logits=from_logits, delta=delta, grad_out=grad)
    return value, grad


def _compare(numpy_ops, compiled_ops, name, p, t, from_logits, delta=1.0):
    ref, gref = _loss_and_grad(numpy_ops, name, p, t, from_logits, delta)
    got, g = _loss_and_grad(compiled_ops, name, p, t, from_logits, delta)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, ref, rtol=LOSS_RTOL, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(g, gref, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=name)


def test_codes_match_ops():
    assert [LOSS_CODES[n] for n in LOSSES] == list(range(len(LOSSES)))
    assert [METRIC_CODES[n] for n in METRICS] == list(range(len(METRICS)))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_loss_matches_numpy(numpy_ops, compiled_ops, rng, name, from_logits, shape):
    p, t = _data(rng, name, shape, from_logits)
    _compare(numpy_ops, compiled_ops, name, p, t, from_logits)


@given(n=st.integers(1, 60), d=st.integers(1, 40), name=st.sampled_from(LOSSES),
       from_logits=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_loss_matches_numpy_drawn_shapes(numpy_ops, compiled_ops, n, d, name, from_logits, seed):
    rng = np.random.default_rng(seed)
    p, t = _data(rng, name, (n, d), from_logits)
    _compare(numpy_ops, compiled_ops, name, p, t, from_logits)


@pytest.mark.parametrize("delta", [0.1, 1.0, 3.5])
def test_huber_deltas(numpy_ops, compiled_ops, rng, delta):
    p, t = _data(rng, "huber", (17, 5), False)
    _compare(numpy_ops, compiled_ops, "huber", p, t, False, delta)


def test_mae_gradient_is_zero_at_equality(compiled_ops):
    p = np.array([[1.0, 2.0, 3.0]], np.float32)
    t = np.array([[1.0, 0.0, 5.0]], np.float32)
    _, g = _loss_and_grad(compiled_ops, "mae", p, t, False)
    np.testing.assert_array_equal(g, np.array([[0.0, 1.0, -1.0]], np.float32) / 3)


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy", SPARSE])
def test_probabilities_at_the_clip_bounds(numpy_ops, compiled_ops, name):
    # 0, 1, values just inside and outside [1e-7, 1 - 1e-7]: the loss stays
    # finite and the clipped elements get no gradient, as in the reference.
    p = np.array([[0.0, 1.0, 1e-8, 0.5, 1.0 - 1e-8],
                  [1e-7, 0.2, 0.3, 0.4, 0.1],
                  [0.0, 0.0, 0.0, 0.0, 1.0]], np.float32)
    if name == SPARSE:
        t = np.array([0, 3, 4], np.int64)
    elif name == "binary_crossentropy":
        t = np.array([[1, 0, 1, 0, 1], [1, 1, 0, 0, 1], [0, 1, 0, 1, 1]], np.float32)
    else:
        t = np.eye(5, dtype=np.float32)[[0, 3, 4]]
    _compare(numpy_ops, compiled_ops, name, p, t, False)
    value, _ = _loss_and_grad(compiled_ops, name, p, t, False)
    assert np.isfinite(value)


@pytest.mark.parametrize("name", ["categorical_crossentropy", SPARSE])
@pytest.mark.parametrize("d", [1024, 1025, 3000])
def test_wide_rows_from_logits(numpy_ops, compiled_ops, rng, name, d):
    """Rows up to 1024 classes keep their exponentials for the gradient; wider
    ones take exp again: both paths against NumPy."""
    p, t = _data(rng, name, (5, d), True)
    _compare(numpy_ops, compiled_ops, name, p, t, True)


def test_categorical_from_logits_with_unnormalised_targets(numpy_ops, compiled_ops, rng):
    # Label smoothing or soft targets need not sum to 1: the gradient is
    # softmax * sum(t) - t, not softmax - t.
    p = rng.standard_normal((6, 9)).astype(np.float32)
    t = rng.uniform(0, 1, (6, 9)).astype(np.float32)
    _compare(numpy_ops, compiled_ops, "categorical_crossentropy", p, t, True)


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy", SPARSE])
def test_huge_logits_stay_finite(numpy_ops, compiled_ops, name):
    p = np.array([[1e4, -1e4, 0.0], [-80.0, 80.0, 3.0]], np.float32)
    if name == SPARSE:
        t = np.array([1, 0], np.int64)
    else:
        t = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    value, g = _loss_and_grad(compiled_ops, name, p, t, True)
    assert np.isfinite(value) and np.isfinite(g).all()
    _compare(numpy_ops, compiled_ops, name, p, t, True)


def test_loss_without_gradient(compiled_ops, rng):
    p, t = _data(rng, "mse", (4, 3), False)
    value = compiled_ops.loss("mse", p, t)
    np.testing.assert_allclose(value, ((p.astype(np.float64) - t) ** 2).mean(), rtol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_loss_one_and_two_threads_bitwise_equal(compiled_ops, rng, name, from_logits):
    p, t = _data(rng, name, (5003, 13), from_logits)
    results = []
    for n in (1, 2):
        with on_threads(n):
            results.append(_loss_and_grad(compiled_ops, name, p, t, from_logits))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


# ---- metrics --------------------------------------------------------------------

def _metric_data(rng, name, shape):
    n, d = shape
    p = rng.uniform(0, 1, shape).astype(np.float32)
    if name == "sparse_categorical_accuracy":
        return p, rng.integers(0, d, n).astype(np.int64)
    if name == "categorical_accuracy":
        return p, np.eye(d, dtype=np.float32)[rng.integers(0, d, n)]
    if name == "binary_accuracy":
        return p, rng.integers(0, 2, shape).astype(np.float32)
    return p, rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", METRICS)
@pytest.mark.parametrize("shape", SHAPES + [(5003, 3)])
def test_metric_matches_numpy(numpy_ops, compiled_ops, rng, name, shape):
    p, t = _metric_data(rng, name, shape)
    got = compiled_ops.metric_sum(name, p, t)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, numpy_ops.metric_sum(name, p, t), rtol=1e-12)


def test_metric_edge_cases(numpy_ops, compiled_ops):
    # Ties go to the first maximum; 0.5 is not above the threshold; a label
    # out of range never matches.
    p = np.array([[0.2, 0.5, 0.5], [0.7, 0.1, 0.7], [0.5, 0.5, 0.5]], np.float32)
    t = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    labels = np.array([1, 0, 7], np.int64)
    for name, target in [("categorical_accuracy", t), ("binary_accuracy", t),
                         ("sparse_categorical_accuracy", labels)]:
        assert compiled_ops.metric_sum(name, p, target) == numpy_ops.metric_sum(name, p, target)
    assert compiled_ops.metric_sum("sparse_categorical_accuracy", p, labels) == 2.0


def test_metric_empty_batch(compiled_ops):
    p = np.empty((0, 3), np.float32)
    assert compiled_ops.metric_sum("mae", p, p) == 0.0


@pytest.mark.parametrize("name", METRICS)
def test_metric_one_and_two_threads_bitwise_equal(compiled_ops, rng, name):
    p, t = _metric_data(rng, name, (20011, 7))
    results = []
    for n in (1, 2):
        with on_threads(n):
            results.append(compiled_ops.metric_sum(name, p, t))
    assert results[0] == results[1]


# ---- bad input ------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-1, 5, 2**40])
@pytest.mark.parametrize("from_logits", [False, True])
def test_out_of_range_labels(compiled_ops, bad, from_logits):
    p = np.full((3, 5), 0.2, np.float32)
    grad = np.full((3, 5), 7.0, np.float32)
    labels = np.array([0, bad, 4], np.int64)
    with pytest.raises(ValueError, match="out of range"):
        compiled_ops.loss(SPARSE, p, labels, from_logits=from_logits, grad_out=grad)
    np.testing.assert_array_equal(grad, 7.0)   # nothing written


def test_wrong_dtypes_are_type_errors():
    p = np.zeros((3, 4), np.float32)
    code = LOSS_CODES
    with pytest.raises(TypeError, match="int64"):
        _core.loss_f32(None, p, None, np.zeros(3, np.int32), code[SPARSE], False, 1.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.loss_f32(None, p.astype(np.float64), p, None, code["mse"], False, 1.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.loss_f32(None, p, p.astype(np.float64), None, code["mse"], False, 1.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.loss_f32(p.astype(np.float64), p, p, None, code["mse"], False, 1.0, 1)
    with pytest.raises(TypeError, match="int64"):
        _core.metric_f32(p, None, np.zeros(3, np.float32), METRIC_CODES[
            "sparse_categorical_accuracy"], 1)


def test_wrong_shapes_and_options_are_value_errors():
    p = np.zeros((3, 4), np.float32)
    code = LOSS_CODES
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        _core.loss_f32(None, p, np.zeros((4, 3), np.float32), None, code["mse"], False, 1.0, 1)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        _core.loss_f32(np.zeros((3, 5), np.float32), p, p, None, code["mse"], False, 1.0, 1)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        _core.loss_f32(None, p, None, np.zeros(4, np.int64), code[SPARSE], False, 1.0, 1)
    with pytest.raises(ValueError, match="2-D"):
        _core.loss_f32(None, np.zeros(3, np.float32), None, None, code["mse"], False, 1.0, 1)
    with pytest.raises(ValueError, match="empty"):
        _core.loss_f32(None, np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32), None,
                       code["mse"], False, 1.0, 1)
    with pytest.raises(ValueError, match="delta"):
        _core.loss_f32(None, p, p, None, code["huber"], False, 0.0, 1)
    with pytest.raises(ValueError, match="loss code"):
        _core.loss_f32(None, p, p, None, 17, False, 1.0, 1)
    with pytest.raises(ValueError, match="needs labels"):
        _core.loss_f32(None, p, p, None, code[SPARSE], False, 1.0, 1)
    with pytest.raises(ValueError, match="needs Y_true"):
        _core.loss_f32(None, p, None, None, code["mse"], False, 1.0, 1)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        _core.metric_f32(p, np.zeros((3, 5), np.float32), None, METRIC_CODES["mae"], 1)
    with pytest.raises(ValueError, match="metric code"):
        _core.metric_f32(p, p, None, 9, 1)
    ro = np.zeros((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.loss_f32(ro, p, p, None, code["mse"], False, 1.0, 1)


# ---- per-sample weights -----------------------------------------------------------

def _weights(rng, n):
    """Non-negative weights with some exact zeros (a zero must silence its row)."""
    w = rng.uniform(0.0, 3.0, n).astype(np.float32)
    w[::3] = 0.0
    return w


def _weighted(ops, name, p, t, from_logits, w):
    grad = np.full(p.shape, np.nan, np.float32)
    value = ops.loss(name, p, t, from_logits=from_logits, grad_out=grad, sample_weight=w)
    return value, grad


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_weighted_loss_matches_numpy(numpy_ops, compiled_ops, rng, name, from_logits, shape):
    p, t = _data(rng, name, shape, from_logits)
    w = _weights(rng, shape[0])
    ref, gref = _weighted(numpy_ops, name, p, t, from_logits, w)
    got, g = _weighted(compiled_ops, name, p, t, from_logits, w)
    np.testing.assert_allclose(got, ref, rtol=LOSS_RTOL, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(g, gref, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=name)
    np.testing.assert_array_equal(g[w == 0], 0.0)


@pytest.mark.parametrize("name", LOSSES)
def test_weighted_loss_is_sum_over_batch_size(ops, rng, name):
    # Keras' reduction: sum_i w_i loss_i / N (not / sum w); ones change nothing.
    p, t = _data(rng, name, (7, 4), False)
    per_sample = np.array([ops.loss(name, p[i:i + 1], t[i:i + 1]) for i in range(7)])
    w = _weights(rng, 7)
    expected = float((per_sample * w.astype(np.float64)).sum() / 7)
    np.testing.assert_allclose(ops.loss(name, p, t, sample_weight=w), expected, rtol=1e-6)
    ones = np.ones(7, np.float32)
    g1, g2 = np.empty_like(p), np.empty_like(p)
    assert ops.loss(name, p, t, sample_weight=ones, grad_out=g1) == ops.loss(name, p, t,
                                                                            grad_out=g2)
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("name", LOSSES)
def test_weighted_loss_one_and_two_threads_bitwise_equal(compiled_ops, rng, name):
    p, t = _data(rng, name, (5003, 13), True)
    w = _weights(rng, 5003)
    results = []
    for n in (1, 2):
        with on_threads(n):
            results.append(_weighted(compiled_ops, name, p, t, True, w))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_bad_sample_weight():
    p = np.zeros((3, 4), np.float32)
    code = LOSS_CODES["mse"]
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(3,\)"):
        _core.loss_f32(None, p, p, None, code, False, 1.0, 1, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(3,\)"):
        _core.loss_f32(None, p, p, None, code, False, 1.0, 1, np.ones((3, 1), np.float32))
    with pytest.raises(TypeError, match="float32"):
        _core.loss_f32(None, p, p, None, code, False, 1.0, 1, np.ones(3, np.float64))
    with pytest.raises(ValueError, match="sample_weight"):
        NumpyOps().loss("mse", p, p, sample_weight=np.ones(2))
