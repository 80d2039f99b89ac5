"""Core layers: Input, Dense, Activation, Flatten, Reshape."""
import numpy as np

from fastnn import activations as _activations
from fastnn.backend.ops import NEEDS_PREACTIVATION
from fastnn.layers.base import KernelBiasLayer, Layer, _as_shape


class InputLayer(Layer):
    """Declares a model's input shape (batch axis excluded); it computes nothing."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, input_shape=None):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("Input: shape is required, e.g. Input(shape=(10,))")
        super().__init__(name=name, dtype=dtype)
        self.input_shape_hint = _as_shape(shape, self.name)
        self.batch_size = batch_size

    @property
    def shape(self):
        """The input shape with the batch axis as None (Keras' KerasTensor.shape)."""
        return (self.batch_size,) + self.input_shape_hint

    def get_config(self):
        return {"name": self.name, "shape": list(self.input_shape_hint), "dtype": self.dtype.name}


def Input(shape=None, batch_size=None, dtype=None, name=None):
    """Start a Sequential model with inputs of ``shape`` (batch axis excluded)."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name)


class Dense(KernelBiasLayer):
    """``output = activation(inputs @ kernel + bias)`` over the last axis.

    Weights (Keras' shapes and order): kernel (input_dim, units), bias (units,).
    Inputs of rank > 2 are treated as a batch of rows over their last axis.
    """

    supports_masking = True     # per step on sequences: a time-step mask passes through

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"{self.name}: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = _activations.name_of(activation)
        self._set_kernel_bias_options(use_bias, kernel_initializer, bias_initializer,
                                      kernel_regularizer, bias_regularizer)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 1:
            raise ValueError(f"{self.name}: needs inputs of rank >= 2, got shape (None,)")
        self._add_kernel_bias((input_shape[-1], self.units), self.units)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    # Set by a model whose loss takes this layer's logits (softmax/sigmoid fused
    # into cross-entropy): the pre-activation must then be kept.
    keep_logits = False

    def _keeps_preactivation(self):
        return (self.keep_logits or self.activation == "softmax"
                or self.activation in NEEDS_PREACTIVATION)

    def forward(self, ops, x, training=False, ws=None):
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        shape = (x2.shape[0], self.units)
        keep_z = self._keeps_preactivation()
        if ws is None:
            out, z = None, (np.empty(shape, self.dtype) if keep_z else None)
        else:
            out = ws.buffer("y", shape, self.dtype)
            z = ws.buffer("z", shape, self.dtype) if keep_z else None
        y = ops.dense_forward(x2, self.kernel.value, self.bias.value if self.use_bias else None,
                              self.activation, out, z)
        if ws is not None:
            ws.saved = (x2, y, z, x.shape)
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (self.units,))

    def logits(self, ws):
        """The pre-activation of the last training forward (for fused losses)."""
        return ws.saved[2]

    def backward(self, ops, dy, ws, need_dx=True, from_preact=False):
        x2, y, z, x_shape = ws.saved
        dy2 = dy if dy.ndim == 2 else dy.reshape(-1, self.units)
        activation = "linear" if from_preact else self.activation
        dx = ws.buffer("dx", x2.shape, self.dtype) if need_dx else False
        dz = ws.buffer("dz", dy2.shape, self.dtype)
        dx = ops.dense_backward(dy2, x2, self.kernel.value, y, z, activation,
                                self.grad_of(self.kernel, ws),
                                self.grad_of(self.bias, ws) if self.use_bias else None, dx, dz)
        return None if dx is None else dx.reshape(x_shape)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                **self._kernel_bias_config()}


class Activation(Layer):
    """Applies an activation function (Keras names) element-wise; softmax over the last axis."""

    supports_masking = True     # element-wise: a time-step mask passes through

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.name_of(activation)

    def forward(self, ops, x, training=False, ws=None):
        out = None if ws is None else ws.buffer("y", x.shape, self.dtype)
        y = ops.activation_forward(self.activation, x, out)
        if ws is not None:
            ws.saved = (x, y)
        return y

    def logits(self, ws):
        return ws.saved[0]

    def backward(self, ops, dy, ws, need_dx=True, from_preact=False):
        if not need_dx:
            return None
        x, y = ws.saved
        if from_preact:
            return dy
        return ops.activation_backward(self.activation, dy, x, y,
                                       ws.buffer("dx", dy.shape, self.dtype))

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class Flatten(Layer):
    """Flattens each sample to one axis: (N, d1, d2, ...) -> (N, d1*d2*...)."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, ops, x, training=False, ws=None):
        if ws is not None:
            ws.saved = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, ops, dy, ws, need_dx=True):
        return dy.reshape(ws.saved) if need_dx else None


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target = tuple(int(d) for d in target_shape)
        if not target or any(d == 0 or d < -1 for d in target) or target.count(-1) > 1:
            raise ValueError(f"{self.name}: target_shape must be positive integers with at "
                             f"most one -1, got {tuple(target_shape)}")
        self.target_shape = target

    def compute_output_shape(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{self.name}: cannot reshape {tuple(input_shape)} to "
                                 f"{self.target_shape}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f"{self.name}: cannot reshape {tuple(input_shape)} "
                             f"({size} values) to {self.target_shape} ({known} values)")
        return self.target_shape

    def forward(self, ops, x, training=False, ws=None):
        if ws is not None:
            ws.saved = x.shape
        return x.reshape((x.shape[0],) + self.output_shape)

    def backward(self, ops, dy, ws, need_dx=True):
        return dy.reshape(ws.saved) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}
