"""keras.io's "Text classification with Transformer", unchanged but for the import.

    python examples/text_classifier_transformer.py [--quick]

A TransformerBlock and a TokenAndPositionEmbedding written as layers of your own
(MultiHeadAttention, LayerNormalization, a Sequential feed-forward network,
positions from ops.arange), GlobalAveragePooling1D, pad_sequences and a
functional Model. fastnn downloads nothing, so instead of IMDB the reviews are
generated: word 1..vocab-1 sequences of varied length where a few "positive"
and "negative" words decide the label, 5% of labels flipped -- a bag-of-words
model scores about 0.95 on them, and so should the transformer.
"""
import sys

import numpy as np

import fastnn as keras            # the only change from the keras.io script
from fastnn import layers, ops


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


def generated_reviews(n, vocab_size, rng, min_len=20, max_len=200, cue_words=20, noise=0.05):
    """Reviews as lists of word ids: neutral words, plus a few of ``cue_words``
    positive (ids 1..cue_words) or negative (the next cue_words) words; the label
    is 1 when positive words outnumber negative ones (always by at least 2), and
    flipped for a fraction ``noise`` of the reviews (so about 95% is the best any
    model can score)."""
    reviews, labels = [], rng.integers(0, 2, n)
    for label in labels:
        length = int(rng.integers(min_len, max_len + 1))
        words = rng.integers(2 * cue_words + 1, vocab_size, size=length)
        majority, minority = int(rng.integers(3, 6)), int(rng.integers(0, 2))
        good = rng.integers(1, cue_words + 1, size=majority if label else minority)
        bad = rng.integers(cue_words + 1, 2 * cue_words + 1, size=minority if label else majority)
        cues = np.concatenate([good, bad])
        words[rng.choice(length, size=cues.size, replace=False)] = cues
        reviews.append(words.tolist())
    flipped = rng.random(n) < noise
    return reviews, np.where(flipped, 1 - labels, labels)


def main(quick=False):
    vocab_size = 20000  # Only consider the top 20k words
    maxlen = 200  # Only consider the first 200 words of each movie review
    n_train, n_val = (1000, 500) if quick else (25000, 25000)
    rng = np.random.default_rng(0)
    x_train, y_train = generated_reviews(n_train, vocab_size, rng)
    x_val, y_val = generated_reviews(n_val, vocab_size, rng)
    print(len(x_train), "Training sequences")
    print(len(x_val), "Validation sequences")
    x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
    x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)

    keras.utils.set_random_seed(0)
    embed_dim = 32  # Embedding size for each token
    num_heads = 2  # Number of attention heads
    ff_dim = 32  # Hidden layer size in feed forward network inside transformer

    inputs = layers.Input(shape=(maxlen,))
    embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
    x = embedding_layer(inputs)
    transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
    x = transformer_block(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax")(x)

    model = keras.Model(inputs=inputs, outputs=outputs)
    model.summary()
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    history = model.fit(
        x_train, y_train, batch_size=32, epochs=2 if quick else 3,
        validation_data=(x_val, y_val)
    )
    print(f"validation accuracy {history.history['val_accuracy'][-1]:.3f}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
