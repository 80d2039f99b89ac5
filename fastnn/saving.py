"""Saving and loading models (design decision 9: saved models are data, never code).

A saved model is ONE zip file (any extension; ``.fnn`` recommended) holding

- ``model.json``: the format name and version, the architecture (each layer's
  class name and ``get_config()``, the model's name and input shape), the
  compile configuration (optimizer class, config and step count; loss; metric
  ids) and a manifest of the arrays (each one's layer, name, shape and dtype);
- ``weights/<i>.npy``: every layer's weights, in ``get_weights()`` order;
- ``optimizer/<i>.npy``: the optimizer's state arrays (moments, accumulators).

Arrays are written uncompressed (``ZIP_STORED``; float weights hardly
compress) and read with ``np.load(..., allow_pickle=False)``. ``save_weights``
writes the same format with ``"kind": "weights"`` and no compile state.

Reading trusts nothing in the file:

- only fastnn's own classes (``fastnn.layers.LAYER_CLASSES``, the optimizer,
  loss, metric and schedule classes) and the caller's ``custom_objects`` are
  ever built; nothing named in the file is imported or evaluated;
- memory stays bounded by the file's size: ``model.json`` has a size cap, every
  array entry must be stored uncompressed with a declared size matching its
  manifest shape (checked before anything is read), the entries together must
  fit in the file (so overlapping entries cannot multiply it), and building
  the layers may not create more weight values than the file holds;
- every array's header, shape, dtype, CRC and finiteness are checked, and all
  of it is read and checked before anything is assigned, so an error never
  leaves a half-loaded model.

Any problem with a file's contents is a ``ValueError`` saying what is wrong.
Writes go to a temporary file in the target's directory, then ``os.replace``,
so a crash never leaves a half-written file where a good one was.
"""
import contextlib
import importlib
import json
import math
import os
import secrets
import zipfile
import zlib

import numpy as np

from fastnn import _version
from fastnn import layers as _layers
from fastnn import losses as _losses
from fastnn import metrics as _metrics
from fastnn import optimizers as _optimizers
from fastnn.layers.base import Layer, weight_budget

FORMAT = "fastnn"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"

# model.json of a model with thousands of layers is well under a megabyte.
_MAX_JSON_BYTES = 64 << 20
# An .npy entry is its array's bytes plus a header numpy caps at 10000
# characters (we pass that cap on), padded to 64 bytes, plus magic and length.
_NPY_MAX_HEADER = 10000
_NPY_HEADER_ALLOWANCE = _NPY_MAX_HEADER + 256
# Arrays are stored little-endian whatever the machine, so files move freely.
_ARRAY_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
# Entries past this size need zip64 records, which zipfile must know up front.
_ZIP64_LIMIT = (1 << 31) - (1 << 20)


