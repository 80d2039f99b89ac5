"""Turning fit / evaluate / predict arguments into arrays the kernels take.

``x`` becomes one C-contiguous array per model input: the model's float dtype,
or int64 indices for an input that only feeds Embedding layers (design
decision 3: indices never make a float round trip). ``y`` becomes one target
array per output that has a loss or metrics: a (rows, D) matrix of the
model's dtype, or int64 class indices for sparse categorical cross-entropy;
sample and class weights become one weight per target row. Each is checked
once per call, with errors naming the argument, the input or output, the
layer and the shapes.
"""
import math

import numpy as np

from fastnn.backend import current_ops
from fastnn.layers.base import shapes_compatible


# ---- inputs ---------------------------------------------------------------------------
def prepare_inputs(model, x, where):
    """x as one array per model input (in input order); builds a Sequential model
    from the data's shape when it has none yet."""
    if x is None:
        raise ValueError(f"{where}: x is required")
    if not model.built:
        if not model.is_call_based and not getattr(model, "layers", None):
            raise ValueError(f"{model.name}: the model has no layers")
        _check_arrays([np.asarray(v) for v in _leaves(x)], where)
        model.build_for_data(x)
    values = model.match_inputs(x, where)
    arrays = [np.asarray(v) for v in values]
    _check_arrays(arrays, where)
    plan = model.plan()
    if not plan.steps:
        raise ValueError(f"{model.name}: the model has no layers")
    n = arrays[0].shape[0]
    prepared = []
    for array, tensor, slot, name in zip(arrays, model.inputs, plan.input_slots,
                                         model.input_names):
        consumers = plan.consumers(slot)
        if array.ndim != len(tensor.shape) or not shapes_compatible(tensor.shape[1:],
                                                                    array.shape[1:]):
            into = f" of layer {consumers[0].name!r}" if consumers else ""
            raise ValueError(f"{where}: input {name!r}{into} expects inputs of shape "
                             f"{(None,) + tensor.shape[1:]}, got {array.shape}")
        if array.shape[0] != n:
            raise ValueError(f"{where}: every input must have the same number of samples; "
                             f"input {name!r} has {array.shape[0]}, the first has {n}")
        prepared.append(_prepare_input(model, array, tensor, consumers, where))
    return prepared


def _leaves(x):
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, np.ndarray) for v in x):
        return list(x)
    return [x]


def _check_arrays(arrays, where):
    for a in arrays:
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{where}: x must be numeric, got dtype {a.dtype}")
        if a.ndim < 2 or a.shape[0] == 0:
            raise ValueError(f"{where}: x must be a non-empty batch of shape (samples, ...), "
                             f"got {a.shape}")


def _prepare_input(model, x, tensor, consumers, where):
    index_users = [layer for layer in consumers if getattr(layer, "integer_input", False)]
    if consumers and len(index_users) == len(consumers):
        # Embedding indices stay integers; each Embedding checks its own range.
        for layer in index_users:
            x = layer.prepare_indices(x, where)
        return x
    x = np.ascontiguousarray(x, dtype=model.dtype)
    if not current_ops().all_finite(x):
        raise ValueError(f"{where}: x contains NaN or inf")
    return x


# ---- targets --------------------------------------------------------------------------
def target_objectives(objectives):
    """The outputs that need targets: those with a loss or metrics."""
    return [o for o in objectives if o.loss is not None or o.metric_ids]


def prepare_targets(model, objectives, y, n, where):
    """(one prepared target array per objective of ``target_objectives`` -- None for
    an output with metrics only and no target given --, each target's shape per
    sample as given)."""
    wanted = target_objectives(objectives)
    if y is None:
        raise ValueError(f"{where}: y is required")
    values = _match_outputs(model, wanted, y, "y", where)
    targets, shapes = [], []
    for objective, value in zip(wanted, values):
        if value is None:
            if objective.loss is not None:
                raise ValueError(f"{where}: y has no target for output {objective.name!r}, "
                                 "which has a loss")
            targets.append(None)
            shapes.append(None)
            continue
        if objective.loss is not None and objective.loss.is_traced:
            target = _prepare_raw_target(model, objective, value, n, where)
            targets.append(target)
            shapes.append(target.shape[1:])
            continue
        target, shape = _prepare_output_target(model, objective, value, n, where)
        targets.append(target)
        shapes.append(shape)
    return targets, shapes


