"""Symbolic tensors: what ``keras.Input`` and a layer called on them return.

A ``KerasTensor`` holds no data. It has a shape (the batch axis first; None
where a size is not known until data arrives), a dtype, and the node that
makes it. Calling layers on such tensors records a graph; ``Model(inputs,
outputs)`` then runs that graph on arrays.
"""
import collections
import importlib

import numpy as np

# Keras' (operation, node_index, tensor_index): which call of which layer made a tensor.
KerasHistory = collections.namedtuple("KerasHistory", ["operation", "node_index", "tensor_index"])


# Python operators on symbolic tensors and weights call fastnn.ops' functions,
# which register themselves here when fastnn.ops is imported (name -> function).
OPERATORS = {}
_BINARY = {"__add__": "add", "__sub__": "subtract", "__mul__": "multiply",
           "__truediv__": "divide", "__pow__": "power", "__matmul__": "matmul"}
_COMPARE = {"__lt__": "less", "__le__": "less_equal", "__gt__": "greater",
            "__ge__": "greater_equal"}
_EQUALITY = {"__eq__": "equal", "__ne__": "not_equal"}


def _operator(name):
    fn = OPERATORS.get(name)
    if fn is None:
        importlib.import_module("fastnn.ops")   # registers the operators
        fn = OPERATORS[name]
    return fn


def operator_methods(with_equality):
    """The dunder methods of a tensor-like class: arithmetic (and its reflected
    forms), unary minus, abs, comparisons (== and != when ``with_equality``), @
    and indexing, each calling the fastnn.ops function of that name."""
    methods = {}
    for dunder, name in _BINARY.items():
        methods[dunder] = lambda self, other, _n=name: _operator(_n)(self, other)
        reflected = "__r" + dunder[2:]
        methods[reflected] = lambda self, other, _n=name: _operator(_n)(other, self)
    for dunder, name in {**_COMPARE, **(_EQUALITY if with_equality else {})}.items():
        methods[dunder] = lambda self, other, _n=name: _operator(_n)(self, other)
    methods["__neg__"] = lambda self: _operator("negative")(self)
    methods["__abs__"] = lambda self: _operator("abs")(self)
    methods["__getitem__"] = lambda self, key: _operator("getitem")(self, key)
    return methods


class KerasTensor:
    """A symbolic tensor of ``shape`` (batch axis first) and ``dtype``."""

    __slots__ = ("shape", "dtype", "name", "node", "index", "__weakref__")
    __array_ufunc__ = None        # NumPy defers to our operators (array + tensor stays traced)
    __hash__ = object.__hash__    # == is symbolic (ops.equal); identity keys dicts and sets

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
        raise TypeError(f"{self!r} is symbolic: it has no value while a model is being built "
                        "or traced, so Python control flow (if, while, and, or) cannot depend "
                        "on it; use ops.where(condition, x, y) to choose between values")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} is symbolic and cannot become a NumPy array; build a "
                        "keras.Model(inputs, outputs) and call predict() on data")

    def __len__(self):
        raise TypeError(f"{self!r} is symbolic: use .shape instead of len()")

    def __iter__(self):
        raise TypeError(f"{self!r} is symbolic and cannot be iterated")


for _name, _method in operator_methods(with_equality=True).items():
    setattr(KerasTensor, _name, _method)


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
