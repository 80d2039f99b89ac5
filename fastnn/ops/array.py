"""Moving data: reshape, transpose, expand_dims, squeeze, slicing, concatenate,
stack, split, take, take_along_axis, one_hot -- and making tensors: arange,
zeros, ones, full, zeros_like, ones_like, shape, convert_to_tensor.

These copy or view data and do no arithmetic, so they are NumPy on both
backends (concatenate and split use the backend's copy kernels); gathers
scatter their gradients back with ``np.add.at``, which adds repeated indices
in order (deterministic).
"""
import numpy as np

from fastnn import _runtime
from fastnn.graph.operation import Operation, apply
from fastnn.graph.tensor import KerasTensor
from fastnn.ops._core import buffer, contiguous, normalize_axis, result_dtype


def _resolve(shape, size):
    """A reshape target with one -1 resolved for ``size`` elements (None if unknown)."""
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    if -1 not in shape:
        return tuple(shape)
    if size is None:
        return tuple(None if d == -1 else d for d in shape)
    if known == 0 or size % known:
        raise ValueError(f"reshape: cannot reshape {size} values into {tuple(shape)}")
    return tuple(size // known if d == -1 else d for d in shape)


class Reshape(Operation):
    """``x`` with ``shape`` (batch axis included; one entry may be -1)."""

    def __init__(self, shape, name=None):
        super().__init__(name)
        self.shape = tuple(int(d) for d in shape)
        if self.shape.count(-1) > 1 or any(d < -1 for d in self.shape):
            raise ValueError(f"reshape: at most one -1 and no other negative size, got "
                             f"{self.shape}")

    def compute_output_spec(self, x):
        shape, dtype = x
        size = None if None in shape else int(np.prod(shape, dtype=np.int64))
        out = _resolve(self.shape, size)
        if size is not None and None not in out and int(np.prod(out, dtype=np.int64)) != size:
            raise ValueError(f"reshape: cannot reshape {shape} into {self.shape}")
        return [(out, dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        if ws is not None:
            ws.saved = x.shape
        return contiguous(x).reshape(self.shape)

    def backward(self, ops, dy, ws, need_dx=True):
        return [dy.reshape(ws.saved)]

    def get_config(self):
        return {"name": self.name, "shape": list(self.shape)}


def reshape(x, newshape):
    """``x`` reshaped to ``newshape`` (one entry may be -1)."""
    return apply(Reshape(newshape), x)


class Transpose(Operation):
    """``x`` with its axes permuted (reversed when ``axes`` is None)."""

    def __init__(self, axes=None, name=None):
        super().__init__(name)
        self.axes = None if axes is None else tuple(int(a) for a in axes)

    def _perm(self, rank):
        if self.axes is None:
            return tuple(range(rank - 1, -1, -1))
        perm = tuple(normalize_axis(a, rank, "transpose") for a in self.axes)
        if sorted(perm) != list(range(rank)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of "
                             f"{rank} axes")
        return perm

    def compute_output_spec(self, x):
        shape, dtype = x
        return [(tuple(shape[a] for a in self._perm(len(shape))), dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        perm = self._perm(x.ndim)
        if ws is not None:
            ws.saved = perm
        return np.ascontiguousarray(np.transpose(x, perm))

    def backward(self, ops, dy, ws, need_dx=True):
        return [np.ascontiguousarray(np.transpose(dy, np.argsort(ws.saved)))]

    def get_config(self):
        return {"name": self.name, "axes": None if self.axes is None else list(self.axes)}


def transpose(x, axes=None):
    """``x`` with its axes permuted by ``axes`` (reversed by default)."""
    return apply(Transpose(axes), x)


def swapaxes(x, axis1, axis2):
    """``x`` with two axes exchanged."""
    rank = len(x.shape)
    perm = list(range(rank))
    a, b = normalize_axis(axis1, rank, "swapaxes"), normalize_axis(axis2, rank, "swapaxes")
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def _shape(x):
    return tuple(x.shape)


def expand_dims(x, axis):
    """``x`` with a new axis of size 1 at ``axis``."""
    shape = list(_shape(x))
    axis = normalize_axis(axis, len(shape) + 1, "expand_dims")
    shape.insert(axis, 1)
    return reshape(x, [-1 if d is None else d for d in shape]) if shape.count(None) <= 1 \
        else apply(_ExpandDims(axis), x)


def squeeze(x, axis=None):
    """``x`` without its axes of size 1 (or only ``axis``, which must have size 1)."""
    shape = _shape(x)
    if axis is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    else:
        axes = [normalize_axis(a, len(shape), "squeeze")
                for a in (axis if isinstance(axis, (list, tuple)) else (axis,))]
        for a in axes:
            if shape[a] not in (1, None):
                raise ValueError(f"squeeze: axis {a} of a tensor of shape {shape} has size "
                                 f"{shape[a]}, not 1")
    out = [d for i, d in enumerate(shape) if i not in axes]
    if out.count(None) <= 1:
        return reshape(x, [-1 if d is None else d for d in out])
    return apply(_Squeeze(tuple(axes)), x)


class _ExpandDims(Operation):
    """expand_dims on a tensor with several unknown sizes (reshape cannot say it)."""

    def __init__(self, axis, name=None):
        super().__init__(name)
        self.axis = axis

    def compute_output_spec(self, x):
        shape = list(x[0])
        shape.insert(self.axis, 1)
        return [(tuple(shape), x[1])]

    def forward(self, ops, xs, training=False, ws=None):
        return np.expand_dims(xs[0], self.axis)

    def backward(self, ops, dy, ws, need_dx=True):
        return [np.squeeze(dy, self.axis)]

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


class _Squeeze(Operation):
    """squeeze on a tensor with several unknown sizes."""

    def __init__(self, axes, name=None):
        super().__init__(name)
        self.axes = tuple(axes)

    def compute_output_spec(self, x):
        return [(tuple(d for i, d in enumerate(x[0]) if i not in self.axes), x[1])]

    def forward(self, ops, xs, training=False, ws=None):
        return np.squeeze(xs[0], self.axes)

    def backward(self, ops, dy, ws, need_dx=True):
        return [np.expand_dims(dy, self.axes)]

    def get_config(self):
        return {"name": self.name, "axes": list(self.axes)}


class GetItem(Operation):
    """Basic indexing: ints, slices, ``...`` and None (``x[:, 0]``, ``x[..., :k]``)."""

    def __init__(self, key, name=None):
        super().__init__(name)
        key = key if isinstance(key, tuple) else (key,)
        for item in key:
            if not (item is None or item is Ellipsis or isinstance(item, slice)
                    or (isinstance(item, (int, np.integer)) and not isinstance(item, bool))):
                raise TypeError(f"indexing a tensor takes ints, slices, ... and None (use "
                                f"ops.take for arrays of indices), got {item!r}")
            if isinstance(item, slice) and any(isinstance(v, KerasTensor)
                                               for v in (item.start, item.stop, item.step)):
                raise TypeError("slice bounds must be Python ints, not tensors")
        self.key = key

    def _expanded(self, rank):
        used = sum(1 for k in self.key if k is not None and k is not Ellipsis)
        if used > rank:
            raise IndexError(f"too many indices ({used}) for a tensor of rank {rank}")
        out = []
        for item in self.key:
            if item is Ellipsis:
                out.extend([slice(None)] * (rank - used))
                used = rank
            else:
                out.append(item)
        return tuple(out) + (slice(None),) * (rank - sum(1 for k in out if k is not None))

    def compute_output_spec(self, x):
        shape, dtype = x
        out, axis = [], 0
        for item in self._expanded(len(shape)):
            if item is None:
                out.append(1)
                continue
            size = shape[axis]
            axis += 1
            if isinstance(item, slice):
                if size is None:
                    out.append(None if item != slice(None) else None)
                else:
                    out.append(len(range(*item.indices(size))))
            elif size is not None and not -size <= item < size:
                raise IndexError(f"index {item} is out of range for an axis of size {size}")
        return [(tuple(out), dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        if ws is not None:
            ws.saved = (x.shape, x.dtype)
        return x[self.key]

    def backward(self, ops, dy, ws, need_dx=True):
        shape, dtype = ws.saved
        dx = ws.buffer("dx", shape, dtype)
        dx.fill(0)
        dx[self.key] = dy
        return [dx]

    def get_config(self):
        return {"name": self.name, "key": [_slice_config(k) for k in self.key]}

    @classmethod
    def from_config(cls, config):
        return cls(tuple(_slice_from_config(k) for k in config["key"]), name=config.get("name"))


def _slice_config(item):
    if isinstance(item, slice):
        return {"slice": [item.start, item.stop, item.step]}
    if item is Ellipsis:
        return {"ellipsis": True}
    return item


def _slice_from_config(item):
    if isinstance(item, dict) and "slice" in item:
        return slice(*item["slice"])
    if isinstance(item, dict) and item.get("ellipsis"):
        return Ellipsis
    return item


def getitem(x, key):
    """``x[key]`` for basic indexing."""
    if isinstance(x, KerasTensor) or getattr(x, "is_weight", False):
        return apply(GetItem(key), x)
    return np.asarray(x)[key]


class Concatenate(Operation):
    """Its inputs joined along ``axis`` (the backend's copy kernels)."""

    def __init__(self, axis=0, name=None):
        super().__init__(name)
        self.axis = int(axis)

    def compute_output_spec(self, *xs):
        rank = len(xs[0][0])
        axis = normalize_axis(self.axis, rank, "concatenate")
        out = []
        for a in range(rank):
            sizes = [s[a] for s, _ in xs]
            if a == axis:
                out.append(None if None in sizes else sum(sizes))
                continue
            known = {d for d in sizes if d is not None}
            if len(known) > 1 or any(len(s) != rank for s, _ in xs):
                raise ValueError(f"concatenate: shapes {[s for s, _ in xs]} differ off the "
                                 f"concatenation axis {self.axis}")
            out.append(known.pop() if known else None)
        return [(tuple(out), result_dtype(*[d for _, d in xs]))]

    def forward(self, ops, xs, training=False, ws=None):
        axis = normalize_axis(self.axis, xs[0].ndim, "concatenate")
        dtype = result_dtype(*[x.dtype for x in xs])
        xs = [contiguous(x.astype(dtype, copy=False)) for x in xs]
        if ws is not None:
            ws.saved = (axis, [x.shape[axis] for x in xs], [x.shape for x in xs])
        if dtype.kind != "f":
            return np.concatenate(xs, axis=axis)
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        return ops.concatenate(xs, axis, out=buffer(ws, "y", tuple(shape), dtype))

    def backward(self, ops, dy, ws, need_dx=True):
        axis, sizes, shapes = ws.saved
        outs = [ws.buffer(("dx", k), shape, dy.dtype) for k, shape in enumerate(shapes)]
        return ops.split(contiguous(dy), sizes, axis, outs=outs)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


def concatenate(xs, axis=0):
    """The tensors ``xs`` joined along ``axis``."""
    return apply(Concatenate(axis), *xs)


def stack(x, axis=0):
    """The tensors ``x`` (equal shapes) stacked along a new ``axis``."""
    return concatenate([expand_dims(t, axis) for t in x], axis=axis)


class Split(Operation):
    """``x`` cut along ``axis`` into pieces (one output each)."""

    def __init__(self, sizes, axis=0, name=None):
        super().__init__(name)
        self.sizes, self.axis = tuple(int(s) for s in sizes), int(axis)

    def compute_output_spec(self, x):
        shape, dtype = x
        axis = normalize_axis(self.axis, len(shape), "split")
        if shape[axis] is not None and sum(self.sizes) != shape[axis]:
            raise ValueError(f"split: pieces {self.sizes} do not add up to axis {self.axis} "
                             f"of {shape}")
        outs = []
        for size in self.sizes:
            piece = list(shape)
            piece[axis] = size
            outs.append((tuple(piece), dtype))
        return outs

    def forward(self, ops, xs, training=False, ws=None):
        (x,) = xs
        axis = normalize_axis(self.axis, x.ndim, "split")
        if ws is not None:
            ws.saved = axis
        if x.dtype.kind != "f":
            return np.split(x, np.cumsum(self.sizes)[:-1], axis=axis)
        return ops.split(contiguous(x), list(self.sizes), axis)

    def backward(self, ops, dys, ws, need_dx=True):
        return [ops.concatenate([contiguous(d) for d in dys], ws.saved)]

    def get_config(self):
        return {"name": self.name, "sizes": list(self.sizes), "axis": self.axis}


def split(x, indices_or_sections, axis=0):
    """``x`` cut along ``axis``: into ``indices_or_sections`` equal pieces (an int), or
    at those indices (a list), as NumPy's split."""
    size = tuple(x.shape)[normalize_axis(axis, len(x.shape), "split")]
    if size is None:
        raise ValueError("split: the axis to split must have a known size")
    if isinstance(indices_or_sections, (int, np.integer)):
        if size % indices_or_sections:
            raise ValueError(f"split: an axis of size {size} does not split into "
                             f"{indices_or_sections} equal pieces")
        sizes = [size // indices_or_sections] * int(indices_or_sections)
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [size]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    return list(apply(Split(sizes, axis), x)) if len(sizes) > 1 else [x]


class Take(Operation):
    """``x`` gathered at integer ``indices`` along ``axis`` (None: of the flattened x)."""

    gradient_free_inputs = (1,)

    def __init__(self, axis=None, name=None):
        super().__init__(name)
        self.axis = axis

    def compute_output_spec(self, x, indices):
        shape, dtype = x
        if self.axis is None:
            return [(indices[0], dtype)]
        axis = normalize_axis(self.axis, len(shape), "take")
        return [(shape[:axis] + tuple(indices[0]) + shape[axis + 1:], dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        x, indices = xs
        indices = _indices(indices, "take")
        if ws is not None:
            ws.saved = (x.shape, x.dtype, indices)
        return np.take(x, indices, axis=self.axis)

    def backward(self, ops, dy, ws, need_dx=True):
        shape, dtype, indices = ws.saved
        dx = ws.buffer("dx", shape, dtype)
        dx.fill(0)
        if self.axis is None:
            np.add.at(dx.reshape(-1), indices.reshape(-1), dy.reshape(-1))
        else:
            axis = normalize_axis(self.axis, len(shape), "take")
            moved = np.moveaxis(dx, axis, 0)
            np.add.at(moved, indices.reshape(-1),
                      np.moveaxis(dy, tuple(range(axis, axis + indices.ndim)),
                                  tuple(range(indices.ndim))).reshape((-1,) + moved.shape[1:]))
        return [dx, None]

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


def _indices(indices, where):
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        if indices.dtype.kind == "f" and np.array_equal(np.floor(indices), indices):
            return indices.astype(np.int64)
        raise TypeError(f"{where}: indices must be integers, got {indices.dtype}")
    return indices.astype(np.int64, copy=False)


def take(x, indices, axis=None):
    """Elements of ``x`` at ``indices`` along ``axis`` (None: of the flattened x)."""
    return apply(Take(axis), x, indices)


class TakeAlongAxis(Operation):
    """NumPy's take_along_axis: ``indices`` broadcast against ``x`` along ``axis``."""

    gradient_free_inputs = (1,)

    def __init__(self, axis, name=None):
        super().__init__(name)
        self.axis = int(axis)

    def compute_output_spec(self, x, indices):
        return [(indices[0], x[1])]

    def forward(self, ops, xs, training=False, ws=None):
        x, indices = xs
        indices = _indices(indices, "take_along_axis")
        if ws is not None:
            ws.saved = (x.shape, x.dtype, indices)
        return np.take_along_axis(x, indices, axis=self.axis)

    def backward(self, ops, dy, ws, need_dx=True):
        shape, dtype, indices = ws.saved
        dx = ws.buffer("dx", shape, dtype)
        dx.fill(0)
        axis = normalize_axis(self.axis, len(shape), "take_along_axis")
        # the index of every element of dy in dx, then one ordered scatter-add
        grid = list(np.indices(indices.shape, sparse=True))
        grid[axis] = indices
        np.add.at(dx, tuple(grid), dy)
        return [dx, None]

    def get_config(self):
        return {"name": self.name, "axis": self.axis}


def take_along_axis(x, indices, axis=None):
    """``x`` gathered along ``axis`` at ``indices`` of x's rank (NumPy's)."""
    if axis is None:
        return take(reshape(x, [-1]), indices)
    return apply(TakeAlongAxis(axis), x, indices)


class OneHot(Operation):
    """Integer labels as one-hot vectors along a new ``axis`` (no gradient)."""

    differentiable = False
    gradient_free_inputs = (0,)

    def __init__(self, num_classes, axis=-1, dtype=None, name=None):
        super().__init__(name)
        self.num_classes, self.axis = int(num_classes), int(axis)
        self.dtype = np.dtype(dtype or _runtime.floatx())

    def compute_output_spec(self, x):
        shape = list(x[0])
        shape.insert(normalize_axis(self.axis, len(shape) + 1, "one_hot"), self.num_classes)
        return [(tuple(shape), self.dtype)]

    def forward(self, ops, xs, training=False, ws=None):
        labels = _indices(xs[0], "one_hot")
        out = (labels[..., None] == np.arange(self.num_classes)).astype(self.dtype)
        return np.moveaxis(out, -1, normalize_axis(self.axis, labels.ndim + 1, "one_hot"))

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes, "axis": self.axis,
                "dtype": self.dtype.name}


def one_hot(x, num_classes, axis=-1, dtype=None):
    """One-hot vectors of ``num_classes`` for the integer labels x (out of range: zeros)."""
    return apply(OneHot(num_classes, axis, dtype), x)


# ---- making tensors ------------------------------------------------------------------
class _Like(Operation):
    """A tensor of ``fill`` values shaped like the input (known when the model runs)."""

    differentiable = False
    gradient_free_inputs = (0,)

    def __init__(self, fill, dtype=None, name=None):
        super().__init__(name)
        self.fill, self.dtype = fill, None if dtype is None else np.dtype(dtype)

    def compute_output_spec(self, x):
        return [(x[0], self.dtype or x[1])]

    def forward(self, ops, xs, training=False, ws=None):
        return np.full(xs[0].shape, self.fill, dtype=self.dtype or xs[0].dtype)

    def get_config(self):
        return {"name": self.name, "fill": self.fill,
                "dtype": None if self.dtype is None else self.dtype.name}


def zeros_like(x, dtype=None):
    """Zeros shaped like x."""
    return full_like(x, 0, dtype)


def ones_like(x, dtype=None):
    """Ones shaped like x."""
    return full_like(x, 1, dtype)


def full_like(x, fill_value, dtype=None):
    """``fill_value`` shaped like x."""
    return apply(_Like(fill_value, dtype), x)


def _default_dtype(dtype, value=0.0):
    if dtype is not None:
        return np.dtype(dtype)
    return np.dtype(_runtime.floatx()) if isinstance(value, float) else np.asarray(value).dtype


def zeros(shape, dtype=None):
    """An array of zeros (a constant inside a traced call)."""
    return np.zeros(shape, _default_dtype(dtype))


def ones(shape, dtype=None):
    """An array of ones."""
    return np.ones(shape, _default_dtype(dtype))


def full(shape, fill_value, dtype=None):
    """An array of ``fill_value``."""
    return np.full(shape, fill_value, _default_dtype(dtype, fill_value))


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values in [start, stop) (NumPy's; int32 for integer bounds,
    as Keras)."""
    if stop is None:
        start, stop = 0, start
    bounds = (start, stop, step)
    if any(isinstance(b, KerasTensor) for b in bounds):
        raise ValueError("arange: bounds must be known when the model is built (a size "
                         "from ops.shape on an axis of unknown size is not)")
    if dtype is None:
        dtype = np.int32 if all(isinstance(b, (int, np.integer)) for b in bounds) \
            else _runtime.floatx()
    return np.arange(start, stop, step, dtype=dtype)


def shape(x):
    """The shape of x as a tuple (None for a size known only when the model runs)."""
    return tuple(x.shape)


def convert_to_tensor(x, dtype=None, sparse=None):
    """``x`` as a tensor: arrays stay arrays (cast to ``dtype``); symbolic tensors
    stay symbolic."""
    if isinstance(x, KerasTensor) or getattr(x, "is_weight", False):
        from fastnn.ops.elementwise import cast
        return x if dtype is None or np.dtype(dtype) == np.dtype(x.dtype) else cast(x, dtype)
    return np.asarray(x, dtype=dtype)
