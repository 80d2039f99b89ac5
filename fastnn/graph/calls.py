"""Calling a layer: on symbolic tensors it records a node, on arrays it computes.

``layer(x)`` with ``x`` a KerasTensor (or, for merge layers, a list of them)
builds the layer for x's shape if it is not built yet (checks the shape if it
is), and returns KerasTensors for its outputs, recorded as a Node. With arrays
it runs the layer's forward pass now, on the current backend, in inference
mode unless ``training=True``. Inside a trace (a custom layer's ``call``), a
layer called on an array still records a node -- on a constant -- so that
its weights train.

A layer of your own (one with ``call``) is traced: ``call`` runs on
placeholder tensors of its arguments' shapes, and the operations it records
become the node's subgraph, which the executor inlines. On arrays the same
trace (kept per signature) runs at once.
"""
import inspect

import numpy as np

from fastnn.graph.graph import Graph
from fastnn.graph.node import Node
from fastnn.graph.operation import Operation, as_symbolic, in_trace, tracing
from fastnn.graph.plan import Plan
from fastnn.graph.tensor import KerasTensor, any_symbolic, flatten_structure


class _TrainingInTrace:
    """What a traced ``call`` receives as ``training`` when its caller did not fix
    it: the mode is only known when the model runs. Passed on to layers
    (``self.dropout(x, training=training)``) it means "follow the model"; as a
    Python condition it is an error, since one trace serves both modes."""

    def __bool__(self):
        raise TypeError("a traced call() cannot branch on `training` with Python `if`: "
                        "fastnn traces call() once for training and inference. Pass it on "
                        "to layers instead (self.dropout(x, training=training)), or call the "
                        "layer with training=True or False to fix the mode")

    def __repr__(self):
        return "<training: decided when the model runs>"


TRAINING_IN_TRACE = _TrainingInTrace()


def _check_training(layer, training):
    if training is None or training is TRAINING_IN_TRACE:
        return None
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{layer.name}: training must be True, False or None, got {training!r}")
    return bool(training)


def call_layer(layer, inputs, training):
    """A call of one of fastnn's own (forward / backward) layers."""
    training = _check_training(layer, training)
    if any_symbolic(inputs) or in_trace():
        return _symbolic_call(layer, inputs, training)
    return _eager_call(layer, inputs, bool(training))


def call_bound(layer, args, kwargs):
    """A call of one of fastnn's own layers that takes several arguments (its
    ``bind_call(*args, **kwargs)`` gives the tensors, in order, and the static
    arguments the node keeps); one or more outputs."""
    kwargs = dict(kwargs)
    training = _check_training(layer, kwargs.pop("training", None))
    structure, _ = _tensor_leaves(args, kwargs)
    values, static = layer.bind_call(*args, **kwargs)
    if not (any_symbolic(values) or in_trace()):
        from fastnn.backend import current_ops
        from fastnn.graph.workspace import Workspace
        arrays = [_as_array(layer, v) for v in values]
        _build_or_check(layer, [a.shape[1:] for a in arrays], static, bound=True)
        ws = Workspace(param_grads=False)
        ws.static = static
        return layer.forward(current_ops(), arrays, bool(training), ws)
    tensors = [v if isinstance(v, KerasTensor) else as_symbolic(_as_array(layer, v))
               for v in values]
    shapes = _build_or_check(layer, [t.shape[1:] for t in tensors], static, bound=True)
    out_shapes = layer.compute_output_shape(shapes, static)
    single = isinstance(out_shapes, tuple)
    batch = tensors[0].shape[0]
    outputs = [KerasTensor((batch,) + tuple(s), layer.dtype, name=layer.name)
               for s in ([out_shapes] if single else out_shapes)]
    Node(layer, tensors, outputs, list_input=True, training=training,
         arguments=call_arguments(structure), static=static)
    return outputs[0] if single else tuple(outputs)


def layer_inputs(layer, inputs):
    """The call's inputs as a list, checked against what ``layer`` takes."""
    if layer.takes_list:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError(f"{layer.name}: a {type(layer).__name__} layer is called on a "
                             f"list of inputs, got {type(inputs).__name__}")
        return list(inputs)
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 1:
            raise ValueError(f"{layer.name}: a {type(layer).__name__} layer takes one input, "
                             f"got a list of {len(inputs)}")
        inputs = inputs[0]
    return [inputs]


