"""Broadcast element-wise ops, sum_to_shape, concatenate / split and batch_matmul:
CompiledOps against NumpyOps (float32 and float64) over many broadcasting
patterns and odd sizes, NumpyOps' gradients against float64 finite
differences, the maximum / minimum tie rule, NaN, in-place calls, 1 vs 2
threads bitwise, and bad input raising the same errors on both backends."""
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend import compiled_ops as compiled_module
from fastnn.backend.ops import BINARY_OPS
from testing_utils import numeric_grad, on_threads

DTYPES = [np.float32, np.float64]
# One IEEE operation per element: the forward passes agree bitwise, but
# power's: the kernels call libm's pow, NumPy its own SIMD one (a few ulp).
# Gradient sums run in double in both backends but in different orders
# (NumPy's pairwise, the kernels' row order): they agree to the final rounding.
GRAD_TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-11)}
POW_TOL = {np.float32: dict(rtol=5e-7, atol=0), np.float64: dict(rtol=1e-14, atol=0)}
# power's gradient terms differ by those ulp too, and a sum of them cancels.
POW_GRAD_TOL = {np.float32: dict(rtol=1e-5, atol=2e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


def _assert_forward(got, want, op, msg=""):
    """Bitwise, or within a few ulp for power (NaN where NaN)."""
    if op == "power":
        np.testing.assert_allclose(got, want, **POW_TOL[want.dtype.type], err_msg=msg)
    else:
        np.testing.assert_array_equal(got, want, err_msg=msg)

# (a's shape, b's shape): every broadcasting pattern the kernels special-case,
# and odd sizes (1, primes, not multiples of 8 or 16, past the kernels' blocks).
PATTERNS = [
    ((), ()),                       # 0-d with 0-d
    ((7,), ()),                     # a scalar b
    ((), (13,)),                    # a scalar a
    ((1,), (17,)),
    ((37,), (37,)),                 # same shape: one contiguous axis
    ((5, 33), (5, 33)),
    ((11, 19), (19,)),              # (N, D) + (D,): row broadcast
    ((11, 19), (11, 1)),            # (N, D) + (N, 1): column broadcast
    ((1, 19), (11, 1)),             # outer product
    ((3, 1, 5), (1, 7, 5)),         # (N, 1, D) + (1, T, D)
    ((3, 7, 5), (3, 1, 5)),         # a middle axis summed
    ((2, 3, 4, 5), (3, 1, 5)),      # different ranks
    ((4, 1, 6, 1), (1, 5, 1, 3)),   # alternating
    ((6, 1), (1,)),
    ((2, 1, 3), (2, 4, 1)),
    ((1, 1, 1), (1,)),              # size-one everything
    ((130, 600), (600,)),           # two column blocks of the reduction
    ((3, 1000), (3, 1)),            # long inner sums: 8 lanes and a tail
    ((50, 7), (7,)),                # short rows grouped into one unit
    ((1000, 3), (1, 3)),
    ((0, 3), (3,)),                 # empty output, operand not empty
    ((2, 0), (1, 1)),
    ((1,), (0,)),
]


def _operands(rng, a_shape, b_shape, dtype, op="add"):
    """a and b with no ties (a - b is never within 0.05 of 0) and b away from 0;
    for power a > 0 (b, either sign, is the base when the test swaps them)."""
    a = (rng.integers(-20, 21, size=a_shape) * 0.1 + 0.03).astype(dtype)
    b = (rng.integers(-20, 21, size=b_shape) * 0.1 + 0.08).astype(dtype)
    if op == "divide":
        b = (np.sign(b) * (0.5 + np.abs(b))).astype(dtype)
    if op == "power":
        a = np.abs(a).astype(dtype)
    return np.asarray(a), np.asarray(b)


def _check_backends(numpy_ops, compiled_ops, op, a, b, dy):
    want = numpy_ops.binary(op, a, b)
    got = compiled_ops.binary(op, a, b)
    assert got.shape == want.shape and got.dtype == want.dtype == a.dtype
    _assert_forward(got, want, op, f"{op} {a.shape} {b.shape}")
    da_ref, db_ref = numpy_ops.binary_backward(op, dy, a, b)
    da, db = compiled_ops.binary_backward(op, dy, a, b)
    for g, ref, x, name in ((da, da_ref, a, "da"), (db, db_ref, b, "db")):
        assert g.shape == x.shape and g.dtype == x.dtype, name
        tol = (POW_GRAD_TOL if op == "power" else GRAD_TOL)[a.dtype.type]
        np.testing.assert_allclose(g, ref, **tol, err_msg=f"{op} {name} {a.shape} {b.shape}")


def test_codes_match_ops():
    assert _core.KERNEL_BINARY_OPS == BINARY_OPS
    assert [compiled_module.BINARY_CODES[o] for o in BINARY_OPS] == list(range(len(BINARY_OPS)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY_OPS)
@pytest.mark.parametrize("a_shape,b_shape", PATTERNS)
def test_compiled_matches_numpy(numpy_ops, compiled_ops, op, a_shape, b_shape, dtype, rng):
    a, b = _operands(rng, a_shape, b_shape, dtype, op)
    dy = np.asarray(rng.standard_normal(np.broadcast_shapes(a_shape, b_shape))).astype(dtype)
    _check_backends(numpy_ops, compiled_ops, op, a, b, dy)
    _check_backends(numpy_ops, compiled_ops, op, b, a, dy)     # the other way round


DIMS = st.sampled_from([1, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31])


@st.composite
def broadcast_pairs(draw):
    """Two shapes that broadcast: each operand keeps a suffix of a common shape,
    with any of its axes shrunk to 1."""
    shape = draw(st.lists(DIMS, min_size=0, max_size=4))

    def operand():
        lead = draw(st.integers(0, len(shape)))
        return tuple(1 if draw(st.booleans()) else n for n in shape[lead:])
    return operand(), operand()


@given(pair=broadcast_pairs(), op=st.sampled_from(BINARY_OPS), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**32 - 1))
def test_compiled_matches_numpy_drawn(numpy_ops, compiled_ops, pair, op, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, *pair, dtype, op)
    dy = np.asarray(rng.standard_normal(np.broadcast_shapes(*pair))).astype(dtype)
    _check_backends(numpy_ops, compiled_ops, op, a, b, dy)


@pytest.mark.parametrize("op", BINARY_OPS)
@pytest.mark.parametrize("a_shape,b_shape", [
    ((), ()), ((4,), ()), ((3, 4), (4,)), ((3, 4), (3, 1)), ((2, 1, 3), (1, 4, 3)),
    ((2, 3), (1, 2, 1)), ((1,), (3, 1)),
])
def test_numpy_gradients_match_finite_differences(numpy_ops, op, a_shape, b_shape):
    rng = np.random.default_rng(7)
    a, b = _operands(rng, a_shape, b_shape, np.float64, op)
    a, b = a.copy(), b.copy()                 # writable 0-d arrays for numeric_grad
    w = np.asarray(rng.standard_normal(np.broadcast_shapes(a_shape, b_shape)))

    def loss():
        return float((numpy_ops.binary(op, a, b) * w).sum())

    da, db = numpy_ops.binary_backward(op, w, a, b)
    np.testing.assert_allclose(da, numeric_grad(loss, a), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maximum_minimum_tie_rule(ops, dtype):
    """TensorFlow's rule: a takes dy on ties (a >= b for maximum, a <= b for minimum)."""
    a = np.array([1.0, 2.0, 3.0, 5.0], dtype)
    b = np.array([1.0, 1.0, 4.0, 5.0], dtype)
    dy = np.array([10.0, 20.0, 30.0, 40.0], dtype)
    da, db = ops.binary_backward("maximum", dy, a, b)
    np.testing.assert_array_equal(da, [10, 20, 0, 40])
    np.testing.assert_array_equal(db, [0, 0, 30, 0])
    da, db = ops.binary_backward("minimum", dy, a, b)
    np.testing.assert_array_equal(da, [10, 0, 30, 40])
    np.testing.assert_array_equal(db, [0, 20, 0, 0])
    # A broadcast scalar b sums the dy it wins: ties go to a.
    da, db = ops.binary_backward("maximum", dy, a, np.array(2.0, dtype))
    np.testing.assert_array_equal(da, [0, 20, 30, 40])
    assert db.shape == () and db == 10


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate(ops, dtype):
    a = np.array([np.nan, 1.0, np.inf, 2.0, -np.inf], dtype)
    b = np.array([1.0, np.nan, 1.0, 0.0, np.inf], dtype)
    with np.errstate(all="raise"):            # the NumPy backend must not warn either
        for op in ("maximum", "minimum"):
            y = ops.binary(op, a, b)
            assert np.isnan(y[:2]).all() and y[2] == (np.inf if op == "maximum" else 1.0)
        y = ops.binary("divide", a, b)
        assert np.isnan(y[0]) and np.isnan(y[1]) and y[2] == np.inf and y[3] == np.inf
        assert np.isnan(ops.binary("add", a, b)[4])
        # A NaN comparison sends dy to b (where(a >= b, dy, 0) / where(a >= b, 0, dy)).
        dy = np.arange(1.0, 6.0).astype(dtype)
        da, db = ops.binary_backward("maximum", dy, a, b)
        np.testing.assert_array_equal(da, [0, 0, 3, 4, 0])
        np.testing.assert_array_equal(db, [1, 2, 0, 0, 5])
        # Inf in dy goes where it belongs and nowhere else (a select, not a product).
        da, db = ops.binary_backward("maximum", np.full(5, np.inf, dtype), a, b)
        np.testing.assert_array_equal(db, [np.inf, np.inf, 0, 0, np.inf])
        da, db = ops.binary_backward("divide", np.ones(5, dtype), a, b)
        assert np.isinf(da[3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_out(numpy_ops, compiled_ops, dtype, rng):
    """out=a / out=b (the graph's gradient accumulation: binary("add", g1, g2, out=acc))."""
    for a_shape, b_shape in [((5, 9), (5, 9)), ((5, 9), (9,)), ((5, 9), (5, 1)), ((), ())]:
        for op in BINARY_OPS:
            a, b = _operands(rng, a_shape, b_shape, dtype, op)
            want = numpy_ops.binary(op, a, b)
            for backend in (numpy_ops, compiled_ops):
                acc = a.copy()
                assert backend.binary(op, acc, b, out=acc) is acc
                _assert_forward(acc, want, op)
                if b.shape == want.shape:
                    acc = b.copy()
                    assert backend.binary(op, a, acc, out=acc) is acc
                    _assert_forward(acc, want, op)
                out = np.full(want.shape, np.nan, dtype)
                assert backend.binary(op, a, b, out=out) is out
                _assert_forward(out, want, op)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_outputs(ops, dtype, rng):
    a, b = _operands(rng, (4, 6), (6,), dtype, "multiply")
    dy = rng.standard_normal((4, 6)).astype(dtype)
    da_out = np.full((4, 6), np.nan, dtype)       # OVERWRITTEN, never read
    db_out = np.full((6,), np.nan, dtype)
    da, db = ops.binary_backward("multiply", dy, a, b, da_out=da_out, db_out=db_out)
    assert da is da_out and db is db_out
    np.testing.assert_allclose(da, dy * b, rtol=1e-6)
    np.testing.assert_allclose(db, (dy * a).sum(axis=0), rtol=1e-5)
    da, db = ops.binary_backward("multiply", dy, a, b, da_out=False)
    assert da is None and db.shape == (6,)
    assert ops.binary_backward("add", dy, a, b, da_out=False, db_out=False) == (None, None)
    # add's gradient of a full-shape operand is a new array, never dy itself.
    da, _ = ops.binary_backward("add", dy, a, b, db_out=False)
    assert da is not dy and not np.shares_memory(da, dy)
    np.testing.assert_array_equal(da, dy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_operands(numpy_ops, compiled_ops, dtype, rng):
    base = rng.standard_normal((6, 10)).astype(dtype)
    a = base[:, ::2]                                        # (6, 5), strided rows
    b = base[0, 1::2]                                       # (5,), strided
    dy = rng.standard_normal((6, 5)).astype(dtype)[:, ::-1]  # negative strides
    _check_backends(numpy_ops, compiled_ops, "multiply", a, b, dy)
    _check_backends(numpy_ops, compiled_ops, "maximum", a.T, base[:, 3:4].T, dy.T)  # (1, 6) strided


# ---- sum_to_shape ------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,shape", [
    ((), ()), ((7,), ()), ((7,), (1,)), ((3, 5), (5,)), ((3, 5), (3, 1)), ((3, 5), (1, 1)),
    ((3, 5), ()), ((2, 3, 4), (3, 1)), ((2, 3, 4), (2, 1, 4)), ((4, 1, 6), (1, 1, 6)),
    ((130, 600), (600,)), ((3, 1000), (3, 1)), ((0, 4), (4,)), ((0, 4), (1, 1)),
])
def test_sum_to_shape(numpy_ops, compiled_ops, x_shape, shape, dtype, rng):
    x = np.asarray(rng.standard_normal(x_shape)).astype(dtype)
    lead = len(x_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1)
    want = x.astype(np.float64).sum(axis=axes).reshape(shape)
    for backend in (numpy_ops, compiled_ops):
        got = backend.sum_to_shape(x, shape)
        assert got.shape == shape and got.dtype == dtype
        np.testing.assert_allclose(got, want, **GRAD_TOL[dtype])
        out = np.full(shape, np.nan, dtype)
        assert backend.sum_to_shape(x, list(shape), out=out) is out
        np.testing.assert_array_equal(out, got)


def test_sum_to_shape_of_own_shape(ops, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert ops.sum_to_shape(x, (3, 4)) is x
    out = np.empty((3, 4), np.float32)
    assert ops.sum_to_shape(x, (3, 4), out=out) is out
    np.testing.assert_array_equal(out, x)


# ---- concatenate / split ------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes,axis", [
    ([(3,)], 0),
    ([(3,), (5,), (1,)], 0),
    ([(2, 3), (2, 5)], 1),
    ([(2, 3), (2, 5)], -1),
    ([(2, 3), (7, 3), (1, 3)], 0),
    ([(4, 0, 2), (4, 3, 2), (4, 1, 2)], 1),      # an empty piece
    ([(0, 3), (0, 2)], 1),                      # an empty result
    ([(3, 70000), (3, 3)], 1),                  # long rows: chunked copies
    ([(2, 3, 5)] * 20, -2),                     # more pieces than the wrapper's stack tables
    ([(2, 1)] * 70, 1),                         # more than the kernel's stack tables
])
def test_concatenate_and_split(numpy_ops, compiled_ops, shapes, axis, dtype, rng):
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    want = np.concatenate(xs, axis=axis)
    sizes = [s[axis] for s in shapes]
    for backend in (numpy_ops, compiled_ops):
        got = backend.concatenate(xs, axis)
        assert got.flags.c_contiguous and got.dtype == dtype
        np.testing.assert_array_equal(got, want)
        out = np.full(want.shape, np.nan, dtype)
        assert backend.concatenate(tuple(xs), axis, out=out) is out
        np.testing.assert_array_equal(out, want)
        pieces = backend.split(want, sizes, axis)
        assert len(pieces) == len(xs)
        for p, x in zip(pieces, xs):
            assert p.flags.c_contiguous and p.dtype == dtype and not np.shares_memory(p, want)
            np.testing.assert_array_equal(p, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_concatenate_non_contiguous_and_split_outs(ops, dtype, rng):
    base = rng.standard_normal((6, 8)).astype(dtype)
    xs = [base[:, ::2], base[:, 1::2], base[:, 1:2]]        # (6, 4), (6, 4), (6, 1) views
    x = ops.concatenate(xs, 1)
    np.testing.assert_array_equal(x, np.concatenate(xs, 1))
    first = np.full((6, 4), np.nan, dtype)
    pieces = ops.split(x, [4, 4, 1], 1, outs=[first, False, None])
    assert pieces[0] is first and pieces[1] is None
    np.testing.assert_array_equal(first, xs[0])
    np.testing.assert_array_equal(pieces[2], xs[2])
    np.testing.assert_array_equal(ops.split(x[:, ::-1], [9], 1)[0], x[:, ::-1])


# ---- batch_matmul -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,m,n,k", [
    (1, 1, 1, 1), (3, 5, 7, 2), (4, 17, 13, 31), (2, 64, 40, 33), (1, 200, 130, 90),
    (2, 0, 3, 4), (2, 3, 4, 0), (0, 3, 4, 5),
])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_batch_matmul(numpy_ops, compiled_ops, batch, m, n, k, ta, tb, dtype, rng):
    a = rng.standard_normal((batch, k, m) if ta else (batch, m, k)).astype(dtype)
    b = rng.standard_normal((batch, n, k) if tb else (batch, k, n)).astype(dtype)
    want = np.matmul(a.transpose(0, 2, 1) if ta else a, b.transpose(0, 2, 1) if tb else b)
    eps = 1e-5 if dtype == np.float32 else 1e-12
    tol = dict(rtol=eps, atol=eps * max(k, 1))
    for backend in (numpy_ops, compiled_ops):
        got = backend.batch_matmul(a, b, transpose_a=ta, transpose_b=tb)
        assert got.shape == (batch, m, n) and got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
        out = np.full((batch, m, n), np.nan, dtype)
        assert backend.batch_matmul(a, b, transpose_a=ta, transpose_b=tb, out=out) is out
        np.testing.assert_allclose(out, want, **tol)


def test_batch_matmul_non_contiguous(ops, rng):
    a = rng.standard_normal((3, 8, 5)).astype(np.float32)[:, ::2]      # (3, 4, 5) view
    b = rng.standard_normal((3, 6, 5)).astype(np.float32).transpose(0, 2, 1)
    np.testing.assert_allclose(ops.batch_matmul(a, b), a @ b, rtol=1e-5, atol=1e-5)


# ---- determinism: 1 vs 2 threads ----------------------------------------------------

def _threaded(fn, serial=False):
    """fn() with 1 and with 2 threads, the oversubscription guard off, each run
    checked to have really used that many threads (testing_utils.on_threads).
    serial=True: a call that runs on one thread by design (a plain copy, or
    too few outputs to split: work is split over outputs only), checked to."""
    results = []
    for n in (1, 2):
        with on_threads(n, check=not serial):
            results.append(fn())
        assert not serial or _core.max_team_seen() <= 1
    return results


# sum_serial: sum_to_shape(dy, b.shape) runs on one thread -- same shapes (a
# copy), or 37 sums, one unit of work.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_shape,b_shape,sum_serial", [
    ((600, 1000), (600, 1000), True), ((600, 1001), (1001,), False),
    ((1003, 600), (1003, 1), False), ((40, 1, 300), (1, 50, 300), False),
    ((3000, 37), (37,), True), ((7, 20000), (7, 1), False),
])
def test_one_and_two_threads_bitwise_equal(compiled_ops, numpy_ops, a_shape, b_shape, sum_serial,
                                            dtype, rng):
    for op in ("add", "multiply", "divide", "maximum"):
        a, b = _operands(rng, a_shape, b_shape, dtype, op)
        dy = rng.standard_normal(np.broadcast_shapes(a_shape, b_shape)).astype(dtype)
        y1, y2 = _threaded(lambda: compiled_ops.binary(op, a, b))
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(y1, numpy_ops.binary(op, a, b))
        (da1, db1), (da2, db2) = _threaded(lambda: compiled_ops.binary_backward(op, dy, a, b))
        assert np.array_equal(da1, da2) and np.array_equal(db1, db2), op
    s1, s2 = _threaded(lambda: compiled_ops.sum_to_shape(dy, b.shape), serial=sum_serial)
    assert np.array_equal(s1, s2)


