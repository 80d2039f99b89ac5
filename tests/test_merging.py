"""Merge layers: Keras' shapes and broadcasting, forward values, every input's
gradient against float64 finite differences (NumPy backend), compiled = NumPy,
masks, configs and the functional aliases."""
import numpy as np
import pytest

import fastnn as keras
from fastnn import layers
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.layers.base import Workspace
from testing_utils import numeric_grad

ELEMENTWISE = {
    "Add": (layers.Add, lambda xs: sum(xs)),
    "Subtract": (layers.Subtract, lambda xs: xs[0] - xs[1]),
    "Multiply": (layers.Multiply, lambda xs: np.prod(np.broadcast_arrays(*xs), axis=0)),
    "Average": (layers.Average, lambda xs: sum(xs) / len(xs)),
    "Maximum": (layers.Maximum, lambda xs: np.maximum.reduce(np.broadcast_arrays(*xs))),
    "Minimum": (layers.Minimum, lambda xs: np.minimum.reduce(np.broadcast_arrays(*xs))),
}
# (shapes of the inputs, batch axis included), broadcasting as Keras does: a
# lower-rank input gets unit axes right after the batch axis.
SHAPES = [
    [(3, 5), (3, 5)],
    [(2, 4, 5), (2, 1, 5), (2, 4, 1)],
    [(2, 3, 4), (2, 4)],
    [(1, 7), (1, 7), (1, 7), (1, 7)],
]


def run(layer, ops, xs, dys=None):
    """Forward and (when dys is given) backward of ``layer`` on arrays."""
    ws = Workspace()
    y = layer.forward(ops, xs, True, ws)
    if dys is None:
        return y, None
    return y, layer.backward(ops, dys, ws, True)


def cases(rng, shapes, dtype=np.float64):
    # distinct magnitudes keep maximum/minimum away from ties, where they have kinks
    return [(rng.uniform(0.5, 1.5, s) * rng.choice([-1, 1], s) + 3 * k).astype(dtype)
            for k, s in enumerate(shapes)]


@pytest.mark.parametrize("name,shapes", [(name, shapes) for name in ELEMENTWISE
                                         for shapes in SHAPES
                                         if name != "Subtract" or len(shapes) == 2])
def test_elementwise_merges_forward_and_gradients(name, shapes, rng):
    cls, reference = ELEMENTWISE[name]
    ops = NumpyOps()
    xs = cases(rng, shapes)
    layer = cls(dtype="float64")
    layer.build([s[1:] for s in shapes])
    y, _ = run(layer, ops, xs)
    rank = max(len(s) for s in shapes)
    full = [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]
    np.testing.assert_allclose(y, reference(full), rtol=1e-12)
    assert y.shape[1:] == layer.compute_output_shape([s[1:] for s in shapes])
    weights = rng.standard_normal(y.shape)
    _, grads = run(layer, ops, xs, weights)
    for x, g in zip(xs, grads):
        assert g.shape == x.shape
        numeric = numeric_grad(lambda: float((weights * run(layer, ops, xs)[0]).sum()), x)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_compiled_merges_equal_numpy(name, rng, compiled_ops):
    cls, _ = ELEMENTWISE[name]
    shapes = [(5, 3, 7), (5, 1, 7)]
    xs = cases(rng, shapes, np.float32)
    dy = rng.standard_normal((5, 3, 7)).astype(np.float32)
    results = []
    for ops in (NumpyOps(), compiled_ops):
        layer = cls()
        layer.build([s[1:] for s in shapes])
        results.append(run(layer, ops, xs, dy))
    (y_np, g_np), (y_c, g_c) = results
    np.testing.assert_allclose(y_c, y_np, rtol=1e-6)
    for a, b in zip(g_c, g_np):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_maximum_gives_a_tie_to_the_first_input():
    ops = NumpyOps()
    layer = layers.Maximum(dtype="float64")
    layer.build([(3,), (3,)])
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[1.0, 5.0, 0.0]])
    _, (da, db) = run(layer, ops, [a, b], np.ones((1, 3)))
    np.testing.assert_array_equal(da, [[1, 0, 1]])
    np.testing.assert_array_equal(db, [[0, 1, 0]])