def _symbolic_call(layer, inputs, training):
    tensors = layer_inputs(layer, inputs)
    if in_trace():
        tensors = [t if isinstance(t, KerasTensor) or not _is_data(t) else
                   as_symbolic(_as_array(layer, t)) for t in tensors]
    for t in tensors:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"{layer.name}: called on a mix of symbolic tensors and "
                            f"{type(t).__name__}; pass only tensors from keras.Input or "
                            "from other layers")
    shape = _build_or_check(layer, [t.shape[1:] for t in tensors])
    out_shape = tuple(layer.compute_output_shape(shape))
    batches = {t.shape[0] for t in tensors}
    batch = batches.pop() if len(batches) == 1 else None
    output = KerasTensor((batch,) + out_shape, layer.dtype, name=layer.name)
    Node(layer, tensors, [output], list_input=layer.takes_list, training=training)
    return output


def _build_or_check(layer, shapes, static=None, bound=False):
    """Build ``layer`` for its inputs' ``shapes`` (batch axis excluded), or check
    that the built layer takes them; returns the shape argument it was given
    (``bound``: a several-argument call, which gets the list of shapes and its
    static arguments)."""
    shape = shapes if layer.takes_list or bound else shapes[0]
    extra = (static,) if bound else ()
    if not layer.built:
        layer.build(shape, *extra)
    else:
        layer.check_input_shape(shape, *extra)
    return shape


def _eager_call(layer, inputs, training):
    from fastnn.backend import current_ops
    arrays = [_as_array(layer, x) for x in layer_inputs(layer, inputs)]
    _build_or_check(layer, [a.shape[1:] for a in arrays])
    return layer.forward(current_ops(), arrays if layer.takes_list else arrays[0], training, None)


def _as_array(layer, x):
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{layer.name}: inputs need a batch axis, got a scalar")
    if getattr(layer, "integer_input", False):
        return layer.prepare_indices(x, layer.name)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{layer.name}: inputs must be numeric, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=layer.dtype)


def _is_data(value):
    return isinstance(value, (np.ndarray, list, tuple, int, float, np.generic))


# ---- layers of your own: call() traced into operations --------------------------------
class Placeholder(Operation):
    """A traced call's input: stands for one tensor argument of the call."""

    differentiable = False
    is_graph_input = True

    def __init__(self, shape, dtype):
        super().__init__()
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def compute_output_spec(self):
        return [(self.shape, self.dtype)]


def placeholder(shape, dtype, name):
    """A symbolic tensor standing for an argument of a traced function."""
    tensor = KerasTensor(shape, dtype, name=name)
    Node(Placeholder(shape, dtype), [], [tensor])
    return tensor


def call_custom(layer, args, kwargs):
    """A call of a layer with ``call``: traced on symbolic arguments (a node with the
    trace as its subgraph), or run at once on arrays (the trace for their signature)."""
    kwargs = dict(kwargs)
    training = _check_training(layer, kwargs.pop("training", None))
    mask = kwargs.pop("mask", None)
    if mask is not None:
        raise ValueError(f"{layer.name}: passing mask= to a layer's call() is not supported; "
                         "masks from Embedding(mask_zero=True) reach the layers inside it")
    if any_symbolic((args, kwargs)) or in_trace():
        return _trace_call(layer, args, kwargs, training)
    return _run_traced(layer, args, kwargs, bool(training))


def _tensor_leaves(args, kwargs):
    """(structure with each tensor argument replaced by a slot marker, the tensors).
    Arrays count as tensors (constants inside a trace); other values are config."""
    tensors = []

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(walk(v) for v in value)
        if isinstance(value, KerasTensor) or getattr(value, "is_weight", False) \
                or isinstance(value, np.ndarray):
            tensors.append(value)
            return _Slot(len(tensors) - 1)
        return value
    return walk((tuple(args), kwargs)), tensors


class _Slot:
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


