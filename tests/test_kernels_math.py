"""fastnn.ops' primitives: unary ops, power, comparisons, where, reductions over
axes, arg_reduce, cumsum, softmax and log-softmax.

CompiledOps against NumpyOps (float32 and float64) on odd sizes and shapes,
NumpyOps' gradients against float64 finite differences, the tie rules
(abs'(0) = 0, sign' = 0, max / min shared evenly, power's db where a <= 0),
NaN and empty arrays, in-place calls, 1 vs 2 threads bitwise, the hand-offs to
NumPy shown by show_config, and bad input raising the same errors on both
backends."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn
from fastnn._ext import _core
from fastnn.backend import get_ops
from fastnn.backend.ops import COMPARE_OPS, REDUCE_OPS, UNARY_OPS
from testing_utils import numeric_grad, on_threads

DTYPES = [np.float32, np.float64]
# libm's exp / log / log1p (the kernels) and NumPy's SIMD ones differ by a few ulp;
# every other unary op, every derivative and every comparison, select, max and min
# is one IEEE operation per element: bitwise equal.
LIBM_TOL = {np.float32: dict(rtol=1e-6, atol=0), np.float64: dict(rtol=1e-14, atol=0)}
LIBM_OPS = ("exp", "log", "log1p")
# Sums run in double in both backends but in different orders: they agree to the
# final rounding.
SUM_TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
# Softmax: exp's few ulp, then a sum and a division or a log.
SOFTMAX_TOL = {np.float32: dict(rtol=3e-6, atol=3e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}

# Odd sizes: 1, primes, not multiples of 8 or 16, past the kernels' blocks.
SHAPES = [(), (1,), (7,), (13, 17), (3, 5, 31), (2, 1, 9), (1000, 3), (3, 1000), (2, 0)]


def _unary_input(rng, op, shape, dtype):
    """Inputs in op's domain, away from its kinks (0 for abs, sign, sqrt, log)."""
    x = rng.uniform(0.1, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    if op in ("sqrt", "log"):
        x = np.abs(x)
    elif op == "log1p":
        x = np.abs(x) - 0.9          # > -1
    return np.asarray(x).astype(dtype)


def _threaded(fn, serial=False):
    """fn() with 1 and with 2 threads, the oversubscription guard off, each run
    checked to have really used that many threads (testing_utils.on_threads;
    every case is far above the kernels' one-thread threshold). serial=True: a
    call that runs on one thread by design (a reduction to one value: work is
    split over outputs only), checked to."""
    results = []
    for n in (1, 2):
        with on_threads(n, check=not serial):
            results.append(fn())
        assert not serial or _core.max_team_seen() <= 1
    return results


def test_codes_match_ops():
    assert _core.KERNEL_UNARY_OPS == UNARY_OPS
    assert _core.KERNEL_COMPARE_OPS == COMPARE_OPS
    assert _core.KERNEL_REDUCE_OPS == REDUCE_OPS


# ---- unary -----------------------------------------------------------------------

def _check_unary(numpy_ops, compiled_ops, op, x, dy):
    want = numpy_ops.unary(op, x)
    got = compiled_ops.unary(op, x)
    assert got.shape == want.shape == x.shape and got.dtype == want.dtype == x.dtype
    if op in LIBM_OPS:
        np.testing.assert_allclose(got, want, **LIBM_TOL[x.dtype.type], err_msg=op)
    else:
        np.testing.assert_array_equal(got, want, err_msg=op)
    # Same x and y to both: the derivatives are arithmetic, bitwise equal.
    dx = compiled_ops.unary_backward(op, dy, x, want)
    np.testing.assert_array_equal(dx, numpy_ops.unary_backward(op, dy, x, want), err_msg=op)
    assert dx.shape == x.shape and dx.dtype == x.dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(100003,)])
@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary_compiled_matches_numpy(numpy_ops, compiled_ops, op, shape, dtype, rng):
    x = _unary_input(rng, op, shape, dtype)
    dy = np.asarray(rng.standard_normal(shape)).astype(dtype)
    _check_unary(numpy_ops, compiled_ops, op, x, dy)
    # Outside the domain too: NaN, inf and -inf where NumPy gives them.
    _check_unary(numpy_ops, compiled_ops, op, np.asarray(rng.standard_normal(shape) * 3)
                 .astype(dtype), dy)


DIMS = st.sampled_from([1, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31])


