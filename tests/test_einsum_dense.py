"""EinsumDense: Keras' shapes for kernel, bias and output, the product itself,
its gradient (finite differences, float64), saving, and errors."""
import numpy as np
import pytest

import fastnn as keras
from fastnn import layers

from testing_utils import model_gradient, model_numeric_gradient


@pytest.mark.parametrize("equation,output_shape,bias_axes,input_shape,kernel,bias,out", [
    # Keras' docstring examples
    ("ab,bc->ac", 64, "c", (32,), (32, 64), (64,), (None, 64)),
    ("abc,cd->abd", (None, 64), "d", (32, 128), (128, 64), (64,), (None, 32, 64)),
    ("...x,xy->...y", 64, "y", (32, 128), (128, 64), (64,), (None, 32, 64)),
    # MultiHeadAttention's projections
    ("abc,cde->abde", (None, 4, 8), "de", (7, 16), (16, 4, 8), (4, 8), (None, 7, 4, 8)),
    ("abcd,cde->abe", (None, 16), "e", (7, 4, 8), (4, 8, 16), (16,), (None, 7, 16)),
    # a bias over a leading output axis broadcasts over the later ones
    ("abc,cd->abd", (5, 3), "b", (5, 2), (2, 3), (5, 1), (None, 5, 3)),
    ("ab,bc->ac", 3, None, (4,), (4, 3), None, (None, 3)),
])
def test_shapes_follow_keras(equation, output_shape, bias_axes, input_shape, kernel, bias, out):
    layer = layers.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes)
    y = layer(keras.Input(input_shape))
    assert y.shape == out
    assert layer.kernel.shape == kernel
    assert (layer.bias is None and bias is None) or layer.bias.shape == bias
    assert [w.name for w in layer.weights] == ["kernel"] + (["bias"] if bias else [])


def test_computes_the_einsum_plus_bias_and_activation(backend, rng):
    layer = layers.EinsumDense("abc,cde->abde", output_shape=(None, 3, 5), bias_axes="de",
                               activation="relu", bias_initializer="random_normal")
    x = rng.normal(size=(2, 6, 7)).astype(np.float32)
    y = layer(x)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(y, np.maximum(np.einsum("abc,cde->abde", x, kernel) + bias, 0),
                               rtol=1e-5, atol=1e-6)


def test_glorot_takes_fans_over_the_kernels_input_and_output_axes():
    keras.utils.set_random_seed(0)
    layer = layers.EinsumDense("abc,cde->abde", output_shape=(None, 8, 64), bias_axes="de")
    layer(keras.Input((3, 32)))
    limit = np.sqrt(6.0 / (32 + 8 * 64))            # fan_in 32, fan_out 8 * 64
    kernel = layer.kernel.numpy()
    assert np.abs(kernel).max() <= limit
    np.testing.assert_allclose(kernel.std(), limit / np.sqrt(3), rtol=0.05)


def test_gradient_matches_finite_differences(rng):
    keras.set_backend("numpy")
    try:
        keras.utils.set_random_seed(2)
        inputs = keras.Input((4, 3), dtype="float64")
        h = layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de",
                               activation="tanh", dtype="float64")(inputs)
        out = layers.EinsumDense("abcd,cde->abe", output_shape=(None, 2), bias_axes="e",
                                 dtype="float64")(h)
        model = keras.Model(inputs, out)
        model.compile(optimizer="sgd", loss="mse")
        x, y = rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 4, 2))
        np.testing.assert_allclose(model_gradient(model, x, y),
                                   model_numeric_gradient(model, x, y), rtol=1e-6, atol=1e-9)
    finally:
        keras.set_backend("compiled")


def test_saves_and_loads(tmp_path, rng):
    inputs = keras.Input((5, 6))
    out = layers.EinsumDense("abc,cd->abd", output_shape=(None, 4), bias_axes="d",
                             activation="gelu")(inputs)
    model = keras.Model(inputs, out)
    x = rng.normal(size=(2, 5, 6)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[1].get_config() == model.layers[1].get_config()


@pytest.mark.parametrize("kwargs,shape,match", [
    (dict(equation="ab,bc", output_shape=3), (4,), "invalid equation"),
    (dict(equation="abc,cd->abd", output_shape=(None, 3)), (4,), "rank"),
    (dict(equation="ab,bc->ac", output_shape=(3, 2)), (4,), "does not match"),
    (dict(equation="ab,bc->ac", output_shape=3, bias_axes="z"), (4,), "bias axis"),
    (dict(equation="ab,bcx->ac", output_shape=3), (4,), "kernel axis 'x'"),
    (dict(equation="abc,cd->abd", output_shape=(5, 3)), (4, 2), "differ"),
])
def test_errors_name_the_problem(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        layers.EinsumDense(**kwargs)(keras.Input(shape))
