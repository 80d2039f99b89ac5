"""Learning-rate schedules (Keras' ``keras.optimizers.schedules``).

A schedule is a callable of the optimizer's step count (``iterations``, the
number of updates applied so far) that returns the learning rate for the next
update. Pass one as any optimizer's ``learning_rate=``; the optimizer calls it
once per step, in Python, and hands the number to the fused C update.

Reached as ``fastnn.optimizers.schedules``. The formulas are Keras':

- ``ExponentialDecay``: ``lr0 * decay_rate ** (step / decay_steps)``, the
  exponent floored when ``staircase``.
- ``PiecewiseConstantDecay``: ``values[0]`` while ``step <= boundaries[0]``,
  ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``, then
  ``values[-1]``.
- ``CosineDecay``: an optional linear warmup from ``initial_learning_rate`` to
  ``warmup_target`` over ``warmup_steps``, then a cosine from the peak down to
  ``alpha * peak`` over ``decay_steps``, flat after that.

A schedule's rates (``initial_learning_rate``, ``values``, ``warmup_target``)
must be finite, >= 0 and <= ``fastnn.optimizer_settings.MAX_LEARNING_RATE``
(the optimizers' own bound); the optimizer checks the same of the rate the
schedule gives at each step (an ``ExponentialDecay`` with ``decay_rate > 1``
grows past it eventually, and is then a ValueError, not inf weights).
"""
import itertools
import math
import numbers

from fastnn import registry as _registry
from fastnn.optimizer_settings import check_setting


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config):
        """Rebuild a schedule from ``get_config()``'s dict."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``, so
    the rate drops in steps every ``decay_steps`` updates.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _rate(self, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive(self, "decay_steps", decay_steps)
        self.decay_rate = _positive(self, "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate per interval of steps.

    ``boundaries`` (increasing) split the steps into ``len(boundaries) + 1``
    intervals, each with its value: ``values[0]`` for ``step <= boundaries[0]``,
    ``values[i]`` for ``boundaries[i-1] < step <= boundaries[i]``, and
    ``values[-1]`` after the last boundary.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "PiecewiseConstantDecay: the length of boundaries should be 1 less than the "
                f"length of values; got boundaries={boundaries} of length {len(boundaries)} "
                f"and values={values} of length {len(values)}")
        for b in boundaries:
            _finite(self, "boundaries", b)
        if any(hi <= lo for lo, hi in itertools.pairwise(boundaries)):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must be strictly increasing, "
                             f"got {boundaries}")
        self.boundaries = boundaries
        self.values = [_rate(self, "values", v) for v in values]
        self.name = name

    def __call__(self, step):
        step = _step(step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Loshchilov & Hutter, SGDR).

    Without ``warmup_target``: ``lr0 * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``.
    With ``warmup_target``: for ``step < warmup_steps`` the rate goes linearly
    from ``initial_learning_rate`` to ``warmup_target``; afterwards the cosine
    above runs from ``warmup_target`` over the next ``decay_steps`` steps.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _rate(self, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive(self, "decay_steps", decay_steps)
        alpha = _finite(self, "alpha", alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"CosineDecay: alpha (the final rate as a fraction of the "
                             f"initial one) must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.warmup_target = (None if warmup_target is None
                              else _rate(self, "warmup_target", warmup_target))
        self.warmup_steps = _non_negative(self, "warmup_steps", warmup_steps)
        self.name = name

    def _decayed(self, step, peak):
        fraction = step / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        step = _step(step)
        if self.warmup_target is None:
            return self._decayed(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return self.initial_learning_rate + rise * step / self.warmup_steps
        return self._decayed(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


for _cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay):
    _registry.register("schedule", _cls.__name__, _cls)


def serialize(schedule):
    """A schedule as plain data: ``{"class_name": ..., "config": {...}}``."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"serialize: expected a LearningRateSchedule, got "
                        f"{type(schedule).__name__}")
    return _registry.serialize(schedule)


def deserialize(config, custom_objects=None):
    """The schedule ``serialize`` described: fastnn's own schedule classes, those
    registered with register_keras_serializable and those in ``custom_objects`` (a
    saved file never names code to run)."""
    return _registry.deserialize("schedule", config, custom_objects, base=LearningRateSchedule)


# ---- argument checks (one job each; the message names the schedule) ----------
def _finite(schedule, label, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{type(schedule).__name__}: {label} must be a finite number, "
                         f"got {value!r}")
    return float(value) if not isinstance(value, numbers.Integral) else int(value)


def _rate(schedule, label, value):
    """One of the schedule's rates: in the optimizers' range for a learning rate."""
    return check_setting(type(schedule).__name__, label, _finite(schedule, label, value))


def _positive(schedule, label, value):
    value = _finite(schedule, label, value)
    if value <= 0:
        raise ValueError(f"{type(schedule).__name__}: argument `{label}` must be > 0, "
                         f"got {label}={value!r}")
    return value


def _non_negative(schedule, label, value):
    value = _finite(schedule, label, value)
    if value < 0:
        raise ValueError(f"{type(schedule).__name__}: {label} must be >= 0, got {value!r}")
    return value


def _step(step):
    # the optimizer passes an int; accept numpy scalars too
    return float(step)
