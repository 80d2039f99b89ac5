"""Pooling kernels: CompiledOps against NumpyOps (float32) for every buffer a call
writes -- odd sizes, strides, both paddings, ties, NaN -- 1 vs 2 threads bitwise,
and bad input that must raise, never read or write out of bounds."""
import numpy as np
import pytest
from testing_utils import on_threads

from fastnn._ext import _core
from fastnn.backend.ops import conv2d_output_shape

# (N, H, W, C, pool, strides): batch 1 and odd; channels 1, odd, and across the
# 64-channel block; windows that overlap, tile, or skip input.
CASES = [
    ((1, 1, 1, 1), (1, 1), (1, 1)),
    ((1, 5, 7, 1), (2, 2), (2, 2)),
    ((3, 7, 5, 3), (3, 3), (2, 2)),
    ((2, 9, 8, 67), (2, 3), (1, 2)),
    ((1, 6, 11, 5), (3, 2), (3, 3)),
    ((5, 4, 4, 130), (4, 4), (1, 1)),
    ((2, 13, 3, 7), (5, 1), (4, 1)),
]


def _max(ops, x, pool, strides, padding):
    oh, ow = conv2d_output_shape(x.shape[1:3], pool, strides, padding)
    argmax = np.full((x.shape[0], oh, ow, x.shape[3]), -7, np.int64)
    y = ops.max_pool2d_forward(x, pool_size=pool, strides=strides, padding=padding,
                               argmax_out=argmax)
    return y, argmax


@pytest.mark.parametrize("shape,pool,strides", CASES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pool_matches_numpy(numpy_ops, compiled_ops, shape, pool, strides, padding, rng):
    if padding == "valid" and min(conv2d_output_shape(shape[1:3], pool, strides, padding)) < 1:
        pytest.skip("window larger than the input")
    # few distinct values: many ties, which must resolve the same way
    x = rng.integers(-3, 4, size=shape).astype(np.float32)
    y_ref, am_ref = _max(numpy_ops, x, pool, strides, padding)
    y, am = _max(compiled_ops, x, pool, strides, padding)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(am, am_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_ref = numpy_ops.max_pool2d_backward(dy, am_ref, input_shape=shape)
    dx = compiled_ops.max_pool2d_backward(dy, am, input_shape=shape,
                                          out=np.full(shape, np.nan, np.float32))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,pool,strides", CASES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_avg_pool_matches_numpy(numpy_ops, compiled_ops, shape, pool, strides, padding, rng):
    if padding == "valid" and min(conv2d_output_shape(shape[1:3], pool, strides, padding)) < 1:
        pytest.skip("window larger than the input")
    x = rng.standard_normal(shape).astype(np.float32)
    kwargs = dict(pool_size=pool, strides=strides, padding=padding)
    y_ref = numpy_ops.avg_pool2d_forward(x, **kwargs)
    y = compiled_ops.avg_pool2d_forward(x, **kwargs)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_ref = numpy_ops.avg_pool2d_backward(dy, input_shape=shape, **kwargs)
    dx = compiled_ops.avg_pool2d_backward(dy, input_shape=shape,
                                          out=np.full(shape, np.nan, np.float32), **kwargs)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)


def test_max_pool_nan_and_padding_match_numpy(numpy_ops, compiled_ops):
    x = np.full((1, 5, 5, 2), -np.inf, np.float32)
    x[0, 1, 1, 0] = np.nan
    x[0, 4, 4, 1] = 2.0
    for ops_ in (numpy_ops, compiled_ops):
        y, am = _max(ops_, x, (2, 2), (2, 2), "same")
        assert np.isnan(y[0, 0, 0, 0]) and am[0, 0, 0, 0] == 6
        assert y[0, 2, 2, 1] == 2.0 and am[0, 2, 2, 1] == 24
        # all -inf windows keep their first real element
        assert am[0, 0, 1, 1] == 2 and am[0, 2, 0, 0] == 20


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_one_and_two_threads_are_bitwise_equal(compiled_ops, padding, rng):
    shape = (4, 33, 31, 70)          # large enough for the kernels to use two threads
    x = rng.standard_normal(shape).astype(np.float32)
    dy = None
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            y, am = _max(compiled_ops, x, (3, 3), (2, 2), padding)
            if dy is None:
                dy = rng.standard_normal(y.shape).astype(np.float32)
            dx = compiled_ops.max_pool2d_backward(dy, am, input_shape=shape)
            kwargs = dict(pool_size=(3, 3), strides=(2, 2), padding=padding)
            ya = compiled_ops.avg_pool2d_forward(x, **kwargs)
            dxa = compiled_ops.avg_pool2d_backward(dy, input_shape=shape, **kwargs)
            results.append((y, am, dx, ya, dxa))
    for one, two in zip(*results):
        assert one.tobytes() == two.tobytes()


def test_float64_hands_off_to_numpy_visibly(compiled_ops, numpy_ops, rng):
    from fastnn.backend.compiled_ops import FALLBACKS
    x = rng.standard_normal((2, 5, 5, 3))
    y = compiled_ops.avg_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="same")
    np.testing.assert_array_equal(
        y, numpy_ops.avg_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="same"))
    assert "avg_pool2d_forward float64" in FALLBACKS


