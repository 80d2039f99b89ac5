"""Free (None) axes: variable-length sequences through Embedding, recurrent and
convolutional layers, batches of different lengths, and pad_sequences."""
import numpy as np
import pytest

import fastnn
import fastnn as keras
from fastnn import layers, models


def test_pad_sequences_gives_kerass_documented_outputs():
    sequence = [[1], [2, 3], [4, 5, 6]]
    out = keras.utils.pad_sequences(sequence)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(keras.utils.pad_sequences(sequence, value=-1),
                                  [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(keras.utils.pad_sequences(sequence, padding="post"),
                                  [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(keras.utils.pad_sequences(sequence, maxlen=2),
                                  [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(
        keras.preprocessing.sequence.pad_sequences(sequence, maxlen=2, truncating="post"),
        [[0, 1], [2, 3], [4, 5]])


def test_pad_sequences_options_and_errors():
    steps = [np.ones((2, 3)), np.zeros((0, 3)), np.full((4, 3), 2.0)]
    out = keras.utils.pad_sequences(steps, dtype="float32", padding="post", value=0.5)
    assert out.shape == (3, 4, 3) and out.dtype == np.float32
    assert (out[1] == 0.5).all() and (out[0, 2:] == 0.5).all() and (out[2] == 2).all()
    assert keras.utils.pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    with pytest.raises(ValueError, match="padding"):
        keras.utils.pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        keras.utils.pad_sequences([[1]], truncating="both")
    with pytest.raises(ValueError, match="steps of sequence 1"):
        keras.utils.pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="maxlen"):
        keras.utils.pad_sequences([[1]], maxlen=-1)


def sequence_classifier(kind):
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(30, 8, mask_zero=(kind == "lstm"))(inputs)
    if kind == "lstm":
        x = layers.LSTM(6)(x)
    else:
        x = layers.Conv1D(6, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling1D(2)(x)
        x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


@pytest.mark.parametrize("kind", ["lstm", "conv"])
def test_batches_of_different_lengths_train_and_predict(backend, kind):
    fastnn.set_seed(0)
    model = sequence_classifier(kind)
    assert model.input_shape == (None, None)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    rng = np.random.default_rng(0)
    for length in (7, 12, 5):
        x = rng.integers(1, 30, size=(16, length))
        y = (x[:, 0] > 15).astype(int)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        assert model.predict(x, verbose=0).shape == (16, 2)
        model.train_on_batch(x[:4], y[:4])
    # one model, one result per sequence, whatever else shares its batch
    short = rng.integers(1, 30, size=(3, 9))
    np.testing.assert_allclose(model.predict(short, verbose=0)[:1],
                               model.predict(short[:1], verbose=0), rtol=1e-5, atol=1e-6)


def test_masked_padded_sequences_predict_as_unpadded_ones(backend):
    fastnn.set_seed(1)
    model = sequence_classifier("lstm")
    seqs = [[3, 4, 5], [6, 7]]
    padded = keras.utils.pad_sequences(seqs, maxlen=6, padding="post")
    alone = [model.predict(np.array([s]), verbose=0) for s in seqs]
    together = model.predict(padded, verbose=0)
    for k in range(2):
        np.testing.assert_allclose(together[k], alone[k][0], rtol=1e-5, atol=1e-6)


def test_a_free_axis_must_match_where_it_is_known():
    model = sequence_classifier("conv")
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, None\), got \(2, 3, 1\)"):
        model.predict(np.ones((2, 3, 1), np.int64), verbose=0)
    rnn = layers.LSTM(3)
    with pytest.raises(ValueError, match="features axis"):
        rnn(keras.Input(shape=(5, None)))


def test_sequential_with_a_free_time_axis(backend):
    fastnn.set_seed(2)
    model = models.Sequential([layers.LSTM(4, input_shape=(None, 3)), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(2)
    for length in (4, 9):
        x = rng.standard_normal((8, length, 3)).astype(np.float32)
        model.fit(x, x[:, -1, :1], epochs=1, verbose=0)
    assert model.input_shape == (None, None, 3)