def _prepare_raw_target(model, objective, y, n, where):
    """Targets for a loss of your own: as given (any shape with n samples), as the
    model's float dtype (Keras converts y_true to the loss's dtype); (n,) targets
    of a one-unit output become (n, 1)."""
    y = np.asarray(y)
    out_shape, _ = _output(model, objective)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{where}: y must be numeric, got dtype {y.dtype}")
    if y.shape[:1] != (n,):
        raise ValueError(f"{where}: x has {n} samples but y has "
                         f"{y.shape[0] if y.ndim else 'no'} ({y.shape})")
    if y.shape == (n,) and out_shape == (1,):
        y = y.reshape(n, 1)
    y = np.ascontiguousarray(y, dtype=model.dtype)
    if not current_ops().all_finite(y):
        raise ValueError(f"{where}: y contains NaN or inf")
    return y


def _match_outputs(model, wanted, value, what, where):
    """``value`` (one array, a list, or a dict by output name) as one entry per
    objective in ``wanted``."""
    names = model.output_names
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"{where}: {what} is keyed by output name; {unknown} are not "
                             f"outputs of the model, whose outputs are {names}")
        return [value.get(o.name) for o in wanted]
    if len(names) > 1:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: the model has {len(names)} outputs {names}: pass "
                             f"{what} as a list (one per output) or a dict keyed by output "
                             f"name, got {type(value).__name__}")
        if len(value) == len(names):
            return [value[o.index] for o in wanted]
        if len(value) == len(wanted):
            return list(value)
        raise ValueError(f"{where}: {what} is a list of {len(value)} but the model has "
                         f"{len(names)} outputs {names} ({len(wanted)} with a loss or metrics)")
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], np.ndarray):
        value = value[0]
    return [value] * len(wanted)


def _output(model, objective):
    """(shape without the batch axis, name of the layer that makes it) of an output."""
    tensor = model.outputs[objective.index]
    layer = tensor.node.operation.name if tensor.node is not None else objective.name
    return tensor.shape[1:], layer


def rows_per_sample(target, n):
    return target.shape[0] // n


def _prepare_output_target(model, objective, y, n, where):
    """Targets for n samples as (rows, D) of the model's dtype, or int64 class
    indices (rows,) for sparse categorical cross-entropy."""
    y = np.asarray(y)
    out_shape, layer = _output(model, objective)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{where}: y must be numeric, got dtype {y.dtype}")
    if y.shape[:1] != (n,):
        raise ValueError(f"{where}: x has {n} samples but y has "
                         f"{y.shape[0] if y.ndim else 'no'} ({y.shape})")
    if objective.sparse_targets:
        label_shape = out_shape[:-1]
        if len(y.shape) == len(label_shape) + 2 and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        if len(y.shape) != len(label_shape) + 1 or not shapes_compatible(label_shape,
                                                                         y.shape[1:]):
            raise ValueError(f"{where}: sparse class labels must have shape "
                             f"{(n,) + label_shape} for outputs {(None,) + out_shape} (layer "
                             f"{layer!r}), got {y.shape}")
        labels = y.astype(np.int64)
        if y.dtype.kind == "f" and not np.array_equal(labels, y):
            raise ValueError(f"{where}: sparse class labels must be whole numbers")
        if labels.min() < 0 or labels.max() >= out_shape[-1]:
            raise ValueError(f"{where}: class labels must lie in [0, {out_shape[-1]}), got "
                             f"[{labels.min()}, {labels.max()}]")
        return np.ascontiguousarray(labels.reshape(-1)), y.shape[1:]
    if y.shape == (n,) and out_shape == (1,):
        y = y.reshape(n, 1)
    if len(y.shape) != len(out_shape) + 1 or not shapes_compatible(out_shape, y.shape[1:]):
        raise ValueError(f"{where}: y has shape {y.shape} but the model's output (layer "
                         f"{layer!r}) is {(None,) + out_shape}")
    shape = y.shape[1:]
    y = np.ascontiguousarray(y, dtype=model.dtype).reshape(-1, y.shape[-1])
    if not current_ops().all_finite(y):
        raise ValueError(f"{where}: y contains NaN or inf")
    return y, shape


