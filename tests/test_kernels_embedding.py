"""Embedding lookup and its scatter-add gradient: both backends, against plain
indexing, compiled vs NumPy, thread-count determinism and bad indices."""
import numpy as np
import pytest

from testing_utils import on_threads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,vocab,dim", [((1, 1), 1, 1), ((3, 7), 5, 13), ((17,), 31, 3)])
def test_forward_is_row_lookup(ops, dtype, shape, vocab, dim, rng):
    table = rng.standard_normal((vocab, dim)).astype(dtype)
    idx = rng.integers(0, vocab, size=shape)
    y = ops.embedding_forward(idx, table)
    assert y.shape == shape + (dim,) and y.dtype == dtype
    np.testing.assert_array_equal(y, table[idx])
    out = np.full(shape + (dim,), np.nan, dtype)
    assert ops.embedding_forward(idx, table, out) is out
    np.testing.assert_array_equal(out, table[idx])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_scatter_adds_repeated_rows(ops, dtype, rng):
    vocab, dim = 7, 5
    idx = np.array([[0, 3, 3], [6, 3, 0]])
    dy = rng.standard_normal((2, 3, dim)).astype(dtype)
    dtable = np.full((vocab, dim), np.nan, dtype)       # OVERWRITTEN, never read
    ops.embedding_backward(dy, idx, dtable)
    want = np.zeros((vocab, dim), dtype)
    for (n, t), v in np.ndenumerate(idx):
        want[v] += dy[n, t]
    np.testing.assert_allclose(dtable, want, rtol=1e-6)
    np.testing.assert_array_equal(dtable[[1, 2, 4, 5]], 0)


def test_compiled_matches_numpy_bitwise_order(numpy_ops, compiled_ops, rng):
    vocab, dim = 23, 37
    idx = rng.integers(0, vocab, size=(64, 19))
    dy = rng.standard_normal((64, 19, dim)).astype(np.float32)
    a = np.empty((vocab, dim), np.float32)
    b = np.empty((vocab, dim), np.float32)
    numpy_ops.embedding_backward(dy, idx, a)
    compiled_ops.embedding_backward(dy, idx, b)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_one_and_two_threads_bitwise_equal(compiled_ops, rng):
    vocab, dim = 50, 700          # large enough for two threads to be used
    idx = rng.integers(0, vocab, size=(128, 40))
    dy = rng.standard_normal((128, 40, dim)).astype(np.float32)
    results = []
    for n in (1, 2):
        with on_threads(n):
            out = np.empty((vocab, dim), np.float32)
            compiled_ops.embedding_backward(dy, idx, out)
            results.append(out)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("bad", [np.array([[0, 5]]), np.array([[-1, 0]]),
                                 np.array([[0.0, 1.5]]), np.array([[True, False]])])
def test_bad_indices_raise_before_any_access(ops, bad):
    table = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match="indices"):
        ops.embedding_forward(bad, table)
    dtable = np.full((5, 3), 7.0, np.float32)
    with pytest.raises(ValueError, match="indices"):
        ops.embedding_backward(np.ones(bad.shape + (3,), np.float32), bad, dtable)
    assert (dtable == 7.0).all()      # nothing written


def test_compiled_wrapper_rejects_out_of_range_on_its_own():
    from fastnn._ext import _core
    y = np.empty((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        _core.embedding_forward(y, np.array([[0, 4]], np.int64), np.ones((4, 3), np.float32), 1)


def test_dy_shape_mismatch_names_shapes(ops):
    with pytest.raises(ValueError, match=r"(?i)dy must have shape \(2, 2, 4\)"):
        ops.embedding_backward(np.ones((2, 3, 4), np.float32), np.zeros((2, 2), np.int64),
                               np.empty((5, 4), np.float32))
