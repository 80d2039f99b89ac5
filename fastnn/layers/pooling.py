"""Pooling layers (Keras'): max and average, 2-D over images (N, H, W, C) and 1-D
over sequences (N, T, C), windowed or global.

All of them run on the backend's 2-D pooling ops: 1-D inputs are viewed as
(N, 1, T, C), and global pooling is one window the size of the whole plane.
Max pooling keeps each window's argmax for its backward pass.
"""
import numpy as np

from fastnn.layers.base import Layer
from fastnn.layers.convolutional import (
    check_channels_last, check_data_format, normalize_padding, normalize_tuple, spatial_output,
)


class _Pooling(Layer):
    """Shared by the windowed and global poolings; ``rank`` 1 or 2, ``mode`` "max" | "avg"."""

    rank = 2
    mode = "max"

    def _expected(self):
        return "(batch, steps, channels)" if self.rank == 1 else \
            "(batch, height, width, channels)"

    def _window(self, input_shape):
        """(pool_size, strides, padding) as the 2-D ops see them."""
        raise NotImplementedError

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 1:
            raise ValueError(f"{self.name}: expects inputs of shape {self._expected()}, i.e. "
                             f"rank {self.rank + 2} with the batch axis; got "
                             f"{(None,) + input_shape}")
        super().build(input_shape)

    def _pooled_shape(self, input_shape):
        """(OH, OW) of the 2-D view (None along a free axis), checked to be non-empty."""
        pool, strides, padding = self._window(input_shape)
        try:
            return spatial_output(self, input_shape, pool, strides, padding, (1, 1))
        except ValueError:
            raise ValueError(f"{self.name}: pool_size {pool[2 - self.rank:]} is larger than "
                             f"the input {(None,) + tuple(input_shape)} with "
                             "padding='valid'") from None

    def _as_2d(self, a):
        return a if self.rank == 2 else a.reshape((a.shape[0], 1) + a.shape[1:])

    def check_input_shape(self, input_shape):
        check_channels_last(self, input_shape, self._expected())

    def forward(self, ops, x, training=False, ws=None):
        self.check_input_shape(x.shape[1:])
        x2 = self._as_2d(x)
        pool, strides, padding = self._window(x.shape[1:])
        shape2 = (x.shape[0],) + self._pooled_shape(x.shape[1:]) + (x.shape[-1],)
        out = None if ws is None else ws.buffer("y", shape2, self.dtype)
        if self.mode == "max":
            # The argmax is kept whenever there is a workspace: backward may run
            # in inference mode too (saliency, fastnn.inspect).
            argmax = None if ws is None else ws.buffer("argmax", shape2, "int64")
            y = ops.max_pool2d_forward(x2, pool_size=pool, strides=strides, padding=padding,
                                       out=out, argmax_out=argmax)
        else:
            argmax = None
            y = ops.avg_pool2d_forward(x2, pool_size=pool, strides=strides, padding=padding,
                                       out=out)
        if ws is not None:
            ws.saved = (x.shape, x2.shape, y.shape, argmax)
        return y.reshape((x.shape[0],) + self.compute_output_shape(x.shape[1:]))

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        x_shape, x2_shape, y2_shape, argmax = ws.saved
        dy2 = dy.reshape(y2_shape)
        dx = ws.buffer("dx", x2_shape, self.dtype)
        if self.mode == "max":
            dx = ops.max_pool2d_backward(dy2, argmax, input_shape=x2_shape, out=dx)
        else:
            pool, strides, padding = self._window(x_shape[1:])
            dx = ops.avg_pool2d_backward(dy2, input_shape=x2_shape, pool_size=pool,
                                         strides=strides, padding=padding, out=dx)
        return dx.reshape(x_shape)


