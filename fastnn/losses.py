"""Losses: Keras' names, classes and reductions, computed by the backend's fused kernels.

Each loss reduces as Keras' default "sum_over_batch_size": the mean over the
batch of each sample's loss. Loss objects are callable on arrays
(``loss(y_true, y_pred)``); models use their ``kernel`` name and options.
"""
import numpy as np

from fastnn.backend.numpy_ops import NumpyOps


class Loss:
    """Base class. ``kernel`` names the Ops loss; ``from_logits`` and ``delta`` its options."""

    kernel = None
    default_name = None

    def __init__(self, name=None, from_logits=False, delta=1.0):
        self.name = name or self.default_name
        self.from_logits = bool(from_logits)
        self.delta = float(delta)

    def __call__(self, y_true, y_pred):
        """The mean loss over the batch, as a float."""
        y_pred = np.asarray(y_pred)
        if y_pred.dtype not in (np.float32, np.float64):
            y_pred = y_pred.astype(np.float32)
        y_pred2 = y_pred.reshape(-1, y_pred.shape[-1]) if y_pred.ndim > 1 else y_pred.reshape(-1, 1)
        if self.kernel == "sparse_categorical_crossentropy":
            y_true2 = np.asarray(y_true).reshape(-1).astype(np.int64)
        else:
            y_true2 = np.asarray(y_true, dtype=y_pred.dtype).reshape(y_pred2.shape)
        return NumpyOps().loss(self.kernel, y_pred2, y_true2, from_logits=self.from_logits,
                               delta=self.delta)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    kernel, default_name = "mse", "mean_squared_error"

    def __init__(self, name=None):
        super().__init__(name)

    def get_config(self):
        return {"name": self.name}


class MeanAbsoluteError(Loss):
    kernel, default_name = "mae", "mean_absolute_error"

    def __init__(self, name=None):
        super().__init__(name)

    def get_config(self):
        return {"name": self.name}


class Huber(Loss):
    kernel, default_name = "huber", "huber_loss"

    def __init__(self, delta=1.0, name=None):
        if delta <= 0:
            raise ValueError(f"Huber: delta must be > 0, got {delta}")
        super().__init__(name, delta=delta)

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class BinaryCrossentropy(Loss):
    kernel, default_name = "binary_crossentropy", "binary_crossentropy"

    def __init__(self, from_logits=False, name=None):
        super().__init__(name, from_logits)


class CategoricalCrossentropy(Loss):
    kernel, default_name = "categorical_crossentropy", "categorical_crossentropy"

    def __init__(self, from_logits=False, name=None):
        super().__init__(name, from_logits)


class SparseCategoricalCrossentropy(Loss):
    kernel, default_name = "sparse_categorical_crossentropy", "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, name=None):
        super().__init__(name, from_logits)


_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_CLASS_BY_NAME = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier):
    """A Loss from a Keras name ("mse", "categorical_crossentropy", ...) or a Loss instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)} or a "
                     "fastnn.losses.Loss instance")


def serialize(loss):
    """A JSON-able description of a loss."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(spec):
    """The loss a ``serialize`` description names (only fastnn's own classes)."""
    cls = _CLASS_BY_NAME.get(spec.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown loss class {spec.get('class_name')!r}")
    return cls(**spec.get("config", {}))


mean_squared_error = mse = MeanSquaredError()
mean_absolute_error = mae = MeanAbsoluteError()
