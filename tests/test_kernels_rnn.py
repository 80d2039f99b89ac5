"""Compiled recurrent kernels (csrc/rnn.c) against NumpyOps' per-step reference.

Every buffer a call writes (hs, dx, dkernel, drecurrent, dbias) is compared in
float32 on odd sizes (batch 1, one step, units not a multiple of the GEMM
tile, prime feature counts) for every cell, go_backwards, masks (random zeros,
all-masked rows, a masked first step) and with/without bias; 1 and 2 threads
must agree bitwise; bad shapes raise ValueError naming them.
"""
import numpy as np
import pytest

from fastnn._ext import _core
from fastnn.backend.compiled_ops import FALLBACKS, CompiledOps
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import ACTIVATIONS, RNN_CELLS, RNN_GATES
from testing_utils import on_threads

REF = NumpyOps()
OPS = CompiledOps()
ACT = {name: code for code, name in enumerate(ACTIVATIONS)}

# (N, T, I, U): batch 1, a single step, units under / over / not a multiple of
# the micro-kernel's 32 columns, prime input widths.
SHAPES = [(1, 1, 3, 5), (3, 7, 5, 19), (2, 4, 1, 37), (5, 3, 7, 16)]


def _operands(cell, n, t, i, u, *, bias=True, mask=None, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    g = RNN_GATES[cell]
    x = rng.standard_normal((n, t, i)).astype(dtype)
    kernel = (rng.standard_normal((i, g * u)) / np.sqrt(i)).astype(dtype)
    rec = (rng.standard_normal((u, g * u)) / np.sqrt(u)).astype(dtype)
    b = None
    if bias:
        b = (0.3 * rng.standard_normal((2, 3 * u) if cell == "gru" else (g * u,))).astype(dtype)
    m = None
    if mask == "random":
        m = rng.random((n, t)) > 0.35
        m[0] = False                      # an all-masked row
        if n > 1:
            m[1, :] = True
            m[1, 0] = m[1, t - 1] = False  # masked first step, either direction
    elif mask == "uint8":
        m = (rng.random((n, t)) > 0.5).astype(np.uint8)
    dhs = rng.standard_normal((n, t, u)).astype(dtype)
    return x, kernel, rec, b, m, dhs


def _run(ops, cell, x, kernel, rec, b, mask, dhs, *, act="tanh", ract="sigmoid",
         go_backwards=False):
    kw = dict(activation=act, recurrent_activation=ract, go_backwards=go_backwards, mask=mask)
    n, t, _ = x.shape
    u = rec.shape[0]
    cache = np.empty(ops.rnn_cache_shape(cell, n, t, u), x.dtype)
    hs = ops.rnn_forward(cell, x, kernel, rec, b, cache_out=cache, **kw)
    dk, dr = np.full_like(kernel, np.nan), np.full_like(rec, np.nan)
    db = None if b is None else np.full_like(b, np.nan)
    dx = ops.rnn_backward(cell, dhs, x, kernel, rec, b, hs, cache, dkernel_out=dk,
                          drecurrent_out=dr, dbias_out=db, **kw)
    return {"hs": hs, "dx": dx, "dkernel": dk, "drecurrent": dr, "dbias": db}


def _assert_close(got, want, what):
    for name, w in want.items():
        g = got[name]
        if w is None:
            assert g is None, f"{what}: {name} should be None"
            continue
        scale = max(1.0, float(np.max(np.abs(w))))
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5 * scale,
                                   err_msg=f"{what}: {name}")


