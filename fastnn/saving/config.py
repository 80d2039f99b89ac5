"""A model as data, and back: architecture, compile settings, weight names.

The architecture of a graph model is its layers (class name and config) and
its nodes in topological order, each naming its layer and its inbound
tensors as ``[layer name, node index, tensor index]`` (the node index counts
that layer's calls within this model), plus the model's input and output
tensors. A nested model is a layer whose config is its own architecture.
Loading replays the nodes in order, so a reference can only name a tensor
that already exists: a file cannot describe a cycle, and nothing is run but
fastnn's own constructors.

Only fastnn's own classes, those registered with register_keras_serializable
and the caller's ``custom_objects`` are ever built -- every name is looked up
in fastnn.registry, as ``get`` / ``deserialize`` look it up -- and nothing
named in a file is imported or evaluated. Any problem is a ValueError saying
what is wrong.
"""
from fastnn import layers as _layers
from fastnn import losses as _losses
from fastnn import metrics as _metrics
from fastnn import optimizers as _optimizers
from fastnn import registry as _registry
from fastnn.graph.calls import replay_arguments
from fastnn.graph.tensor import flatten_structure
from fastnn.layers.base import Layer
from fastnn.optimizer_settings import check_setting

# Generous bounds on what a file may describe, counted over the whole file
# (nested models included) before any layer is built: the largest Keras
# application models have about a thousand layers. Building takes time linear
# in the number of layers (20,000 weightless layers load in about a second).
MAX_LAYERS = 20_000      # layers in all, and layer calls (graph nodes) in all
MAX_NESTING = 32         # models inside models


# ============================================================================
# Writing: model -> data
# ============================================================================
def model_config(model):
    """The model's architecture as JSON-able data (Keras' ``get_config``)."""
    if _is_sequential(model):
        layers = [layer_spec(model.inputs[0].node.operation)] if model.built else []
        return {"name": model.name, "trainable": model.trainable,
                "layers": layers + [layer_spec(layer) for layer in model.layers]}
    graph = model.graph
    node_index, seen = {}, {}
    for node in graph.nodes:
        node_index[id(node)] = seen.get(id(node.operation), 0)
        seen[id(node.operation)] = node_index[id(node)] + 1

    def ref(tensor):
        node = tensor.node
        return [node.operation.name, node_index.get(id(node), 0), tensor.index]

    return {
        "name": model.name, "trainable": model.trainable,
        "layers": [layer_spec(layer) for layer in graph.layers()],
        "nodes": [_node_spec(node, ref) for node in graph.nodes],
        "inputs": [ref(t) for t in graph.inputs],
        "outputs": [ref(t) for t in graph.outputs],
        **model.io_structure(),
    }


def _node_spec(node, ref):
    spec = {"layer": node.operation.name, "inputs": [ref(t) for t in node.inputs],
            "list": node.list_input, "training": node.training}
    if node.subgraph is not None and node.arguments is None:
        raise ValueError(f"cannot save the call of layer {node.operation.name!r}: its "
                         "arguments are not plain data")
    if node.arguments is not None:     # a layer of your own, or several arguments: the call
        spec["call"] = node.arguments
    return spec


def layer_spec(layer):
    spec = {"class_name": class_name(layer), "config": layer.get_config()}
    build = getattr(layer, "get_build_config", None)
    if build is not None and build() is not None:
        spec["build_config"] = build()          # a subclassed model's inputs
    return spec


def class_name(obj):
    """The name a file knows a class by: a functional Model is "Functional" (as in
    Keras), a registered class its ``package>name``."""
    cls = type(obj)
    if cls.__name__ == "Model" and cls.__module__ == "fastnn.models":
        return "Functional"
    return _registry.get_registered_name(cls)


def weight_entries(model):
    """(layer path, Weight) for every weight, nested models' layers as
    ``outer/inner`` paths, in a fixed order the loader rebuilds exactly."""
    entries, owners = [], {}

    def visit(m, prefix):
        for layer in m.layers:
            # a subclassed model's layers are known by their attributes (their automatic
            # names differ each time the model is constructed)
            path = prefix + (m.tracked_name(layer) if m.is_call_based else layer.name)
            if hasattr(layer, "_graph_for_plan"):
                visit(layer, path + "/")
                continue
            if owners.setdefault(id(layer), path) != path:
                raise ValueError(f"cannot save {model.name!r}: layer {layer.name!r} is used both "
                                 f"as {owners[id(layer)]!r} and as {path!r} (inside a nested "
                                 "model and outside it); a file cannot share it")
            entries.extend((path, w) for w in layer.weights)
    visit(model, "")
    return entries


