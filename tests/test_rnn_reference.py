"""The NumPy reference of the recurrent ops: float64 finite differences of
rnn_backward, one step against hand-written formulas, and PyTorch's LSTM/GRU
(when installed) with copied weights -- which catches a wrong gate order."""
import importlib.util

import numpy as np
import pytest

from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import RNN_CELLS, RNN_GATES
from testing_utils import numeric_grad

ops = NumpyOps()
N, T, I, U = 2, 3, 2, 3
MASK = np.array([[1, 0, 1], [0, 1, 1]], np.uint8)    # a first step and a middle step masked


def operands(cell, rng, use_bias=True, n=N, t=T, i=I, u=U):
    g = RNN_GATES[cell]
    x = rng.standard_normal((n, t, i))
    kernel = rng.standard_normal((i, g * u)) * 0.6
    rec = rng.standard_normal((u, g * u)) * 0.6
    bias = None
    if use_bias:
        bias = rng.standard_normal((2, 3 * u) if cell == "gru" else (g * u,)) * 0.5
    return x, kernel, rec, bias


@pytest.mark.parametrize("cell", RNN_CELLS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("swish", "tanh")])
def test_rnn_backward_matches_finite_differences(cell, go_backwards, masked, use_bias, acts, rng):
    x, kernel, rec, bias = operands(cell, rng, use_bias)
    mask = MASK if masked else None
    kw = dict(activation=acts[0], recurrent_activation=acts[1], go_backwards=go_backwards,
              mask=mask)
    weights = rng.standard_normal((N, T, U))       # L = sum(weights * hs)

    def loss():
        return float((weights * ops.rnn_forward(cell, x, kernel, rec, bias, **kw)).sum())

    cache = np.empty(ops.rnn_cache_shape(cell, N, T, U))
    hs = ops.rnn_forward(cell, x, kernel, rec, bias, cache_out=cache, **kw)
    dk, dr = np.full(kernel.shape, np.nan), np.full(rec.shape, np.nan)
    db = None if bias is None else np.full(bias.shape, np.nan)
    dx = ops.rnn_backward(cell, weights, x, kernel, rec, bias, hs, cache, dkernel_out=dk,
                          drecurrent_out=dr, dbias_out=db, **kw)
    tol = dict(rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), **tol)
    np.testing.assert_allclose(dk, numeric_grad(loss, kernel), **tol)
    np.testing.assert_allclose(dr, numeric_grad(loss, rec), **tol)
    if bias is not None:
        np.testing.assert_allclose(db, numeric_grad(loss, bias), **tol)
    assert ops.rnn_backward(cell, weights, x, kernel, rec, bias, hs, cache, dkernel_out=dk,
                            drecurrent_out=dr, dbias_out=db, dx_out=False, **kw) is None


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def test_one_lstm_step_equals_the_formula(rng):
    x, kernel, rec, bias = operands("lstm", rng, n=3, t=1)
    hs = ops.rnn_forward("lstm", x, kernel, rec, bias, activation="tanh",
                         recurrent_activation="sigmoid")
    z = x[:, 0] @ kernel + bias                     # h0 = 0: the recurrent term vanishes
    i, f, c, o = sigmoid(z[:, :U]), sigmoid(z[:, U:2 * U]), np.tanh(z[:, 2 * U:3 * U]), \
        sigmoid(z[:, 3 * U:])
    del f                                           # c0 = 0
    np.testing.assert_allclose(hs[:, 0], o * np.tanh(i * c), rtol=1e-12)


def test_two_gru_steps_equal_the_formula(rng):
    x, kernel, rec, bias = operands("gru", rng, n=3, t=2)
    hs = ops.rnn_forward("gru", x, kernel, rec, bias, activation="tanh",
                         recurrent_activation="sigmoid")
    h = np.zeros((3, U))
    for t in range(2):
        xw = x[:, t] @ kernel + bias[0]
        hu = h @ rec + bias[1]
        z = sigmoid(xw[:, :U] + hu[:, :U])
        r = sigmoid(xw[:, U:2 * U] + hu[:, U:2 * U])
        hh = np.tanh(xw[:, 2 * U:] + r * hu[:, 2 * U:])
        h = z * h + (1 - z) * hh
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-12)


