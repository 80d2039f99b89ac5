"""Recurrent layers (Keras'): SimpleRNN, LSTM, GRU and the Bidirectional wrapper.

Each layer runs its whole sequence in one ``ops.rnn_forward`` call and
back-propagates through time in one ``ops.rnn_backward`` call (the compiled
backend does both in C, with no Python per time step). Weights have Keras'
names, shapes, gate orders and order -- kernel (I, G*U), recurrent_kernel
(U, G*U), bias -- so ``get_weights`` / ``set_weights`` exchange them with Keras.

Inputs are (batch, time, features). A time-step mask from
``Embedding(mask_zero=True)`` arrives in the workspace (``ws.mask``): a masked
step keeps the previous state and repeats the previous output.
"""
import math

import numpy as np

from fastnn import _runtime
from fastnn import activations as _activations
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.layers.base import Layer, Workspace


class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share; subclasses set ``cell`` and ``gates``."""

    cell = None
    gates = 1

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, return_sequences=False,
                 go_backwards=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"{self.name}: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = _element_wise(activation, self.name, "activation")
        self.recurrent_activation = _element_wise(recurrent_activation, self.name,
                                                  "recurrent_activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = _regularizers.get(recurrent_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        if (isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.integer,
                                                                  np.floating))
                or not math.isfinite(dropout) or not 0.0 <= dropout < 1.0):
            raise ValueError(f"{self.name}: dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.return_sequences = bool(return_sequences)
        self.go_backwards = bool(go_backwards)
        self.kernel = self.recurrent_kernel = self.bias = None

    # ---- lifecycle -------------------------------------------------------------
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"{self.name}: expects 3-D inputs (batch, time, features), got "
                             f"inputs of shape {(None,) + input_shape}")
        if input_shape[0] is not None and input_shape[0] < 1:
            raise ValueError(f"{self.name}: sequences need at least one time step, got inputs "
                             f"of shape {(None,) + input_shape}")
        if input_shape[1] is None:
            raise ValueError(f"{self.name}: the features axis of its inputs must have a known "
                             f"size, got inputs {(None,) + input_shape}")
        width = self.gates * self.units
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[1], width),
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel",
                                                shape=(self.units, width),
                                                initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=self._bias_shape(),
                                        initializer=self._bias_init(),
                                        regularizer=self.bias_regularizer)
        super().build(input_shape)

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], self.units)
        return (self.units,)

    def output_mask(self, ws):
        # The sequence output keeps the input's mask; the last state consumes it.
        return ws.mask if self.return_sequences else None

    def check_input_shape(self, input_shape):
        # any number of time steps; the features the kernel was built for
        features = self.kernel.shape[0]
        if len(input_shape) != 2 or input_shape[1] != features:
            raise ValueError(f"layer {self.name!r} expects inputs (batch, time, {features}), "
                             f"but is called on inputs {(None,) + tuple(input_shape)}")

    # ---- forward and backward --------------------------------------------------
    def _check_input(self, x):
        if x.ndim != 3:
            raise ValueError(f"{self.name}: expects 3-D inputs (batch, time, features), got "
                             f"shape {x.shape}")
        if x.shape[1] < 1:
            raise ValueError(f"{self.name}: sequences need at least one time step, got "
                             f"shape {x.shape}")
        if x.shape[2] != self.kernel.shape[0]:
            raise ValueError(f"{self.name}: was built for {self.kernel.shape[0]} features per "
                             f"step, got inputs of shape {x.shape}")

    def _input_dropout(self, ops, x, ws):
        """Keras' input dropout: one mask per sample and feature, the same at every
        step. Returns (the dropped-out x, the (N, T, I) uint8 mask)."""
        n, t, i = x.shape
        seed = int(_runtime.rng().integers(0, 2**64, dtype=np.uint64))
        small = ops.dropout_mask(seed, self.dropout, np.empty((n, 1, i), np.uint8))
        mask = (np.empty(x.shape, np.uint8) if ws is None
                else ws.buffer("dropout_mask", x.shape, np.uint8))
        np.copyto(mask, np.broadcast_to(small, x.shape))     # a copy, not math
        out = None if ws is None else ws.buffer("x_dropped", x.shape, x.dtype)
        return ops.dropout_backward(x, mask, self.dropout, out), mask

    def _step_mask(self, ws, x):
        mask = None if ws is None else ws.mask
        if mask is None:
            return None
        if mask.shape != x.shape[:2]:
            raise ValueError(f"{self.name}: the mask {mask.shape} does not match inputs "
                             f"{x.shape} (it must be (batch, time))")
        return np.ascontiguousarray(mask, dtype=np.uint8)

    def _kernel_args(self):
        return dict(activation=self.activation, recurrent_activation=self.recurrent_activation,
                    go_backwards=self.go_backwards)

    def forward(self, ops, x, training=False, ws=None):
        self._check_input(x)
        drop_mask = None
        if training and self.dropout > 0.0:
            x, drop_mask = self._input_dropout(ops, x, ws)
        mask = self._step_mask(ws, x)
        n, t, _ = x.shape
        hs_shape, cache_shape = (n, t, self.units), ops.rnn_cache_shape(self.cell, n, t,
                                                                        self.units)
        if ws is None:
            hs_out, cache = None, None
        else:
            hs_out = ws.buffer("hs", hs_shape, self.dtype)
            cache = ws.buffer("cache", cache_shape, self.dtype)
        hs = ops.rnn_forward(self.cell, x, self.kernel.value, self.recurrent_kernel.value,
                             None if self.bias is None else self.bias.value, mask=mask,
                             hs_out=hs_out, cache_out=cache, **self._kernel_args())
        if ws is not None:
            ws.saved = (x, hs, cache, mask, drop_mask)
        if self.return_sequences:
            return hs
        last = np.empty((n, self.units), self.dtype) if ws is None else \
            ws.buffer("last", (n, self.units), self.dtype)
        np.copyto(last, hs[:, -1])        # the state after the last processed step
        return last

    def backward(self, ops, dy, ws, need_dx=True):
        x, hs, cache, mask, drop_mask = ws.saved
        if self.return_sequences:
            dhs = np.ascontiguousarray(dy)
        else:
            dhs = ws.buffer("dhs", hs.shape, self.dtype)
            dhs[:, :-1] = 0
            dhs[:, -1] = dy
        dx = ws.buffer("dx", x.shape, self.dtype) if need_dx else False
        dx = ops.rnn_backward(
            self.cell, dhs, x, self.kernel.value, self.recurrent_kernel.value,
            None if self.bias is None else self.bias.value, hs, cache, mask=mask,
            dkernel_out=self.grad_of(self.kernel, ws),
            drecurrent_out=self.grad_of(self.recurrent_kernel, ws),
            dbias_out=None if self.bias is None else self.grad_of(self.bias, ws),
            dx_out=dx, **self._kernel_args())
        if dx is not None and drop_mask is not None:
            dx = ops.dropout_backward(dx, drop_mask, self.dropout, dx)
        return dx

    # ---- config ------------------------------------------------------------------
    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": _regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
                "dropout": self.dropout, "return_sequences": self.return_sequences,
                "go_backwards": self.go_backwards}


class SimpleRNN(_Recurrent):
    """Fully-connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Weights: kernel (input_dim, units), recurrent_kernel (units, units), bias (units,).
    """

    cell, gates = "simple_rnn", 1

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, return_sequences=False, go_backwards=False,
                 **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, dropout=dropout,
                         return_sequences=return_sequences, go_backwards=go_backwards, **kwargs)


class LSTM(_Recurrent):
    """Long Short-Term Memory (Hochreiter 1997), Keras' formulation.

    Gates in Keras' order i, f, c, o: kernel (input_dim, 4*units),
    recurrent_kernel (units, 4*units), bias (4*units,). ``unit_forget_bias``
    adds 1 to the forget gate's bias at initialization (Jozefowicz et al.).
    """

    cell, gates = "lstm", 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, dropout=0.0,
                 return_sequences=False, go_backwards=False, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, dropout=dropout,
                         return_sequences=return_sequences, go_backwards=go_backwards, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        return _ForgetBias(self.bias_initializer, self.units)

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "unit_forget_bias": self.unit_forget_bias}


class GRU(_Recurrent):
    """Gated Recurrent Unit (Cho et al. 2014), Keras' default ``reset_after=True`` form.

    Gates in Keras' order z, r, h: kernel (input_dim, 3*units), recurrent_kernel
    (units, 3*units), bias (2, 3*units) = [input bias; recurrent bias]; the reset
    gate multiplies the recurrent projection after it is computed.
    """

    cell, gates = "gru", 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, return_sequences=False, go_backwards=False,
                 reset_after=True, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, dropout=dropout,
                         return_sequences=return_sequences, go_backwards=go_backwards, **kwargs)
        if not reset_after:
            raise ValueError(f"{self.name}: only reset_after=True (Keras' default, bias of "
                             "shape (2, 3*units)) is supported")
        self.reset_after = True

    def _bias_shape(self):
        return (2, 3 * self.units)

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "reset_after": True}


class _ForgetBias(_initializers.Initializer):
    """LSTM's unit_forget_bias: the bias initializer, then 1 in the forget block."""

    def __init__(self, base, units):
        self.base, self.units = base, units

    def __call__(self, shape, dtype="float32"):
        value = np.array(self.base(shape, dtype), dtype=dtype)
        value[self.units:2 * self.units] = 1
        return value


