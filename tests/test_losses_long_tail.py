"""Keras 3's other losses (focal cross-entropies, KL divergence, the hinges, log-cosh,
Poisson, cosine similarity): each value against its Keras formula written here in
NumPy float64, each gradient against float64 finite differences, each trains, and
each is found by its Keras names, serialized and saved."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, losses, models, optimizers
from testing_utils import model_gradient, model_numeric_gradient

EPS = 1e-7


# ---- Keras' formulas, in NumPy float64 (one value per sample) ----------------------------
def ref_hinge(t, p):
    t = 2 * t - 1 if np.all((t == 0) | (t == 1)) else t
    return np.maximum(1 - t * p, 0).mean(-1)


def ref_squared_hinge(t, p):
    t = 2 * t - 1 if np.all((t == 0) | (t == 1)) else t
    return (np.maximum(1 - t * p, 0) ** 2).mean(-1)


def ref_categorical_hinge(t, p):
    return np.maximum((((1 - t) * p).max(-1)) - (t * p).sum(-1) + 1, 0)


def ref_kld(t, p):
    t, p = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
    return (t * np.log(t / p)).sum(-1)


def ref_poisson(t, p):
    return (p - t * np.log(p + EPS)).mean(-1)


def ref_log_cosh(t, p):
    return np.log(np.cosh(p - t)).mean(-1)


def ref_cosine(t, p, axis=-1):
    def unit(v):
        return v / np.sqrt(np.maximum((v * v).sum(axis, keepdims=True), EPS ** 2))
    return -(unit(t) * unit(p)).sum(axis)


def ref_binary_focal(t, p, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                     from_logits=False, label_smoothing=0.0):
    if label_smoothing:
        t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    q = np.clip(p, EPS, 1 - EPS)
    bce = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    p_t = t * p + (1 - t) * (1 - p)
    focal = (1 - p_t) ** gamma * bce
    if apply_class_balancing:
        focal = (t * alpha + (1 - t) * (1 - alpha)) * focal
    return focal.mean(-1)


def ref_categorical_focal(t, p, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0):
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    if from_logits:
        e = np.exp(p - p.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return (np.asarray(alpha) * (1 - q) ** gamma * -t * np.log(q)).sum(-1)


# ---- data: (targets, predictions) a loss expects -----------------------------------------
def _data(kind, rng, n=7, d=5):
    if kind == "binary":                 # 0/1 labels, probabilities
        return rng.integers(0, 2, (n, d)).astype(float), rng.uniform(0.02, 0.98, (n, d))
    if kind == "signs":                  # -1/1 labels, scores
        return rng.choice([-1.0, 1.0], (n, d)), rng.normal(0, 1.5, (n, d))
    if kind == "binary_logits":
        return rng.integers(0, 2, (n, d)).astype(float), rng.normal(0, 2, (n, d))
    if kind == "onehot":
        return np.eye(d)[rng.integers(0, d, n)], rng.dirichlet(np.ones(d), n)
    if kind == "onehot_logits":
        return np.eye(d)[rng.integers(0, d, n)], rng.normal(0, 2, (n, d))
    if kind == "distributions":
        return rng.dirichlet(np.ones(d), n), rng.dirichlet(np.ones(d), n)
    if kind == "counts":
        return rng.poisson(2.0, (n, d)).astype(float), rng.uniform(0.3, 4.0, (n, d))
    return rng.normal(0, 1, (n, d)), rng.normal(0, 1, (n, d))        # "real"


# (loss object, its reference, data kind)
CASES = [
    (losses.Hinge(), ref_hinge, "binary"),
    (losses.Hinge(), ref_hinge, "signs"),
    (losses.SquaredHinge(), ref_squared_hinge, "binary"),
    (losses.SquaredHinge(), ref_squared_hinge, "signs"),
    (losses.CategoricalHinge(), ref_categorical_hinge, "onehot"),
    (losses.KLDivergence(), ref_kld, "distributions"),
    (losses.Poisson(), ref_poisson, "counts"),
    (losses.LogCosh(), ref_log_cosh, "real"),
    (losses.CosineSimilarity(), ref_cosine, "real"),
    (losses.BinaryFocalCrossentropy(), ref_binary_focal, "binary"),
    (losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=1.5,
                                    label_smoothing=0.1),
     lambda t, p: ref_binary_focal(t, p, True, 0.4, 1.5, False, 0.1), "binary"),
    (losses.BinaryFocalCrossentropy(from_logits=True, gamma=3.0),
     lambda t, p: ref_binary_focal(t, p, gamma=3.0, from_logits=True), "binary_logits"),
    (losses.CategoricalFocalCrossentropy(), ref_categorical_focal, "onehot"),
    (losses.CategoricalFocalCrossentropy(alpha=[0.1, 0.2, 0.3, 0.2, 0.2], gamma=1.0,
                                         from_logits=True, label_smoothing=0.2),
     lambda t, p: ref_categorical_focal(t, p, [0.1, 0.2, 0.3, 0.2, 0.2], 1.0, True, 0.2),
     "onehot_logits"),
]
IDS = [f"{type(c[0]).__name__}-{c[2]}-{i}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("loss, reference, kind", CASES, ids=IDS)
def test_value_is_keras_formula(loss, reference, kind, rng):
    y_true, y_pred = _data(kind, rng)
    expected = reference(y_true, y_pred)
    assert loss(y_true, y_pred) == pytest.approx(expected.mean(), rel=1e-10, abs=1e-12)
    weights = rng.uniform(0.0, 2.0, len(y_true))
    assert loss(y_true, y_pred, sample_weight=weights) == \
        pytest.approx((expected * weights).sum() / len(expected), rel=1e-10, abs=1e-12)
    config = losses.serialize(loss)["config"]
    per_sample = type(loss).from_config({**config, "reduction": None})(y_true, y_pred)
    np.testing.assert_allclose(per_sample, expected, rtol=1e-10, atol=1e-12)
    summed = type(loss).from_config({**config, "reduction": "sum"})(y_true, y_pred, weights)
    assert summed == pytest.approx((expected * weights).sum(), rel=1e-10)


def test_keras_doc_examples():
    # the values keras.io prints for these examples
    np.testing.assert_allclose(losses.binary_focal_crossentropy(
        np.array([[0, 1], [0, 0]]), np.array([[0.6, 0.4], [0.4, 0.6]]), gamma=2),
        [0.330, 0.206], atol=1e-3)
    np.testing.assert_allclose(losses.categorical_focal_crossentropy(
        np.array([[0, 1, 0], [0, 0, 1]]), np.array([[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])),
        [2.63401289e-04, 6.75912094e-01], rtol=1e-5)
    assert losses.log_cosh(np.array([[0., 1.], [0., 0.]]),
                           np.array([[1., 1.], [0., 0.]])).mean() == pytest.approx(0.108, abs=1e-3)
    np.testing.assert_allclose(losses.cosine_similarity(
        np.array([[0., 1.], [1., 1.], [1., 1.]]), np.array([[1., 0.], [1., 1.], [-1., -1.]])),
        [0.0, -1.0, 1.0], atol=1e-6)


def test_hinge_converts_labels_only_when_all_are_zero_or_one():
    p = np.array([[0.3, -0.8, 2.0]])
    assert losses.hinge(np.array([[0.0, 1.0, 1.0]]), p) == \
        pytest.approx(losses.hinge(np.array([[-1.0, 1.0, 1.0]]), p))
    # a label of 0.5 makes the batch non-binary: the 0 and 1 are used as given
    assert losses.hinge(np.array([[0.0, 1.0, 0.5]]), p)[0] == pytest.approx(
        np.mean([1.0, 1.8, 0.0]))


def test_cosine_similarity_axis_and_zero_vectors():
    rng = np.random.default_rng(3)
    t, p = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 5))
    np.testing.assert_allclose(losses.CosineSimilarity(axis=1, reduction="none")(t, p),
                               ref_cosine(t, p, axis=1), rtol=1e-12)
    assert losses.cosine_similarity(np.zeros((1, 3)), np.ones((1, 3)))[0] == 0.0


# ---- gradients: the traced formulas' backward vs finite differences -------------------
def _float64_numpy():
    previous = fastnn.get_backend()
    fastnn.set_backend("numpy")
    fastnn.set_floatx("float64")
    return previous


def _regressor(loss, units, activation, seed=3):
    fastnn.set_seed(seed)
    model = models.Sequential([layers.Dense(6, activation="tanh", input_shape=(4,)),
                               layers.Dense(units, activation=activation)])
    model.compile(optimizer=optimizers.SGD(0.0), loss=loss)
    return model


# the output activation that keeps each loss's predictions in its domain
_ACTIVATION = {"binary": "sigmoid", "signs": None, "binary_logits": None, "onehot": "softmax",
               "onehot_logits": None, "distributions": "softmax", "counts": "relu",
               "real": None}


@pytest.mark.parametrize("loss, reference, kind", CASES, ids=IDS)
def test_gradient_matches_finite_differences(loss, reference, kind, rng):
    y_true, _ = _data(kind, rng, n=6)
    x = rng.normal(size=(6, 4))
    previous = _float64_numpy()
    try:
        model = _regressor(type(loss).from_config(loss.get_config()), y_true.shape[1],
                           _ACTIVATION[kind])
        if kind == "counts":
            # positive rates: a bias that keeps the relu's inputs > 0 (and differentiable)
            model.layers[-1].bias.assign(np.full(y_true.shape[1], 3.0))
        ours = model_gradient(model, x, y_true)
        numeric = model_numeric_gradient(model, x, y_true)
    finally:
        fastnn.set_floatx("float32")
        fastnn.set_backend(previous)
    assert np.abs(ours).max() > 1e-6          # a gradient that is there
    np.testing.assert_allclose(ours, numeric, rtol=1e-5, atol=1e-8)


def test_log_cosh_gradient_is_zero_at_a_perfect_prediction():
    previous = _float64_numpy()
    try:
        fastnn.set_seed(0)
        model = models.Sequential([layers.Dense(2, input_shape=(3,))])
        model.compile(optimizer=optimizers.SGD(0.0), loss="log_cosh")
        x = np.random.default_rng(0).normal(size=(5, 3))
        grad = model_gradient(model, x, model.predict(x, verbose=0))
    finally:
        fastnn.set_floatx("float32")
        fastnn.set_backend(previous)
    np.testing.assert_array_equal(grad, 0.0)


# ---- each loss trains ----------------------------------------------------------------------
def _toy_problem(kind, rng, n=96):
    x = rng.normal(size=(n, 4)).astype(np.float32)
    score = x[:, 0] - 0.5 * x[:, 1]
    classes = np.digitize(score, [-0.5, 0.5])
    if kind in ("binary", "binary_logits"):
        return x, (score > 0).astype(np.float32)[:, None]
    if kind == "signs":
        return x, np.where(score > 0, 1.0, -1.0).astype(np.float32)[:, None]
    if kind in ("onehot", "onehot_logits"):
        return x, np.eye(3, dtype=np.float32)[classes]
    if kind == "distributions":
        return x, (0.8 * np.eye(3)[classes] + 0.2 / 3).astype(np.float32)
    if kind == "counts":
        return x, np.exp(0.5 * score).astype(np.float32)[:, None]
    return x, np.stack([score, x[:, 2]], axis=1).astype(np.float32)


@pytest.mark.parametrize("loss, reference, kind", CASES, ids=IDS)
def test_a_model_learns_with_each_loss(loss, reference, kind, backend):
    rng = np.random.default_rng(11)
    x, y = _toy_problem(kind, rng)
    if isinstance(loss, losses.CategoricalFocalCrossentropy) and loss.alpha != 0.25:
        # its five per-class alphas do not fit the toy problem's three classes
        loss = losses.CategoricalFocalCrossentropy(from_logits=True, label_smoothing=0.2)
    fastnn.set_seed(2)
    model = models.Sequential([layers.Dense(16, activation="tanh", input_shape=(4,)),
                               layers.Dense(y.shape[1], activation=_ACTIVATION[kind])])
    if kind == "counts":
        model.layers[-1].bias.assign(np.ones(1, np.float32))
    model.compile(optimizer=optimizers.Adam(0.02), loss=type(loss).from_config(loss.get_config()))
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert np.isfinite(after)
    assert after < before - 0.2 * abs(before) or after < before - 0.05


def test_compiled_and_numpy_backends_agree():
    rng = np.random.default_rng(4)
    x, y = _toy_problem("onehot", rng)
    results = []
    for name in ("numpy", "compiled"):
        previous = fastnn.get_backend()
        fastnn.set_backend(name)
        try:
            fastnn.set_seed(5)
            model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
            model.compile(optimizer="adam", loss="categorical_focal_crossentropy")
            model.fit(x, y, epochs=3, batch_size=32, verbose=0)
            results.append(model.get_weights()[0])
        finally:
            fastnn.set_backend(previous)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)


# ---- names, config, saving ------------------------------------------------------------------
@pytest.mark.parametrize("identifier, cls, name", [
    ("hinge", losses.Hinge, "hinge"), ("squared_hinge", losses.SquaredHinge, "squared_hinge"),
    ("categorical_hinge", losses.CategoricalHinge, "categorical_hinge"),
    ("kl_divergence", losses.KLDivergence, "kl_divergence"),
    ("kld", losses.KLDivergence, "kl_divergence"), ("KLD", losses.KLDivergence, "kl_divergence"),
    ("kullback_leibler_divergence", losses.KLDivergence, "kl_divergence"),
    ("poisson", losses.Poisson, "poisson"), ("log_cosh", losses.LogCosh, "log_cosh"),
    ("logcosh", losses.LogCosh, "log_cosh"),
    ("cosine_similarity", losses.CosineSimilarity, "cosine_similarity"),
    ("binary_focal_crossentropy", losses.BinaryFocalCrossentropy, "binary_focal_crossentropy"),
    ("categorical_focal_crossentropy", losses.CategoricalFocalCrossentropy,
     "categorical_focal_crossentropy"),
    ("BinaryFocalCrossentropy", losses.BinaryFocalCrossentropy, "binary_focal_crossentropy"),
])
def test_keras_names(identifier, cls, name):
    loss = losses.get(identifier)
    assert type(loss) is cls and loss.name == name and loss.reduction == "sum_over_batch_size"


def test_functions_are_exported_and_resolve_to_their_classes(rng):
    for fn, cls in ((losses.hinge, losses.Hinge), (losses.kld, losses.KLDivergence),
                    (losses.kl_divergence, losses.KLDivergence), (losses.logcosh, losses.LogCosh),
                    (losses.cosine_similarity, losses.CosineSimilarity),
                    (losses.binary_focal_crossentropy, losses.BinaryFocalCrossentropy)):
        assert type(losses.get(fn)) is cls
    t, p = _data("distributions", rng)
    np.testing.assert_allclose(losses.kl_divergence(t, p), ref_kld(t, p), rtol=1e-12)


def test_defaults_and_config_round_trip():
    focal = losses.BinaryFocalCrossentropy()
    assert (focal.apply_class_balancing, focal.alpha, focal.gamma, focal.from_logits,
            focal.label_smoothing, focal.axis) == (False, 0.25, 2.0, False, 0.0, -1)
    custom = losses.CategoricalFocalCrossentropy(alpha=[0.5, 0.5], gamma=1.0, from_logits=True,
                                                 label_smoothing=0.1, reduction="sum", name="cf")
    again = losses.deserialize(losses.serialize(custom))
    assert again.get_config() == custom.get_config()
    assert again.name == "cf" and again.reduction == "sum" and again.alpha == [0.5, 0.5]
    assert losses.deserialize(losses.serialize(losses.CosineSimilarity(axis=1))).axis == 1
    with pytest.raises(ValueError, match="alpha"):
        losses.BinaryFocalCrossentropy(alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        losses.CategoricalFocalCrossentropy(gamma=-1)


@pytest.mark.parametrize("loss", ["kld", "hinge", losses.BinaryFocalCrossentropy(gamma=1.0),
                                  losses.CosineSimilarity(axis=-1), losses.log_cosh])
def test_a_compiled_model_with_the_loss_saves_and_loads(loss, tmp_path):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = (rng.uniform(size=(20, 2)) > 0.5).astype(np.float32)
    fastnn.set_seed(1)
    model = models.Sequential([layers.Dense(2, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    assert type(loaded.loss) is type(losses.get(loss))
    assert loaded.loss.get_config() == losses.get(loss).get_config()
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0),
                                                             rel=1e-6)
