"""Every gradient of the NumPy reference backend against central finite differences (float64)."""
import numpy as np
import pytest

from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import ACTIVATIONS, LOSSES, NEEDS_PREACTIVATION
from testing_utils import numeric_grad

ops = NumpyOps()


def away_from_kinks(rng, shape, low=0.1, high=2.0):
    """Values whose magnitudes lie in [low, high], random signs (no relu/mae kinks)."""
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_finite_differences(name, rng):
    x = away_from_kinks(rng, (3, 7))
    weights = rng.standard_normal((3, 7))       # L = sum(weights * act(x))
    y = ops.activation_forward(name, x)
    dx = ops.activation_backward(name, weights, x if name in NEEDS_PREACTIVATION else None, y)
    numeric = numeric_grad(lambda: float((weights * ops.activation_forward(name, x)).sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_backward_matches_finite_differences(activation, use_bias, rng):
    n, i, o = 4, 5, 3
    x = rng.standard_normal((n, i))
    w = rng.standard_normal((i, o)) * 0.5
    b = rng.standard_normal(o) * 0.5 if use_bias else None
    weights = rng.standard_normal((n, o))

    def loss():
        return float((weights * ops.dense_forward(x, w, b, activation,
                                                  preact_out=np.empty((n, o)))).sum())

    z = np.empty((n, o))
    y = ops.dense_forward(x, w, b, activation, preact_out=z)
    dw, db = np.empty_like(w), (np.empty(o) if use_bias else None)
    dx = ops.dense_backward(weights, x, w, y, z, activation, dw, db)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), rtol=1e-5, atol=1e-7)
    if use_bias:
        np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-5, atol=1e-7)


def loss_case(name, from_logits, rng, n=4, d=5):
    """(y_pred, y_true) suited to a loss: probabilities, logits, labels or targets."""
    if name == "sparse_categorical_crossentropy":
        y_true = rng.integers(0, d, size=n)
    elif name in ("categorical_crossentropy",):
        y_true = rng.dirichlet(np.ones(d), size=n)        # soft labels exercise the general form
    elif name == "binary_crossentropy":
        y_true = rng.uniform(0, 1, size=(n, d))
    else:
        y_true = rng.standard_normal((n, d))
    if from_logits:
        y_pred = rng.standard_normal((n, d)) * 2
    elif name in ("binary_crossentropy",):
        y_pred = rng.uniform(0.05, 0.95, size=(n, d))
    elif name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        y_pred = rng.uniform(0.05, 1.0, size=(n, d))        # unnormalised on purpose
    else:
        y_pred = y_true + away_from_kinks(rng, (n, d), 0.05, 3.0)
    return y_pred, y_true


LOSS_CASES = [(name, False) for name in LOSSES] + [
    (name, True) for name in ("binary_crossentropy", "categorical_crossentropy",
                              "sparse_categorical_crossentropy")
]


@pytest.mark.parametrize("name,from_logits", LOSS_CASES)
def test_loss_gradient_matches_finite_differences(name, from_logits, rng):
    y_pred, y_true = loss_case(name, from_logits, rng)
    grad = np.empty_like(y_pred)
    ops.loss(name, y_pred, y_true, from_logits=from_logits, delta=1.0, grad_out=grad)
    numeric = numeric_grad(
        lambda: ops.loss(name, y_pred, y_true, from_logits=from_logits, delta=1.0), y_pred)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_huber_gradient_in_both_regimes(rng):
    y_true = np.zeros((3, 4))
    y_pred = np.array([[0.3, -0.5, 2.0, -3.0]] * 3)     # quadratic and linear parts
    grad = np.empty_like(y_pred)
    ops.loss("huber", y_pred, y_true, delta=1.0, grad_out=grad)
    numeric = numeric_grad(lambda: ops.loss("huber", y_pred, y_true, delta=1.0), y_pred)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_logits_losses_equal_probability_losses(rng):
    """Fusing softmax / sigmoid into the loss must not change its value."""
    z = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, size=6)
    onehot = np.eye(4)[labels]
    probs = ops.activation_forward("softmax", z)
    for name, target in (("categorical_crossentropy", onehot),
                         ("sparse_categorical_crossentropy", labels)):
        assert ops.loss(name, z, target, from_logits=True) == pytest.approx(
            ops.loss(name, probs, target), rel=1e-10)
    t = rng.uniform(0, 1, size=(6, 4))
    assert ops.loss("binary_crossentropy", z, t, from_logits=True) == pytest.approx(
        ops.loss("binary_crossentropy", ops.activation_forward("sigmoid", z), t), rel=1e-10)


def test_loss_values_match_keras_formulas():
    """Hand-computed values: mse/mae/huber means over features then samples."""
    y_true = np.array([[0.0, 1.0], [2.0, 0.0]])
    y_pred = np.array([[1.0, 1.0], [0.0, 0.5]])
    assert ops.loss("mse", y_pred, y_true) == pytest.approx(((1 + 0) / 2 + (4 + 0.25) / 2) / 2)
    assert ops.loss("mae", y_pred, y_true) == pytest.approx(((1 + 0) / 2 + (2 + 0.5) / 2) / 2)
    huber = ((0.5 + 0) / 2 + ((2 - 0.5) + 0.125) / 2) / 2
    assert ops.loss("huber", y_pred, y_true, delta=1.0) == pytest.approx(huber)
    p = np.array([[0.25, 0.75]])
    assert ops.loss("categorical_crossentropy", p, np.array([[0.0, 1.0]])) == pytest.approx(
        -np.log(0.75))
    assert ops.loss("sparse_categorical_crossentropy", p, np.array([0])) == pytest.approx(
        -np.log(0.25))


@pytest.mark.parametrize("name,from_logits", LOSS_CASES)
def test_weighted_loss_gradient_matches_finite_differences(name, from_logits, rng):
    y_pred, y_true = loss_case(name, from_logits, rng)
    w = rng.uniform(0.0, 2.0, size=y_pred.shape[0])
    w[1] = 0.0
    grad = np.empty_like(y_pred)
    ops.loss(name, y_pred, y_true, from_logits=from_logits, grad_out=grad, sample_weight=w)
    numeric = numeric_grad(
        lambda: ops.loss(name, y_pred, y_true, from_logits=from_logits, sample_weight=w), y_pred)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.3), (0.2, 0.05)])
def test_regularizer_penalty_gradient_matches_finite_differences(l1, l2, rng):
    w = away_from_kinks(rng, (5, 3))          # no weight at the |w| kink
    grad = np.zeros_like(w)
    penalty = ops.regularize_(grad, w, l1, l2)
    assert penalty == pytest.approx(l1 * np.abs(w).sum() + l2 * (w * w).sum(), rel=1e-12)
    numeric = numeric_grad(lambda: ops.regularize_(None, w, l1, l2), w)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
