"""Products: einsum of two operands, and matmul, dot and tensordot written as one.

Every product is lowered to the backend's batched GEMM: the subscripts sort
each index into batch (in both operands and the output), contracted (in both,
not the output), kept from one operand, or summed away within one operand;
each operand is summed over its own summed indices, transposed (a view when
the order already fits) and reshaped to (batch, rows, contracted), and one
``batch_matmul`` does the rest -- forward, and twice more backward. So
``(N, T, D) @ (D, E)`` is a single GEMM, and attention's ``bhqd,bhkd->bhqk``
one batched GEMM over b*h.
"""
import string

import numpy as np

from fastnn.graph.operation import Operation, apply
from fastnn.ops._core import buffer, contiguous, float_dtype, result_dtype


def _parse(subscripts, ranks):
    """(input index strings, output index string) with ``...`` expanded."""
    text = subscripts.replace(" ", "")
    if "->" in text:
        lhs, out = text.split("->")
    else:
        lhs, out = text, None
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got {len(ranks)}")
    used = set(text) - set(".,->")
    spare = [c for c in string.ascii_letters if c not in used]
    widest = max([rank - len(t.replace("...", "")) for t, rank in zip(terms, ranks)] + [0])
    ellipsis = "".join(spare[:widest])
    expanded = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            n = rank - len(term.replace("...", ""))
            term = term.replace("...", ellipsis[widest - n:])
        if len(term) != rank or not term.isalpha():
            raise ValueError(f"einsum: {subscripts!r} does not match operands of ranks {ranks}")
        if len(set(term)) != len(term):
            raise ValueError(f"einsum: repeated indices within one operand ({term!r}) are not "
                             "supported")
        expanded.append(term)
    if out is None:
        counts = {c: sum(t.count(c) for t in expanded) for c in set("".join(expanded))}
        out = ellipsis + "".join(sorted(c for c, k in counts.items()
                                        if k == 1 and c not in ellipsis))
    else:
        out = out.replace("...", ellipsis)
    missing = set(out) - set("".join(expanded))
    if missing or len(set(out)) != len(out):
        raise ValueError(f"einsum: output indices of {subscripts!r} must each appear once "
                         "and in an operand")
    return expanded, out


class _Lowering:
    """How ``a_idx, b_idx -> out_idx`` becomes one batched matmul."""

    def __init__(self, a_idx, b_idx, out_idx):
        self.a_idx, self.b_idx, self.out_idx = a_idx, b_idx, out_idx
        self.batch = [c for c in out_idx if c in a_idx and c in b_idx]
        self.rows = [c for c in out_idx if c in a_idx and c not in b_idx]
        self.cols = [c for c in out_idx if c in b_idx and c not in a_idx]
        self.contract = [c for c in a_idx if c in b_idx and c not in out_idx]
        self.a_sum = [c for c in a_idx if c not in b_idx and c not in out_idx]
        self.b_sum = [c for c in b_idx if c not in a_idx and c not in out_idx]

    def sizes(self, a_shape, b_shape):
        sizes = {}
        for idx, shape in ((self.a_idx, a_shape), (self.b_idx, b_shape)):
            for c, d in zip(idx, shape):
                if d is not None and sizes.get(c) not in (None, d):
                    raise ValueError(f"einsum: index {c!r} has sizes {sizes[c]} and {d}")
                sizes[c] = d if d is not None else sizes.get(c)
        return sizes


def _prod(sizes, letters):
    return int(np.prod([sizes[c] for c in letters], dtype=np.int64))


