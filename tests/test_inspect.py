"""fastnn.inspect: layer activations and input gradients (checked by finite differences)."""
import numpy as np
import pytest

import fastnn
from fastnn import inspect, layers, models
from testing_utils import numeric_grad


def classifier(dtype="float64"):
    fastnn.set_seed(0)
    model = models.Sequential([
        layers.Dense(7, activation="tanh", input_shape=(5,), dtype=dtype),
        layers.Dense(4, activation="softmax", dtype=dtype),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_activations_lists_every_layer_in_order(backend):
    model = classifier("float32")
    x = np.random.default_rng(0).standard_normal((300, 5)).astype(np.float32)
    acts = inspect.activations(model, x)
    assert list(acts) == [layer.name for layer in model.layers]
    assert acts[model.layers[0].name].shape == (300, 7)
    np.testing.assert_allclose(acts[model.layers[-1].name], model.predict(x), rtol=1e-6)


def test_target_gradient_matches_finite_differences(backend):
    model = classifier()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5))
    target = rng.integers(0, 4, size=6)
    grads = inspect.input_gradients(model, x, target=target)
    assert grads.shape == x.shape
    for i in range(6):
        sample = x[i:i + 1].copy()
        numeric = numeric_grad(lambda: model.predict(sample)[0, target[i]], sample)
        np.testing.assert_allclose(grads[i:i + 1], numeric, rtol=1e-5, atol=1e-8)


def test_default_is_top_unit_and_loss_gradient_is_per_sample(backend):
    model = classifier()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 5))
    top = model.predict(x).argmax(axis=1)
    np.testing.assert_allclose(inspect.input_gradients(model, x),
                               inspect.input_gradients(model, x, target=top))
    labels = rng.integers(0, 4, size=5)
    grads = inspect.input_gradients(model, x, y=labels)
    for i in range(5):
        sample = x[i:i + 1].copy()
        numeric = numeric_grad(lambda: model.evaluate(sample, labels[i:i + 1], verbose=0), sample)
        np.testing.assert_allclose(grads[i:i + 1], numeric, rtol=1e-5, atol=1e-8)


def test_inspection_leaves_training_state_alone(backend):
    model = classifier("float32")
    x = np.random.default_rng(3).standard_normal((20, 5)).astype(np.float32)
    labels = np.arange(20) % 4
    model.fit(x, labels, epochs=1, verbose=0)
    grads_before = model.buffers.grads.copy()
    weights = model.get_weights()
    inspect.input_gradients(model, x, y=labels)
    np.testing.assert_array_equal(model.buffers.grads, grads_before)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments():
    model = classifier()
    x = np.zeros((3, 5))
    with pytest.raises(ValueError, match="target"):
        inspect.input_gradients(model, x, target=4)
    with pytest.raises(ValueError, match="not both"):
        inspect.input_gradients(model, x, target=0, y=[0, 1, 2])
    with pytest.raises(ValueError, match=r"target must be an int or 3 ints"):
        inspect.input_gradients(model, x, target=[0, 1])
    with pytest.raises(ValueError, match=r"\(None, 5\)"):
        inspect.activations(model, np.zeros((3, 4)))


def two_input_graph():
    fastnn.set_seed(4)
    a = fastnn.Input(shape=(3,), dtype="float64", name="a")
    b = fastnn.Input(shape=(3,), dtype="float64", name="b")
    shared = layers.Dense(4, activation="tanh", name="shared", dtype="float64")
    merged = layers.multiply([shared(a), shared(b)], name="mul", dtype="float64")
    out = layers.Dense(2, activation="softmax", name="out", dtype="float64")(merged)
    model = fastnn.Model([a, b], out)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_activations_of_a_graph_name_every_call(backend):
    model = two_input_graph()
    rng = np.random.default_rng(4)
    xa, xb = rng.standard_normal((9, 3)), rng.standard_normal((9, 3))
    acts = inspect.activations(model, [xa, xb], batch_size=4)
    assert list(acts) == ["shared", "shared:1", "mul", "out"]
    np.testing.assert_allclose(acts["shared:1"], model.get_layer("shared")(xb), rtol=1e-12)
    np.testing.assert_allclose(acts["mul"], acts["shared"] * acts["shared:1"], rtol=1e-12)
    np.testing.assert_allclose(acts["out"], model.predict([xa, xb], verbose=0), rtol=1e-12)


def test_input_gradients_of_every_input_match_finite_differences(backend):
    model = two_input_graph()
    rng = np.random.default_rng(5)
    xa, xb = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    labels = rng.integers(0, 2, size=4)
    for kwargs in ({"target": 1}, {"y": labels}):
        ga, gb = inspect.input_gradients(model, [xa, xb], **kwargs)
        for i in range(4):
            sa, sb = xa[i:i + 1].copy(), xb[i:i + 1].copy()
            if "y" in kwargs:
                value = lambda: model.evaluate([sa, sb], labels[i:i + 1], verbose=0)  # noqa: E731
            else:
                value = lambda: model.predict([sa, sb], verbose=0)[0, 1]  # noqa: E731
            np.testing.assert_allclose(ga[i:i + 1], numeric_grad(value, sa), rtol=1e-5,
                                       atol=1e-8)
            np.testing.assert_allclose(gb[i:i + 1], numeric_grad(value, sb), rtol=1e-5,
                                       atol=1e-8)
