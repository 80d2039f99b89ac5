"""Symbolic tensors: what ``keras.Input`` and a layer called on them return.

A ``KerasTensor`` holds no data. It has a shape (the batch axis first; None
where a size is not known until data arrives), a dtype, and the node that
makes it. Calling layers on such tensors records a graph; ``Model(inputs,
outputs)`` then runs that graph on arrays.
"""
import collections

import numpy as np

# Keras' (operation, node_index, tensor_index): which call of which layer made a tensor.
KerasHistory = collections.namedtuple("KerasHistory", ["operation", "node_index", "tensor_index"])


class KerasTensor:
    """A symbolic tensor of ``shape`` (batch axis first) and ``dtype``."""

    __slots__ = ("shape", "dtype", "name", "node", "index", "__weakref__")

    def __init__(self, shape, dtype, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.node = None     # the Node whose output this is (set by the Node)
        self.index = 0       # which of that node's outputs

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def _keras_history(self):
        """Keras' (operation, node_index, tensor_index) of this tensor."""
        if self.node is None:
            return None
        op = self.node.operation
        return KerasHistory(op, op._inbound_nodes.index(self.node), self.index)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"

    # A symbolic tensor has no value: refuse what would need one, clearly.
    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic: it has no truth value while a model is being "
                        "built (Python control flow cannot depend on it)")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} is symbolic and cannot become a NumPy array; build a "
                        "keras.Model(inputs, outputs) and call predict() on data")

    def __len__(self):
        raise TypeError(f"{self!r} is symbolic: use .shape instead of len()")

    def __iter__(self):
        raise TypeError(f"{self!r} is symbolic and cannot be iterated")


def is_symbolic(x):
    return isinstance(x, KerasTensor)


def flatten_structure(value):
    """The leaves of a tensor, or of a (possibly nested) list, tuple or dict of them,
    in order (dicts by their own key order)."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in flatten_structure(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in flatten_structure(v)]
    return [value]


def any_symbolic(value):
    return any(is_symbolic(leaf) for leaf in flatten_structure(value))
