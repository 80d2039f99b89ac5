"""Keras' reshaping layers: RepeatVector, Permute, Rescaling, ZeroPadding1D/2D,
Cropping1D/2D.

Repeating, permuting, padding and cropping only move values, so they are
NumPy copies shared by both backends (as Dropout's broadcast of its mask);
the arithmetic (Rescaling, RepeatVector's gradient sum) goes through ``ops``.
Images are channels_last (NHWC, design decision 4).
"""
import numpy as np

from fastnn.layers.base import Layer
from fastnn.ops._core import buffer


def _positive_int(value, name, where, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _channels_last(data_format, where):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{where}: data_format {data_format!r} is not supported; fastnn "
                         "images are channels_last (batch, height, width, channels)")
    return "channels_last"


def _pair(value, name, where):
    """An int p -> (p, p); a pair of non-negative ints -> itself."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{where}: {name} must be an integer or a pair of integers, "
                         f"got {value!r}")
    return tuple(_positive_int(v, name, where, minimum=0) for v in pair)


def _pairs2d(value, name, where):
    """Keras' 2-D padding / cropping: an int, (symmetric_h, symmetric_w), or
    ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (_pair(value, name, where), _pair(value, name, where))
    try:
        parts = tuple(value)
    except TypeError:
        parts = ()
    if len(parts) != 2:
        raise ValueError(f"{where}: {name} must be an integer, a pair of integers or a pair "
                         f"of pairs, got {value!r}")
    return tuple(_pair(p, name, where) for p in parts)


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated n times."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _positive_int(n, "n", self.name)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"{self.name}: expects inputs of shape (batch, features), got "
                             f"{(None,) + tuple(input_shape)}")
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (self.n,) + tuple(input_shape)

    def forward(self, ops, x, training=False, ws=None):
        shape = (x.shape[0], self.n, x.shape[1])
        out = buffer(ws, "y", shape, x.dtype)
        out = np.empty(shape, x.dtype) if out is None else out
        np.copyto(out, x[:, None, :])
        return out

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        return ops.reduce("sum", dy, axes=1,
                          out=ws.buffer("dx", (dy.shape[0], dy.shape[2]), dy.dtype))

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permutes the axes after the batch: ``dims`` is a permutation of 1..rank
    (Keras' numbering, 1 the first axis after the batch), e.g. ``Permute((2, 1))``
    swaps the time and feature axes of a sequence."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(dims)
        except TypeError:
            dims = (dims,)
        if sorted(dims) != list(range(1, len(dims) + 1)) or \
                any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in dims):
            raise ValueError(f"{self.name}: dims must be a permutation of 1..rank (axis 1 is "
                             f"the first after the batch), got {dims!r}")
        self.dims = tuple(int(d) for d in dims)
        self._inverse = tuple(int(i) for i in np.argsort((0,) + self.dims))

    def build(self, input_shape):
        if len(input_shape) != len(self.dims):
            raise ValueError(f"{self.name}: dims {self.dims} need inputs of rank "
                             f"{len(self.dims) + 1}, got {(None,) + tuple(input_shape)}")
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[d - 1] for d in self.dims)

    def _transpose(self, x, axes, ws, key):
        shape = tuple(x.shape[a] for a in axes)
        out = buffer(ws, key, shape, x.dtype)
        out = np.empty(shape, x.dtype) if out is None else out
        np.copyto(out, x.transpose(axes))
        return out

    def forward(self, ops, x, training=False, ws=None):
        return self._transpose(x, (0,) + self.dims, ws, "y")

    def backward(self, ops, dy, ws, need_dx=True):
        return self._transpose(dy, self._inverse, ws, "dx") if need_dx else None

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class Rescaling(Layer):
    """``x * scale + offset`` (e.g. ``Rescaling(1 / 255)`` for pixels). ``scale``
    and ``offset`` are numbers or arrays that broadcast to one sample (e.g. one
    per channel); they are constants, not weights."""

    supports_masking = True
    positionwise = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = self._constant(scale, "scale")
        self.offset = self._constant(offset, "offset")

    def _constant(self, value, name):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: {name} must be a number or an array of numbers, "
                             f"got {value!r}") from None
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{self.name}: {name} must be finite, got {value!r}")
        return array

    def check_input_shape(self, input_shape):
        pass                     # element-wise: any shape the constants broadcast to

    def build(self, input_shape):
        for name, array in (("scale", self.scale), ("offset", self.offset)):
            try:
                np.broadcast_shapes(array.shape, tuple(1 if d is None else d
                                                       for d in input_shape))
            except ValueError:
                raise ValueError(f"{self.name}: {name} of shape {array.shape} does not "
                                 f"broadcast to inputs {(None,) + tuple(input_shape)}") from None
        super().build(input_shape)

    def forward(self, ops, x, training=False, ws=None):
        y = ops.binary("multiply", x, self.scale.astype(x.dtype),
                       out=buffer(ws, "y", x.shape, x.dtype))
        return ops.binary("add", y, self.offset.astype(x.dtype), out=y)

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        return ops.binary("multiply", dy, self.scale.astype(dy.dtype),
                          out=ws.buffer("dx", dy.shape, dy.dtype))

    def get_config(self):
        def plain(array):
            return float(array) if array.ndim == 0 else array.tolist()
        return {**super().get_config(), "scale": plain(self.scale), "offset": plain(self.offset)}


