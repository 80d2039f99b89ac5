"""Utilities with Keras' names: to_categorical, set_random_seed."""
import numpy as np

from fastnn._runtime import set_seed


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels: shape (..., ) -> (..., num_classes)."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"to_categorical: labels must be integers, got dtype {y.dtype}")
    if y.ndim >= 1 and y.shape[-1] == 1 and y.ndim > 1:
        y = y.reshape(y.shape[:-1])
    labels = y.astype(np.int64)
    if y.dtype.kind == "f" and not np.array_equal(labels, y):
        raise ValueError("to_categorical: labels must be whole numbers")
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(f"to_categorical: label {labels.max()} >= num_classes={num_classes}")
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out


def set_random_seed(seed):
    """Seed fastnn's generator (initializers, shuffling, dropout); an alias of fastnn.set_seed."""
    set_seed(seed)
