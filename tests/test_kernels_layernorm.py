"""Layer and RMS normalization over the last axis (csrc/layernorm.c): CompiledOps
against NumpyOps for every buffer a call writes, in-place calls, large-offset
rows, finite differences (float64, NumpyOps), 1 vs 2 threads, PyTorch as an
oracle, and bad input."""
import itertools

import numpy as np
import pytest

from fastnn._ext import _core
from fastnn.backend import compiled_ops as compiled_module
from fastnn.backend.numpy_ops import NumpyOps
from testing_utils import numeric_grad, on_threads

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
EPS = 1e-3
# (rms, gamma given, beta given): every case Keras' two layers can produce.
VARIANTS = [(False, g, b) for g, b in itertools.product([True, False], repeat=2)] + \
           [(True, True, False), (True, False, False)]
VARIANT_IDS = [("rms" if r else "ln") + ("_g" if g else "") + ("_b" if b else "")
               for r, g, b in VARIANTS]


def ln_case(rng, shape, dtype, gamma=True, beta=True, offset=0.0):
    m, c = shape
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3.0, (m, 1)) + offset).astype(dtype)
    g = rng.uniform(0.5, 1.5, c).astype(dtype) if gamma else None
    b = rng.standard_normal(c).astype(dtype) if beta else None
    dy = rng.standard_normal(shape).astype(dtype)
    return x, g, b, dy