RECURRENT_CLASSES = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
MERGE_MODES = ("concat", "sum", "mul", "ave")


class Bidirectional(Layer):
    """Runs a recurrent layer over the sequence in both directions and merges the outputs.

    The backward copy (same config, ``go_backwards`` flipped) reads the sequence
    from its end; with ``return_sequences`` its outputs are put back in time
    order before merging, as Keras does. ``merge_mode``: "concat" (features of
    the forward output, then the backward's), "sum", "mul" or "ave". Weights:
    the forward layer's, then the backward layer's.
    """

    def __init__(self, layer, merge_mode="concat", **kwargs):
        if not isinstance(layer, _Recurrent):
            raise ValueError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got "
                             f"{type(layer).__name__}")
        kwargs.setdefault("dtype", layer.dtype)
        if layer.input_shape_hint is not None:
            kwargs.setdefault("input_shape", layer.input_shape_hint)
        super().__init__(**kwargs)
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"{self.name}: merge_mode must be one of {MERGE_MODES}, got "
                             f"{merge_mode!r}")
        if layer.built:
            raise ValueError(f"{self.name}: wrap a layer that is not built yet")
        self.merge_mode = merge_mode
        config = layer.get_config()
        config.pop("input_shape", None)
        self.forward_layer = type(layer).from_config(
            {**config, "name": "forward_" + layer.name})
        self.backward_layer = type(layer).from_config(
            {**config, "name": "backward_" + layer.name, "go_backwards": not layer.go_backwards})
        self.return_sequences = layer.return_sequences

    def build(self, input_shape):
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        super().build(input_shape)

    def check_input_shape(self, input_shape):
        self.forward_layer.check_input_shape(input_shape)

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        if self.merge_mode == "concat":
            return shape[:-1] + (2 * shape[-1],)
        return shape

    def output_mask(self, ws):
        return ws.mask if self.return_sequences else None

    def _both(self, ws):
        fw, bw = ws.child("forward"), ws.child("backward")
        fw.mask = bw.mask = ws.mask
        return fw, bw

    def forward(self, ops, x, training=False, ws=None):
        if ws is None:
            ws = Workspace()
        fw, bw = self._both(ws)
        yf = self.forward_layer.forward(ops, x, training, fw)
        yb = self.backward_layer.forward(ops, x, training, bw)
        if self.return_sequences:
            yb = yb[:, ::-1]        # back in time order (the backward layer ran T-1..0)
        ws.saved = (yf, yb)
        u = yf.shape[-1]
        if self.merge_mode == "concat":
            out = ws.buffer("y", yf.shape[:-1] + (2 * u,), self.dtype)
            out[..., :u] = yf
            out[..., u:] = yb
            return out
        # The merges below are one element-wise pass on the layer's output, the
        # same on every backend.
        out = ws.buffer("y", yf.shape, self.dtype)
        if self.merge_mode == "mul":
            np.multiply(yf, yb, out=out)
        else:
            np.add(yf, yb, out=out)
            if self.merge_mode == "ave":
                out *= self.dtype.type(0.5)
        return out

    def backward(self, ops, dy, ws, need_dx=True):
        yf, yb = ws.saved
        fw, bw = ws.child("forward"), ws.child("backward")
        u = yf.shape[-1]
        if self.merge_mode == "concat":
            dyf, dyb = dy[..., :u], dy[..., u:]
        elif self.merge_mode == "sum":
            dyf = dyb = dy
        elif self.merge_mode == "ave":
            dyf = dyb = dy * self.dtype.type(0.5)
        else:
            dyf, dyb = dy * yb, dy * yf
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        dxf = self.forward_layer.backward(ops, np.ascontiguousarray(dyf), fw, need_dx)
        dxb = self.backward_layer.backward(ops, np.ascontiguousarray(dyb), bw, need_dx)
        if not need_dx:
            return None
        dxf += dxb          # dxf is the forward layer's scratch: summing in place is safe
        return dxf

    def get_config(self):
        inner = self.forward_layer.get_config()
        inner["name"] = self.forward_layer.name[len("forward_"):]
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": {"class_name": type(self.forward_layer).__name__, "config": inner}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        spec = config.pop("layer", None)
        if not isinstance(spec, dict) or spec.get("class_name") not in RECURRENT_CLASSES \
                or not isinstance(spec.get("config"), dict):
            raise ValueError(f"Bidirectional: 'layer' must name one of "
                             f"{sorted(RECURRENT_CLASSES)} with its config, got {spec!r}")
        layer = RECURRENT_CLASSES[spec["class_name"]].from_config(spec["config"])
        return cls(layer, **config)


def _element_wise(activation, where, what):
    """A Keras activation name usable inside a recurrent cell (element-wise: not softmax)."""
    name = _activations.name_of(activation)
    if name == "softmax":
        raise ValueError(f"{where}: {what} must be element-wise; softmax is not supported "
                         "inside a recurrent cell")
    return name
