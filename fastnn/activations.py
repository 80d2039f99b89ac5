"""Activation functions by Keras name.

Layers keep the activation's name and run it through the backend's kernels.
The functions here compute on arrays at once, and inside a layer's ``call``
(or on symbolic tensors) record the same kernels as an operation.
"""
import numpy as np

from fastnn import registry as _registry
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import ACTIVATIONS

_reference = NumpyOps()


def _symbolic(x):
    from fastnn.graph.operation import in_trace
    from fastnn.graph.tensor import KerasTensor
    return isinstance(x, KerasTensor) or in_trace()


def _make(name):
    def activation(x):
        if _symbolic(x):               # in a layer's call(): an operation of the trace
            from fastnn.ops import nn
            return nn.softmax(x) if name == "softmax" else nn.apply(nn.Activation(name), x)
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        return _reference.activation_forward(name, x)
    activation.__name__ = name
    activation.__doc__ = f"Keras' {name!r} activation, element-wise (softmax: over the last axis)."
    return activation


linear = _make("linear")
relu = _make("relu")
leaky_relu = _make("leaky_relu")
elu = _make("elu")
sigmoid = _make("sigmoid")
tanh = _make("tanh")
softmax = _make("softmax")
gelu = _make("gelu")
swish = _make("swish")
silu = swish

for _fn in (linear, relu, leaky_relu, elu, sigmoid, tanh, softmax, gelu, swish):
    _registry.register_identifier("activation", _fn.__name__, _fn)
_registry.register_identifier("activation", "silu", swish)
assert set(_registry.identifiers("activation")) - {"silu"} == set(ACTIVATIONS)


def get(identifier):
    """The activation function for a name (None means linear) or one of these functions."""
    return _registry.identifiers("activation")[name_of(identifier)]


def name_of(identifier):
    """The canonical name of an activation given as a name, None or one of these functions."""
    if identifier is None:
        return "linear"
    fn = _registry.lookup("activation", identifier) if isinstance(identifier, str) else identifier
    # fastnn's own only: a layer keeps the name and runs it in C
    if callable(fn) and _registry.identifier_of("activation", fn) is not None:
        return fn.__name__
    raise ValueError(f"unknown activation {identifier!r}; expected None or one of "
                     f"{sorted(_registry.identifiers('activation'))} (custom Python callables "
                     "are not supported: the kernels run in C)")


def serialize(activation):
    """An activation's name, as Keras 3 writes it ("relu")."""
    return name_of(activation)


def deserialize(name, custom_objects=None):
    """The activation function ``serialize`` named. ``custom_objects`` is accepted
    for Keras' signature; only fastnn's own activations exist (they run in C)."""
    return get(name)
