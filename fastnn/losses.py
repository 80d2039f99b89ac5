"""Losses: Keras' names, classes and reductions.

fastnn's own losses (mse, mae, huber, the cross-entropies) run on the
backend's fused loss kernels (with softmax / sigmoid fused into
cross-entropy when the last layer has them). A loss of your own -- a
function ``loss(y_true, y_pred)`` or a ``Loss`` subclass with ``call`` --
is written with fastnn.ops and traced into the model's graph, so it trains
at compiled speed too. Either way the per-sample values are reduced as
Keras' ``reduction`` says (default "sum_over_batch_size": the sum of the
(sample-weighted) values over their number).

Loss objects are callable on arrays: ``loss(y_true, y_pred, sample_weight=None)``.
"""
import numpy as np

from fastnn import loss_functions as _functions
from fastnn import registry as _registry

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none")


class Loss:
    """Base class. A loss of your own implements ``call(y_true, y_pred)`` with
    fastnn.ops, returning one value per sample (or per sample and step); fastnn's
    own set ``kernel``, the name of their fused backend loss."""

    kernel = None
    default_name = None
    from_logits = False
    delta = 1.0

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction is None:
            reduction = "none"
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, "
                             f"got {reduction!r}")
        self.name = name or self.default_name or _snake(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    @property
    def is_traced(self):
        """Whether the loss is computed by ``call`` (traced into the graph)."""
        return self.kernel is None

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} defines no call(y_true, y_pred)")

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss of arrays (y_true, y_pred) as a float (an array with
        reduction "none")."""
        from fastnn.backend import current_ops
        ops = current_ops()
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(np.float32)
        if not self.is_traced:
            return self._kernel_value(ops, y_true, y_pred, sample_weight)
        values = np.asarray(self.call(np.asarray(y_true, dtype=y_pred.dtype), y_pred))
        if self.reduction == "none":
            return values
        values = np.ascontiguousarray(values, dtype=y_pred.dtype)
        return reduce_values(ops, values, sample_weight, self.reduction)[0]

    def _kernel_value(self, ops, y_true, y_pred, sample_weight):
        pred = y_pred.reshape(-1, y_pred.shape[-1]) if y_pred.ndim > 1 else y_pred.reshape(-1, 1)
        if self.kernel == "sparse_categorical_crossentropy":
            target = np.asarray(y_true).reshape(-1).astype(np.int64)
        else:
            target = np.ascontiguousarray(np.asarray(y_true, dtype=y_pred.dtype)
                                          .reshape(pred.shape))
        weights = None
        if sample_weight is not None:
            weights = np.ascontiguousarray(np.broadcast_to(
                np.asarray(sample_weight, dtype=y_pred.dtype).reshape(-1, 1)
                if np.ndim(sample_weight) else sample_weight,
                (pred.shape[0], 1)).reshape(-1))
        return ops.loss(self.kernel, np.ascontiguousarray(pred), target,
                        from_logits=self.from_logits, delta=self.delta, sample_weight=weights)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def reduce_values(ops, values, sample_weight, reduction, grad_out=None):
    """Keras' reduction of per-sample loss ``values`` weighted by ``sample_weight`` (one
    weight per sample, broadcast over any further axes; None: all 1): the float
    total, and d(total)/d(values) in ``grad_out`` when it is given (values' shape)."""
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=values.dtype)
        if values.ndim:
            weights = weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim))
        else:
            weights = np.asarray(np.mean(weights), dtype=values.dtype)
    weighted = values if weights is None else ops.binary("multiply", values, weights)
    if reduction == "sum":
        divisor = 1.0
    elif reduction == "mean_with_sample_weight" and weights is not None:
        divisor = float(np.broadcast_to(weights, values.shape).sum(dtype=np.float64))
    else:                                     # sum_over_batch_size, mean
        divisor = float(max(values.size, 1))
    summed = ops.reduce("sum", weighted) if weighted.ndim else weighted
    total = float(summed) / divisor if divisor else 0.0
    if grad_out is not None:
        grad_out.fill(1.0 / divisor if divisor else 0.0)
        if weights is not None:
            ops.binary("multiply", grad_out, weights, out=grad_out)
    return total, grad_out


class LossFunctionWrapper(Loss):
    """A loss function ``fn(y_true, y_pred, **kwargs)`` as a Loss (Keras' wrapper): its
    name is the function's; it is traced into the graph like any ``call``."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", dtype=None, **kwargs):
        super().__init__(name or getattr(fn, "__name__", "loss"), reduction, dtype)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction,
                "fn": _registry.get_registered_name(self.fn), **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        """The wrapper of the function ``config["fn"]`` names (registered, or in the
        custom_objects in scope: a function is saved by name, never as code)."""
        return _registry.function_wrapper_from_config(cls, config)


def _snake(name):
    from fastnn.naming import snake_case
    return snake_case(name)


# ---- fastnn's own losses: fused kernels -----------------------------------------------
class _KernelLoss(Loss):
    """A loss the backend computes in one fused kernel (``kernel``)."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None,
                 from_logits=False, delta=1.0):
        if reduction != "sum_over_batch_size":
            raise ValueError(f"{type(self).__name__}: fastnn's built-in losses reduce as "
                             f"'sum_over_batch_size', got reduction={reduction!r}")
        super().__init__(name, reduction, dtype)
        self.from_logits = bool(from_logits)
        self.delta = float(delta)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(_KernelLoss):
    kernel, default_name = "mse", "mean_squared_error"

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction, dtype)

    def get_config(self):
        return {"name": self.name}


