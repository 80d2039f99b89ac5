"""Activation functions by Keras name.

Layers keep the activation's name and run it through the backend's kernels.
The functions here compute on arrays at once, and inside a layer's ``call``
(or on symbolic tensors) record the same kernels as an operation.
"""
import numpy as np

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

_BY_NAME = {f.__name__: f for f in (linear, relu, leaky_relu, elu, sigmoid, tanh, softmax, gelu, swish)}
_BY_NAME["silu"] = swish
assert set(_BY_NAME) - {"silu"} == set(ACTIVATIONS)


def get(identifier):
    """The activation function for a name (None means linear) or one of these functions."""
    return _BY_NAME[name_of(identifier)]


def name_of(identifier):
    """The canonical name of an activation given as a name, None or one of these functions."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier].__name__
    elif callable(identifier) and _BY_NAME.get(getattr(identifier, "__name__", None)) is identifier:
        return identifier.__name__
    raise ValueError(f"unknown activation {identifier!r}; expected None or one of "
                     f"{sorted(_BY_NAME)} (custom Python callables are not supported: the "
                     "kernels run in C)")
