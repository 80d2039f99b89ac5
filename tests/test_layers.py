"""Layers, initializers, activations, losses and metrics as Keras documents them."""
import numpy as np
import pytest

import fastnn
from fastnn import activations, initializers, layers, losses, metrics, utils
from fastnn.layers.base import Workspace


def test_dense_forward_backward_formula(ops, rng):
    dense = layers.Dense(5, activation="tanh", input_shape=(7,))
    dense.build((7,))
    kernel, bias = dense.get_weights()
    assert kernel.shape == (7, 5) and bias.shape == (5,)
    x = rng.standard_normal((11, 7)).astype(np.float32)
    np.testing.assert_allclose(dense.forward(ops, x), np.tanh(x @ kernel + bias), rtol=1e-5,
                               atol=1e-6)


def test_dense_on_rank3_inputs(ops, rng):
    dense = layers.Dense(4)
    dense.build((3, 6))
    assert dense.output_shape == (3, 4)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(dense.forward(ops, x), x @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_workspace_reuses_prefixes():
    ws = Workspace()
    big = ws.buffer("y", (8, 3), np.float32)
    small = ws.buffer("y", (5, 3), np.float32)
    assert small.base is big or np.shares_memory(small, big)
    assert small.flags.c_contiguous and small.shape == (5, 3)
    assert ws.buffer("y", (9, 3), np.float32).shape == (9, 3)


@pytest.mark.parametrize("name,shape,expected_std", [
    ("glorot_uniform", (300, 200), np.sqrt(2 / 500)),
    ("glorot_normal", (300, 200), np.sqrt(2 / 500)),
    ("he_normal", (300, 200), np.sqrt(2 / 300)),
    ("he_uniform", (300, 200), np.sqrt(2 / 300)),
    ("he_normal", (3, 3, 16, 32), np.sqrt(2 / (9 * 16))),
])
def test_variance_scaling_initializers(name, shape, expected_std):
    fastnn.set_seed(0)
    values = initializers.get(name)(shape)
    assert values.dtype == np.float32 and values.shape == shape
    assert values.std() == pytest.approx(expected_std, rel=0.05)
    if "normal" in name:
        assert np.abs(values).max() <= 2 * expected_std / 0.87962566103423978 * 1.0001


def test_random_normal_and_truncated_normal():
    fastnn.set_seed(0)
    normal = initializers.get("random_normal")((400, 300))
    assert normal.std() == pytest.approx(0.05, rel=0.02) and abs(normal.mean()) < 1e-3
    truncated = initializers.TruncatedNormal(mean=1.0, stddev=0.02)((400, 300))
    assert np.abs(truncated - 1.0).max() <= 0.04 * 1.0001
    assert truncated.std() == pytest.approx(0.02 * 0.87962566103423978, rel=0.02)
    spec = initializers.serialize(initializers.TruncatedNormal(stddev=0.02))
    assert spec == {"class_name": "TruncatedNormal", "config": {"mean": 0.0, "stddev": 0.02}}
    assert initializers.get(spec).stddev == 0.02


def test_orthogonal_zeros_ones():
    fastnn.set_seed(0)
    q = initializers.get("orthogonal")((6, 4))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    wide = initializers.Orthogonal(gain=2.0)((3, 5))
    np.testing.assert_allclose(wide @ wide.T, 4 * np.eye(3), atol=1e-5)
    assert not initializers.get("zeros")((2,)).any()
    assert initializers.get("ones")((2,)).all()
    with pytest.raises(ValueError, match="initializer"):
        initializers.get("lecun")


def test_initializers_serialize_with_their_options():
    assert initializers.serialize(initializers.get("he_normal")) == "he_normal"
    spec = initializers.serialize(initializers.Orthogonal(gain=2.5))
    assert spec == {"class_name": "Orthogonal", "config": {"gain": 2.5}}
    assert initializers.get(spec).gain == 2.5
    dense = layers.Dense(3, kernel_initializer=initializers.Orthogonal(gain=2.5))
    assert layers.Dense.from_config(dense.get_config()).kernel_initializer.gain == 2.5
    with pytest.raises(ValueError, match="unknown initializer"):
        initializers.get({"class_name": "os.system", "config": {}})

    class Custom(initializers.Initializer):
        def __call__(self, shape, dtype="float32"):
            return np.zeros(shape, dtype)
    with pytest.raises(ValueError, match="cannot be saved"):
        initializers.serialize(Custom())


def test_activation_functions_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(activations.relu(x), [0, 0, 0, 0.5, 2])
    np.testing.assert_allclose(activations.leaky_relu(x), [-0.4, -0.1, 0, 0.5, 2])
    np.testing.assert_allclose(activations.elu(x), [np.expm1(-2), np.expm1(-0.5), 0, 0.5, 2])
    np.testing.assert_allclose(activations.sigmoid(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(activations.gelu(np.array([1.0])), [0.8413447460685429])
    np.testing.assert_allclose(activations.swish(x), x / (1 + np.exp(-x)))
    np.testing.assert_allclose(activations.softmax(np.array([[1.0, 1.0]])), [[0.5, 0.5]])
    assert activations.get("relu") is activations.relu
    assert activations.name_of(None) == "linear" and activations.name_of(activations.tanh) == "tanh"
    with pytest.raises(ValueError, match="custom"):
        activations.get(lambda v: v)


def test_loss_objects_and_names():
    y_true = np.array([[1.0], [0.0]])
    y_pred = np.array([[0.5], [0.5]])
    assert losses.get("mse")(y_true, y_pred) == pytest.approx(0.25)
    assert losses.MeanAbsoluteError()(y_true, y_pred) == pytest.approx(0.5)
    assert losses.BinaryCrossentropy()(y_true, y_pred) == pytest.approx(np.log(2))
    assert losses.Huber(delta=0.1)(y_true, y_pred) == pytest.approx(0.1 * (0.5 - 0.05))
    assert losses.get("categorical_crossentropy").name == "categorical_crossentropy"
    spec = losses.serialize(losses.SparseCategoricalCrossentropy(from_logits=True))
    assert losses.deserialize(spec).from_logits is True
    with pytest.raises(ValueError):
        losses.Huber(delta=0)


def test_accuracy_resolution_follows_keras():
    def kernel(**kw):
        return metrics.get("accuracy", **kw).kernel
    assert kernel(sparse_targets=False, output_dim=1) == "binary_accuracy"
    assert kernel(sparse_targets=True, output_dim=10) == "sparse_categorical_accuracy"
    assert kernel(sparse_targets=False, output_dim=10) == "categorical_accuracy"
    assert metrics.get("acc", sparse_targets=False, output_dim=3).name == "acc"
    with pytest.raises(ValueError, match="metric"):
        metrics.get("area_under_nothing", sparse_targets=False, output_dim=1)


def test_metric_sums(ops):
    y_pred = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype=np.float32)
    onehot = np.array([[0, 1], [0, 1], [0, 1]], dtype=np.float32)
    assert ops.metric_sum("categorical_accuracy", y_pred, onehot) == 2
    assert ops.metric_sum("sparse_categorical_accuracy", y_pred, np.array([1, 0, 0])) == 2
    assert ops.metric_sum("binary_accuracy", y_pred, onehot) == pytest.approx(2.0)
    assert ops.metric_sum("mae", y_pred, onehot) == pytest.approx((0.1 + 0.8 + 0.3), rel=1e-6)


def test_to_categorical():
    out = utils.to_categorical([0, 2, 1])
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])
    assert out.dtype == np.float32
    assert utils.to_categorical(np.array([[1], [0]]), num_classes=4).shape == (2, 4)
    with pytest.raises(ValueError):
        utils.to_categorical([3], num_classes=2)
    with pytest.raises(ValueError):
        utils.to_categorical([-1])


def test_input_and_layer_config():
    inp = fastnn.Input(shape=(4,))
    assert inp.shape == (None, 4)
    dense = layers.Dense(3, activation="relu", name="d")
    config = dense.get_config()
    assert config["units"] == 3 and config["activation"] == "relu" and config["name"] == "d"
    clone = layers.Dense.from_config(config)
    assert clone.units == 3 and clone.activation == "relu"
    with pytest.raises(ValueError):
        layers.Reshape((0, 2))
    with pytest.raises(ValueError, match="cannot reshape"):
        layers.Reshape((5,)).compute_output_shape((2, 3))
    with pytest.raises(ValueError, match="input_shape"):
        layers.Dense(2, input_shape=(0,))


def test_automatic_names_are_unique():
    a, b = layers.Dense(1), layers.Dense(1)
    assert a.name != b.name and a.name.startswith("dense")