# ============================================================================
# Public API
# ============================================================================
def save_model(model, filepath, overwrite=True):
    """Write ``model`` (architecture, weights, compile state, optimizer state) to one file."""
    document, arrays = _describe(model, kind="model")
    _write_archive(filepath, document, arrays, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Write only ``model``'s weights (same zip format, ``"kind": "weights"``)."""
    document, arrays = _describe(model, kind="weights")
    _write_archive(filepath, document, arrays, overwrite)


def load_model(filepath, custom_objects=None, compile=True):
    """Read a model written by ``Model.save``.

    Returns a model with the saved weights that predicts identically; when it
    was compiled (and ``compile`` is true) it comes back compiled with the
    optimizer's state and step count restored, so ``fit(..., shuffle=False)``
    continues bitwise as if it had never been saved. Only fastnn's own layer,
    optimizer, loss, metric and schedule classes are built, plus the classes
    the caller passes in ``custom_objects`` (a dict, class name -> class).
    Raises ValueError when the file is not a valid fastnn model.
    """
    custom = _check_custom_objects(custom_objects)
    path = _as_path(filepath)
    with _reading(path), _Archive(path) as archive:
        document = archive.document
        if document["kind"] != "model":
            raise ValueError("it holds weights only (written by save_weights): build the "
                             "model, then call model.load_weights(path)")
        weight_specs = _array_specs(document, "weights")
        compile_spec = document.get("compile") if compile else None
        state_specs = _array_specs(document, "optimizer_state") if compile_spec else []
        archive.check_entries(_entries("weights", weight_specs) +
                              _entries("optimizer", state_specs))
        model = _build_model(document.get("model"), custom,
                             budget=sum(math.prod(s["shape"]) for s in weight_specs))
        targets = _match_weights(model, weight_specs, by_name=True)
        compile_args = _compile_args(compile_spec, custom) if compile_spec else None
        weights = _read_arrays(archive, "weights", weight_specs)
        state = _read_arrays(archive, "optimizer", state_specs)
        if compile_args is not None:
            optimizer, loss, metrics, iterations = compile_args
            model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
            slots = _match_state(model, state_specs)
        # Everything is read and checked: from here on nothing can fail.
        for weight, array in zip(targets, weights):
            np.copyto(weight.value, array)
        if compile_args is not None:
            for slot, array in zip(slots, state):
                np.copyto(slot, array)
            model.optimizer.iterations = iterations
    return model


def load_weights(model, filepath):
    """Copy the weights in ``filepath`` (from save_weights or save) into ``model``.

    The model must have the same architecture (weights matched in order, as
    ``set_weights``) and be built. Every array is read and checked first, so a
    mismatch raises ValueError naming the layer and shapes and changes nothing.
    """
    path = _as_path(filepath)
    if not model.built:
        raise ValueError(f"{model.name}: build the model before load_weights (give the first "
                         "layer input_shape=, start with layers.Input, or call model.build)")
    with _reading(path), _Archive(path) as archive:
        specs = _array_specs(archive.document, "weights")
        archive.check_entries(_entries("weights", specs))
        targets = _match_weights(model, specs, by_name=False)
        arrays = _read_arrays(archive, "weights", specs)
    for weight, array in zip(targets, arrays):
        np.copyto(weight.value, array)


def model_config(model):
    """The model's architecture as JSON-able data (Keras' ``get_config``)."""
    return {
        "name": model.name,
        "input_shape": None if model._input_shape is None else list(model._input_shape),
        "layers": [_layer_spec(layer) for layer in model.layers],
    }


def model_from_config(config, custom_objects=None, model_class=None):
    """A new, uncompiled model from ``model_config``'s dict (only known layer types).

    ``model_class`` is the class to build (default: Sequential).
    """
    custom = _check_custom_objects(custom_objects)
    if model_class is None:
        model_class = _model_classes()["Sequential"]
    return _model_from_config(model_class, config, custom)


# ============================================================================
# Describing a model as data
# ============================================================================
def _describe(model, kind):
    """The model.json document and the list of (entry name, array) to write."""
    weights = [(layer, w) for layer in model.layers for w in layer.weights]
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "fastnn_version": _version.__version__,
        "model": {"class_name": type(model).__name__, "config": model_config(model)},
        "compile": None,
        "weights": [{"layer": layer.name, "name": w.name, **_array_meta(w.value)}
                    for layer, w in weights],
        "optimizer_state": [],
    }
    arrays = [(f"weights/{i}.npy", w.value) for i, (_, w) in enumerate(weights)]
    if kind == "model" and model.optimizer is not None:
        document["compile"] = _compile_spec(model)
        state = _optimizer_state(model)
        document["optimizer_state"] = [{"name": name, **_array_meta(value)}
                                       for name, value in state.items()]
        arrays += [(f"optimizer/{i}.npy", value) for i, value in enumerate(state.values())]
    return document, arrays


def _array_meta(array):
    return {"shape": list(array.shape), "dtype": array.dtype.name}


