"""Convolution and pooling layers: Keras' shapes and weights, configs and saving,
bad arguments, learning on both backends, Conv1D on sequences, and bitwise
determinism across thread counts."""
import numpy as np
import pytest
from testing_utils import on_threads

import fastnn
from fastnn import layers, losses, models, optimizers


def built(layer, input_shape):
    layer.build(input_shape)
    return layer


# ---- shapes and weights (Keras' formulas) ------------------------------------------

@pytest.mark.parametrize("kwargs,input_shape,output_shape", [
    (dict(filters=4, kernel_size=3), (28, 28, 1), (26, 26, 4)),
    (dict(filters=4, kernel_size=3, padding="same"), (28, 28, 1), (28, 28, 4)),
    (dict(filters=2, kernel_size=(3, 2), strides=2), (9, 8, 3), (4, 4, 2)),
    (dict(filters=2, kernel_size=(3, 2), strides=(2, 3), padding="same"), (9, 8, 3), (5, 3, 2)),
    (dict(filters=5, kernel_size=3, dilation_rate=2), (9, 10, 3), (5, 6, 5)),
    (dict(filters=5, kernel_size=3, dilation_rate=(2, 1), padding="SAME"), (9, 10, 3),
     (9, 10, 5)),
    (dict(filters=1, kernel_size=1, strides=3), (7, 7, 5), (3, 3, 1)),
])
def test_conv2d_output_and_weight_shapes(kwargs, input_shape, output_shape):
    layer = built(layers.Conv2D(**kwargs), input_shape)
    assert layer.output_shape == output_shape
    kh, kw = layer.kernel_size
    assert [w.shape for w in layer.get_weights()] == [(kh, kw, input_shape[-1],
                                                        kwargs["filters"]), (kwargs["filters"],)]
    y = layer.forward(fastnn.backend.current_ops(), np.zeros((2,) + input_shape, layer.dtype))
    assert y.shape == (2,) + output_shape


@pytest.mark.parametrize("kwargs,input_shape,output_shape", [
    (dict(filters=3, kernel_size=5), (20, 4), (16, 3)),
    (dict(filters=3, kernel_size=4, strides=3, padding="same"), (20, 4), (7, 3)),
    (dict(filters=2, kernel_size=3, dilation_rate=3), (20, 1), (14, 2)),
])
def test_conv1d_output_and_weight_shapes(kwargs, input_shape, output_shape):
    layer = built(layers.Conv1D(**kwargs, use_bias=False), input_shape)
    assert layer.output_shape == output_shape
    assert [w.shape for w in layer.get_weights()] == [(kwargs["kernel_size"], input_shape[-1],
                                                        kwargs["filters"])]


@pytest.mark.parametrize("layer,input_shape,output_shape", [
    (lambda: layers.MaxPooling2D(), (28, 28, 3), (14, 14, 3)),
    (lambda: layers.MaxPooling2D(3, strides=2), (9, 8, 1), (4, 3, 1)),
    (lambda: layers.MaxPool2D((2, 3), padding="same"), (5, 7, 2), (3, 3, 2)),
    (lambda: layers.AveragePooling2D(2, 1), (5, 4, 3), (4, 3, 3)),
    (lambda: layers.AvgPool2D(3, 2, "same"), (5, 4, 3), (3, 2, 3)),
    (lambda: layers.GlobalAveragePooling2D(), (5, 4, 3), (3,)),
    (lambda: layers.GlobalMaxPooling2D(keepdims=True), (5, 4, 3), (1, 1, 3)),
    (lambda: layers.MaxPooling1D(), (9, 4), (4, 4)),
    (lambda: layers.AveragePooling1D(3, 2, padding="same"), (9, 4), (5, 4)),
    (lambda: layers.GlobalMaxPooling1D(), (9, 4), (4,)),
    (lambda: layers.GlobalAvgPool1D(keepdims=True), (9, 4), (1, 4)),
])
def test_pooling_output_shapes(layer, input_shape, output_shape):
    pool = built(layer(), input_shape)
    assert pool.output_shape == output_shape and pool.get_weights() == []
    x = np.random.default_rng(0).standard_normal((3,) + input_shape).astype(np.float32)
    assert pool.forward(fastnn.backend.current_ops(), x).shape == (3,) + output_shape


