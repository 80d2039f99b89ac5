"""Models end to end: the quick-start example, the Keras surface, the packing
rules, determinism, threads and bad input -- on both backends."""
import threading

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers, losses, models, optimizers
from testing_utils import on_threads


def regression_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 10)).astype(np.float32)
    w = rng.standard_normal(10).astype(np.float32)
    y = np.tanh(x @ w) + 0.1 * x[:, 0] ** 2
    return x, y.astype(np.float32)


def quickstart_model():
    model = models.Sequential()
    model.add(layers.Dense(64, activation="relu", input_shape=(10,)))
    model.add(layers.Dense(32, activation="relu"))
    model.add(layers.Dense(1, activation="linear"))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def test_quickstart_example_learns(backend):
    fastnn.set_seed(0)
    x, y = regression_data()
    model = quickstart_model()
    baseline = float(np.mean((y - y.mean()) ** 2))
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    assert set(history.history) == {"loss", "mae"}
    assert len(history.history["loss"]) == 10
    assert history.history["loss"][-1] < 0.2 * baseline
    loss, mae = model.evaluate(x, y, verbose=0)
    assert loss < 0.2 * baseline and mae > 0
    assert model.predict(x[:7]).shape == (7, 1)


def test_keras_style_import_runs_unchanged(backend):
    import fastnn as keras
    fastnn.set_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    y = keras.utils.to_categorical(labels, num_classes=3)
    model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.85
    probs = model.predict(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_sparse_labels_and_logits_loss(backend):
    fastnn.set_seed(2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 6)).astype(np.float32)
    labels = np.argmax(x[:, :4], axis=1)
    model = models.Sequential([layers.Dense(4, input_shape=(6,))])
    model.compile(optimizer=optimizers.Adam(0.05),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, labels, epochs=30, batch_size=30, verbose=0)
    loss, acc = model.evaluate(x, labels, verbose=0)
    assert acc > 0.9


def test_fused_softmax_loss_equals_unfused_value(backend):
    """Dense(softmax) + categorical CE reports the loss a probability-space CE gives."""
    fastnn.set_seed(3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = fastnn.utils.to_categorical(rng.integers(0, 3, 40), 3)
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(5,))])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    expected = losses.CategoricalCrossentropy()(y, model.predict(x))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_last_partial_batch_is_trained(backend):
    x, y = regression_data(n=10)
    model = quickstart_model()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    assert model.optimizer.iterations == 3


def test_weights_have_keras_shapes_and_round_trip(backend):
    model = quickstart_model()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(10, 64), (64,), (64, 32), (32,), (32, 1), (1,)]
    new = [np.full(s, 0.01 * i, dtype=np.float32) for i, s in enumerate(shapes)]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    got = model.get_weights()
    got[0][...] = 99.0                       # copies: the model is unaffected
    assert model.get_weights()[0][0, 0] == 0.0
    with pytest.raises(ValueError, match=r"\(10, 64\)"):
        model.set_weights([np.zeros((3, 3))] + new[1:])


def test_frozen_layer_is_bitwise_unchanged_and_needs_no_recompile(backend):
    x, y = regression_data(n=64)
    model = quickstart_model()
    model.fit(x, y, epochs=1, verbose=0)
    model.layers[0].trainable = False
    frozen = model.layers[0].get_weights()
    other = model.layers[1].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for before, after in zip(frozen, model.layers[0].get_weights()):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(other[0], model.layers[1].get_weights()[0])


def test_pop_and_add_after_compile_require_compile(backend):
    x, y = regression_data(n=32)
    model = quickstart_model()
    model.pop()
    model.add(layers.Dense(1))
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, verbose=0)


def test_transfer_learning_packs_layers_into_new_model(backend):
    x, y = regression_data(n=64)
    base = quickstart_model()
    base.fit(x, y, epochs=1, verbose=0)
    body = base.layers[:2]
    trained = [w.copy() for layer in body for w in layer.get_weights()]
    head = models.Sequential(body + [layers.Dense(1, name="new_head")])
    for layer in body:
        layer.trainable = False
    head.compile(optimizer=optimizers.Adam(1e-4), loss="mse")
    head.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(trained[0], head.layers[0].get_weights()[0])
    with pytest.raises(RuntimeError, match="compile"):
        base.fit(x, y, verbose=0)


