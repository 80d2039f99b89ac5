"""Embedding (Keras'): turns integer indices into dense vectors."""
import numpy as np

from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.layers.base import Layer


class Embedding(Layer):
    """Maps each index in [0, input_dim) to a row of a trainable table (input_dim, output_dim).

    Inputs are integer indices of any shape, e.g. (batch, time); the output adds
    an axis of output_dim features. Integer inputs stay integers (the model does
    not cast them to floats); float inputs must hold whole numbers. With
    ``mask_zero=True`` index 0 is padding: the layer emits a (batch, time) mask
    that following recurrent layers use to skip those steps (Keras), so
    input_dim must then count the padding index too.
    """

    positionwise = True

    integer_input = True     # the model keeps this layer's inputs as integers

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, mask_zero=False, input_length=None, **kwargs):
        if input_length is not None and "input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)      # Keras 2's argument
        super().__init__(**kwargs)
        for what, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{self.name}: {what} must be a positive integer, got {value!r}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.embeddings_regularizer = _regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.makes_mask = self.mask_zero     # the model then asks output_mask()
        self.embeddings = None

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings",
                                          shape=(self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def check_input_shape(self, input_shape):
        pass                     # indices of any shape

    def prepare_indices(self, x, where):
        """x as C-contiguous int64 indices, or ValueError naming the layer and shapes
        (a float that is not a whole number, a negative index, one >= input_dim)."""
        x = np.asarray(x)
        if x.dtype.kind == "f":
            if not np.isfinite(x).all() or not np.array_equal(np.floor(x), x):
                raise ValueError(f"{where}: {self.name} takes integer indices; inputs {x.shape} "
                                 "hold values that are not whole numbers")
        elif x.dtype.kind not in "iu":
            raise ValueError(f"{where}: {self.name} takes integer indices, got inputs "
                             f"{x.shape} of dtype {x.dtype}")
        if x.size:
            lo, hi = x.min(), x.max()
            if lo < 0 or hi >= self.input_dim:
                raise ValueError(f"{where}: {self.name} has input_dim={self.input_dim}, so "
                                 f"indices must lie in [0, {self.input_dim}); inputs {x.shape} "
                                 f"hold values in [{lo:g}, {hi:g}]")
        return np.ascontiguousarray(x, dtype=np.int64)

    def forward(self, ops, x, training=False, ws=None):
        idx = self.prepare_indices(x, "forward") if x.dtype != np.int64 else x
        out = None if ws is None else ws.buffer("y", idx.shape + (self.output_dim,), self.dtype)
        y = ops.embedding_forward(idx, self.embeddings.value, out)
        if ws is not None:
            mask = None
            if self.mask_zero:
                mask = ws.buffer("mask", idx.shape, np.uint8)
                np.not_equal(idx, 0, out=mask, casting="unsafe")
            ws.saved = (idx, mask)
        return y

    def output_mask(self, ws):
        return ws.saved[1]

    def backward(self, ops, dy, ws, need_dx=True):
        idx, _ = ws.saved
        ops.embedding_backward(np.ascontiguousarray(dy), idx, self.grad_of(self.embeddings, ws))
        return None           # indices have no gradient

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": _initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": _regularizers.serialize(self.embeddings_regularizer),
                "mask_zero": self.mask_zero}