def test_concat_and_batch_matmul_threads_bitwise_equal(compiled_ops, rng):
    xs = [rng.standard_normal((400, n)).astype(np.float32) for n in (300, 1, 517)]
    c1, c2 = _threaded(lambda: compiled_ops.concatenate(xs, 1))
    np.testing.assert_array_equal(c1, c2)
    p1, p2 = _threaded(lambda: compiled_ops.split(c1, [300, 1, 517], -1))
    assert all(np.array_equal(x, y) for x, y in zip(p1, p2))
    # One product per thread (128 of them: enough work for two threads), then
    # products big enough to share out inside the GEMM.
    for batch, m, n, k in [(128, 24, 20, 30), (2, 300, 200, 150)]:
        a = rng.standard_normal((batch, m, k)).astype(np.float32)
        b = rng.standard_normal((batch, n, k)).astype(np.float32)
        m1, m2 = _threaded(lambda: compiled_ops.batch_matmul(a, b, transpose_b=True))
        np.testing.assert_array_equal(m1, m2)


def test_concurrent_python_threads(compiled_ops, rng):
    """Several Python threads in the kernels at once (the GIL is released; the
    kernels keep no state): each gets the serial result."""
    cases = []
    for a_shape, b_shape in [((300, 257), (257,)), ((64, 1, 30), (1, 50, 30)), ((9, 5000), (9, 1))]:
        a, b = _operands(rng, a_shape, b_shape, np.float32, "multiply")
        dy = rng.standard_normal(np.broadcast_shapes(a_shape, b_shape)).astype(np.float32)
        cases.append((a, b, dy, compiled_ops.binary_backward("multiply", dy, a, b)))
    failures = []

    def work(i):
        a, b, dy, (da, db) = cases[i % len(cases)]
        for _ in range(20):
            got_a, got_b = compiled_ops.binary_backward("multiply", dy, a, b)
            if not (np.array_equal(got_a, da) and np.array_equal(got_b, db)):
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---- bad input: the same error, naming the op, the argument and the shapes ------------