def test_nan_loss_raises_before_the_update(backend):
    x, y = regression_data(n=64)
    model = quickstart_model()
    model.fit(x, y, epochs=1, verbose=0)
    huge = [w * np.float32(1e30) for w in model.get_weights()]   # float32 overflow -> inf loss
    model.set_weights(huge)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"epoch 1, batch 1"):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for before, after in zip(huge, model.get_weights()):
        np.testing.assert_array_equal(before, after)              # no update was applied
    model.set_weights([w / np.float32(1e30) for w in huge])       # the model is still usable
    model.fit(x, y, epochs=1, verbose=0)
    with np.errstate(all="ignore"):
        model.set_weights(huge)
        model.fit(x, y, epochs=1, verbose=0, stop_on_nan=False)   # Keras' behaviour: goes on


def test_exception_in_callback_leaves_usable_model(backend):
    class Boom(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyError("boom")

    x, y = regression_data(n=64)
    model = quickstart_model()
    with pytest.raises(KeyError):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[Boom()])
    model.fit(x, y, epochs=1, verbose=0)
    assert np.all(np.isfinite(model.predict(x)))


def test_training_is_bitwise_deterministic_across_thread_counts(backend):
    # wide enough that GEMMs, reductions and the optimizer take their parallel paths
    x, y = regression_data(n=600)
    results = []
    for threads in (1, 2, 1):
        with on_threads(threads, check=backend == "compiled"):
            fastnn.set_seed(42)
            model = models.Sequential([layers.Dense(384, activation="relu", input_shape=(10,)),
                                       layers.Dense(256, activation="tanh"), layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse", metrics=["mae"])
            model.fit(x, y, epochs=2, batch_size=200, verbose=0)
            results.append(model.get_weights())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_predict_from_several_threads(backend):
    x, y = regression_data(n=2000)
    model = quickstart_model()
    model.fit(x, y, epochs=1, verbose=0)
    expected = model.predict(x, batch_size=100)
    outputs, errors = [None] * 4, []

    def work(i):
        try:
            outputs[i] = model.predict(x, batch_size=37 + i)
        except Exception as exc:   # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in outputs:
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_train_and_test_on_batch_and_call(backend):
    x, y = regression_data(n=32)
    model = quickstart_model()
    loss, mae = model.train_on_batch(x, y)
    assert np.isfinite(loss) and mae >= 0
    assert len(model.test_on_batch(x, y)) == 2
    np.testing.assert_allclose(model(x), model.predict_on_batch(x), rtol=1e-6)


def test_inputs_of_any_layout_and_dtype_work(backend):
    x, y = regression_data(n=64)
    model = quickstart_model()
    reference = model.predict(x)
    for variant in (np.asfortranarray(x), x.astype(np.float64), x[::1].copy()[:, :],
                    np.repeat(x, 2, axis=1)[:, ::2]):
        np.testing.assert_allclose(model.predict(variant), reference, rtol=1e-5, atol=1e-6)
    read_only = x.copy()
    read_only.flags.writeable = False
    model.fit(read_only, y, epochs=1, verbose=0)
    ints = np.arange(64 * 10).reshape(64, 10) % 3
    assert model.predict(ints).shape == (64, 1)


@pytest.mark.parametrize("bad_x,bad_y,match,error", [
    (np.zeros((8, 7)), np.zeros(8), r"dense.*\(None, 10\).*\(8, 7\)", ValueError),
    (np.zeros((8, 10)), np.zeros(9), r"8 samples.*9", ValueError),
    (np.zeros((0, 10)), np.zeros(0), "non-empty", ValueError),
    (np.array([["a"] * 10] * 4), np.zeros(4), "numeric", TypeError),
    (np.full((4, 10), np.nan), np.zeros(4), "NaN", ValueError),
    (np.zeros((4, 10)), np.full(4, np.inf), "NaN or inf", ValueError),
    (np.zeros((4, 10)), np.zeros((4, 3)), r"\(4, 3\).*\(None, 1\)", ValueError),
])
def test_bad_fit_input_raises_clear_errors(backend, bad_x, bad_y, match, error):
    model = quickstart_model()
    with pytest.raises(error, match=match):
        model.fit(bad_x, bad_y, verbose=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
    ({"epochs": -1}, "epochs"), ({"validation_split": 1.5}, "validation_split"),
])
def test_bad_fit_arguments(backend, kwargs, match):
    x, y = regression_data(n=16)
    with pytest.raises(ValueError, match=match):
        quickstart_model().fit(x, y, verbose=0, **kwargs)


def test_untrainable_configurations_raise():
    x, y = regression_data(n=16)
    model = models.Sequential([layers.Dense(1, input_shape=(10,))])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="units"):
        layers.Dense(0)
    with pytest.raises(ValueError, match="activation"):
        layers.Dense(3, activation="nope")
    with pytest.raises(ValueError, match="optimizer"):
        model.compile(optimizer="nope", loss="mse")
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="adam", loss="nope")
    with pytest.raises(ValueError, match="already"):
        models.Sequential([layers.Dense(2, name="a"), layers.Dense(2, name="a")])


