"""Normalization layers: BatchNormalization."""
import math

import numpy as np

from fastnn import initializers as _initializers
from fastnn.layers.base import Layer


class BatchNormalization(Layer):
    """Batch normalization over the last (channels) axis, as Keras does it.

    Training: each channel is normalised with the batch's mean and biased
    variance over every other axis, ``y = gamma (x - mean) / sqrt(var + epsilon)
    + beta``, and the moving statistics follow
    ``moving = moving * momentum + batch * (1 - momentum)``. Inference: the
    moving statistics replace the batch's. A frozen layer
    (``trainable = False``) runs in inference mode even inside ``fit``, and its
    moving statistics do not change (Keras' behaviour).

    Weights, in Keras' order: gamma (if ``scale``), beta (if ``center``),
    moving_mean, moving_variance, each of shape (channels,). The moving
    statistics are non-trainable state, kept outside the model's flat buffers.
    Inputs may be (N, C) or (N, ..., C).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{self.name}: axis must be an integer (the channels axis), "
                             f"got {axis!r}")
        self.axis = int(axis)
        self.momentum = _number(momentum, "momentum", self.name, 0.0, 1.0)
        self.epsilon = _number(epsilon, "epsilon", self.name, 0.0, math.inf)
        if self.epsilon <= 0.0:
            raise ValueError(f"{self.name}: epsilon must be > 0, got {epsilon!r}")
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        rank = len(input_shape) + 1                  # with the batch axis
        axis = self.axis + rank if self.axis < 0 else self.axis
        if axis != rank - 1:
            raise ValueError(f"{self.name}: only the last axis (channels-last) can be "
                             f"normalised; got axis={self.axis} for inputs "
                             f"{(None,) + input_shape}")
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the channels axis of its inputs must have a known "
                             f"size, got inputs {(None,) + input_shape}")
        channels = (input_shape[-1],)
        if self.scale:
            self.gamma = self.add_weight(name="gamma", shape=channels,
                                         initializer=self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight(name="beta", shape=channels,
                                        initializer=self.beta_initializer)
        self.moving_mean = self.add_weight(name="moving_mean", shape=channels,
                                           initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=channels,
                                               initializer=self.moving_variance_initializer,
                                               trainable=False)
        super().build(input_shape)

    def check_input_shape(self, input_shape):
        # any sizes but the channels (the normalised last axis), same rank
        if len(input_shape) != len(self.input_shape) or input_shape[-1] != self.input_shape[-1]:
            raise ValueError(f"layer {self.name!r} was built for inputs "
                             f"{(None,) + tuple(self.input_shape)} but is called on inputs "
                             f"{(None,) + tuple(input_shape)}")

    def forward(self, ops, x, training=False, ws=None):
        channels = self.input_shape[-1]
        x2 = x.reshape(-1, channels)
        batch = bool(training) and self.trainable
        if batch:
            if ws is None:
                mean, var = np.empty(channels, self.dtype), np.empty(channels, self.dtype)
            else:
                mean = ws.buffer("mean", (channels,), self.dtype)
                var = ws.buffer("var", (channels,), self.dtype)
            ops.batchnorm_stats(x2, mean, var)
            if ws is None:
                # No backward will follow (a bare training call): update now.
                ops.batchnorm_update_moving_(self.moving_mean.value, self.moving_variance.value,
                                             mean, var, self.momentum)
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
        out = None if ws is None else ws.buffer("y", x2.shape, self.dtype)
        y = ops.batchnorm_forward(x2, mean, var, self._value(self.gamma), self._value(self.beta),
                                  epsilon=self.epsilon, out=out)
        if ws is not None:
            ws.saved = (x2, mean, var, batch, x.shape)
        return y.reshape(x.shape)

    def backward(self, ops, dy, ws, need_dx=True):
        x2, mean, var, batch, x_shape = ws.saved
        dy2 = dy.reshape(x2.shape)
        dx = ops.batchnorm_backward(
            dy2, x2, mean, var, self._value(self.gamma), epsilon=self.epsilon,
            batch_stats=batch, dgamma_out=self._grad(self.gamma, ws),
            dbeta_out=self._grad(self.beta, ws),
            dx_out=ws.buffer("dx", x2.shape, self.dtype) if need_dx else False)
        if batch:
            # The moving statistics move here, not in forward: fit runs every
            # backward only after the loss was found finite, so a step stopped
            # by a NaN loss leaves them untouched, like the weights.
            ops.batchnorm_update_moving_(self.moving_mean.value, self.moving_variance.value,
                                         mean, var, self.momentum)
        return None if dx is None else dx.reshape(x_shape)

    @staticmethod
    def _value(weight):
        return None if weight is None else weight.value

    def _grad(self, weight, ws):
        """Where the weight's gradient goes; None (not computed) when nobody wants it."""
        if weight is None or (ws.param_grads and weight.grad is None):
            return None
        return self.grad_of(weight, ws, optional=True)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": _initializers.serialize(self.beta_initializer),
                "gamma_initializer": _initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": _initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    _initializers.serialize(self.moving_variance_initializer)}


def _number(value, name, where, low, high):
    """A finite float in [low, high], or ValueError naming the layer."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value) or not low <= value <= high):
        raise ValueError(f"{where}: {name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)