@pytest.mark.parametrize("axis,shapes", [
    (-1, [(2, 3, 4), (2, 3, 1), (2, 3, 5)]),
    (1, [(2, 3, 4), (2, 2, 4)]),
    (1, [(3, 4), (3, 1)]),
])
def test_concatenate_forward_and_gradients(axis, shapes, rng, ops):
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    layer = layers.Concatenate(axis=axis)
    layer.build([s[1:] for s in shapes])
    y, _ = run(layer, ops, xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, grads = run(layer, ops, xs, dy)
    np.testing.assert_array_equal(np.concatenate(grads, axis=axis), dy)
    assert all(g.flags.c_contiguous for g in grads)


@pytest.mark.parametrize("axes,shapes,normalize", [
    (1, [(4, 5), (4, 5)], False),
    (1, [(4, 5), (4, 5)], True),
    (2, [(3, 4, 5), (3, 6, 5)], False),
    ((1, 1), [(3, 4, 5), (3, 4, 2)], False),
    ((1, 2), [(3, 5), (3, 6, 5)], False),
    (-1, [(2, 3, 4), (2, 5, 4)], True),
    ((2, 1), [(2, 3, 4, 5), (2, 4, 3)], False),
])
def test_dot_matches_numpy_and_finite_differences(axes, shapes, normalize, rng):
    ops = NumpyOps()
    xs = [rng.standard_normal(s) for s in shapes]
    layer = layers.Dot(axes=axes, normalize=normalize, dtype="float64")
    layer.build([s[1:] for s in shapes])
    y, _ = run(layer, ops, xs)
    a, b = ((axes, axes) if isinstance(axes, int) else axes)
    a, b = a % len(shapes[0]), b % len(shapes[1])
    x, z = xs
    if normalize:
        x = x / np.sqrt(np.maximum((x * x).sum(axis=a, keepdims=True), 1e-14))
        z = z / np.sqrt(np.maximum((z * z).sum(axis=b, keepdims=True), 1e-14))
    want = np.stack([np.tensordot(x[i], z[i], axes=(a - 1, b - 1)) for i in range(len(x))])
    want = want.reshape(len(x), -1) if want.ndim == 1 else want
    np.testing.assert_allclose(y, want.reshape(y.shape), rtol=1e-10, atol=1e-12)
    assert y.shape[1:] == layer.compute_output_shape([s[1:] for s in shapes])
    weights = rng.standard_normal(y.shape)
    _, grads = run(layer, ops, xs, weights)
    for inp, g in zip(xs, grads):
        numeric = numeric_grad(lambda: float((weights * run(layer, ops, xs)[0]).sum()), inp)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_dot_compiled_equals_numpy(rng, compiled_ops):
    xs = [rng.standard_normal((6, 7, 5)).astype(np.float32),
          rng.standard_normal((6, 9, 5)).astype(np.float32)]
    dy = rng.standard_normal((6, 7, 9)).astype(np.float32)
    results = []
    for ops in (NumpyOps(), compiled_ops):
        layer = layers.Dot(axes=2)
        layer.build([(7, 5), (9, 5)])
        results.append(run(layer, ops, xs, dy))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_functional_aliases_and_configs():
    a, b = keras.Input(shape=(4,)), keras.Input(shape=(4,))
    for fn, cls in [(layers.add, layers.Add), (layers.subtract, layers.Subtract),
                    (layers.multiply, layers.Multiply), (layers.average, layers.Average),
                    (layers.maximum, layers.Maximum), (layers.minimum, layers.Minimum)]:
        out = fn([a, b])
        assert isinstance(out.node.operation, cls) and out.shape == (None, 4)
    assert layers.concatenate([a, b]).shape == (None, 8)
    assert layers.dot([a, b], axes=1).shape == (None, 1)
    dot = layers.Dot(axes=(1, 2), normalize=True, name="cos")
    clone = layers.Dot.from_config(dot.get_config())
    assert clone.axes == [1, 2] and clone.normalize and clone.name == "cos"
    concat = layers.Concatenate.from_config(layers.Concatenate(axis=1).get_config())
    assert concat.axis == 1


def test_merges_combine_time_step_masks(backend):
    tokens = keras.Input(shape=(None,), dtype="int32")
    emb_a = layers.Embedding(10, 4, mask_zero=True)(tokens)
    emb_b = layers.Embedding(10, 4)(tokens)
    summed = layers.add([emb_a, emb_b])
    joined = layers.concatenate([summed, emb_b])
    model = keras.Model(tokens, layers.LSTM(3)(joined))
    x = np.array([[1, 2, 0, 0], [3, 4, 5, 6]])
    short = model.predict(np.array([[1, 2]]), verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0)[:1], short, rtol=1e-5, atol=1e-6)
