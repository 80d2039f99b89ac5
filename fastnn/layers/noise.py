"""Keras' noise layers: GaussianNoise, GaussianDropout, SpatialDropout1D/2D.

All are the identity in inference and draw fresh noise at every training
step: from the layer's own generator when ``seed`` is given, else from the
generator of the model it runs in (``fastnn._runtime.rng()``, seeded by
``fastnn.set_seed``), as Dropout does.
"""
import math

import numpy as np

from fastnn import _runtime
from fastnn.layers.base import Layer
from fastnn.layers.regularization import Dropout, check_rate, check_seed
from fastnn.ops._core import buffer


class _NoiseLayer(Layer):
    """Element-wise noise on inputs of any shape; a time-step mask passes through."""

    supports_masking = True
    positionwise = True

    def _set_seed(self, seed):
        self.seed = check_seed(seed, self.name)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def check_input_shape(self, input_shape):
        pass

    def _standard_normal(self, shape, dtype):
        generator = self._rng if self._rng is not None else _runtime.rng()
        return generator.standard_normal(shape).astype(dtype, copy=False)


class GaussianNoise(_NoiseLayer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` while
    training (a regularizer, e.g. on inputs); the identity in inference."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.integer,
                                                               np.floating)) \
                or not math.isfinite(stddev) or stddev < 0:
            raise ValueError(f"{self.name}: stddev must be a non-negative number, got "
                             f"{stddev!r}")
        self.stddev = float(stddev)
        self._set_seed(seed)

    def forward(self, ops, x, training=False, ws=None):
        if not training or self.stddev == 0.0:
            return x
        noise = self._standard_normal(x.shape, x.dtype)
        noise = ops.binary("multiply", noise, np.asarray(self.stddev, x.dtype), out=noise)
        return ops.binary("add", x, noise, out=buffer(ws, "y", x.shape, x.dtype))

    def backward(self, ops, dy, ws, need_dx=True):
        return dy if need_dx else None      # the noise does not depend on x

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_NoiseLayer):
    """Multiplies inputs by Gaussian noise of mean 1 and standard deviation
    ``sqrt(rate / (1 - rate))`` while training; the identity in inference."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(rate, self.name)
        self._set_seed(seed)

    def forward(self, ops, x, training=False, ws=None):
        if not training or self.rate == 0.0:
            if ws is not None:
                ws.saved = None
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        noise = self._standard_normal(x.shape, x.dtype)
        noise = ops.binary("multiply", noise, np.asarray(stddev, x.dtype), out=noise)
        noise = ops.binary("add", noise, np.ones((), x.dtype), out=noise)
        if ws is not None:
            ws.saved = noise
        return ops.binary("multiply", x, noise, out=buffer(ws, "y", x.shape, x.dtype))

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        if ws.saved is None:
            return dy
        return ops.binary("multiply", dy, ws.saved, out=ws.buffer("dx", dy.shape, dy.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class _SpatialDropout(Dropout):
    """Dropout of whole channels: one keep/drop draw per (sample, channel),
    shared over the spatial axes (Dropout with a noise_shape of 1 there)."""

    spatial_rank = 1

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, noise_shape=(None,) + (1,) * self.spatial_rank + (None,),
                         seed=seed, **kwargs)

    def build(self, input_shape):
        if len(input_shape) != self.spatial_rank + 1:
            kind = "(batch, steps, channels)" if self.spatial_rank == 1 else \
                "(batch, height, width, channels)"
            raise ValueError(f"{self.name}: expects inputs {kind}, got "
                             f"{(None,) + tuple(input_shape)}")
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]            # fixed by the class, not an argument
        return config


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of (batch, steps, channels) sequences while training
    (rate ``rate``, kept ones scaled by 1 / (1 - rate)); the identity in
    inference."""

    spatial_rank = 1


class SpatialDropout2D(_SpatialDropout):
    """Drops whole channels (feature maps) of (batch, height, width, channels)
    images while training; the identity in inference. channels_last only."""

    spatial_rank = 2

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        if data_format not in (None, "channels_last"):
            raise ValueError(f"SpatialDropout2D: data_format {data_format!r} is not "
                             "supported; fastnn images are channels_last")
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = "channels_last"

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
