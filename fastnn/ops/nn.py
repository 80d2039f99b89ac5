"""Neural-network ops: activations, softmax and log-softmax along any axis.

The activations fastnn's layers use run on the same kernels (``relu``,
``sigmoid``, ``tanh``, ``silu``, ``elu``, exact ``gelu``...); the others are
written with primitives (the tanh approximation of gelu, Keras' default for
``ops.gelu``), so they differentiate through them.
"""
import math

from fastnn.backend.ops import ELU_ALPHA, LEAKY_RELU_SLOPE, NEEDS_PREACTIVATION
from fastnn.graph.operation import Operation, apply
from fastnn.naming import unique_name
from fastnn.ops._core import buffer, contiguous, float_dtype, normalize_axis
from fastnn.ops.elementwise import add, multiply, power


class Activation(Operation):
    """One of the backend's activation kernels, element-wise on any shape."""

    positionwise = True

    def __init__(self, activation, name=None):
        super().__init__(name if name is not None else unique_name(activation))
        self.activation = activation

    def compute_output_spec(self, x):
        return [(x[0], float_dtype(x[1]))]

    def forward(self, ops, xs, training=False, ws=None):
        x = contiguous(xs[0].astype(float_dtype(xs[0].dtype), copy=False))
        rows = x.reshape(1, -1) if x.ndim < 2 else x.reshape(-1, x.shape[-1])
        y = ops.activation_forward(self.activation, rows,
                                   buffer(ws, "y", rows.shape, x.dtype)).reshape(x.shape)
        if ws is not None:
            ws.saved = (x, y)
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        x, y = ws.saved
        rows = (lambda a: a.reshape(1, -1)) if x.ndim < 2 else \
            (lambda a: a.reshape(-1, x.shape[-1]))
        dx = ops.activation_backward(self.activation, rows(contiguous(dy)),
                                     rows(x) if self.activation in NEEDS_PREACTIVATION else None,
                                     rows(y), ws.buffer("dx", rows(x).shape, x.dtype))
        return [dx.reshape(x.shape)]

    def get_config(self):
        return {"name": self.name, "activation": self.activation}


def _activation(name, doc):
    def fn(x):
        return apply(Activation(name), x)
    fn.__name__ = name
    fn.__doc__ = doc
    return fn


relu = _activation("relu", "max(x, 0).")
sigmoid = _activation("sigmoid", "1 / (1 + exp(-x)).")
tanh = _activation("tanh", "The hyperbolic tangent.")
silu = swish = _activation("swish", "x * sigmoid(x).")


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    if alpha != ELU_ALPHA:
        from fastnn.ops.elementwise import exp, greater, subtract, where
        return where(greater(x, 0.0), x, multiply(alpha, subtract(exp(x), 1.0)))
    return apply(Activation("elu"), x)


def leaky_relu(x, negative_slope=0.2):
    """x for x > 0, negative_slope * x otherwise."""
    if negative_slope != LEAKY_RELU_SLOPE:
        from fastnn.ops.elementwise import maximum
        return maximum(x, multiply(negative_slope, x))
    return apply(Activation("leaky_relu"), x)


def gelu(x, approximate=True):
    """The Gaussian error linear unit: with ``approximate`` (Keras' default for
    ops.gelu) 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), else the exact
    x Phi(x) of the activation kernel."""
    if not approximate:
        return apply(Activation("gelu"), x)
    inner = multiply(math.sqrt(2.0 / math.pi), add(x, multiply(0.044715, power(x, 3.0))))
    return multiply(multiply(0.5, x), add(1.0, tanh(inner)))


class Softmax(Operation):
    """softmax (or log-softmax) along ``axis``, stable; backward from the output."""

    def __init__(self, axis=-1, log=False, name=None):
        super().__init__(name)
        self.axis, self.log = int(axis), bool(log)

    def compute_output_spec(self, x):
        normalize_axis(self.axis, len(x[0]), self.name)
        return [(x[0], float_dtype(x[1]))]

    def forward(self, ops, xs, training=False, ws=None):
        x = contiguous(xs[0].astype(float_dtype(xs[0].dtype), copy=False))
        fn = ops.log_softmax if self.log else ops.softmax
        y = fn(x, self.axis, out=buffer(ws, "y", x.shape, x.dtype))
        if ws is not None:
            ws.saved = y
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        y = ws.saved
        fn = ops.log_softmax_backward if self.log else ops.softmax_backward
        return [fn(contiguous(dy), y, self.axis, out=ws.buffer("dx", y.shape, y.dtype))]

    def get_config(self):
        return {"name": self.name, "axis": self.axis, "log": self.log}


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (max-shifted: no overflow)."""
    return apply(Softmax(axis), x)


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) along ``axis`` (stable)."""
    return apply(Softmax(axis, log=True), x)
