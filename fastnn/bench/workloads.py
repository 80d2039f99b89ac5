"""The benchmark workloads of /work/shared/workloads.md: model builders, data, GEMM shapes.

A model workload is a ``ModelWorkload`` in ``WORKLOADS``; adding one (W3, W4)
is one more ``register(ModelWorkload(...))`` call with a builder and a data
function. Builders read fastnn's generator, so ``fastnn.set_seed(s)`` before
``build()`` gives the same initial weights on every backend.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fastnn import layers, models, optimizers
from fastnn.bench import gpt


@dataclass(frozen=True)
class ModelWorkload:
    """One model workload: what to build, what data, which call is timed."""

    name: str                       # "W1", "W1-infer", ...
    description: str                # one line for the table / JSON
    build: Callable                 # () -> a compiled fastnn model
    make_data: Callable             # (n, np.random.Generator) -> (x, y)
    batch_size: int
    n_full: int                     # samples per epoch in --full (workloads.md)
    n_quick: int                    # samples per epoch in the default quick mode
    train: bool = True              # True: time model.fit epochs; False: model.predict
    torch_twin: str = None          # fastnn.bench.peers' builder of its PyTorch twin, if
                                    # not the layer-by-layer mirror of a Sequential model
    flops: float = 0                # FLOPs a sample's training step needs (0: not
                                    # reported); the table then shows % of FMA peak
    tokens: int = 0                 # > 0: report tokens/s, this many tokens per sample
    generate: int = 0               # > 0: time generating this many tokens per prompt
                                    # (fastnn.decoding, KV cache) instead of predict

    @property
    def unit(self):
        return "tokens/s" if self.tokens or self.generate else "samples/s"

    def per_sample(self):
        """The units (samples or tokens) one sample of the data counts for."""
        return self.generate or self.tokens or 1


WORKLOADS = {}


def register(workload):
    """Add a model workload to ``WORKLOADS`` (by its name); returns it."""
    WORKLOADS[workload.name] = workload
    return workload


# ---- builders --------------------------------------------------------------------

def build_w1():
    """W1: Dense 10->64 relu ->32 relu ->1 linear, MSE, Adam(1e-3)."""
    model = models.Sequential([
        layers.Dense(64, activation="relu", input_shape=(10,)),
        layers.Dense(32, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3), loss="mse")
    return model


def build_w2():
    """W2: Dense 784->512 relu ->512 relu ->10 softmax, categorical cross-entropy, Adam."""
    model = models.Sequential([
        layers.Dense(512, activation="relu", input_shape=(784,)),
        layers.Dense(512, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy")
    return model


def build_w3():
    """W3: Conv2D 32 3x3 relu -> Conv2D 64 3x3 relu -> MaxPool 2x2 -> Flatten -> Dense 128
    relu -> Dense 10 softmax on 28x28x1 images, categorical cross-entropy, Adam."""
    model = models.Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy")
    return model


def _dense_flops(*sizes):
    """A training step's FLOPs per sample for an MLP of these layer sizes: each
    layer's 2 * in * out forward, three times (the backward costs two)."""
    return 3 * sum(2 * a * b for a, b in zip(sizes, sizes[1:]))


# ---- data ------------------------------------------------------------------------

