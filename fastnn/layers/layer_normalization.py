"""LayerNormalization and RMSNormalization (Keras'): each sample normalised over
its feature axes, on the backend's ``layer_norm`` kernels.

The normalised axes are moved last (a view when they already are, the usual
``axis=-1``) and the input is seen as rows: one row per sample and position,
the features along it.
"""
import math

import numpy as np

from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.layers.base import Layer


class _RowNormalization(Layer):
    """Shared by both: the axes, the rows view, forward and backward on the kernels.
    Subclasses set ``rms`` and create ``gamma`` (or None) and ``beta`` (or None)."""

    rms = False
    supports_masking = True

    @property
    def positionwise(self):
        # normalising within each time step (not across steps, axis 1)
        return self.built and 1 not in self._axes(len(self.input_shape) + 1)

    def _set_axis(self, axis):
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                           for a in axes):
            raise TypeError(f"{self.name}: axis must be an int or a list of ints, got {axis!r}")
        self.axis = [int(a) for a in axes] if isinstance(axis, (list, tuple)) else int(axis)

    def _axes(self, rank):
        """The normalised axes (with the batch axis counted), sorted and checked."""
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        resolved = sorted(a + rank if a < 0 else a for a in axes)
        if len(set(resolved)) != len(resolved) or not all(1 <= a < rank for a in resolved):
            raise ValueError(f"{self.name}: axis {self.axis} is invalid for inputs of rank "
                             f"{rank} (the batch axis 0 cannot be normalised)")
        return resolved

    def _feature_shape(self, input_shape):
        rank = len(input_shape) + 1
        shape = tuple(input_shape[a - 1] for a in self._axes(rank))
        if any(d is None for d in shape):
            raise ValueError(f"{self.name}: the normalised axes need known sizes, got inputs "
                             f"{(None,) + tuple(input_shape)}")
        return shape

    def check_input_shape(self, input_shape):
        if self._feature_shape(tuple(input_shape)) != self.feature_shape:
            raise ValueError(f"layer {self.name!r} normalises features of shape "
                             f"{self.feature_shape}, called on inputs "
                             f"{(None,) + tuple(input_shape)}")

    def _order(self, ndim):
        """The axis order that puts the normalised axes last (None: they are)."""
        axes = self._axes(ndim)
        rest = [a for a in range(ndim) if a not in axes]
        order = rest + axes
        return None if order == list(range(ndim)) else order

    def forward(self, ops, x, training=False, ws=None):
        order = self._order(x.ndim)
        moved = x if order is None else np.ascontiguousarray(x.transpose(order))
        rows = moved.reshape(-1, math.prod(self.feature_shape))
        m = rows.shape[0]
        if ws is None:
            out, mean, rstd = None, np.empty(m, self.dtype), np.empty(m, self.dtype)
        else:
            out = ws.buffer("y", rows.shape, self.dtype)
            mean, rstd = ws.buffer("mean", (m,), self.dtype), ws.buffer("rstd", (m,), self.dtype)
        y = ops.layer_norm(rows, _flat(self.gamma), _flat(self.beta), epsilon=self.epsilon,
                           rms=self.rms, out=out, mean_out=mean, rstd_out=rstd)
        if ws is not None:
            ws.saved = (rows, mean, rstd, moved.shape, order)
        return _restore(y.reshape(moved.shape), order)

    def backward(self, ops, dy, ws, need_dx=True):
        rows, mean, rstd, moved_shape, order = ws.saved
        dy_moved = dy if order is None else np.ascontiguousarray(dy.transpose(order))
        dx, _, _ = ops.layer_norm_backward(
            dy_moved.reshape(rows.shape), rows, mean, rstd, _flat(self.gamma), rms=self.rms,
            has_beta=self.beta is not None,
            dx_out=ws.buffer("dx", rows.shape, self.dtype),
            dgamma_out=None if self.gamma is None else _flat_grad(self, self.gamma, ws),
            dbeta_out=None if self.beta is None else _flat_grad(self, self.beta, ws))
        return _restore(dx.reshape(moved_shape), order) if need_dx else None


class LayerNormalization(_RowNormalization):
    """Keras' LayerNormalization: ``gamma * (x - mean) / sqrt(var + epsilon) + beta``
    with the mean and (biased) variance of each sample over ``axis`` (an int or a
    list; default the last). Weights, in Keras' order: gamma (if ``scale``), beta
    (if ``center``), each the shape of the normalised axes. A time-step mask
    passes through."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        if rms_scaling:
            raise ValueError(f"{self.name}: rms_scaling is deprecated in Keras (it scales by "
                             "the variance, not the root mean square); use "
                             "layers.RMSNormalization")
        self._set_axis(axis)
        self.epsilon = _epsilon(epsilon, self.name)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.beta_regularizer = _regularizers.get(beta_regularizer)
        self.gamma_regularizer = _regularizers.get(gamma_regularizer)
        self.gamma = self.beta = None

    def build(self, input_shape):
        self.feature_shape = self._feature_shape(tuple(input_shape))
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=self.feature_shape,
                                         initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight(name="beta", shape=self.feature_shape,
                                        initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer)
        super().build(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": _initializers.serialize(self.beta_initializer),
                "gamma_initializer": _initializers.serialize(self.gamma_initializer),
                "beta_regularizer": _regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": _regularizers.serialize(self.gamma_regularizer)}


class RMSNormalization(_RowNormalization):
    """Keras' RMSNormalization: ``x / sqrt(mean(x^2) + epsilon) * scale`` over
    ``axis``; one weight, ``scale`` (ones at first)."""

    rms = True
    supports_masking = False          # Keras' RMSNormalization does not pass masks on

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self._set_axis(axis)
        self.epsilon = _epsilon(epsilon, self.name)
        self.gamma = self.beta = None

    def build(self, input_shape):
        self.feature_shape = self._feature_shape(tuple(input_shape))
        self.gamma = self.add_weight(name="scale", shape=self.feature_shape, initializer="ones")
        super().build(input_shape)

    @property
    def scale(self):
        return self.gamma

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


def _flat(weight):
    return None if weight is None else weight.value.reshape(-1)


def _flat_grad(layer, weight, ws):
    return layer.grad_of(weight, ws).reshape(-1)


def _restore(a, order):
    """``a`` (in the moved axis order) back in the input's order."""
    return a if order is None else np.ascontiguousarray(a.transpose(np.argsort(order)))


def _epsilon(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{where}: epsilon must be a positive number, got {value!r}")
    return float(value)
