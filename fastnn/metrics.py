"""Metrics: mae, mse and accuracy (binary / categorical / sparse resolved as Keras does).

Each metric is a running mean over the samples of an epoch: the backend's
``metric_sum`` gives the per-batch sum, the fit loop divides by the count.
"""


class Metric:
    """A named running-mean metric computed by the Ops kernel ``kernel``."""

    kernel = None
    default_name = None

    def __init__(self, name=None):
        self.name = name or self.default_name

    def get_config(self):
        return {"name": self.name}


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


_BY_NAME = {
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
}
_ACCURACY_NAMES = ("accuracy", "acc")


def get(identifier, *, sparse_targets, output_dim):
    """Resolve a metric name or instance for a model's outputs and targets.

    "accuracy" / "acc" become binary accuracy for one output unit, sparse
    categorical accuracy for integer class targets, else categorical accuracy
    (Keras' rule); the metric keeps the name the user wrote.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier in _ACCURACY_NAMES:
            if output_dim == 1:
                cls = BinaryAccuracy
            elif sparse_targets:
                cls = SparseCategoricalAccuracy
            else:
                cls = CategoricalAccuracy
            return cls(name=identifier)
        if identifier in _BY_NAME:
            return _BY_NAME[identifier](name=identifier)
    raise ValueError(f"unknown metric {identifier!r}; expected one of "
                     f"{sorted(_BY_NAME) + list(_ACCURACY_NAMES)} or a fastnn.metrics.Metric")
