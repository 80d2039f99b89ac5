"""Saving and loading models (design decision 9: saved models are data, never code).

A saved model is ONE zip file (any extension; ``.fnn`` recommended) holding

- ``model.json``: the format name and version, the architecture (each layer's
  class name and ``get_config()``; for a graph, its nodes and their inbound
  tensors), the compile configuration (optimizer class, config and step
  count; losses, loss weights and metrics per output), the state of the
  model's random generator, and a manifest of the arrays (each one's layer
  path, name, shape and dtype);
- ``weights/<i>.npy``: every weight, layer by layer (nested models' layers as
  ``outer/inner`` paths);
- ``optimizer/<i>.npy``: the optimizer's state arrays (moments, accumulators).

Arrays are written uncompressed and read with ``allow_pickle=False``.
``save_weights`` writes the same format with ``"kind": "weights"`` and no
compile state. Files of format version 1 (fastnn 0.1) are still read.

The container (writing atomically, reading within bounds) is
fastnn.saving.archive; the model <-> data translation fastnn.saving.config.
"""
import math

import numpy as np

from fastnn import _version
from fastnn import registry as _registry
from fastnn.registry import (  # noqa: F401  (Keras' keras.saving names)
    get_registered_name, get_registered_object, register_keras_serializable,
)
from fastnn.layers.base import weight_budget
from fastnn.model_generator import generator_from_config
from fastnn.saving import config as _config
from fastnn.saving.archive import (
    FORMAT, FORMAT_VERSION, MODEL_JSON, READABLE_VERSIONS, Archive, array_specs, as_path,
    entries, read_arrays, reading, write_archive,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_JSON", "READABLE_VERSIONS",
           "get_registered_name", "get_registered_object", "load_model", "load_weights",
           "model_config", "model_from_config", "register_keras_serializable", "save_model",
           "save_weights"]


def save_model(model, filepath, overwrite=True):
    """Write ``model`` (architecture, weights, compile state, optimizer state) to one file.

    The file is replaced atomically; a symlink is written through, an existing
    file keeps its mode, and a FIFO, device or directory is refused
    (fastnn.saving.atomic_write)."""
    document, arrays = _describe(model, kind="model")
    write_archive(filepath, document, arrays, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Write only ``model``'s weights (same zip format, ``"kind": "weights"``)."""
    document, arrays = _describe(model, kind="weights")
    write_archive(filepath, document, arrays, overwrite)


def load_model(filepath, custom_objects=None, compile=True):
    """Read a model written by ``Model.save``.

    Returns a model with the saved weights that predicts identically; when it
    was compiled (and ``compile`` is true) it comes back compiled with the
    optimizer's state and step count restored, so ``fit(..., shuffle=False)``
    continues bitwise as if it had never been saved. Only fastnn's own layer,
    model, optimizer, loss, metric and schedule classes are built, plus the
    classes the caller passes in ``custom_objects`` (a dict, class name -> class).
    Raises ValueError when the file is not a valid fastnn model, is not a
    regular file (a FIFO, a device), or describes more than the documented
    limits allow (fastnn.saving.config.MAX_LAYERS layers, MAX_NESTING levels
    of nested models; model.json within fastnn.saving.archive's MAX_JSON_BYTES,
    MAX_JSON_ITEMS and MAX_JSON_DEPTH) -- checked before the memory they would
    need is taken, and with loading time linear in the file's size.
    """
    custom = _config.check_custom_objects(custom_objects)
    path = as_path(filepath)
    with reading(path), Archive(path) as archive:
        document = archive.document
        if document["kind"] != "model":
            raise ValueError("it holds weights only (written by save_weights): build the "
                             "model, then call model.load_weights(path)")
        weight_specs = array_specs(document, "weights")
        compile_spec = document.get("compile") if compile else None
        state_specs = array_specs(document, "optimizer_state") if compile_spec else []
        archive.check_entries(entries("weights", weight_specs)
                              + entries("optimizer", state_specs))
        model = _build_within_budget(document.get("model"), custom,
                                     sum(math.prod(s["shape"]) for s in weight_specs))
        targets = _match_weights(model, weight_specs, by_name=True)
        compile_args = _config.compile_args(compile_spec, custom) if compile_spec else None
        weights = read_arrays(archive, "weights", weight_specs)
        state = read_arrays(archive, "optimizer", state_specs)
        # the model's own generator (fastnn.model_generator); files without one
        # (format 1) leave the model to take one at its first random draw
        random_state = document.get("random_state")
        generator = None if random_state is None else generator_from_config(random_state)
        if compile_args is not None:
            optimizer, loss, loss_weights, metrics, iterations, weighted_metrics = compile_args
            model.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                          loss_weights=loss_weights, weighted_metrics=weighted_metrics)
            slots = _match_state(model, state_specs)
        # Everything is read and checked: from here on nothing can fail.
        for weight, array in zip(targets, weights):
            np.copyto(weight.value, array)
        if compile_args is not None:
            for slot, array in zip(slots, state):
                np.copyto(slot, array)
            model.optimizer.iterations = iterations
        if generator is not None:
            model._random.restore(generator)
    return model


def load_weights(model, filepath):
    """Copy the weights in ``filepath`` (from save_weights or save) into ``model``.

    Weights are matched by layer path and order within each layer when the
    file names every layer of the model, else in order (the same architecture
    built again, with other automatic names). The model must be built. Every
    array is read and checked first, so a mismatch raises ValueError naming
    the layer and shapes and changes nothing.
    """
    path = as_path(filepath)
    if not model.built:
        raise ValueError(f"{model.name}: build the model before load_weights (give the first "
                         "layer input_shape=, start with layers.Input, or call model.build)")
    with reading(path), Archive(path) as archive:
        specs = array_specs(archive.document, "weights")
        archive.check_entries(entries("weights", specs))
        targets = _match_weights(model, specs, by_name=None)
        arrays = read_arrays(archive, "weights", specs)
    for weight, array in zip(targets, arrays):
        np.copyto(weight.value, array)


