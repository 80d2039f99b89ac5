"""Keras' activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax.

Each computes with the backend's element-wise kernels (``ops.compare`` /
``where`` / ``binary`` / ``unary`` / ``softmax``), so switching the backend
switches their loops too, and each passes a time-step mask through (Keras'
``supports_masking``).
"""
import math

import numpy as np

from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.layers.base import Layer
from fastnn.ops._core import buffer


def _number(value, name, where, minimum=None, allow_none=False):
    """A finite float argument (>= minimum when given), or None when allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{where}: {name} must be a finite number{bound}, got {value!r}")
    return float(value)


class _ElementwiseLayer(Layer):
    """An element-wise layer without weights: any input shape, mask passed through."""

    supports_masking = True
    positionwise = True

    def check_input_shape(self, input_shape):
        pass


class ReLU(_ElementwiseLayer):
    """Keras' rectified linear unit with its options::

        f(x) = max_value                        for x >= max_value
             = x                                for threshold <= x < max_value
             = negative_slope * (x - threshold) otherwise

    ``max_value`` None means no upper clip. The gradient is 1 on the linear
    piece, ``negative_slope`` below ``threshold`` and 0 on the clipped piece.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _number(max_value, "max_value", self.name, 0.0, allow_none=True)
        self.negative_slope = _number(negative_slope, "negative_slope", self.name, 0.0)
        self.threshold = _number(threshold, "threshold", self.name)

    def forward(self, ops, x, training=False, ws=None):
        return piecewise_linear_forward(ops, x, ws, self.negative_slope, self.threshold,
                                        self.max_value)

    def backward(self, ops, dy, ws, need_dx=True):
        return piecewise_linear_backward(ops, dy, ws, self.negative_slope) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(_ElementwiseLayer):
    """``f(x) = x`` for x >= 0, ``negative_slope * x`` otherwise (Keras' default
    slope 0.3)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = _number(negative_slope, "negative_slope", self.name, 0.0)

    def forward(self, ops, x, training=False, ws=None):
        return piecewise_linear_forward(ops, x, ws, self.negative_slope, 0.0, None)

    def backward(self, ops, dy, ws, need_dx=True):
        return piecewise_linear_backward(ops, dy, ws, self.negative_slope) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


def piecewise_linear_forward(ops, x, ws, slope, threshold, max_value):
    """ReLU's forward (see ReLU); keeps (below-threshold, clipped) masks in ws.saved."""
    dtype = x.dtype
    thr = np.asarray(threshold, dtype)
    below = ops.compare("less", x, thr, out=buffer(ws, "below", x.shape, np.bool_))
    shifted = ops.binary("subtract", x, thr, out=buffer(ws, "y", x.shape, dtype))
    leaked = ops.binary("multiply", shifted, np.asarray(slope, dtype), out=shifted)
    y = ops.where(below, leaked, x, out=leaked)
    clipped = None
    if max_value is not None:
        top = np.asarray(max_value, dtype)
        clipped = ops.compare("greater_equal", x, top,
                              out=buffer(ws, "clipped", x.shape, np.bool_))
        y = ops.where(clipped, top, y, out=y)
    if ws is not None:
        ws.saved = (below, clipped)
    return y


def piecewise_linear_backward(ops, dy, ws, slope):
    below, clipped = ws.saved
    dx = ws.buffer("dx", dy.shape, dy.dtype)
    leaked = ops.binary("multiply", dy, np.asarray(slope, dy.dtype), out=dx)
    dx = ops.where(below, leaked, dy, out=dx)
    if clipped is not None:
        dx = ops.where(clipped, np.zeros((), dy.dtype), dx, out=dx)
    return dx


