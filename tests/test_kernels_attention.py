"""Fused scaled dot-product attention: Ops.attention / attention_backward.

CompiledOps (csrc/attention.c) against NumpyOps on odd sizes (Tq != Tk, D != Dv,
T in {1, 7, 33, 130}), every mask alone and together, causal with Tq < Tk and
Tq > Tk, rows with no allowed key (Keras's -1e9 rule), dropout, probs and
dprobs, batch-strided views of a KV cache, given and allocated outputs, on
every ISA this CPU has; NumpyOps against finite differences; 1 vs 2 threads
bitwise; PyTorch's scaled_dot_product_attention as an outside oracle; the
kernels' scratch (O(T d), exactly attention_scratch_bytes); bad input.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend.ops import (
    ATTENTION_MASK_VALUE, dropout_scale, dropout_threshold,
)
from testing_utils import numeric_grad, on_threads

DTYPES = [np.float32, np.float64]
# Sums in other orders, exp's few ulp, online softmax vs a plain one.
TOL = {np.float32: dict(rtol=2e-5, atol=3e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
NAMES = ("out", "lse", "probs", "dq", "dk", "dv")
SUPPORTED_ISAS = [name for name in _core.ISA_NAMES if _core.isa_supported(name)]


def _tensor(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _problem(rng, n, tq, tk, h, d, dv, dtype):
    return (_tensor(rng, (n, tq, h, d), dtype), _tensor(rng, (n, tk, h, d), dtype),
            _tensor(rng, (n, tk, h, dv), dtype), _tensor(rng, (n, tq, h, dv), dtype))


def _masks(rng, n, tq, tk, which, dead_rows=True):
    """Random masks named in `which` ("q", "k", "a"). With dead_rows some rows
    lose every key (query row 1, the last row, key 0); without, key 0 stays
    allowed for every row (causal or not) and no query row is masked."""
    out = {}
    if "q" in which:
        m = rng.random((n, tq)) > 0.25
        if dead_rows and tq > 1:
            m[:, 1] = False
        out["query_mask"] = m if dead_rows else np.ones((n, tq), bool)
    if "k" in which:
        m = rng.random((n, tk)) > 0.3
        m[:, 0] = not dead_rows
        out["key_mask"] = m.astype(np.uint8)                # uint8 works like bool
    if "a" in which:
        m = rng.random((n, tq, tk)) > 0.3
        if dead_rows:
            m[:, -1, :] = False
        else:
            m[:, :, 0] = True
        out["attention_mask"] = m
    return out


def _run(ops, q, k, v, dout, dprobs=None, out=None, grads=None, **kw):
    """Forward (out, lse, probs) and backward (dq, dk, dv) of one configuration."""
    n, tq, h, _ = q.shape
    lse = np.empty((n, h, tq), q.dtype)
    probs = np.empty((n, h, tq, k.shape[1]), q.dtype)
    y = ops.attention(q, k, v, out=out, lse_out=lse, probs_out=probs, **kw)
    assert out is None or y is out
    dq_out, dk_out, dv_out = grads or (None, None, None)
    g = ops.attention_backward(dout, q, k, v, y, lse, dprobs=dprobs, dq_out=dq_out,
                               dk_out=dk_out, dv_out=dv_out, **kw)
    if grads is not None:
        assert all(a is b for a, b in zip(g, grads))
    return (y, lse, probs) + tuple(g)


def _dp_scale(dout, v, dprobs=None):
    """The largest |dp| = |dout . v (+ dprobs)|: the gradients are sums of p (dp -
    delta) terms, delta = dout . out, whose difference cancels to rounding
    noise of this size (to 0 exactly in NumPy, whose delta is sum(p dp))."""
    dp = np.abs(np.einsum("nihc,njhc->nhij", dout.astype(np.float64), v)).max()
    return float(dp + (0.0 if dprobs is None else np.abs(dprobs).max()))


def _check(got, want, dtype, what="", g=1.0):
    """out, lse, probs to TOL; dq, dk, dv with atol scaled by g (see _dp_scale)."""
    for name, a, b in zip(NAMES, got, want):
        assert a.shape == b.shape and a.dtype == b.dtype == dtype, name
        assert np.isfinite(a).all(), f"{what} {name}"
        tol = dict(TOL[dtype])
        if name.startswith("d"):
            tol["atol"] *= max(1.0, g)
        np.testing.assert_allclose(a, b, **tol, err_msg=f"{what} {name}")


# ---- compiled == NumPy ------------------------------------------------------------

SHAPES = [(1, 1, 1, 1, 1, 1), (2, 7, 33, 3, 5, 9), (2, 33, 7, 1, 16, 3),
          (1, 130, 33, 3, 32, 16), (2, 33, 130, 1, 7, 33), (1, 130, 130, 1, 64, 64)]


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_compiled_matches_numpy(numpy_ops, compiled_ops, shape, dtype, causal, rng):
    q, k, v, dout = _problem(rng, *shape, dtype)
    kw = dict(scale=0.4, causal=causal)
    _check(_run(compiled_ops, q, k, v, dout, **kw), _run(numpy_ops, q, k, v, dout, **kw),
           dtype, g=_dp_scale(dout, v))


SIZES = st.sampled_from([1, 2, 3, 7, 13, 16, 31, 33, 64, 65, 97])


@given(n=st.integers(1, 2), tq=SIZES, tk=SIZES, h=st.integers(1, 3), d=SIZES, dv=SIZES,
       dtype=st.sampled_from(DTYPES), causal=st.booleans(), masks=st.sampled_from(["", "k", "qa"]),
       dropout=st.booleans(), dprobs=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_compiled_matches_numpy_drawn(numpy_ops, compiled_ops, n, tq, tk, h, d, dv, dtype,
                                      causal, masks, dropout, dprobs, seed):
    rng = np.random.default_rng(seed)
    q, k, v, dout = _problem(rng, n, tq, tk, h, d, dv, dtype)
    dp = _tensor(rng, (n, h, tq, tk), dtype) if dprobs else None
    kw = dict(scale=0.3, causal=causal, **_masks(rng, n, tq, tk, masks))
    if dropout:
        kw.update(dropout_rate=0.25, seed=seed)
    _check(_run(compiled_ops, q, k, v, dout, dp, **kw), _run(numpy_ops, q, k, v, dout, dp, **kw),
           dtype, g=_dp_scale(dout, v, dp))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["q", "k", "a", "qka"])
@pytest.mark.parametrize("tq,tk,causal", [(33, 70, False), (70, 33, True), (7, 130, True)])
def test_masks_match_numpy(numpy_ops, compiled_ops, which, tq, tk, causal, dtype, rng):
    """Each mask alone and all together, with rows that have no allowed key."""
    q, k, v, dout = _problem(rng, 2, tq, tk, 2, 8, 5, dtype)
    kw = dict(scale=0.5, causal=causal, **_masks(rng, 2, tq, tk, which))
    _check(_run(compiled_ops, q, k, v, dout, **kw), _run(numpy_ops, q, k, v, dout, **kw),
           dtype, which, g=_dp_scale(dout, v))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_without_allowed_keys_follow_keras(ops, dtype, rng):
    """-1e9 is added, not set: in float32 a row with no allowed key is uniform
    over all keys (scores + -1e9 all round to -1e9); in float64 it is the
    softmax of the shifted scores, exactly as Keras's _masked_softmax."""
    q, k, v, dout = _problem(rng, 1, 5, 70, 1, 4, 3, dtype)
    qmask = np.array([[True, False, True, True, True]])
    y, _, probs, *grads = _run(ops, q, k, v, dout, scale=1.0, query_mask=qmask)
    s = np.einsum("nihd,njhd->nhij", q, k)[0, 0, 1]
    want = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    if dtype == np.float32:
        assert (s + np.float32(ATTENTION_MASK_VALUE) == np.float32(-1e9)).all()
        want = np.full(70, 1 / 70)
    np.testing.assert_allclose(probs[0, 0, 1], want, rtol=1e-5 if dtype == np.float32 else 1e-6)
    np.testing.assert_allclose(y[0, 1, 0], want @ v[0, :, 0], rtol=1e-4, atol=1e-6)
    assert all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
