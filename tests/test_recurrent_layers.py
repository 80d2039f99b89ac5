"""Recurrent layers end to end: Keras' weight shapes, return_sequences /
go_backwards, Bidirectional merges, masking from Embedding(mask_zero=True),
learning, determinism, saving and bad input -- on both backends."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, models, regularizers
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.layers.base import Workspace
from testing_utils import numeric_grad, on_threads

RECURRENT = [layers.SimpleRNN, layers.LSTM, layers.GRU]


def seq(n=4, t=5, i=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, t, i)).astype(np.float32)


@pytest.mark.parametrize("cls,weight_shapes", [
    (layers.SimpleRNN, [(3, 4), (4, 4), (4,)]),
    (layers.LSTM, [(3, 16), (4, 16), (16,)]),
    (layers.GRU, [(3, 12), (4, 12), (2, 12)]),
])
def test_keras_weight_shapes_and_output_shapes(cls, weight_shapes, backend):
    model = models.Sequential([cls(4, input_shape=(5, 3))])
    assert [w.shape for w in model.get_weights()] == weight_shapes
    assert [w.name for w in model.layers[0].weights][:2] == ["kernel", "recurrent_kernel"]
    assert model.predict(seq(), verbose=0).shape == (4, 4)
    model = models.Sequential([cls(4, return_sequences=True, input_shape=(5, 3))])
    assert model.output_shape == (None, 5, 4)
    assert model.predict(seq(), verbose=0).shape == (4, 5, 4)


def test_lstm_unit_forget_bias_and_gru_reset_after():
    lstm = models.Sequential([layers.LSTM(3, input_shape=(2, 2))]).layers[0]
    np.testing.assert_array_equal(lstm.bias.value, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    plain = models.Sequential([layers.LSTM(3, unit_forget_bias=False, input_shape=(2, 2))])
    assert not plain.layers[0].bias.value.any()
    with pytest.raises(ValueError, match="reset_after"):
        layers.GRU(3, reset_after=False)


@pytest.mark.parametrize("cls", RECURRENT)
def test_go_backwards_equals_reversed_input(cls, backend):
    fastnn.set_seed(3)
    fwd = models.Sequential([cls(4, return_sequences=True, input_shape=(5, 3))])
    back = models.Sequential([cls(4, return_sequences=True, go_backwards=True,
                                  input_shape=(5, 3))])
    back.set_weights(fwd.get_weights())
    x = seq()
    np.testing.assert_allclose(back.predict(x, verbose=0), fwd.predict(x[:, ::-1], verbose=0),
                               rtol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_merges_forward_and_reversed_backward(merge_mode, return_sequences,
                                                            backend):
    fastnn.set_seed(4)
    bi = models.Sequential([layers.Bidirectional(
        layers.GRU(3, return_sequences=return_sequences), merge_mode=merge_mode,
        input_shape=(5, 2))])
    w = bi.get_weights()
    assert len(w) == 6
    fwd = models.Sequential([layers.GRU(3, return_sequences=return_sequences,
                                        input_shape=(5, 2))])
    bwd = models.Sequential([layers.GRU(3, return_sequences=return_sequences,
                                        go_backwards=True, input_shape=(5, 2))])
    fwd.set_weights(w[:3])
    bwd.set_weights(w[3:])
    x = seq(i=2)
    yf, yb = fwd.predict(x, verbose=0), bwd.predict(x, verbose=0)
    if return_sequences:
        yb = yb[:, ::-1]           # Keras reverses the backward sequence back
    want = {"concat": np.concatenate([yf, yb], axis=-1), "sum": yf + yb, "mul": yf * yb,
            "ave": (yf + yb) / 2}[merge_mode]
    np.testing.assert_allclose(bi.predict(x, verbose=0), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_backward_matches_finite_differences(merge_mode, return_sequences):
    fastnn.set_seed(5)
    ops = NumpyOps()
    layer = layers.Bidirectional(layers.LSTM(2, return_sequences=return_sequences,
                                             dtype="float64"), merge_mode=merge_mode)
    layer.build((4, 3))
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    ws = Workspace(param_grads=False)
    y = layer.forward(ops, x, True, ws)
    weights = np.random.default_rng(1).standard_normal(y.shape)
    dx = layer.backward(ops, weights, ws).copy()
    dkernel = ws.child("backward").buffer("grad:kernel", (3, 8), np.float64).copy()

    def loss():
        return float((weights * layer.forward(ops, x, False, Workspace())).sum())

    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dkernel, numeric_grad(loss, layer.backward_layer.kernel.value),
                               rtol=1e-5, atol=1e-8)


def tokens(seed=0, n=6, t=4, vocab=9):
    return np.random.default_rng(seed).integers(1, vocab, size=(n, t))


@pytest.mark.parametrize("cls", RECURRENT)
@pytest.mark.parametrize("padding", ["post", "pre"])
def test_masked_padding_gives_the_unpadded_last_state(cls, padding, backend):
    fastnn.set_seed(6)
    padded_model = models.Sequential([
        layers.Embedding(9, 3, mask_zero=True, input_shape=(7,)),
        layers.Dense(3, activation="tanh"),          # per step: passes the mask on
        layers.Dropout(0.5),                         # identity in inference: passes it on
        layers.Bidirectional(cls(4)),
    ])
    short_model = models.Sequential([
        layers.Embedding(9, 3, input_shape=(4,)), layers.Dense(3, activation="tanh"),
        layers.Dropout(0.5), layers.Bidirectional(cls(4))])
    short_model.set_weights(padded_model.get_weights())
    x = tokens()
    zeros = np.zeros((x.shape[0], 3), x.dtype)
    padded = np.concatenate([x, zeros] if padding == "post" else [zeros, x], axis=1)
    np.testing.assert_allclose(padded_model.predict(padded, verbose=0),
                               short_model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    unmasked = models.Sequential([
        layers.Embedding(9, 3, input_shape=(7,)), layers.Dense(3, activation="tanh"),
        layers.Dropout(0.5), layers.Bidirectional(cls(4))])
    unmasked.set_weights(padded_model.get_weights())
    assert not np.allclose(unmasked.predict(padded, verbose=0),
                           short_model.predict(x, verbose=0), atol=1e-4)


def test_mask_trains_and_stops_at_the_last_state(backend):
    fastnn.set_seed(7)
    model = models.Sequential([layers.Embedding(9, 4, mask_zero=True, input_shape=(6,)),
                               layers.LSTM(5, return_sequences=True), layers.SimpleRNN(3),
                               layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.concatenate([tokens(n=32), np.zeros((32, 2), np.int64)], axis=1)
    before = model.get_weights()
    model.fit(x, np.arange(32) % 2, epochs=1, batch_size=8, verbose=0)
    after = model.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    # padding row 0 of the table is never read, so it never changes
    np.testing.assert_array_equal(before[0][0], after[0][0])


def memory_task(n=384, t=8, seed=0):
    """Label = whether the FIRST step's value is positive: the model must remember it."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, 2)).astype(np.float32)
    return x, (x[:, 0, 0] > 0).astype(np.int64)


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU])
def test_a_model_learns_a_memory_task(cls, backend):
    fastnn.set_seed(8)
    x, y = memory_task()
    model = models.Sequential([cls(12, input_shape=x.shape[1:]),
                               layers.Dense(2, activation="softmax")])
    model.compile(fastnn.optimizers.Adam(learning_rate=0.02), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=12, batch_size=32, verbose=0)
    xt, yt = memory_task(n=256, seed=1)
    assert model.evaluate(xt, yt, verbose=0)[1] > 0.9


