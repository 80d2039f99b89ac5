"""A layer's weight (Keras' Variable): a named array that belongs to a layer.

``value`` and ``grad`` are views into the owning model's flat buffers once the
model is compiled. A weight behaves like a tensor in arithmetic and in
``fastnn.ops``: on its own it is its value (``w * 2`` is an array); inside a
custom layer's traced ``call`` it is a graph input whose gradient reaches the
weight (``x * self.w``). Keras' ``numpy()``, ``assign``, ``assign_add`` and
``assign_sub`` change the value in place.
"""
import numpy as np

from fastnn.graph.tensor import operator_methods


class Weight:
    """One named weight of a layer (``owner``); ``regularizer`` (a
    fastnn.regularizers.Regularizer or None) adds its penalty to the loss."""

    __slots__ = ("name", "shape", "value", "grad", "trainable", "regularizer", "owner",
                 "_reader")
    is_weight = True
    __array_ufunc__ = None        # NumPy defers to our operators (x * w stays traced)

    def __init__(self, name, value, trainable, regularizer=None, owner=None):
        self.name = name
        self.shape = value.shape
        self.value = value
        self.grad = None
        self.trainable = trainable
        self.regularizer = regularizer
        self.owner = owner
        self._reader = None

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def path(self):
        """``layer/weight``, as Keras names variables."""
        return self.name if self.owner is None else f"{self.owner.name}/{self.name}"

    def reader(self):
        """The operation that reads this weight in traced code (one per weight, so
        that several reads sum their gradients)."""
        if self._reader is None:
            from fastnn.graph.operation import WeightRead
            self._reader = WeightRead(self)
        return self._reader

    # ---- Keras' Variable API --------------------------------------------------------
    def numpy(self):
        """A copy of the value."""
        return self.value.copy()

    def assign(self, value):
        """Set the value in place (same shape); returns self."""
        value = np.asarray(value)
        if value.shape != self.shape and value.size != 1:
            raise ValueError(f"weight {self.path!r}: cannot assign shape {value.shape} to "
                             f"shape {self.shape}")
        np.copyto(self.value, value, casting="unsafe")
        return self

    def assign_add(self, value):
        return self.assign(self.value + np.asarray(value))

    def assign_sub(self, value):
        return self.assign(self.value - np.asarray(value))

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return f"<Weight path={self.path!r} shape={self.shape} dtype={self.dtype.name}>"


# Arithmetic, comparisons (not ==), @ and indexing through fastnn.ops.
for _name, _method in operator_methods(with_equality=False).items():
    setattr(Weight, _name, _method)

# Keras' name
Variable = Weight
