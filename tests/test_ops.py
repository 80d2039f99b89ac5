"""fastnn.ops as keras.ops: every op on arrays against NumPy, recorded on symbolic
tensors and run by the executor, its backward against float64 finite
differences (NumPy backend), and the compiled backend against NumPy."""
import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.backend import get_ops
from fastnn.graph.calls import placeholder
from fastnn.graph.graph import Graph
from fastnn.graph.plan import Plan
from testing_utils import numeric_grad


def run_graph(fn, arrays, backend, dy_seed=0):
    """fn traced on placeholders of ``arrays``, run forward and backward on a backend:
    (output, the seed dy, each input's gradient)."""
    holders = [placeholder(a.shape, a.dtype, f"x{i}") for i, a in enumerate(arrays)]
    out = fn(*holders)
    plan = Plan(Graph(holders, [out], "test", allow_unused=True))
    scratch = plan.scratch(param_grads=False)
    backend_ops = get_ops(backend)
    y = plan.forward(backend_ops, arrays, False, scratch)[0]
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(y.dtype)
    if not plan.output_slots or y.dtype.kind != "f":
        return y, dy, None
    schedule = plan.schedule(plan.output_slots, inputs_need_grad=True)
    grads = plan.backward(backend_ops, schedule, [dy], scratch)
    return y, dy, grads


def away(rng, shape, low=0.3, high=1.7):
    """Values with magnitudes in [low, high] and random signs (no kinks at 0)."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def positive(rng, shape):
    return rng.uniform(0.3, 2.0, shape)


def distinct(rng, shape):
    """Values far from each other (no ties for max/min/argmax)."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37 - 3.0)