@given(shape=st.lists(DIMS, min_size=0, max_size=4), op=st.sampled_from(UNARY_OPS),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_unary_compiled_matches_numpy_drawn(numpy_ops, compiled_ops, shape, op, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _unary_input(rng, op, tuple(shape), dtype)
    dy = np.asarray(rng.standard_normal(shape)).astype(dtype)
    _check_unary(numpy_ops, compiled_ops, op, x, dy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_special_values(ops, dtype):
    """NumPy's values (sign(0) = 0, log(0) = -inf, sqrt(-1) = NaN ...), no warnings,
    and TensorFlow's derivative rules abs'(0) = 0, sign' = 0."""
    x = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 4.0], dtype)
    with np.errstate(all="raise"):
        sign = ops.unary("sign", x)
        np.testing.assert_array_equal(sign, [0, 0, -1, 1, -1, np.nan, 1])
        assert not np.signbit(sign[:2]).any()                  # +0 for both zeros
        np.testing.assert_array_equal(ops.unary("abs", x), [0, 0, 1, np.inf, np.inf, np.nan, 4])
        np.testing.assert_array_equal(ops.unary("log", x)[:3], [-np.inf, -np.inf, np.nan])
        np.testing.assert_array_equal(ops.unary("sqrt", x)[[0, 2, 6]], [0, np.nan, 2])
        np.testing.assert_array_equal(ops.unary("reciprocal", x)[[0, 1, 3]],
                                      [np.inf, -np.inf, 0])
        np.testing.assert_array_equal(ops.unary("log1p", x)[2], -np.inf)
        np.testing.assert_array_equal(ops.unary("exp", x)[[3, 4]], [np.inf, 0])
        dy = np.full(x.shape, 2.0, dtype)
        np.testing.assert_array_equal(ops.unary_backward("abs", dy, x, ops.unary("abs", x))[:3],
                                      [0, 0, -2])
        dx = ops.unary_backward("sign", np.full(x.shape, np.inf, dtype), x, sign)
        np.testing.assert_array_equal(dx, np.zeros(x.shape))
        np.testing.assert_array_equal(
            ops.unary_backward("sqrt", dy[[6]], x[[6]], ops.unary("sqrt", x[[6]])), [0.5])


@pytest.mark.parametrize("op", UNARY_OPS)
@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
def test_unary_gradients_match_finite_differences(numpy_ops, op, shape):
    rng = np.random.default_rng(11)
    x = _unary_input(rng, op, shape, np.float64).copy()
    w = np.asarray(rng.standard_normal(shape))

    def loss():
        return float((numpy_ops.unary(op, x) * w).sum())

    dx = numpy_ops.unary_backward(op, w, x, numpy_ops.unary(op, x))
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary_in_place(numpy_ops, compiled_ops, op, dtype, rng):
    x = _unary_input(rng, op, (6, 7), dtype)
    dy = rng.standard_normal((6, 7)).astype(dtype)
    y = numpy_ops.unary(op, x)
    dx = numpy_ops.unary_backward(op, dy, x, y)
    for backend in (numpy_ops, compiled_ops):
        buf = x.copy()
        assert backend.unary(op, buf, out=buf) is buf
        np.testing.assert_allclose(buf, y, **LIBM_TOL[dtype])
        g = dy.copy()
        assert backend.unary_backward(op, g, x, y, out=g) is g
        np.testing.assert_array_equal(g, dx)
        out = np.full(x.shape, np.nan, dtype)
        assert backend.unary(op, x[:, ::-1], out=out) is out          # non-contiguous x
        np.testing.assert_allclose(out, y[:, ::-1], **LIBM_TOL[dtype])


# ---- power -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_power_rules(ops, dtype):
    """0 ** 0 = 1 (NumPy); db = dy * a**b * log(a) where a > 0, else 0 (TensorFlow);
    da = dy * b * a ** (b - 1) everywhere (NaN for a negative base and a
    non-integer exponent, as the forward value)."""
    a = np.array([0.0, 0.0, 2.0, -2.0, -2.0, 4.0], dtype)
    b = np.array([0.0, 2.0, 3.0, 2.0, 0.5, -0.5], dtype)
    dy = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 2.0], dtype)
    with np.errstate(all="raise"):
        y = ops.binary("power", a, b)
        np.testing.assert_array_equal(y, [1, 0, 8, 4, np.nan, 0.5])
        da, db = ops.binary_backward("power", dy, a, b)
    np.testing.assert_array_equal(db[[0, 1, 3, 4]], [0, 0, 0, 0])
    np.testing.assert_allclose(db[[2, 5]], [8 * np.log(2.0), 2 * 0.5 * np.log(4.0)], rtol=1e-6)
    np.testing.assert_allclose(da[[1, 2, 3, 5]], [0, 12, -4, -0.5 * 2 * 4 ** -1.5], rtol=1e-6)
    assert np.isnan(da[0]) and np.isnan(da[4])          # 0 * 0 ** -1, pow(-2, -0.5)


# ---- compare -----------------------------------------------------------------------

# (a's shape, b's shape): the broadcasting patterns of test_kernels_elementwise.
PAIRS = [((), ()), ((7,), ()), ((), (13,)), ((37,), (37,)), ((11, 19), (19,)),
         ((11, 19), (11, 1)), ((1, 19), (11, 1)), ((3, 1, 5), (1, 7, 5)),
         ((2, 3, 4, 5), (3, 1, 5)), ((4, 1, 6, 1), (1, 5, 1, 3)), ((0, 3), (3,)),
         ((300, 257), (257,))]


@pytest.mark.parametrize("dtype", DTYPES + [np.int64])
@pytest.mark.parametrize("a_shape,b_shape", PAIRS)
def test_compare_matches_numpy(numpy_ops, compiled_ops, a_shape, b_shape, dtype, rng):
    a = np.asarray(rng.integers(-3, 4, size=a_shape)).astype(dtype)       # many ties
    b = np.asarray(rng.integers(-3, 4, size=b_shape)).astype(dtype)
    if dtype != np.int64 and a.size:
        a.reshape(-1)[::5] = np.nan
    for op in COMPARE_OPS:
        want = getattr(np, op)(a, b)
        for backend in (numpy_ops, compiled_ops):
            got = backend.compare(op, a, b)
            assert got.dtype == np.bool_ and got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"{backend.name} {op}")
        out = np.ones(want.shape, np.bool_)
        assert compiled_ops.compare(op, a, b, out=out) is out
        np.testing.assert_array_equal(out, want)


@given(shapes=st.lists(DIMS, min_size=0, max_size=4).flatmap(
    lambda s: st.tuples(st.just(tuple(s)), st.lists(st.booleans(), min_size=len(s),
                                                    max_size=len(s)))),
       op=st.sampled_from(COMPARE_OPS), dtype=st.sampled_from(DTYPES + [np.int64]),
       seed=st.integers(0, 2**32 - 1))
def test_compare_drawn(numpy_ops, compiled_ops, shapes, op, dtype, seed):
    shape, ones = shapes
    rng = np.random.default_rng(seed)
    b_shape = tuple(1 if o else n for n, o in zip(shape, ones))
    a = np.asarray(rng.integers(-2, 3, size=shape)).astype(dtype)
    b = np.asarray(rng.integers(-2, 3, size=b_shape)).astype(dtype)
    np.testing.assert_array_equal(compiled_ops.compare(op, a, b), numpy_ops.compare(op, a, b))


