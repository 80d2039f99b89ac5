"""Outputs that share memory with a kernel's other arrays.

The compiled kernels read their inputs while they write their outputs (with
the GIL released, on several threads), so an `out` partly overlapping an
input gave wrong values silently. The compiled backend now refuses every
partial overlap with a ValueError naming both arrays; an output may still be
exactly its input where the kernel is in-place safe. The NumPy backend
computes the overlapping cases correctly, as NumPy does.
"""
import numpy as np
import pytest

from fastnn.backend.compiled_ops import CompiledOps
from fastnn.backend.numpy_ops import NumpyOps

compiled = CompiledOps()
reference = NumpyOps()
rng = np.random.default_rng(7)


def _buffer(n):
    return rng.standard_normal(n).astype(np.float32)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "softmax", "gelu"])
def test_activation_refuses_a_shifted_out(name):
    buf = _buffer(16)
    with pytest.raises(ValueError, match="Y must be X itself or not share memory"):
        compiled.activation_forward(name, buf[:12].reshape(3, 4), out=buf[4:16].reshape(3, 4))


@pytest.mark.parametrize("name", ["relu", "sigmoid", "softmax", "gelu"])
def test_numpy_backend_is_exact_on_a_shifted_out(name):
    buf = _buffer(16).astype(np.float64)
    x = buf[:12].reshape(3, 4)
    expected = reference.activation_forward(name, x.copy())
    got = reference.activation_forward(name, x, out=buf[4:16].reshape(3, 4))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["relu", "softmax", "tanh"])
def test_activation_in_place_stays_allowed(name):
    x = _buffer(12).reshape(3, 4)
    expected = compiled.activation_forward(name, x.copy())
    got = compiled.activation_forward(name, x, out=x)
    assert got is x
    np.testing.assert_array_equal(x, expected)


def test_activation_backward_in_place_and_shifted():
    buf = _buffer(24)
    dy, y = buf[:12].reshape(3, 4), buf[12:].reshape(3, 4)
    expected = compiled.activation_backward("sigmoid", dy.copy(), None, y.copy())
    np.testing.assert_array_equal(compiled.activation_backward("sigmoid", dy, None, y, out=dy),
                                  expected)
    with pytest.raises(ValueError, match="dX must be Y itself or not share memory"):
        compiled.activation_backward("sigmoid", dy, None, buf[8:20].reshape(3, 4),
                                     out=buf[12:].reshape(3, 4))


def test_dense_backward_refuses_dx_over_its_inputs():
    x, w = _buffer(15).reshape(5, 3), _buffer(6).reshape(3, 2)
    dy = _buffer(10).reshape(5, 2)
    dw, db = np.empty((3, 2), np.float32), np.empty(2, np.float32)
    with pytest.raises(ValueError, match="dense_backward_f32: dX must not share memory"):
        compiled.dense_backward(dy, x, w, None, None, "linear", dw, db, dx_out=x)
    with pytest.raises(ValueError, match="dW must not share memory"):
        compiled.dense_backward(dy, x, w, None, None, "linear", w, db)


def test_loss_refuses_a_gradient_over_the_prediction():
    buf = np.abs(_buffer(14)) + 0.1
    y_pred, y_true = buf[:8].reshape(4, 2), np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match="grad must not share memory with Y_pred"):
        compiled.loss("mse", y_pred, y_true, grad_out=buf[6:14].reshape(4, 2))


def test_dropout_refuses_shifted_out_and_keeps_in_place():
    buf = _buffer(20)
    with pytest.raises(ValueError, match="Y must be X itself"):
        compiled.dropout_forward(buf[:16].reshape(4, 4), 3, 0.5, out=buf[4:].reshape(4, 4))
    x = buf[:16].reshape(4, 4)
    expected = compiled.dropout_forward(x.copy(), 3, 0.5)
    np.testing.assert_array_equal(compiled.dropout_forward(x, 3, 0.5, out=x), expected)


def test_normalization_refuses_shifted_out():
    buf = _buffer(20)
    gamma, beta = np.ones(4, np.float32), np.zeros(4, np.float32)
    mean, var = np.zeros(4, np.float32), np.ones(4, np.float32)
    with pytest.raises(ValueError, match="Y must be X itself"):
        compiled.batchnorm_forward(buf[:16].reshape(4, 4), mean, var, gamma, beta,
                                   epsilon=1e-3, out=buf[4:].reshape(4, 4))
    with pytest.raises(ValueError, match="out .* shares memory with x"):
        compiled.layer_norm(buf[:16].reshape(4, 4), gamma, beta, epsilon=1e-3,
                            out=buf[4:].reshape(4, 4))
    out = np.empty(20, np.float32)
    with pytest.raises(ValueError, match="out .* must not share memory with mean_out"):
        compiled.layer_norm(buf[:16].reshape(4, 4), gamma, beta, epsilon=1e-3,
                            out=out[:16].reshape(4, 4), mean_out=out[12:16])


def test_pooling_refuses_out_over_x():
    buf = _buffer(2 * 4 * 4 * 2)
    x = buf.reshape(2, 4, 4, 2)
    out = buf[:16].reshape(2, 2, 2, 2)
    with pytest.raises(ValueError, match="Y must not share memory with X"):
        compiled.avg_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="valid",
                                    out=out)
    with pytest.raises(ValueError, match="Y must not share memory with X"):
        compiled.max_pool2d_forward(x, pool_size=(2, 2), strides=(2, 2), padding="valid",
                                    out=out)


def test_embedding_refuses_out_over_the_table():
    table = _buffer(40).reshape(10, 4)
    with pytest.raises(ValueError, match="Y must not share memory with indices or table"):
        compiled.embedding_forward(np.array([[1, 2]]), table, out=table[4:6].reshape(1, 2, 4))


def test_conv_refuses_out_over_the_kernel():
    x = _buffer(1 * 4 * 4 * 2).reshape(1, 4, 4, 2)
    w = _buffer(2 * 2 * 2 * 8).reshape(2, 2, 2, 8)
    with pytest.raises(ValueError, match="Y must not share memory with Z, X, W or b"):
        compiled.conv2d_forward(x, w, None, strides=(2, 2), padding="valid", dilation=(1, 1),
                                activation=None, out=w.reshape(-1)[:32].reshape(1, 2, 2, 8))


def test_rnn_refuses_states_over_the_input():
    x = _buffer(2 * 3 * 4).reshape(2, 3, 4)
    kernel, recurrent = _buffer(4 * 4).reshape(4, 4), _buffer(16).reshape(4, 4)
    with pytest.raises(ValueError, match="hs must not share memory"):
        compiled.rnn_forward("simple_rnn", x, kernel, recurrent, None, activation="tanh",
                             recurrent_activation="sigmoid", hs_out=x)


def test_attention_refuses_out_over_q():
    q = _buffer(1 * 3 * 1 * 4).reshape(1, 3, 1, 4)
    k, v = q.copy(), q.copy()
    with pytest.raises(ValueError, match="attention: out must not share memory"):
        compiled.attention(q, k, v, scale=0.5, out=q)
