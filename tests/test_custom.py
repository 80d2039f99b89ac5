"""Layers, models, losses and metrics of your own, as Keras users write them:
traced into the graph, trained, saved by name and loaded with custom_objects."""
import numpy as np
import pytest

import fastnn
import fastnn as keras
from fastnn import layers, losses, metrics, models, ops, optimizers
from testing_utils import model_gradient, model_numeric_gradient


# ---- the issue's example, verbatim ----------------------------------------------------
class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = ops.arange(start=0, stop=ops.shape(x)[-1], step=1)
        return self.token_emb(x) + self.pos_emb(positions)


class Scale(layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=True)

    def call(self, x):
        return x * self.w


def rmse(y_true, y_pred):
    return ops.sqrt(ops.mean(ops.square(y_true - y_pred), axis=-1))


def sequence_regressor(maxlen=6, vocab=20, dim=8):
    tokens = keras.Input(shape=(maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab, dim)(tokens)
    x = layers.GlobalAveragePooling1D()(x)
    x = Scale()(layers.Dense(3)(x))
    return keras.Model(tokens, x)


def token_data(n=64, maxlen=6, vocab=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, size=(n, maxlen))
    y = np.stack([(x < 5).mean(1), (x > 15).mean(1), x[:, 0] / vocab], axis=1)
    return x, y.astype(np.float32)


def test_the_issue_example_trains_saves_and_loads(backend, tmp_path):
    fastnn.set_seed(0)
    x, y = token_data()
    model = sequence_regressor()
    model.compile(optimizer="adam", loss=rmse, metrics=["mae", rmse])
    emb = model.layers[1]
    assert [w.name for w in emb.weights] == ["embeddings", "embeddings"]
    pos_before = emb.pos_emb.get_weights()[0].copy()
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert list(history.history) == ["loss", "mae", "rmse"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(history.history["rmse"], history.history["loss"], rtol=1e-5)
    assert not np.array_equal(pos_before, emb.pos_emb.get_weights()[0])  # positions trained
    model.save(tmp_path / "m.fnn")
    with pytest.raises(ValueError, match="unknown layer class 'TokenAndPositionEmbedding'"):
        models.load_model(tmp_path / "m.fnn")
    with pytest.raises(ValueError, match="unknown function 'rmse'.*custom_objects"):
        models.load_model(tmp_path / "m.fnn", custom_objects={
            "TokenAndPositionEmbedding": TokenAndPositionEmbedding, "Scale": Scale})
    loaded = models.load_model(tmp_path / "m.fnn", custom_objects={
        "TokenAndPositionEmbedding": TokenAndPositionEmbedding, "Scale": Scale, "rmse": rmse})
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, return_dict=True, verbose=0) == \
        model.evaluate(x, y, return_dict=True, verbose=0)
    for m in (model, loaded):
        fastnn.set_seed(1)
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_custom_layer_gradients_match_finite_differences():
    previous = fastnn.get_backend()
    fastnn.set_backend("numpy")
    fastnn.set_floatx("float64")
    try:
        fastnn.set_seed(2)
        inputs = keras.Input(shape=(4,))
        h = Scale()(layers.Dense(3, activation="tanh")(inputs))
        out = ResidualGate()(h)
        model = keras.Model(inputs, out)
        model.compile(optimizer=optimizers.SGD(0.0), loss=rmse)
        rng = np.random.default_rng(2)
        x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
        np.testing.assert_allclose(model_gradient(model, x, y),
                                   model_numeric_gradient(model, x, y), rtol=1e-6, atol=1e-8)
    finally:
        fastnn.set_floatx("float32")
        fastnn.set_backend(previous)


class ResidualGate(layers.Layer):
    """Exercises weights read twice, broadcasting, slicing, reductions and softmax."""

    def build(self, input_shape):
        self.gate = self.add_weight(shape=(1, input_shape[-1]), initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")

    def call(self, x):
        weights = ops.softmax(x * self.gate, axis=-1)
        centred = x - ops.mean(x, axis=-1, keepdims=True) + self.bias
        first = x[:, :1] * self.gate[:, 1:2]
        return ops.sigmoid(self.gate) * centred + weights * ops.exp(-ops.square(x)) + first


def test_a_custom_layer_with_the_same_ops_trains_bitwise_like_builtin_layers(backend):
    class Relu(layers.Layer):
        def call(self, x):
            return ops.relu(x)

    class Residual(layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(units)

        def call(self, x):
            return x + self.dense(x)

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((48, 5)).astype(np.float32), rng.standard_normal((48, 5))
    results = []
    for custom in (True, False):
        fastnn.set_seed(3)
        inputs = keras.Input(shape=(5,))
        h = layers.Dense(5)(inputs)
        if custom:
            h = Residual(5)(Relu()(h))
        else:
            h = layers.Activation("relu")(h)
            h = layers.add([h, layers.Dense(5)(h)])
        model = keras.Model(inputs, h)
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@keras.saving.register_keras_serializable(package="Tests")
class TwoTower(keras.Model):
    def __init__(self, hidden=8, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.left = layers.Dense(hidden, activation="relu")
        self.right = layers.Dense(hidden, activation="tanh")
        self.dropout = layers.Dropout(0.2)
        self.head = layers.Dense(1)

    def call(self, inputs, training=None):
        a, b = inputs
        merged = ops.concatenate([self.left(a), self.right(b)], axis=-1)
        return self.head(self.dropout(merged, training=training))


def test_subclassed_model_trains_saves_and_loads(backend, tmp_path):
    fastnn.set_seed(4)
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    y = a[:, :1] - b[:, :1]
    model = TwoTower(hidden=6, name="towers")
    assert not model.built and model.layers == [model.left, model.right, model.dropout,
                                                model.head]
    model.compile(optimizer="adam", loss="mse")
    model.fit([a, b], y, epochs=3, verbose=0)
    assert model.built and model.count_params() == 3 * 6 + 6 + 2 * 6 + 6 + 12 + 1
    assert model.get_config() == {"name": "towers", "trainable": True, "dtype": "float32",
                                  "hidden": 6}
    model.save(tmp_path / "t.fnn")
    loaded = models.load_model(tmp_path / "t.fnn")        # registered: no custom_objects
    assert type(loaded) is TwoTower and loaded.hidden == 6
    np.testing.assert_array_equal(loaded.predict([a, b], verbose=0),
                                  model.predict([a, b], verbose=0))


def test_loss_subclass_with_reduction_and_sample_weight(backend):
    class WeightedSquares(losses.Loss):
        def __init__(self, scale=2.0, **kwargs):
            super().__init__(**kwargs)
            self.scale = scale

        def call(self, y_true, y_pred):
            return self.scale * ops.sum(ops.square(y_true - y_pred), axis=-1)

        def get_config(self):
            return {**super().get_config(), "scale": self.scale}

    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    y = rng.standard_normal((20, 2)).astype(np.float32)
    w = rng.uniform(0.0, 2.0, 20)
    fastnn.set_seed(5)
    model = models.Sequential([layers.Dense(2, input_shape=(3,))])
    for reduction, expected in (("sum_over_batch_size", lambda v: (v * w).sum() / v.size),
                                ("sum", lambda v: (v * w).sum()),
                                ("mean_with_sample_weight", lambda v: (v * w).sum() / w.sum())):
        model.compile(optimizer="sgd", loss=WeightedSquares(reduction=reduction))
        values = 2.0 * ((y - model.predict(x, verbose=0)) ** 2).sum(-1)
        got = model.evaluate(x, y, sample_weight=w, verbose=0, batch_size=20)
        assert got == pytest.approx(expected(values), rel=1e-5)
        assert WeightedSquares(reduction=reduction)(y, model.predict(x, verbose=0), w) == \
            pytest.approx(expected(values), rel=1e-5)


def test_metric_subclass_with_state_and_metric_functions(backend):
    class MeanAbsoluteMax(metrics.Metric):
        def __init__(self, name="mean_abs_max", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_weight(name="total", initializer="zeros")
            self.count = self.add_weight(name="count", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(np.abs(y_pred).max(axis=-1).sum())
            self.count.assign_add(len(y_pred))

        def result(self):
            return self.total / self.count

    def mean_prediction(y_true, y_pred):
        return ops.mean(y_pred, axis=-1)

    rng = np.random.default_rng(6)
    x = rng.standard_normal((30, 3)).astype(np.float32)
    y = rng.standard_normal((30, 2)).astype(np.float32)
    fastnn.set_seed(6)
    model = models.Sequential([layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse", metrics=[MeanAbsoluteMax(), mean_prediction])
    logs = model.evaluate(x, y, batch_size=7, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)
    assert logs["mean_abs_max"] == pytest.approx(np.abs(pred).max(-1).mean(), rel=1e-5)
    assert logs["mean_prediction"] == pytest.approx(pred.mean(), rel=1e-5)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert set(history.history) == {"loss", "mean_abs_max", "mean_prediction"}


def test_errors_of_traced_code_say_what_to_do():
    class Branchy(layers.Layer):
        def call(self, x, training=None):
            if training:
                return x * 2.0
            return x

    class DataDependent(layers.Layer):
        def call(self, x):
            return x if ops.sum(x) > 0 else -x

    inputs = keras.Input(shape=(3,))
    with pytest.raises(TypeError, match="training=training.*layer 'branchy'"):
        Branchy()(inputs)
    with pytest.raises(TypeError, match="ops.where.*layer 'data_dependent'"):
        DataDependent()(inputs)
    with pytest.raises(ValueError, match=r"cannot be broadcast.*\(in the call\(\) of layer"):
        BadShapes()(inputs)
    model = models.Sequential([layers.Dense(3, input_shape=(3,))])

    def argmax_loss(y_true, y_pred):
        return ops.cast(ops.argmax(y_pred, axis=-1), "float32") - y_true[:, 0]

    model.compile(optimizer="sgd", loss=argmax_loss)
    with pytest.raises(ValueError, match="no gradient.*stop_gradient"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)


class BadShapes(layers.Layer):
    def call(self, x):
        return x + ops.ones((4,))


@pytest.mark.skipif(not __import__("importlib").util.find_spec("torch"), reason="needs torch")
@pytest.mark.torch_oracle
def test_custom_layer_and_loss_give_pytorchs_gradients(rng):
    import torch
    previous = fastnn.get_backend()
    fastnn.set_backend("numpy")
    fastnn.set_floatx("float64")
    try:
        fastnn.set_seed(7)
        inputs = keras.Input(shape=(4,))
        out = ResidualGate()(Scale()(inputs))
        model = keras.Model(inputs, out)
        model.compile(optimizer=optimizers.SGD(0.0), loss=rmse)
        x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
        ours = model_gradient(model, x, y)
        scale_w, gate, bias = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    finally:
        fastnn.set_floatx("float32")
        fastnn.set_backend(previous)
    xt = torch.tensor(x) * scale_w
    weights = torch.softmax(xt * gate, dim=-1)
    centred = xt - xt.mean(dim=-1, keepdim=True) + bias
    pred = torch.sigmoid(gate) * centred + weights * torch.exp(-xt ** 2) + xt[:, :1] * gate[:, 1:2]
    loss = torch.sqrt(((torch.tensor(y) - pred) ** 2).mean(dim=-1)).mean()
    loss.backward()
    theirs = np.concatenate([p.grad.numpy().reshape(-1) for p in (scale_w, gate, bias)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_an_overridden_get_config_gets_only_the_base_keys_from_super():
    class Scaled(layers.Layer):
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

    class Described(Scaled):
        def get_config(self):
            return {**super().get_config(), "scale": self.factor}

    assert Scaled(2, name="s").get_config() == {"name": "s", "trainable": True,
                                                "dtype": "float32", "factor": 2}
    # Keras' rule: a class that writes get_config says what its config is
    assert Described(3, name="d").get_config() == {"name": "d", "trainable": True,
                                                   "dtype": "float32", "scale": 3}
