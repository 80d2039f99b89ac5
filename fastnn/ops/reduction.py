"""Reductions: sum, mean, max, min (and var, std from them), argmax, argmin, cumsum.

sum/mean/max/min run the backend's ``reduce`` kernels forward and
``reduce_backward`` back (max/min share a tie's gradient evenly, as
TensorFlow does); both are deterministic whatever the thread count.
"""
import numpy as np

from fastnn.graph.operation import Operation, apply
from fastnn.naming import unique_name
from fastnn.ops._core import buffer, float_dtype, normalize_axes, normalize_axis
from fastnn.ops.elementwise import sqrt, square, subtract


def _reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


class Reduce(Operation):
    """``op`` (sum, mean, max, min) over ``axis`` (None: all), as NumPy's."""

    def __init__(self, op, axis=None, keepdims=False, name=None):
        super().__init__(name if name is not None else unique_name(op))
        self.op, self.axis, self.keepdims = op, axis, bool(keepdims)

    def compute_output_spec(self, x):
        shape, dtype = x
        axes = normalize_axes(self.axis, len(shape), self.name)
        return [(_reduced_shape(shape, axes, self.keepdims), float_dtype(dtype))]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        x = x.astype(float_dtype(x.dtype), copy=False)
        axes = normalize_axes(self.axis, x.ndim, self.name)
        shape = _reduced_shape(x.shape, axes, self.keepdims)
        y = ops.reduce(self.op, x, axes, keepdims=self.keepdims,
                       out=buffer(ws, "y", shape, x.dtype))
        if ws is not None:
            ws.saved = (x, y, axes)
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        x, y, axes = ws.saved
        return [ops.reduce_backward(self.op, dy, x, y, axes, keepdims=self.keepdims,
                                    out=ws.buffer("dx", x.shape, x.dtype))]

    def get_config(self):
        return {"name": self.name, "op": self.op,
                "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis,
                "keepdims": self.keepdims}


def _reduce(op):
    def fn(x, axis=None, keepdims=False):
        return apply(Reduce(op, axis if not isinstance(axis, list) else tuple(axis), keepdims),
                     x)
    fn.__name__ = op
    fn.__doc__ = f"The {op} of x over ``axis`` (None: every axis), as NumPy's."
    return fn


sum = _reduce("sum")                      # noqa: A001 (Keras' name)
mean = _reduce("mean")
max = amax = _reduce("max")               # noqa: A001
min = amin = _reduce("min")               # noqa: A001


def var(x, axis=None, keepdims=False):
    """The (biased) variance over ``axis``: mean((x - mean(x))**2)."""
    centred = subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(square(centred), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    """The (biased) standard deviation over ``axis``."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


class ArgReduce(Operation):
    """argmax / argmin along one axis (None: of the flattened tensor); int64, no gradient."""

    differentiable = False
    gradient_free_inputs = (0,)

    def __init__(self, op, axis=None, keepdims=False, name=None):
        super().__init__(name if name is not None else unique_name(op))
        self.op, self.axis, self.keepdims = op, axis, bool(keepdims)

    def compute_output_spec(self, x):
        shape = x[0]
        if self.axis is None:
            out = (1,) * len(shape) if self.keepdims else ()
        else:
            axis = normalize_axis(self.axis, len(shape), self.name)
            out = _reduced_shape(shape, (axis,), self.keepdims)
        return [(out, np.dtype(np.int64))]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        return ops.arg_reduce(self.op, x.astype(float_dtype(x.dtype), copy=False), self.axis,
                              keepdims=self.keepdims)

    def get_config(self):
        return {"name": self.name, "op": self.op, "axis": self.axis, "keepdims": self.keepdims}


def argmax(x, axis=None, keepdims=False):
    """Indices of the maxima along ``axis`` (the first of equal ones)."""
    return apply(ArgReduce("argmax", axis, keepdims), x)


def argmin(x, axis=None, keepdims=False):
    """Indices of the minima along ``axis`` (the first of equal ones)."""
    return apply(ArgReduce("argmin", axis, keepdims), x)


class Cumsum(Operation):
    """Cumulative sum along ``axis`` (None: of the flattened tensor)."""

    def __init__(self, axis=None, name=None):
        super().__init__(name)
        self.axis = axis

    def compute_output_spec(self, x):
        shape, dtype = x
        if self.axis is None:
            total = None if None in shape else int(np.prod(shape, dtype=np.int64))
            return [((total,), dtype)]
        return [(shape, dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        if self.axis is None:
            x = x.reshape(-1)
        axis = 0 if self.axis is None else normalize_axis(self.axis, x.ndim, self.name)
        if ws is not None:
            ws.saved = (xs[0].shape, axis)
        if x.dtype.kind != "f":
            return np.cumsum(x, axis=axis)
        return ops.cumsum(x, axis)

    def backward(self, ops, dy, ws, need_dx=True):
        shape, axis = ws.saved
        # d/dx_i sum_{j>=i}: the cumulative sum of dy taken from the far end
        flipped = np.ascontiguousarray(np.flip(dy, axis=axis))
        return [np.flip(ops.cumsum(flipped, axis), axis=axis).reshape(shape)]

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


def cumsum(x, axis=None, dtype=None):
    """The cumulative sum along ``axis``."""
    out = apply(Cumsum(axis), x)
    if dtype is not None:
        from fastnn.ops.elementwise import cast
        out = cast(out, dtype)
    return out
