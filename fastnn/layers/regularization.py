"""Regularization layers: Dropout."""
import math

import numpy as np

from fastnn import _runtime
from fastnn.layers.base import Layer


class Dropout(Layer):
    """Inverted dropout (Keras): in training, each input element is zeroed with
    probability ``rate`` and the kept ones are scaled by ``1 / (1 - rate)``;
    in inference the layer is the identity.

    The mask is a hash of (a per-step seed, the element's index), so it is the
    same on both backends and for any thread count. The per-step seed comes
    from the layer's own generator when ``seed`` is given; else from the
    generator of the model it runs in (fastnn.model_generator: taken from
    ``fastnn.set_seed``'s, so each model's masks are reproducible even while
    other models train in other threads), or fastnn's when the layer is called
    on its own.

    ``noise_shape`` (Keras'): the mask's shape including the batch axis, each
    entry 1 (the mask is shared along that axis), the input's size, or None
    (the input's size); e.g. ``(None, 1, features)`` drops the same features
    at every time step.
    """

    supports_masking = True     # element-wise: a time-step mask passes through
    positionwise = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(rate, self.name)
        self.noise_shape = None if noise_shape is None else _noise_shape(noise_shape, self.name)
        self.seed = check_seed(seed, self.name)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def build(self, input_shape):
        if self.noise_shape is not None:
            if len(self.noise_shape) != len(input_shape) + 1:
                raise ValueError(f"{self.name}: noise_shape {self.noise_shape} must have one "
                                 f"entry per input axis, batch included: inputs are "
                                 f"{(None,) + tuple(input_shape)}")
            for want, have in zip(self.noise_shape[1:], input_shape):
                if want not in (None, 1, have):
                    raise ValueError(f"{self.name}: noise_shape {self.noise_shape} does not "
                                     f"broadcast to inputs {(None,) + tuple(input_shape)}")
        super().build(input_shape)

    def check_input_shape(self, input_shape):
        if self.noise_shape is not None:        # element-wise: any shape, unless a noise
            super().check_input_shape(input_shape)  # shape ties it to the built rank

    def _step_seed(self):
        return step_seed(self._rng)

    def _mask_shape(self, x_shape):
        shape = tuple(have if want is None else want
                      for want, have in zip(self.noise_shape, x_shape))
        if any(s not in (1, have) for s, have in zip(shape, x_shape)):
            raise ValueError(f"{self.name}: noise_shape {self.noise_shape} does not broadcast "
                             f"to inputs {x_shape}")
        return shape

    def forward(self, ops, x, training=False, ws=None):
        if not training or self.rate == 0.0:
            if ws is not None:
                ws.saved = None          # backward passes gradients through
            return x
        seed = self._step_seed()
        out = None if ws is None else ws.buffer("y", x.shape, x.dtype)
        mask = (np.empty(x.shape, np.uint8) if ws is None
                else ws.buffer("mask", x.shape, np.uint8))
        if self.noise_shape is None:
            y = ops.dropout_forward(x, seed, self.rate, out, mask)
        else:
            shape = self._mask_shape(x.shape)
            small = ops.dropout_mask(seed, self.rate, np.empty(shape, np.uint8))
            # Broadcasting is a copy, not math: both backends share it.
            np.copyto(mask, np.broadcast_to(small, x.shape))
            y = ops.dropout_backward(x, mask, self.rate, out)
        if ws is not None:
            ws.saved = mask
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        mask = ws.saved
        if mask is None:
            return dy
        return ops.dropout_backward(dy, mask, self.rate, ws.buffer("dx", dy.shape, dy.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                "seed": self.seed}


def check_rate(rate, where):
    """A dropout rate: a number in [0, 1)."""
    if (isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating))
            or not math.isfinite(rate) or not 0.0 <= rate < 1.0):
        raise ValueError(f"{where}: rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def check_seed(seed, where):
    """A layer's seed: a non-negative integer, or None (fastnn's generator)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"{where}: seed must be a non-negative integer or None, got {seed!r}")
    return None if seed is None else int(seed)


def step_seed(rng):
    """A fresh 64-bit seed for one step's dropout mask, from ``rng`` (a layer's own
    generator) or, when None, fastnn's (the running model's own, see
    fastnn.model_generator)."""
    gen = rng if rng is not None else _runtime.rng()
    return int(gen.integers(0, 2**64, dtype=np.uint64))


def _noise_shape(noise_shape, where):
    """Keras' noise_shape as a tuple of positive ints or None."""
    try:
        shape = tuple(noise_shape)
    except TypeError:
        raise ValueError(f"{where}: noise_shape must be a tuple of positive integers or None "
                         f"entries, got {noise_shape!r}") from None
    for d in shape:
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1):
            raise ValueError(f"{where}: noise_shape must be a tuple of positive integers or "
                             f"None entries, got {noise_shape!r}")
    if not shape:
        raise ValueError(f"{where}: noise_shape must not be empty")
    return tuple(None if d is None else int(d) for d in shape)