def compile_spec(model):
    """The compile settings as data (None when the model was never compiled)."""
    config = model.get_compile_config()
    if config is None:
        return None
    optimizer = config["optimizer"]
    return {
        "optimizer": {**_optimizers.serialize(optimizer),
                      "iterations": int(optimizer.iterations)},
        "loss": _structure(config["loss"], _loss_spec),
        "loss_weights": _structure(config["loss_weights"], float),
        "metrics": _structure(config["metrics"], _metric_spec),
        "weighted_metrics": _structure(config.get("weighted_metrics"), _metric_spec),
    }


def _structure(value, leaf):
    """One value for all outputs, a list per output or a dict by output name, tagged
    so that reading it back is unambiguous."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {"kind": "dict", "value": {k: _leaf_or_list(v, leaf) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"kind": "list", "value": [_leaf_or_list(v, leaf) for v in value]}
    return {"kind": "single", "value": leaf(value)}


def _leaf_or_list(value, leaf):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [None if v is None else leaf(v) for v in value]
    return leaf(value)


def _loss_spec(loss):
    return _losses.serialize(_losses.get(loss))


def _metric_spec(metric):
    if isinstance(metric, str):
        return metric
    return _metrics.serialize(_metrics.get(metric))    # a function: saved by name


# ============================================================================
# Reading: data -> model
# ============================================================================
def check_custom_objects(custom_objects):
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict (name -> class or function), got "
                        f"{type(custom_objects).__name__}")
    for name, obj in custom_objects.items():
        if not isinstance(name, str) or not callable(obj):
            raise TypeError(f"custom_objects must map names to classes or functions; got "
                            f"{name!r}: {obj!r}")
    return dict(custom_objects)


def _model_classes():
    return _registry.classes("model")


def config_of(kind, spec):
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{kind} {spec['class_name']!r}: config must be an object")
    return config


def construct(what, make, argument):
    """``make(argument)``, any failure a ValueError that starts with ``what``.

    The argument comes from the file, so a constructor, ``add`` or a layer call
    may reject it any way it likes; the caller gets one kind of error, saying why.
    """
    try:
        return make(argument)
    except Exception as error:
        raise ValueError(f"{what} ({type(error).__name__}: {error})") from None


def _from_config(kind, cls, config):
    """An instance of ``cls`` from its config (``from_config`` when it has one)."""
    make = getattr(cls, "from_config", None) or (lambda c: cls(**c))
    return construct(f"{kind} {cls.__name__} cannot be built from {_short(config)}", make,
                     config)


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...}"


def build_model(spec, custom):
    """The (uncompiled) model ``spec`` ({"class_name", "config"}) describes."""
    check_size(spec.get("config") if isinstance(spec, dict) else None, custom)
    # in scope, custom_objects reach what layers deserialize themselves (initializers...)
    with _registry.custom_objects_in_scope(custom):
        return _build_model(spec, custom)


def check_size(config, custom):
    """Refuse a model config that describes more than MAX_LAYERS layers or layer
    calls in all (nested models' included), or models nested more than
    MAX_NESTING deep -- before any layer is built. What else is wrong with it
    the builder says."""
    layers = calls = 0
    pending = [(config, 0)]
    while pending:
        config, depth = pending.pop()
        if depth > MAX_NESTING:
            raise ValueError(f"models are nested more than {MAX_NESTING} deep")
        if not isinstance(config, dict):
            continue
        specs, nodes = config.get("layers"), config.get("nodes")
        layers += len(specs) if isinstance(specs, list) else 0
        calls += len(nodes) if isinstance(nodes, list) else 0
        for count, what in ((layers, "layers"), (calls, "layer calls")):
            if count > MAX_LAYERS:
                raise ValueError(f"the architecture has more than {MAX_LAYERS} {what} "
                                 "(nested models' included), the limit "
                                 "(fastnn.saving.config.MAX_LAYERS)")
        if isinstance(specs, list):
            pending.extend((spec.get("config"), depth + 1) for spec in specs
                           if _is_nested_model(spec, custom))


def _is_nested_model(spec, custom):
    """Whether a layer spec is a model of fastnn's, built from its own layer list."""
    name = spec.get("class_name") if isinstance(spec, dict) else None
    return isinstance(name, str) and name in _model_classes() and name not in custom


def _build_model(spec, custom):
    classes = _model_classes()
    cls = _registry.spec_class("model", spec, custom, base=classes["Model"])
    if cls.call is not Layer.call:
        return _subclassed(cls, spec)
    return _model_from_config(cls, config_of("model", spec), custom)


def _subclassed(cls, spec):
    """A subclassed model (or layer): its class from its config, built again for the
    inputs it was built for."""
    obj = _from_config("model" if hasattr(cls, "build_from_config") else "layer", cls,
                       config_of("model", spec))
    if "build_config" in spec:
        construct(f"{cls.__name__} cannot be built for {_short(spec['build_config'])}",
                  obj.build_from_config, spec["build_config"])
    return obj


def model_from_config(model_class, config, custom):
    """A new, uncompiled model of ``model_class`` from ``model_config``'s data."""
    check_size(config, custom)
    with _registry.custom_objects_in_scope(custom):
        return _model_from_config(model_class, config, custom)


def _model_from_config(model_class, config, custom):
    if not isinstance(config, dict):
        raise ValueError("a model config must be an object")
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"the model's name must be a string, got {name!r}")
    layer_specs = config.get("layers", [])
    if not isinstance(layer_specs, list):
        raise ValueError("the model config's layers must be a list")
    sequential = _model_classes()["Sequential"]
    if issubclass(model_class, sequential):
        model = _sequential_from_config(model_class, config, name, layer_specs, custom)
    else:
        model = _functional_from_config(model_class, config, name, layer_specs, custom)
    if config.get("trainable") is False:
        model.trainable = False
    return model