class Einsum(Operation):
    """``einsum(subscripts, a, b)`` for two operands, on the batched GEMM."""

    def __init__(self, subscripts, name=None):
        super().__init__(name)
        self.subscripts = subscripts

    def _lowering(self, a_rank, b_rank):
        (a_idx, b_idx), out_idx = _parse(self.subscripts, (a_rank, b_rank))
        return _Lowering(a_idx, b_idx, out_idx)

    def compute_output_spec(self, a, b):
        low = self._lowering(len(a[0]), len(b[0]))
        sizes = low.sizes(a[0], b[0])
        return [(tuple(sizes.get(c) for c in low.out_idx), float_dtype(result_dtype(a[1],
                                                                                    b[1])))]

    def forward(self, ops, xs, training=False, ws=None):
        a, b = xs
        dtype = float_dtype(result_dtype(a.dtype, b.dtype))
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        low = self._lowering(a.ndim, b.ndim)
        sizes = low.sizes(a.shape, b.shape)
        a3 = _operand(ops, a, low.a_idx, low.a_sum, low.batch, low.rows, low.contract, sizes)
        b3 = _operand(ops, b, low.b_idx, low.b_sum, low.batch, low.contract, low.cols, sizes)
        bt, m, n = a3.shape[0], a3.shape[1], b3.shape[2]
        z = ops.batch_matmul(a3, b3, out=buffer(ws, "z", (bt, m, n), dtype))
        if ws is not None:
            ws.saved = (a, b, a3, b3, low, sizes)
        order = low.batch + low.rows + low.cols
        z = z.reshape(tuple(sizes[c] for c in order))
        perm = [order.index(c) for c in low.out_idx]
        return z if perm == sorted(perm) else np.ascontiguousarray(np.transpose(z, perm))

    def backward(self, ops, dy, ws, need_dx=True):
        a, b, a3, b3, low, sizes = ws.saved
        order = low.batch + low.rows + low.cols
        dz = np.transpose(dy, [low.out_idx.index(c) for c in order])
        dz3 = contiguous(dz).reshape(a3.shape[0], a3.shape[1], b3.shape[2])
        # z = a3 @ b3: da3 = dz3 @ b3^T, db3 = a3^T @ dz3
        da3 = ops.batch_matmul(dz3, b3, transpose_b=True,
                               out=ws.buffer("da3", a3.shape, a3.dtype))
        db3 = ops.batch_matmul(a3, dz3, transpose_a=True,
                               out=ws.buffer("db3", b3.shape, b3.dtype))
        return [_operand_grad(ops, da3, a, low.a_idx, low.a_sum, low.batch + low.rows + low.contract,
                              sizes, ws, "da"),
                _operand_grad(ops, db3, b, low.b_idx, low.b_sum, low.batch + low.contract + low.cols,
                              sizes, ws, "db")]

    def get_config(self):
        return {"name": self.name, "subscripts": self.subscripts}


def _operand(ops, x, idx, summed, first, second, third, sizes):
    """x summed over its own ``summed`` indices, ordered first+second+third and shaped
    (prod first, prod second, prod third) -- a view when no copy is needed."""
    if summed:
        axes = tuple(idx.index(c) for c in summed)
        x = ops.reduce("sum", contiguous(x), axes)
        idx = "".join(c for c in idx if c not in summed)
    order = first + second + third
    perm = [idx.index(c) for c in order]
    if perm != list(range(len(perm))):
        x = np.transpose(x, perm)
    return contiguous(x).reshape(_prod(sizes, first), _prod(sizes, second), _prod(sizes, third))


def _operand_grad(ops, d3, x, idx, summed, order, sizes, ws, key):
    """The gradient of an operand from that of its 3-D form (the inverse of _operand:
    un-reshape, un-transpose, broadcast back over the summed indices)."""
    kept = "".join(c for c in idx if c not in summed)
    d = d3.reshape(tuple(sizes[c] for c in order))
    d = np.transpose(d, [order.index(c) for c in kept])
    if not summed:
        return contiguous(d)
    expanded = d.reshape(tuple(sizes[c] if c in kept else 1 for c in idx))
    out = ws.buffer(key, x.shape, x.dtype)
    np.copyto(out, np.broadcast_to(expanded, x.shape))     # a copy, not math
    return out


