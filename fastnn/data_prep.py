"""Turning fit / evaluate / predict arguments into arrays the kernels take.

x becomes a C-contiguous array of the model's dtype (integers for an Embedding
model), y a (rows, D) target matrix (or class indices), sample and class
weights one weight per target row -- each checked once per call, with errors
naming the argument, the layer and the shapes.
"""
import math

import numpy as np

from fastnn.backend import current_ops


def prepare_x(model, x, where):
    """x as the model's first layer takes it; builds the model from x's shape if needed."""
    if x is None:
        raise ValueError(f"{where}: x is required")
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: x must be numeric, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{where}: x must be a non-empty batch of shape (samples, ...), "
                         f"got {x.shape}")
    if not model._layers:
        raise ValueError(f"{model.name}: the model has no layers")
    if not model.built:
        model.build(x.shape[1:])
    if x.shape[1:] != model._input_shape:
        raise ValueError(f"{where}: layer {model._layers[0].name!r} expects inputs of shape "
                         f"{(None,) + model._input_shape}, got {x.shape}")
    if getattr(model._layers[0], "integer_input", False):
        # Embedding indices stay integers (design decision 3); it checks them.
        return model._layers[0].prepare_indices(x, where)
    x = np.ascontiguousarray(x, dtype=model.dtype)
    if not current_ops().all_finite(x):
        raise ValueError(f"{where}: x contains NaN or inf")
    return x


def prepare_y(model, y, n, where):
    """Targets for n samples as (rows, D) of the model's dtype, or int64 class indices
    (rows,) for sparse categorical cross-entropy."""
    if y is None:
        raise ValueError(f"{where}: y is required")
    y = np.asarray(y)
    out_shape = model._layers[-1].output_shape
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{where}: y must be numeric, got dtype {y.dtype}")
    if y.shape[:1] != (n,):
        raise ValueError(f"{where}: x has {n} samples but y has "
                         f"{y.shape[0] if y.ndim else 'no'} ({y.shape})")
    if model._sparse_targets():
        if y.shape == (n,) + out_shape[:-1] + (1,):
            y = y.reshape((n,) + out_shape[:-1])
        if y.shape != (n,) + out_shape[:-1]:
            raise ValueError(f"{where}: sparse class labels must have shape "
                             f"{(n,) + out_shape[:-1]} for outputs {(None,) + out_shape}, got {y.shape}")
        labels = y.astype(np.int64)
        if y.dtype.kind == "f" and not np.array_equal(labels, y):
            raise ValueError(f"{where}: sparse class labels must be whole numbers")
        if labels.min() < 0 or labels.max() >= out_shape[-1]:
            raise ValueError(f"{where}: class labels must lie in [0, {out_shape[-1]}), got "
                             f"[{labels.min()}, {labels.max()}]")
        return np.ascontiguousarray(labels.reshape(-1))
    if y.shape == (n,) and out_shape == (1,):
        y = y.reshape(n, 1)
    if y.shape != (n,) + out_shape:
        raise ValueError(f"{where}: y has shape {y.shape} but the model's output "
                         f"(layer {model._layers[-1].name!r}) is {(None,) + out_shape}")
    y = np.ascontiguousarray(y, dtype=model.dtype).reshape(-1, out_shape[-1])
    if not current_ops().all_finite(y):
        raise ValueError(f"{where}: y contains NaN or inf")
    return y


def prepare_sample_weight(model, sample_weight, class_weight, y, n, where):
    """One loss weight per target row of the prepared ``y`` (model dtype), or None.

    sample_weight: (n,) (or (n, 1); or one weight per time step for sequence
    outputs). class_weight: {class index: weight}, the class read from the
    integer labels, the argmax of one-hot targets or the rounded single
    output; classes it does not name weigh 1 (Keras 3). Both at once is an
    error, as in Keras 3.
    """
    if sample_weight is None and class_weight is None:
        return None
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{where}: pass sample_weight or class_weight, not both "
                         "(multiply the class weights into sample_weight yourself)")
    if sample_weight is not None:
        return check_sample_weight(model, sample_weight, y, n, where)
    return class_weight_per_row(model, class_weight, y, where)

def check_sample_weight(model, sample_weight, y, n, where):
    w = np.asarray(sample_weight)
    y_rows = y.shape[0] // n
    per_step = (n,) + model._layers[-1].output_shape[:-1]
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{where}: sample_weight must be numeric, got dtype {w.dtype}")
    if w.shape == (n, 1):
        w = w.reshape(n)
    if w.shape == (n,):
        w = np.repeat(w, y_rows) if y_rows > 1 else w
    elif y_rows > 1 and w.shape == per_step:
        w = w.reshape(-1)
    else:
        steps = f" or {per_step} (one per time step)" if y_rows > 1 else ""
        raise ValueError(f"{where}: sample_weight must have shape {(n,)}{steps}, one "
                         f"weight per sample of x {(n,) + model._input_shape}; got {w.shape}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise ValueError(f"{where}: sample_weight {w.shape} contains NaN or inf")
    if (w < 0).any():
        raise ValueError(f"{where}: sample_weight must be >= 0, got a minimum of {w.min()}")
    return np.ascontiguousarray(w, dtype=model.dtype)

def class_weight_per_row(model, class_weight, y, where):
    if not isinstance(class_weight, dict):
        raise TypeError(f"{where}: class_weight must be a dict {{class index: weight}}, "
                        f"got {type(class_weight).__name__}")
    out_dim = model._layers[-1].output_shape[-1]
    n_classes = 2 if out_dim == 1 else out_dim
    table = np.ones(n_classes, dtype=np.float64)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) \
                or not 0 <= key < n_classes:
            raise ValueError(
                f"{where}: class_weight has key {key!r}, but the model's output (layer "
                f"{model._layers[-1].name!r}, shape {(None,) + model._layers[-1].output_shape})"
                f" has classes 0..{n_classes - 1}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: class_weight[{key}] must be a finite number >= 0, "
                             f"got {value!r}")
        table[int(key)] = value
    if model._sparse_targets():
        classes = y
    elif out_dim == 1:
        classes = np.rint(y[:, 0]).astype(np.int64)
    else:
        classes = np.argmax(y, axis=1)
    inside = (classes >= 0) & (classes < n_classes)
    w = np.ones(classes.shape[0], dtype=np.float64)
    w[inside] = table[classes[inside]]
    return np.ascontiguousarray(w, dtype=model.dtype)
