"""Element-wise ops with NumPy's broadcasting: arithmetic, math functions,
comparisons, ``where``, ``cast`` and ``stop_gradient``.

Each is one Operation whose forward and backward run the backend's kernels
(``binary``, ``unary``, ``compare``, ``where``: C on the compiled backend);
gradients are summed back over broadcast axes. Integer (index) tensors
compute with NumPy and carry no gradient.
"""
import numpy as np

from fastnn.graph.operation import Operation, apply
from fastnn.naming import unique_name
from fastnn.ops._core import (
    broadcast_shapes, buffer, dtype_of, float_dtype, result_dtype, weak_scalars,
)


class Binary(Operation):
    """``a <op> b`` for op in add, subtract, multiply, divide, maximum, minimum, power."""

    positionwise = True

    def __init__(self, op, name=None):
        super().__init__(name if name is not None else unique_name(op))
        self.op = op

    def compute_output_spec(self, a, b):
        shape = broadcast_shapes(a[0], b[0], where=self.name)
        return [(shape, result_dtype(a[1], b[1]))]

    def forward(self, ops, xs, training=False, ws=None):
        a, b = xs
        dtype = result_dtype(a.dtype, b.dtype)
        if dtype.kind != "f":                  # indices: NumPy, no gradient
            return _INTEGER_UFUNCS[self.op](a, b).astype(dtype, copy=False)
        given = (a.dtype, b.dtype)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        shape = np.broadcast_shapes(a.shape, b.shape)
        y = ops.binary(self.op, a, b, out=buffer(ws, "y", shape, dtype))
        if ws is not None:
            ws.saved = (a, b, given)
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        a, b, given = ws.saved
        grads = ops.binary_backward(self.op, dy, a, b,
                                    da_out=ws.buffer("da", a.shape, a.dtype),
                                    db_out=ws.buffer("db", b.shape, b.dtype))
        return [as_given(g, d) for g, d in zip(grads, given)]

    def get_config(self):
        return {"name": self.name, "op": self.op}


def as_given(grad, dtype):
    """An input's gradient in that input's own dtype (it was promoted for the op); None
    for an integer input, which has no gradient."""
    if dtype.kind != "f":
        return None
    return grad if grad.dtype == dtype else grad.astype(dtype)


_INTEGER_UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
                   "divide": np.true_divide, "maximum": np.maximum, "minimum": np.minimum,
                   "power": np.power}


def _binary(op, x1, x2):
    dtype = result_dtype(dtype_of(x1), dtype_of(x2))
    if op == "divide":
        dtype = float_dtype(dtype)         # true division of integers gives floats
    return apply(Binary(op), *weak_scalars([x1, x2], dtype))


def add(x1, x2):
    """``x1 + x2`` (broadcasting)."""
    return _binary("add", x1, x2)


def subtract(x1, x2):
    """``x1 - x2`` (broadcasting)."""
    return _binary("subtract", x1, x2)


def multiply(x1, x2):
    """``x1 * x2`` (broadcasting)."""
    return _binary("multiply", x1, x2)


def divide(x1, x2):
    """``x1 / x2`` (true division; broadcasting)."""
    return _binary("divide", x1, x2)


true_divide = divide


def power(x1, x2):
    """``x1 ** x2`` (broadcasting)."""
    return _binary("power", x1, x2)


def maximum(x1, x2):
    """The element-wise maximum (a tie's gradient goes to x1, as TensorFlow's)."""
    return _binary("maximum", x1, x2)


def minimum(x1, x2):
    """The element-wise minimum (a tie's gradient goes to x1, as TensorFlow's)."""
    return _binary("minimum", x1, x2)


class Unary(Operation):
    """``op(x)`` for op in negative, abs, sign, square, sqrt, exp, log, log1p, reciprocal."""

    positionwise = True

    def __init__(self, op, name=None):
        super().__init__(name if name is not None else unique_name(op))
        self.op = op

    def compute_output_spec(self, x):
        shape, dtype = x
        if self.op in ("negative", "abs", "sign", "square") and dtype.kind in "iu":
            return [(shape, dtype)]
        return [(shape, float_dtype(dtype))]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        if x.dtype.kind in "iu" and self.op in ("negative", "abs", "sign", "square"):
            return getattr(np, self.op)(x)     # indices: NumPy, no gradient
        x = x.astype(float_dtype(x.dtype), copy=False)
        y = ops.unary(self.op, x, out=buffer(ws, "y", x.shape, x.dtype))
        if ws is not None:
            ws.saved = (x, y)
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        x, y = ws.saved
        return [ops.unary_backward(self.op, dy, x, y, out=ws.buffer("dx", x.shape, x.dtype))]

    def get_config(self):
        return {"name": self.name, "op": self.op}


def _unary(op):
    def fn(x):
        return apply(Unary(op), x)
    fn.__name__ = op
    fn.__doc__ = f"Element-wise {op}(x)."
    return fn


