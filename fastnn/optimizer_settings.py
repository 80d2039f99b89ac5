"""The valid range of every optimizer setting, checked in one place.

The optimizer constructors, the learning-rate schedules and the model loader
all call ``check_setting``, so a setting a constructor refuses can never come
in through a saved file either. Each bound keeps training finite: an epsilon
of 0 divides by zero on the first zero gradient, a learning rate of 2**31 or a
momentum of 1 makes the weights overflow, and a step count of 10**300 makes
Adam's bias corrections NaN -- each would end ``fit`` with NaN or inf weights
and no error.

The bounds:

- ``learning_rate`` (a number), a schedule's rates (``initial_learning_rate``,
  ``values``, ``warmup_target``) and the rate a schedule gives at each step:
  finite, >= 0 and <= ``MAX_LEARNING_RATE``. Zero is allowed, as in Keras: it
  is harmless (the weights stay as they are), ``SGD(0.0)`` is the usual way to
  compute gradients without training, a warmup may start at 0 and a cosine
  decay ends there;
- ``epsilon``: finite and > 0;
- ``momentum``, ``beta_1``, ``beta_2``, ``rho``: in [0, 1);
- Lion's ``beta_1`` (rule ``lion_beta_1``): in (0, 1], as Keras checks it:
  0 makes Lion SignSGD, and 1 is finite (the step's size is always lr);
- ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (when given): finite and > 0;
- ``weight_decay`` (when given), ``initial_accumulator_value``: finite and >= 0;
- ``iterations`` (the step count): an integer in [0, ``MAX_ITERATIONS``).
"""
import math
import numbers

MAX_LEARNING_RATE = 1e3
MAX_ITERATIONS = 2 ** 62


def _rate(v):
    return 0 <= v <= MAX_LEARNING_RATE


def _fraction(v):
    return 0 <= v < 1


def _positive(v):
    return v > 0


def _non_negative(v):
    return v >= 0


def _interpolation(v):
    return 0 < v <= 1


_RATE = (_rate, f"a finite number >= 0 and <= {MAX_LEARNING_RATE:g}")
_FRACTION = (_fraction, "a number in [0, 1)")
_POSITIVE = (_positive, "a finite number > 0")
_NON_NEGATIVE = (_non_negative, "a finite number >= 0")
_INTERPOLATION = (_interpolation, "a number in (0, 1]")

# setting -> (test of its value as a float, what the error message says it must be)
_RULES = {
    "learning_rate": _RATE, "initial_learning_rate": _RATE, "values": _RATE,
    "warmup_target": _RATE, "scheduled learning rate": _RATE,
    "epsilon": _POSITIVE,
    "momentum": _FRACTION, "beta_1": _FRACTION, "beta_2": _FRACTION, "rho": _FRACTION,
    "clipnorm": _POSITIVE, "clipvalue": _POSITIVE, "global_clipnorm": _POSITIVE,
    "weight_decay": _NON_NEGATIVE, "initial_accumulator_value": _NON_NEGATIVE,
    "lion_beta_1": _INTERPOLATION,
}


def check_setting(owner, setting, value, rule=None):
    """``value`` as a float when it is a valid ``setting`` (an int for
    ``iterations``); else a ValueError that names ``owner`` (the optimizer or
    schedule class), the setting, the value given and the range accepted.
    ``rule`` names the range to check when it is not the setting's own (Lion's
    ``beta_1``)."""
    if setting == "iterations":
        return _check_iterations(owner, value)
    test, accepted = _RULES[rule or setting]
    number = _as_float(value)
    if number is None or not math.isfinite(number) or not test(number):
        raise ValueError(f"{owner}: {setting} must be {accepted}, got {_short(value)}")
    return number


def _as_float(value):
    """``float(value)``, or None for what is not a number (text, booleans, None)."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _check_iterations(owner, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or not 0 <= value < MAX_ITERATIONS):
        raise ValueError(f"{owner}: iterations must be an integer in [0, 2**62), "
                         f"got {_short(value)}")
    return int(value)


def _short(value, limit=80):
    # The value may come from a file: a message quotes its start, never megabytes
    # (and a huge integer by its size: its digits may be too many to print).
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
