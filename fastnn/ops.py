"""``fastnn.ops``: the current backend's kernels, for your own arrays.

Every attribute resolves against the backend in force when it is looked up,
e.g. ``fastnn.ops.gemm(a, b, transpose_b=True, bias=b0, activation="relu")``.
See fastnn.backend.ops.Ops for the methods and their contracts.
"""
from fastnn.backend import current_ops as _current_ops
from fastnn.backend.ops import Ops as _Ops

_PUBLIC = [name for name in vars(_Ops) if not name.startswith("_") and callable(getattr(_Ops, name))]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(_current_ops(), name)
    raise AttributeError(f"module 'fastnn.ops' has no attribute {name!r}")


def __dir__():
    return sorted(_PUBLIC)