negative = _unary("negative")
abs = absolute = _unary("abs")          # noqa: A001 (Keras' name)
sign = _unary("sign")
square = _unary("square")
sqrt = _unary("sqrt")
exp = _unary("exp")
log = _unary("log")
log1p = _unary("log1p")
reciprocal = _unary("reciprocal")


class Compare(Operation):
    """A comparison: a boolean tensor, no gradient (use it in ``where``)."""

    positionwise = True

    differentiable = False
    gradient_free_inputs = (0, 1)

    def __init__(self, op, name=None):
        super().__init__(name if name is not None else unique_name(op))
        self.op = op

    def compute_output_spec(self, a, b):
        return [(broadcast_shapes(a[0], b[0], where=self.name), np.dtype(bool))]

    def forward(self, ops, xs, training=False, ws=None):
        a, b = xs
        dtype = result_dtype(a.dtype, b.dtype)
        if dtype.kind != "f":
            return _COMPARE_UFUNCS[self.op](a, b)
        return ops.compare(self.op, a.astype(dtype, copy=False), b.astype(dtype, copy=False))

    def get_config(self):
        return {"name": self.name, "op": self.op}


_COMPARE_UFUNCS = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less,
                   "less_equal": np.less_equal, "greater": np.greater,
                   "greater_equal": np.greater_equal}


def _compare(op):
    def fn(x1, x2):
        dtype = result_dtype(dtype_of(x1), dtype_of(x2))
        return apply(Compare(op), *weak_scalars([x1, x2], dtype))
    fn.__name__ = op
    fn.__doc__ = f"Element-wise {op}(x1, x2) as a boolean tensor (broadcasting)."
    return fn


equal = _compare("equal")
not_equal = _compare("not_equal")
less = _compare("less")
less_equal = _compare("less_equal")
greater = _compare("greater")
greater_equal = _compare("greater_equal")


class Where(Operation):
    """``condition ? x1 : x2`` (broadcasting all three); no gradient to the condition."""

    positionwise = True

    gradient_free_inputs = (0,)

    def compute_output_spec(self, condition, x1, x2):
        shape = broadcast_shapes(condition[0], x1[0], x2[0], where=self.name)
        return [(shape, result_dtype(x1[1], x2[1]))]

    def forward(self, ops, xs, training=False, ws=None):
        condition, a, b = xs
        condition = condition.astype(bool, copy=False)
        dtype = result_dtype(a.dtype, b.dtype)
        if dtype.kind != "f":
            return np.where(condition, a, b).astype(dtype, copy=False)
        given = (a.dtype, b.dtype)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        shape = np.broadcast_shapes(condition.shape, a.shape, b.shape)
        y = ops.where(condition, a, b, out=buffer(ws, "y", shape, dtype))
        if ws is not None:
            ws.saved = (condition, a, b, given)
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        condition, a, b, given = ws.saved
        zero = np.zeros((), dy.dtype)
        grads = [None]
        for key, operand, chosen, dtype in (("da", a, (dy, zero), given[0]),
                                            ("db", b, (zero, dy), given[1])):
            full = ops.where(condition, *chosen, out=ws.buffer(key + "_full", dy.shape, dy.dtype))
            grads.append(as_given(ops.sum_to_shape(
                full, operand.shape, out=ws.buffer(key, operand.shape, operand.dtype)), dtype))
        return grads


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` holds, else ``x2`` (broadcasting)."""
    if x1 is None or x2 is None:
        raise ValueError("where: x1 and x2 are required (fastnn has no one-argument where)")
    dtype = result_dtype(dtype_of(x1), dtype_of(x2))
    return apply(Where(), condition, *weak_scalars([x1, x2], dtype))


def clip(x, x_min, x_max):
    """``x`` clipped to [x_min, x_max]; the gradient passes where x lies inside."""
    return minimum(maximum(x, x_min), x_max)


class Cast(Operation):
    """``x`` as ``dtype``; a float-to-float cast passes the gradient back."""

    positionwise = True

    def __init__(self, dtype, name=None):
        super().__init__(name)
        self.dtype = np.dtype(dtype)

    def compute_output_spec(self, x):
        return [(x[0], self.dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        if ws is not None:
            ws.saved = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, ops, dy, ws, need_dx=True):
        source = ws.saved
        return [dy.astype(source) if source.kind == "f" else None]

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name}


def cast(x, dtype):
    """``x`` converted to ``dtype``."""
    return apply(Cast(dtype), x)


class StopGradient(Operation):
    """Its input unchanged, with no gradient flowing back through it."""

    positionwise = True

    blocks_gradient = True

    def compute_output_spec(self, x):
        return [x]

    def forward(self, ops, xs, training=False, ws=None):
        return xs[0]

    def backward(self, ops, dy, ws, need_dx=True):
        return [None]


def stop_gradient(variable):
    """``variable``'s value, treated as a constant by gradients."""
    return apply(StopGradient(), variable)