def _layer_spec(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _compile_spec(model):
    optimizer = model.optimizer
    return {
        "optimizer": {"class_name": type(optimizer).__name__,
                      "config": _optimizer_config(optimizer),
                      "iterations": int(optimizer.iterations)},
        "loss": None if model.loss is None else _losses.serialize(model.loss),
        "metrics": [m if isinstance(m, str) else {"class_name": type(m).__name__,
                                                  "config": m.get_config()}
                    for m in model._metric_ids],
    }


def _optimizer_config(optimizer):
    config = optimizer.get_config()
    lr = optimizer.learning_rate
    if callable(lr):
        if not hasattr(lr, "get_config"):
            raise ValueError(f"cannot save optimizer {optimizer.name!r}: its learning rate is a "
                             f"Python callable ({lr!r}); only schedule objects (fastnn."
                             "optimizers.schedules, or classes with get_config) can be saved")
        config["learning_rate"] = {"class_name": type(lr).__name__, "config": lr.get_config()}
    return config


def _optimizer_state(model):
    """The optimizer's state arrays, when they belong to the model's current packing.

    After pop()/add(), or once the layers were packed into another model, the
    state no longer matches the layers; it is left out, as compile() would
    reset it (the step count is kept, as compile() keeps it).
    """
    if model._params is None or tuple(model.layers) != model._compiled_layers:
        return {}
    if any(getattr(layer, "_packed_into", None) is not model for layer in model.layers):
        return {}
    return model.optimizer.variables()


# ============================================================================
# Writing
# ============================================================================
def _write_archive(filepath, document, arrays, overwrite):
    path = _as_path(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    try:
        text = json.dumps(document, indent=1, allow_nan=False, default=_json_scalar)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot save to {path}: the configuration is not JSON data "
                         f"({error})") from error

    payload = text.encode("utf-8")

    def write(stream):
        with zipfile.ZipFile(stream, "w") as archive:
            _write_entry(archive, MODEL_JSON, zipfile.ZIP_DEFLATED,
                         lambda out: out.write(payload), len(payload))
            for name, array in arrays:
                array = np.ascontiguousarray(array, dtype=_ARRAY_DTYPES[array.dtype.name])
                _write_entry(archive, name, zipfile.ZIP_STORED,
                             lambda out, a=array: np.lib.format.write_array(
                                 out, a, allow_pickle=False), array.nbytes)

    _replace_atomically(path, write)


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


def _write_entry(archive, name, compression, write, size):
    # A fixed timestamp makes saving the same model twice give the same bytes.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    with archive.open(info, "w", force_zip64=size > _ZIP64_LIMIT) as out:
        write(out)


def _replace_atomically(path, write):
    """Call ``write(stream)`` on a new file beside ``path``, then move it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    for _ in range(100):
        temp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            # mode 0o666 then the umask: the file gets the user's usual permissions
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file in {directory}")
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX; a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ============================================================================
# Reading
# ============================================================================
@contextlib.contextmanager
def _reading(path):
    """Prefix every ValueError about the file's contents with the file's name."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"cannot load {path}: {error}") from error


# What zipfile and zlib raise on a damaged archive (RuntimeError: an encrypted
# entry; NotImplementedError: an unknown compression method).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            OverflowError)


class _Archive:
    """An open, checked model file: its parsed ``document`` and its array entries."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "rb")      # a missing file is FileNotFoundError, as usual
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            try:
                self._zip = zipfile.ZipFile(self._file)
            except _DAMAGED + (ValueError, OSError) as error:
                raise ValueError(f"not a fastnn model file, or truncated (not a readable zip: "
                                 f"{error})") from None
            self._entries = self._index()
            self.document = self._read_document()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        zf = getattr(self, "_zip", None)
        if zf is not None:
            zf.close()
        self._file.close()

    def _index(self):
        infos = self._zip.infolist()
        entries = {info.filename: info for info in infos}
        if len(entries) != len(infos):
            raise ValueError("the zip has duplicate entry names (tampered)")
        return entries

    def _read_document(self):
        info = self._entries.get(MODEL_JSON)
        if info is None:
            raise ValueError(f"not a fastnn model file (the zip has no {MODEL_JSON})")
        if info.file_size > _MAX_JSON_BYTES:
            raise ValueError(f"{MODEL_JSON} declares {info.file_size} bytes, over the "
                             f"{_MAX_JSON_BYTES}-byte limit")
        raw = self._read_entry(info, _MAX_JSON_BYTES + 1)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"{MODEL_JSON} is not valid JSON ({error})") from None
        _check_document(document)
        return document

    def _read_entry(self, info, limit):
        _check_not_encrypted(info)
        try:
            with self._zip.open(info) as stream:
                return stream.read(limit)
        except _DAMAGED + (OSError,) as error:
            raise ValueError(f"entry {info.filename} is damaged ({error})") from None

    def check_entries(self, entries):
        """Check every array entry's size and storage before anything is read.

        ``entries`` lists (entry name, declared bytes, description). Together
        the entries must fit in the file: memory used while reading is then
        bounded by the file's size, whatever its headers claim.
        """
        total = 0
        for name, nbytes, what in entries:
            info = self._entries.get(name)
            if info is None:
                raise ValueError(f"{what}: entry {name} is missing (truncated or tampered file)")
            _check_not_encrypted(info)
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{what}: entry {name} is compressed; fastnn stores arrays "
                                 "uncompressed (a compressed entry could expand far beyond "
                                 "the file)")
            if not nbytes < info.file_size <= nbytes + _NPY_HEADER_ALLOWANCE:
                raise ValueError(f"{what}: entry {name} declares {info.file_size} bytes, but "
                                 f"its shape and dtype need {nbytes} bytes of data (tampered "
                                 "or oversized file)")
            if info.header_offset + info.compress_size > self.size:
                raise ValueError(f"{what}: entry {name} runs past the end of the file "
                                 "(truncated file)")
            total += info.file_size
        if total > self.size:
            raise ValueError(f"the arrays declare {total} bytes in all but the file has "
                             f"{self.size} (overlapping entries: tampered file)")

    def read_array(self, name, shape, dtype, what):
        """The array stored in entry ``name``; it must have ``shape``, ``dtype`` and be finite."""
        info = self._entries[name]
        try:
            with self._zip.open(info) as stream:
                _check_npy_header(stream, shape, dtype)
            with self._zip.open(info) as stream:
                array = np.load(stream, allow_pickle=False, max_header_size=_NPY_MAX_HEADER)
                trailing = stream.read(1)     # reaching the end also checks the CRC
        except _DAMAGED + (OSError,) as error:
            raise ValueError(f"{what}: entry {name} is damaged ({error})") from None
        except ValueError as error:
            raise ValueError(f"{what}: entry {name}: {error}") from None
        if trailing or array.shape != shape or array.dtype != dtype:
            raise ValueError(f"{what}: entry {name} does not hold exactly a {dtype.name} "
                             f"array of shape {shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{what}: entry {name} contains NaN or inf")
        return array


def _check_not_encrypted(info):
    if info.flag_bits & 0x1:
        raise ValueError(f"entry {info.filename} is encrypted; fastnn files never are")


def _check_npy_header(stream, shape, dtype):
    """Refuse an .npy entry whose header is not exactly the manifest's array.

    np.load allocates what the header declares before reading the data, so the
    header is checked first; object dtypes (pickles) never get as far as np.load.
    """
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(stream, max_header_size=_NPY_MAX_HEADER)
    elif version == (2, 0):
        header = np.lib.format.read_array_header_2_0(stream, max_header_size=_NPY_MAX_HEADER)
    else:
        raise ValueError(f"not a valid .npy array (unsupported version {version})")
    stored_shape, fortran_order, stored_dtype = header
    if stored_shape != shape or stored_dtype != dtype or fortran_order:
        raise ValueError(f"the file's manifest says a {dtype.name} array of shape "
                         f"{shape}, but the entry holds {stored_dtype} of shape {stored_shape}"
                         f"{' (Fortran order)' if fortran_order else ''}")


# ---- the document ------------------------------------------------------------
def _check_document(document):
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a fastnn model file ({MODEL_JSON} does not say format "
                         f"{FORMAT!r})")
    version = document.get("format_version")
    if type(version) is not int:
        raise ValueError(f"format_version must be an integer, got {version!r}")
    if version != FORMAT_VERSION:
        raise ValueError(f"format version {version} is not supported (this fastnn "
                         f"{_version.__version__} reads version {FORMAT_VERSION}"
                         f"{'; upgrade fastnn' if version > FORMAT_VERSION else ''})")
    if document.get("kind") not in ("model", "weights"):
        raise ValueError(f"kind must be 'model' or 'weights', got {document.get('kind')!r}")


def _array_specs(document, key):
    """The manifest list ``key``, checked: each entry's shape (tuple) and numpy dtype."""
    specs = document.get(key, [])
    if not isinstance(specs, list):
        raise ValueError(f"{key} must be a list")
    checked = []
    for i, spec in enumerate(specs):
        where = f"{key}[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be an object")
        shape = spec.get("shape")
        if (not isinstance(shape, list)
                or not all(type(d) is int and 0 <= d < 1 << 62 for d in shape)):
            raise ValueError(f"{where}: shape must be a list of non-negative integers, "
                             f"got {shape!r}")
        dtype = _ARRAY_DTYPES.get(spec.get("dtype"))
        if dtype is None:
            raise ValueError(f"{where}: dtype must be one of {sorted(_ARRAY_DTYPES)}, "
                             f"got {spec.get('dtype')!r}")
        name, layer = spec.get("name"), spec.get("layer", "")
        if not isinstance(name, str) or not isinstance(layer, str):
            raise ValueError(f"{where}: name and layer must be strings")
        what = (f"layer {layer!r} weight {name!r}" if key == "weights"
                else f"optimizer state {name!r}")
        checked.append({"layer": layer, "name": name, "shape": tuple(shape), "dtype": dtype,
                        "what": what})
    return checked


