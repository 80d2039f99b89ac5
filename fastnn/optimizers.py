"""Optimizers (Keras 3 formulas and defaults) over a model's flat parameter buffer.

An optimizer owns its state arrays (moments, accumulators), each the size of
the flat buffer, and updates every trainable range with one fused kernel call
per range. Per-step scalars (the scheduled learning rate, Adam's bias
corrections) are computed here in Python and passed to the kernels.

Order of one step, as in Keras: clip gradients (clipnorm per weight,
global_clipnorm over all, clipvalue), apply decoupled weight decay
(p -= lr * weight_decay * p), then the optimizer's update.

Every setting is checked when it is set (fastnn.optimizer_settings: the
ranges that keep training finite), in the constructors as when a saved model
is loaded: a bad value is a ValueError naming the setting.
"""
import math
import sys

import numpy as np

from fastnn import registry as _registry
from fastnn import schedules
from fastnn.optimizer_settings import check_setting

# Keras' path: `from fastnn.optimizers.schedules import ExponentialDecay` works too.
sys.modules[__name__ + ".schedules"] = schedules


class Optimizer:
    """Base class: learning rate (float or schedule), weight decay and clipping."""

    default_name = "optimizer"

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm may be set")
        self.learning_rate = learning_rate
        self.weight_decay = self._optional("weight_decay", weight_decay)
        self.clipnorm = self._optional("clipnorm", clipnorm)
        self.clipvalue = self._optional("clipvalue", clipvalue)
        self.global_clipnorm = self._optional("global_clipnorm", global_clipnorm)
        self.name = name or self.default_name
        self.iterations = 0
        self._slots = {}      # state name -> array the size of the flat buffer (or a
                              # scalar's (1,) array: Nadam's u_product)

    def _checked(self, setting, value):
        """``value`` as a float, if it is in ``setting``'s valid range (else ValueError)."""
        return check_setting(type(self).__name__, setting, value)

    def _check_moments(self, beta_1, beta_2, epsilon):
        """The Adam family's settings (Adam, Nadam, Adamax), checked and kept."""
        self.beta_1 = self._checked("beta_1", beta_1)
        self.beta_2 = self._checked("beta_2", beta_2)
        self.epsilon = self._checked("epsilon", epsilon)

    def _optional(self, setting, value):
        return None if value is None else self._checked(setting, value)

    # ---- step count ----------------------------------------------------------
    @property
    def iterations(self):
        """The number of updates applied so far (an int in [0, 2**62); settable)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations = check_setting(type(self).__name__, "iterations", value)

    # ---- learning rate -------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate or schedule (settable: a float or a callable of the step)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            value = self._checked("learning_rate", value)
        self._learning_rate = value

    def current_learning_rate(self):
        """The learning rate for the next step (a schedule evaluated at ``iterations``;
        a schedule's value must be finite, >= 0 and <= MAX_LEARNING_RATE)."""
        lr = self._learning_rate
        if not callable(lr):
            return lr
        return check_setting(f"{type(self).__name__} at step {self.iterations}",
                             "scheduled learning rate", lr(self.iterations))

    # ---- state ---------------------------------------------------------------
    def build(self, size, dtype):
        """Allocate state for a flat buffer of ``size`` elements (keeps matching state)."""
        for slot, fill in self._slot_specs():
            old = self._slots.get(slot)
            if old is None or old.shape != (size,) or old.dtype != dtype:
                self._slots[slot] = np.full(size, fill, dtype=dtype)

    def _slot_specs(self):
        """(name, initial value) of each state array."""
        return ()

    def variables(self):
        """The state as a dict of arrays (views; copy before keeping)."""
        return dict(self._slots)

    # ---- one step ------------------------------------------------------------
    def apply(self, ops, params, grads, ranges, weight_ranges):
        """Update ``params`` from ``grads`` over the trainable ``ranges`` (start, stop).

        ``weight_ranges`` lists each trainable weight's range (for clipnorm).
        """
        lr = self.current_learning_rate()
        self._clip(ops, grads, ranges, weight_ranges)
        self._begin_step()
        decay = lr * self.weight_decay if self.weight_decay else 0.0
        for start, stop in ranges:
            self._update(ops, params[start:stop], grads[start:stop], start, stop, lr, decay)
        self._iterations += 1     # an int in range already: the setter's check is for users

    def _clip(self, ops, grads, ranges, weight_ranges):
        if self.clipvalue is not None:
            for start, stop in ranges:
                ops.clip_(grads[start:stop], -self.clipvalue, self.clipvalue)
        elif self.clipnorm is not None:
            for start, stop in weight_ranges:
                norm = math.sqrt(ops.sum_squares(grads[start:stop]))
                if norm > self.clipnorm:
                    ops.scale_(grads[start:stop], self.clipnorm / norm)
        elif self.global_clipnorm is not None:
            norm = math.sqrt(sum(ops.sum_squares(grads[s:e]) for s, e in ranges))
            if norm > self.global_clipnorm:
                for start, stop in ranges:
                    ops.scale_(grads[start:stop], self.global_clipnorm / norm)

    def _begin_step(self):
        """Advance state kept per step, not per element, before the ranges update
        (Nadam's momentum-schedule product); nothing by default."""

    def _update(self, ops, p, g, start, stop, lr, decay):
        raise NotImplementedError

    def _slot(self, name, start, stop):
        return self._slots[name][start:stop]

    # ---- config --------------------------------------------------------------
    def get_config(self):
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": lr if not callable(lr) else None,
            "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config):
        """The optimizer ``get_config`` (or ``serialize``'s config) described; a
        learning rate given as a ``serialize`` dict becomes its schedule."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    default_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = self._checked("momentum", momentum)
        self.nesterov = bool(nesterov)

    def _slot_specs(self):
        return (("momentum", 0.0),) if self.momentum > 0 else ()

    def _update(self, ops, p, g, start, stop, lr, decay):
        velocity = self._slot("momentum", start, stop) if self.momentum > 0 else None
        ops.sgd_update(p, g, velocity, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
                       decay=decay)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba) as Keras writes it: epsilon added to sqrt(v), not to its
    bias-corrected value; the bias corrections fold into the step size."""

    default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self._check_moments(beta_1, beta_2, epsilon)
        self.amsgrad = bool(amsgrad)

    def _slot_specs(self):
        specs = (("m", 0.0), ("v", 0.0))
        return specs + (("vhat", 0.0),) if self.amsgrad else specs

    def _update(self, ops, p, g, start, stop, lr, decay):
        t = self.iterations + 1
        lr_t = lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        vhat = self._slot("vhat", start, stop) if self.amsgrad else None
        ops.adam_update(p, g, self._slot("m", start, stop), self._slot("v", start, stop),
                        lr_t=lr_t, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon,
                        decay=decay, vhat=vhat)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004, as Keras)."""

    default_name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop (Keras: epsilon inside the square root; optional momentum and centering)."""

    default_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = self._checked("rho", rho)
        self.momentum = self._checked("momentum", momentum)
        self.epsilon = self._checked("epsilon", epsilon)
        self.centered = bool(centered)

    def _slot_specs(self):
        specs = [("velocity", 0.0)]
        if self.momentum > 0:
            specs.append(("momentum", 0.0))
        if self.centered:
            specs.append(("average_gradient", 0.0))
        return tuple(specs)

    def _update(self, ops, p, g, start, stop, lr, decay):
        mom = self._slot("momentum", start, stop) if self.momentum > 0 else None
        mg = self._slot("average_gradient", start, stop) if self.centered else None
        ops.rmsprop_update(p, g, self._slot("velocity", start, stop), lr=lr, rho=self.rho,
                           eps=self.epsilon, momentum=self.momentum, mom=mom, mg=mg, decay=decay)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad with Keras' initial accumulator value 0.1."""

    default_name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = self._checked("initial_accumulator_value",
                                                       initial_accumulator_value)
        self.epsilon = self._checked("epsilon", epsilon)

    def _slot_specs(self):
        return (("accumulator", self.initial_accumulator_value),)

    def _update(self, ops, p, g, start, stop, lr, decay):
        ops.adagrad_update(p, g, self._slot("accumulator", start, stop), lr=lr,
                           eps=self.epsilon, decay=decay)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat 2015) as Keras 3 writes it.

    The momentum schedule is u_t = beta_1 (1 - 0.5 * 0.96^t) (Keras 3 uses
    0.96^t; PyTorch's NAdam uses 0.96^(0.004 t) unless momentum_decay=1). The
    running product u_1 ... u_t is state, "u_product" (a (1,) float64 array,
    saved with the moments), advanced once per step as in Keras.
    """

    default_name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self._check_moments(beta_1, beta_2, epsilon)

    def _slot_specs(self):
        return (("momentum", 0.0), ("velocity", 0.0))

    def build(self, size, dtype):
        super().build(size, dtype)
        # a scalar, kept in float64 whatever the model's dtype: like Adam's bias
        # corrections, the per-step scalars are formed in double precision
        if self._slots.get("u_product") is None:
            self._slots["u_product"] = np.ones(1, dtype=np.float64)

    def _schedule(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** step)

    def _begin_step(self):
        self._slots["u_product"][0] *= self._schedule(self.iterations + 1)

    def _update(self, ops, p, g, start, stop, lr, decay):
        t = self.iterations + 1
        u_t, u_next = self._schedule(t), self._schedule(t + 1)
        u_product = float(self._slots["u_product"][0])
        ops.nadam_update(p, g, self._slot("momentum", start, stop),
                         self._slot("velocity", start, stop), lr=lr, beta1=self.beta_1,
                         beta2=self.beta_2, coef_m=u_next / (1.0 - u_product * u_next),
                         coef_g=(1.0 - u_t) / (1.0 - u_product),
                         v_correction=1.0 - self.beta_2 ** t, eps=self.epsilon, decay=decay)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adamax (Kingma & Ba, section 7.1): Adam with the infinity norm,
    u = max(beta_2 u, |g|); epsilon is added to u, as in Keras."""

    default_name = "adamax"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self._check_moments(beta_1, beta_2, epsilon)

    def _slot_specs(self):
        return (("momentum", 0.0), ("norm", 0.0))

    def _update(self, ops, p, g, start, stop, lr, decay):
        t = self.iterations + 1
        ops.adamax_update(p, g, self._slot("momentum", start, stop),
                          self._slot("norm", start, stop), lr=lr, beta1=self.beta_1,
                          beta2=self.beta_2, m_correction=1.0 - self.beta_1 ** t,
                          eps=self.epsilon, decay=decay)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):
    each weight moves by exactly lr along sign(beta_1 m + (1 - beta_1) g); the
    momentum then takes beta_2. beta_1 must be in (0, 1] (0 is SignSGD, which
    Keras refuses)."""

    default_name = "lion"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = check_setting(type(self).__name__, "beta_1", beta_1, rule="lion_beta_1")
        self.beta_2 = self._checked("beta_2", beta_2)

    def _slot_specs(self):
        return (("momentum", 0.0),)

    def _update(self, ops, p, g, start, stop, lr, decay):
        ops.lion_update(p, g, self._slot("momentum", start, stop), lr=lr, beta1=self.beta_1,
                        beta2=self.beta_2, decay=decay)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


for _cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Lion):
    _registry.register("optimizer", _cls.__name__, _cls)
    _registry.register_identifier("optimizer", _cls.__name__.lower(), _cls)


def get(identifier):
    """An optimizer from a name ("adam", "sgd", ...: Keras defaults; any case), a
    ``serialize`` dict or an Optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        lower = identifier.lower()
        found = _registry.lookup("optimizer", lower if lower in _registry.identifiers(
            "optimizer") else identifier)
        if isinstance(found, type) and issubclass(found, Optimizer):
            return found()
    raise ValueError(f"unknown optimizer {identifier!r}; expected one of "
                     f"{sorted(_registry.identifiers('optimizer'))}, a serialize() dict or a "
                     "fastnn.optimizers.Optimizer instance")


def serialize(optimizer):
    """Keras' description of an optimizer, ``{"class_name": ..., "config": {...}}``;
    a learning-rate schedule is described the same way inside the config. A
    learning rate that is a plain Python callable cannot be described."""
    spec = _registry.serialize(optimizer)
    lr = optimizer.learning_rate
    if callable(lr):
        if not hasattr(lr, "get_config"):
            raise ValueError(f"cannot save optimizer {optimizer.name!r}: its learning rate is a "
                             f"Python callable ({lr!r}); only schedule objects (fastnn."
                             "optimizers.schedules, or classes with get_config) can be saved")
        spec["config"]["learning_rate"] = _registry.serialize(lr)
    return spec


def deserialize(config, custom_objects=None):
    """The optimizer a ``serialize`` description names (fastnn's own classes, those
    registered with register_keras_serializable and those in ``custom_objects``)."""
    return _registry.deserialize("optimizer", config, custom_objects, base=Optimizer)