# ---- where -------------------------------------------------------------------------

WHERE_SHAPES = [((), (), ()), ((5,), (5,), ()), ((5,), (), (5,)), ((3, 4), (3, 4), (3, 4)),
                ((3, 4), (4,), (3, 1)), ((3, 1), (1, 4), ()), ((2, 1, 5), (3, 1), (1, 5)),
                ((1,), (7, 3), (7, 1)), ((0, 2), (2,), ()), ((300, 301), (300, 301), ())]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c_shape,a_shape,b_shape", WHERE_SHAPES)
def test_where_matches_numpy(numpy_ops, compiled_ops, c_shape, a_shape, b_shape, dtype, rng):
    c = np.asarray(rng.random(c_shape) < 0.5)
    a = np.asarray(rng.standard_normal(a_shape)).astype(dtype)
    b = np.asarray(rng.standard_normal(b_shape)).astype(dtype)
    want = np.where(c, a, b)
    for backend in (numpy_ops, compiled_ops):
        got = backend.where(c, a, b)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        if a.shape == want.shape:
            acc = a.copy()
            assert backend.where(c, acc, b, out=acc) is acc
            np.testing.assert_array_equal(acc, want)
        if b.shape == want.shape:
            acc = b.copy()
            assert backend.where(c, a, acc, out=acc) is acc
            np.testing.assert_array_equal(acc, want)


def test_where_non_contiguous_and_nan(ops, rng):
    base = rng.standard_normal((6, 10)).astype(np.float32)
    c = (base > 0)[:, ::2]
    a = base[:, 1::2]
    b = np.full((), np.nan, np.float32)
    np.testing.assert_array_equal(ops.where(c, a, b), np.where(c, a, b))
    np.testing.assert_array_equal(ops.where(c.T, a.T, a.T[:, :1]), np.where(c.T, a.T, a.T[:, :1]))


def test_where_backward_composition_matches_finite_differences(numpy_ops):
    """The caller's backward: where(c, dy, 0) and where(c, 0, dy), each summed to its
    operand's shape."""
    rng = np.random.default_rng(3)
    c = rng.random((3, 4)) < 0.5
    a = rng.standard_normal((4,))
    b = rng.standard_normal((3, 1))
    w = rng.standard_normal((3, 4))
    zero = np.zeros(())

    def loss():
        return float((numpy_ops.where(c, a, b) * w).sum())

    for ops_ in (numpy_ops, get_ops("compiled")):
        da = ops_.sum_to_shape(ops_.where(c, w, zero), a.shape)
        db = ops_.sum_to_shape(ops_.where(c, zero, w), b.shape)
        np.testing.assert_allclose(da, numeric_grad(loss, a), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-6, atol=1e-8)


# ---- reduce ------------------------------------------------------------------------

# (x's shape, axes): inner axis kept / reduced, middle axes, everything, nothing.
REDUCTIONS = [((), None), ((), ()), ((7,), None), ((7,), 0), ((1,), -1), ((13, 17), 0),
              ((13, 17), 1), ((13, 17), (0, 1)), ((13, 17), ()), ((3, 5, 31), 1),
              ((3, 5, 31), (0, 2)), ((3, 5, 31), (-1, 0)), ((2, 1, 9), 1), ((4, 3, 2, 5), (1, 3)),
              ((130, 600), 0), ((3, 1000), 1), ((1000, 3), 0), ((50, 7), 0), ((5, 0, 3), 2),
              ((0, 4), 1)]


def _reduce_input(rng, shape, dtype):
    return np.asarray(rng.standard_normal(shape)).astype(dtype)


def _check_reduce(numpy_ops, compiled_ops, op, x, axes, keepdims, rng):
    want = numpy_ops.reduce(op, x, axes, keepdims)
    got = compiled_ops.reduce(op, x, axes, keepdims)
    assert type(got) is np.ndarray and got.shape == want.shape and got.dtype == x.dtype
    if op in ("sum", "mean"):
        np.testing.assert_allclose(got, want, **SUM_TOL[x.dtype.type], err_msg=f"{op} {axes}")
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"{op} {axes}")
    dy = np.asarray(rng.standard_normal(want.shape)).astype(x.dtype)
    dx = compiled_ops.reduce_backward(op, dy, x, want, axes, keepdims)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    np.testing.assert_array_equal(dx, numpy_ops.reduce_backward(op, dy, x, want, axes,
                                                                keepdims))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axes", REDUCTIONS)
@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_compiled_matches_numpy(numpy_ops, compiled_ops, op, shape, axes, dtype,
                                       keepdims, rng):
    x = _reduce_input(rng, shape, dtype)      # the empty ones reduce non-empty axes
    _check_reduce(numpy_ops, compiled_ops, op, x, axes, keepdims, rng)