def _build_layer(spec, custom):
    if _is_nested_model(spec, custom):
        return _build_model(spec, custom)
    cls = _registry.spec_class("layer", spec, custom, base=Layer)
    if "build_config" in spec and hasattr(cls, "build_from_config"):
        return _subclassed(cls, spec)
    return _from_config("layer", cls, config_of("layer", spec))


def _sequential_from_config(model_class, config, name, layer_specs, custom):
    """A chain: its layers added in order (version 1 files give the input shape
    separately; version 2 files start with the Input layer)."""
    input_shape = config.get("input_shape")
    if input_shape is not None and (not isinstance(input_shape, list) or not all(
            type(d) is int and d >= 1 for d in input_shape)):
        raise ValueError(f"input_shape must be a list of positive integers, got {input_shape!r}")
    built = [_build_layer(spec, custom) for spec in layer_specs]
    # one constructor call chains them all: time linear in the number of layers
    model = construct("the layers cannot be chained into a Sequential model",
                      lambda layers: model_class(layers=layers, name=name), built)
    if input_shape is not None:
        if not model.built:
            construct(f"the model cannot be built for inputs {tuple(input_shape)}",
                      model.build, tuple(input_shape))
        elif list(model.input_shape[1:]) != input_shape:
            raise ValueError(f"the model's input_shape {input_shape} disagrees with its first "
                             f"layer's {list(model.input_shape[1:])}")
    return model


def _functional_from_config(model_class, config, name, layer_specs, custom):
    """A graph: the layers, then every node replayed in the file's order."""
    by_name = {}
    for spec in layer_specs:
        layer = _build_layer(spec, custom)
        if layer.name in by_name:
            raise ValueError(f"two layers are named {layer.name!r}")
        by_name[layer.name] = layer
    made = {n: ([[layer.output]] if isinstance(layer, _layers.InputLayer) else [])
            for n, layer in by_name.items()}

    def tensor(ref, where):
        if (not isinstance(ref, list) or len(ref) != 3 or not isinstance(ref[0], str)
                or type(ref[1]) is not int or type(ref[2]) is not int):
            raise ValueError(f"{where}: a tensor reference must be [layer name, node index, "
                             f"tensor index], got {_short(ref)}")
        calls = made.get(ref[0])
        if calls is None:
            raise ValueError(f"{where}: no layer named {ref[0]!r}")
        if not 0 <= ref[1] < len(calls) or not 0 <= ref[2] < len(calls[ref[1]]):
            raise ValueError(f"{where}: {ref} names a call or output of {ref[0]!r} that does "
                             "not exist (yet): nodes must come in order")
        return calls[ref[1]][ref[2]]

    nodes = config.get("nodes")
    if not isinstance(nodes, list):
        raise ValueError("the model config's nodes must be a list")
    for i, node in enumerate(nodes):
        where = f"node {i}"
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), list):
            raise ValueError(f"{where} must be an object with a list of inputs")
        layer_name = node.get("layer")
        layer = by_name.get(layer_name) if isinstance(layer_name, str) else None
        if layer is None or isinstance(layer, _layers.InputLayer):
            raise ValueError(f"{where}: {node.get('layer')!r} is not a layer of the model")
        training = node.get("training")
        if training not in (None, True, False):
            raise ValueError(f"{where}: training must be true, false or null")
        args = [tensor(ref, where) for ref in node["inputs"]]
        if "call" in node:                        # called as recorded
            call_args, call_kwargs = replay_arguments(node["call"], args)
        else:
            call_args = [args if node.get("list") else (args[0] if len(args) == 1 else args)]
            call_kwargs = {}
        out = construct(f"{where}: layer {layer.name!r} cannot be called on "
                        f"{[t.shape for t in args]}",
                        lambda a: layer(*a, **call_kwargs, training=training), call_args)
        made[layer.name].append(flatten_structure(out))
    inputs = [tensor(ref, "inputs") for ref in _list(config, "inputs")]
    outputs = [tensor(ref, "outputs") for ref in _list(config, "outputs")]
    return construct("the model cannot be built from its graph",
                     lambda _: model_class(_pack(inputs, config, "input"),
                                           _pack(outputs, config, "output"), name=name), None)


