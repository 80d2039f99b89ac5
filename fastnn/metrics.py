"""Metrics: Keras' names and classes, and metrics of your own.

fastnn's own metrics (mae, mse, accuracy -- binary / categorical / sparse,
resolved from the loss and the outputs as Keras does) are running means of
the backend's ``metric_sum`` kernel. A metric of your own is either a
function ``fn(y_true, y_pred)`` returning per-sample values (reported under
its ``__name__``, averaged over the samples) or a ``Metric`` subclass with
``update_state`` / ``result`` / ``reset_state`` whose state lives in
``add_weight`` variables (``assign``, ``assign_add``...). Metrics need no
gradient: they run on each batch's arrays.
"""
import numpy as np

from fastnn import _runtime
from fastnn import initializers as _initializers
from fastnn import registry as _registry
from fastnn.variables import Weight


class Metric:
    """Base class. fastnn's own metrics set ``kernel``; yours implement
    ``update_state(y_true, y_pred, sample_weight=None)`` and ``result()``."""

    kernel = None
    default_name = None

    def __init__(self, name=None, dtype=None):
        from fastnn.naming import snake_case
        self.name = name or self.default_name or snake_case(type(self).__name__)
        self.dtype = np.dtype(dtype or _runtime.floatx())
        self._variables = []

    @property
    def is_stateful(self):
        """Whether the metric keeps state of its own (update_state / result)."""
        return self.kernel is None and not isinstance(self, MeanMetricWrapper)

    # ---- Keras' stateful API -----------------------------------------------------------
    def add_weight(self, shape=(), initializer="zeros", dtype=None, name=None, **unused):
        """A state variable (not trained), reset to its initial value by reset_state."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        init = _initializers.get(initializer)
        value = np.asarray(init(tuple(shape), dtype=dtype), order="C")
        variable = Weight(name or f"variable_{len(self._variables)}", value, False)
        self._variables.append((variable, value.copy()))
        return variable

    add_variable = add_weight

    @property
    def variables(self):
        return [v for v, _ in self._variables]

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError(f"{type(self).__name__} defines no update_state()")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} defines no result()")

    def reset_state(self):
        """Every state variable back to its initial value."""
        for variable, initial in self._variables:
            np.copyto(variable.value, initial)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Update with one batch and return the result so far (Keras')."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MeanMetricWrapper(Metric):
    """A metric function ``fn(y_true, y_pred, **kwargs)`` of per-sample values, reported
    as their mean over every sample seen (Keras' wrapper)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name or getattr(fn, "__name__", "metric"), dtype)
        self.fn = fn
        self.fn_kwargs = kwargs

    def values(self, y_true, y_pred):
        """The per-sample values of one batch (an array)."""
        return np.asarray(self.fn(y_true, y_pred, **self.fn_kwargs), dtype=np.float64)

    def get_config(self):
        return {"name": self.name, "fn": _registry.get_registered_name(self.fn),
                **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        """The wrapper of the function ``config["fn"]`` names (registered, or in the
        custom_objects in scope: a function is saved by name, never as code)."""
        return _registry.function_wrapper_from_config(cls, config)


class MeanAbsoluteError(Metric):
    kernel, default_name = "mae", "mean_absolute_error"


class MeanSquaredError(Metric):
    kernel, default_name = "mse", "mean_squared_error"


class BinaryAccuracy(Metric):
    kernel, default_name = "binary_accuracy", "binary_accuracy"


class CategoricalAccuracy(Metric):
    kernel, default_name = "categorical_accuracy", "categorical_accuracy"


class SparseCategoricalAccuracy(Metric):
    kernel, default_name = "sparse_categorical_accuracy", "sparse_categorical_accuracy"


for _cls in (MeanAbsoluteError, MeanSquaredError, BinaryAccuracy, CategoricalAccuracy,
             SparseCategoricalAccuracy, MeanMetricWrapper):
    _registry.register("metric", _cls.__name__, _cls)
for _identifier, _cls in (("mae", MeanAbsoluteError), ("mean_absolute_error", MeanAbsoluteError),
                          ("mse", MeanSquaredError), ("mean_squared_error", MeanSquaredError),
                          ("binary_accuracy", BinaryAccuracy),
                          ("categorical_accuracy", CategoricalAccuracy),
                          ("sparse_categorical_accuracy", SparseCategoricalAccuracy)):
    _registry.register_identifier("metric", _identifier, _cls)
_ACCURACY_NAMES = ("accuracy", "acc")


def get(identifier, *, sparse_targets=None, output_dim=None):
    """Resolve a metric name, instance, class, ``serialize`` dict or function.

    "accuracy" / "acc" become binary accuracy for one output unit, sparse
    categorical accuracy for integer class targets, else categorical accuracy
    (Keras' rule, so they need ``sparse_targets`` and ``output_dim``: compile
    passes them); the metric keeps the name the user wrote. A function becomes
    a MeanMetricWrapper named after it.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier in _ACCURACY_NAMES:
            if output_dim is None or sparse_targets is None:
                raise ValueError(f"metric {identifier!r} is resolved from the model's outputs "
                                 "and targets (get(..., sparse_targets=, output_dim=), as "
                                 "compile does); or name one: binary_accuracy, "
                                 "categorical_accuracy, sparse_categorical_accuracy")
            if output_dim == 1:
                cls = BinaryAccuracy
            elif sparse_targets:
                cls = SparseCategoricalAccuracy
            else:
                cls = CategoricalAccuracy
            return cls(name=identifier)
        found = _registry.lookup("metric", identifier)
        if identifier in _registry.identifiers("metric"):
            return found(name=identifier)          # "mae": reported as written
        identifier = found
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"unknown metric {identifier!r}; expected one of "
                     f"{sorted(_registry.identifiers('metric')) + list(_ACCURACY_NAMES)}, a "
                     "fastnn.metrics.Metric, or a function metric(y_true, y_pred)")


def serialize(metric):
    """Keras' description of a metric, ``{"class_name": ..., "config": {...}}`` (a
    function's wrapper names the function, never stores code)."""
    return _registry.serialize(metric)


def deserialize(config, custom_objects=None):
    """The metric a ``serialize`` description names: fastnn's own classes, those
    registered with register_keras_serializable and those in ``custom_objects``."""
    return _registry.deserialize("metric", config, custom_objects, base=Metric)