def _entries(prefix, specs):
    return [(f"{prefix}/{i}.npy", math.prod(s["shape"]) * s["dtype"].itemsize, s["what"])
            for i, s in enumerate(specs)]


def _read_arrays(archive, prefix, specs):
    return [archive.read_array(f"{prefix}/{i}.npy", s["shape"], s["dtype"], s["what"])
            for i, s in enumerate(specs)]


def _match_weights(model, specs, by_name):
    """The model's Weight objects, in order, each checked against its manifest entry.

    ``by_name``: also require the layer and weight names to match (load_model,
    whose model was built from the same file); load_weights matches by order.
    """
    pairs = [(layer, w) for layer in model.layers for w in layer.weights]
    if len(pairs) != len(specs):
        raise ValueError(f"the file holds {len(specs)} weight arrays but model {model.name!r} "
                         f"has {len(pairs)} (a different architecture)")
    for (layer, weight), spec in zip(pairs, specs):
        if by_name and (layer.name, weight.name) != (spec["layer"], spec["name"]):
            raise ValueError(f"the manifest lists {spec['what']} where the architecture has "
                             f"layer {layer.name!r} weight {weight.name!r}")
        if weight.shape != spec["shape"] or weight.value.dtype.name != spec["dtype"].name:
            raise ValueError(f"layer {layer.name!r}: weight {weight.name!r} is "
                             f"{weight.value.dtype.name} of shape {weight.shape}, but the file "
                             f"has {spec['dtype'].name} of shape {spec['shape']} (from layer "
                             f"{spec['layer']!r})")
    return [weight for _, weight in pairs]


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