# name -> (function of tensors, input makers (rng -> array))
CASES = {
    "add broadcast": (lambda a, b: ops.add(a, b),
                      [lambda r: r.standard_normal((3, 4, 5)), lambda r: r.standard_normal((4, 1))]),
    "subtract": (lambda a, b: a - b, [lambda r: r.standard_normal((3, 5)),
                                      lambda r: r.standard_normal((5,))]),
    "multiply": (lambda a, b: a * b, [lambda r: r.standard_normal((2, 3)),
                                      lambda r: r.standard_normal((2, 1))]),
    "divide": (lambda a, b: a / b, [lambda r: r.standard_normal((4, 3)),
                                    lambda r: away(r, (3,))]),
    "power": (lambda a, b: a ** b, [lambda r: positive(r, (3, 4)),
                                    lambda r: r.uniform(-1.5, 2.0, (4,))]),
    "power scalar": (lambda a: ops.power(a, 3.0), [lambda r: r.standard_normal((3, 4))]),
    "maximum": (lambda a, b: ops.maximum(a, b), [lambda r: distinct(r, (3, 4)),
                                                 lambda r: distinct(r, (3, 4)) + 0.11]),
    "minimum": (lambda a, b: ops.minimum(a, b), [lambda r: distinct(r, (3, 4)),
                                                 lambda r: distinct(r, (4,)) + 0.13]),
    "scalar on the left": (lambda a: 2.0 - a * 3.0 + 1 / (a * a + 1.0),
                           [lambda r: r.standard_normal((3, 2))]),
    "negative": (lambda a: -a, [lambda r: r.standard_normal((3, 4))]),
    "abs": (lambda a: ops.abs(a), [lambda r: away(r, (3, 4))]),
    "sign": (lambda a: ops.sign(a) * a, [lambda r: away(r, (3, 4))]),
    "square": (ops.square, [lambda r: r.standard_normal((5, 2))]),
    "sqrt": (ops.sqrt, [lambda r: positive(r, (5, 2))]),
    "exp": (ops.exp, [lambda r: r.standard_normal((5, 2))]),
    "log": (ops.log, [lambda r: positive(r, (5, 2))]),
    "log1p": (ops.log1p, [lambda r: positive(r, (5, 2))]),
    "reciprocal": (ops.reciprocal, [lambda r: away(r, (5, 2))]),
    "relu": (ops.relu, [lambda r: away(r, (4, 3))]),
    "sigmoid": (ops.sigmoid, [lambda r: r.standard_normal((4, 3))]),
    "tanh": (ops.tanh, [lambda r: r.standard_normal((2, 3, 3))]),
    "silu": (ops.silu, [lambda r: r.standard_normal((4, 3))]),
    "gelu approximate": (ops.gelu, [lambda r: r.standard_normal((4, 3))]),
    "gelu exact": (lambda a: ops.gelu(a, approximate=False), [lambda r: r.standard_normal((4, 3))]),
    "elu": (ops.elu, [lambda r: away(r, (4, 3))]),
    "leaky_relu": (lambda a: ops.leaky_relu(a, 0.1), [lambda r: away(r, (4, 3))]),
    "softmax last": (ops.softmax, [lambda r: r.standard_normal((3, 5))]),
    "softmax axis 0": (lambda a: ops.softmax(a, axis=0), [lambda r: r.standard_normal((3, 5, 2))]),
    "log_softmax": (ops.log_softmax, [lambda r: r.standard_normal((3, 5))]),
    "sum all": (ops.sum, [lambda r: r.standard_normal((3, 4))]),
    "sum axis keepdims": (lambda a: ops.sum(a, axis=1, keepdims=True),
                          [lambda r: r.standard_normal((3, 4, 2))]),
    "mean axes": (lambda a: ops.mean(a, axis=(0, 2)), [lambda r: r.standard_normal((3, 4, 2))]),
    "max": (lambda a: ops.max(a, axis=-1), [lambda r: distinct(r, (3, 6))]),
    "min": (lambda a: ops.min(a, axis=0, keepdims=True), [lambda r: distinct(r, (3, 6))]),
    "var": (lambda a: ops.var(a, axis=1), [lambda r: r.standard_normal((3, 5))]),
    "std": (lambda a: ops.std(a, axis=-1), [lambda r: r.standard_normal((3, 5))]),
    "cumsum": (lambda a: ops.cumsum(a, axis=1), [lambda r: r.standard_normal((3, 5))]),
    "cumsum flat": (ops.cumsum, [lambda r: r.standard_normal((2, 3))]),
    "where": (lambda a, b: ops.where(a > 0, a, b * 2.0), [lambda r: away(r, (3, 4)),
                                                          lambda r: r.standard_normal((4,))]),
    "clip": (lambda a: ops.clip(a, -0.5, 0.8), [lambda r: away(r, (4, 5), 0.05, 1.5) * 0.9]),
    "matmul 2-D": (ops.matmul, [lambda r: r.standard_normal((3, 4)),
                                lambda r: r.standard_normal((4, 5))]),
    "matmul 3-D @ 2-D": (lambda a, b: a @ b, [lambda r: r.standard_normal((2, 3, 4)),
                                               lambda r: r.standard_normal((4, 5))]),
    "matmul batched": (ops.matmul, [lambda r: r.standard_normal((2, 3, 4, 5)),
                                    lambda r: r.standard_normal((2, 3, 5, 2))]),
    "matmul vector": (ops.matmul, [lambda r: r.standard_normal((3, 4)),
                                   lambda r: r.standard_normal((4,))]),
    "dot 3-D": (ops.dot, [lambda r: r.standard_normal((2, 3, 4)),
                          lambda r: r.standard_normal((5, 4, 2))]),
    "einsum attention": (lambda q, k: ops.einsum("bqhd,bkhd->bhqk", q, k),
                         [lambda r: r.standard_normal((2, 3, 2, 4)),
                          lambda r: r.standard_normal((2, 5, 2, 4))]),
    "einsum summed index": (lambda a, b: ops.einsum("ij,kl->ik", a, b),
                            [lambda r: r.standard_normal((3, 4)),
                             lambda r: r.standard_normal((2, 5))]),
    "einsum ellipsis": (lambda a, b: ops.einsum("...ij,jk->...ik", a, b),
                        [lambda r: r.standard_normal((2, 3, 4)),
                         lambda r: r.standard_normal((4, 2))]),
    "tensordot": (lambda a, b: ops.tensordot(a, b, axes=[[1, 2], [0, 1]]),
                  [lambda r: r.standard_normal((2, 3, 4)), lambda r: r.standard_normal((3, 4, 5))]),
    "reshape": (lambda a: ops.reshape(a, (-1, 6)), [lambda r: r.standard_normal((4, 3, 2))]),
    "transpose": (lambda a: ops.transpose(a, (2, 0, 1)), [lambda r: r.standard_normal((2, 3, 4))]),
    "expand and squeeze": (lambda a: ops.squeeze(ops.expand_dims(a, 1) * 2.0, axis=1),
                           [lambda r: r.standard_normal((3, 4))]),
    "slicing": (lambda a: a[:, 0] + ops.sum(a[..., 1:3]) + a[:, 2, None][:, 0],
                [lambda r: r.standard_normal((3, 4))]),
    "concatenate stack": (lambda a, b: ops.concatenate([a, ops.stack([b, b], axis=1)[:, 0]],
                                                       axis=1),
                          [lambda r: r.standard_normal((3, 2)),
                           lambda r: r.standard_normal((3, 4))]),
    "split": (lambda a: ops.concatenate(ops.split(a, [1, 3], axis=1)[::-1], axis=1) * a,
              [lambda r: r.standard_normal((2, 5))]),
    "take": (lambda a: ops.take(a, np.array([[0, 2], [2, 2]]), axis=1),
             [lambda r: r.standard_normal((3, 4))]),
    "take_along_axis": (lambda a: ops.take_along_axis(a, np.array([[0, 3], [1, 1], [2, 0]]),
                                                      axis=1),
                        [lambda r: r.standard_normal((3, 4))]),
    "cast": (lambda a: ops.cast(a, "float64") * a, [lambda r: r.standard_normal((3,))]),
    "stop_gradient": (lambda a: a * ops.stop_gradient(a), [lambda r: r.standard_normal((3, 2))]),
}