@given(shape=st.lists(DIMS, min_size=0, max_size=4), data=st.data(),
       op=st.sampled_from(REDUCE_OPS), dtype=st.sampled_from(DTYPES), keepdims=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_reduce_compiled_matches_numpy_drawn(numpy_ops, compiled_ops, shape, data, op, dtype,
                                             keepdims, seed):
    axes = data.draw(st.one_of(st.none(), st.lists(st.integers(0, len(shape) - 1), unique=True)
                               .map(tuple)) if shape else st.none())
    rng = np.random.default_rng(seed)
    _check_reduce(numpy_ops, compiled_ops, op, _reduce_input(rng, tuple(shape), dtype), axes,
                  keepdims, rng)


def test_reduce_matches_numpy_methods(ops, rng):
    x = rng.standard_normal((4, 5, 6))
    for axes in (None, 0, (1, 2), -1):
        for op in REDUCE_OPS:
            want = getattr(x, op)(axis=axes, keepdims=True)
            np.testing.assert_allclose(ops.reduce(op, x, axes, keepdims=True), want,
                                       rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_nan_and_empty(ops, dtype):
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], dtype)
    with np.errstate(all="raise"):
        for op in REDUCE_OPS:
            y = ops.reduce(op, x, 1)
            assert np.isnan(y[0]) and not np.isnan(y[1]), op
            assert np.isnan(ops.reduce(op, x.T, 0)[0]), op
        np.testing.assert_array_equal(ops.reduce("max", x, 0), [4, np.nan, 6])
        empty = np.zeros((3, 0), dtype)
        np.testing.assert_array_equal(ops.reduce("sum", empty, 1), [0, 0, 0])
        assert np.isnan(ops.reduce("mean", empty, 1)).all()
        assert ops.reduce("max", empty, 0).shape == (0,)       # nothing reduced is empty
        assert ops.reduce_backward("max", np.zeros(3, dtype), empty, np.zeros(3, dtype),
                                   1).shape == (3, 0)
    for op in ("max", "min"):
        with pytest.raises(ValueError, match=rf"reduce {op}: x \(3, 0\) is empty along the "
                                             rf"reduced axes \(1,\)"):
            ops.reduce(op, empty, 1)
        with pytest.raises(ValueError, match=r"is empty"):
            ops.reduce(op, np.zeros((0, 0), dtype), None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_max_min_tie_rule(ops, dtype):
    """TensorFlow's rule: the elements equal to the extreme share dy evenly; where
    the extreme is NaN nothing equals it and the gradient is 0."""
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [5.0, np.nan, 1.0]], dtype)
    dy = np.array([6.0, 9.0, 4.0], dtype)
    y = ops.reduce("max", x, 1)
    dx = ops.reduce_backward("max", dy, x, y, 1)
    np.testing.assert_array_equal(dx, [[0, 3, 3], [3, 3, 3], [0, 0, 0]])
    y = ops.reduce("min", x, -1, keepdims=True)
    dx = ops.reduce_backward("min", dy[:, None], x, y, -1, keepdims=True)
    np.testing.assert_array_equal(dx, [[6, 0, 0], [3, 3, 3], [0, 0, 0]])
    # Over several axes: the ties of the whole reduction share.
    x = np.array([[[1.0, 7.0], [7.0, 0.0]], [[7.0, 7.0], [7.0, 2.0]]], dtype)
    dx = ops.reduce_backward("max", np.array(10.0, dtype), x, ops.reduce("max", x), None)
    np.testing.assert_array_equal(dx, [[[0, 2], [2, 0]], [[2, 2], [2, 0]]])
    # mean: dy / the number of elements reduced.
    dx = ops.reduce_backward("mean", np.ones((1, 2), dtype), x[0], None, 0, keepdims=True)
    np.testing.assert_array_equal(dx, np.full((2, 2), 0.5))


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("shape,axes,keepdims", [
    ((), None, False), ((5,), 0, False), ((3, 4), 1, True), ((3, 4), 0, False),
    ((2, 3, 4), (0, 2), False), ((2, 3, 4), None, True),
])
def test_reduce_gradients_match_finite_differences(numpy_ops, op, shape, axes, keepdims):
    rng = np.random.default_rng(5)
    # Distinct values (no ties: max / min are differentiable there).
    x = (rng.permutation(max(int(np.prod(shape)), 1))[:int(np.prod(shape))] * 0.37 + 0.1)
    x = x.reshape(shape).astype(np.float64)
    w = np.asarray(rng.standard_normal(numpy_ops.reduce(op, x, axes, keepdims).shape))

    def loss():
        return float((numpy_ops.reduce(op, x, axes, keepdims) * w).sum())

    dx = numpy_ops.reduce_backward(op, w, x, numpy_ops.reduce(op, x, axes, keepdims), axes,
                                   keepdims)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_reduce_out_and_non_contiguous(ops, rng):
    x = rng.standard_normal((6, 8)).astype(np.float32)[:, ::2]        # (6, 4) strided
    out = np.full((4,), np.nan, np.float32)
    assert ops.reduce("sum", x, 0, out=out) is out
    np.testing.assert_allclose(out, x.sum(axis=0), rtol=1e-6)
    out = np.full((1, 4), np.nan, np.float32)
    assert ops.reduce("max", x, 0, keepdims=True, out=out) is out
    np.testing.assert_array_equal(out, x.max(axis=0, keepdims=True))
    dx = np.full((6, 4), np.nan, np.float32)
    assert ops.reduce_backward("max", out[0], x, out[0], 0, out=dx) is dx
    np.testing.assert_array_equal(dx, (x == x.max(axis=0)) * out[0])
    same = np.ascontiguousarray(x)
    assert ops.reduce("min", same, (), out=same) is same              # nothing reduced


# ---- arg_reduce and cumsum (handed to NumPy by the compiled backend) --------------

@pytest.mark.parametrize("dtype", DTYPES + [np.int64])
def test_arg_reduce(ops, dtype, rng):
    x = rng.integers(-3, 4, size=(5, 7, 3)).astype(dtype)             # ties: the first wins
    for op in ("argmax", "argmin"):
        fn = getattr(np, op)
        for axis in (None, 0, 1, -1):
            for keepdims in (False, True):
                got = ops.arg_reduce(op, x, axis, keepdims)
                assert got.dtype == np.int64
                np.testing.assert_array_equal(got, fn(x, axis=axis, keepdims=keepdims))
    if dtype != np.int64:
        y = np.array([[1.0, np.nan, 5.0, np.nan]], dtype)
        assert ops.arg_reduce("argmax", y, 1)[0] == 1 == ops.arg_reduce("argmin", y, 1)[0]
    out = np.empty((5, 3), np.int64)
    assert ops.arg_reduce("argmax", x, 1, out=out) is out


