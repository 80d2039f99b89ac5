"""W6 of /work/shared/workloads.md: a small GPT (decoder-only transformer).

Token Embedding(96 -> 128), four pre-LN blocks (LayerNormalization, causal
MultiHeadAttention 4 heads x 32, residual add, LayerNormalization, Dense 512
gelu, Dense 128, residual add), a final LayerNormalization and Dense 96 logits;
sequences of 128 tokens, sparse cross-entropy from logits on every token,
AdamW(1e-3). Built with the functional API from built-in layers only, so its
PyTorch twin (fastnn.bench.torch_gpt) can mirror it layer by layer.
"""
import numpy as np

from fastnn import layers, losses, models, optimizers

VOCAB, T, D_MODEL, HEADS, FFN, BLOCKS = 96, 128, 128, 4, 512, 4


def build_w6(vocab=VOCAB, length=T, d_model=D_MODEL, heads=HEADS, ffn=FFN, blocks=BLOCKS):
    """The W6 model, compiled (sizes as workloads.md unless given; ``length`` None:
    sequences of any length, as generation feeds them)."""
    tokens = layers.Input(shape=(length,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab, d_model, name="token_embedding")(tokens)
    for b in range(blocks):
        h = layers.LayerNormalization(name=f"block{b}_ln1")(x)
        h = layers.MultiHeadAttention(heads, d_model // heads, name=f"block{b}_attention")(
            h, h, use_causal_mask=True)
        x = layers.Add(name=f"block{b}_residual1")([x, h])
        h = layers.LayerNormalization(name=f"block{b}_ln2")(x)
        h = layers.Dense(ffn, activation="gelu", name=f"block{b}_ffn_up")(h)
        h = layers.Dense(d_model, name=f"block{b}_ffn_down")(h)
        x = layers.Add(name=f"block{b}_residual2")([x, h])
    x = layers.LayerNormalization(name="final_ln")(x)
    logits = layers.Dense(vocab, name="logits")(x)
    model = models.Model(tokens, logits, name="w6_gpt")
    model.compile(optimizer=optimizers.AdamW(learning_rate=1e-3),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def train_flops_per_sequence(vocab=VOCAB, length=T, d_model=D_MODEL, ffn=FFN, blocks=BLOCKS):
    """The FLOPs one sequence's training step needs (forward once, backward twice
    that): the projections, feed-forward and logits per token, and causal
    attention's scores and weighted values (query i reads i + 1 keys)."""
    per_token = blocks * (2 * 4 * d_model * d_model + 2 * 2 * d_model * ffn) \
        + 2 * d_model * vocab
    attention = blocks * 2 * 2 * d_model * (length * (length + 1) // 2)
    return 3 * (per_token * length + attention)


def token_data(n, rng, vocab=VOCAB, length=T):
    """n sequences of ``length`` token ids with some structure (each token a small
    step from the last, mod vocab), and the next-token targets: (n, length) int32 each."""
    steps = rng.integers(-3, 4, size=(n, length + 1))
    steps[:, 0] = rng.integers(0, vocab, size=n)
    seq = (np.cumsum(steps, axis=1) % vocab).astype(np.int32)
    return seq[:, :-1].copy(), seq[:, 1:].copy()


def prompt_data(n, rng, vocab=VOCAB, length=T):
    """Prompts of half a sequence for the generation rows (targets unused)."""
    x, y = token_data(n, rng, vocab, length)
    return x[:, :length // 2].copy(), y[:, :length // 2].copy()