class ELU(_ElementwiseLayer):
    """Exponential linear unit: ``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(alpha, "alpha", self.name)

    def forward(self, ops, x, training=False, ws=None):
        dtype = x.dtype
        positive = ops.compare("greater", x, np.zeros((), dtype),
                               out=buffer(ws, "positive", x.shape, np.bool_))
        # exp of the positive part too, then discarded: min(x, 0) keeps it finite
        e = ops.binary("minimum", x, np.zeros((), dtype), out=buffer(ws, "e", x.shape, dtype))
        e = ops.unary("exp", e, out=e)
        neg = ops.binary("subtract", e, np.ones((), dtype), out=buffer(ws, "y", x.shape, dtype))
        neg = ops.binary("multiply", neg, np.asarray(self.alpha, dtype), out=neg)
        y = ops.where(positive, x, neg, out=neg)
        if ws is not None:
            ws.saved = (positive, e)
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        positive, e = ws.saved
        dx = ws.buffer("dx", dy.shape, dy.dtype)
        # d/dx alpha * (exp(x) - 1) = alpha * exp(x)
        scaled = ops.binary("multiply", e, np.asarray(self.alpha, dy.dtype), out=dx)
        scaled = ops.binary("multiply", scaled, dy, out=scaled)
        return ops.where(positive, dy, scaled, out=scaled)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """Parametric ReLU: ``f(x) = x`` for x > 0, ``alpha * x`` otherwise, with a
    trainable ``alpha`` of the input's shape (batch axis excluded), shared (size
    1) along ``shared_axes`` (Keras' numbering: 1 is the first axis after the
    batch), e.g. ``shared_axes=[1, 2]`` for one alpha per channel of images."""

    supports_masking = True
    positionwise = True

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None,
                 alpha_constraint=None, shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise ValueError(f"{self.name}: weight constraints are not supported")
        self.alpha_initializer = _initializers.get(alpha_initializer)
        self.alpha_regularizer = _regularizers.get(alpha_regularizer)
        if shared_axes is None:
            axes = ()
        elif isinstance(shared_axes, (int, np.integer)) and not isinstance(shared_axes, bool):
            axes = (int(shared_axes),)
        else:
            axes = tuple(shared_axes)
        if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1
               for a in axes):
            raise ValueError(f"{self.name}: shared_axes must be positive axis numbers (1 is "
                             f"the first axis after the batch), got {shared_axes!r}")
        self.shared_axes = tuple(int(a) for a in axes)
        self.alpha = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if any(a > len(input_shape) for a in self.shared_axes):
            raise ValueError(f"{self.name}: shared_axes {list(self.shared_axes)} out of range "
                             f"for inputs {(None,) + input_shape}")
        shape = tuple(1 if i + 1 in self.shared_axes else d for i, d in enumerate(input_shape))
        if any(d is None for d in shape):
            raise ValueError(f"{self.name}: every axis not in shared_axes needs a known size, "
                             f"got inputs {(None,) + input_shape}")
        self.alpha = self.add_weight(name="alpha", shape=shape,
                                     initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer)
        super().build(input_shape)

    def forward(self, ops, x, training=False, ws=None):
        dtype = x.dtype
        zero = np.zeros((), dtype)
        positive = ops.compare("greater", x, zero, out=buffer(ws, "positive", x.shape, np.bool_))
        negative_part = ops.binary("minimum", x, zero, out=buffer(ws, "neg", x.shape, dtype))
        scaled = ops.binary("multiply", negative_part, self.alpha.value,
                            out=buffer(ws, "y", x.shape, dtype))
        y = ops.where(positive, x, scaled, out=scaled)
        if ws is not None:
            ws.saved = (positive, negative_part)
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        positive, negative_part = ws.saved
        grad = self.grad_of(self.alpha, ws, optional=True)
        if grad is not None:
            # d/d alpha = min(x, 0), summed over the batch and the shared axes
            product = ops.binary("multiply", dy, negative_part,
                                 out=ws.buffer("dalpha_full", dy.shape, dy.dtype))
            np.copyto(grad, ops.sum_to_shape(product, self.alpha.shape))
        if not need_dx:
            return None
        dx = ws.buffer("dx", dy.shape, dy.dtype)
        scaled = ops.binary("multiply", dy, self.alpha.value, out=dx)
        return ops.where(positive, dy, scaled, out=scaled)

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": _initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": _regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": None,
                "shared_axes": list(self.shared_axes) or None}


class Softmax(Layer):
    """Softmax over ``axis`` (an int; Keras' default -1). Called as
    ``Softmax()(x, mask=m)``, positions where the mask (bool or 0/1, broadcast
    to x, of x's rank) is False get probability 0 and the rest share the probability mass, as
    in Keras (which adds -1e9 to masked logits, then multiplies by the mask); a
    row masked entirely is all zeros."""

    supports_masking = True
    positionwise = False

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{self.name}: axis must be an integer (softmax over several axes "
                             f"is not supported), got {axis!r}")
        if axis == 0:
            raise ValueError(f"{self.name}: axis 0 is the batch axis")
        self.axis = int(axis)

    def bind_call(self, inputs, mask=None):
        """(tensors, static): the inputs, and the mask when given."""
        values = [inputs] if mask is None else [inputs, mask]
        return values, {"masked": mask is not None}

    def _check(self, shapes, static):
        shapes = [tuple(s) for s in shapes]
        rank = len(shapes[0]) + 1
        if not -rank <= self.axis < rank:
            raise ValueError(f"{self.name}: axis {self.axis} out of range for inputs "
                             f"{(None,) + shapes[0]}")
        if len(shapes) == 2:
            x, m = shapes
            ok = len(m) == len(x) and all(a is None or b is None or a in (1, b)
                                          for a, b in zip(m, x))
            if not ok:
                raise ValueError(f"{self.name}: the mask must have the inputs' rank and "
                                 f"broadcast to them, got mask {(None,) + m} for inputs "
                                 f"{(None,) + x}")
        return shapes

    def build(self, input_shape, static=None):
        shapes = self._check(input_shape, static)
        self.input_shape = shapes[0]
        self.output_shape = shapes[0]
        self.built = True

    def check_input_shape(self, input_shape, static=None):
        self._check(input_shape, static)

    def compute_output_shape(self, input_shape, static=None):
        return tuple(input_shape[0])

    def output_mask(self, ws):
        return ws.mask[0] if isinstance(ws.mask, list) else ws.mask

    def forward(self, ops, xs, training=False, ws=None):
        x = xs[0]
        mask = None
        if len(xs) == 2:
            # the mask arrives in the layer's dtype: any nonzero entry keeps its position
            mask = np.broadcast_to(xs[1], x.shape)
            keep = ops.compare("not_equal", np.ascontiguousarray(mask), np.zeros((), x.dtype),
                               out=buffer(ws, "keep", x.shape, np.bool_))
            big = np.asarray(-1e9, x.dtype)
            logits = ops.where(keep, x, ops.binary("add", x, big,
                                                   out=buffer(ws, "logits", x.shape, x.dtype)),
                               out=buffer(ws, "logits", x.shape, x.dtype))
            s = ops.softmax(logits, self.axis, out=buffer(ws, "s", x.shape, x.dtype))
            y = ops.where(keep, s, np.zeros((), x.dtype), out=buffer(ws, "y", x.shape, x.dtype))
            mask = keep
        else:
            s = y = ops.softmax(x, self.axis, out=buffer(ws, "y", x.shape, x.dtype))
        if ws is not None:
            ws.saved = (s, mask, len(xs))
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        s, keep, n_inputs = ws.saved
        if not need_dx:
            return None
        if keep is not None:
            dy = ops.where(keep, dy, np.zeros((), dy.dtype),
                           out=ws.buffer("dy_kept", dy.shape, dy.dtype))
        dx = ops.softmax_backward(dy, s, self.axis, out=ws.buffer("dx", dy.shape, dy.dtype))
        return [dx] + [None] * (n_inputs - 1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
