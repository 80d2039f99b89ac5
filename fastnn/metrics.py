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
        self.total = self.add_weight(name="total")
        self.count = self.add_weight(name="count")

    def values(self, y_true, y_pred):
        """The per-sample values of one batch (an array)."""
        return np.asarray(self.fn(y_true, y_pred, **self.fn_kwargs), dtype=np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch: its values weighed by ``sample_weight`` (weighted_sums)."""
        total, count = weighted_sums(self.values(y_true, y_pred), sample_weight)
        self.total.assign_add(total)
        self.count.assign_add(count)

    def result(self):
        count = float(self.count)
        return self.dtype.type(float(self.total) / count if count else 0.0)

    def get_config(self):
        return {"name": self.name, "fn": _registry.get_registered_name(self.fn),
                **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        """The wrapper of the function ``config["fn"]`` names (registered, or in the
        custom_objects in scope: a function is saved by name, never as code)."""
        return _registry.function_wrapper_from_config(cls, config)


def weighted_sums(values, sample_weight=None):
    """(sum of weighted values, sum of weights) of one batch of per-sample (or per
    sample and step) ``values``, as Keras' Mean: with no weights, every value counts
    once; weights of the values' shape weigh each; weights with fewer axes (one per
    sample) weigh the mean of what they cover."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is None:
        return float(values.sum()), float(values.size)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.size == values.size:
        weights = weights.reshape(values.shape)
    if values.ndim > weights.ndim:
        values = values.mean(axis=tuple(range(weights.ndim, values.ndim)))
    weights = np.broadcast_to(weights, values.shape)
    return float((values * weights).sum()), float(weights.sum())


def kernel_values(kernel, y_pred, y_true):
    """The per-row values of a fused metric kernel (what ``ops.metric_sum`` sums), in
    NumPy: weighted metrics need each row's value. y_pred (rows, D); y_true (rows, D)
    or, for sparse accuracy, class indices (rows,)."""
    if kernel == "mae":
        return np.abs(y_pred - y_true).astype(np.float64).mean(axis=-1)
    if kernel == "mse":
        return ((y_pred - y_true).astype(np.float64) ** 2).mean(axis=-1)
    if kernel == "binary_accuracy":
        return ((y_pred > 0.5) == (y_true > 0.5)).mean(axis=-1)
    if kernel == "categorical_accuracy":
        return (y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)).astype(np.float64)
    if kernel == "sparse_categorical_accuracy":
        return (y_pred.argmax(axis=-1) == np.asarray(y_true).reshape(-1)).astype(np.float64)
    raise ValueError(f"unknown metric kernel {kernel!r}")


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


class RootMeanSquaredError(Metric):
    """sqrt of the mean squared error over every sample seen (per-sample means,
    weighted by sample_weight, as Keras')."""

    default_name = "root_mean_squared_error"

    def __init__(self, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_weight(name="total")
        self.count = self.add_weight(name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, dtype=np.float64)
        y_true = np.asarray(y_true, dtype=np.float64)
        if y_true.shape != y_pred.shape and y_true.size == y_pred.size:
            y_true = y_true.reshape(y_pred.shape)
        squares = np.square(y_pred - y_true).reshape(len(y_pred), -1)
        if sample_weight is None:
            weights = np.ones(len(y_pred))
            per_sample = squares.mean(axis=1)
        else:
            weights = np.asarray(sample_weight, dtype=np.float64).reshape(len(y_pred), -1)
            if weights.shape[1] == 1:
                per_sample = squares.mean(axis=1) * weights[:, 0]
            else:                                  # one weight per step: weigh each step
                per_sample = (squares.reshape(weights.shape + (-1,)).mean(axis=2)
                              * weights).mean(axis=1)
            weights = weights.mean(axis=1)
        self.total.assign_add(per_sample.sum())
        self.count.assign_add(weights.sum())

    def result(self):
        count = float(self.count)
        return self.dtype.type(np.sqrt(float(self.total) / count) if count else 0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name}


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the class of one-hot ``y_true`` is among the ``k`` highest of ``y_pred``
    (ties at the k-th value count as in, as Keras' in_top_k), else 0; per sample."""
    y_pred = np.asarray(y_pred)
    return sparse_top_k_categorical_accuracy(np.asarray(y_true).argmax(axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1 where the integer class ``y_true`` is among the ``k`` highest of ``y_pred``
    (with ``from_sorted_ids``: among the first k class ids y_pred lists), else 0."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1:] == (1,):
        y_true = y_true[..., 0]
    shape = y_true.shape
    labels = y_true.reshape(-1).astype(np.int64)
    if from_sorted_ids:
        ids = y_pred.reshape(len(labels), -1)[:, :k]
        return (ids == labels[:, None]).any(axis=1).astype(np.float64).reshape(shape)
    scores = y_pred.reshape(len(labels), -1)
    if np.any((labels < 0) | (labels >= scores.shape[1])):
        raise ValueError(f"top-k accuracy: class ids must lie in [0, {scores.shape[1]})")
    target = np.take_along_axis(scores, labels[:, None], axis=1)
    # in the top k <=> fewer than k scores are strictly higher than the target's
    in_top = (scores > target).sum(axis=1) < k
    return in_top.astype(np.float64).reshape(shape)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is among the ``k`` highest predictions."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=_positive(k))
        self.k = self.fn_kwargs["k"]

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "k": self.k}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer target is among the ``k`` highest predictions (or, with
    ``from_sorted_ids``, among the first k class ids the predictions list)."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype,
                         k=_positive(k), from_sorted_ids=bool(from_sorted_ids))
        self.k, self.from_sorted_ids = self.fn_kwargs["k"], self.fn_kwargs["from_sorted_ids"]

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "k": self.k,
                "from_sorted_ids": self.from_sorted_ids}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _positive(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


# Keras' confusion-matrix and per-class score metrics (their modules import Metric).
from fastnn.confusion_metrics import AUC, Precision, Recall  # noqa: E402
from fastnn.score_metrics import F1Score, FBetaScore, MeanIoU  # noqa: E402

for _cls in (MeanAbsoluteError, MeanSquaredError, BinaryAccuracy, CategoricalAccuracy,
             SparseCategoricalAccuracy, MeanMetricWrapper, RootMeanSquaredError,
             TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, Precision, Recall, AUC,
             FBetaScore, F1Score, MeanIoU):
    _registry.register("metric", _cls.__name__, _cls)
for _identifier, _cls in (("mae", MeanAbsoluteError), ("mean_absolute_error", MeanAbsoluteError),
                          ("mse", MeanSquaredError), ("mean_squared_error", MeanSquaredError),
                          ("binary_accuracy", BinaryAccuracy),
                          ("categorical_accuracy", CategoricalAccuracy),
                          ("sparse_categorical_accuracy", SparseCategoricalAccuracy),
                          ("root_mean_squared_error", RootMeanSquaredError),
                          ("top_k_categorical_accuracy", TopKCategoricalAccuracy),
                          ("sparse_top_k_categorical_accuracy", SparseTopKCategoricalAccuracy),
                          ("precision", Precision), ("recall", Recall), ("auc", AUC),
                          ("fbeta_score", FBetaScore), ("f1_score", F1Score),
                          ("mean_io_u", MeanIoU)):
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
