"""Incremental decoding (KV cache): the outputs at each new position equal the full
forward pass's; greedy generation equals re-running the whole model; layers that
mix time steps are refused. PositionEmbedding, which decoding continues."""
import numpy as np
import pytest

import fastnn as keras
from fastnn import layers
from fastnn.bench.gpt import build_w6
from fastnn.decoding import IncrementalDecoder, generate

from testing_utils import model_gradient, model_numeric_gradient

VOCAB, T = 11, 12


def small_gpt(positions=False):
    keras.utils.set_random_seed(0)
    if not positions:
        return build_w6(vocab=VOCAB, length=T, d_model=8, heads=2, ffn=16, blocks=2)
    tokens = keras.Input((T,), dtype="int32")
    x = layers.Embedding(VOCAB, 8)(tokens)
    x = layers.Add()([x, layers.PositionEmbedding(T)(x)])
    h = layers.LayerNormalization()(x)
    x = x + layers.MultiHeadAttention(2, 4)(h, h, use_causal_mask=True)
    return keras.Model(tokens, layers.Dense(VOCAB)(layers.LayerNormalization()(x)))


@pytest.mark.parametrize("positions", [False, True])
def test_decoded_outputs_equal_the_full_forward(backend, rng, positions):
    model = small_gpt(positions)
    x = rng.integers(0, VOCAB, size=(3, T))
    full = model.predict(x, verbose=0)
    decoder = IncrementalDecoder(model, max_length=T)
    decoder.reset(batch_size=3)
    pieces = [decoder(x[:, :5])]                           # a prompt: causal from 0
    pieces += [decoder(x[:, 5:6]), decoder(x[:, 6:7])]     # one token at a time
    pieces.append(decoder(x[:, 7:10]))                     # a chunk after a prefix
    pieces.append(decoder(x[:, 10:]))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="max_length"):
        decoder(x[:, :1])


def test_greedy_generation_equals_rerunning_the_model(rng):
    model = small_gpt()
    prompt = rng.integers(0, VOCAB, size=(2, 4))
    out = generate(model, prompt, steps=5, temperature=0.0)
    assert out.shape == (2, 9) and (out[:, :4] == prompt).all()
    seq = prompt
    for _ in range(5):
        logits = model.predict(np.pad(seq, ((0, 0), (0, T - seq.shape[1]))), verbose=0)
        seq = np.concatenate([seq, logits[:, seq.shape[1] - 1].argmax(-1)[:, None]], axis=1)
    np.testing.assert_array_equal(out, seq)
    sampled = generate(model, prompt, steps=5, temperature=1.0, seed=3)
    np.testing.assert_array_equal(sampled, generate(model, prompt, steps=5, temperature=1.0,
                                                    seed=3))
    assert sampled.min() >= 0 and sampled.max() < VOCAB


def test_models_that_mix_time_steps_are_refused():
    tokens = keras.Input((T,), dtype="int32")
    h = layers.LSTM(4, return_sequences=True)(layers.Embedding(VOCAB, 4)(tokens))
    with pytest.raises(ValueError, match="mixes time steps"):
        IncrementalDecoder(keras.Model(tokens, layers.Dense(VOCAB)(h)), max_length=T)
    h = layers.Embedding(VOCAB, 4)(tokens)
    h = layers.MultiHeadAttention(2, 2)(h, h)                 # not causal
    decoder = IncrementalDecoder(keras.Model(tokens, h), max_length=T)
    decoder.reset(1)
    with pytest.raises(ValueError, match="causal self-attention"):
        decoder(np.zeros((1, 3), np.int64))


def test_position_embedding(rng):
    layer = layers.PositionEmbedding(6)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    y = layer(x)
    table = layer.get_weights()[0]
    assert layer.embeddings.shape == (6, 3)
    np.testing.assert_array_equal(y, np.broadcast_to(table[:4], (2, 4, 3)))
    with pytest.raises(ValueError, match="embeds up to 6"):
        layer(keras.Input((7, 3)))
    keras.set_backend("numpy")
    try:
        keras.utils.set_random_seed(1)
        inputs = keras.Input((4, 3), dtype="float64")
        h = layers.Dense(3, dtype="float64")(inputs)
        out = layers.Add(dtype="float64")([h, layers.PositionEmbedding(6, dtype="float64")(h)])
        model = keras.Model(inputs, layers.Dense(2, activation="tanh", dtype="float64")(out))
        model.compile(optimizer="sgd", loss="mse")
        x, y = rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 4, 2))
        np.testing.assert_allclose(model_gradient(model, x, y),
                                   model_numeric_gradient(model, x, y), rtol=1e-6, atol=1e-9)
    finally:
        keras.set_backend("compiled")