class _PadCrop(Layer):
    """Zero padding (``sign`` +1) or cropping (-1) of the spatial axes after the
    batch: ``self.amounts`` holds one (before, after) pair per spatial axis."""

    sign = 1
    what = "padding"

    def build(self, input_shape):
        if len(input_shape) != len(self.amounts) + 1:
            kind = "(batch, steps, channels)" if len(self.amounts) == 1 else \
                "(batch, height, width, channels)"
            raise ValueError(f"{self.name}: expects inputs {kind}, got "
                             f"{(None,) + tuple(input_shape)}")
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        out = []
        for d, (before, after) in zip(input_shape, self.amounts):
            size = None if d is None else d + self.sign * (before + after)
            if size is not None and size < 1:
                raise ValueError(f"{self.name}: cropping {self.amounts} leaves nothing of "
                                 f"inputs {(None,) + tuple(input_shape)}")
            out.append(size)
        return tuple(out) + (input_shape[-1],)

    def _inner(self, shape):
        """The slices of the larger array (padded output, or uncropped input) where
        the smaller one sits."""
        return (slice(None),) + tuple(slice(before, d - after) for d, (before, after)
                                      in zip(shape[1:], self.amounts)) + (slice(None),)

    def _pad(self, small, big_shape, ws, key):
        big = buffer(ws, key, big_shape, small.dtype)
        big = np.empty(big_shape, small.dtype) if big is None else big
        big.fill(0)
        big[self._inner(big_shape)] = small
        return big

    def _crop(self, big, ws, key):
        inner = big[self._inner(big.shape)]
        out = buffer(ws, key, inner.shape, big.dtype)
        out = np.empty(inner.shape, big.dtype) if out is None else out
        np.copyto(out, inner)
        return out

    def forward(self, ops, x, training=False, ws=None):
        if ws is not None:
            ws.saved = x.shape
        if self.sign > 0:
            shape = (x.shape[0],) + self.compute_output_shape(x.shape[1:])
            return self._pad(x, shape, ws, "y")
        return self._crop(x, ws, "y")

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        if self.sign > 0:
            return self._crop(dy, ws, "dx")
        return self._pad(dy, ws.saved, ws, "dx")


class ZeroPadding1D(_PadCrop):
    """Zeros added at the start and end of the time axis of (batch, steps,
    channels): ``padding`` an int (both ends) or (start, end)."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair(padding, "padding", self.name)
        self.amounts = (self.padding,)

    def get_config(self):
        return {**super().get_config(), "padding": list(self.padding)}


class ZeroPadding2D(_PadCrop):
    """Zero rows and columns around images (batch, height, width, channels):
    ``padding`` an int, (symmetric_height, symmetric_width) or ((top, bottom),
    (left, right))."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _channels_last(data_format, self.name)
        self.padding = _pairs2d(padding, "padding", self.name)
        self.amounts = self.padding

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding],
                "data_format": self.data_format}


class Cropping1D(_PadCrop):
    """Removes steps at the start and end of the time axis of (batch, steps,
    channels): ``cropping`` an int (both ends) or (start, end)."""

    sign = -1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pair(cropping, "cropping", self.name)
        self.amounts = (self.cropping,)

    def get_config(self):
        return {**super().get_config(), "cropping": list(self.cropping)}


class Cropping2D(_PadCrop):
    """Removes rows and columns at the edges of images (batch, height, width,
    channels): ``cropping`` an int, (symmetric_height, symmetric_width) or
    ((top, bottom), (left, right))."""

    sign = -1

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _channels_last(data_format, self.name)
        self.cropping = _pairs2d(cropping, "cropping", self.name)
        self.amounts = self.cropping

    def get_config(self):
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping],
                "data_format": self.data_format}
