"""Masks from Embedding(mask_zero=True) on per-token outputs: they pass through
Dense, reach the loss (the mean over kept tokens, Keras' apply_mask) and the
metrics (kept tokens only), and GlobalAveragePooling1D averages kept steps."""
import numpy as np
import pytest

import fastnn as keras
from fastnn import layers, models, ops

from testing_utils import model_gradient, model_numeric_gradient

VOCAB, T, CLASSES = 9, 6, 4


def _tokens(rng, n=5):
    x = rng.integers(1, VOCAB, size=(n, T))
    for i in range(n):
        x[i, : i % T] = 0                     # pre-padding, as pad_sequences gives
    return x


def _tagger(dtype="float32", seed=3):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((T,), dtype="int32")
    h = layers.Embedding(VOCAB, 5, mask_zero=True, dtype=dtype)(inputs)
    h = layers.Dense(7, activation="tanh", dtype=dtype)(h)
    outputs = layers.Dense(CLASSES, dtype=dtype)(h)
    return models.Model(inputs, outputs)


def _token_losses(logits, y):
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]


def test_per_token_loss_and_accuracy_average_the_kept_tokens(backend, rng):
    model = _tagger()
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x, y = _tokens(rng), rng.integers(0, CLASSES, size=(5, T))
    logits = model.predict(x, verbose=0).astype(np.float64)
    kept = x != 0
    loss, accuracy = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, _token_losses(logits, y)[kept].mean(), rtol=1e-5)
    np.testing.assert_allclose(accuracy, (logits.argmax(-1) == y)[kept].mean(), rtol=1e-6)
    # per-token sample weights multiply in; the divisor stays the kept-token count
    w = rng.uniform(0.5, 2.0, size=(5, T))
    loss_w, _ = model.evaluate(x, y, sample_weight=w, verbose=0)
    expected = (_token_losses(logits, y) * w)[kept].sum() / kept.sum()
    np.testing.assert_allclose(loss_w, expected, rtol=1e-5)


def test_a_traced_loss_and_a_function_metric_see_the_mask(rng):
    def token_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    def token_mae(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    model = _tagger()
    model.compile(optimizer="sgd", loss=token_mse, metrics=[token_mae])
    x = _tokens(rng)
    y = rng.normal(size=(5, T, CLASSES)).astype(np.float32)
    pred = model.predict(x, verbose=0).astype(np.float64)
    kept = x != 0
    loss, mae = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, ((y - pred) ** 2).mean(-1)[kept].mean(), rtol=1e-5)
    np.testing.assert_allclose(mae, np.abs(y - pred).mean(-1)[kept].mean(), rtol=1e-5)


def test_a_stateful_metric_gets_the_mask_as_its_sample_weight(rng):
    class KeptTokens(keras.metrics.Metric):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.total = self.add_weight(name="total")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(float(np.sum(sample_weight)))

        def result(self):
            return self.total.numpy()

    model = _tagger()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True),
                  metrics=[KeptTokens()])
    x = _tokens(rng)
    logs = model.evaluate(x, rng.integers(0, CLASSES, size=(5, T)), verbose=0,
                          return_dict=True)
    assert logs["kept_tokens"] == (x != 0).sum()


def test_a_fully_masked_batch_has_zero_loss(rng):
    model = _tagger()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    loss = model.evaluate(np.zeros((2, T), dtype=np.int64), np.zeros((2, T), dtype=np.int64),
                          verbose=0)
    assert loss == 0.0


def test_masked_token_gradient_matches_finite_differences(rng):
    keras.set_backend("numpy")
    try:
        model = _tagger("float64")
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
        x, y = _tokens(rng, 4), rng.integers(0, CLASSES, size=(4, T))
        np.testing.assert_allclose(model_gradient(model, x, y),
                                   model_numeric_gradient(model, x, y), rtol=1e-6, atol=1e-9)
    finally:
        keras.set_backend("compiled")


def _pooled(dtype="float32"):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((T,), dtype="int32")
    h = layers.Embedding(VOCAB, 3, mask_zero=True, dtype=dtype)(inputs)
    h = layers.GlobalAveragePooling1D(dtype=dtype)(h)
    return models.Model(inputs, layers.Dense(2, dtype=dtype)(h))


def test_global_average_pooling_1d_averages_the_kept_steps(backend, rng):
    model = _pooled()
    x = _tokens(rng)
    x[0] = 0                                   # nothing kept: 0 / 0, as Keras gives
    embedding, dense = model.layers[1], model.layers[3]
    table = embedding.get_weights()[0]
    pooled = np.array([table[row][row != 0].mean(axis=0) for row in x[1:]])
    expected = pooled @ dense.get_weights()[0] + dense.get_weights()[1]
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out[1:], expected, rtol=1e-5, atol=1e-6)
    assert np.isnan(out[0]).all()
    # without a mask it is the plain mean over every step
    plain = layers.GlobalAveragePooling1D()(table[x[1:]])
    np.testing.assert_allclose(plain, table[x[1:]].mean(axis=1), rtol=1e-6)


def test_masked_global_average_pooling_gradient_matches_finite_differences(rng):
    keras.set_backend("numpy")
    try:
        model = _pooled("float64")
        model.compile(optimizer="sgd", loss="mse")
        x = _tokens(rng, 5)[1:]
        y = rng.normal(size=(4, 2))
        np.testing.assert_allclose(model_gradient(model, x, y),
                                   model_numeric_gradient(model, x, y), rtol=1e-6, atol=1e-9)
    finally:
        keras.set_backend("compiled")


@pytest.mark.parametrize("reduction,scale", [("sum_over_batch_size", True), ("sum", False)])
def test_masked_weights_follow_keras_apply_mask(reduction, scale):
    from fastnn.run import masked_weights
    mask = np.array([[0, 1, 1], [1, 1, 1]], dtype=np.uint8)
    w = masked_weights(None, mask, reduction, np.dtype(np.float64))
    np.testing.assert_allclose(w, mask * (6 / 5 if scale else 1.0))
    per_sample = masked_weights(np.array([2.0, 3.0]), mask, reduction, np.dtype(np.float64))
    np.testing.assert_allclose(per_sample, w * np.array([[2.0], [3.0]]))
