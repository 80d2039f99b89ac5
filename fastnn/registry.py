"""The classes (and functions) a saved file may name.

The loader builds only what is known here -- fastnn's own layers and models,
registered by their modules when imported, and what you register with
``register_keras_serializable`` -- plus a caller's ``custom_objects``, so a
file can never make fastnn import or run anything else. Keeping the registry
here also keeps the saving code free of imports of the modules that use it.
"""
_REGISTRY = {"layer": {}, "model": {}}
_CUSTOM = {}            # "package>name" -> class or function
_CUSTOM_NAMES = {}      # id(object) -> "package>name"


def register(kind, name, cls):
    """Make fastnn's own ``cls`` loadable as a ``kind`` under ``name``."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(_REGISTRY)}")
    _REGISTRY[kind][name] = cls


def classes(kind):
    """{name: class} of fastnn's own classes registered as ``kind`` (a copy)."""
    return dict(_REGISTRY[kind])


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
    caller's ``custom_objects`` first (by the full or the plain name), then the
    registered objects; None when unknown."""
    custom_objects = custom_objects or {}
    plain = name.split(">", 1)[-1]
    for candidate in (name, plain):
        if candidate in custom_objects:
            return custom_objects[candidate]
    return _CUSTOM.get(name)