def regression_data(n, rng, features=10):
    """float32 inputs (n, features) in [-1, 1) and a smooth float32 target (n, 1)."""
    x = rng.uniform(-1.0, 1.0, size=(n, features)).astype(np.float32)
    y = (np.sin(x[:, :1] * 3.0) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    return x, y


def classification_data(n, rng, features=784, classes=10):
    """float32 inputs (n, features) in [0, 1) and one-hot float32 targets (n, classes)."""
    x = rng.random(size=(n, features), dtype=np.float32)
    labels = rng.integers(0, classes, size=n)
    y = np.zeros((n, classes), dtype=np.float32)
    y[np.arange(n), labels] = 1.0
    return x, y


def image_data(n, rng, side=28, classes=10):
    """float32 NHWC images (n, side, side, 1) in [0, 1) and one-hot targets (n, classes)."""
    x, y = classification_data(n, rng, features=side * side, classes=classes)
    return x.reshape(n, side, side, 1), y


register(ModelWorkload(
    "W1", "MLP 10-64-32-1, MSE, Adam, train", build_w1, regression_data,
    batch_size=32, n_full=8192, n_quick=4096))
register(ModelWorkload(
    "W1-infer", "W1's model, predict", build_w1, regression_data,
    batch_size=1024, n_full=8192, n_quick=8192, train=False))
register(ModelWorkload(
    "W2", "MLP 784-512-512-10, softmax CE, Adam, train", build_w2, classification_data,
    batch_size=128, n_full=8192, n_quick=2048, flops=_dense_flops(784, 512, 512, 10)))
register(ModelWorkload(
    "W3", "CNN conv32-conv64-pool-128-10 on 28x28x1, softmax CE, Adam, train", build_w3,
    image_data, batch_size=64, n_full=2048, n_quick=64,
    flops=3 * 2 * (26 * 26 * 32 * 9 + 24 * 24 * 64 * 9 * 32 + 12 * 12 * 64 * 128 + 128 * 10)))


def build_w4(recurrent="SimpleRNN"):
    """W4: SimpleRNN(128, tanh) (or LSTM(128)) over 50 steps of 32 features, last
    state -> Dense 10 softmax, categorical cross-entropy, Adam."""
    model = models.Sequential([
        getattr(layers, recurrent)(128, input_shape=(50, 32)),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy")
    return model


def sequence_data(n, rng, steps=50, features=32, classes=10):
    """float32 sequences (n, steps, features) in [0, 1) and one-hot targets (n, classes)."""
    x, y = classification_data(n, rng, features=steps * features, classes=classes)
    return x.reshape(n, steps, features), y


register(ModelWorkload(
    "W4-rnn", "SimpleRNN(128) over 50x32 -> Dense 10, softmax CE, Adam, train", build_w4,
    sequence_data, batch_size=64, n_full=2048, n_quick=128))
register(ModelWorkload(
    "W4-lstm", "LSTM(128) over 50x32 -> Dense 10, softmax CE, Adam, train",
    lambda: build_w4("LSTM"), sequence_data, batch_size=64, n_full=2048, n_quick=64,
    flops=3 * 2 * (50 * 4 * 128 * (32 + 128) + 128 * 10)))


class ResidualBlock(layers.Layer):
    """A layer of one's own, as Keras users write it: x + gain * Dense(Dense(x))."""

    def __init__(self, units, hidden, **kwargs):
        super().__init__(**kwargs)
        self.up = layers.Dense(hidden, activation="relu")
        self.down = layers.Dense(units)
        self.units = units

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(self.units,), initializer="ones", name="gain")

    def call(self, x):
        return x + self.gain * self.down(self.up(x))


def build_c1():
    """C1: a custom residual MLP: Dense 64->128 relu, two ResidualBlock(128, 256)
    (layers of one's own, traced), Dense 10 softmax, categorical cross-entropy, Adam."""
    inputs = layers.Input(shape=(64,))
    x = layers.Dense(128, activation="relu")(inputs)
    x = ResidualBlock(128, 256)(x)
    x = ResidualBlock(128, 256)(x)
    model = models.Model(inputs, layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy")
    return model


register(ModelWorkload(
    "C1", "custom residual MLP (2 traced blocks 128-256-128), softmax CE, Adam, train",
    build_c1, lambda n, rng: classification_data(n, rng, features=64),
    batch_size=64, n_full=8192, n_quick=2048, torch_twin="residual_mlp"))


register(ModelWorkload(
    "W6", "GPT 4 pre-LN blocks d128 4 heads ffn512, T=128, per-token CE, AdamW, train",
    gpt.build_w6, gpt.token_data, batch_size=32, n_full=256, n_quick=32, tokens=gpt.T,
    flops=gpt.train_flops_per_sequence(), torch_twin="gpt"))
register(ModelWorkload(
    "W6-gen", "W6's model generating 64 tokens after 64-token prompts, KV cache",
    lambda: gpt.build_w6(length=None), gpt.prompt_data, batch_size=32, n_full=32, n_quick=8,
    train=False,
    generate=gpt.T // 2, torch_twin="gpt"))


# ---- W5: GEMM shapes ---------------------------------------------------------------

@dataclass(frozen=True)
class GemmShape:
    """C (m, n) = A (m, k) @ B (k, n)."""

    m: int
    n: int
    k: int

    @property
    def label(self):
        if self.m == self.n == self.k:
            return f"square {self.m}"
        return f"{self.m}x{self.k}@{self.k}x{self.n}"

    @property
    def flops(self):
        return 2.0 * self.m * self.n * self.k


GEMM_FULL = (
    GemmShape(1024, 1024, 1024),
    GemmShape(2048, 2048, 2048),
    GemmShape(32, 64, 10),          # W1's first layer
    GemmShape(128, 512, 784),       # W2's first layer
    GemmShape(36864, 64, 288),      # W3's second conv, as im2col
    GemmShape(64, 512, 128),
)
GEMM_QUICK = (
    GemmShape(1024, 1024, 1024),
    GemmShape(32, 64, 10),
    GemmShape(128, 512, 784),
    GemmShape(9216, 64, 288),       # a quarter of the im2col rows
    GemmShape(64, 512, 128),
)


def gemm_operands(shape, rng):
    """float32 A (m, k), B (k, n) uniform in [-1, 1) and an output buffer C (m, n)."""
    a = rng.uniform(-1.0, 1.0, size=(shape.m, shape.k)).astype(np.float32)
    b = rng.uniform(-1.0, 1.0, size=(shape.k, shape.n)).astype(np.float32)
    return a, b, np.empty((shape.m, shape.n), dtype=np.float32)