def test_validation_split_takes_the_last_fraction(backend):
    x, y = regression_data(n=100)
    model = quickstart_model()
    history = model.fit(x, y, epochs=2, validation_split=0.2, verbose=0)
    assert {"val_loss", "val_mae"} <= set(history.history)
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(x[80:], y[80:], verbose=0)[0], rel=1e-5)
    assert model.optimizer.iterations == 2 * 3   # 80 samples, batch 32


def test_deferred_build_from_data(backend):
    x, y = regression_data(n=40)
    model = models.Sequential([layers.Dense(8, activation="tanh"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    assert not model.built
    model.fit(x, y, epochs=1, verbose=0)
    assert model.input_shape == (None, 10) and model.output_shape == (None, 1)


def test_float64_models_train(backend):
    x, y = regression_data(n=128)
    model = models.Sequential([layers.Dense(16, activation="gelu", input_shape=(10,),
                                            dtype="float64"),
                               layers.Dense(1, dtype="float64")])
    model.compile(optimizer="adam", loss="huber")
    model.fit(x, y, epochs=2, verbose=0)
    assert model.predict(x).dtype == np.float64


def test_flatten_reshape_activation_layers(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 3, 4)).astype(np.float32)
    y = rng.standard_normal((20, 2)).astype(np.float32)
    model = models.Sequential([layers.Reshape((12,), input_shape=(3, 4)), layers.Reshape((4, 3)),
                               layers.Flatten(), layers.Dense(2), layers.Activation("tanh")])
    model.compile(optimizer="sgd", loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, batch_size=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    assert model.output_shape == (None, 2)


def test_summary_lists_layers_and_counts(capsys):
    model = quickstart_model()
    model.layers[0].trainable = False
    model.summary()
    text = capsys.readouterr().out
    assert "dense" in text and "(None, 64)" in text
    assert "Total params: 2,817" in text
    assert "Trainable params: 2,113" in text and "Non-trainable params: 704" in text


def test_history_and_callback_hooks_order(backend):
    events = []

    class Recorder(callbacks.Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin{epoch}")
        def on_train_batch_end(self, batch, logs=None): events.append(f"batch{batch}")
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end{epoch}")
        def on_train_end(self, logs=None): events.append("train_end")

    x, y = regression_data(n=20)
    quickstart_model().fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[Recorder()])
    assert events == ["train_begin", "epoch_begin0", "batch0", "batch1", "epoch_end0",
                      "epoch_begin1", "batch0", "batch1", "epoch_end1", "train_end"]


def test_deepcopy_of_a_compiled_model_trains_on_its_own():
    """copy.deepcopy gives independent weights that the copy's optimizer updates
    (its layers read the copied flat buffer, not a detached copy of the views),
    and training one model leaves the other as it was."""
    import copy

    fastnn.set_seed(5)
    x = np.random.default_rng(1).standard_normal((64, 3)).astype(np.float32)
    y = np.random.default_rng(2).standard_normal((64, 2)).astype(np.float32)
    inputs = fastnn.Input((3,))
    outputs = fastnn.layers.Dense(2)(fastnn.layers.Dense(4, activation="tanh")(inputs))
    model = fastnn.Model(inputs, outputs)
    model.compile(fastnn.optimizers.SGD(0.1), "mse")
    twin = copy.deepcopy(model)
    before = [w.copy() for w in model.get_weights()]
    twin.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b, c in zip(model.get_weights(), twin.get_weights(), before):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
