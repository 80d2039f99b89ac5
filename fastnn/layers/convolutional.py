"""Convolution layers: Conv2D on images (N, H, W, C) and Conv1D on sequences (N, T, C).

Both run on the backend's 2-D ops (``conv2d_forward`` / ``conv2d_backward``);
Conv1D views its input as (N, 1, T, C) and its (K, C, F) kernel as (1, K, C, F),
without copies, so a single kernel family serves both. Weights have Keras'
shapes and order: kernel (KH, KW, C, F) or (K, C, F), then bias (F,).
"""
import numpy as np

from fastnn import activations as _activations
from fastnn.backend.ops import NEEDS_PREACTIVATION, conv2d_output_shape
from fastnn.layers.base import KernelBiasLayer, shapes_compatible

PADDINGS = ("valid", "same")


def normalize_tuple(value, rank, what, where, minimum=1):
    """A tuple of ``rank`` ints >= ``minimum`` from an int or a sequence (Keras'
    argument forms); ValueError naming the layer otherwise."""
    items = (value,) * rank if _is_int(value) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if items is None or len(items) != rank or not all(_is_int(v) for v in items):
        raise ValueError(f"{where}: {what} must be an integer or a tuple of {rank} integers, "
                         f"got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{where}: {what} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def normalize_padding(padding, where):
    """Keras accepts "valid" / "same" in any case."""
    if isinstance(padding, str) and padding.lower() in PADDINGS:
        return padding.lower()
    if padding == "causal" or (isinstance(padding, str) and padding.lower() == "causal"):
        raise ValueError(f'{where}: padding="causal" is not supported; use "valid" or "same"')
    raise ValueError(f'{where}: padding must be "valid" or "same", got {padding!r}')


def check_data_format(data_format, where):
    """Only Keras' default layout, channels_last, is supported (design decision 4)."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f'{where}: data_format must be "channels_last" (NHWC), got '
                         f'{data_format!r}')


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def spatial_output(layer, input_shape, window, strides, padding, dilation):
    """The 2-D view's (OH, OW) for ``input_shape`` (batch excluded; Conv1D's gets a
    unit height), by Keras' formula; None along an axis whose size is free.
    ValueError naming the layer and the shapes when the (dilated) window does
    not fit a "valid" input."""
    spatial = (1,) * (2 - layer.rank) + tuple(input_shape[:-1])
    free = [d is None for d in spatial]
    # A free axis is sized as the dilated window for the formula, then reported as None.
    sized = tuple((k - 1) * d + 1 if f else n
                  for n, k, d, f in zip(spatial, window, dilation, free))
    out = conv2d_output_shape(sized, window, strides, padding, dilation)
    if min(out) < 1:
        raise ValueError(f"{layer.name}: the window {window[2 - layer.rank:]} "
                         f"(dilation {dilation[2 - layer.rank:]}) is larger than the input "
                         f"{(None,) + tuple(input_shape)} with padding='valid'")
    return tuple(None if f else o for o, f in zip(out, free))


def check_channels_last(layer, input_shape, expected):
    """Built layers with spatial axes (conv, pooling) take any spatial size of the
    same rank with the same channels."""
    channels = layer.input_shape[-1]
    if len(input_shape) != layer.rank + 1 or not shapes_compatible((channels,),
                                                                    (input_shape[-1],)):
        raise ValueError(f"layer {layer.name!r} expects inputs of shape {expected} with "
                         f"{channels} channels, but is called on inputs "
                         f"{(None,) + tuple(input_shape)}")


class _Conv(KernelBiasLayer):
    """Shared by Conv1D (rank 1) and Conv2D (rank 2)."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(filters) or filters < 1:
            raise ValueError(f"{self.name}: filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", self.name)
        self.strides = normalize_tuple(strides, self.rank, "strides", self.name)
        self.padding = normalize_padding(padding, self.name)
        check_data_format(data_format, self.name)
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", self.name)
        if groups != 1:
            raise ValueError(f"{self.name}: only groups=1 is supported, got {groups!r}")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{self.name}: strides > 1 is not supported together with "
                             f"dilation_rate > 1 (Keras' rule); got strides {self.strides}, "
                             f"dilation_rate {self.dilation_rate}")
        self.activation = _activations.name_of(activation)
        self._set_kernel_bias_options(use_bias, kernel_initializer, bias_initializer,
                                      kernel_regularizer, bias_regularizer)

    # The 2-D geometry the ops see: Conv1D prepends a unit axis.
    def _geometry(self):
        pad = (1,) * (2 - self.rank)
        return (pad + self.kernel_size, pad + self.strides, pad + self.dilation_rate)

    def _expected(self):
        return "(batch, steps, channels)" if self.rank == 1 else \
            "(batch, height, width, channels)"

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 1:
            raise ValueError(f"{self.name}: expects inputs of shape {self._expected()}, i.e. "
                             f"rank {self.rank + 2} with the batch axis; got "
                             f"{(None,) + input_shape}"
                             + (" (add a channels axis of size 1 for single-channel images)"
                                if self.rank == 2 and len(input_shape) == 2 else ""))
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the channels axis of its inputs must have a known "
                             f"size, got inputs {(None,) + input_shape}")
        self._add_kernel_bias(self.kernel_size + (input_shape[-1], self.filters), self.filters)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        window, strides, dilation = self._geometry()
        out = spatial_output(self, input_shape, window, strides, self.padding, dilation)
        return tuple(out[2 - self.rank:]) + (self.filters,)

    # Set by a model whose loss takes this layer's logits (as Dense).
    keep_logits = False

    def _keeps_preactivation(self):
        return (self.keep_logits or self.activation == "softmax"
                or self.activation in NEEDS_PREACTIVATION)

    def _as_2d(self, a):
        """(N, T, C) -> (N, 1, T, C) for Conv1D (a view); images unchanged."""
        return a if self.rank == 2 else a.reshape((a.shape[0], 1) + a.shape[1:])

    def _kernel_2d(self, a):
        return a if self.rank == 2 else a.reshape((1,) + a.shape)

    def _cols(self, ops, ws, x2, w2, strides, dilation):
        """The backend's im2col scratch, from the workspace (reused across steps;
        bounded: the compiled kernels work on cache-sized chunks)."""
        if ws is None:
            return None
        size = ops.conv2d_scratch_size(x2, w2, strides=strides, padding=self.padding,
                                       dilation=dilation)
        return ws.buffer("cols", (size,), self.dtype) if size else None

    def check_input_shape(self, input_shape):
        check_channels_last(self, input_shape, self._expected())

    def forward(self, ops, x, training=False, ws=None):
        self.check_input_shape(x.shape[1:])
        x = np.ascontiguousarray(x)
        shape = (x.shape[0],) + self.compute_output_shape(x.shape[1:])
        keep_z = self._keeps_preactivation()
        if ws is None:
            out, z = None, (np.empty(shape, self.dtype) if keep_z else None)
        else:
            out = ws.buffer("y", shape, self.dtype)
            z = ws.buffer("z", shape, self.dtype) if keep_z else None
        _, strides, dilation = self._geometry()
        x2, w2 = self._as_2d(x), self._kernel_2d(self.kernel.value)
        y = ops.conv2d_forward(
            x2, w2, self.bias.value if self.use_bias else None, strides=strides,
            padding=self.padding, dilation=dilation, activation=self.activation,
            out=None if out is None else self._as_2d(out),
            preact_out=None if z is None else self._as_2d(z),
            cols=self._cols(ops, ws, x2, w2, strides, dilation))
        y = y.reshape(shape)
        if ws is not None:
            ws.saved = (x, y, z)
        return y

    def logits(self, ws):
        """The pre-activation of the last training forward (for fused losses)."""
        return ws.saved[2]

    def backward(self, ops, dy, ws, need_dx=True, from_preact=False):
        x, y, z = ws.saved
        dy = np.ascontiguousarray(dy)
        activation = "linear" if from_preact else self.activation
        dx = self._as_2d(ws.buffer("dx", x.shape, self.dtype)) if need_dx else False
        scratch = ws.buffer("dz", dy.shape, self.dtype)
        _, strides, dilation = self._geometry()
        x2, w2 = self._as_2d(x), self._kernel_2d(self.kernel.value)
        dx = ops.conv2d_backward(
            self._as_2d(dy), x2, w2, self._as_2d(y), None if z is None else self._as_2d(z),
            strides=strides, padding=self.padding, dilation=dilation, activation=activation,
            dw_out=self._kernel_2d(self.grad_of(self.kernel, ws)),
            db_out=self.grad_of(self.bias, ws) if self.use_bias else None,
            dx_out=dx, scratch=self._as_2d(scratch),
            cols=self._cols(ops, ws, x2, w2, strides, dilation))
        return None if dx is None else dx.reshape(x.shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": "channels_last",
                "dilation_rate": list(self.dilation_rate), "activation": self.activation,
                **self._kernel_bias_config()}


class Conv2D(_Conv):
    """2-D convolution over images (batch, height, width, channels) (Keras' Conv2D).

    ``outputs = activation(conv2d(inputs, kernel) + bias)``; kernel (kh, kw,
    in_channels, filters), bias (filters,). ``padding="same"`` pads as Keras/TF
    (the extra row/column at the bottom/right); strides > 1 and dilation_rate > 1
    cannot be combined (as in Keras). Only ``data_format="channels_last"``.
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, **kwargs)


class Conv1D(_Conv):
    """1-D convolution over sequences (batch, steps, channels) (Keras' Conv1D).

    kernel (kernel_size, in_channels, filters), bias (filters,). Padding
    "valid" or "same" ("causal" is not supported).
    """

    rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, **kwargs)


# Keras' aliases
Convolution2D = Conv2D
Convolution1D = Conv1D