def test_pooling_layer_values():
    ops = fastnn.backend.get_ops("numpy")
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 4, 3)
    gap = built(layers.GlobalAveragePooling2D(), (2, 4, 3)).forward(ops, x)
    np.testing.assert_allclose(gap, x.mean(axis=(1, 2)))
    gmp = built(layers.GlobalMaxPooling1D(), (8, 3)).forward(ops, x.reshape(1, 8, 3))
    np.testing.assert_allclose(gmp, x.reshape(8, 3).max(axis=0)[None])


def test_keras_names_and_aliases():
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.AvgPool1D is layers.AveragePooling1D
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert layers.Convolution2D is layers.Conv2D
    assert layers.Conv2D(2, 3).name.startswith("conv2d")
    assert layers.MaxPooling2D().name.startswith("max_pooling2d")


# ---- configs and saving --------------------------------------------------------------

CONFIG_LAYERS = [
    lambda: layers.Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="relu",
                          use_bias=False, kernel_initializer="he_normal",
                          kernel_regularizer="l2", name="c2"),
    lambda: layers.Conv1D(3, 5, dilation_rate=2, bias_regularizer="l1", name="c1"),
    lambda: layers.MaxPooling2D((3, 3), strides=2, padding="same", name="mp"),
    lambda: layers.AveragePooling1D(4, name="ap"),
    lambda: layers.GlobalAveragePooling2D(keepdims=True, name="gap"),
    lambda: layers.GlobalMaxPooling1D(name="gmp"),
]


@pytest.mark.parametrize("make", CONFIG_LAYERS)
def test_get_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert type(layer).__name__ in layers.LAYER_CLASSES


def cnn(input_shape=(8, 8, 1), classes=3):
    return models.Sequential([
        layers.Input(shape=input_shape),
        layers.Conv2D(6, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(8, (2, 3), activation="relu"),
        layers.AveragePooling2D(pool_size=(1, 2), padding="same"),
        layers.Flatten(),
        layers.Dense(classes),
    ])


def test_saved_cnn_predicts_the_same(tmp_path, rng):
    fastnn.set_seed(3)
    model = cnn()
    model.compile(optimizer="adam",
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.random((5, 8, 8, 1)).astype(np.float32)
    model.fit(x, np.arange(5) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "cnn.fnn")
    loaded = models.load_model(tmp_path / "cnn.fnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# ---- bad arguments and inputs ----------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv2D(0, 3), "filters"),
    (lambda: layers.Conv2D(2.5, 3), "filters"),
    (lambda: layers.Conv2D(4, 0), "kernel_size"),
    (lambda: layers.Conv2D(4, 2.5), "kernel_size"),
    (lambda: layers.Conv2D(4, (3, 3, 3)), "kernel_size"),
    (lambda: layers.Conv2D(4, 3, strides=0), "strides"),
    (lambda: layers.Conv2D(4, 3, strides=(1, -2)), "strides"),
    (lambda: layers.Conv2D(4, 3, padding="full"), "padding"),
    (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv2D(4, 3, data_format="channels_first"), "channels_last"),
    (lambda: layers.Conv1D(4, 3, padding="causal"), "causal"),
    (lambda: layers.Conv1D(4, (3, 3)), "kernel_size"),
    (lambda: layers.MaxPooling2D(0), "pool_size"),
    (lambda: layers.MaxPooling2D(2, strides=0), "strides"),
    (lambda: layers.AveragePooling1D(2.0), "pool_size"),
])
def test_bad_arguments_raise_naming_the_layer(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make,input_shape,match", [
    (lambda: layers.Conv2D(4, 3, name="conv_a"), (28, 28), r"conv_a.*\(None, 28, 28\)"),
    (lambda: layers.Conv2D(4, 3, name="conv_b"), (8, 8, 2, 1), "conv_b.*channels"),
    (lambda: layers.Conv2D(4, 5, name="conv_c"), (4, 6, 1), "conv_c.*larger than the input"),
    (lambda: layers.Conv2D(4, 3, dilation_rate=3, name="conv_d"), (6, 9, 1), "conv_d.*larger"),
    (lambda: layers.Conv1D(4, 3, name="conv_e"), (10,), "conv_e.*steps"),
    (lambda: layers.MaxPooling2D(3, name="pool_a"), (2, 5, 1), "pool_a.*larger"),
    (lambda: layers.GlobalAveragePooling1D(name="pool_b"), (4, 4, 4), "pool_b"),
])
def test_bad_input_shapes_raise_at_build(make, input_shape, match):
    with pytest.raises(ValueError, match=match):
        models.Sequential([layers.Input(shape=input_shape), make()])


