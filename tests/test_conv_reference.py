"""The NumPy reference convolution and pooling: float64 finite differences of every
backward pass, Keras' output-shape and padding formulas, a direct-loop twin of
the forward pass, and pooling's ties and "same" counts."""
import itertools

import numpy as np
import pytest

from testing_utils import numeric_grad

from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import conv2d_output_shape, conv2d_padding

ops = NumpyOps()


def direct_conv(x, w, b, strides, padding, dilation):
    """The definition, one output pixel at a time (an independent twin)."""
    n, h, wd, _ = x.shape
    kh, kw, _, f = w.shape
    top, bottom = conv2d_padding(h, kh, strides[0], padding, dilation[0])
    left, right = conv2d_padding(wd, kw, strides[1], padding, dilation[1])
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    oh = (h + top + bottom - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (wd + left + right - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((n, oh, ow, f))
    for i, j, p, q in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        y[:, i, j] += xp[:, i * strides[0] + p * dilation[0],
                         j * strides[1] + q * dilation[1]] @ w[p, q]
    return y if b is None else y + b


# (input H, W, C, kernel KH, KW, F, strides, dilation): strides 1, 2, 3; dilation 1, 2;
# square and non-square kernels; odd channel counts.
CONV_CASES = [
    (5, 6, 3, 3, 3, 2, (1, 1), (1, 1)),
    (7, 5, 1, 2, 3, 3, (2, 2), (1, 1)),
    (8, 7, 3, 3, 2, 5, (3, 2), (1, 1)),
    (7, 8, 2, 3, 3, 1, (1, 1), (2, 2)),
    (6, 7, 5, 2, 2, 3, (1, 1), (2, 1)),
    (4, 4, 1, 1, 1, 3, (3, 3), (1, 1)),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_forward_matches_direct_loops(case, padding, rng):
    h, w_, c, kh, kw, f, strides, dilation = case
    x = rng.standard_normal((2, h, w_, c))
    w = rng.standard_normal((kh, kw, c, f))
    b = rng.standard_normal(f)
    y = ops.conv2d_forward(x, w, b, strides=strides, padding=padding, dilation=dilation,
                           activation=None)
    assert y.shape == (2,) + conv2d_output_shape((h, w_), (kh, kw), strides, padding,
                                                 dilation) + (f,)
    np.testing.assert_allclose(y, direct_conv(x, w, b, strides, padding, dilation),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("activation,use_bias", [("linear", True), ("tanh", False),
                                                 ("swish", True)])
def test_conv2d_backward_matches_finite_differences(case, padding, activation, use_bias, rng):
    h, w_, c, kh, kw, f, strides, dilation = case
    x = rng.standard_normal((2, h, w_, c))
    w = rng.standard_normal((kh, kw, c, f)) * 0.5
    b = rng.standard_normal(f) * 0.5 if use_bias else None
    kwargs = dict(strides=strides, padding=padding, dilation=dilation, activation=activation)
    z = np.empty((2,) + conv2d_output_shape((h, w_), (kh, kw), strides, padding, dilation)
                 + (f,))
    y = ops.conv2d_forward(x, w, b, preact_out=z, **kwargs)
    weights = rng.standard_normal(y.shape)        # L = sum(weights * y)

    def loss():
        return float((weights * ops.conv2d_forward(x, w, b, **kwargs)).sum())

    dw = np.full_like(w, np.nan)                  # overwritten, never accumulated into
    db = np.full(f, np.nan) if use_bias else None
    dx = ops.conv2d_backward(weights, x, w, y, z, dw_out=dw, db_out=db, **kwargs)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(loss, w), rtol=1e-5, atol=1e-7)
    if use_bias:
        np.testing.assert_allclose(db, numeric_grad(loss, b), rtol=1e-5, atol=1e-7)
    assert ops.conv2d_backward(weights, x, w, y, z, dw_out=dw, db_out=db, dx_out=False,
                               **kwargs) is None


POOL_CASES = [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 2)), ((3, 2), (3, 3)),
              ((1, 1), (2, 1))]


@pytest.mark.parametrize("pool,strides", POOL_CASES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pool_backward_matches_finite_differences(pool, strides, padding, rng):
    # distinct values, so the maximum is a smooth function near x
    x = rng.permutation(2 * 7 * 6 * 3).reshape(2, 7, 6, 3) * 0.1
    kwargs = dict(pool_size=pool, strides=strides, padding=padding)
    y = ops.max_pool2d_forward(x, **kwargs)
    argmax = np.empty(y.shape, np.int64)
    ops.max_pool2d_forward(x, argmax_out=argmax, **kwargs)
    weights = rng.standard_normal(y.shape)
    dx = ops.max_pool2d_backward(weights, argmax, input_shape=x.shape)
    numeric = numeric_grad(lambda: float((weights * ops.max_pool2d_forward(x, **kwargs)).sum()),
                           x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("pool,strides", POOL_CASES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_avg_pool_backward_matches_finite_differences(pool, strides, padding, rng):
    x = rng.standard_normal((2, 7, 6, 3))
    kwargs = dict(pool_size=pool, strides=strides, padding=padding)
    y = ops.avg_pool2d_forward(x, **kwargs)
    weights = rng.standard_normal(y.shape)
    dx = ops.avg_pool2d_backward(weights, input_shape=x.shape, **kwargs)
    numeric = numeric_grad(lambda: float((weights * ops.avg_pool2d_forward(x, **kwargs)).sum()),
                           x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


# Keras' formulas: valid -> ceil((H - (K - 1) d) / s), same -> ceil(H / s).
@pytest.mark.parametrize("size,kernel,stride,dilation,padding,expected", [
    (28, 3, 1, 1, "valid", 26), (28, 3, 1, 1, "same", 28), (28, 3, 2, 1, "valid", 13),
    (28, 3, 2, 1, "same", 14), (7, 3, 3, 1, "valid", 2), (7, 3, 3, 1, "same", 3),
    (9, 3, 1, 2, "valid", 5), (9, 3, 1, 2, "same", 9), (5, 5, 1, 1, "valid", 1),
    (4, 5, 1, 1, "valid", 0), (4, 5, 1, 1, "same", 4), (10, 2, 2, 1, "valid", 5),
    (11, 2, 2, 1, "valid", 5), (11, 2, 2, 1, "same", 6), (1, 1, 3, 1, "same", 1),
])
def test_output_shape_matches_keras(size, kernel, stride, dilation, padding, expected):
    assert conv2d_output_shape((size, 3), (kernel, 1), (stride, 1), padding,
                               (dilation, 1)) == (expected, 3)


@pytest.mark.parametrize("size,kernel,stride,dilation,expected", [
    (5, 3, 1, 1, (1, 1)), (6, 3, 2, 1, (0, 1)), (5, 2, 1, 1, (0, 1)), (5, 4, 1, 1, (1, 2)),
    (7, 3, 1, 2, (2, 2)), (5, 1, 2, 1, (0, 0)), (4, 3, 3, 1, (1, 1)), (4, 2, 3, 1, (0, 1)),
])
def test_same_padding_puts_the_extra_row_last(size, kernel, stride, dilation, expected):
    assert conv2d_padding(size, kernel, stride, "same", dilation) == expected
    assert conv2d_padding(size, kernel, stride, "valid", dilation) == (0, 0)


def test_output_shape_rejects_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        conv2d_output_shape((5, 5), (3, 3), (1, 1), "full")
    with pytest.raises(ValueError, match=">= 1"):
        conv2d_output_shape((5, 5), (3, 3), (0, 1), "valid")
    with pytest.raises(ValueError, match="pair"):
        conv2d_output_shape((5, 5), (3.5, 3), (1, 1), "valid")


def test_max_pool_ties_go_to_the_first_element():
    x = np.array([[5., 5., 1.],
                  [5., 2., 5.],
                  [0., 5., 5.]]).reshape(1, 3, 3, 1)
    argmax = np.empty((1, 2, 2, 1), np.int64)
    y = ops.max_pool2d_forward(x, pool_size=(2, 2), strides=(1, 1), padding="valid",
                               argmax_out=argmax)
    np.testing.assert_array_equal(y.ravel(), [5, 5, 5, 5])
    np.testing.assert_array_equal(argmax.ravel(), [0, 1, 3, 5])
    dx = ops.max_pool2d_backward(np.ones((1, 2, 2, 1)), argmax, input_shape=x.shape)
    # each window's gradient lands on one element; overlapping windows add up
    np.testing.assert_array_equal(dx.reshape(3, 3), [[1, 1, 0], [1, 0, 1], [0, 0, 0]])


def test_max_pool_same_padding_never_picks_a_pad():
    x = np.full((1, 3, 3, 1), -np.inf)
    x[0, 2, 2, 0] = -5.0
    argmax = np.empty((1, 2, 2, 1), np.int64)
    y = ops.max_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="same",
                               argmax_out=argmax)
    # windows of real -inf only keep the first real element, never a padded one
    np.testing.assert_array_equal(argmax.ravel(), [0, 2, 6, 8])
    assert y[0, 1, 1, 0] == -5.0


def test_max_pool_nan_is_the_maximum():
    x = np.array([1.0, np.nan, 3.0, np.nan]).reshape(1, 2, 2, 1)
    argmax = np.empty((1, 1, 1, 1), np.int64)
    y = ops.max_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="valid",
                               argmax_out=argmax)
    assert np.isnan(y).all() and argmax.item() == 1


def test_avg_pool_same_divides_by_the_valid_count():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = ops.avg_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="same")
    # windows: {1,2,4,5}, {3,6}, {7,8}, {9}: padded zeros are not counted
    np.testing.assert_allclose(y.ravel(), [3.0, 4.5, 7.5, 9.0])
    dx = ops.avg_pool2d_backward(np.ones((1, 2, 2, 1)), input_shape=x.shape, pool_size=(2, 2),
                                 strides=(2, 2), padding="same")
    np.testing.assert_allclose(dx.reshape(3, 3), [[.25, .25, .5], [.25, .25, .5], [.5, .5, 1]])


def test_conv_writes_out_and_preact_buffers(rng):
    x = rng.standard_normal((2, 5, 5, 2))
    w = rng.standard_normal((3, 3, 2, 4))
    b = rng.standard_normal(4)
    out, z = np.empty((2, 5, 5, 4)), np.empty((2, 5, 5, 4))
    y = ops.conv2d_forward(x, w, b, strides=(1, 1), padding="same", dilation=(1, 1),
                           activation="relu", out=out, preact_out=z)
    assert y is out
    np.testing.assert_allclose(z, direct_conv(x, w, b, (1, 1), "same", (1, 1)))
    np.testing.assert_allclose(out, np.maximum(z, 0))
