"""Merge layers (Keras'): Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate and Dot, and their functional forms (``layers.add([a, b])``...).

Each is called on a list of tensors. The element-wise ones follow NumPy's
broadcasting over the axes after the batch axis; an input of lower rank gets
unit axes right after the batch axis first (Keras' rule), so (N, D) merges
with (N, T, D) as (N, 1, D). They fold their inputs pairwise with the
backend's ``binary`` kernel and take gradients with ``binary_backward`` (sums
over broadcast axes included), so every hot loop runs in the backend.
Masks (from ``Embedding(mask_zero=True)``) merge as Keras merges them: a step
is kept when every masked input keeps it.
"""
import numpy as np

from fastnn.layers.base import Layer


def _full_rank(x, rank):
    """x (N, ...) with unit axes inserted after the batch axis up to ``rank`` (a view)."""
    if x.ndim == rank:
        return x
    return x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:])


class _Merge(Layer):
    """Shared by the merge layers: a list of inputs, their shape rules and masks."""

    takes_list = True
    supports_masking = True
    min_inputs, max_inputs = 1, None

    def _check_count(self, shapes):
        if not isinstance(shapes, (list, tuple)) or not all(
                isinstance(s, (list, tuple)) for s in shapes):
            raise ValueError(f"{self.name}: a merge layer is called on a list of inputs, got "
                             f"input shape {shapes!r}")
        n = len(shapes)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            wanted = (f"exactly {self.min_inputs}" if self.min_inputs == self.max_inputs
                      else f"at least {self.min_inputs}")
            raise ValueError(f"{self.name}: a {type(self).__name__} layer takes {wanted} "
                             f"inputs, got {n}: {_shapes(shapes)}")

    def build(self, input_shape):
        self._check_count(input_shape)
        self.compute_output_shape(input_shape)          # validates the shapes
        self.input_shape = tuple(tuple(s) for s in input_shape)
        self.output_shape = self.compute_output_shape(input_shape)
        self.built = True

    def check_input_shape(self, input_shape):
        self._check_count(input_shape)
        self.compute_output_shape(input_shape)

    def output_mask(self, ws):
        masks = ws.mask
        if masks is None:
            return None
        present = [m for m in masks if m is not None]
        if any(m.shape != present[0].shape for m in present):
            raise ValueError(f"{self.name}: the inputs' masks differ in shape "
                             f"{[m.shape for m in present]}")
        out = ws.buffer("mask", present[0].shape, np.uint8)
        np.copyto(out, present[0])
        for m in present[1:]:
            np.logical_and(out, m, out=out, casting="unsafe")
        return out


class _ElementwiseMerge(_Merge):
    """Inputs folded pairwise with the backend's binary ``op``: y = x0 op x1 op x2..."""

    op = None
    positionwise = True

    def compute_output_shape(self, input_shape):
        rank = max(len(s) for s in input_shape)
        out = []
        for axis in range(rank):
            sizes = {s[axis - rank + len(s)] for s in input_shape if axis - rank + len(s) >= 0}
            sizes.discard(1)
            if None in sizes:
                out.append(None)
            elif len(sizes) > 1:
                raise ValueError(f"{self.name}: inputs with shapes {_shapes(input_shape)} "
                                 "cannot be merged: sizes differ (and are not 1) on an axis")
            else:
                out.append(sizes.pop() if sizes else 1)
        return tuple(out)

    def forward(self, ops, xs, training=False, ws=None):
        shapes = [x.shape for x in xs]
        rank = max(x.ndim for x in xs)
        xs = [_full_rank(x, rank) for x in xs]
        shape = np.broadcast_shapes(*(x.shape for x in xs))
        partials = []                 # the running result before each input is folded in
        y = xs[0]
        for k, x in enumerate(xs[1:], 1):
            out = (np.empty(shape, self.dtype) if ws is None
                   else ws.buffer(("y", k), shape, self.dtype))
            partials.append(y)
            y = ops.binary(self.op, y, x, out=out)
        if ws is not None:
            ws.saved = (xs, partials, shapes)
        return self._finish(ops, y, len(xs))

    def _finish(self, ops, y, n):
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        xs, partials, shapes = ws.saved
        grads = [None] * len(xs)
        for k in range(len(xs) - 1, 0, -1):      # the fold, unwound
            left = partials[k - 1]
            dy, grads[k] = ops.binary_backward(
                self.op, dy, left, xs[k],
                da_out=ws.buffer(("dleft", k), left.shape, self.dtype),
                db_out=ws.buffer(("dx", k), xs[k].shape, self.dtype))
        grads[0] = dy
        return [g.reshape(shape) for g, shape in zip(grads, shapes)]


class Add(_ElementwiseMerge):
    """The sum of its inputs: ``layers.Add()([a, b])`` or ``layers.add([a, b])``."""

    op = "add"

    def backward(self, ops, dy, ws, need_dx=True):
        # d(sum)/dx_i = 1: each input's gradient is dy, summed over the axes it was
        # broadcast along (no pairwise chain needed)
        if not need_dx:
            return None
        xs, _, shapes = ws.saved
        return [(dy if x.shape == dy.shape else
                 ops.sum_to_shape(dy, x.shape, out=ws.buffer(("dx", k), x.shape, self.dtype)))
                .reshape(shape) for k, (x, shape) in enumerate(zip(xs, shapes))]