# ---- sample and class weights -----------------------------------------------------------
def prepare_sample_weights(model, objectives, targets, sample_weight, class_weight, n, where):
    """One loss weight per target row for each objective with targets (model dtype),
    or None entries when no weights are given.

    sample_weight: (n,) (or (n, 1); or one weight per time step for sequence
    outputs) for every output, or a list / dict per output. class_weight:
    {class index: weight}, one output only, the class read from the integer
    labels, the argmax of one-hot targets or the rounded single output;
    classes it does not name weigh 1 (Keras 3). Both at once is an error, as
    in Keras 3.
    """
    wanted = target_objectives(objectives)
    if sample_weight is None and class_weight is None:
        return [None] * len(wanted)
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{where}: pass sample_weight or class_weight, not both "
                         "(multiply the class weights into sample_weight yourself)")
    if class_weight is not None:
        if any(o.loss is not None and o.loss.is_traced for o in wanted):
            raise ValueError(f"{where}: class_weight does not apply to a loss of your own; "
                             "pass sample_weight")
        if len(model.output_names) != 1:
            raise ValueError(f"{where}: class_weight is only supported for models with one "
                             f"output; this one has {model.output_names} (use sample_weight "
                             "per output)")
        return [class_weight_per_row(model, wanted[0], class_weight, targets[0], where)]
    if isinstance(sample_weight, (list, tuple, dict)):
        per_output = _match_outputs(model, wanted, sample_weight, "sample_weight", where)
    else:
        per_output = [sample_weight] * len(wanted)
    return [None if w is None or y is None else
            check_sample_weight(model, objective, w, y, n, where)
            for objective, w, y in zip(wanted, per_output, targets)]


def check_sample_weight(model, objective, sample_weight, y, n, where):
    w = np.asarray(sample_weight)
    y_rows = rows_per_sample(y, n)
    out_shape, _ = _output(model, objective)
    steps = out_shape[:-1]
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{where}: sample_weight must be numeric, got dtype {w.dtype}")
    if w.shape == (n, 1):
        w = w.reshape(n)
    if w.shape == (n,):
        w = np.repeat(w, y_rows) if y_rows > 1 else w
    elif y_rows > 1 and len(w.shape) == len(steps) + 1 and w.size == n * y_rows \
            and shapes_compatible(steps, w.shape[1:]):
        w = w.reshape(-1)
    else:
        per_step = (n,) + steps
        extra = f" or {per_step} (one per time step)" if y_rows > 1 else ""
        raise ValueError(f"{where}: sample_weight must have shape {(n,)}{extra}, one "
                         f"weight per sample of x; got {w.shape}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise ValueError(f"{where}: sample_weight {w.shape} contains NaN or inf")
    if (w < 0).any():
        raise ValueError(f"{where}: sample_weight must be >= 0, got a minimum of {w.min()}")
    return np.ascontiguousarray(w, dtype=model.dtype)


def class_weight_per_row(model, objective, class_weight, y, where):
    if not isinstance(class_weight, dict):
        raise TypeError(f"{where}: class_weight must be a dict {{class index: weight}}, "
                        f"got {type(class_weight).__name__}")
    out_shape, layer = _output(model, objective)
    out_dim = out_shape[-1]
    n_classes = 2 if out_dim == 1 else out_dim
    table = np.ones(n_classes, dtype=np.float64)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) \
                or not 0 <= key < n_classes:
            raise ValueError(
                f"{where}: class_weight has key {key!r}, but the model's output (layer "
                f"{layer!r}, shape {(None,) + out_shape}) has classes 0..{n_classes - 1}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: class_weight[{key}] must be a finite number >= 0, "
                             f"got {value!r}")
        table[int(key)] = value
    if objective.sparse_targets:
        classes = y
    elif out_dim == 1:
        classes = np.rint(y[:, 0]).astype(np.int64)
    else:
        classes = np.argmax(y, axis=1)
    inside = (classes >= 0) & (classes < n_classes)
    w = np.ones(classes.shape[0], dtype=np.float64)
    w[inside] = table[classes[inside]]
    return np.ascontiguousarray(w, dtype=model.dtype)
