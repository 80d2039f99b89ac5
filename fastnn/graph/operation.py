"""Primitive operations: what fastnn.ops records in a graph, and how it records it.

An ``Operation`` is a graph node's operation without weights: ``ops.add(x, y)``
on symbolic tensors makes one and a Node for the call; on arrays it computes
at once with the same forward code. The executor runs operations exactly as
it runs layers (``forward`` / ``backward`` on the current backend), so a
custom layer traced into operations keeps compiled speed.

Inside a trace (a custom layer's ``call`` run on symbolic inputs), two more
things become symbolic: a layer weight (read through its ``WeightRead``
operation, whose backward writes the weight's gradient) and a plain array
(a ``Constant``: a value that depends on no weight folds into the graph).
"""
import contextlib
import contextvars

import numpy as np

from fastnn.graph.node import Node
from fastnn.graph.tensor import KerasTensor, is_symbolic
from fastnn.naming import snake_case, unique_name

# True while a custom layer's call() (or a custom loss) is being traced.
_tracing = contextvars.ContextVar("fastnn_tracing", default=False)


@contextlib.contextmanager
def tracing():
    """Trace: weights and arrays met by ops become graph nodes."""
    token = _tracing.set(True)
    try:
        yield
    finally:
        _tracing.reset(token)


def in_trace():
    return _tracing.get()


class Operation:
    """A primitive op (no weights). Subclasses define ``compute_output_spec``,
    ``forward`` and, when ``differentiable``, ``backward``."""

    takes_list = True          # the executor hands forward a list of the inputs
    makes_mask = False
    supports_masking = False
    differentiable = True
    trainable = True
    # Whether each position (time step) of the output depends only on the same
    # position of the inputs, so incremental decoding can run it on new tokens alone.
    positionwise = False
    weights = trainable_weights = non_trainable_weights = ()

    def __init__(self, name=None):
        self.name = name if name is not None else unique_name(snake_case(type(self).__name__))
        self._inbound_nodes = []

    def compute_output_spec(self, *specs):
        """(shape, dtype) of each output for inputs of ``specs`` ((shape, dtype)
        pairs, batch axis included, None for unknown sizes)."""
        raise NotImplementedError

    def forward(self, ops, xs, training=False, ws=None):
        raise NotImplementedError

    def backward(self, ops, dy, ws, need_dx=True):
        raise ValueError(f"{self.name}: {type(self).__name__} is not differentiable")

    def output_mask(self, ws):
        return None

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def count_params(self):
        return 0

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def apply(op, *args):
    """``op`` on ``args``: symbolic outputs (a recorded node) when any argument is
    symbolic (or, inside a trace, a weight); else the computed arrays."""
    if any(is_symbolic(a) for a in args) or (in_trace() and any(_is_weight(a) for a in args)):
        return record(op, [as_symbolic(a) for a in args])
    from fastnn.backend import current_ops
    return op.forward(current_ops(), [as_array(a) for a in args], False, None)


def record(op, tensors):
    """A node of ``op`` on the symbolic ``tensors``; its output tensor(s)."""
    specs = op.compute_output_spec(*[(t.shape, t.dtype) for t in tensors])
    outputs = [KerasTensor(shape, dtype, name=op.name) for shape, dtype in specs]
    Node(op, tensors, outputs, list_input=True)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _is_weight(value):
    return getattr(value, "is_weight", False)


def as_array(value):
    """A plain value (array, scalar, weight) as a NumPy array."""
    if _is_weight(value):
        return value.value
    return np.asarray(value)


def as_symbolic(value):
    """A symbolic tensor for ``value``: itself, a weight read, or a constant."""
    if isinstance(value, KerasTensor):
        return value
    if _is_weight(value):
        return record(value.reader(), [])
    return record(Constant(np.asarray(value)), [])


class Constant(Operation):
    """A value that depends on no weight, folded into the graph."""

    differentiable = False
    positionwise = True

    def __init__(self, value, name=None):
        super().__init__(name)
        self.value = np.asarray(value)

    def compute_output_spec(self):
        return [(self.value.shape, self.value.dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        return self.value

    def get_config(self):
        return {"name": self.name, "value": self.value.tolist(), "dtype": self.value.dtype.name}

    @classmethod
    def from_config(cls, config):
        return cls(np.asarray(config["value"], dtype=config["dtype"]), name=config.get("name"))


class WeightRead(Operation):
    """Reading one layer weight inside traced code: its value forward, its gradient
    backward (summed over the reads when a weight is read more than once: the
    executor treats the reads as calls of one layer)."""

    positionwise = True

    def __init__(self, weight):
        super().__init__(f"read_{weight.name}")
        self.weight = weight

    @property
    def weights(self):
        return [self.weight]

    @property
    def trainable_weights(self):
        owner = self.weight.owner
        trainable = self.weight.trainable and (owner is None or owner.trainable)
        return [self.weight] if trainable else []

    @property
    def non_trainable_weights(self):
        return [] if self.trainable_weights else [self.weight]

    @property
    def dtype(self):
        return self.weight.value.dtype

    def compute_output_spec(self):
        return [(self.weight.shape, self.weight.value.dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        return self.weight.value

    def backward(self, ops, dy, ws, need_dx=True):
        if self.trainable_weights:
            grad = self.grad_of(self.weight, ws)
            if grad is not None:
                np.copyto(grad, dy)          # a copy, not math
        return []

    def grad_of(self, weight, ws):
        from fastnn.layers.base import Layer
        return Layer.grad_of(self, weight, ws, optional=True)