def run_ln(ops, x, gamma, beta, dy, rms, eps=EPS):
    """Every buffer a training step writes, pre-filled with NaN."""
    m, c = x.shape
    nan = lambda *shape: np.full(shape, np.nan, x.dtype)    # noqa: E731
    mean, rstd = nan(m), nan(m)
    y = ops.layer_norm(x, gamma, beta, epsilon=eps, rms=rms, out=nan(m, c), mean_out=mean,
                       rstd_out=rstd)
    dx, dgamma, dbeta = ops.layer_norm_backward(
        dy, x, mean, rstd, gamma, rms=rms, has_beta=beta is not None, dx_out=nan(m, c),
        dgamma_out=None if gamma is None else nan(c),
        dbeta_out=None if beta is None else nan(c))
    return {"y": y, "mean": mean, "rstd": rstd, "dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def assert_close(ref, got, dtype):
    for key, r in ref.items():
        if r is None:
            assert got[key] is None, key
            continue
        tol = TOL[dtype]
        scale = max(1.0, float(np.abs(r).max())) if r.size else 1.0
        np.testing.assert_allclose(got[key], r, rtol=tol["rtol"], atol=tol["atol"] * scale,
                                   err_msg=key)


def _threaded(fn):
    """fn() with 1 and with 2 threads, the oversubscription guard off, each run
    checked to have really used that many threads (testing_utils.on_threads)."""
    results = []
    for n in (1, 2):
        with on_threads(n):
            results.append(fn())
    return results


# ---- compiled == NumPy -------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rms, use_gamma, use_beta", VARIANTS, ids=VARIANT_IDS)
def test_layer_norm_matches_numpy(numpy_ops, compiled_ops, rng, dtype, rms, use_gamma,
                                  use_beta):
    for shape in itertools.product([1, 3, 257], [1, 5, 127, 1031]):
        x, gamma, beta, dy = ln_case(rng, shape, dtype, use_gamma, use_beta)
        ref = run_ln(numpy_ops, x, gamma, beta, dy, rms)
        got = run_ln(compiled_ops, x, gamma, beta, dy, rms)
        assert_close(ref, got, dtype)
        if rms:
            assert (ref["mean"] == 0).all() and (got["mean"] == 0).all()
        for key, v in got.items():
            assert v is None or v.dtype == dtype, key


def test_layer_norm_by_hand(ops):
    x = np.array([[1.0, 2.0, 3.0, 6.0], [-1.0, -1.0, -1.0, -1.0]])
    gamma = np.array([1.0, 2.0, 0.5, -1.0])
    beta = np.array([0.0, 1.0, 0.0, 2.0])
    mean, rstd = np.empty(2), np.empty(2)
    y = ops.layer_norm(x, gamma, beta, epsilon=0.5, mean_out=mean, rstd_out=rstd)
    np.testing.assert_allclose(mean, [3.0, -1.0])
    np.testing.assert_allclose(rstd, [1 / np.sqrt(3.5 + 0.5), 1 / np.sqrt(0.5)])
    np.testing.assert_allclose(y, [[-1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 2.0]])
    y = ops.layer_norm(x, None, None, epsilon=0.5, rms=True, rstd_out=rstd)
    np.testing.assert_allclose(rstd, [1 / np.sqrt(12.5 + 0.5), 1 / np.sqrt(1.5)])
    np.testing.assert_allclose(y, x * rstd[:, None])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rms", [False, True])
def test_in_place_and_optional_outputs(ops, rng, dtype, rms):
    """out may be x and dx_out may be dy or x (bitwise the separate result); stats and
    gradient buffers are allocated when not given; dx_out=False skips dx."""
    x, gamma, beta, dy = ln_case(rng, (37, 19), dtype, beta=not rms)
    want = run_ln(ops, x, gamma, beta, dy, rms)
    xi = x.copy()
    assert ops.layer_norm(xi, gamma, beta, epsilon=EPS, rms=rms, out=xi) is xi
    np.testing.assert_array_equal(xi, want["y"])
    dyi = dy.copy()
    dx, dgamma, dbeta = ops.layer_norm_backward(dyi, x, want["mean"], want["rstd"], gamma,
                                                rms=rms, has_beta=not rms, dx_out=dyi)
    assert dx is dyi
    np.testing.assert_array_equal(dx, want["dx"])
    np.testing.assert_array_equal(dgamma, want["dgamma"])
    if rms:
        assert dbeta is None
    else:
        np.testing.assert_array_equal(dbeta, want["dbeta"])
    xi = x.copy()
    dx, dgamma, _ = ops.layer_norm_backward(dy, xi, want["mean"], want["rstd"], gamma,
                                            rms=rms, has_beta=not rms, dx_out=xi)
    assert dx is xi
    np.testing.assert_array_equal(dx, want["dx"])
    np.testing.assert_array_equal(dgamma, want["dgamma"])
    dx, dgamma, _ = ops.layer_norm_backward(dy, x, None if rms else want["mean"], want["rstd"],
                                            gamma, rms=rms, has_beta=False, dx_out=False)
    assert dx is None
    np.testing.assert_array_equal(dgamma, want["dgamma"])
    # Without stats buffers the forward still gives the same y.
    np.testing.assert_array_equal(ops.layer_norm(x, gamma, beta, epsilon=EPS, rms=rms),
                                  want["y"])


def test_empty_batch(ops):
    x = np.empty((0, 4), np.float32)
    y = ops.layer_norm(x, np.ones(4, np.float32), np.zeros(4, np.float32), epsilon=EPS,
                       mean_out=np.empty(0, np.float32), rstd_out=np.empty(0, np.float32))
    assert y.shape == (0, 4)
    dx, dgamma, dbeta = ops.layer_norm_backward(
        x, x, np.empty(0, np.float32), np.empty(0, np.float32), np.ones(4, np.float32),
        dgamma_out=np.full(4, np.nan, np.float32), dbeta_out=np.full(4, np.nan, np.float32))
    assert dx.shape == (0, 4)
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, 0)


@pytest.mark.parametrize("dtype, offset, rtol", [(np.float32, 1e4, 1e-6),
                                                 (np.float64, 1e8, 1e-9)])
def test_large_offset_rows_keep_their_variance(ops, rng, dtype, offset, rtol):
    """Rows offset + N(0, 1): a one-pass sum of squares without a shift would
    cancel the variance away (float32 sums at 1e4, even double sums at 1e8)."""
    x, gamma, beta, _ = ln_case(rng, (64, 300), dtype, offset=offset)
    mean, rstd = np.empty(64, dtype), np.empty(64, dtype)
    y = ops.layer_norm(x, gamma, beta, epsilon=EPS, mean_out=mean, rstd_out=rstd)
    x64 = x.astype(np.float64)
    want_mean = x64.mean(axis=1)
    want_rstd = 1 / np.sqrt(np.square(x64 - want_mean[:, None]).mean(axis=1) + EPS)
    np.testing.assert_allclose(mean, want_mean, rtol=rtol)
    np.testing.assert_allclose(rstd, want_rstd, rtol=rtol)
    want_y = (x64 - want_mean[:, None]) * want_rstd[:, None] * gamma + beta
    # The mean rounded to x's dtype moves xhat by up to half an ulp of the offset.
    ulp = float(np.spacing(dtype(offset)))
    np.testing.assert_allclose(y, want_y, atol=2 * ulp * float(want_rstd.max()))


