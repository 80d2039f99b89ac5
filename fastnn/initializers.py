"""Weight initializers (Keras' names, formulas and defaults), drawn from fastnn's generator
(the generator of the model building the layer, fastnn.model_generator; else the process's)."""
import numpy as np

from fastnn import _runtime
from fastnn import registry as _registry


def _fans(shape):
    """fan_in, fan_out as Keras computes them (kernels: receptive field x channels)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype)`` returns a new array."""

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        """The initializer ``get_config`` described."""
        return cls(**config)


class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=dtype)


class _VarianceScaling(Initializer):
    """Keras' VarianceScaling: uniform, or a normal truncated at 2 standard deviations."""

    scale, mode, distribution = 1.0, "fan_avg", "uniform"

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = _runtime.rng()
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, size=shape).astype(dtype)
        # 0.8796... is the stddev of a unit normal truncated to [-2, 2]
        stddev = np.sqrt(variance) / 0.87962566103423978
        return _truncated_normal(rng, shape, stddev).astype(dtype)


def scales_by_fans(initializer):
    """Whether ``initializer`` draws with a scale from the weight's fan-in / fan-out
    (Glorot, He, LeCun: Keras' VarianceScaling family)."""
    return isinstance(initializer, _VarianceScaling)


def with_fans(initializer, fan_in, fan_out):
    """``initializer`` for a kernel of any shape that acts as a (fan_in, fan_out)
    matrix (an einsum kernel, attention's (C, heads, dim)): a fan-scaled one draws
    that matrix and takes the kernel's shape -- Keras' input_axes / output_axes.
    Other initializers are returned as they are."""
    if not scales_by_fans(initializer):
        return initializer
    return _Fanned(initializer, (int(fan_in), int(fan_out)))


class _Fanned(Initializer):
    def __init__(self, inner, fans):
        self.inner, self.fans = inner, fans

    def __call__(self, shape, dtype="float32"):
        return np.asarray(self.inner(self.fans, dtype=dtype)).reshape(shape)


def _truncated_normal(rng, shape, stddev):
    values = rng.standard_normal(size=shape)
    bad = np.abs(values) > 2.0
    while bad.any():
        values[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(values) > 2.0
    return values * stddev


class GlorotUniform(_VarianceScaling):
    scale, mode, distribution = 1.0, "fan_avg", "uniform"


class GlorotNormal(_VarianceScaling):
    scale, mode, distribution = 1.0, "fan_avg", "truncated_normal"


class HeNormal(_VarianceScaling):
    scale, mode, distribution = 2.0, "fan_in", "truncated_normal"


class HeUniform(_VarianceScaling):
    scale, mode, distribution = 2.0, "fan_in", "uniform"


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix over the last axis, times ``gain`` (Keras)."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of rank >= 2, got {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = _runtime.rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))   # makes the distribution uniform over orthogonal matrices
        if rows < cols:
            q = q.T
        return (self.gain * q[:rows, :cols]).reshape(shape).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


class RandomUniform(Initializer):
    """Uniform in [minval, maxval) (Keras' defaults -0.05, 0.05; Embedding's "uniform")."""

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype="float32"):
        return _runtime.rng().uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    """Normal with ``mean`` and ``stddev`` (Keras' defaults 0, 0.05)."""

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return _runtime.rng().normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """Normal with ``mean`` and ``stddev``, redrawn beyond two standard deviations
    (Keras' defaults 0, 0.05; transformers' usual 0.02)."""

    def __call__(self, shape, dtype="float32"):
        values = _truncated_normal(_runtime.rng(), shape, self.stddev)
        return (values + self.mean).astype(dtype)


for _cls in (Zeros, Ones, GlorotUniform, GlorotNormal, HeNormal, HeUniform, Orthogonal,
             RandomUniform, RandomNormal, TruncatedNormal):
    _registry.register("initializer", _cls.__name__, _cls)
# In this order: an initializer with default options is saved as its first name here.
for _identifier, _cls in (("zeros", Zeros), ("ones", Ones), ("glorot_uniform", GlorotUniform),
                          ("glorot_normal", GlorotNormal), ("he_normal", HeNormal),
                          ("he_uniform", HeUniform), ("orthogonal", Orthogonal),
                          ("uniform", RandomUniform), ("random_uniform", RandomUniform),
                          ("normal", RandomNormal), ("random_normal", RandomNormal),
                          ("truncated_normal", TruncatedNormal)):
    _registry.register_identifier("initializer", _identifier, _cls)


def get(identifier):
    """An Initializer from a name ("glorot_uniform", a class name, a registered
    "package>name"), an Initializer instance or class, or a ``serialize`` dict."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        identifier = _registry.lookup("initializer", identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    raise ValueError(f"unknown initializer {identifier!r}; expected one of "
                     f"{sorted(_registry.identifiers('initializer'))}, an Initializer or a "
                     "serialize() dict")


def serialize(initializer):
    """A JSON-able description ``get`` turns back into the same initializer: its
    name when it is fastnn's own with no options set, else {"class_name", "config"}
    (a class of your own must be registered with register_keras_serializable)."""
    cls = type(initializer)
    if not _registry.is_nameable("initializer", cls):
        raise ValueError(f"initializer {initializer!r} is neither one of fastnn's "
                         f"({sorted(_registry.classes('initializer'))}) nor registered with "
                         "register_keras_serializable, so it cannot be saved")
    config = initializer.get_config()
    name = _registry.identifier_of("initializer", cls)
    if name is not None and config == cls().get_config():
        return name
    return _registry.serialize(initializer)


def deserialize(config, custom_objects=None):
    """The initializer a ``serialize`` dict describes (fastnn's own classes, those
    registered with register_keras_serializable and those in ``custom_objects``)."""
    return _registry.deserialize("initializer", config, custom_objects, base=Initializer)
