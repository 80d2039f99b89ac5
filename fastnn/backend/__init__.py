"""Backends: the Ops contract, its NumPy reference and its compiled implementation.

``current_ops()`` resolves the backend per call (see fastnn.set_backend), so a
change takes effect on the next call of every model.
"""
import os

from fastnn import _runtime
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import Ops

_instances = {}


def _make_compiled():
    from fastnn._ext import _core
    from fastnn.backend.compiled_ops import CompiledOps

    wanted = os.environ.get("FASTNN_ISA", "").strip().lower()
    if wanted:
        if wanted not in _core.ISA_NAMES:
            raise ValueError(f"FASTNN_ISA={wanted!r}; expected one of {list(_core.ISA_NAMES)}")
        if not _core.isa_supported(wanted):
            raise ValueError(f"FASTNN_ISA={wanted!r}: this CPU does not support it "
                             f"(best: {_core.isa_best()!r})")
        _core.isa_select(wanted)
    return CompiledOps()


def get_ops(name):
    """The (shared, stateless) Ops instance of the named backend."""
    ops = _instances.get(name)
    if ops is None:
        ops = NumpyOps() if name == "numpy" else _make_compiled()
        _instances[name] = ops
    return ops


def current_ops():
    """The Ops of the backend in force now (one dict lookup once it is resolved:
    every kernel call from fastnn.ops and the layers goes through here)."""
    ops = _instances.get(_runtime.settings.backend)
    return ops if ops is not None else get_ops(_runtime.get_backend())


__all__ = ["Ops", "NumpyOps", "current_ops", "get_ops"]