class Subtract(_ElementwiseMerge):
    """``a - b`` for exactly two inputs."""

    op = "subtract"
    min_inputs = max_inputs = 2


class Multiply(_ElementwiseMerge):
    """The element-wise product of its inputs."""

    op = "multiply"


class Maximum(_ElementwiseMerge):
    """The element-wise maximum of its inputs (a tie's gradient goes to the first)."""

    op = "maximum"


class Minimum(_ElementwiseMerge):
    """The element-wise minimum of its inputs (a tie's gradient goes to the first)."""

    op = "minimum"


class Average(Add):
    """The element-wise mean of its inputs."""

    def _finish(self, ops, y, n):
        if n == 1:
            return y          # y is the input itself: nothing to scale
        return ops.binary("multiply", y, np.asarray(1.0 / n, self.dtype), out=y)

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        n = len(ws.saved[0])
        scaled = ops.binary("multiply", dy, np.asarray(1.0 / n, self.dtype),
                            out=ws.buffer("dy_scaled", dy.shape, self.dtype))
        return super().backward(ops, scaled, ws, need_dx)


class Concatenate(_Merge):
    """Concatenates its inputs along ``axis`` (counted with the batch axis; -1 the last)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{self.name}: axis must be an integer, got {axis!r}")
        self.axis = int(axis)

    def _axis(self, rank):
        """The axis among the non-batch axes of inputs of ``rank`` (batch excluded)."""
        axis = self.axis + rank + 1 if self.axis < 0 else self.axis
        if not 1 <= axis <= rank:
            raise ValueError(f"{self.name}: axis {self.axis} is out of range for inputs of "
                             f"rank {rank + 1} (the batch axis 0 cannot be concatenated)")
        return axis - 1

    def compute_output_shape(self, input_shape):
        ranks = {len(s) for s in input_shape}
        if len(ranks) != 1:
            raise ValueError(f"{self.name}: inputs of different ranks cannot be concatenated: "
                             f"{_shapes(input_shape)}")
        rank = ranks.pop()
        axis = self._axis(rank)
        out = []
        for a in range(rank):
            sizes = [s[a] for s in input_shape]
            if a == axis:
                out.append(None if None in sizes else sum(sizes))
                continue
            known = {d for d in sizes if d is not None}
            if len(known) > 1:
                raise ValueError(f"{self.name}: inputs must match on every axis but the "
                                 f"concatenation axis {self.axis}, got {_shapes(input_shape)}")
            out.append(known.pop() if known else None)
        return tuple(out)

    def forward(self, ops, xs, training=False, ws=None):
        axis = self._axis(xs[0].ndim - 1) + 1
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = None if ws is None else ws.buffer("y", tuple(shape), self.dtype)
        y = ops.concatenate(xs, axis, out=out)
        if ws is not None:
            ws.saved = (axis, [x.shape[axis] for x in xs], [x.shape for x in xs])
        return y

    def backward(self, ops, dy, ws, need_dx=True):
        if not need_dx:
            return None
        axis, sizes, shapes = ws.saved
        outs = [ws.buffer(("dx", k), shape, self.dtype) for k, shape in enumerate(shapes)]
        return ops.split(np.ascontiguousarray(dy), sizes, axis, outs=outs)

    def output_mask(self, ws):
        # Along the features of (N, T, D) inputs the time-step masks combine as for the
        # element-wise merges; along any other axis no mask comes out (Keras keeps
        # per-element masks, which fastnn's time-step masks do not represent).
        axis = ws.saved[0] if ws.saved else None
        ranks = {len(shape) for shape in ws.saved[2]} if ws.saved else set()
        if ws.mask is None or axis != 2 or ranks != {3}:
            return None
        return super().output_mask(ws)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """The dot product of two batched inputs along ``axes`` (Keras' batch_dot):
    ``axes`` an int or a pair, counted with the batch axis (0 is not allowed).
    With ``normalize=True`` both inputs are L2-normalised along those axes first,
    so the result is their cosine similarity."""

    min_inputs = max_inputs = 2
    supports_masking = False

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = (axes, axes) if isinstance(axes, (int, np.integer)) else tuple(axes)
        if len(pair) != 2 or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                                     for a in pair):
            raise ValueError(f"{self.name}: axes must be an integer or a pair of integers, "
                             f"got {axes!r}")
        self.axes = axes if isinstance(axes, (int, np.integer)) else [int(a) for a in pair]
        self._pair = tuple(int(a) for a in pair)
        self.normalize = bool(normalize)

    def _resolve(self, shapes):
        """The contracted axis of each input, among its non-batch axes."""
        resolved = []
        for axis, shape in zip(self._pair, shapes):
            full = axis + len(shape) + 1 if axis < 0 else axis
            if not 1 <= full <= len(shape):
                raise ValueError(f"{self.name}: axes {self.axes} are out of range for inputs "
                                 f"{_shapes(shapes)} (the batch axis 0 cannot be contracted)")
            resolved.append(full - 1)
        a, b = resolved
        if shapes[0][a] is not None and shapes[1][b] is not None and shapes[0][a] != shapes[1][b]:
            raise ValueError(f"{self.name}: the contracted axes of {_shapes(shapes)} differ in "
                             f"size ({shapes[0][a]} and {shapes[1][b]}) for axes {self.axes}")
        return a, b

    def compute_output_shape(self, input_shape):
        a, b = self._resolve(input_shape)
        x, y = input_shape
        out = tuple(x[:a]) + tuple(x[a + 1:]) + tuple(y[:b]) + tuple(y[b + 1:])
        return out if out else (1,)

    def forward(self, ops, xs, training=False, ws=None):
        x, y = xs
        a, b = self._resolve([x.shape[1:], y.shape[1:]])
        if self.normalize:
            x = ops.l2_normalize(x, a + 1, out=None if ws is None else ws.buffer("xn", x.shape,
                                                                               self.dtype))
            y = ops.l2_normalize(y, b + 1, out=None if ws is None else ws.buffer("yn", y.shape,
                                                                               self.dtype))
        x3, ta = _as_batched(x, a + 1, contract_last=True)
        y3, tb = _as_batched(y, b + 1, contract_last=False)
        n, m, k = x3.shape[0], x3.shape[2 if ta else 1], x3.shape[1 if ta else 2]
        cols = y3.shape[1 if tb else 2]
        out = None if ws is None else ws.buffer("y", (n, m, cols), self.dtype)
        z = ops.batch_matmul(x3, y3, transpose_a=ta, transpose_b=tb, out=out)
        if ws is not None:
            ws.saved = (xs, x, y, x3, y3, ta, tb, a, b)
        return z.reshape((n,) + self.compute_output_shape([x.shape[1:], y.shape[1:]]))

    def backward(self, ops, dz, ws, need_dx=True):
        if not need_dx:
            return None
        inputs, x, y, x3, y3, ta, tb, a, b = ws.saved
        n = dz.shape[0]
        dz3 = np.ascontiguousarray(dz).reshape(n, x3.shape[2 if ta else 1],
                                               y3.shape[1 if tb else 2])
        # z = A @ B with A = op(x3), B = op(y3): dA = dz B^T and dB = A^T dz; an operand
        # stored transposed gets the transposed gradient (dA^T = B dz^T, dB^T = dz^T A)
        dx3_out = ws.buffer("dx3", x3.shape, self.dtype)
        dy3_out = ws.buffer("dy3", y3.shape, self.dtype)
        if ta:
            dx3 = ops.batch_matmul(y3, dz3, transpose_a=tb, transpose_b=True, out=dx3_out)
        else:
            dx3 = ops.batch_matmul(dz3, y3, transpose_b=not tb, out=dx3_out)
        if tb:
            dy3 = ops.batch_matmul(dz3, x3, transpose_a=True, transpose_b=ta, out=dy3_out)
        else:
            dy3 = ops.batch_matmul(x3, dz3, transpose_a=not ta, out=dy3_out)
        dx = _from_batched(dx3, x.shape, a + 1, contract_last=True)
        dy = _from_batched(dy3, y.shape, b + 1, contract_last=False)
        if self.normalize:
            dx = ops.l2_normalize_backward(dx, inputs[0], a + 1)
            dy = ops.l2_normalize_backward(dy, inputs[1], b + 1)
        return [dx, dy]

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _as_batched(x, axis, contract_last):
    """x (N, ...) as a 3-D operand of a batched matmul contracting ``axis``:
    (N, rows, K) for the left operand (``contract_last``) or (N, K, cols) for the
    right one, and whether it is stored transposed. Views when the contracted
    axis is first or last after the batch axis; a moved copy otherwise."""
    n, k = x.shape[0], x.shape[axis]
    rest = int(np.prod([d for i, d in enumerate(x.shape) if i not in (0, axis)], dtype=np.int64))
    if axis == x.ndim - 1:            # (N, rest, K)
        return x.reshape(n, rest, k), not contract_last
    if axis == 1:                     # (N, K, rest)
        return x.reshape(n, k, rest), contract_last
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    return moved.reshape(n, rest, k), not contract_last


def _from_batched(d3, shape, axis, contract_last):
    """The inverse of _as_batched for a gradient of the 3-D operand's layout."""
    if axis == len(shape) - 1 or axis == 1:
        return d3.reshape(shape)
    moved_shape = tuple(d for i, d in enumerate(shape) if i != axis) + (shape[axis],)
    return np.ascontiguousarray(np.moveaxis(d3.reshape(moved_shape), -1, axis))


def _shapes(shapes):
    return [(None,) + tuple(s) for s in shapes]


# ---- Keras' functional forms -------------------------------------------------------
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """``Dot(axes=axes, normalize=normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