class MeanAbsoluteError(_KernelLoss):
    kernel, default_name = "mae", "mean_absolute_error"

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction, dtype)

    def get_config(self):
        return {"name": self.name}


class Huber(_KernelLoss):
    kernel, default_name = "huber", "huber_loss"

    def __init__(self, delta=1.0, name=None, reduction="sum_over_batch_size", dtype=None):
        if delta <= 0:
            raise ValueError(f"Huber: delta must be > 0, got {delta}")
        super().__init__(name, reduction, dtype, delta=delta)

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class BinaryCrossentropy(_KernelLoss):
    kernel, default_name = "binary_crossentropy", "binary_crossentropy"

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name, reduction, dtype, from_logits)


class CategoricalCrossentropy(_KernelLoss):
    kernel, default_name = "categorical_crossentropy", "categorical_crossentropy"

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name, reduction, dtype, from_logits)


class SparseCategoricalCrossentropy(_KernelLoss):
    kernel, default_name = "sparse_categorical_crossentropy", "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name, reduction, dtype, from_logits)


# ---- Keras' other losses: fastnn.ops formulas, traced ---------------------------------
class _FormulaLoss(Loss):
    """A Keras loss whose per-sample values are one of fastnn.loss_functions'
    formulas, traced into the model's graph like a loss of your own (so its
    gradient is the ops' backward). ``settings`` names the keyword arguments the
    formula takes from the instance (and its config keeps)."""

    formula = None
    settings = ()

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name, reduction, dtype)      # Keras' argument order

    def call(self, y_true, y_pred):
        return type(self).formula(y_true, y_pred,
                                  **{key: getattr(self, key) for key in self.settings})

    def get_config(self):
        config = super().get_config()
        for key in self.settings:
            value = getattr(self, key)
            config[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return config


class Hinge(_FormulaLoss):
    """``maximum(1 - y_true * y_pred, 0)`` averaged over the last axis; labels that
    are all 0 or 1 are read as -1 or 1 (Keras')."""

    formula, default_name = staticmethod(_functions.hinge), "hinge"


class SquaredHinge(_FormulaLoss):
    """``square(maximum(1 - y_true * y_pred, 0))`` averaged over the last axis; labels
    that are all 0 or 1 are read as -1 or 1 (Keras')."""

    formula, default_name = staticmethod(_functions.squared_hinge), "squared_hinge"


class CategoricalHinge(_FormulaLoss):
    """``maximum(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`` (one-hot
    y_true)."""

    formula, default_name = staticmethod(_functions.categorical_hinge), "categorical_hinge"


class KLDivergence(_FormulaLoss):
    """Kullback-Leibler divergence ``sum(y_true * log(y_true / y_pred))``, both
    clipped to [1e-7, 1]."""

    formula, default_name = staticmethod(_functions.kl_divergence), "kl_divergence"


class Poisson(_FormulaLoss):
    """``mean(y_pred - y_true * log(y_pred + 1e-7))`` over the last axis."""

    formula, default_name = staticmethod(_functions.poisson), "poisson"


class LogCosh(_FormulaLoss):
    """``mean(log(cosh(y_pred - y_true)))`` over the last axis (stable)."""

    formula, default_name = staticmethod(_functions.log_cosh), "log_cosh"


class CosineSimilarity(_FormulaLoss):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)``: minimizing it
    aligns the predictions with the targets (-1 at best)."""

    formula, default_name = staticmethod(_functions.cosine_similarity), "cosine_similarity"
    settings = ("axis",)

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.axis = _axis(type(self).__name__, axis)


class BinaryFocalCrossentropy(_FormulaLoss):
    """Binary crossentropy scaled by the focal factor ``(1 - p_t)**gamma`` (and, with
    ``apply_class_balancing``, by ``alpha`` / ``1 - alpha`` for class 1 / 0), averaged
    over ``axis``; Keras 3's arguments and defaults."""

    formula = staticmethod(_functions.binary_focal_crossentropy)
    default_name = "binary_focal_crossentropy"
    settings = ("apply_class_balancing", "alpha", "gamma", "from_logits", "label_smoothing",
                "axis")

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None,
                 dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = _unit_float(type(self).__name__, "alpha", alpha)
        self.gamma = _non_negative(type(self).__name__, "gamma", gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _unit_float(type(self).__name__, "label_smoothing",
                                           label_smoothing)
        self.axis = _axis(type(self).__name__, axis)


class CategoricalFocalCrossentropy(_FormulaLoss):
    """Categorical crossentropy scaled by ``alpha * (1 - p)**gamma`` per class (alpha a
    number or one weight per class), summed over ``axis``; Keras 3's arguments and
    defaults."""

    formula = staticmethod(_functions.categorical_focal_crossentropy)
    default_name = "categorical_focal_crossentropy"
    settings = ("alpha", "gamma", "from_logits", "label_smoothing", "axis")

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        where = type(self).__name__
        if np.isscalar(alpha):
            self.alpha = _non_negative(where, "alpha", alpha)
        else:
            self.alpha = [_non_negative(where, "alpha", a) for a in np.ravel(alpha)]
        self.gamma = _non_negative(where, "gamma", gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _unit_float(where, "label_smoothing", label_smoothing)
        self.axis = _axis(where, axis)


def _unit_float(where, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: {key} must be a number in [0, 1], got {value!r}")
    return float(value)


def _non_negative(where, key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not value >= 0.0:
        raise ValueError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def _axis(where, axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{where}: axis must be an integer, got {axis!r}")
    return int(axis)


_FORMULA_LOSSES = (Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson, LogCosh,
                   CosineSimilarity, BinaryFocalCrossentropy, CategoricalFocalCrossentropy)
# The loss functions (keras.losses.hinge, ...) given to compile or get: their class,
# so that the model saves them by class name like any built-in loss.
_CLASS_OF_FUNCTION = {cls.formula: cls for cls in _FORMULA_LOSSES}


for _cls in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy,
             CategoricalCrossentropy, SparseCategoricalCrossentropy, LossFunctionWrapper,
             *_FORMULA_LOSSES):
    _registry.register("loss", _cls.__name__, _cls)
for _identifier, _cls in (("mse", MeanSquaredError), ("mean_squared_error", MeanSquaredError),
                          ("mae", MeanAbsoluteError), ("mean_absolute_error", MeanAbsoluteError),
                          ("huber", Huber), ("huber_loss", Huber),
                          ("binary_crossentropy", BinaryCrossentropy),
                          ("categorical_crossentropy", CategoricalCrossentropy),
                          ("sparse_categorical_crossentropy", SparseCategoricalCrossentropy),
                          ("hinge", Hinge), ("squared_hinge", SquaredHinge),
                          ("categorical_hinge", CategoricalHinge),
                          ("kl_divergence", KLDivergence), ("kld", KLDivergence),
                          ("KLD", KLDivergence), ("kullback_leibler_divergence", KLDivergence),
                          ("poisson", Poisson), ("log_cosh", LogCosh), ("logcosh", LogCosh),
                          ("cosine_similarity", CosineSimilarity),
                          ("binary_focal_crossentropy", BinaryFocalCrossentropy),
                          ("categorical_focal_crossentropy", CategoricalFocalCrossentropy)):
    _registry.register_identifier("loss", _identifier, _cls)


def get(identifier):
    """A Loss from a Keras name ("mse", "categorical_crossentropy", a class name, a
    registered "package>name"), a Loss instance or class, a ``serialize`` dict, or a
    function ``fn(y_true, y_pred)`` (wrapped, traced)."""
    if isinstance(identifier, str):
        identifier = _registry.lookup("loss", identifier)
    elif isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and identifier in _CLASS_OF_FUNCTION:
        return _CLASS_OF_FUNCTION[identifier]()
    if callable(identifier) and not isinstance(identifier, type):
        return LossFunctionWrapper(identifier)
    raise ValueError(f"unknown loss {identifier!r}; expected one of "
                     f"{sorted(_registry.identifiers('loss'))}, a fastnn.losses.Loss, or a "
                     "function loss(y_true, y_pred)")


def serialize(loss):
    """Keras' description of a loss, ``{"class_name": ..., "config": {...}}`` (a
    function is named, never stored as code)."""
    return _registry.serialize(loss)


def deserialize(config, custom_objects=None):
    """The loss a ``serialize`` description names: fastnn's own classes, those
    registered with register_keras_serializable and those in ``custom_objects``."""
    return _registry.deserialize("loss", config, custom_objects, base=Loss)


mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()

# Keras' loss functions: per-sample values of (y_true, y_pred), on arrays or traced.
hinge = _functions.hinge
squared_hinge = _functions.squared_hinge
categorical_hinge = _functions.categorical_hinge
kl_divergence = kld = KLD = kullback_leibler_divergence = _functions.kl_divergence
poisson = _functions.poisson
log_cosh = logcosh = _functions.log_cosh
cosine_similarity = _functions.cosine_similarity
binary_focal_crossentropy = _functions.binary_focal_crossentropy
categorical_focal_crossentropy = _functions.categorical_focal_crossentropy
