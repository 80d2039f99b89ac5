"""A mini GPT: a character-level decoder-only transformer learns two-digit addition,
then writes answers with a KV cache.

    python examples/mini_gpt.py [--quick]

Each example is a line like ``23+58=180``: the sum is written least significant
digit first (81 -> "180", three digits), the order the carries flow in, as in
minGPT's adder. The model sees the line shifted by one character and learns the
next one, with a per-token sample weight so only the answer's characters count.
A fifth of the 10,000 problems is held out; the model answers them by greedy
decoding from ``23+58=`` (fastnn.decoding: each new character reuses the keys
and values of the earlier ones, O(T) per character), then samples a few with
a temperature.
"""
import sys
import time

import numpy as np

import fastnn as keras
from fastnn import layers
from fastnn.decoding import generate

CHARS = "0123456789+="
VOCAB, LENGTH = len(CHARS), 9          # "ab+cd=sss": 9 characters, 8 predicted


def encode(lines):
    return np.array([[CHARS.index(c) for c in line] for line in lines], dtype=np.int32)


def decode(ids):
    return "".join(CHARS[i] for i in ids)


def problems(pairs):
    return [f"{a:02d}+{b:02d}={str(a + b).zfill(3)[::-1]}" for a, b in pairs]


def mini_gpt(d_model=64, heads=4, blocks=2, ffn=256):
    """Pre-LN decoder blocks (causal self-attention and a GELU feed-forward, each
    around a residual), token and position embeddings, untied output layer."""
    tokens = keras.Input(shape=(LENGTH - 1,), dtype="int32")
    x = layers.Embedding(VOCAB, d_model)(tokens)
    x = layers.Add()([x, layers.PositionEmbedding(LENGTH)(x)])
    for _ in range(blocks):
        h = layers.LayerNormalization(epsilon=1e-5)(x)
        h = layers.MultiHeadAttention(heads, d_model // heads)(h, h, use_causal_mask=True)
        x = layers.Add()([x, h])
        h = layers.LayerNormalization(epsilon=1e-5)(x)
        h = layers.Dense(ffn, activation="gelu")(h)
        x = layers.Add()([x, layers.Dense(d_model)(h)])
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    return keras.Model(tokens, layers.Dense(VOCAB)(x), name="mini_gpt")


def main(quick=False):
    rng = np.random.default_rng(0)
    pairs = [(a, b) for a in range(100) for b in range(100)]
    order = rng.permutation(len(pairs))
    held_out = [pairs[i] for i in order[:2000]]
    train = [pairs[i] for i in order[2000:]]
    data = encode(problems(train))
    x, y = data[:, :-1], data[:, 1:]
    weights = np.zeros(y.shape, dtype=np.float32)
    weights[:, 5:] = 1.0                    # the targets after "=": the answer's digits

    keras.utils.set_random_seed(0)
    model = mini_gpt(d_model=32 if quick else 64, blocks=1 if quick else 2)
    epochs, batch = (3, 64) if quick else (40, 64)
    steps = epochs * -(-len(x) // batch)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps - steps // 10, warmup_target=3e-3, warmup_steps=steps // 10)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01,
                                                   global_clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.summary()
    start = time.perf_counter()
    history = model.fit(x, y, sample_weight=weights, batch_size=batch, epochs=epochs,
                        verbose=2)
    print(f"trained in {time.perf_counter() - start:.1f} s, "
          f"final loss {history.history['loss'][-1]:.3g}")

    prompts = encode([line[:6] for line in problems(held_out)])
    start = time.perf_counter()
    answers = generate(model, prompts, steps=3, temperature=0.0)
    seconds = time.perf_counter() - start
    correct = [decode(row) == want for row, want in zip(answers, problems(held_out))]
    print(f"held-out problems answered exactly: {np.mean(correct):.1%} "
          f"({len(prompts) * 3 / seconds:,.0f} characters/s generated)")
    for line in problems(held_out[:3]):
        sampled = generate(model, encode([line[:6]]), steps=3, temperature=0.5, seed=1)
        answer = decode(sampled[0])
        print(f"  {line[:6]}{answer[6:][::-1].lstrip('0') or '0'}   "
              f"(true {int(line[:2]) + int(line[3:5])})")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
