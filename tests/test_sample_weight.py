"""sample_weight and class_weight in fit / evaluate / train_on_batch (Keras 3
semantics): each sample's loss is multiplied by its weight and the batch
loss is still divided by the batch size; metrics stay unweighted."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, models, optimizers


def _regression(n=16, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3)).astype(np.float32),
            rng.standard_normal((n, 1)).astype(np.float32))


def _model(out=1, activation=None, loss="mse", lr=0.05, metrics=None):
    fastnn.set_seed(11)
    model = models.Sequential([layers.Dense(6, activation="tanh", input_shape=(3,)),
                               layers.Dense(out, activation=activation)])
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss=loss, metrics=metrics)
    return model


def test_weighted_evaluate_by_hand(backend):
    x, y = _regression()
    w = np.linspace(0.0, 2.0, len(x)).astype(np.float32)
    model = _model()
    pred = model.predict(x, verbose=0).astype(np.float64)
    per_sample = ((pred - y) ** 2).mean(axis=1)
    expected = (per_sample * w).sum() / len(x)       # divided by N, not by sum(w)
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=w, batch_size=5, verbose=0),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=np.ones(len(x)), verbose=0),
                               model.evaluate(x, y, verbose=0), rtol=1e-7)
    assert model.test_on_batch(x, y, sample_weight=w) == pytest.approx(expected, rel=1e-5)


def test_zero_weight_half_equals_training_on_the_other_half(backend):
    # Weights 2 on the first half, 0 on the second, in one full batch:
    # sum(2 g_i) / (2k) = sum(g_i) / k, the gradient of the first half alone.
    x, y = _regression(20)
    k = 10
    w = np.r_[np.full(k, 2.0), np.zeros(k)]
    weighted, half = _model(), _model()
    hw = weighted.fit(x, y, sample_weight=w, batch_size=2 * k, epochs=4, shuffle=False,
                      verbose=0)
    hh = half.fit(x[:k], y[:k], batch_size=k, epochs=4, shuffle=False, verbose=0)
    for a, b in zip(weighted.get_weights(), half.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The reported loss is the same mean: sum(2 l_i) / (2k) = sum(l_i) / k.
    np.testing.assert_allclose(hw.history["loss"], hh.history["loss"], rtol=1e-5)


def test_shuffling_keeps_weights_with_their_samples(backend):
    # Poisoned targets carry weight 0: if the weights were not permuted with x
    # and y, some poison would be trained on and the weights would explode.
    x, y = _regression(64, seed=4)
    poison = np.arange(64) % 4 == 0
    y = y.copy()
    y[poison] = 1e4
    model = _model(lr=0.02)
    history = model.fit(x, y, sample_weight=(~poison).astype(np.float32), batch_size=8,
                        epochs=3, verbose=0)
    assert max(np.abs(w).max() for w in model.get_weights()) < 10
    assert history.history["loss"][-1] < 5


@pytest.mark.parametrize("kind", ["sparse", "onehot", "binary"])
def test_class_weight_equals_matching_sample_weight(backend, kind):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 3)).astype(np.float32)
    if kind == "binary":
        labels = rng.integers(0, 2, 30)
        y, out, act, loss = labels.astype(np.float32), 1, "sigmoid", "binary_crossentropy"
        class_weight = {0: 0.5, 1: 3.0}
    else:
        labels = rng.integers(0, 3, 30)
        out, act = 3, "softmax"
        class_weight = {0: 1.0, 2: 4.0}                # class 1 not named: weight 1
        if kind == "sparse":
            y, loss = labels, "sparse_categorical_crossentropy"
        else:
            y, loss = np.eye(3, dtype=np.float32)[labels], "categorical_crossentropy"
    sample_weight = np.array([class_weight.get(int(c), 1.0) for c in labels])
    by_class, by_sample = _model(out, act, loss), _model(out, act, loss)
    fastnn.set_seed(3)                                 # the same shuffles for both
    h1 = by_class.fit(x, y, class_weight=class_weight, batch_size=7, epochs=2, verbose=0)
    fastnn.set_seed(3)
    h2 = by_sample.fit(x, y, sample_weight=sample_weight, batch_size=7, epochs=2, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_split_splits_the_weights(backend):
    x, y = _regression(20)
    w = np.linspace(0.1, 3.0, 20)
    model = _model(lr=0.0)
    history = model.fit(x, y, sample_weight=w, validation_split=0.25, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["val_loss"][0],
                               model.evaluate(x[15:], y[15:], sample_weight=w[15:], verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(history.history["loss"][0],
                               model.evaluate(x[:15], y[:15], sample_weight=w[:15], verbose=0),
                               rtol=1e-6)
    history = model.fit(x, y, validation_data=(x[:5], y[:5], w[:5]), epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["val_loss"][0],
                               model.evaluate(x[:5], y[:5], sample_weight=w[:5], verbose=0),
                               rtol=1e-6)


def test_metrics_stay_unweighted(backend):
    # Keras 3 weights only `weighted_metrics`, not `metrics=`.
    x, y = _regression()
    model = _model(metrics=["mae"])
    w = np.linspace(0.0, 1.0, len(x))
    plain = model.evaluate(x, y, verbose=0)
    weighted = model.evaluate(x, y, sample_weight=w, verbose=0)
    assert weighted[1] == plain[1]
    assert weighted[0] != plain[0]


def test_compiled_and_numpy_agree():
    x, y = _regression(40)
    w = np.random.default_rng(2).uniform(0, 2, 40)
    results = {}
    for name in ("numpy", "compiled"):
        previous = fastnn.get_backend()
        fastnn.set_backend(name)
        try:
            model = _model()
            history = model.fit(x, y, sample_weight=w, batch_size=8, epochs=3, verbose=0)
            results[name] = (model.get_weights(), history.history["loss"])
        finally:
            fastnn.set_backend(previous)
    for a, b in zip(results["numpy"][0], results["compiled"][0]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(results["numpy"][1], results["compiled"][1], rtol=1e-4)


def test_train_on_batch_weights(backend):
    x, y = _regression(8)
    a, b = _model(), _model()
    w = np.r_[np.ones(4), np.zeros(4)] * 2
    la = a.train_on_batch(x, y, sample_weight=w)
    lb = b.train_on_batch(x[:4], y[:4])
    assert la == pytest.approx(lb, rel=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


# ---- bad input --------------------------------------------------------------------

def test_bad_sample_weight(backend):
    x, y = _regression(10)
    model = _model()
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(10,\).*\(9,\)"):
        model.fit(x, y, sample_weight=np.ones(9), verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(10,\)"):
        model.evaluate(x, y, sample_weight=np.ones((10, 2)), verbose=0)
    with pytest.raises(ValueError, match=">= 0"):
        model.fit(x, y, sample_weight=np.r_[np.ones(9), -1.0], verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(x, y, sample_weight=np.r_[np.ones(9), np.nan], verbose=0)
    with pytest.raises(TypeError, match="numeric"):
        model.fit(x, y, sample_weight=np.array(["a"] * 10), verbose=0)
    with pytest.raises(ValueError, match="not both"):
        model.fit(x, y, sample_weight=np.ones(10), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"validation_data.*\(3,\)"):
        model.fit(x, y, validation_data=(x[:3], y[:3], np.ones(4)), verbose=0)


def test_bad_class_weight(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 10)
    model = _model(3, "softmax", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"class_weight has key 3.*\(None, 3\).*0\.\.2"):
        model.fit(x, labels, class_weight={3: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight has key -1"):
        model.fit(x, labels, class_weight={-1: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight has key 'a'"):
        model.fit(x, labels, class_weight={"a": 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight\[1\] must be"):
        model.fit(x, labels, class_weight={1: -2.0}, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight\[1\] must be"):
        model.fit(x, labels, class_weight={1: float("nan")}, verbose=0)
    with pytest.raises(TypeError, match="dict"):
        model.fit(x, labels, class_weight=[1.0, 2.0, 3.0], verbose=0)