@pytest.mark.parametrize("name", CASES)
def test_op_gradients_match_finite_differences(name, rng):
    fn, makers = CASES[name]
    arrays = [np.asarray(make(rng), dtype=np.float64) for make in makers]
    y, dy, grads = run_graph(fn, arrays, "numpy")
    eager = np.asarray(fn(*arrays), dtype=np.float64)
    np.testing.assert_allclose(y, eager, rtol=1e-12, atol=1e-12)
    for x, g in zip(arrays, grads):
        loss = (lambda: float((dy * np.asarray(fn(*arrays), dtype=np.float64)).sum()))
        numeric = numeric_grad(loss, x)
        if name == "stop_gradient":          # the stopped factor gets no gradient
            numeric = dy * x
        np.testing.assert_allclose(g if g is not None else 0.0, numeric, rtol=1e-5, atol=1e-7,
                                   err_msg=name)


@pytest.mark.parametrize("name", CASES)
def test_compiled_ops_equal_numpy(name, rng):
    fn, makers = CASES[name]
    arrays = [np.asarray(make(rng), dtype=np.float32) for make in makers]
    y_np, _, g_np = run_graph(fn, arrays, "numpy")
    y_c, _, g_c = run_graph(fn, arrays, "compiled")
    np.testing.assert_allclose(y_c, y_np, rtol=2e-5, atol=1e-5, err_msg=name)
    for a, b in zip(g_c, g_np):
        if b is None:
            assert a is None
            continue
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5, err_msg=name)


EAGER = {
    "add": (lambda a, b: ops.add(a, b), np.add),
    "power": (lambda a, b: ops.power(np.abs(a) + 0.5, b), lambda a, b: np.power(np.abs(a) + 0.5, b)),
    "matmul": (lambda a, b: ops.matmul(a, b.T), lambda a, b: a @ b.T),
    "mean": (lambda a, b: ops.mean(a, axis=0), lambda a, b: a.mean(axis=0)),
    "argmax": (lambda a, b: ops.argmax(a, axis=1), lambda a, b: np.argmax(a, axis=1)),
    "argmin": (lambda a, b: ops.argmin(a), lambda a, b: np.argmin(a)),
    "one_hot": (lambda a, b: ops.one_hot(np.array([0, 2, 1]), 3),
                lambda a, b: np.eye(3, dtype=np.float32)[[0, 2, 1]]),
    "compare": (lambda a, b: ops.greater_equal(a, b), np.greater_equal),
    "softmax": (lambda a, b: ops.softmax(a), lambda a, b: np.exp(a) / np.exp(a).sum(-1,
                                                                                   keepdims=True)),
}