@pytest.mark.parametrize("dtype", DTYPES)
def test_cumsum(ops, dtype, rng):
    x = rng.standard_normal((4, 1000, 3)).astype(dtype)
    for axis in (0, 1, -1):
        want = np.cumsum(x.astype(np.float64), axis=axis).astype(dtype)
        got = ops.cumsum(x, axis)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)
    buf = x.copy()
    assert ops.cumsum(buf, 1, out=buf) is buf
    np.testing.assert_array_equal(buf, np.cumsum(x.astype(np.float64), axis=1).astype(dtype))


def test_numpy_hand_offs_are_shown(compiled_ops):
    x = np.ones((2, 3), np.float32)
    compiled_ops.arg_reduce("argmax", x, 1)
    compiled_ops.cumsum(x, 0)
    fallbacks = fastnn.show_config(mode="dicts")["fallbacks"]
    assert "arg_reduce float32" in fallbacks and "cumsum float32" in fallbacks
    # What runs compiled is never recorded.
    compiled_ops.reduce("sum", x, 1)
    compiled_ops.softmax(x.astype(np.float64), 0)
    assert not any(f.startswith(("reduce", "softmax")) for f in
                   fastnn.show_config(mode="dicts")["fallbacks"])


# ---- softmax / log-softmax ------------------------------------------------------------

SOFTMAX_CASES = [((1,), 0), ((7,), -1), ((13, 17), -1), ((13, 17), 0), ((3, 5, 31), 1),
                 ((3, 5, 31), 0), ((2, 300, 3), 1), ((4, 1000), -1), ((1000, 4), 0),
                 ((3, 1, 2), 1), ((0, 5), 1), ((5, 0), 0)]


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES)
def test_softmax_compiled_matches_numpy(numpy_ops, compiled_ops, shape, axis, dtype, log, rng):
    fwd = "log_softmax" if log else "softmax"
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    want = getattr(numpy_ops, fwd)(x, axis)
    got = getattr(compiled_ops, fwd)(x, axis)
    assert got.shape == x.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, **SOFTMAX_TOL[dtype])
    # Backward from the same y: the same sum (in another order), then arithmetic.
    dx = getattr(compiled_ops, fwd + "_backward")(dy, want, axis)
    np.testing.assert_allclose(dx, getattr(numpy_ops, fwd + "_backward")(dy, want, axis),
                               **SOFTMAX_TOL[dtype])
    if x.size:
        total = np.exp(got.astype(np.float64)) if log else got
        np.testing.assert_allclose(total.sum(axis=axis), 1.0, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_is_stable(ops, dtype, rng):
    """Max-shifted: huge logits neither overflow nor lose the spread."""
    x = (rng.standard_normal((6, 9, 30)) * 5 + 1000).astype(dtype)
    for axis in (-1, 1, 0):
        want = _reference_softmax(x.astype(np.float64) - 1000, axis)
        np.testing.assert_allclose(ops.softmax(x, axis), want, rtol=2e-4, atol=1e-7)
        np.testing.assert_allclose(ops.log_softmax(x, axis), np.log(want), rtol=2e-4,
                                   atol=2e-4)


def _reference_softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


SUPPORTED_ISAS = [name for name in _core.ISA_NAMES if _core.isa_supported(name)]


def test_exp_is_accurate_and_the_same_on_every_isa(compiled_ops, rng):
    """The vectorised exp (unary exp, softmax): within 1.5 ulp of the correctly
    rounded value over the whole range, libm's special values, and bitwise the
    same whichever ISA's build runs."""
    specials = [0, -0.0, np.inf, -np.inf, np.nan, 88.73, -104, 1e-30]
    x32 = np.concatenate([rng.uniform(-87.3, 88.7, 200000), rng.uniform(-1, 1, 10000),
                          specials]).astype(np.float32)
    x64 = np.concatenate([rng.uniform(-708, 709, 200000), rng.uniform(-1, 1, 10000),
                          [0, np.inf, -np.inf, np.nan, 709.79, -746, 1e-300]])
    logits = rng.standard_normal((7, 300)).astype(np.float32)
    dy = rng.standard_normal((7, 300)).astype(np.float32)
    before = _core.isa_current()
    results = []
    try:
        for isa in SUPPORTED_ISAS:
            _core.isa_select(isa)
            y = compiled_ops.log_softmax(logits)
            results.append([compiled_ops.unary("exp", x32), compiled_ops.unary("exp", x64), y,
                            compiled_ops.log_softmax_backward(dy, y), compiled_ops.softmax(y, 0)])
    finally:
        _core.isa_select(before)
    for isa, got in zip(SUPPORTED_ISAS, results):
        for a, b in zip(got, results[0]):
            np.testing.assert_array_equal(a, b, err_msg=isa)
    with np.errstate(over="ignore"):
        for x, got in ((x32, results[0][0]), (x64, results[0][1])):
            ref = np.exp(x.astype(np.longdouble))
            rounded = ref.astype(x.dtype)
            ulp = np.spacing(np.abs(rounded)).astype(np.longdouble)
            finite = np.isfinite(rounded) & (ref > np.finfo(x.dtype).tiny)
            assert (np.abs(got[finite] - ref[finite]) / ulp[finite]).max() < 1.5
            np.testing.assert_array_equal(got[~finite], rounded[~finite])


def test_softmax_is_the_activation_kernel(compiled_ops, rng):
    """Ops.softmax on the last axis and the softmax activation are one kernel."""
    x = rng.standard_normal((37, 19)).astype(np.float32)
    y = compiled_ops.softmax(x)
    np.testing.assert_array_equal(y, compiled_ops.activation_forward("softmax", x))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(compiled_ops.softmax_backward(dy, y),
                                  compiled_ops.activation_backward("softmax", dy, x, y))


@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1)])
def test_softmax_gradients_match_finite_differences(numpy_ops, fwd, shape, axis):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)

    def loss():
        return float((getattr(numpy_ops, fwd)(x, axis) * w).sum())

    y = getattr(numpy_ops, fwd)(x, axis)
    dx = getattr(numpy_ops, fwd + "_backward")(w, y, axis)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