# ---- building objects from their descriptions ------------------------------
def _check_custom_objects(custom_objects):
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict (class name -> class), got "
                        f"{type(custom_objects).__name__}")
    for name, cls in custom_objects.items():
        if not isinstance(name, str) or not isinstance(cls, type):
            raise TypeError(f"custom_objects must map class names to classes; got "
                            f"{name!r}: {cls!r}")
    return dict(custom_objects)


def _classes_in(module, base):
    """The public classes ``module`` itself defines that derive from ``base``."""
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
            and obj.__module__ == module.__name__ and not name.startswith("_")}


def _model_classes():
    from fastnn import models       # here: fastnn.models imports this module
    return {"Sequential": models.Sequential, "Model": models.Model}


def _schedule_classes():
    try:
        schedules = importlib.import_module("fastnn.schedules")
    except ImportError:
        return {}, object
    base = getattr(schedules, "LearningRateSchedule", object)
    return _classes_in(schedules, base), base


def _class_for(kind, spec, builtin, base, custom):
    """The class ``spec["class_name"]`` names: the caller's custom_objects, else fastnn's own."""
    if not isinstance(spec, dict):
        raise ValueError(f"a {kind} must be described by an object, got {type(spec).__name__}")
    name = spec.get("class_name")
    if not isinstance(name, str):
        raise ValueError(f"a {kind}'s class_name must be a string, got {name!r}")
    cls = custom.get(name, builtin.get(name))
    if cls is None:
        raise ValueError(f"unknown {kind} class {name!r}: fastnn builds only its own {kind} "
                         f"classes ({', '.join(sorted(builtin))}) and those passed in "
                         "custom_objects")
    if not issubclass(cls, base):
        raise ValueError(f"custom_objects[{name!r}] is not a {base.__name__}")
    return cls


def _config_of(kind, spec):
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{kind} {spec['class_name']!r}: config must be an object")
    return config


