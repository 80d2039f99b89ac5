"""Core layers: Input, Dense, Activation, Flatten, Reshape."""
import numpy as np

from fastnn import _runtime
from fastnn import activations as _activations
from fastnn.backend.ops import NEEDS_PREACTIVATION
from fastnn.graph.node import Node
from fastnn.graph.tensor import KerasTensor
from fastnn.layers.base import KernelBiasLayer, Layer, _as_shape, unique_name


# dtypes an Input may declare: floats, integers (token indices for Embedding), or
# bool (masks, e.g. MultiHeadAttention's attention_mask).
INPUT_DTYPES = ("float32", "float64", "int32", "int64", "int16", "int8", "uint8", "uint16",
                "uint32", "uint64", "bool")


class InputLayer(Layer):
    """A model's entry point: it makes the symbolic tensor ``keras.Input`` returns
    (shape with the batch axis first) and computes nothing."""

    is_graph_input = True

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, input_shape=None,
                 batch_shape=None):
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
            if not batch_shape:
                raise ValueError("Input: batch_shape must include the batch axis")
            batch_size, shape = batch_shape[0], batch_shape[1:]
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("Input: shape is required, e.g. Input(shape=(10,))")
        super().__init__(name=name if name is not None else unique_name("input_layer"))
        self.input_shape_hint = _as_shape(shape, self.name)
        dtype = np.dtype(dtype if dtype is not None else _runtime.floatx())
        if dtype.name not in INPUT_DTYPES:
            raise ValueError(f"{self.name}: dtype must be one of {INPUT_DTYPES}, got {dtype}")
        self.dtype = dtype
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
                batch_size, (int, np.integer)) or batch_size < 1):
            raise ValueError(f"{self.name}: batch_size must be a positive integer or None, "
                             f"got {batch_size!r}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.input_shape = self.output_shape = self.input_shape_hint
        self.built = True
        Node(self, [], [KerasTensor(self.shape, self.dtype, name=self.name)])

    @property
    def shape(self):
        """The input shape with the batch axis first (None unless batch_size was given)."""
        return (self.batch_size,) + self.input_shape_hint

    def get_config(self):
        return {"name": self.name, "shape": list(self.input_shape_hint), "dtype": self.dtype.name,
                "batch_size": self.batch_size}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """A symbolic input tensor of ``shape`` (batch axis excluded; None for a free
    size such as a variable-length time axis): the start of a functional model
    (``keras.Model(inputs, outputs)``) or of a Sequential one. ``dtype``: a float
    dtype, or an integer one for token indices that feed an Embedding."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                      batch_shape=batch_shape).output


class Dense(KernelBiasLayer):
    """``output = activation(inputs @ kernel + bias)`` over the last axis.

    Weights (Keras' shapes and order): kernel (input_dim, units), bias (units,).
    Inputs of rank > 2 are treated as a batch of rows over their last axis.
    """

    supports_masking = True     # per step on sequences: a time-step mask passes through
    positionwise = True

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
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the last axis of its inputs must have a known "
                             f"size, got inputs {(None,) + input_shape}")
        self._add_kernel_bias((input_shape[-1], self.units), self.units)
        super().build(input_shape)

    def check_input_shape(self, input_shape):
        # Keras' rule: any rank >= 2, the last axis the kernel's input size.
        if len(input_shape) < 1 or input_shape[-1] != self.kernel.shape[0]:
            raise ValueError(f"layer {self.name!r} expects inputs whose last axis is "
                             f"{self.kernel.shape[0]}, but is called on inputs "
                             f"{(None,) + tuple(input_shape)}")

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

    def dense_stack_parts(self):
        """(kernel, bias or None, activation) of this layer's inference, which is
        exactly act(x @ kernel + bias) -- None for a subclass with a forward of its
        own. predict runs consecutive such layers as one ops.dense_stack call."""
        if type(self).forward is not Dense.forward or self.kernel is None:
            return None
        return self.kernel.value, self.bias.value if self.use_bias else None, self.activation

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
    positionwise = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.name_of(activation)

    def check_input_shape(self, input_shape):
        pass                     # element-wise: any shape

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
        if any(d is None for d in input_shape):
            return (None,)
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
        if any(d is None for d in input_shape):
            # sizes known only per batch: the free axis (-1) is too
            return tuple(None if d == -1 else d for d in self.target_shape)
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
        return x.reshape((x.shape[0],) + self.compute_output_shape(x.shape[1:]))

    def backward(self, ops, dy, ws, need_dx=True):
        return dy.reshape(ws.saved) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}