F32 = np.ones((3, 4), np.float32)
ROW = np.ones((4,), np.float32)
VIEW_BASE = np.zeros((4, 5), np.float32)
READ_ONLY = np.ones((3, 4), np.float32)
READ_ONLY.flags.writeable = False
DY = np.ones((3, 4), np.float32)

BAD_CALLS = [
    # binary
    (lambda o: o.binary("pow", F32, F32), ValueError, r"binary: op must be one of"),
    (lambda o: o.binary(None, F32, F32), ValueError, r"op must be one of"),
    (lambda o: o.binary("add", F32, F32.astype(np.float64)), TypeError,
     r"binary add: a and b must share a float32 or float64 dtype, got float32 and float64"),
    (lambda o: o.binary("add", np.ones(3, int), np.ones(3, int)), TypeError, r"binary add: .*int"),
    (lambda o: o.binary("add", [1.0], F32), TypeError, r"binary add: a must be a numpy array"),
    (lambda o: o.binary("multiply", F32, np.ones(5, np.float32)), ValueError,
     r"binary multiply: a \(3, 4\) and b \(5,\) do not broadcast"),
    (lambda o: o.binary("add", F32, ROW, out=np.empty((4, 3), np.float32)), ValueError,
     r"binary add: out must have shape \(3, 4\) .*float32.* got \(4, 3\)"),
    (lambda o: o.binary("add", F32, ROW, out=np.empty((3, 4))), ValueError,
     r"binary add: out must have shape \(3, 4\) and dtype float32"),
    (lambda o: o.binary("add", F32, ROW, out=np.empty((4, 3), np.float32).T), ValueError,
     r"binary add: out must be C-contiguous and writable"),
    (lambda o: o.binary("add", F32, ROW, out=READ_ONLY), ValueError,
     r"binary add: out must be C-contiguous and writable"),
    (lambda o: o.binary("add", F32, ROW, out=[0.0]), TypeError,
     r"binary add: out must be a numpy array"),
    (lambda o: o.binary("add", ROW, F32, out=ROW), ValueError,
     r"binary add: out must have shape \(3, 4\)"),
    (lambda o: o.binary("add", VIEW_BASE[1:], VIEW_BASE[1:], out=VIEW_BASE[:3]), ValueError,
     r"binary add: out \(3, 5\) shares memory"),
    # binary_backward
    (lambda o: o.binary_backward("max", DY, F32, ROW), ValueError,
     r"binary_backward: op must be one of"),
    (lambda o: o.binary_backward("add", np.ones((3, 5), np.float32), F32, ROW), ValueError,
     r"binary_backward add: dy must have shape \(3, 4\), the broadcast of a \(3, 4\) and b "
     r"\(4,\), got \(3, 5\)"),
    (lambda o: o.binary_backward("add", DY.astype(np.float64), F32, ROW), TypeError,
     r"binary_backward add: dy must be float32"),
    (lambda o: o.binary_backward("add", DY, F32, ROW.astype(np.float64)), TypeError,
     r"binary_backward add: a and b must share"),
    (lambda o: o.binary_backward("add", DY, F32, np.ones(3, np.float32)), ValueError,
     r"binary_backward add: a \(3, 4\) and b \(3,\) do not broadcast"),
    (lambda o: o.binary_backward("add", DY, F32, ROW, db_out=np.empty((3, 4), np.float32)),
     ValueError, r"binary_backward add: db_out must have shape \(4,\) .*like b \(4,\)"),
    (lambda o: o.binary_backward("add", DY, F32, ROW, da_out=DY), ValueError,
     r"binary_backward add: da_out and db_out must not share memory"),
    (lambda o: o.binary_backward("add", [1.0], F32, ROW), TypeError,
     r"dy must be a numpy array|incorrect type"),
    # sum_to_shape
    (lambda o: o.sum_to_shape(F32, (5,)), ValueError,
     r"sum_to_shape: shape \(5,\) does not broadcast to x \(3, 4\)"),
    (lambda o: o.sum_to_shape(F32, (2, 3, 4)), ValueError, r"does not broadcast to x \(3, 4\)"),
    (lambda o: o.sum_to_shape(np.ones((3, 4), int), (4,)), TypeError,
     r"sum_to_shape: x must be float32 or float64"),
    (lambda o: o.sum_to_shape(F32, (4,), out=np.empty((3,), np.float32)), ValueError,
     r"sum_to_shape: out must have shape \(4,\)"),
    (lambda o: o.sum_to_shape(F32, (1.5, 4)), TypeError, r"integer"),
    # concatenate
    (lambda o: o.concatenate([], 0), ValueError, r"concatenate: xs must be a non-empty list"),
    (lambda o: o.concatenate(F32, 0), ValueError, r"concatenate: xs must be a non-empty list"),
    (lambda o: o.concatenate([F32, np.ones((2, 3), np.float32)], 1), ValueError,
     r"concatenate: every array must have the shape of xs\[0\] \(3, 4\) but along axis 1, "
     r"got xs\[1\] \(2, 3\)"),
    (lambda o: o.concatenate([F32, ROW], 0), ValueError, r"concatenate: every array must"),
    (lambda o: o.concatenate([F32, F32], 2), ValueError,
     r"concatenate: axis 2 is out of range for 2-D arrays"),
    (lambda o: o.concatenate([F32, F32], -3), ValueError, r"axis -3 is out of range"),
    (lambda o: o.concatenate([F32, F32], 2**70), ValueError, r"out of range"),
    (lambda o: o.concatenate([F32, F32], 1.0), TypeError, r"integer"),
    (lambda o: o.concatenate([F32, F32.astype(np.float64)], 0), TypeError,
     r"concatenate: the arrays must share a float32 or float64 dtype"),
    (lambda o: o.concatenate([np.ones(2, int), np.ones(2, int)], 0), TypeError,
     r"concatenate: the arrays must share"),
    (lambda o: o.concatenate([F32, [1.0]], 0), TypeError, r"concatenate: xs\[1\] must be a numpy"),
    (lambda o: o.concatenate([np.float32(1.0)], 0), TypeError, r"xs\[0\] must be a numpy array"),
    (lambda o: o.concatenate([np.ones((), np.float32)], 0), ValueError, r"0-d arrays"),
    (lambda o: o.concatenate([F32, F32], 0, out=np.empty((3, 8), np.float32)), ValueError,
     r"concatenate: out must have shape \(6, 4\)"),
    (lambda o: o.concatenate([VIEW_BASE[:2], VIEW_BASE[2:3]], 0, out=VIEW_BASE[1:4]),
     ValueError, r"concatenate: out \(3, 5\) must not share memory with xs\[0\]"),
    # split
    (lambda o: o.split(F32, [1, 2], 1), ValueError,
     r"split: sizes \[1, 2\] must be non-negative ints summing to x.shape\[1\] = 4"),
    (lambda o: o.split(F32, [5, -1], 1), ValueError, r"split: sizes \[5, -1\]"),
    (lambda o: o.split(F32, [2.0, 2.0], 1), ValueError, r"split: sizes"),
    (lambda o: o.split(F32, [], 1), ValueError, r"split: sizes must be a non-empty list"),
    (lambda o: o.split(F32, [4], 2), ValueError, r"split: axis 2 is out of range for 2-D"),
    (lambda o: o.split(np.ones((3, 4), int), [4], 1), TypeError, r"split: x must be float32"),
    (lambda o: o.split(F32, [1, 3], 1, outs=[None]), ValueError,
     r"split: outs must be None or a list of 2 entries"),
    (lambda o: o.split(F32, [1, 3], 1, outs=[None, np.empty((3, 2), np.float32)]), ValueError,
     r"split: outs\[1\] must have shape \(3, 3\)"),
    # batch_matmul
    (lambda o: o.batch_matmul(F32, F32), ValueError,
     r"batch_matmul: a and b must be 3-D \(batch, rows, columns\), got a \(3, 4\)"),
    (lambda o: o.batch_matmul(np.ones((2, 3, 4)), np.ones((3, 4, 5))), ValueError,
     r"batch_matmul: op\(a\) is \(2, 3, 4\) and op\(b\) is \(3, 4, 5\)"),
    (lambda o: o.batch_matmul(np.ones((2, 3, 4)), np.ones((2, 5, 5))), ValueError,
     r"inner dimensions must match"),
    (lambda o: o.batch_matmul(np.ones((2, 3, 4)), np.ones((2, 4, 5), np.float32)), TypeError,
     r"batch_matmul: a and b must share a float32 or float64 dtype"),
    (lambda o: o.batch_matmul(np.ones((2, 3, 4)), np.ones((2, 4, 5)), out=np.empty((2, 3, 4))),
     ValueError, r"batch_matmul: out must have shape \(2, 3, 5\)"),
]


@pytest.mark.parametrize("call,error,match", BAD_CALLS)
def test_bad_input_raises_the_same_error_on_both_backends(ops, call, error, match):
    with pytest.raises(error, match=match):
        call(ops)


def test_bad_input_writes_nothing(ops):
    out = np.full((3, 4), 7.0, np.float32)
    with pytest.raises(ValueError):
        ops.binary("add", F32, np.ones(5, np.float32), out=out)
    assert (out == 7.0).all()