# ---- finite differences (float64, the reference) -----------------------------------

@pytest.mark.parametrize("rms, use_gamma, use_beta", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("shape", [(1, 3), (4, 7)])
def test_backward_matches_finite_differences(rng, shape, rms, use_gamma, use_beta):
    ops = NumpyOps()
    x, gamma, beta, w = ln_case(rng, shape, np.float64, use_gamma, use_beta)
    m, c = shape

    def loss():                                       # L = sum(w * y)
        return float((w * ops.layer_norm(x, gamma, beta, epsilon=EPS, rms=rms)).sum())

    mean, rstd = np.empty(m), np.empty(m)
    ops.layer_norm(x, gamma, beta, epsilon=EPS, rms=rms, mean_out=mean, rstd_out=rstd)
    dx, dgamma, dbeta = ops.layer_norm_backward(w, x, mean, rstd, gamma, rms=rms,
                                                has_beta=use_beta)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    if use_gamma:
        np.testing.assert_allclose(dgamma, numeric_grad(loss, gamma), rtol=1e-5, atol=1e-7)
    if use_beta:
        np.testing.assert_allclose(dbeta, numeric_grad(loss, beta), rtol=1e-5, atol=1e-7)


# ---- determinism ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4099, 131), (300, 1031), (4096, 128)])
def test_bitwise_equal_for_1_and_2_threads(compiled_ops, rng, dtype, shape):
    """Above the one-thread threshold; several chunks of column sums."""
    for rms in (False, True):
        x, gamma, beta, dy = ln_case(rng, shape, dtype, beta=not rms)
        one, two = _threaded(lambda: run_ln(compiled_ops, x, gamma, beta, dy, rms))
        for key in one:
            if one[key] is not None:
                np.testing.assert_array_equal(one[key], two[key], err_msg=f"{key} rms={rms}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_equal_for_every_isa(compiled_ops, rng, dtype):
    """The row loops are built once per ISA; every build gives the same bits."""
    supported = [name for name in _core.ISA_NAMES if _core.isa_supported(name)]
    before = _core.isa_current()
    results = []
    try:
        for isa in supported:
            _core.isa_select(isa)
            for rms in (False, True):
                x, gamma, beta, dy = ln_case(np.random.default_rng(7), (67, 1031), dtype,
                                             beta=not rms)
                results.append((isa, rms, run_ln(compiled_ops, x, gamma, beta, dy, rms)))
    finally:
        _core.isa_select(before)
    first = {rms: got for isa, rms, got in results if isa == supported[0]}
    for isa, rms, got in results:
        for key, v in got.items():
            if v is not None:
                np.testing.assert_array_equal(v, first[rms][key], err_msg=f"{isa} {key}")


def test_runs_compiled_in_both_dtypes(compiled_ops, rng):
    for dtype in DTYPES:
        x, gamma, beta, dy = ln_case(rng, (5, 8), dtype)
        run_ln(compiled_ops, x, gamma, beta, dy, False)
        run_ln(compiled_ops, x, gamma, None, dy, True)
    assert not any(entry.startswith("layer_norm") for entry in compiled_module.FALLBACKS)


# ---- PyTorch as an oracle (float64) ---------------------------------------------------

@pytest.mark.parametrize("rms, use_gamma, use_beta", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.torch_oracle
def test_matches_torch(ops, rng, rms, use_gamma, use_beta):
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    x, gamma, beta, dy = ln_case(rng, (23, 37), np.float64, use_gamma, use_beta, offset=2.0)
    got = run_ln(ops, x, gamma, beta, dy, rms, eps=1e-5)
    tx = torch.tensor(x, requires_grad=True)
    tg = None if gamma is None else torch.tensor(gamma, requires_grad=True)
    tb = None if beta is None else torch.tensor(beta, requires_grad=True)
    if rms:
        ty = fn.rms_norm(tx, (x.shape[1],), tg, eps=1e-5)
    else:
        ty = fn.layer_norm(tx, (x.shape[1],), tg, tb, eps=1e-5)
    ty.backward(torch.tensor(dy))
    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got["y"], ty.detach().numpy(), **tol)
    np.testing.assert_allclose(got["dx"], tx.grad.numpy(), **tol)
    if use_gamma:
        np.testing.assert_allclose(got["dgamma"], tg.grad.numpy(), **tol)
    if use_beta:
        np.testing.assert_allclose(got["dbeta"], tb.grad.numpy(), **tol)


# ---- bad input ----------------------------------------------------------------------------

def _forward(**kwargs):
    """A call of ops.layer_norm on good (3, 4) float32 arguments but ``kwargs``."""
    args = dict(x=np.ones((3, 4), np.float32), gamma=np.ones(4, np.float32),
                beta=np.zeros(4, np.float32), epsilon=1e-3)
    args.update(kwargs)
    x, gamma, beta = args.pop("x"), args.pop("gamma"), args.pop("beta")
    return lambda ops: ops.layer_norm(x, gamma, beta, **args)


def _backward(**kwargs):
    """A call of ops.layer_norm_backward on good (3, 4) float32 arguments but ``kwargs``."""
    args = dict(dy=np.ones((3, 4), np.float32), x=np.ones((3, 4), np.float32),
                mean=np.zeros(3, np.float32), rstd=np.ones(3, np.float32),
                gamma=np.ones(4, np.float32))
    args.update(kwargs)
    arrays = [args.pop(k) for k in ("dy", "x", "mean", "rstd", "gamma")]
    return lambda ops: ops.layer_norm_backward(*arrays, **args)


_F32, _F64 = np.float32, np.float64
_X = np.ones((3, 4), _F32)
_BIG = np.ones((4, 4), _F32)
_SHARED = np.empty(4, _F32)
BAD_CALLS = [
    ("x", _forward(x=np.ones(4, _F32))),
    ("x", _forward(x=np.ones((3, 4), np.int64))),
    ("x", _forward(x=np.ones((3, 0), _F32), gamma=None, beta=None)),
    ("gamma", _forward(gamma=np.ones(5, _F32))),
    ("gamma", _forward(gamma=np.ones(4, _F64))),
    ("beta", _forward(beta=np.ones((1, 4), _F32))),
    ("beta", _forward(rms=True)),
    ("epsilon", _forward(epsilon=-1.0)),
    ("epsilon", _forward(epsilon=float("nan"))),
    ("out", _forward(out=np.empty((4, 3), _F32))),
    ("out", _forward(out=np.empty((3, 4), _F64))),
    ("out", _forward(out=np.empty((3, 8), _F32)[:, ::2])),
    ("out", _forward(x=_BIG[:3], out=_BIG[1:])),               # overlaps x, is not x
    ("mean_out", _forward(mean_out=np.empty(4, _F32))),
    ("mean_out", _forward(x=_X, mean_out=_X.reshape(-1)[:3])),  # x's memory
    ("rstd_out", _forward(rstd_out=np.empty(3, _F64))),
    ("dy", _backward(dy=np.ones((3, 5), _F32))),
    ("dy", _backward(dy=np.ones((3, 4), _F64))),
    ("x", _backward(x=np.ones((3, 4), np.int32))),
    ("mean", _backward(mean=None)),
    ("mean", _backward(mean=np.zeros(4, _F32))),
    ("rstd", _backward(rstd=None)),
    ("rstd", _backward(rstd=np.ones(3, _F64))),
    ("gamma", _backward(gamma=np.ones(3, _F32))),
    ("has_beta", _backward(rms=True)),
    ("dgamma_out", _backward(gamma=None, dgamma_out=np.empty(4, _F32))),
    ("dbeta_out", _backward(has_beta=False, dbeta_out=np.empty(4, _F32))),
    ("dbeta_out", _backward(dbeta_out=np.empty(5, _F32))),
    ("dx_out", _backward(dx_out=np.empty((3, 5), _F32))),
    ("dgamma_out", _backward(dgamma_out=_SHARED, dbeta_out=_SHARED)),
]


@pytest.mark.parametrize("name, call", BAD_CALLS,
                         ids=[f"{i}-{name}" for i, (name, _) in enumerate(BAD_CALLS)])
def test_bad_input_raises_naming_the_argument(ops, name, call):
    with pytest.raises(ValueError, match=name):
        call(ops)
