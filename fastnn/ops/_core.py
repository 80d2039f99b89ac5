"""What every op module shares: dtypes, broadcast shapes, axes, scratch buffers.

Shapes here include the batch axis, None where a size is not known until the
model runs (an op's output spec is computed from its inputs' specs).
"""
import numpy as np

from fastnn import _runtime
from fastnn.graph.operation import as_array, is_symbolic
from fastnn.graph.tensor import KerasTensor


# A Python float next to a tensor is "weak" (Keras): it takes the tensor's float
# dtype, and makes an integer tensor's result the default float.
WEAK_FLOAT = object()


def dtype_of(x):
    """The dtype ``x`` computes in: a tensor's or weight's; None for a Python int or
    bool and WEAK_FLOAT for a Python float (weak: they adapt to the other operand)."""
    if isinstance(x, KerasTensor) or getattr(x, "is_weight", False):
        return np.dtype(x.dtype)
    if isinstance(x, float) and not isinstance(x, np.generic):
        return WEAK_FLOAT
    if isinstance(x, (bool, int)) and not isinstance(x, np.generic):
        return None
    return np.asarray(x).dtype


def result_dtype(*dtypes):
    """Keras' promotion, as far as fastnn needs it: floats win (the widest),
    integers with no float give int64 (the default float with a weak float), bool
    alone stays bool."""
    strong = [d for d in dtypes if d is not None and d is not WEAK_FLOAT]
    weak_float = any(d is WEAK_FLOAT for d in dtypes)
    floats = [d for d in strong if d.kind == "f"]
    if floats:
        return max(floats, key=lambda d: d.itemsize)
    if weak_float:
        return np.dtype(_runtime.floatx())
    if any(d.kind in "iu" for d in strong):
        return np.dtype(np.int64)
    if strong:
        return strong[0]
    return np.dtype(_runtime.floatx())


def weak_scalars(values, dtype):
    """Python numbers among ``values`` as 0-d arrays of ``dtype`` (Keras' weak typing:
    ``x * 2`` keeps x's dtype)."""
    return [np.asarray(v, dtype=dtype) if _is_weak(v) else v for v in values]


def _is_weak(value):
    d = dtype_of(value)
    return d is None or d is WEAK_FLOAT


def float_dtype(dtype):
    """``dtype`` if it is a float, else the default float (an op that needs floats)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(_runtime.floatx())


def broadcast_shapes(*shapes, where="broadcast"):
    """NumPy's broadcast of shapes that may hold None (unknown sizes)."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        sizes = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        known = {d for d in sizes if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"{where}: shapes {list(shapes)} cannot be broadcast together")
        if known:
            out.append(known.pop())
        elif None in sizes:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def normalize_axis(axis, rank, where):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{where}: axis must be an integer, got {axis!r}")
    if not -rank <= axis < rank:
        raise ValueError(f"{where}: axis {axis} is out of range for a tensor of rank {rank}")
    return int(axis) % rank


def normalize_axes(axis, rank, where):
    """A sorted tuple of distinct non-negative axes (None: every axis)."""
    if axis is None:
        return tuple(range(rank))
    items = axis if isinstance(axis, (list, tuple)) else (axis,)
    axes = tuple(sorted(normalize_axis(a, rank, where) for a in items))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{where}: repeated axis in {axis!r}")
    return axes


def buffer(ws, key, shape, dtype):
    """A scratch array from the workspace (None outside a model: the op allocates)."""
    return None if ws is None else ws.buffer(key, shape, dtype)


def contiguous(x):
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


__all__ = ["KerasTensor", "as_array", "broadcast_shapes", "buffer", "contiguous", "dtype_of",
           "float_dtype", "is_symbolic", "normalize_axes", "normalize_axis", "result_dtype",
           "weak_scalars"]