def test_rank3_images_are_an_error_when_the_model_is_built(rng):
    model = models.Sequential([layers.Conv2D(2, 3, name="first"), layers.Flatten(),
                               layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"first.*\(batch, height, width, channels\)"):
        model.fit(rng.random((4, 8, 8)), np.zeros(4), verbose=0)


def test_wrong_channel_count_is_an_error(rng):
    model = cnn()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"\(None, 8, 8, 1\).*\(4, 8, 8, 3\)"):
        model.predict(rng.random((4, 8, 8, 3)))


# ---- learning ----------------------------------------------------------------------------

def bars(n, rng, size=8):
    """Noisy images of a horizontal bar, a vertical bar or a diagonal: 3 classes."""
    x = rng.normal(0.0, 0.3, size=(n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    pos = rng.integers(1, size - 1, size=n)
    for k in range(n):
        if y[k] == 0:
            x[k, pos[k], :, 0] += 1.0
        elif y[k] == 1:
            x[k, :, pos[k], 0] += 1.0
        else:
            x[k, np.arange(size), np.arange(size), 0] += 1.0
    return x, y


def test_small_cnn_learns_an_image_task(backend):
    fastnn.set_seed(0)
    rng = np.random.default_rng(0)
    x, y = bars(480, rng)
    model = cnn()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:384], y[:384], epochs=6, batch_size=32, verbose=0)
    loss, accuracy = model.evaluate(x[384:], y[384:], verbose=0)
    assert accuracy >= 0.9, (loss, accuracy)


def test_conv1d_learns_on_sequences(backend):
    fastnn.set_seed(1)
    rng = np.random.default_rng(1)
    n, t = 320, 24
    x = rng.normal(0.0, 0.3, size=(n, t, 2)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    start = rng.integers(0, t - 4, size=n)
    for k in range(n):                      # a rising or a falling ramp somewhere
        ramp = np.linspace(-1, 1, 4) * (1 if y[k] else -1)
        x[k, start[k]:start[k] + 4, 0] += ramp
    model = models.Sequential([
        layers.Input(shape=(t, 2)),
        layers.Conv1D(8, 4, activation="relu", padding="same"),
        layers.MaxPooling1D(2),
        layers.Conv1D(8, 3, activation="relu"),
        layers.GlobalMaxPooling1D(),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:256], y[:256].astype(np.float32), epochs=10, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x[256:], y[256:].astype(np.float32), verbose=0)
    assert accuracy >= 0.9
    assert model.predict(x[:3], verbose=0).shape == (3, 1)


def test_backends_agree_after_training(rng):
    x, y = bars(64, rng)
    weights = {}
    previous = fastnn.get_backend()
    try:
        for name in ("numpy", "compiled"):
            fastnn.set_backend(name)
            fastnn.set_seed(5)
            model = cnn()
            model.compile(optimizer="sgd",
                          loss=losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
            weights[name] = model.get_weights()
    finally:
        fastnn.set_backend(previous)
    for a, b in zip(weights["numpy"], weights["compiled"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def train_for_threads(threads, x, y, backend):
    fastnn.set_seed(7)
    with on_threads(threads, check=backend == "compiled"):
        model = models.Sequential([
            layers.Input(shape=(12, 12, 3)),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, activation="relu"),
            layers.AveragePooling2D(),
            layers.Flatten(),
            layers.Dense(3),
        ])
        model.compile(optimizer="adam",
                      loss=losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=2, batch_size=32, verbose=0)
        return model.get_weights()


def test_one_and_two_threads_train_bitwise_equal_weights(backend, rng):
    x = rng.random((64, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=64)
    one, two = train_for_threads(1, x, y, backend), train_for_threads(2, x, y, backend)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()


def test_regularizers_add_to_the_loss(rng):
    fastnn.set_seed(2)
    x = rng.random((8, 6, 6, 1)).astype(np.float32)
    plain = models.Sequential([layers.Input(shape=(6, 6, 1)), layers.Conv2D(2, 3),
                               layers.Flatten(), layers.Dense(1)])
    fastnn.set_seed(2)
    reg = models.Sequential([layers.Input(shape=(6, 6, 1)),
                             layers.Conv2D(2, 3, kernel_regularizer="l2"),
                             layers.Flatten(), layers.Dense(1)])
    for m in (plain, reg):
        m.compile(optimizer="sgd", loss="mse")
    y = np.zeros(8, np.float32)
    assert reg.evaluate(x, y, verbose=0) > plain.evaluate(x, y, verbose=0)