def einsum(subscripts, *operands):
    """Einstein summation over two operands (repeated indices within an operand are
    not supported); on the batched GEMM kernel."""
    if len(operands) != 2:
        raise ValueError(f"einsum: fastnn takes exactly two operands, got {len(operands)}")
    return apply(Einsum(subscripts), *operands)


def _rank(x):
    return len(x.shape) if hasattr(x, "shape") else np.ndim(x)


def matmul(x1, x2):
    """NumPy's matmul: matrix products over the last two axes, the others batch
    axes (an operand with fewer of them shares them with the other's trailing
    ones); 1-D operands as vectors."""
    ra, rb = _rank(x1), _rank(x2)
    if ra == 0 or rb == 0:
        raise ValueError("matmul: scalars are not allowed (use multiply)")
    if ra == 1 and rb == 1:
        return einsum("i,i->", x1, x2)
    if rb == 1:
        a = _LETTERS[:ra]
        return einsum(f"{a},{a[-1]}->{a[:-1]}", x1, x2)
    if ra == 1:
        b = _LETTERS[1:rb + 1]
        return einsum(f"{b[-2]},{b}->{b[:-2] + b[-1]}", x1, x2)
    batch = max(ra, rb) - 2
    common = _LETTERS[:batch]
    sa, sb = tuple(x1.shape)[:-2], tuple(x2.shape)[:-2]
    n = min(len(sa), len(sb))
    for p, q in zip(sa[len(sa) - n:], sb[len(sb) - n:]):
        if p is not None and q is not None and p != q:
            raise ValueError(f"matmul: batch axes {sa} and {sb} differ; broadcasting a batch "
                             "axis of size 1 is not supported (repeat the operand first)")
    a = common[batch - (ra - 2):] + "xy"
    b = common[batch - (rb - 2):] + "yz"
    return einsum(f"{a},{b}->{common}xz", x1, x2)


_LETTERS = "abcdefghijklmnopqrstuvw"      # x, y, z are the matrix axes


def dot(x1, x2):
    """NumPy's dot: for 1-D and 2-D operands a (matrix) product; for higher ranks
    the sum over the last axis of x1 and the second-to-last of x2 (the last,
    when x2 is 1-D)."""
    ra, rb = _rank(x1), _rank(x2)
    if ra <= 2 and rb <= 2:
        return matmul(x1, x2)
    a = _LETTERS[:ra - 1] + "y"
    if rb == 1:
        return einsum(f"{a},y->{a[:-1]}", x1, x2)
    b = _LETTERS[ra - 1:ra - 1 + rb - 2] + "yz"
    return einsum(f"{a},{b}->{a[:-1]}{b[:-2]}z", x1, x2)


def tensordot(x1, x2, axes=2):
    """NumPy's tensordot: the sum over ``axes`` (an int: the last of x1 with the first
    of x2; or a pair of axis lists)."""
    ra, rb = _rank(x1), _rank(x2)
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = list(range(ra - axes, ra)), list(range(axes))
    else:
        axes_a, axes_b = ([axes[0]] if isinstance(axes[0], int) else list(axes[0]),
                          [axes[1]] if isinstance(axes[1], int) else list(axes[1]))
    axes_a, axes_b = [a % ra for a in axes_a], [b % rb for b in axes_b]
    letters = iter(string.ascii_letters)
    a = [next(letters) for _ in range(ra)]
    b = [next(letters) for _ in range(rb)]
    for i, j in zip(axes_a, axes_b):
        b[j] = a[i]
    out = [c for i, c in enumerate(a) if i not in axes_a] + \
        [c for j, c in enumerate(b) if j not in axes_b]
    return einsum(f"{''.join(a)},{''.join(b)}->{''.join(out)}", x1, x2)


def inner(x1, x2):
    """The inner product over the last axes."""
    return tensordot(x1, x2, axes=[[-1], [-1]])