def _construct(what, make, argument):
    """``make(argument)``, any failure a ValueError that starts with ``what``.

    The argument comes from the file, so a constructor, ``add`` or ``build``
    may reject it any way it likes; the caller gets one kind of error, saying why.
    """
    try:
        return make(argument)
    except Exception as error:
        raise ValueError(f"{what} ({type(error).__name__}: {error})") from None


def _from_config(kind, cls, config):
    """An instance of ``cls`` from its config (``from_config`` when it has one)."""
    make = getattr(cls, "from_config", None) or (lambda c: cls(**c))
    return _construct(f"{kind} {cls.__name__} cannot be built from {_short(config)}",
                      make, config)


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...}"


def _build_model(spec, custom, budget):
    """The model ``spec`` describes, its layers creating at most ``budget`` weight values."""
    cls = _class_for("model", spec, _model_classes(), _model_classes()["Model"], custom)
    token = weight_budget.set([budget])
    try:
        return _model_from_config(cls, _config_of("model", spec), custom)
    finally:
        weight_budget.reset(token)


def _model_from_config(model_class, config, custom):
    if not isinstance(config, dict):
        raise ValueError("a model config must be an object")
    name, input_shape, layer_specs = (config.get("name"), config.get("input_shape"),
                                      config.get("layers", []))
    if name is not None and not isinstance(name, str):
        raise ValueError(f"the model's name must be a string, got {name!r}")
    if not isinstance(layer_specs, list):
        raise ValueError("the model config's layers must be a list")
    if input_shape is not None and (not isinstance(input_shape, list) or not all(
            type(d) is int and d >= 1 for d in input_shape)):
        raise ValueError(f"input_shape must be a list of positive integers, got {input_shape!r}")
    model = model_class(name=name)
    for i, spec in enumerate(layer_specs):
        cls = _class_for("layer", spec, _layers.LAYER_CLASSES, Layer, custom)
        layer = _from_config("layer", cls, _config_of("layer", spec))
        _construct(f"layer {i} ({layer.name!r}) cannot be added", model.add, layer)
    if input_shape is not None:
        if not model.built:
            _construct(f"the model cannot be built for inputs {tuple(input_shape)}",
                       model.build, tuple(input_shape))
        elif list(model._input_shape) != input_shape:
            raise ValueError(f"the model's input_shape {input_shape} disagrees with its first "
                             f"layer's {list(model._input_shape)}")
    return model


def _compile_args(spec, custom):
    """(optimizer, loss, metrics, iterations) from the file's compile description."""
    if not isinstance(spec, dict):
        raise ValueError("compile must be an object or null")
    opt_spec = spec.get("optimizer")
    cls = _class_for("optimizer", opt_spec, _classes_in(_optimizers, _optimizers.Optimizer),
                     _optimizers.Optimizer, custom)
    config = dict(_config_of("optimizer", opt_spec))
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = _schedule(config["learning_rate"], custom)
    optimizer = _construct(f"optimizer {cls.__name__} cannot be built from {_short(config)}",
                           lambda c: cls(**c), config)
    iterations = opt_spec.get("iterations", 0)
    if type(iterations) is not int or iterations < 0:
        raise ValueError(f"optimizer iterations must be an integer >= 0, got {iterations!r}")
    loss = None
    if spec.get("loss") is not None:
        loss_cls = _class_for("loss", spec["loss"], _classes_in(_losses, _losses.Loss),
                              _losses.Loss, custom)
        loss = _from_config("loss", loss_cls, _config_of("loss", spec["loss"]))
    metrics = spec.get("metrics", [])
    if not isinstance(metrics, list):
        raise ValueError("metrics must be a list")
    return optimizer, loss, [_metric(m, custom) for m in metrics], iterations


def _schedule(spec, custom):
    builtin, base = _schedule_classes()
    cls = _class_for("learning-rate schedule", spec, builtin, base, custom)
    return _from_config("learning-rate schedule", cls, _config_of("schedule", spec))


def _metric(spec, custom):
    if isinstance(spec, str):
        return spec            # a name: compile() resolves and checks it
    cls = _class_for("metric", spec, _classes_in(_metrics, _metrics.Metric), _metrics.Metric,
                     custom)
    return _from_config("metric", cls, _config_of("metric", spec))


def _as_path(filepath):
    path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
    if not isinstance(path, str):
        raise TypeError(f"expected a file path (str or os.PathLike), got "
                        f"{type(filepath).__name__}")
    return path