def test_softmax_in_place(numpy_ops, compiled_ops, fwd, rng):
    x = rng.standard_normal((5, 6, 7)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for axis in (-1, 1):
        y = getattr(compiled_ops, fwd)(x, axis)
        dx = getattr(compiled_ops, fwd + "_backward")(dy, y, axis)
        for backend in (numpy_ops, compiled_ops):
            buf = x.copy()
            assert getattr(backend, fwd)(buf, axis, out=buf) is buf
            np.testing.assert_allclose(buf, y, **SOFTMAX_TOL[np.float32])
            for alias in ("dy", "y"):
                g, yy = dy.copy(), y.copy()
                out = g if alias == "dy" else yy
                assert getattr(backend, fwd + "_backward")(g, yy, axis, out=out) is out
                np.testing.assert_allclose(out, dx, **SOFTMAX_TOL[np.float32])


# ---- determinism: 1 vs 2 threads --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_bitwise_equal(compiled_ops, dtype, rng):
    x = rng.standard_normal((600, 1001)).astype(dtype)
    pos = np.abs(x) + dtype(0.5)
    dy = rng.standard_normal(x.shape).astype(dtype)
    for op in UNARY_OPS:
        arg = pos if op in ("sqrt", "log", "log1p") else x
        y1, y2 = _threaded(lambda: compiled_ops.unary(op, arg))
        np.testing.assert_array_equal(y1, y2, err_msg=op)
        d1, d2 = _threaded(lambda: compiled_ops.unary_backward(op, dy, arg, y1))
        np.testing.assert_array_equal(d1, d2, err_msg=op)
    row = x[0]
    p1, p2 = _threaded(lambda: compiled_ops.binary("power", pos, row))
    np.testing.assert_array_equal(p1, p2)
    (a1, b1), (a2, b2) = _threaded(lambda: compiled_ops.binary_backward("power", dy, pos, row))
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)
    c1, c2 = _threaded(lambda: compiled_ops.compare("less", x, row))
    np.testing.assert_array_equal(c1, c2)
    w1, w2 = _threaded(lambda: compiled_ops.where(c1, x, np.zeros((), dtype)))
    np.testing.assert_array_equal(w1, w2)
    big = rng.standard_normal((40, 50, 301)).astype(dtype)
    for axes in (None, 0, 1, 2, (0, 2), (1, 2)):
        for op in REDUCE_OPS:
            r1, r2 = _threaded(lambda: compiled_ops.reduce(op, big, axes), serial=axes is None)
            np.testing.assert_array_equal(r1, r2, err_msg=f"{op} {axes}")
            g = np.ones(r1.shape, dtype)
            g1, g2 = _threaded(lambda: compiled_ops.reduce_backward(op, g, big, r1, axes))
            np.testing.assert_array_equal(g1, g2, err_msg=f"{op} {axes}")
    for fwd in ("softmax", "log_softmax"):
        for axis in (-1, 0, 1):
            s1, s2 = _threaded(lambda: getattr(compiled_ops, fwd)(big, axis))
            np.testing.assert_array_equal(s1, s2)
            g = rng.standard_normal(big.shape).astype(dtype)
            b1, b2 = _threaded(lambda: getattr(compiled_ops, fwd + "_backward")(g, s1, axis))
            np.testing.assert_array_equal(b1, b2)


# ---- bad input: the same error on both backends, naming the op, argument and shapes --

F32 = np.ones((3, 4), np.float32)
F64 = np.ones((3, 4), np.float64)
ROW = np.ones((4,), np.float32)
I64 = np.ones((3, 4), np.int64)
COND = np.ones((3, 4), bool)
VIEW_BASE = np.zeros((4, 5), np.float32)
FLAT = np.zeros(16, np.float32)
READ_ONLY = np.ones((3, 4), np.float32)
READ_ONLY.flags.writeable = False

