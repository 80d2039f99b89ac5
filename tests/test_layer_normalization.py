"""LayerNormalization and RMSNormalization as layers: Keras' formulas, weights
and options, every gradient by finite differences (float64, NumPy backend),
PyTorch's LayerNorm / RMSNorm as an oracle, masks and saving."""
import numpy as np
import pytest

import fastnn as keras
from fastnn import layers

from testing_utils import model_gradient, model_numeric_gradient


def _layer_norm(x, axes, gamma=None, beta=None, epsilon=1e-3):
    mean = x.mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + epsilon)
    return y * (1 if gamma is None else gamma) + (0 if beta is None else beta)


@pytest.mark.parametrize("axis,axes", [(-1, (2,)), (1, (1,)), ([1, 2], (1, 2)), ([-2, -1], (1, 2))])
def test_layer_normalization_matches_kerass_formula(backend, rng, axis, axes):
    x = (rng.normal(size=(3, 4, 5)) * 2 + 3).astype(np.float32)
    layer = layers.LayerNormalization(axis=axis, gamma_initializer="random_uniform",
                                      beta_initializer="random_uniform")
    y = layer(x)
    gamma, beta = (w.reshape(tuple(x.shape[a] if a in axes else 1 for a in range(3)))
                   for w in layer.get_weights())
    assert layer.gamma.shape == tuple(x.shape[a] for a in axes)
    np.testing.assert_allclose(y, _layer_norm(x.astype(np.float64), axes, gamma, beta),
                               rtol=1e-5, atol=1e-5)


def test_options_weights_and_config():
    layer = layers.LayerNormalization(epsilon=1e-5, center=False)
    layer(np.ones((2, 6), np.float32))
    assert [w.name for w in layer.weights] == ["gamma"]
    both = layers.LayerNormalization()
    both(np.ones((2, 6), np.float32))
    assert [w.name for w in both.weights] == ["gamma", "beta"]
    config = layers.LayerNormalization(axis=[1, 2], epsilon=1e-5, scale=False).get_config()
    assert config["axis"] == [1, 2] and config["epsilon"] == 1e-5 and config["scale"] is False
    assert layers.LayerNormalization.from_config(config).get_config() == config
    rms = layers.RMSNormalization(epsilon=1e-5)
    rms(np.ones((2, 6), np.float32))
    assert [w.name for w in rms.weights] == ["scale"] and rms.scale is rms.weights[0]
    assert rms.get_config()["epsilon"] == 1e-5


def test_rms_normalization_matches_kerass_formula(backend, rng):
    x = rng.normal(size=(3, 7, 9)).astype(np.float32)
    layer = layers.RMSNormalization()
    y = layer(x)
    np.testing.assert_allclose(y, x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True)
                                               + 1e-6), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: layers.LayerNormalization(dtype="float64"),
    lambda: layers.LayerNormalization(axis=1, center=False, dtype="float64"),
    lambda: layers.LayerNormalization(axis=[1, 2], scale=False, dtype="float64"),
    lambda: layers.RMSNormalization(dtype="float64"),
])
def test_gradients_match_finite_differences(rng, make):
    keras.set_backend("numpy")
    try:
        keras.utils.set_random_seed(1)
        inputs = keras.Input((4, 5), dtype="float64")
        h = layers.Dense(5, activation="tanh", dtype="float64")(inputs)
        norm = make()
        h = norm(h)
        model = keras.Model(inputs, layers.Dense(3, dtype="float64")(h))
        model.compile(optimizer="sgd", loss="mse")
        for w in norm.weights:                       # not the identity: gradients show more
            w.assign(rng.uniform(0.5, 1.5, size=w.shape))
        x, y = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 3))
        np.testing.assert_allclose(model_gradient(model, x, y),
                                   model_numeric_gradient(model, x, y), rtol=1e-5, atol=1e-8)
    finally:
        keras.set_backend("compiled")


def test_mask_passes_through_layer_normalization(rng):
    inputs = keras.Input((5,), dtype="int32")
    h = layers.Embedding(9, 4, mask_zero=True)(inputs)
    h = layers.LayerNormalization()(h)
    out = layers.GlobalAveragePooling1D()(h)
    model = keras.Model(inputs, out)
    x = np.array([[0, 0, 3, 4, 5]])
    table = model.layers[1].get_weights()[0]
    want = _layer_norm(table[x[0, 2:]].astype(np.float64), (1,)).mean(axis=0)
    np.testing.assert_allclose(model.predict(x, verbose=0)[0], want, rtol=1e-5, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="RMSNormalization"):
        layers.LayerNormalization(rms_scaling=True)
    with pytest.raises(ValueError, match="batch axis"):
        layers.LayerNormalization(axis=0)(keras.Input((3,)))
    with pytest.raises(ValueError, match="epsilon"):
        layers.LayerNormalization(epsilon=0)
    layer = layers.LayerNormalization()
    layer(keras.Input((4, 3)))
    with pytest.raises(ValueError, match="normalises features"):
        layer(keras.Input((4, 5)))


@pytest.mark.torch_oracle
def test_pytorch_layer_norm_and_rms_norm_agree(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(4, 6, 10))
    for fastnn_layer, torch_fn in [
            (layers.LayerNormalization(epsilon=1e-5, dtype="float64",
                                       gamma_initializer="random_uniform",
                                       beta_initializer="random_uniform"),
             lambda t, w: torch.nn.functional.layer_norm(t, (10,), w[0], w[1], eps=1e-5)),
            (layers.RMSNormalization(dtype="float64"),
             lambda t, w: torch.nn.functional.rms_norm(t, (10,), w[0], eps=1e-6))]:
        keras.set_backend("numpy")
        try:
            fastnn_layer(x)
            inputs = keras.Input((6, 10), dtype="float64")
            model = keras.Model(inputs, fastnn_layer(inputs))
            model.compile(optimizer="sgd", loss="mse")
            y = rng.normal(size=x.shape)
            grads = model_gradient(model, x, y)
        finally:
            keras.set_backend("compiled")
        weights = [torch.tensor(w, requires_grad=True) for w in fastnn_layer.get_weights()]
        tx = torch.tensor(x)
        out = torch_fn(tx, weights)
        np.testing.assert_allclose(fastnn_layer(x), out.detach().numpy(), rtol=1e-10, atol=1e-12)
        ((out - torch.tensor(y)) ** 2).mean().backward()
        np.testing.assert_allclose(grads, np.concatenate([w.grad.numpy().ravel()
                                                          for w in weights]),
                                   rtol=1e-8, atol=1e-12)
