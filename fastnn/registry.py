"""The one registry of what may be named: by a string, in a serialize() dict, in a file.

Every kind of object fastnn looks up by name -- activations, initializers,
layers, losses, metrics, models, optimizers, regularizers and learning-rate
schedules -- is found here, and only here:

- its module registers fastnn's own classes under their class names (what a
  ``{"class_name": ..., "config": {...}}`` dict and a saved file name) and the
  string identifiers Keras accepts (``"mse"``, ``"adam"``, ``"relu"``,
  ``"l1_l2"``), each standing for a class, a function or a factory;
- ``register_keras_serializable`` adds your classes and functions under
  ``"package>name"``, and ``custom_objects`` (an argument, or
  ``custom_objects_in_scope`` while a model is being built) adds more by name.

Each module's ``get`` / ``serialize`` / ``deserialize`` and the model loader
use the same lookups (``lookup``, ``class_for``, ``function_for``,
``deserialize``), so a name means the same everywhere, and a file can never
make fastnn import or run anything that is not registered or passed in.
Unknown names are a ValueError naming the kind, the name and the close
matches. This module imports no other part of fastnn, so any module can use it.
"""
import contextlib
import contextvars
import difflib

# The kinds, and how messages call them.
KINDS = {
    "activation": "activation", "initializer": "initializer", "layer": "layer",
    "loss": "loss", "metric": "metric", "model": "model", "optimizer": "optimizer",
    "regularizer": "regularizer", "schedule": "learning-rate schedule",
}
_CLASSES = {kind: {} for kind in KINDS}       # class name -> fastnn's own class
_IDENTIFIERS = {kind: {} for kind in KINDS}   # string identifier -> class / function / factory
_CUSTOM = {}            # "package>name" -> class or function
_CUSTOM_NAMES = {}      # id(object) -> "package>name"
# custom_objects in force while a model or object is being built (per thread and task)
_scope = contextvars.ContextVar("fastnn_custom_objects", default={})


class UnknownNameError(ValueError):
    """A name that no registry, custom object or identifier knows (a ValueError)."""


def _label(kind):
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    return KINDS[kind]


# ---- registering fastnn's own -------------------------------------------------------
def register(kind, name, cls):
    """Make fastnn's own ``cls`` buildable as a ``kind`` from a dict or file that
    names class ``name``."""
    _label(kind)
    _CLASSES[kind][name] = cls


def register_identifier(kind, identifier, obj):
    """Make the string ``identifier`` stand for ``obj`` (a class, a function or a
    factory of no arguments) in the ``kind`` module's ``get``."""
    _label(kind)
    _IDENTIFIERS[kind][identifier] = obj


def classes(kind):
    """{name: class} of fastnn's own classes registered as ``kind`` (a copy)."""
    _label(kind)
    return dict(_CLASSES[kind])


def identifiers(kind):
    """{identifier: object} of the string identifiers of ``kind`` (a copy, in the
    order they were registered)."""
    _label(kind)
    return dict(_IDENTIFIERS[kind])


def identifier_of(kind, obj):
    """The first string identifier registered for ``obj`` (None when it has none)."""
    _label(kind)
    return next((name for name, known in _IDENTIFIERS[kind].items() if known is obj), None)


def is_nameable(kind, cls):
    """Whether ``cls`` can be written by name: fastnn's own ``kind`` class, or
    registered with register_keras_serializable."""
    _label(kind)
    return id(cls) in _CUSTOM_NAMES or any(cls is c for c in _CLASSES[kind].values())


# ---- your own: register_keras_serializable and custom_objects -------------------------
def register_keras_serializable(package="Custom", name=None):
    """Keras' decorator: register a class (a layer, model, loss, metric...) or a
    function (a loss, a metric) under ``"package>name"`` (name: its own), so that a
    saved model using it loads without ``custom_objects``."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_keras_serializable: package must be a string without "
                         f"'>', got {package!r}")

    def decorate(obj):
        key = f"{package}>{name or obj.__name__}"
        if key in _CUSTOM and _CUSTOM[key] is not obj:
            raise ValueError(f"{key!r} is already registered to {_CUSTOM[key]!r}")
        _CUSTOM[key] = obj
        _CUSTOM_NAMES[id(obj)] = key
        return obj
    return decorate


def get_registered_name(obj):
    """The name a file records for ``obj``: its registered ``package>name``, else its
    own name."""
    return _CUSTOM_NAMES.get(id(obj), getattr(obj, "__name__", type(obj).__name__))


def get_registered_object(name, custom_objects=None):
    """What ``name`` (a registered ``package>name``, or a plain name) stands for: the
    caller's ``custom_objects`` first (by the full or the plain name), then those in
    scope (custom_objects_in_scope), then the registered objects; None when unknown."""
    plain = name.split(">", 1)[-1]
    for table in (custom_objects or {}, _scope.get()):
        for candidate in (name, plain):
            if candidate in table:
                return table[candidate]
    return _CUSTOM.get(name)


@contextlib.contextmanager
def custom_objects_in_scope(custom_objects):
    """Within the block, ``custom_objects`` (name -> class or function) are known to
    every lookup, as Keras' custom object scope: a layer's from_config that
    deserializes an initializer, or a loss wrapper that looks up its function,
    finds what the caller of load_model passed."""
    token = _scope.set({**_scope.get(), **(custom_objects or {})})
    try:
        yield
    finally:
        _scope.reset(token)


# ---- lookups ----------------------------------------------------------------------------
def lookup(kind, identifier, custom_objects=None):
    """What the string ``identifier`` names as a ``kind``: custom objects first,
    then fastnn's identifiers ("mse"), then its class names ("MeanSquaredError")."""
    label = _label(kind)
    if not isinstance(identifier, str):
        raise ValueError(f"a {label} name must be a string, got {identifier!r}")
    found = get_registered_object(identifier, custom_objects)
    if found is None:
        found = _IDENTIFIERS[kind].get(identifier, _CLASSES[kind].get(identifier))
    if found is None:
        raise UnknownNameError(f"unknown {label} {identifier!r}{_close_matches(kind, identifier)}; "
                         f"known: {', '.join(_known(kind))} (or one registered with "
                         "register_keras_serializable or passed in custom_objects)")
    return found


