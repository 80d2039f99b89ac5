"""layers.Dropout: inverted dropout in training only, masks from fastnn's
seeded generator that agree across backends and thread counts, noise_shape,
configuration and bad arguments."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, models
from fastnn.backend import get_ops
from fastnn.layers.base import Workspace
from testing_utils import on_threads


def built(layer, input_shape):
    layer.build(input_shape)
    return layer


def test_inference_is_the_identity(ops):
    layer = built(layers.Dropout(0.5), (7,))
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    assert layer.forward(ops, x, training=False) is x
    ws = Workspace()
    assert layer.forward(ops, x, training=False, ws=ws) is x
    dy = np.ones_like(x)
    assert layer.backward(ops, dy, ws) is dy


def test_rate_zero_is_the_identity_in_training(ops):
    layer = built(layers.Dropout(0.0), (7,))
    x = np.ones((3, 7), np.float32)
    assert layer.forward(ops, x, training=True, ws=Workspace()) is x


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.75])
def test_training_drops_rate_and_scales_the_rest(ops, rate):
    fastnn.set_seed(3)
    layer = built(layers.Dropout(rate), (400,))
    x = np.random.default_rng(1).uniform(1, 2, (250, 400)).astype(np.float32)
    ws = Workspace()
    y = layer.forward(ops, x, training=True, ws=ws)
    kept = y != 0
    n = x.size
    assert abs((1 - kept.mean()) - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / (1 - rate)))
    np.testing.assert_array_equal(ws.saved == 1, kept)
    dy = np.ones_like(x)
    dx = layer.backward(ops, dy, ws)
    np.testing.assert_array_equal(dx, np.where(kept, np.float32(1 / (1 - rate)), 0))


def test_masks_are_identical_on_both_backends_and_follow_the_seed():
    x = np.random.default_rng(1).standard_normal((33, 19)).astype(np.float32)
    masks = []
    for name in ("numpy", "compiled", "numpy"):
        fastnn.set_seed(11)
        layer = built(layers.Dropout(0.5), (19,))
        ws = Workspace()
        layer.forward(get_ops(name), x, training=True, ws=ws)
        masks.append(ws.saved.copy())
        layer.forward(get_ops(name), x, training=True, ws=ws)
        assert not np.array_equal(ws.saved, masks[-1]), "a new mask every step"
    for other in masks[1:]:
        np.testing.assert_array_equal(masks[0], other)


def test_layer_seed_gives_its_own_reproducible_stream(ops):
    x = np.ones((8, 50), np.float32)

    def first_mask(global_seed):
        fastnn.set_seed(global_seed)
        layer = built(layers.Dropout(0.5, seed=5), (50,))
        ws = Workspace()
        layer.forward(ops, x, training=True, ws=ws)
        return ws.saved.copy()

    np.testing.assert_array_equal(first_mask(1), first_mask(2))


def test_noise_shape_shares_the_mask_along_size_one_axes():
    x = np.random.default_rng(2).uniform(1, 2, (6, 5, 40)).astype(np.float32)
    outputs = []
    for name in ("numpy", "compiled"):
        fastnn.set_seed(4)
        layer = built(layers.Dropout(0.5, noise_shape=(None, 1, 40)), (5, 40))
        ws = Workspace()
        y = layer.forward(get_ops(name), x, training=True, ws=ws)
        mask = ws.saved
        assert (mask == mask[:, :1, :]).all()                 # same for every time step
        assert 0 < mask.mean() < 1
        np.testing.assert_array_equal(y != 0, mask == 1)
        dx = layer.backward(get_ops(name), np.ones_like(x), ws)
        np.testing.assert_array_equal(dx != 0, mask == 1)
        outputs.append((y.copy(), dx.copy()))
    for a, b in zip(*outputs):
        np.testing.assert_array_equal(a, b)


def test_model_masks_are_bitwise_equal_for_1_and_2_threads():
    x = np.random.default_rng(0).standard_normal((400, 10)).astype(np.float32)
    y = x[:, :1] * 2.0
    results = []
    for threads in (1, 2):
        with on_threads(threads, check=fastnn.get_backend() == "compiled"):
            fastnn.set_seed(8)
            model = models.Sequential([layers.Dense(256, activation="relu",
                                                    input_shape=(10,)),
                                       layers.Dropout(0.5), layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y, epochs=2, batch_size=200, verbose=0)
            results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_model_with_dropout_learns_and_predicts_deterministically(backend):
    fastnn.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = (x[:, :2].sum(axis=1, keepdims=True) > 0).astype(np.float32)
    model = models.Sequential([layers.Dense(32, activation="relu", input_shape=(8,)),
                               layers.Dropout(0.3), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0)[1] > 0.9
    np.testing.assert_array_equal(model.predict(x), model.predict(x))   # inference: no dropout


def test_config_round_trip():
    layer = layers.Dropout(0.25, noise_shape=(None, 1, 3), seed=9, name="drop")
    config = layer.get_config()
    assert config["rate"] == 0.25 and config["noise_shape"] == [None, 1, 3] and config["seed"] == 9
    again = layers.Dropout.from_config(config)
    assert again.get_config() == config
    assert layers.LAYER_CLASSES["Dropout"] is layers.Dropout


@pytest.mark.parametrize("kwargs", [
    {"rate": 1.0}, {"rate": -0.1}, {"rate": float("nan")}, {"rate": "half"}, {"rate": True},
    {"rate": 0.5, "seed": -1}, {"rate": 0.5, "seed": 1.5},
    {"rate": 0.5, "noise_shape": (0, 3)}, {"rate": 0.5, "noise_shape": "ab"},
])
def test_bad_arguments_name_the_layer(kwargs):
    with pytest.raises(ValueError, match="my_dropout"):
        layers.Dropout(name="my_dropout", **kwargs)


@pytest.mark.parametrize("noise_shape", [(None, 2), (None, 1, 1), (None,)])
def test_noise_shape_must_broadcast(noise_shape):
    model = models.Sequential([layers.Input(shape=(4,))])
    with pytest.raises(ValueError, match="bad_noise"):
        model.add(layers.Dropout(0.5, noise_shape=noise_shape, name="bad_noise"))