@pytest.mark.parametrize("cell", RNN_CELLS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("mask", [None, "random", "uint8"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_compiled_matches_numpy(cell, go_backwards, mask, bias, shape):
    args = _operands(cell, *shape, bias=bias, mask=mask)
    want = _run(REF, cell, *args, go_backwards=go_backwards)
    got = _run(OPS, cell, *args, go_backwards=go_backwards)
    _assert_close(got, want, f"{cell} {shape} go_backwards={go_backwards} mask={mask}")


@pytest.mark.parametrize("cell, act, ract", [
    ("simple_rnn", "relu", "sigmoid"),
    ("simple_rnn", "linear", "sigmoid"),
    ("simple_rnn", "gelu", "sigmoid"),       # derivative from the pre-activation
    ("lstm", "relu", "sigmoid"),
    ("lstm", "tanh", "swish"),               # keeps pre-activations in the cache
    ("lstm", "elu", "tanh"),
    ("gru", "relu", "sigmoid"),
    ("gru", "gelu", "swish"),
    ("gru", "tanh", "leaky_relu"),
])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_activation_variants(cell, act, ract, go_backwards):
    args = _operands(cell, 3, 6, 5, 21, mask="random", seed=1)
    want = _run(REF, cell, *args, act=act, ract=ract, go_backwards=go_backwards)
    got = _run(OPS, cell, *args, act=act, ract=ract, go_backwards=go_backwards)
    _assert_close(got, want, f"{cell} {act}/{ract}")


@pytest.mark.parametrize("cell", RNN_CELLS)
def test_inference_forward_without_cache_is_identical(cell):
    x, kernel, rec, b, mask, _ = _operands(cell, 4, 9, 3, 23, mask="random", seed=2)
    kw = dict(activation="tanh", recurrent_activation="sigmoid", go_backwards=True, mask=mask)
    cache = np.empty(OPS.rnn_cache_shape(cell, 4, 9, 23), np.float32)
    with_cache = OPS.rnn_forward(cell, x, kernel, rec, b, cache_out=cache, **kw)
    without = OPS.rnn_forward(cell, x, kernel, rec, b, **kw)
    np.testing.assert_array_equal(with_cache, without)


def test_dx_false_and_given_buffers():
    cell = "lstm"
    x, kernel, rec, b, mask, dhs = _operands(cell, 2, 5, 3, 9)
    kw = dict(activation="tanh", recurrent_activation="sigmoid")
    cache = np.empty(OPS.rnn_cache_shape(cell, 2, 5, 9), np.float32)
    hs_out = np.empty((2, 5, 9), np.float32)
    hs = OPS.rnn_forward(cell, x, kernel, rec, b, cache_out=cache, hs_out=hs_out, **kw)
    assert hs is hs_out
    dk, dr, db = np.empty_like(kernel), np.empty_like(rec), np.empty_like(b)
    assert OPS.rnn_backward(cell, dhs, x, kernel, rec, b, hs, cache, dkernel_out=dk,
                            drecurrent_out=dr, dbias_out=db, dx_out=False, **kw) is None
    dx_out = np.empty_like(x)
    assert OPS.rnn_backward(cell, dhs, x, kernel, rec, b, hs, cache, dkernel_out=dk,
                            drecurrent_out=dr, dbias_out=db, dx_out=dx_out, **kw) is dx_out


@pytest.mark.parametrize("cell", RNN_CELLS)
def test_one_and_two_threads_bitwise(cell):
    # Big enough that the kernels really split the batch rows between threads.
    n, t, i, u = 24, 30, 13, 67
    x, kernel, rec, b, mask, dhs = _operands(cell, n, t, i, u, mask="uint8", seed=3)
    code, act, ract = RNN_CELLS.index(cell), ACT["tanh"], ACT["sigmoid"]
    outs = []
    for threads in (1, 2):
        with on_threads(threads):
            hs = np.empty((n, t, u), np.float32)
            cache = np.empty(OPS.rnn_cache_shape(cell, n, t, u), np.float32)
            _core.rnn_forward_f32(hs, cache, x, kernel, rec, b, mask, code, act, ract, True,
                                  threads)
            dx, dk, dr, db = (np.empty_like(x), np.empty_like(kernel), np.empty_like(rec),
                              np.empty_like(b))
            _core.rnn_backward_f32(dx, dk, dr, db, dhs, x, kernel, rec, hs, cache, mask, code,
                                   act, ract, True, threads)
            outs.append((hs, dx, dk, dr, db))
    for name, one, two in zip(("hs", "dx", "dkernel", "drecurrent", "dbias"), *outs):
        assert np.array_equal(one, two), f"{cell}: {name} differs between 1 and 2 threads"


def test_set_num_threads_path_bitwise():
    cell = "simple_rnn"
    args = _operands(cell, 32, 20, 7, 70, mask="random", seed=4)
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            results.append(_run(OPS, cell, *args))
    for name in results[0]:
        assert np.array_equal(results[0][name], results[1][name]), name


def test_float64_runs_on_numpy_with_the_compiled_cache_shape():
    cell = "gru"
    args = _operands(cell, 2, 4, 3, 6, mask="random", dtype=np.float64)
    want = _run(REF, cell, *args)
    got = _run(OPS, cell, *args)
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=1e-12, atol=1e-12)
    assert "rnn_forward float64" in FALLBACKS and "rnn_backward float64" in FALLBACKS


def test_gradient_matches_finite_differences_through_compiled_forward():
    # A direct check of BPTT against the compiled forward itself (float32, loose).
    cell = "lstm"
    x, kernel, rec, b, mask, dhs = _operands(cell, 2, 4, 3, 5, mask="random", seed=5)
    kw = dict(activation="tanh", recurrent_activation="sigmoid", mask=mask)

    def loss(r):
        hs = OPS.rnn_forward(cell, x, kernel, r.astype(np.float32), b, **kw)
        return float(np.sum(hs.astype(np.float64) * dhs))

    got = _run(OPS, cell, x, kernel, rec, b, mask, dhs)["drecurrent"]
    eps = 1e-2
    for idx in [(0, 0), (2, 7), (4, 19)]:
        plus, minus = rec.astype(np.float64), rec.astype(np.float64)
        plus[idx] += eps
        minus[idx] -= eps
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        assert abs(numeric - got[idx]) < 2e-2 * max(1.0, abs(numeric)), idx


# ---- bad input -------------------------------------------------------------------------

def _good(cell="lstm"):
    return _operands(cell, 2, 3, 4, 5)


def test_bad_shapes_raise_value_error_naming_them():
    x, kernel, rec, b, _, _ = _good()
    kw = dict(activation="tanh", recurrent_activation="sigmoid")
    with pytest.raises(ValueError, match=r"3-D.*\(3, 4\)"):
        OPS.rnn_forward("lstm", x[0], kernel, rec, b, **kw)           # 2-D x
    with pytest.raises(ValueError, match=r"\(4, 20\).*\(3, 20\)"):
        OPS.rnn_forward("lstm", x, kernel[:3], rec, b, **kw)          # kernel rows != I
    with pytest.raises(ValueError, match=r"\(5, 16\)"):
        OPS.rnn_forward("lstm", x, kernel, rec[:, :16], b, **kw)      # not (U, 4U)
    with pytest.raises(ValueError, match=r"\(4, 24\).*\(4, 20\)"):
        OPS.rnn_forward("lstm", x, kernel, np.zeros((6, 24), np.float32), None,
                        **kw)                                        # units mismatch
    with pytest.raises(ValueError, match=r"\(19,\)"):
        OPS.rnn_forward("lstm", x, kernel, rec, b[:19], **kw)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        OPS.rnn_forward("lstm", x, kernel, rec, b, mask=np.ones((3, 2), bool), **kw)
    with pytest.raises(ValueError, match=r"at least one step"):
        OPS.rnn_forward("lstm", x[:, :0], kernel, rec, b, **kw)
    with pytest.raises(ValueError, match="cell"):
        OPS.rnn_forward("rnn", x, kernel, rec, b, **kw)
    with pytest.raises(ValueError, match="softmax|activation"):
        OPS.rnn_forward("lstm", x, kernel, rec, b, activation="softmax",
                        recurrent_activation="sigmoid")
    with pytest.raises(ValueError, match=r"hs must have shape \(2, 3, 5\)"):
        OPS.rnn_forward("lstm", x, kernel, rec, b, hs_out=np.empty((2, 3, 4), np.float32),
                        **kw)
    with pytest.raises(ValueError, match=r"cache must have shape"):
        OPS.rnn_forward("lstm", x, kernel, rec, b, cache_out=np.empty((2, 3, 5), np.float32),
                        **kw)


def test_bad_backward_buffers():
    x, kernel, rec, b, _, dhs = _good()
    kw = dict(activation="tanh", recurrent_activation="sigmoid")
    cache = np.empty(OPS.rnn_cache_shape("lstm", 2, 3, 5), np.float32)
    hs = OPS.rnn_forward("lstm", x, kernel, rec, b, cache_out=cache, **kw)
    good = dict(dkernel_out=np.empty_like(kernel), drecurrent_out=np.empty_like(rec),
                dbias_out=np.empty_like(b))
    with pytest.raises(ValueError, match=r"dhs must have shape \(2, 3, 5\)"):
        OPS.rnn_backward("lstm", dhs[:, :2], x, kernel, rec, b, hs, cache, **good, **kw)
    with pytest.raises(ValueError, match=r"cache must have shape"):
        OPS.rnn_backward("lstm", dhs, x, kernel, rec, b, hs, cache[:, :, :7], **good, **kw)
    with pytest.raises(ValueError, match=r"dW must have shape \(4, 20\)"):
        OPS.rnn_backward("lstm", dhs, x, kernel, rec, b, hs, cache, **kw,
                         **{**good, "dkernel_out": np.empty((20, 4), np.float32)})
    with pytest.raises(TypeError, match="float32"):
        OPS.rnn_backward("lstm", dhs, x, kernel, rec, b, hs, cache, **kw,
                         **{**good, "drecurrent_out": np.empty((5, 20), np.float64)})


def test_wrapper_rejects_non_contiguous_and_read_only_outputs():
    x, kernel, rec, b, _, _ = _good()
    hs = np.empty((2, 3, 10), np.float32)[:, :, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        _core.rnn_forward_f32(hs, None, x, kernel, rec, b, None, 1, ACT["tanh"],
                              ACT["sigmoid"], False, 1)
    hs = np.empty((2, 3, 5), np.float32)
    hs.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.rnn_forward_f32(hs, None, x, kernel, rec, b, None, 1, ACT["tanh"],
                              ACT["sigmoid"], False, 1)


def test_cache_shape_prefix_of_a_larger_batch_works():
    # Layers allocate the cache once for the largest batch and use a prefix.
    cell = "gru"
    x, kernel, rec, b, mask, dhs = _operands(cell, 6, 4, 3, 7, mask="random")
    big = np.empty(OPS.rnn_cache_shape(cell, 10, 4, 7), np.float32)
    kw = dict(activation="tanh", recurrent_activation="sigmoid", mask=mask)
    hs = OPS.rnn_forward(cell, x, kernel, rec, b, cache_out=big[:6], **kw)
    np.testing.assert_array_equal(hs, OPS.rnn_forward(cell, x, kernel, rec, b, **kw))
    assert OPS.rnn_cache_shape(cell, 6, 4, 7) == big[:6].shape

