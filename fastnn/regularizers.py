"""Weight regularizers (Keras'): L1, L2 and L1L2 penalties on a layer's weights.

A layer takes them as ``kernel_regularizer=`` / ``bias_regularizer=``. The
penalty ``l1 * sum(|w|) + l2 * sum(w**2)`` of every trainable regularized
weight is added to the loss that ``fit`` and ``evaluate`` report (Keras adds
the losses of ``model.trainable_weights`` only: a frozen layer's penalty
neither counts nor pushes). Its gradient ``l1 * sign(w) + 2 * l2 * w`` is
added to the model's flat gradient buffer by one fused kernel per weight
range (``ops.regularize_``), before clipping and the optimizer step.

Calling a regularizer on an array gives its penalty, as in Keras::

    regularizers.L2(0.1)(np.ones((2, 2)))   # 0.4
"""
import math

import numpy as np

from fastnn import registry as _registry


class Regularizer:
    """Base class: a penalty ``l1 * sum(|w|) + l2 * sum(w**2)`` on one weight.

    Subclasses set ``l1`` and ``l2``; the model reads them to run the fused
    kernel, so a regularizer here is always of this L1/L2 form.
    """

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x):
        """The penalty of the array ``x`` (a Python float, accumulated in float64)."""
        x64 = np.asarray(x, dtype=np.float64).reshape(-1)
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.abs(x64).sum())
        if self.l2:
            penalty += self.l2 * float(np.dot(x64, x64))
        return penalty

    @property
    def is_zero(self):
        """True when the penalty is identically 0 (the model then skips the weight)."""
        return self.l1 == 0.0 and self.l2 == 0.0

    def get_config(self):
        """The constructor arguments, JSON-serialisable."""
        return {}

    @classmethod
    def from_config(cls, config):
        """The regularizer ``get_config`` described."""
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _factor(value, name, default):
    """A penalty factor as a float: finite and >= 0 (None means the default, as Keras)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"regularizer: {name} must be a non-negative float, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"regularizer: {name} must be a non-negative float, got {name}={value}")
    return value


class L1L2(Regularizer):
    """Both penalties: ``l1 * sum(|w|) + l2 * sum(w**2)``.

    The defaults are 0 (Keras: ``L1L2(l2=0.1)`` has no L1 part); the string
    ``"l1_l2"`` gives ``L1L2(l1=0.01, l2=0.01)``.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1", 0.0)
        self.l2 = _factor(l2, "l2", 0.0)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """The L1 penalty ``l1 * sum(|w|)`` (default 0.01)."""

    def __init__(self, l1=0.01):
        self.l1 = _factor(l1, "l1", 0.01)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """The L2 penalty ``l2 * sum(w**2)`` (default 0.01)."""

    def __init__(self, l2=0.01):
        self.l2 = _factor(l2, "l2", 0.01)

    def get_config(self):
        return {"l2": self.l2}


# Keras' lower-case aliases are the classes themselves.
l1 = L1
l2 = L2
l1_l2 = L1L2

for _cls in (L1, L2, L1L2):
    _registry.register("regularizer", _cls.__name__, _cls)


def _keras_l1_l2():
    """The string "l1_l2": both factors 0.01 (Keras), unlike L1L2()'s zeros."""
    return L1L2(l1=0.01, l2=0.01)


for _identifier, _make in (("l1", L1), ("L1", L1), ("l2", L2), ("L2", L2),
                           ("l1_l2", _keras_l1_l2), ("l1l2", _keras_l1_l2),
                           ("L1L2", _keras_l1_l2)):
    _registry.register_identifier("regularizer", _identifier, _make)


def serialize(regularizer):
    """A JSON-able description: ``{"class_name": ..., "config": {...}}``, or None."""
    if regularizer is None:
        return None
    return _registry.serialize(regularizer)


def deserialize(config, custom_objects=None):
    """The regularizer a ``serialize`` description names (fastnn's own classes, those
    registered with register_keras_serializable and those in ``custom_objects``)."""
    return _registry.deserialize("regularizer", config, custom_objects, base=Regularizer)


def get(identifier):
    """A Regularizer from None, a name ("l1", "l2", "l1_l2", a registered
    "package>name"), a ``serialize`` dict or a Regularizer instance (returned as
    is) or class."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        made = _registry.lookup("regularizer", identifier)()
        if isinstance(made, Regularizer):
            return made
    elif isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    raise ValueError(f"could not interpret regularizer {identifier!r}; expected None, one of "
                     f"{sorted(_registry.identifiers('regularizer'))}, a serialize() dict or a "
                     "fastnn.regularizers.Regularizer")
