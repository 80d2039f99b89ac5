"""layers.BatchNormalization: Keras' weights and order, training vs inference,
the moving statistics after a step (by hand), frozen layers, channels-last
inputs of any rank, both backends, threads, configuration, bad arguments."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, models, optimizers
from fastnn.backend import get_ops
from fastnn.layers.base import Workspace
from testing_utils import on_threads


@pytest.fixture(autouse=True)
def restore_backend():
    previous = fastnn.get_backend()
    yield
    fastnn.set_backend(previous)


def by_hand(x, gamma, beta, mean, var, eps):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def random_bn(channels, input_shape, **kwargs):
    layer = layers.BatchNormalization(**kwargs)
    layer.build(input_shape)
    rng = np.random.default_rng(5)
    layer.set_weights([rng.uniform(0.5, 1.5, channels) if w.name != "beta"
                       else rng.standard_normal(channels) for w in layer.weights])
    return layer


@pytest.mark.parametrize("center, scale, names", [
    (True, True, ["gamma", "beta", "moving_mean", "moving_variance"]),
    (False, True, ["gamma", "moving_mean", "moving_variance"]),
    (True, False, ["beta", "moving_mean", "moving_variance"]),
    (False, False, ["moving_mean", "moving_variance"]),
])
def test_weights_in_keras_order_and_shapes(center, scale, names):
    model = models.Sequential([layers.Dense(6, input_shape=(3,)),
                               layers.BatchNormalization(center=center, scale=scale)])
    model.compile(optimizer="sgd", loss="mse")
    bn = model.layers[1]
    assert [w.name for w in bn.weights] == names
    values = bn.get_weights()
    assert [v.shape for v in values] == [(6,)] * len(names)
    np.testing.assert_array_equal(values[-2], 0)                  # moving mean starts at 0
    np.testing.assert_array_equal(values[-1], 1)                  # moving variance at 1
    assert [w.name for w in bn.non_trainable_weights][-2:] == ["moving_mean", "moving_variance"]
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 12" in lines[-1]
    # moving statistics stay outside the flat buffers (design decision 1)
    assert model.buffers.size == 3 * 6 + 6 + 6 * (int(center) + int(scale))


@pytest.mark.parametrize("input_shape", [(7,), (4, 5, 3), (2, 3)])
def test_training_uses_batch_statistics_and_inference_moving_ones(ops, input_shape):
    c = input_shape[-1]
    layer = random_bn(c, input_shape, epsilon=0.01)
    gamma, beta, mm, mv = (w.astype(np.float64) for w in layer.get_weights())
    x = np.random.default_rng(1).standard_normal((11,) + input_shape).astype(np.float32) * 3 + 1
    x64 = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    mean, var = x64.mean(axis=axes), x64.var(axis=axes)           # biased variance
    train = layer.forward(ops, x, training=True, ws=Workspace())
    np.testing.assert_allclose(train, by_hand(x64, gamma, beta, mean, var, 0.01), atol=2e-5)
    infer = layer.forward(ops, x, training=False)
    np.testing.assert_allclose(infer, by_hand(x64, gamma, beta, mm, mv, 0.01), atol=2e-5)
    assert train.shape == infer.shape == x.shape


def test_moving_statistics_after_one_step_by_hand(backend):
    x = np.random.default_rng(2).standard_normal((16, 4)).astype(np.float32) * 2 + 3
    y = np.zeros((16, 4), np.float32)
    model = models.Sequential([layers.BatchNormalization(momentum=0.9, input_shape=(4,))])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(x, y)
    x64 = x.astype(np.float64)
    _, _, mm, mv = model.get_weights()
    np.testing.assert_allclose(mm, 0.9 * 0.0 + 0.1 * x64.mean(axis=0), rtol=1e-6)
    # Keras 3 moves the variance with the biased batch variance
    np.testing.assert_allclose(mv, 0.9 * 1.0 + 0.1 * x64.var(axis=0), rtol=1e-6)
    model.predict(x)                                              # inference: no change
    np.testing.assert_array_equal(model.get_weights()[2], mm)


def test_frozen_batchnorm_runs_in_inference_mode_and_fit_leaves_it_alone(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 5)).astype(np.float32) * 2 + 1
    y = rng.standard_normal((64, 1)).astype(np.float32)
    fastnn.set_seed(1)
    model = models.Sequential([layers.Dense(8, input_shape=(5,)), layers.BatchNormalization(),
                               layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    bn = model.layers[1]
    bn.trainable = False
    before = bn.get_weights()
    first = model.layers[0].get_weights()
    ws = Workspace()
    h = model.layers[0].forward(get_ops(backend), x, training=False)
    np.testing.assert_array_equal(bn.forward(get_ops(backend), h, training=True, ws=ws),
                                  bn.forward(get_ops(backend), h, training=False))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], model.layers[0].get_weights()[0])  # the rest trained


def test_backends_agree_on_a_training_run():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((96, 3, 5)).astype(np.float32)
    y = rng.standard_normal((96, 1)).astype(np.float32)
    results = []
    for name in ("numpy", "compiled"):
        fastnn.set_backend(name)
        fastnn.set_seed(2)
        model = models.Sequential([layers.Dense(7, input_shape=(3, 5)),
                                   layers.BatchNormalization(), layers.Flatten(),
                                   layers.Dropout(0.2), layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, epochs=2, batch_size=32, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend_name", ["numpy", "compiled"])
def test_model_with_dropout_and_batchnorm_learns(backend_name):
    fastnn.set_backend(backend_name)
    fastnn.set_seed(0)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((400, 6)) * [1, 3, 1, 1, 1, 1] + 5).astype(np.float32)
    labels = ((x[:, 0] - 5) + (x[:, 1] - 5) / 3 > 0).astype(np.int64)
    # momentum 0.9: with Keras' 0.99 the moving statistics of 325 steps still
    # lag the trained weights, and inference (which uses them) trails training.
    model = models.Sequential([layers.Dense(32, input_shape=(6,)),
                               layers.BatchNormalization(momentum=0.9),
                               layers.Activation("relu"), layers.Dropout(0.2),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, labels, epochs=25, batch_size=32, verbose=0)
    assert model.evaluate(x, labels, verbose=0)[1] > 0.9


def test_training_is_bitwise_equal_for_1_and_2_threads():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((600, 4, 10)).astype(np.float32)
    y = rng.standard_normal((600, 1)).astype(np.float32)
    fastnn.set_backend("compiled")
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            fastnn.set_seed(3)
            # BN sees (200*4, 300) per step: parallel reductions over several chunks
            model = models.Sequential([layers.Dense(300, input_shape=(4, 10)),
                                       layers.BatchNormalization(), layers.Dropout(0.3),
                                       layers.Flatten(), layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y, epochs=2, batch_size=200, verbose=0)
            results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_float64_model_trains(backend):
    fastnn.set_floatx("float64")
    try:
        model = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.BatchNormalization(),
                                   layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        x = np.random.default_rng(0).standard_normal((20, 3))
        model.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0)
        assert all(w.dtype == np.float64 for w in model.get_weights())
    finally:
        fastnn.set_floatx("float32")


def test_config_round_trip():
    layer = layers.BatchNormalization(momentum=0.9, epsilon=1e-4, center=False,
                                      gamma_initializer="zeros", name="bn")
    config = layer.get_config()
    assert config["momentum"] == 0.9 and config["epsilon"] == 1e-4 and config["center"] is False
    assert layers.BatchNormalization.from_config(config).get_config() == config
    assert layers.LAYER_CLASSES["BatchNormalization"] is layers.BatchNormalization


@pytest.mark.parametrize("kwargs", [
    {"momentum": 1.5}, {"momentum": -0.1}, {"momentum": "x"}, {"epsilon": 0.0},
    {"epsilon": float("inf")}, {"axis": 1.5}, {"axis": [1, 2]},
    {"gamma_initializer": "nope"},
])
def test_bad_arguments_name_the_layer(kwargs):
    with pytest.raises(ValueError, match="my_bn|nope"):
        layers.BatchNormalization(name="my_bn", **kwargs)


@pytest.mark.parametrize("axis", [1, 0, -2])
def test_only_the_channels_axis_is_supported(axis):
    model = models.Sequential([layers.Input(shape=(4, 5))])
    with pytest.raises(ValueError, match="my_bn.*channels-last"):
        model.add(layers.BatchNormalization(axis=axis, name="my_bn"))


@pytest.mark.parametrize("axis", [-1, 2, [2]])
def test_last_axis_may_be_named_either_way(axis):
    model = models.Sequential([layers.Input(shape=(4, 5)),
                               layers.BatchNormalization(axis=axis)])
    assert model.output_shape == (None, 4, 5)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_step_stopped_by_a_nan_loss_leaves_the_moving_statistics(backend):
    x = np.random.default_rng(7).standard_normal((8, 3)).astype(np.float32)
    model = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.BatchNormalization(),
                               layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    weights = model.get_weights()
    weights[-2][...] = 3e38                      # the head overflows to inf: the loss is not finite
    model.set_weights(weights)
    before = model.layers[1].get_weights()
    with pytest.raises(FloatingPointError):
        model.train_on_batch(x, np.zeros((8, 1), np.float32))
    for a, b in zip(before, model.layers[1].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_bare_training_call_updates_the_moving_statistics(ops):
    layer = layers.BatchNormalization(momentum=0.5)
    layer.build((2,))
    x = np.array([[1.0, 2.0], [3.0, 6.0]], np.float32)
    layer.forward(ops, x, training=True)         # no workspace: no backward will follow
    _, _, mm, mv = layer.get_weights()
    np.testing.assert_allclose(mm, [1.0, 2.0])   # 0.5 * 0 + 0.5 * [2, 4]
    np.testing.assert_allclose(mv, [1.0, 2.5])   # 0.5 * 1 + 0.5 * [1, 4]