def class_for(kind, name, custom_objects=None, base=None):
    """The class a dict or file names ``name`` as a ``kind``: the caller's
    custom_objects, those in scope, the registered ones, then fastnn's own. With
    ``base``, it must derive from it."""
    label = _label(kind)
    if not isinstance(name, str):
        raise ValueError(f"a {label}'s class_name must be a string, got {name!r}")
    cls = get_registered_object(name, custom_objects) or _CLASSES[kind].get(name)
    if cls is None:
        raise UnknownNameError(f"unknown {label} class {name!r}{_close_matches(kind, name, True)}: "
                         f"fastnn builds only its own {label} classes "
                         f"({', '.join(sorted(_CLASSES[kind]))}), those registered with "
                         "keras.saving.register_keras_serializable and those passed in "
                         "custom_objects (class name -> class)")
    if not isinstance(cls, type):
        raise ValueError(f"{name!r} names {cls!r}, which is not a class")
    if base is not None and not issubclass(cls, base):
        raise ValueError(f"{name!r} names {cls.__name__}, which is not a {base.__name__}")
    return cls


def spec_class(kind, spec, custom_objects=None, base=None):
    """The class a ``serialize`` dict names (``class_for`` its ``class_name``, or
    the ``registered_name`` a Keras 3 dict carries)."""
    if not isinstance(spec, dict):
        raise ValueError(f"a {_label(kind)} must be described by an object {{'class_name': "
                         f"..., 'config': {{...}}}}, got {type(spec).__name__} {_short(spec)}")
    return class_for(kind, spec.get("registered_name") or spec.get("class_name"),
                     custom_objects, base)


def function_wrapper_from_config(cls, config):
    """``cls(fn, **rest)`` for a loss or metric wrapper's config, its function
    looked up by the name the file recorded (function_for)."""
    config = dict(config)
    fn = config.pop("fn", None)
    return cls(fn if callable(fn) else function_for(fn), **config)


def function_for(name, custom_objects=None):
    """The function a loss or metric wrapper saved by ``name`` (never imported)."""
    fn = get_registered_object(name, custom_objects) if isinstance(name, str) else None
    if fn is None or not callable(fn):
        raise UnknownNameError(f"unknown function {name!r}: a loss or metric function is saved by "
                         "name only; pass it in custom_objects={name: function} or register it "
                         "with keras.saving.register_keras_serializable")
    return fn


def _known(kind):
    return sorted(set(_IDENTIFIERS[kind]) | set(_CLASSES[kind]))


def _close_matches(kind, name, classes_only=False):
    choices = _CLASSES[kind] if classes_only else _known(kind)
    close = difflib.get_close_matches(name, list(choices), n=3)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


# ---- serialize / deserialize ------------------------------------------------------------
def serialize(obj):
    """Keras' description of an object: ``{"class_name": ..., "config": get_config()}``
    (a registered class by its ``package>name``)."""
    return {"class_name": get_registered_name(type(obj)), "config": obj.get_config()}


def deserialize(kind, spec, custom_objects=None, base=None):
    """The object a ``serialize`` dict describes, built by its class's
    ``from_config`` (else its constructor) with ``custom_objects`` in scope.

    Keras 3's longer dicts are read too (``module`` is ignored; a
    ``registered_name`` is the name to look up). Any failure to build is a
    ValueError that names the class and the config (an unknown name inside the
    config: the lookup's own UnknownNameError).
    """
    label = _label(kind)
    cls = spec_class(kind, spec, custom_objects, base)
    config = spec.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"{label} {cls.__name__}: config must be a dict, got {config!r}")
    make = getattr(cls, "from_config", None) or (lambda c: cls(**c))
    with custom_objects_in_scope(custom_objects):
        try:
            return make(dict(config))
        except UnknownNameError:
            raise                  # a name inside the config: that error says it all
        except Exception as error:
            raise ValueError(f"{label} {cls.__name__} cannot be built from {_short(config)} "
                             f"({type(error).__name__}: {error})") from None


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...}"