def _fill(structure, values):
    if isinstance(structure, _Slot):
        return values[structure.index]
    if isinstance(structure, dict):
        return {k: _fill(v, values) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(_fill(v, values) for v in structure)
    return structure


def _trace(layer, structure, specs, training):
    """Trace ``layer.call`` on placeholders of ``specs`` ((shape, dtype) with the
    batch axis): (the placeholders, the output structure, its tensors, graph)."""
    placeholders = [placeholder(shape, dtype, f"{layer.name}_arg{i}")
                    for i, (shape, dtype) in enumerate(specs)]
    args, kwargs = _fill(structure, placeholders)
    if not layer.built:
        _build_from_args(layer, args, kwargs)
    if accepts(layer.call, "training"):
        kwargs["training"] = TRAINING_IN_TRACE if training is None else training
    with tracing():
        try:
            result = layer.call(*args, **kwargs)
        except (ValueError, TypeError) as error:
            raise type(error)(f"{error} (in the call() of layer {layer.name!r})") from error
    outputs = [as_symbolic(v) if not isinstance(v, KerasTensor) else v
               for v in flatten_structure(result)]
    graph = Graph(placeholders, outputs, f"layer {layer.name!r}", allow_unused=True)
    return result, outputs, graph


def _trace_call(layer, args, kwargs, training):
    structure, tensors = _tensor_leaves(args, kwargs)
    tensors = [as_symbolic(t) for t in tensors]
    result, outputs, graph = _trace(layer, structure, [(t.shape, t.dtype) for t in tensors],
                                    training)
    outer = [KerasTensor(t.shape, t.dtype, name=layer.name) for t in outputs]
    Node(layer, tensors, outer, list_input=True, training=training, subgraph=graph,
         arguments=call_arguments(structure))
    return _repack(result, outputs, outer)


def call_arguments(structure):
    """A call's (args, kwargs) structure as JSON-able data, each tensor slot written
    {"__tensor__": index} (None when an argument is not plain data)."""
    def encode(value):
        if isinstance(value, _Slot):
            return {"__tensor__": value.index}
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(value)
    try:
        args, kwargs = structure
        return {"args": encode(list(args)), "kwargs": encode(kwargs)}
    except TypeError:
        return None


def replay_arguments(arguments, tensors):
    """(args, kwargs) from ``call_arguments`` data with the tensors put back."""
    def decode(value):
        if isinstance(value, dict):
            if set(value) == {"__tensor__"}:
                index = value["__tensor__"]
                if type(index) is not int or not 0 <= index < len(tensors):
                    raise ValueError(f"a call argument names tensor {index!r} of "
                                     f"{len(tensors)}")
                return tensors[index]
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value
    if not isinstance(arguments, dict):
        raise ValueError("a call's arguments must be an object")
    args, kwargs = decode(arguments.get("args", [])), decode(arguments.get("kwargs", {}))
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("a call's arguments must hold a list of args and an object of kwargs")
    return args, kwargs


def _repack(result, inner, outer):
    """``result`` (the call's return structure) with each inner output replaced."""
    mapping = {id(t): o for t, o in zip(inner, outer)}
    if isinstance(result, dict):
        return {k: _repack(v, inner, outer) for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return type(result)(_repack(v, inner, outer) for v in result)
    return mapping.get(id(result), outer[0] if len(outer) == 1 else result)


def _run_traced(layer, args, kwargs, training):
    """The layer on arrays: its trace for this signature (batch axis free), run now."""
    from fastnn.backend import current_ops
    structure, values = _tensor_leaves(args, kwargs)
    arrays = [np.asarray(v.value if getattr(v, "is_weight", False) else v) for v in values]
    arrays = [a if a.dtype.kind in "biu" else np.ascontiguousarray(a, dtype=layer.dtype)
              for a in arrays]
    key = (repr(structure_key(structure)), tuple((a.shape[1:], a.dtype.str) for a in arrays),
           training)
    cache = layer.__dict__.setdefault("_eager_traces", {})
    if key not in cache:
        result, outputs, graph = _trace(layer, structure,
                                        [((None,) + a.shape[1:], a.dtype) for a in arrays],
                                        training)
        cache[key] = (result, outputs, Plan(graph))
    result, outputs, plan = cache[key]
    values = plan.forward(current_ops(), arrays, training, plan.scratch(param_grads=False))
    return _repack(result, outputs, [np.array(v) for v in values])


def structure_key(structure):
    if isinstance(structure, _Slot):
        return ("slot", structure.index)
    if isinstance(structure, dict):
        return tuple((k, structure_key(v)) for k, v in sorted(structure.items()))
    if isinstance(structure, (list, tuple)):
        return tuple(structure_key(v) for v in structure)
    return repr(structure)


def accepts(fn, name):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _build_from_args(layer, args, kwargs):
    """Keras' build: ``build(input_shape)`` with the first argument's shape (a list of
    shapes for a list), or one ``<name>_shape`` per call argument it names."""
    params = [p for p in inspect.signature(layer.build).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    call_params = [p.name for p in inspect.signature(layer.call).parameters.values()
                   if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    bound = dict(zip(call_params, args))
    bound.update(kwargs)
    shapes = {name: _shape_of(value) for name, value in bound.items()}
    named = {p.name: shapes.get(p.name[:-len("_shape")]) for p in params
             if p.name.endswith("_shape") and p.name[:-len("_shape")] in shapes}
    if len(params) > 1 and len(named) == len(params):
        layer.build(**named)
    else:
        layer.build(_shape_of(args[0]) if args else None)
    layer.built = True


def _shape_of(value):
    if isinstance(value, (list, tuple)):
        return [_shape_of(v) for v in value]
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(shape)