class _WindowPooling(_Pooling):
    """MaxPooling1D/2D and AveragePooling1D/2D: a window slid with strides."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size", self.name)
        self.strides = (self.pool_size if strides is None
                        else normalize_tuple(strides, self.rank, "strides", self.name))
        self.padding = normalize_padding(padding, self.name)
        check_data_format(data_format, self.name)

    def _window(self, input_shape):
        pad = (1,) * (2 - self.rank)
        return pad + self.pool_size, pad + self.strides, self.padding

    def compute_output_shape(self, input_shape):
        out = self._pooled_shape(input_shape)
        return tuple(out[2 - self.rank:]) + (input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": "channels_last"}


class _GlobalPooling(_Pooling):
    """GlobalMax/AveragePooling1D/2D: one window over all steps or pixels."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, self.name)
        self.keepdims = bool(keepdims)

    def _window(self, input_shape):
        # the whole plane (a free axis: one position, for shape inference only)
        plane = (1,) * (2 - self.rank) + tuple(1 if d is None else int(d)
                                                for d in input_shape[:-1])
        return plane, plane, "valid"

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (1,) * (len(input_shape) - 1) + (input_shape[-1],)
        return (input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last",
                "keepdims": self.keepdims}


class MaxPooling2D(_WindowPooling):
    """Max over (pool_size) windows of images (batch, height, width, channels)
    moved by ``strides`` (default: pool_size); "same" padding never picks a pad."""

    rank, mode = 2, "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(_WindowPooling):
    """Mean over (pool_size) windows of images; with "same" padding each window's
    sum is divided by its count of non-padded elements (as Keras/TF)."""

    rank, mode = 2, "avg"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class MaxPooling1D(_WindowPooling):
    """Max over windows of ``pool_size`` steps of sequences (batch, steps, channels)."""

    rank, mode = 1, "max"


class AveragePooling1D(_WindowPooling):
    """Mean over windows of ``pool_size`` steps of sequences (batch, steps, channels)."""

    rank, mode = 1, "avg"


class GlobalMaxPooling2D(_GlobalPooling):
    """Max over all pixels of each channel: (batch, h, w, c) -> (batch, c)."""

    rank, mode = 2, "max"


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over all pixels of each channel: (batch, h, w, c) -> (batch, c)."""

    rank, mode = 2, "avg"


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over all steps of each channel: (batch, steps, c) -> (batch, c)."""

    rank, mode = 1, "max"


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over all steps of each channel: (batch, steps, c) -> (batch, c). With a
    time-step mask (from ``Embedding(mask_zero=True)``) the mean is over the kept
    steps only, as Keras takes it; the mask stops here."""

    rank, mode = 1, "avg"
    supports_masking = True

    def output_mask(self, ws):
        return None

    def forward(self, ops, x, training=False, ws=None):
        mask = None if ws is None else ws.mask
        if mask is None:
            return super().forward(ops, x, training, ws)
        self.check_input_shape(x.shape[1:])
        # y[n] = sum_t w[n, t] x[n, t] with w = mask / (kept steps): a (1, T) @ (T, C)
        # product per sample (no kept step: 0 / 0, NaN, as Keras gives)
        kept = mask.sum(axis=1, keepdims=True, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = ws.buffer("w", mask.shape, self.dtype)
            np.divide(mask, kept, out=w, casting="unsafe")
        n, _, c = x.shape
        y = ws.buffer("y_masked", (n, 1, c), self.dtype)
        ops.batch_matmul(w.reshape(n, 1, -1), x, out=y)
        ws.saved = ("masked", x.shape, w)
        return y.reshape((n,) + self.compute_output_shape(x.shape[1:]))

    def backward(self, ops, dy, ws, need_dx=True):
        if ws.saved[0] != "masked":
            return super().backward(ops, dy, ws, need_dx)
        if not need_dx:
            return None
        _, x_shape, w = ws.saved
        n, t, c = x_shape
        dx = ws.buffer("dx", x_shape, self.dtype)
        return ops.binary("multiply", w.reshape(n, t, 1), dy.reshape(n, 1, c), out=dx)


# Keras' aliases
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
