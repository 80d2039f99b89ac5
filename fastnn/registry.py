"""The classes a saved file may name, by kind ("layer", "model") and class name.

The loader builds only what is registered here (plus a caller's
custom_objects), so a file can never make fastnn import or run anything else.
Modules register their own classes when they are imported (fastnn.layers its
layers, fastnn.models Sequential and the functional Model), which also keeps
the saving code free of imports of the modules that use it.
"""
_REGISTRY = {"layer": {}, "model": {}}


def register(kind, name, cls):
    """Make ``cls`` loadable as a ``kind`` under ``name``."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(_REGISTRY)}")
    _REGISTRY[kind][name] = cls


def classes(kind):
    """{name: class} of everything registered as ``kind`` (a copy)."""
    return dict(_REGISTRY[kind])