def test_dropout_and_dprobs_match_numpy(numpy_ops, compiled_ops, causal, dtype, rng):
    q, k, v, dout = _problem(rng, 2, 70, 130, 2, 12, 6, dtype)
    dprobs = _tensor(rng, (2, 2, 70, 130), dtype)
    kw = dict(scale=0.3, causal=causal, dropout_rate=0.3, seed=2**63 + 5,
              **_masks(rng, 2, 70, 130, "qk", dead_rows=True))
    want = _run(numpy_ops, q, k, v, dout, dprobs, **kw)
    _check(_run(compiled_ops, q, k, v, dout, dprobs, **kw), want, dtype,
           g=_dp_scale(dout, v, dprobs))
    # The dropout is exactly dropout_mask's over (N, H, Tq, Tk).
    keep = numpy_ops.dropout_mask(kw["seed"], 0.3, np.empty((2, 2, 70, 130), np.uint8))
    ks = dtype(dropout_scale(0.3))
    manual = np.einsum("nhij,njhc->nihc", np.where(keep != 0, want[2] * ks, 0), v)
    np.testing.assert_allclose(want[0], manual, **TOL[dtype])
    # A different seed drops other scores.
    other = compiled_ops.attention(q, k, v, **dict(kw, seed=1))
    assert not np.allclose(other, want[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_cache_views_and_given_outputs(numpy_ops, compiled_ops, dtype, rng):
    """q, k, v, out, dout, dq, dk, dv as views cache[:, :t] of (N, Tmax, H, D)
    buffers: the batch stride is larger than contiguous."""
    n, tq, tk, h, d, dv = 3, 33, 70, 2, 9, 7

    def view(t, x):
        cache = np.full((n, t + 11, h, x), np.nan, dtype)
        return cache[:, :t], cache

    (q, _), (k, _), (v, _), (dout, _) = (view(tq, d), view(tk, d), view(tk, dv),
                                         view(tq, dv))
    for a in (q, k, v, dout):
        a[...] = _tensor(rng, a.shape, dtype)
    assert not q.flags.c_contiguous and q[0].flags.c_contiguous
    (out, out_cache), (dq, dq_cache), (dk, dk_cache), (dvv, dv_cache) = (
        view(tq, dv), view(tq, d), view(tk, d), view(tk, dv))
    kw = dict(scale=0.7, causal=True, key_mask=_masks(rng, n, tq, tk, "k")["key_mask"])
    got = _run(compiled_ops, q, k, v, dout, out=out, grads=(dq, dk, dvv), **kw)
    want = _run(numpy_ops, *(np.ascontiguousarray(a) for a in (q, k, v, dout)), **kw)
    _check(got, want, dtype, g=_dp_scale(dout, v))
    for cache, t in ((out_cache, tq), (dq_cache, tq), (dk_cache, tk), (dv_cache, tk)):
        assert np.isnan(cache[:, t:]).all()            # nothing written past the view
    # NumpyOps takes the same views.
    _check(_run(numpy_ops, q, k, v, dout, **kw), want, dtype, g=_dp_scale(dout, v))


@pytest.mark.parametrize("isa", [i for i in SUPPORTED_ISAS if i != _core.isa_best()])
def test_other_isas_match_numpy(numpy_ops, compiled_ops, isa, rng):
    """The AVX2 (AVX2-only CPUs such as Zen 1) and portable builds, forced."""
    before = _core.isa_current()
    try:
        _core.isa_select(isa)
        for dtype in DTYPES:
            q, k, v, dout = _problem(rng, 2, 70, 33, 2, 20, 9, dtype)
            dprobs = _tensor(rng, (2, 2, 70, 33), dtype)
            kw = dict(scale=0.5, causal=True, dropout_rate=0.2, seed=3,
                      **_masks(rng, 2, 70, 33, "qka"))
            _check(_run(compiled_ops, q, k, v, dout, dprobs, **kw),
                   _run(numpy_ops, q, k, v, dout, dprobs, **kw), dtype, isa,
                   g=_dp_scale(dout, v, dprobs))
    finally:
        _core.isa_select(before)


@pytest.mark.skipif(not _core.isa_supported("avx2"), reason="needs AVX2")
def test_avx2_from_env_in_subprocess():
    """FASTNN_ISA=avx2 (the build AVX2-only CPUs such as Zen 1 run) in a fresh
    process: the attention kernels of that table are right."""
    script = (
        "import numpy as np\n"
        "from fastnn.backend import get_ops\n"
        "from fastnn._ext import _core\n"
        "ops, ref = get_ops('compiled'), get_ops('numpy')\n"
        "assert _core.isa_current() == 'avx2', _core.isa_current()\n"
        "rng = np.random.default_rng(3)\n"
        "for dt, tol in ((np.float32, 2e-5), (np.float64, 1e-12)):\n"
        "    q, k, v, dy = (rng.standard_normal(s).astype(dt) for s in\n"
        "                   ((2, 70, 3, 13), (2, 90, 3, 13), (2, 90, 3, 9), (2, 70, 3, 9)))\n"
        "    km = rng.random((2, 90)) > 0.3\n"
        "    res = []\n"
        "    for o in (ops, ref):\n"
        "        lse = np.empty((2, 3, 70), dt)\n"
        "        y = o.attention(q, k, v, scale=0.4, causal=True, key_mask=km, lse_out=lse)\n"
        "        res.append((y,) + o.attention_backward(dy, q, k, v, y, lse, scale=0.4,\n"
        "                                               causal=True, key_mask=km))\n"
        "    for a, b in zip(*res):\n"
        "        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, FASTNN_ISA="avx2"),
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_float64_runs_compiled(compiled_ops, rng):
    import fastnn
    q, k, v, dout = _problem(rng, 1, 3, 4, 1, 2, 2, np.float64)
    _run(compiled_ops, q, k, v, dout, scale=1.0)
    assert not any(f.startswith("attention") for f in fastnn.show_config("dicts")["fallbacks"])


# ---- NumPy against finite differences ------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(),
    dict(causal=True, dropout_rate=0.4, seed=11),
    dict(causal=True, masks="ka"),
    dict(masks="k", dropout_rate=0.25, seed=7, dprobs=True),
], ids=["plain", "causal-dropout", "causal-masks", "mask-dropout-dprobs"])
def test_numpy_gradients_match_finite_differences(numpy_ops, kw):
    rng = np.random.default_rng(5)
    n, tq, tk, h, d, dv = 2, 4, 5, 2, 3, 2
    q, k, v, w = _problem(rng, n, tq, tk, h, d, dv, np.float64)
    kw = dict(kw)
    masks = _masks(rng, n, tq, tk, kw.pop("masks", ""), dead_rows=False)
    wp = _tensor(rng, (n, h, tq, tk), np.float64) if kw.pop("dprobs", False) else None
    kw.update(masks, scale=0.6)

    def loss():
        probs = np.empty((n, h, tq, tk))
        y = numpy_ops.attention(q, k, v, probs_out=probs, **kw)
        return float((y * w).sum() + (0.0 if wp is None else (probs * wp).sum()))

    lse = np.empty((n, h, tq))
    y = numpy_ops.attention(q, k, v, lse_out=lse, **kw)
    grads = numpy_ops.attention_backward(w, q, k, v, y, lse, dprobs=wp, **kw)
    for g, x in zip(grads, (q, k, v)):
        np.testing.assert_allclose(g, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


# ---- a few query rows (decoding): the row-by-row forward ---------------------------
# Without probs_out, a forward of at most 4 query rows runs row by row (the
# block loop would compute 64 lanes for each); with probs_out it takes the
# block loop. Both must agree with NumPy and with each other.

def _forward_rows(ops, q, k, v, **kw):
    """out and lse without probs_out (the row path for tq <= 4)."""
    n, tq, h, _ = q.shape
    lse = np.empty((n, h, tq), q.dtype)
    return ops.attention(q, k, v, lse_out=lse, **kw), lse


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tq", [1, 2, 4, 5])
@pytest.mark.parametrize("tk", [1, 63, 130])
@pytest.mark.parametrize("which", ["", "qka"])
@pytest.mark.parametrize("causal", [False, True])
def test_few_query_rows_match_numpy(numpy_ops, compiled_ops, tq, tk, which, causal, dtype,
                                    rng):
    """One to five rows (five: the block loop) against 1 and 130 keys (past a
    64-key block), masks with rows that lose every key, causal, dropout."""
    q, k, v, _ = _problem(rng, 2, tq, tk, 3, 9, 5, dtype)
    kw = dict(scale=0.4, causal=causal, dropout_rate=0.25, seed=11,
              **_masks(rng, 2, tq, tk, which))
    want = _forward_rows(numpy_ops, q, k, v, **kw)
    got = _forward_rows(compiled_ops, q, k, v, **kw)
    for name, a, b in zip(("out", "lse"), got, want):
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)
    # the block loop (taken when the probabilities are asked for) agrees too
    blocks = _run(compiled_ops, q, k, v, np.zeros_like(want[0]), **kw)
    np.testing.assert_allclose(got[0], blocks[0], **TOL[dtype])
    np.testing.assert_allclose(got[1], blocks[1], **TOL[dtype])


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_few_query_rows_on_every_isa_and_cache_views(numpy_ops, compiled_ops, isa, rng):
    """Decoding's call: one new row against views cache[:, :t] of a KV cache,
    on each ISA's build; 1 and 2 threads bitwise equal."""
    before = _core.isa_current()
    # 120 sequences: about 7 MFLOP, enough work for two threads to share
    cache_k = _tensor(rng, (120, 200, 4, 32), np.float32)
    cache_v = _tensor(rng, (120, 200, 4, 16), np.float32)
    k, v = cache_k[:, :150], cache_v[:, :150]
    q = _tensor(rng, (120, 1, 4, 32), np.float32)
    want = _forward_rows(numpy_ops, q, np.ascontiguousarray(k), np.ascontiguousarray(v),
                         scale=0.18)
    try:
        _core.isa_select(isa)
        results = []
        for threads in (1, 2):
            with on_threads(threads):
                results.append(_forward_rows(compiled_ops, q, k, v, scale=0.18))
    finally:
        _core.isa_select(before)
    for a, b in zip(results[0], want):
        np.testing.assert_allclose(a, b, **TOL[np.float32])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- threads -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,h,t", [(3, 2, 150), (1, 1, 300)], ids=["pairs", "one-pair"])
def test_one_and_two_threads_bitwise_equal(compiled_ops, n, h, t, dtype, rng):
    """The forward shares out (n, h) pairs, or with threads to spare the query
    blocks of one pair; the backward (n, h) pairs. Either way bitwise equal."""
    q, k, v, dout = _problem(rng, n, t, t, h, 24, 16, dtype)
    dprobs = _tensor(rng, (n, h, t, t), dtype)
    kw = dict(scale=0.25, causal=True, dropout_rate=0.1, seed=9,
              **_masks(rng, n, t, t, "qka"))
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            results.append(_run(compiled_ops, q, k, v, dout, dprobs, **kw))
    for name, a, b in zip(NAMES, *results):
        np.testing.assert_array_equal(a, b, err_msg=name)


# ---- PyTorch as an outside oracle -------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.torch_oracle
def test_matches_pytorch_sdpa(compiled_ops, causal, rng):
    torch = pytest.importorskip("torch")
    n, tq, tk, h, d, dv = 2, 33, 70, 3, 16, 8
    q, k, v, dout = _problem(rng, n, tq, tk, h, d, dv, np.float64)
    masks = _masks(rng, n, tq, tk, "qka", dead_rows=False)   # every row keeps a key
    scale = 0.3
    allowed = (masks["query_mask"][:, :, None] & (masks["key_mask"] != 0)[:, None, :]
               & masks["attention_mask"])
    if causal:
        allowed &= np.tril(np.ones((tq, tk), bool))
    additive = torch.tensor(np.where(allowed, 0.0, ATTENTION_MASK_VALUE)[:, None])
    tq_, tk_, tv_ = (torch.tensor(a.transpose(0, 2, 1, 3), requires_grad=True)
                     for a in (q, k, v))
    ty = torch.nn.functional.scaled_dot_product_attention(tq_, tk_, tv_, attn_mask=additive,
                                                          scale=scale)
    ty.backward(torch.tensor(dout.transpose(0, 2, 1, 3)))
    got = _run(compiled_ops, q, k, v, dout, scale=scale, causal=causal, **masks)
    want = [ty.detach().numpy(), None, None, tq_.grad.numpy(), tk_.grad.numpy(),
            tv_.grad.numpy()]
    for name, a, b in zip(NAMES, got, want):
        if b is not None:
            np.testing.assert_allclose(a, b.transpose(0, 2, 1, 3), rtol=1e-11, atol=1e-12,
                                       err_msg=name)


# ---- memory: O(T d) scratch, exactly what attention_scratch_bytes says -------------

def test_scratch_is_linear_in_t_and_exact(numpy_ops, compiled_ops, rng):
    t, d = 2048, 64
    quadratic = t * t * 4
    sizes = {}
    for backward in (False, True):
        for tt in (t // 2, t):
            sizes[backward, tt] = compiled_ops.attention_scratch_bytes(
                1, tt, tt, 1, d, d, np.float32, backward=backward)
        assert sizes[backward, t] < quadratic / 4, (backward, sizes)
        assert sizes[backward, t] <= 2.1 * sizes[backward, t // 2], (backward, sizes)
    assert sizes[True, t] < quadratic / 8
    assert numpy_ops.attention_scratch_bytes(1, t, t, 1, d, d, np.float32,
                                             backward=False) >= quadratic

    q, k, v, dout = _problem(rng, 1, t, t, 1, d, d, np.float32)
    params = (0.125, True, 0, 0, 1.0)             # scale, causal, seed, threshold, keep_scale
    fwd, bwd = sizes[False, t], sizes[True, t]
    out = np.empty_like(q)
    lse = np.empty((1, 1, t), np.float32)
    with pytest.raises(ValueError, match="work holds"):
        _core.attention_forward(out, lse, None, np.empty(fwd - 1, np.uint8), q, k, v, None,
                                None, None, *params, 2)
    # The kernels run in exactly the reported scratch (they allocate nothing).
    _core.attention_forward(out, lse, None, np.empty(fwd, np.uint8), q, k, v, None, None,
                            None, *params, 2)
    want = numpy_ops.attention(q[:, :16], k[:, :16], v[:, :16], scale=0.125, causal=True)
    np.testing.assert_allclose(out[:, :16], want, **TOL[np.float32])
    grads = [np.empty_like(q) for _ in range(3)]
    with pytest.raises(ValueError, match="work holds"):
        _core.attention_backward(*grads, np.empty(bwd - 1, np.uint8), dout, q, k, v, out, lse,
                                 None, None, None, None, *params, 2)
    _core.attention_backward(*grads, np.empty(bwd, np.uint8), dout, q, k, v, out, lse, None,
                             None, None, None, *params, 2)
    assert all(np.isfinite(g).all() for g in grads)


# ---- bad input: ValueErrors naming the argument, the same on both backends ---------

F = np.zeros((2, 5, 3, 4), np.float32)
K = np.zeros((2, 6, 3, 4), np.float32)
V = np.zeros((2, 6, 3, 2), np.float32)
O = np.zeros((2, 5, 3, 2), np.float32)
L = np.zeros((2, 3, 5), np.float32)
CACHE = np.zeros((2, 9, 3, 4), np.float32)
TRANSPOSED = np.zeros((2, 3, 5, 4), np.float32).transpose(0, 2, 1, 3)

BAD_FORWARD = [
    (dict(q=F.astype(np.float16)), r"q must be a 4-D float32 or float64 array"),
    (dict(q=F[0]), r"q must be a 4-D"),
    (dict(k=K.astype(np.float64)), r"k must be float32 like q, got float64"),
    (dict(k=np.zeros((2, 6, 3, 5), np.float32)), r"k must have shape \(2, 6, 3, 4\)"),
    (dict(v=np.zeros((2, 7, 3, 2), np.float32)), r"v must have shape \(2, 6, 3, 2\)"),
    (dict(k=K[:, :0], v=V[:, :0]), r"at least one key"),
    (dict(q=TRANSPOSED), r"q \(2, 5, 3, 4\) must have its inner \(T, H, features\) axes "
                         r"C-contiguous"),
    (dict(k=CACHE[:, ::-1][:, :6]), r"k .* C-contiguous"),
    (dict(scale=float("nan")), r"scale must be a finite number"),
    (dict(scale="1"), r"scale must be a finite number"),
    (dict(causal=1), r"causal must be True or False"),
    (dict(query_mask=np.ones((2, 6), bool)), r"query_mask must have shape \(2, 5\)"),
    (dict(key_mask=np.ones((2, 6), np.float32)), r"key_mask must be a bool or uint8 array"),
    (dict(attention_mask=np.ones((2, 6, 5), bool)),
     r"attention_mask must have shape \(2, 5, 6\)"),
    (dict(dropout_rate=1.0), r"rate must be in \[0, 1\)"),
    (dict(seed=-1), r"seed must be an integer"),
    (dict(out=np.zeros((2, 5, 3, 4), np.float32)), r"out must have shape \(2, 5, 3, 2\)"),
    (dict(out=np.zeros((2, 3, 5, 2), np.float32).transpose(0, 2, 1, 3)),
     r"out .* C-contiguous"),
    (dict(lse_out=np.zeros((2, 5, 3), np.float32)), r"lse_out must have shape \(2, 3, 5\)"),
    (dict(probs_out=np.zeros((2, 3, 5, 6), np.float64)), r"probs_out must have shape"),
    (dict(out=F.reshape(-1)[:60].reshape(2, 5, 3, 2)), r"out must not share memory with q"),
]


@pytest.mark.parametrize("change,match", BAD_FORWARD)
def test_bad_forward_arguments(ops, change, match):
    args = dict(q=F, k=K, v=V, scale=1.0)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        ops.attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)


BAD_BACKWARD = [
    (dict(dout=np.zeros((2, 5, 3, 4), np.float32)), r"dout must have shape \(2, 5, 3, 2\)"),
    (dict(out=O.astype(np.float64)), r"out must be float32 like q"),
    (dict(lse=np.zeros((2, 5, 3), np.float32)), r"lse must have shape \(2, 3, 5\)"),
    (dict(dprobs=np.zeros((2, 3, 5, 5), np.float32)), r"dprobs must have shape \(2, 3, 5, 6\)"),
    (dict(dq_out=np.zeros((2, 5, 3, 2), np.float32)), r"dq_out must have shape \(2, 5, 3, 4\)"),
    (dict(dv_out=np.zeros((2, 6, 3, 2), np.float32)[:, ::2]), r"dv_out must have shape"),
    (dict(dk_out=K), r"dk_out must not share memory with k"),
    (dict(key_mask=np.ones((2, 5), bool)), r"key_mask must have shape \(2, 6\)"),
]


@pytest.mark.parametrize("change,match", BAD_BACKWARD)
def test_bad_backward_arguments(ops, change, match):
    args = dict(dout=O, q=F, k=K, v=V, out=O, lse=L, scale=1.0)
    args.update(change)
    with pytest.raises(ValueError, match=match):
        ops.attention_backward(args.pop("dout"), args.pop("q"), args.pop("k"), args.pop("v"),
                               args.pop("out"), args.pop("lse"), **args)


def test_empty_batch_and_queries(ops):
    """N = 0 or Tq = 0 give empty outputs; with no queries dk and dv are zero."""
    for n, tq in ((0, 5), (2, 0)):
        q = np.zeros((n, tq, 3, 4), np.float32)
        k, v = np.ones((n, 6, 3, 4), np.float32), np.ones((n, 6, 3, 2), np.float32)
        lse = np.empty((n, 3, tq), np.float32)
        y = ops.attention(q, k, v, scale=1.0, lse_out=lse)
        assert y.shape == (n, tq, 3, 2)
        dq, dk, dv = ops.attention_backward(np.zeros_like(y), q, k, v, y, lse, scale=1.0)
        assert dq.shape == q.shape and not dk.any() and not dv.any()