def test_masked_steps_keep_the_state(rng):
    x, kernel, rec, bias = operands("lstm", rng)
    hs = ops.rnn_forward("lstm", x, kernel, rec, bias, activation="tanh",
                         recurrent_activation="sigmoid", mask=MASK)
    np.testing.assert_array_equal(hs[0, 1], hs[0, 0])       # step 1 of sample 0 masked
    np.testing.assert_array_equal(hs[1, 0], 0.0)            # masked first step: initial state
    only = ops.rnn_forward("lstm", x[:1, [0, 2]], kernel, rec, bias, activation="tanh",
                           recurrent_activation="sigmoid")
    np.testing.assert_allclose(hs[0, 2], only[0, 1], rtol=1e-12)


def test_go_backwards_reads_time_reversed(rng):
    x, kernel, rec, bias = operands("simple_rnn", rng)
    kw = dict(activation="tanh", recurrent_activation="sigmoid")
    back = ops.rnn_forward("simple_rnn", x, kernel, rec, bias, go_backwards=True, **kw)
    fwd = ops.rnn_forward("simple_rnn", x[:, ::-1].copy(), kernel, rec, bias, **kw)
    np.testing.assert_array_equal(back, fwd)


def test_bad_operands_raise_naming_shapes(rng):
    x, kernel, rec, bias = operands("lstm", rng)
    kw = dict(activation="tanh", recurrent_activation="sigmoid")
    with pytest.raises(ValueError, match="3-D"):
        ops.rnn_forward("lstm", x[:, 0], kernel, rec, bias, **kw)
    with pytest.raises(ValueError, match="kernel must have shape"):
        ops.rnn_forward("lstm", x[:, :, :1], kernel, rec, bias, **kw)
    with pytest.raises(ValueError, match="at least one step"):
        ops.rnn_forward("lstm", x[:, :0], kernel, rec, bias, **kw)
    with pytest.raises(ValueError, match="mask"):
        ops.rnn_forward("lstm", x, kernel, rec, bias, mask=MASK[:, :2], **kw)
    with pytest.raises(ValueError, match="activation"):
        ops.rnn_forward("lstm", x, kernel, rec, bias, activation="softmax",
                        recurrent_activation="sigmoid")


# ---- PyTorch (optional) -----------------------------------------------------------

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="needs torch")


def _torch_gru_order(a, u):
    """Keras' GRU gate blocks z, r, h -> torch's r, z, n, along the last axis."""
    return np.concatenate([a[..., u:2 * u], a[..., :u], a[..., 2 * u:]], axis=-1)


@needs_torch
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.torch_oracle
def test_matches_torch_with_copied_weights(cell, rng):
    import torch
    n, t, i, u = 3, 5, 4, 6
    x, kernel, rec, bias = operands(cell, rng, n=n, t=t, i=i, u=u)
    ours = ops.rnn_forward(cell, x, kernel, rec, bias, activation="tanh",
                           recurrent_activation="sigmoid")
    if cell == "lstm":        # torch: i, f, g, o -- Keras' order; one bias is enough
        net = torch.nn.LSTM(i, u, batch_first=True).double()
        w_ih, w_hh, b_ih, b_hh = kernel.T, rec.T, bias, np.zeros_like(bias)
    else:                     # torch: r, z, n with n's recurrent bias inside r * (...)
        net = torch.nn.GRU(i, u, batch_first=True).double()
        w_ih, w_hh = _torch_gru_order(kernel, u).T, _torch_gru_order(rec, u).T
        b_ih, b_hh = _torch_gru_order(bias[0], u), _torch_gru_order(bias[1], u)
    with torch.no_grad():
        for name, value in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh),
                            ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(net, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
        theirs = net(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