def model_config(model):
    """The model's architecture as JSON-able data (Keras' ``get_config``)."""
    return _config.model_config(model)


def model_from_config(config, custom_objects=None, model_class=None):
    """A new, uncompiled model from ``model_config``'s dict (only known layer types).

    ``model_class`` is the class to build (default: a graph model when the
    config has nodes, else Sequential).
    """
    custom = _config.check_custom_objects(custom_objects)
    if model_class is None:
        models = _registry.classes("model")
        model_class = models["Functional" if isinstance(config, dict) and "nodes" in config
                             else "Sequential"]
    return _config.model_from_config(model_class, config, custom)


# ---- describing a model as data -------------------------------------------------
def _describe(model, kind):
    """The model.json document and the list of (entry name, array) to write."""
    weights = _config.weight_entries(model)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "fastnn_version": _version.__version__,
        "model": _config.layer_spec(model),
        "compile": None,
        "weights": [{"layer": path, "name": w.name, **_array_meta(w.value)}
                    for path, w in weights],
        "optimizer_state": [],
    }
    try:                      # what load_model would refuse is never written
        _config.check_size(document["model"]["config"], {})
    except ValueError as error:
        raise ValueError(f"cannot save model {model.name!r}: {error}") from None
    arrays = [(f"weights/{i}.npy", w.value) for i, (_, w) in enumerate(weights)]
    if kind == "model":
        # so that training resumed from the file continues its shuffles and dropout
        document["random_state"] = model._random.to_config()
    if kind == "model" and model.optimizer is not None:
        document["compile"] = _config.compile_spec(model)
        # After pop()/add(), or once the layers were packed into another model, the
        # state no longer matches the layers; it is left out, as compile() would
        # reset it (the step count is kept, as compile() keeps it).
        state = model.optimizer.variables() if model.is_packed() else {}
        document["optimizer_state"] = [{"name": name, **_array_meta(value)}
                                       for name, value in state.items()]
        arrays += [(f"optimizer/{i}.npy", value) for i, value in enumerate(state.values())]
    return document, arrays


def _array_meta(array):
    return {"shape": list(array.shape), "dtype": array.dtype.name}


# ---- reading -------------------------------------------------------------------
def _build_within_budget(spec, custom, budget):
    """The model ``spec`` describes, its layers creating at most ``budget`` weight
    values (the file's): a tampered architecture cannot make fastnn allocate
    memory the file never held."""
    token = weight_budget.set([budget])
    try:
        return _config.build_model(spec, custom)
    finally:
        weight_budget.reset(token)


def _match_weights(model, specs, by_name):
    """The model's Weight objects in the file's order, each checked against its
    manifest entry. ``by_name`` True: the layer paths and weight names must
    match (load_model, whose model was built from the same file); None: by
    path when the file names every layer of the model, else in order."""
    pairs = _config.weight_entries(model)
    if len(pairs) != len(specs):
        raise ValueError(f"the file holds {len(specs)} weight arrays but model {model.name!r} "
                         f"has {len(pairs)} (a different architecture)")
    if by_name is None:
        file_paths = {s["layer"] for s in specs}
        by_name = all(path in file_paths for path, _ in pairs)
        if by_name:
            pairs = _in_file_order(pairs, specs)
    for (path, weight), spec in zip(pairs, specs):
        if by_name and (path, weight.name) != (spec["layer"], spec["name"]):
            raise ValueError(f"the manifest lists {spec['what']} where the architecture has "
                             f"layer {path!r} weight {weight.name!r}")
        if weight.shape != spec["shape"] or weight.value.dtype.name != spec["dtype"].name:
            raise ValueError(f"layer {path!r}: weight {weight.name!r} is "
                             f"{weight.value.dtype.name} of shape {weight.shape}, but the file "
                             f"has {spec['dtype'].name} of shape {spec['shape']} (from layer "
                             f"{spec['layer']!r})")
    return [weight for _, weight in pairs]


def _in_file_order(pairs, specs):
    """The model's (path, weight) pairs reordered to the file's layer order (each
    layer's weights keep their own order)."""
    by_path = {}
    for path, weight in pairs:
        by_path.setdefault(path, []).append((path, weight))
    ordered, taken = [], {}
    for spec in specs:
        k = taken.get(spec["layer"], 0)
        items = by_path.get(spec["layer"], [])
        if k >= len(items):
            raise ValueError(f"the file lists more weights for layer {spec['layer']!r} than "
                             "the model's layer has")
        ordered.append(items[k])
        taken[spec["layer"]] = k + 1
    return ordered


def _match_state(model, specs):
    """The compiled optimizer's state arrays, checked against the file's, in order."""
    if not specs:
        return []
    variables = model.optimizer.variables()
    names = [spec["name"] for spec in specs]
    if names != list(variables):
        raise ValueError(f"the optimizer state holds {names} but "
                         f"{type(model.optimizer).__name__} with this config keeps "
                         f"{list(variables)}")
    for spec, (name, value) in zip(specs, variables.items()):
        if value.shape != spec["shape"] or value.dtype.name != spec["dtype"].name:
            raise ValueError(f"optimizer state {name!r} is {spec['dtype'].name} of shape "
                             f"{spec['shape']} but the model needs {value.dtype.name} of "
                             f"shape {value.shape}")
    return list(variables.values())
