"""Broadcast element-wise ops (csrc/elementwise.c), compiled vs NumPy.

Run:  python -m pytest benchmarks/bench_elementwise.py --benchmark-only

add and multiply on 4M float32 elements, with both operands the same shape
and with a row broadcast ((N, D) + (D,)), into a preallocated output; the
gradient of such a broadcast (sum_to_shape (N, D) -> (D,)); and the per-call
cost of a small merge ((32, 64) + (32, 64), what an Add layer or a gradient
sum does every step). The compiled side calls ``ops.binary(op, a, b, out=c)``
(CompiledOps, validation included); the NumPy side is the ufunc itself,
``np.add(a, b, out=c)`` (NumPy's own speed, not NumpyOps' checks). Both run
back to back at 1 and 2 threads from a fixed seed (NumPy's ufuncs use one
thread either way), each checked against NumpyOps before it is timed, with
GB/s (bytes read + written per call / median) in ``extra_info``.

Also fastnn.ops' primitives on a (4096, 1024) float32 array: exp, and a sum
over the last and over the first axis (the compiled side through
``ops.unary`` / ``ops.reduce``, the NumPy side ``np.exp`` / ``x.sum``).
"""
import numpy as np
import pytest

UFUNCS = {"add": np.add, "multiply": np.multiply}
# (name, a's shape, b's shape): 4M float32 elements in the output.
LARGE = [
    ("same_4M", (2048, 2048), (2048, 2048)),
    ("row_4M", (4096, 1024), (1024,)),
]
SMALL = ("merge_32x64", (32, 64), (32, 64))


def _operands(rng, a_shape, b_shape):
    a = rng.standard_normal(a_shape, dtype=np.float32)
    b = rng.standard_normal(b_shape, dtype=np.float32)
    return a, b, np.empty(np.broadcast_shapes(a_shape, b_shape), np.float32)


def _call(backend, ops, op, a, b, c):
    if backend == "compiled":
        return lambda: ops.binary(op, a, b, out=c)
    ufunc = UFUNCS[op]
    return lambda: ufunc(a, b, out=c)


@pytest.mark.parametrize("shapes", LARGE + [SMALL], ids=[s[0] for s in LARGE + [SMALL]])
@pytest.mark.parametrize("op", list(UFUNCS))
def test_binary(benchmark, backend, ops, threads, rng, reference, record_rate, op, shapes):
    name, a_shape, b_shape = shapes
    a, b, c = _operands(rng, a_shape, b_shape)
    fn = _call(backend, ops, op, a, b, c)
    fn()
    np.testing.assert_array_equal(c, reference.binary(op, a, b))   # one rounding: bitwise
    benchmark.group = f"binary {op} {name} {threads}t"
    benchmark.extra_info.update(shape=name, op=op)
    benchmark(fn)
    record_rate(a.nbytes + b.nbytes + c.nbytes, "GB/s", 1e9)


@pytest.mark.parametrize("shape", [(4096, 1024), (32, 64)], ids=["4M", "32x64"])
def test_sum_to_shape(benchmark, backend, ops, threads, rng, reference, assert_close,
                      record_rate, shape):
    """A bias-like gradient: (N, D) summed to (D,) (NumPy: x.sum(axis=0, out=...))."""
    x = rng.standard_normal(shape, dtype=np.float32)
    out = np.empty(shape[1:], np.float32)
    if backend == "compiled":
        def fn():
            ops.sum_to_shape(x, shape[1:], out=out)
    else:
        def fn():
            x.sum(axis=0, out=out)
    fn()
    assert_close(out, reference.sum_to_shape(x, shape[1:]), f"sum_to_shape {shape}")
    benchmark.group = f"sum_to_shape {shape} {threads}t"
    benchmark(fn)
    record_rate(x.nbytes + out.nbytes, "GB/s", 1e9)


# ---- fastnn.ops' primitives: exp and reductions over an axis -------------------------
BIG = (4096, 1024)


def test_exp(benchmark, backend, ops, threads, rng, reference, assert_close, record_rate):
    """exp of 4M float32 (NumPy: np.exp(x, out=...), its SIMD exp; compiled:
    ops.unary("exp", x, out=...), the vectorised exp of csrc/vexp.h)."""
    x = rng.standard_normal(BIG, dtype=np.float32)
    out = np.empty_like(x)
    if backend == "compiled":
        def fn():
            ops.unary("exp", x, out=out)
    else:
        def fn():
            np.exp(x, out=out)
    fn()
    assert_close(out, reference.unary("exp", x), "exp")
    benchmark.group = f"unary exp {BIG} {threads}t"
    benchmark(fn)
    record_rate(x.nbytes + out.nbytes, "GB/s", 1e9)


@pytest.mark.parametrize("axis", [-1, 0], ids=["last_axis", "first_axis"])
def test_reduce_sum(benchmark, backend, ops, threads, rng, reference, assert_close,
                    record_rate, axis):
    """A sum over the last axis ((N, D) -> (N,): a row sum, a loss) and over the
    first ((N, D) -> (D,): a bias gradient) of 4M float32. NumPy: x.sum(axis,
    out=...) (float32 accumulation); compiled: ops.reduce("sum", x, axis,
    out=...) (float64 accumulation, bitwise the same for any thread count)."""
    x = rng.standard_normal(BIG, dtype=np.float32)
    out = np.empty(BIG[0] if axis == -1 else BIG[1], np.float32)
    if backend == "compiled":
        def fn():
            ops.reduce("sum", x, axis, out=out)
    else:
        def fn():
            x.sum(axis=axis, out=out)
    fn()
    assert_close(out, reference.reduce("sum", x, axis), f"sum over axis {axis}")
    benchmark.group = f"reduce sum {BIG} axis {axis} {threads}t"
    benchmark(fn)
    record_rate(x.nbytes + out.nbytes, "GB/s", 1e9)