def test_non_contiguous_input_is_accepted(numpy_ops, compiled_ops, rng):
    x = rng.standard_normal((2, 6, 8, 6)).astype(np.float32)[:, :, ::2, ::2]
    kwargs = dict(pool_size=(2, 2), strides=(2, 2), padding="valid")
    np.testing.assert_array_equal(compiled_ops.max_pool2d_forward(x, **kwargs),
                                  numpy_ops.max_pool2d_forward(x, **kwargs))


def test_wrappers_reject_bad_input():
    x = np.zeros((1, 4, 4, 2), np.float32)
    y = np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="4-D"):
        _core.max_pool2d_forward_f32(y, None, x[0], 2, 2, 2, 2, 0, 0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.max_pool2d_forward_f32(y, None, x.astype(np.float64), 2, 2, 2, 2, 0, 0, 1)
    with pytest.raises(ValueError, match="channels"):
        _core.avg_pool2d_forward_f32(np.zeros((1, 2, 2, 3), np.float32), x, 2, 2, 2, 2, 0, 0, 1)
    with pytest.raises(ValueError, match="argmax"):
        _core.max_pool2d_forward_f32(y, np.zeros((1, 2, 1, 2), np.int64), x, 2, 2, 2, 2, 0, 0, 1)
    with pytest.raises(ValueError, match="writable"):
        ro = y.copy()
        ro.flags.writeable = False
        _core.avg_pool2d_forward_f32(ro, x, 2, 2, 2, 2, 0, 0, 1)
    # geometry whose windows leave the input: the kernel refuses, it never reads past it
    with pytest.raises(ValueError):
        _core.max_pool2d_forward_f32(np.zeros((1, 3, 3, 2), np.float32), None, x, 2, 2, 2, 2,
                                     0, 0, 1)
    with pytest.raises(ValueError):
        _core.avg_pool2d_forward_f32(y, x, 2, 2, 2, 2, 2, 0, 1)       # top pad >= window
    with pytest.raises(ValueError):
        _core.avg_pool2d_backward_f32(x.copy(), y, 0, 2, 2, 2, 0, 0, 1)


def test_corrupted_argmax_is_never_written_through():
    dx = np.zeros((1, 2, 2, 1), np.float32)
    argmax = np.array([5, -1, 3, 0], np.int64).reshape(1, 2, 2, 1)
    _core.max_pool2d_backward_f32(dx, np.ones((1, 2, 2, 1), np.float32), argmax, 1)
    np.testing.assert_array_equal(dx.ravel(), [1, 0, 0, 1])