def _list(config, key):
    value = config.get(key)
    if not isinstance(value, list) or not value:
        raise ValueError(f"the model config's {key} must be a non-empty list")
    return value


def _pack(tensors, config, what):
    keys = config.get(f"{what}_keys")
    if keys is not None:
        if not isinstance(keys, list) or len(keys) != len(tensors) or not all(
                isinstance(k, str) for k in keys):
            raise ValueError(f"{what}_keys must be a list of {len(tensors)} names")
        return dict(zip(keys, tensors))
    if config.get(f"single_{what}", len(tensors) == 1) and len(tensors) == 1:
        return tensors[0]
    return tensors


def _is_sequential(model):
    return isinstance(model, _model_classes()["Sequential"])


# ---- compile settings ---------------------------------------------------------
def compile_args(spec, custom):
    """(optimizer, loss, loss_weights, metrics, iterations, weighted_metrics) from the
    file's compile description (version 1's plain loss and metric list included)."""
    if not isinstance(spec, dict):
        raise ValueError("compile must be an object or null")
    opt_spec = spec.get("optimizer")
    optimizer = _optimizers.deserialize(opt_spec, custom)
    # the constructor checked every setting; the step count is checked by the same rules
    iterations = check_setting(f"optimizer {type(optimizer).__name__}", "iterations",
                               opt_spec.get("iterations", 0))
    loss_spec, metric_specs = spec.get("loss"), spec.get("metrics", [])
    if isinstance(loss_spec, dict) and "kind" in loss_spec:         # version 2
        loss = _read_structure(loss_spec, lambda s: _loss(s, custom), "loss")
    else:                                                           # version 1: one loss
        loss = None if loss_spec is None else _loss(loss_spec, custom)
    if metric_specs is None or (isinstance(metric_specs, dict) and "kind" in metric_specs):
        metrics = _read_structure(metric_specs, lambda s: _metric(s, custom), "metrics")
    else:
        if not isinstance(metric_specs, list):
            raise ValueError("metrics must be a list")
        metrics = [_metric(m, custom) for m in metric_specs]
    loss_weights = _read_structure(spec.get("loss_weights"), _loss_weight, "loss_weights")
    weighted_metrics = _read_structure(spec.get("weighted_metrics"),
                                       lambda s: _metric(s, custom), "weighted_metrics")
    return optimizer, loss, loss_weights, metrics, iterations, weighted_metrics


def _read_structure(spec, leaf, what):
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("kind") not in ("single", "list", "dict"):
        raise ValueError(f"{what} must be tagged single, list or dict")
    value = spec.get("value")
    if spec["kind"] == "single":
        return leaf(value)
    if spec["kind"] == "list":
        if not isinstance(value, list):
            raise ValueError(f"{what}: a list was declared")
        return [_read_leaf_or_list(v, leaf) for v in value]
    if not isinstance(value, dict):
        raise ValueError(f"{what}: a dict was declared")
    return {str(k): _read_leaf_or_list(v, leaf) for k, v in value.items()}


def _read_leaf_or_list(value, leaf):
    if value is None:
        return None
    if isinstance(value, list):
        return [None if v is None else leaf(v) for v in value]
    return leaf(value)


def _loss(spec, custom):
    return _losses.deserialize(spec, custom)


def _loss_weight(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a loss weight must be a number, got {value!r}")
    return float(value)


def _metric(spec, custom):
    if isinstance(spec, str):
        return spec            # a name: compile() resolves and checks it
    return _metrics.deserialize(spec, custom)