def test_backends_agree_on_a_training_step():
    results = {}
    x, y = memory_task(n=24, t=5)
    for name in ("numpy", "compiled"):
        previous = fastnn.get_backend()
        fastnn.set_backend(name)
        try:
            fastnn.set_seed(9)
            model = models.Sequential([
                layers.Bidirectional(layers.LSTM(5, return_sequences=True, dropout=0.2),
                                     input_shape=(5, 2)),
                layers.GRU(4, go_backwards=True), layers.Dense(2, activation="softmax")])
            model.compile("adam", "sparse_categorical_crossentropy")
            model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
            results[name] = model.get_weights()
        finally:
            fastnn.set_backend(previous)
    for a, b in zip(results["numpy"], results["compiled"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", RECURRENT)
def test_one_and_two_threads_bitwise_equal(cls, backend):
    # 96 units, 64 rows a batch: enough work for the recurrence to be shared
    # by two threads (at least 7 MFLOP a batch)
    x, y = memory_task(n=128, t=6)
    weights = []
    for threads in (1, 2):
        with on_threads(threads, check=backend == "compiled"):
            fastnn.set_seed(10)
            model = models.Sequential([cls(96, dropout=0.1, input_shape=x.shape[1:]),
                                       layers.Dense(2, activation="softmax")])
            model.compile("adam", "sparse_categorical_crossentropy")
            model.fit(x, y, epochs=2, batch_size=64, verbose=0)
            weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_input_dropout_is_one_mask_per_sample_and_feature():
    fastnn.set_seed(11)
    layer = layers.SimpleRNN(3, dropout=0.5)
    layer.build((6, 40))
    ws = Workspace()
    x = np.ones((5, 6, 40), np.float32)
    layer.forward(NumpyOps(), x, True, ws)
    mask = ws.saved[-1]
    assert mask.shape == x.shape and 0 < mask.mean() < 1
    assert (mask == mask[:, :1]).all()          # the same at every step
    assert ws.saved[0] is not x and set(np.unique(ws.saved[0])) <= {0.0, 2.0}
    layer.forward(NumpyOps(), x, False, ws)
    assert ws.saved[-1] is None                 # inference: no dropout


def test_regularizers_reach_the_loss(backend):
    fastnn.set_seed(12)
    x, y = memory_task(n=16, t=3)
    losses = []
    for reg in (None, regularizers.l2(0.1)):
        fastnn.set_seed(12)
        model = models.Sequential([
            layers.GRU(4, kernel_regularizer=reg, recurrent_regularizer=reg,
                       bias_regularizer=reg, bias_initializer="ones", input_shape=(3, 2)),
            layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
        losses.append(model.evaluate(x, y, verbose=0))
    assert losses[1] > losses[0] + 0.1


def test_save_and_load_round_trip(tmp_path, backend):
    fastnn.set_seed(13)
    model = models.Sequential([
        layers.Embedding(9, 4, mask_zero=True, input_shape=(6,)),
        layers.Bidirectional(layers.LSTM(5, return_sequences=True, dropout=0.1),
                             merge_mode="sum"),
        layers.LSTM(3, go_backwards=True, recurrent_activation="tanh", unit_forget_bias=False),
        layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.concatenate([tokens(n=8), np.zeros((8, 2), np.int64)], axis=1)
    model.fit(x, np.arange(8) % 2, epochs=1, verbose=0)
    path = tmp_path / "lstm.fnn"
    model.save(path)
    loaded = models.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == \
        ["Embedding", "Bidirectional", "LSTM", "Dense"]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[2].recurrent_activation == "tanh" and loaded.layers[2].go_backwards
    loaded.fit(x, np.arange(8) % 2, epochs=1, verbose=0)      # it still trains


def test_bad_input_raises_naming_layer_and_shapes(backend):
    with pytest.raises(ValueError, match=r"lstm.*3-D.*\(None, 5\)"):
        models.Sequential([layers.LSTM(4, name="lstm", input_shape=(5,))])
    layer = layers.GRU(2, name="my_gru")
    with pytest.raises(ValueError, match=r"my_gru.*at least one time step"):
        layer.build((0, 3))
    model = models.Sequential([layers.SimpleRNN(2, name="rnn", input_shape=(4, 3))])
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 4, 3\)"):
        model.predict(np.zeros((2, 4, 5), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"rnn.*3 features.*\(2, 4, 5\)"):
        model.layers[0].forward(NumpyOps(), np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"rnn.*3-D.*\(2, 4\)"):
        model.layers[0].forward(NumpyOps(), np.zeros((2, 4), np.float32))
    emb = models.Sequential([layers.Embedding(5, 2, name="emb", input_shape=(3,))])
    for bad in ([[0, 1, 5]], [[0, -1, 2]], [[0.5, 1, 2]]):
        with pytest.raises(ValueError, match=r"emb.*\(1, 3\)"):
            emb.predict(np.array(bad), verbose=0)
    with pytest.raises(ValueError, match="softmax"):
        layers.SimpleRNN(3, activation="softmax")
    with pytest.raises(ValueError, match="merge_mode"):
        layers.Bidirectional(layers.LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="dropout"):
        layers.LSTM(2, dropout=1.0)


def test_embedding_float_whole_numbers_are_accepted(backend):
    model = models.Sequential([layers.Embedding(5, 2, input_shape=(3,))])
    ints = np.array([[0, 1, 4]])
    np.testing.assert_array_equal(model.predict(ints.astype(np.float32), verbose=0),
                                  model.predict(ints, verbose=0))
    table = model.layers[0].embeddings.value
    assert np.abs(table).max() <= 0.05          # Keras' RandomUniform(-0.05, 0.05)