@pytest.mark.parametrize("name", EAGER)
def test_ops_on_arrays_compute_now(backend, name, rng):
    fn, reference = EAGER[name]
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(fn(a, b), reference(a, b), rtol=1e-5, atol=1e-6)


def test_creation_and_shape_ops(rng):
    assert ops.arange(5).dtype == np.int32 and list(ops.arange(1, 7, 2)) == [1, 3, 5]
    assert ops.zeros((2, 3)).dtype == np.float32 and ops.ones((2,)).sum() == 2
    assert ops.full((2, 2), 7).dtype == np.int64
    x = fastnn.Input(shape=(None, 4))
    assert ops.shape(x) == (None, None, 4)
    assert ops.zeros_like(x).shape == (None, None, 4)
    assert ops.convert_to_tensor([1, 2], dtype="float32").dtype == np.float32
    assert ops.cast(x, "float64").dtype == np.float64
    assert ops.split(fastnn.Input(shape=(6,)), 3, axis=1)[0].shape == (None, 2)


def test_int_tensors_stay_integers_and_carry_no_gradient():
    idx = np.array([[1, 2], [3, 0]])
    assert ops.add(idx, 1).dtype == np.int64
    assert (ops.maximum(idx, 2) == np.maximum(idx, 2)).all()
    t = fastnn.Input(shape=(2,), dtype="int32")
    assert (t + 1).dtype == np.int64 and (t * 1.5).dtype == np.float32


def test_symbolic_errors_say_what_to_do():
    x = fastnn.Input(shape=(3,))
    with pytest.raises(TypeError, match="ops.where"):
        if x > 0:        # noqa: SIM108 -- Python control flow on a symbolic value
            pass
    with pytest.raises(ValueError, match=r"add.*\(None, 3\).*\(None, 4\).*cannot be broadcast"):
        ops.add(x, fastnn.Input(shape=(4,)))
    with pytest.raises(ValueError, match="einsum"):
        ops.einsum("ii->i", np.ones((2, 2)), np.ones(2))
    with pytest.raises(TypeError, match="ints, slices"):
        x[np.array([0, 1])]
    with pytest.raises(ValueError, match="reshape"):
        ops.reshape(fastnn.Input(shape=(3,), batch_size=4), (2, 2))


def test_kernel_entry_points_keep_their_names():
    a = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(fastnn.ops.gemm(a, a, transpose_b=True), a @ a.T)
    assert "dense_forward" in dir(fastnn.ops) and "matmul" in dir(fastnn.ops)
    with pytest.raises(AttributeError):
        fastnn.ops.not_an_op


# ---- broadcasting, over random shapes -----------------------------------------------
from hypothesis import given, strategies as st  # noqa: E402


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together: each axis of the shorter one (aligned on
    the right) is the other's size or 1, and either may have the extra axes."""
    rank = draw(st.integers(1, 4))
    full = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    other = [draw(st.sampled_from([d, 1])) for d in full]
    other = other[draw(st.integers(0, rank - 1)):]
    return (tuple(full), tuple(other)) if draw(st.booleans()) else (tuple(other), tuple(full))


@given(shapes=broadcast_pair(), op=st.sampled_from(["add", "subtract", "multiply", "divide",
                                                     "maximum", "minimum"]))
def test_binary_ops_broadcast_and_reduce_gradients_like_numpy(shapes, op):
    rng = np.random.default_rng(0)
    a, b = (away(rng, s) * (1.0 + 0.1 * i) for i, s in enumerate(shapes))
    fn = getattr(ops, op)
    want = getattr(np, op)(a, b)
    y, dy, (da, db) = run_graph(fn, [a, b], "numpy")
    np.testing.assert_allclose(y, want, rtol=1e-12)
    # the gradient of sum(dy * op(a, b)) reduced to each operand's shape
    for grad, index in ((da, 0), (db, 1)):
        args = [a.copy(), b.copy()]          # numeric_grad nudges args[index] in place

        def loss():
            return float((getattr(np, op)(*args) * dy).sum())
        np.testing.assert_allclose(grad, numeric_grad(loss, args[index]), rtol=1e-6, atol=1e-8)
    yc, _, (dac, dbc) = run_graph(fn, [a.astype(np.float32), b.astype(np.float32)], "compiled")
    np.testing.assert_allclose(yc, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dac, da, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dbc, db, rtol=1e-4, atol=1e-5)