BAD_CALLS = [
    # unary
    (lambda o: o.unary("tanh", F32), ValueError, r"unary: op must be one of \('negative'"),
    (lambda o: o.unary(None, F32), ValueError, r"unary: op must be one of"),
    (lambda o: o.unary("exp", I64), TypeError, r"unary exp: x must be float32 or float64, got "
                                              r"int64"),
    (lambda o: o.unary("exp", [1.0]), TypeError, r"unary exp: x must be a numpy array"),
    (lambda o: o.unary("exp", F32, out=np.empty((4, 3), np.float32)), ValueError,
     r"unary exp: out must have shape \(3, 4\) and dtype float32 like x \(3, 4\), got \(4, 3\)"),
    (lambda o: o.unary("exp", F32, out=F64), ValueError, r"unary exp: out must have shape .* "
                                                        r"float32.*got \(3, 4\) float64"),
    (lambda o: o.unary("exp", F32, out=READ_ONLY), ValueError,
     r"unary exp: out must be C-contiguous and writable"),
    (lambda o: o.unary("exp", F32, out=[0.0]), TypeError, r"unary exp: out must be a numpy"),
    (lambda o: o.unary("abs", VIEW_BASE[1:], out=VIEW_BASE[:3]), ValueError,
     r"unary abs: out \(3, 5\) shares memory with x without being that array itself"),
    # unary_backward
    (lambda o: o.unary_backward("cos", F32, F32, F32), ValueError,
     r"unary_backward: op must be one of"),
    (lambda o: o.unary_backward("exp", I64, I64, I64), TypeError,
     r"unary_backward exp: dy must be float32 or float64, got int64"),
    (lambda o: o.unary_backward("exp", F32, F64, F32), TypeError,
     r"unary_backward exp: x must be float32 like dy, got float64"),
    (lambda o: o.unary_backward("exp", F32, F32, ROW), ValueError,
     r"unary_backward exp: y must have dy's shape \(3, 4\), got \(4,\)"),
    (lambda o: o.unary_backward("exp", F32, F32, None), TypeError,
     r"unary_backward exp: y must be a numpy array"),
    (lambda o: o.unary_backward("exp", F32, F32, F32, out=ROW), ValueError,
     r"unary_backward exp: out must have shape \(3, 4\) and dtype float32 like dy"),
    (lambda o: o.unary_backward("exp", VIEW_BASE[1:], VIEW_BASE[1:], VIEW_BASE[1:],
                                out=VIEW_BASE[:3]), ValueError,
     r"unary_backward exp: out \(3, 5\) shares memory with dy, x or y without being"),
    # power (binary)
    (lambda o: o.binary("power", F32, I64), TypeError,
     r"binary power: a and b must share a float32 or float64 dtype"),
    (lambda o: o.binary("pow", F32, F32), ValueError, r"binary: op must be one of .*'power'"),
    # compare
    (lambda o: o.compare("lt", F32, F32), ValueError, r"compare: op must be one of \('equal'"),
    (lambda o: o.compare("less", F32, F64), TypeError,
     r"compare less: a and b must share a float32, float64 or int64 dtype, got float32 and "
     r"float64"),
    (lambda o: o.compare("less", COND, COND), TypeError, r"compare less: a and b must share"),
    (lambda o: o.compare("equal", F32, np.ones(5, np.float32)), ValueError,
     r"compare equal: a \(3, 4\) and b \(5,\) do not broadcast"),
    (lambda o: o.compare("equal", F32, ROW, out=F32), ValueError,
     r"compare equal: out must have shape \(3, 4\) and dtype bool for a \(3, 4\) and b "
     r"\(4,\), got \(3, 4\) float32"),
    (lambda o: o.compare("equal", F32, 1.0), TypeError, r"compare equal: b must be a numpy"),
    (lambda o: o.compare("equal", VIEW_BASE, VIEW_BASE,
                         out=VIEW_BASE.view(np.bool_)[0].reshape(4, 5)),
     ValueError, r"compare equal: out must not share memory with a or b"),
    # where
    (lambda o: o.where(F32, F32, F32), TypeError,
     r"where: condition must be a bool array, got float32"),
    (lambda o: o.where(COND, F32, F64), TypeError,
     r"where: a and b must share a float32 or float64 dtype, got float32 and float64"),
    (lambda o: o.where(COND, I64, I64), TypeError, r"where: a and b must share"),
    (lambda o: o.where(COND, F32, np.ones(5, np.float32)), ValueError,
     r"where: condition \(3, 4\), a \(3, 4\) and b \(5,\) do not broadcast"),
    (lambda o: o.where(COND, ROW, ROW, out=ROW), ValueError,
     r"where: out must have shape \(3, 4\) and dtype float32 for condition \(3, 4\), a \(4,\) "
     r"and b \(4,\), got \(4,\)"),
    (lambda o: o.where(COND, F32, 0.0), TypeError, r"where: b must be a numpy array"),
    (lambda o: o.where(COND[:, :1], VIEW_BASE[1:], VIEW_BASE[1:], out=VIEW_BASE[:3]),
     ValueError, r"where: out \(3, 5\) shares memory with a or b without being"),
    # reduce
    (lambda o: o.reduce("prod", F32), ValueError, r"reduce: op must be one of \('sum'"),
    (lambda o: o.reduce("sum", I64), TypeError, r"reduce sum: x must be float32 or float64, "
                                                r"got int64"),
    (lambda o: o.reduce("sum", F32, 2), ValueError,
     r"reduce sum: axis 2 is out of range for x of shape \(3, 4\)"),
    (lambda o: o.reduce("mean", F32, (0, -3)), ValueError, r"reduce mean: axis -3 is out of "
                                                           r"range"),
    (lambda o: o.reduce("max", F32, (1, -1)), ValueError,
     r"reduce max: axes \(1, -1\) repeat axis 1 of x \(3, 4\)"),
    (lambda o: o.reduce("sum", F32, 1.0), TypeError,
     r"reduce sum: axes must be None, an int or a tuple of ints, got 1.0"),
    (lambda o: o.reduce("sum", F32, (0, "a")), TypeError, r"reduce sum: axes must be None"),
    (lambda o: o.reduce("sum", F32, True), TypeError, r"reduce sum: axes must be None"),
    (lambda o: o.reduce("sum", F32, 0, out=np.empty((3,), np.float32)), ValueError,
     r"reduce sum: out must have shape \(4,\) and dtype float32 for x \(3, 4\) reduced over "
     r"axes \(0,\), got \(3,\)"),
    (lambda o: o.reduce("sum", F32, 0, keepdims=True, out=np.empty((4,), np.float32)),
     ValueError, r"reduce sum: out must have shape \(1, 4\)"),
    (lambda o: o.reduce("sum", VIEW_BASE, 1, out=VIEW_BASE[0, :4]), ValueError,
     r"reduce sum: out \(4,\) must not share memory with x \(4, 5\)"),
    (lambda o: o.reduce("sum", [1.0]), TypeError, r"reduce sum: x must be a numpy array"),
    # reduce_backward
    (lambda o: o.reduce_backward("prod", ROW, F32, ROW, 0), ValueError,
     r"reduce_backward: op must be one of"),
    (lambda o: o.reduce_backward("sum", np.ones(3, np.float32), F32, None, 0), ValueError,
     r"reduce_backward sum: dy must have shape \(4,\) \(x \(3, 4\) reduced over axes \(0,\), "
     r"keepdims=False\), got \(3,\)"),
    (lambda o: o.reduce_backward("sum", ROW, F32, None, 0, keepdims=True), ValueError,
     r"reduce_backward sum: dy must have shape \(1, 4\)"),
    (lambda o: o.reduce_backward("mean", ROW.astype(np.float64), F32, None, 0), TypeError,
     r"reduce_backward mean: dy must be float32 like x, got float64"),
    (lambda o: o.reduce_backward("max", ROW, F32, None, 0), TypeError,
     r"reduce_backward max: y must be a numpy array, got NoneType"),
    (lambda o: o.reduce_backward("max", ROW, F32, F32, 0), ValueError,
     r"reduce_backward max: y must have shape \(4,\)"),
    (lambda o: o.reduce_backward("max", ROW, I64, ROW, 0), TypeError,
     r"reduce_backward max: x must be float32 or float64, got int64"),
    (lambda o: o.reduce_backward("sum", ROW, F32, None, 5), ValueError,
     r"reduce_backward sum: axis 5 is out of range for x of shape \(3, 4\)"),
    (lambda o: o.reduce_backward("sum", ROW, F32, None, 0, out=ROW), ValueError,
     r"reduce_backward sum: out must have shape \(3, 4\) and dtype float32 like x"),
    (lambda o: o.reduce_backward("sum", VIEW_BASE[0], VIEW_BASE, None, 0,
                                 out=np.empty((4, 5), np.float32)), None, None),
    (lambda o: o.reduce_backward("sum", ROW, F32, None, 0, out=np.ones((3, 4), np.float32)),
     None, None),
    (lambda o: o.reduce_backward("sum", FLAT[:4], F32, None, 0, out=FLAT[2:14].reshape(3, 4)),
     ValueError, r"reduce_backward sum: out must not share memory with dy, x or y"),
    (lambda o: o.reduce_backward("sum", ROW, F32, None, 0, out=VIEW_BASE[:3, :4]), ValueError,
     r"reduce_backward sum: out must be C-contiguous"),
    # arg_reduce and cumsum
    (lambda o: o.arg_reduce("max", F32, 0), ValueError, r"arg_reduce: op must be one of"),
    (lambda o: o.arg_reduce("argmax", F32, 2), ValueError,
     r"arg_reduce argmax: axis 2 is out of range for x of shape \(3, 4\)"),
    (lambda o: o.arg_reduce("argmax", F32, (0, 1)), TypeError,
     r"arg_reduce argmax: axis must be an int"),
    (lambda o: o.arg_reduce("argmin", np.ones((3, 0), np.float32), 1), ValueError,
     r"arg_reduce argmin: x \(3, 0\) is empty along axis 1"),
    (lambda o: o.arg_reduce("argmin", np.ones((0,), np.float32), None), ValueError,
     r"arg_reduce argmin: x \(0,\) is empty"),
    (lambda o: o.arg_reduce("argmax", COND, 0), TypeError,
     r"arg_reduce argmax: x must be float32, float64 or int64, got bool"),
    (lambda o: o.arg_reduce("argmax", F32, 0, out=np.empty(4, np.int32)), ValueError,
     r"arg_reduce argmax: out must have shape \(4,\) and dtype int64"),
    (lambda o: o.cumsum(I64, 0), TypeError, r"cumsum: x must be float32 or float64"),
    (lambda o: o.cumsum(F32, None), TypeError, r"cumsum: axis must be an int, got None"),
    (lambda o: o.cumsum(F32, -3), ValueError, r"cumsum: axis -3 is out of range"),
    # softmax
    (lambda o: o.softmax(I64), TypeError, r"softmax: x must be float32 or float64, got int64"),
    (lambda o: o.log_softmax(F32, 2), ValueError,
     r"log_softmax: axis 2 is out of range for x of shape \(3, 4\)"),
    (lambda o: o.softmax(np.ones((), np.float32)), ValueError,
     r"softmax: axis -1 is out of range for x of shape \(\)"),
    (lambda o: o.softmax(F32, (0,)), TypeError, r"softmax: axis must be an int, got \(0,\)"),
    (lambda o: o.softmax(F32, None), TypeError, r"softmax: axis must be an int, got None"),
    (lambda o: o.softmax(F32, out=F64), ValueError,
     r"softmax: out must have shape \(3, 4\) and dtype float32 like x"),
    (lambda o: o.softmax(VIEW_BASE[1:], out=VIEW_BASE[:3]), ValueError,
     r"softmax: out \(3, 5\) shares memory with x without being that array itself"),
    (lambda o: o.softmax_backward(F32, F64), TypeError,
     r"softmax_backward: y must be float32 like dy, got float64"),
    (lambda o: o.log_softmax_backward(F32, ROW), ValueError,
     r"log_softmax_backward: y must have dy's shape \(3, 4\), got \(4,\)"),
    (lambda o: o.log_softmax_backward(F32, F32, 3), ValueError,
     r"log_softmax_backward: axis 3 is out of range for dy of shape \(3, 4\)"),
    (lambda o: o.softmax_backward(F32, F32, out=READ_ONLY), ValueError,
     r"softmax_backward: out must be C-contiguous and writable"),
    (lambda o: o.softmax_backward([1.0], F32), TypeError, r"softmax_backward: dy must be a "
                                                          r"numpy array"),
]


@pytest.mark.parametrize("call,error,match", BAD_CALLS)
def test_bad_input_raises_the_same_error_on_both_backends(ops, call, error, match):
    if error is None:            # valid calls next to the invalid ones: they must pass
        call(ops)
        return
    with pytest.raises(error, match=match):
        call(ops)


def test_bad_input_writes_nothing(ops):
    out = np.full((3, 4), 7.0, np.float32)
    with pytest.raises(ValueError):
        ops.where(COND, F32, np.ones(5, np.float32), out=out)
    with pytest.raises(ValueError):
        ops.reduce_backward("max", ROW, F32, F32, 0, out=out)
    assert (out == 7.0).all()
