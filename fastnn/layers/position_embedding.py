"""PositionEmbedding (keras_hub's): a trained embedding of each position of a
sequence, to add to its token embeddings."""
import numpy as np

from fastnn import initializers as _initializers
from fastnn.layers.base import Layer


class PositionEmbedding(Layer):
    """``PositionEmbedding(sequence_length)(x)`` for x (batch, T, features), T <= the
    ``sequence_length``: the embeddings of positions 0..T-1, (batch, T, features),
    the same for every sample -- add them to the token embeddings. Weight:
    ``embeddings`` (sequence_length, features). In incremental decoding
    (fastnn.decoding) the positions start where the sequence so far ends."""

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) \
                or sequence_length < 1:
            raise ValueError(f"{self.name}: sequence_length must be a positive integer, got "
                             f"{sequence_length!r}")
        self.sequence_length = sequence_length
        self.initializer = _initializers.get(initializer)
        self.embeddings = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"{self.name}: expects (batch, T, features) inputs with known "
                             f"features, got {(None,) + input_shape}")
        self.embeddings = self.add_weight(name="embeddings",
                                          shape=(self.sequence_length, input_shape[-1]),
                                          initializer=self.initializer)
        super().build(input_shape)

    def check_input_shape(self, input_shape):
        input_shape = tuple(input_shape)
        length = input_shape[0] if len(input_shape) == 2 else None
        if len(input_shape) != 2 or input_shape[-1] != self.embeddings.shape[1] or \
                (length is not None and length > self.sequence_length):
            raise ValueError(f"layer {self.name!r} embeds up to {self.sequence_length} "
                             f"positions of {self.embeddings.shape[1]} features, called on "
                             f"{(None,) + input_shape}")

    def forward(self, ops, x, training=False, ws=None, start=0):
        t = x.shape[1]
        if start + t > self.sequence_length:
            raise ValueError(f"{self.name}: positions {start}..{start + t - 1} are beyond its "
                             f"sequence_length {self.sequence_length}")
        y = np.empty(x.shape, self.dtype) if ws is None else ws.buffer("y", x.shape, self.dtype)
        np.copyto(y, self.embeddings.value[None, start:start + t])    # a broadcast copy
        if ws is not None:
            ws.saved = (t, start)
        return y

    def forward_incremental(self, ops, x, ws, state, start):
        """The embeddings of positions start..start+T-1 (decoding)."""
        return self.forward(ops, x, False, ws, start)

    def backward(self, ops, dy, ws, need_dx=True):
        t, start = ws.saved
        grad = self.grad_of(self.embeddings, ws)
        grad.fill(0)
        ops.reduce("sum", dy, axes=(0,), out=grad[start:start + t])
        return None          # the input gives only the shape: no gradient flows to it

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": _initializers.serialize(self.initializer)}

