"""GEMM: the compiled kernels (every ISA this machine runs) against NumPy.

C = act(alpha * op(A) @ op(B) + beta * C + bias), checked against a float64
NumPy expression on odd sizes (1, primes, non-multiples of every micro-kernel
tile, K = 0, K past the K block), all transpose combinations, alpha/beta,
bias and every element-wise activation, in float32 and float64; thread-count
determinism (bitwise); bad input through the public ops.gemm.
"""
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend.ops import ACTIVATIONS
from testing_utils import on_threads

ACT_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
ELEMENTWISE = [a for a in ACTIVATIONS if a != "softmax"]
SUPPORTED_ISAS = [name for name in _core.ISA_NAMES if _core.isa_supported(name)]
KERNELS = {np.float32: _core.gemm_f32, np.float64: _core.gemm_f64}

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _act64(name, z):
    """Keras' activations in float64 (the reference)."""
    if name in (None, "linear"):
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z < 0, 0.2 * z, z)
    if name == "elu":
        return np.where(z < 0, np.expm1(np.minimum(z, 0.0)), z)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    if name == "tanh":
        return np.tanh(z)
    if name == "gelu":
        return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))
    if name == "swish":
        return z * 0.5 * (1.0 + np.tanh(0.5 * z))
    raise ValueError(name)


def _reference(a, b, ta, tb, alpha, beta, c0, bias, act):
    """The float64 result and an elementwise error bound for float32/float64."""
    a64 = a.astype(np.float64).T if ta else a.astype(np.float64)
    b64 = b.astype(np.float64).T if tb else b.astype(np.float64)
    z = alpha * (a64 @ b64)
    scale = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        z = z + beta * c0.astype(np.float64)
        scale = scale + abs(beta) * np.abs(c0.astype(np.float64))
    if bias is not None:
        z = z + bias.astype(np.float64)
        scale = scale + np.abs(bias.astype(np.float64))
    eps = np.finfo(a.dtype).eps
    k = a64.shape[1]
    # Summation error of K terms, plus the epilogue's few roundings; every
    # activation here has slope at most ~1.13.
    bound = 1.2 * (eps * (k + 4) * scale + 4 * eps * np.abs(_act64(act, z))) + 1e-30
    return _act64(act, z), bound


def _operands(rng, m, n, k, ta, tb, dtype, bias=True):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    bvec = rng.standard_normal(n).astype(dtype) if bias else None
    return a, b, c0, bvec


def _check_core(rng, m, n, k, ta, tb, dtype, alpha=1.0, beta=0.0, bias=True, act="linear",
                nthreads=2):
    """Run the raw wrapper once and compare with the float64 reference."""
    a, b, c0, bvec = _operands(rng, m, n, k, ta, tb, dtype, bias)
    c = c0.copy() if beta != 0 else np.full((m, n), np.nan, dtype=dtype)
    KERNELS[dtype](c, a, b, bvec, ta, tb, alpha, beta, ACT_CODES[act], nthreads)
    ref, bound = _reference(a, b, ta, tb, alpha, beta, c0, bvec, act)
    err = np.abs(c.astype(np.float64) - ref)
    assert np.all(np.isfinite(c)), "NaN/inf in the result"
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (
        f"({m},{n},{k}) ta={ta} tb={tb} alpha={alpha} beta={beta} act={act}: "
        f"error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}")
    return c


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Each ISA whose kernels this machine runs, restored afterwards."""
    before = _core.isa_current()
    _core.isa_select(request.param)
    yield request.param
    _core.isa_select(before)


# Sizes: 1, primes, around and past every tile (4x16, 6x16, 12x32) and the
# thin-tile variants, K past every K block (256, 512, 1024), N past 4
# micro-panels or K past 256 (A packed rather than read in place), N past the
# N block (2048), K = 0, empty M or N.
SHAPES = [
    (1, 1, 1), (1, 1, 7), (1, 37, 5), (37, 1, 5), (2, 3, 4), (13, 37, 29),
    (12, 32, 16), (11, 31, 17), (25, 65, 3), (6, 16, 1), (7, 17, 2), (31, 97, 101),
    (97, 131, 67), (50, 129, 259), (40, 64, 300), (19, 200, 1100), (3, 2111, 5),
    (5, 7, 0), (1, 1, 0),
    (0, 5, 3), (5, 0, 3), (0, 0, 0),
]
TRANS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_shapes(isa, rng, m, n, k, ta, tb, dtype):
    _check_core(rng, m, n, k, ta, tb, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.5, 0.0), (2.0, 1.0), (0.75, -1.5),
                                        (0.0, 2.0), (1.0, 1.0)])
@pytest.mark.parametrize("m,n,k", [(13, 37, 29), (97, 131, 67), (30, 70, 1100), (4, 5, 0)])
def test_gemm_alpha_beta(isa, rng, m, n, k, alpha, beta, dtype):
    _check_core(rng, m, n, k, False, False, dtype, alpha=alpha, beta=beta)
    _check_core(rng, m, n, k, True, True, dtype, alpha=alpha, beta=beta, bias=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ELEMENTWISE)
@pytest.mark.parametrize("m,n,k", [(1, 1, 3), (13, 37, 29), (61, 130, 75), (17, 19, 1100)])
def test_gemm_activations(isa, rng, m, n, k, act, dtype):
    _check_core(rng, m, n, k, False, False, dtype, act=act)
    _check_core(rng, m, n, k, True, False, dtype, alpha=0.5, beta=1.0, act=act)
    _check_core(rng, m, n, k, False, True, dtype, bias=False, act=act)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_beta_zero_never_reads_c(isa, rng, dtype):
    """beta == 0: C may hold NaN or inf and none of it reaches the result."""
    for m, n, k in [(13, 37, 29), (97, 131, 67), (20, 40, 0), (5, 200, 1100)]:
        a, b, _, bias = _operands(rng, m, n, k, False, False, dtype)
        c = np.full((m, n), np.nan, dtype=dtype)
        c[::2] = np.inf
        KERNELS[dtype](c, a, b, bias, False, False, 1.0, 0.0, ACT_CODES["relu"], 2)
        assert np.all(np.isfinite(c))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_in_inputs_propagates(isa, rng, dtype):
    """NaN in A reaches the outputs it touches, through relu too (like np.maximum)."""
    a, b, _, bias = _operands(rng, 13, 37, 29, False, False, dtype)
    a[3, 5] = np.nan
    c = np.empty((13, 37), dtype=dtype)
    KERNELS[dtype](c, a, b, bias, False, False, 1.0, 0.0, ACT_CODES["relu"], 1)
    assert np.all(np.isnan(c[3])) and np.isfinite(np.delete(c, 3, axis=0)).all()


@given(
    m=st.integers(0, 80), n=st.integers(0, 150), k=st.integers(0, 90),
    ta=st.booleans(), tb=st.booleans(),
    alpha=st.sampled_from([1.0, -1.0, 0.5, 3.0]), beta=st.sampled_from([0.0, 1.0, -0.25]),
    bias=st.booleans(), act=st.sampled_from(ELEMENTWISE),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
)
def test_gemm_hypothesis(m, n, k, ta, tb, alpha, beta, bias, act, dtype, seed):
    rng = np.random.default_rng(seed)
    _check_core(rng, m, n, k, ta, tb, dtype, alpha=alpha, beta=beta, bias=bias, act=act)


@pytest.mark.parametrize("name", SUPPORTED_ISAS)
def test_gemm_isa_from_env_in_subprocess(name):
    """FASTNN_ISA picks the kernel table in a fresh process, and its kernels are right."""
    script = (
        "import numpy as np\n"
        "from fastnn.backend import get_ops\n"
        "from fastnn._ext import _core\n"
        "ops = get_ops('compiled')\n"
        f"assert _core.isa_current() == {name!r}, _core.isa_current()\n"
        "rng = np.random.default_rng(7)\n"
        "for m, n, k in [(1, 1, 1), (13, 37, 29), (97, 131, 1100), (300, 40, 70)]:\n"
        "    a = rng.standard_normal((m, k)).astype(np.float32)\n"
        "    b = rng.standard_normal((n, k)).astype(np.float32)\n"
        "    bias = rng.standard_normal(n).astype(np.float32)\n"
        "    got = ops.gemm(a, b, transpose_b=True, bias=bias, activation='tanh')\n"
        "    want = np.tanh(a.astype(np.float64) @ b.T.astype(np.float64) + bias)\n"
        "    assert np.allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(k)), (m, n, k)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, FASTNN_ISA=name)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_isa_select_rejects_unknown_and_restores():
    before = _core.isa_current()
    with pytest.raises(ValueError):
        _core.isa_select("sse9")
    for name in _core.ISA_NAMES:
        if not _core.isa_supported(name):
            with pytest.raises(ValueError):
                _core.isa_select(name)
    assert _core.isa_current() == before
    assert _core.isa_best() in SUPPORTED_ISAS and "generic" in SUPPORTED_ISAS


# ---- determinism ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k,ta,tb", [
    (800, 150, 70, False, False),    # row blocks shared out
    (300, 200, 150, False, True),    # few rows: one B micro-panel per unit
    (24, 1000, 300, True, False),    # a single row block
    (1000, 64, 300, True, False),    # A read in place
    (5000, 40, 9, False, False),     # A read in place, tiny K: long row units
    (257, 2100, 33, False, False),   # two N blocks
    (130, 90, 1500, True, True),     # two K blocks
])
def test_threads_bitwise_identical(isa, rng, m, n, k, ta, tb, dtype):
    a, b, c0, bias = _operands(rng, m, n, k, ta, tb, dtype)
    results = []
    for nthreads in (1, 2, 3, 4):
        c = c0.copy()
        with on_threads(nthreads):
            KERNELS[dtype](c, a, b, bias, ta, tb, 0.5, 0.25, ACT_CODES["gelu"], nthreads)
        results.append(c)
    for c in results[1:]:
        assert np.array_equal(c, results[0])


def test_concurrent_python_threads(rng):
    """Several Python threads in gemm at once (GIL released): each gets its own scratch."""
    cases = []
    for m, n, k, tb in [(32, 64, 10, False), (300, 200, 150, True), (5, 700, 40, False),
                        (128, 512, 784, False)]:
        a, b, _, bias = _operands(rng, m, n, k, False, tb, np.float32)
        want = np.empty((m, n), np.float32)
        _core.gemm_f32(want, a, b, bias, False, tb, 1.0, 0.0, ACT_CODES["relu"], 2)
        cases.append((a, b, bias, tb, want))
    errors = []

    def work(idx):
        a, b, bias, tb, want = cases[idx]
        out = np.empty_like(want)
        for _ in range(20):
            _core.gemm_f32(out, a, b, bias, False, tb, 1.0, 0.0, ACT_CODES["relu"], 2)
            if not np.array_equal(out, want):
                errors.append(idx)

    threads = [threading.Thread(target=work, args=(i % len(cases),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_runs_single_threaded_gemm(rng):
    """After the parent used OpenMP, a forked child's one-thread GEMM must not hang."""
    a, b, _, _ = _operands(rng, 400, 300, 200, False, False, np.float32)
    c = np.empty((400, 300), np.float32)
    _core.gemm_f32(c, a, b, None, False, False, 1.0, 0.0, 0, 2)  # starts the OpenMP pool
    pid = os.fork()
    if pid == 0:  # child: exit code 0 only if the one-thread result matches
        try:
            out = np.empty_like(c)
            _core.gemm_f32(out, a, b, None, False, False, 1.0, 0.0, 0, 1)
            os._exit(0 if np.array_equal(out, c) else 1)
        except BaseException:
            os._exit(2)
    import time
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("forked child hung in gemm")


# ---- the public ops.gemm, both backends ----------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", TRANS)
def test_ops_gemm_matches_reference(ops, rng, ta, tb, dtype):
    a, b, c0, bias = _operands(rng, 23, 41, 37, ta, tb, dtype)
    out = c0.copy()
    got = ops.gemm(a, b, transpose_a=ta, transpose_b=tb, alpha=0.5, beta=2.0, bias=bias,
                   activation="swish", out=out)
    assert got is out
    ref, bound = _reference(a, b, ta, tb, 0.5, 2.0, c0, bias, "swish")
    assert np.all(np.abs(got - ref) <= 2 * bound)
    plain = ops.gemm(a, b, transpose_a=ta, transpose_b=tb)
    assert plain.dtype == dtype and plain.shape == (23, 41)


def test_compiled_matches_numpy_ops(compiled_ops, numpy_ops, rng):
    for act in ELEMENTWISE:
        a, b, _, bias = _operands(rng, 45, 67, 89, False, False, np.float32)
        got = compiled_ops.gemm(a, b, bias=bias, activation=act)
        want = numpy_ops.gemm(a, b, bias=bias, activation=act)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * math.sqrt(89), err_msg=act)


def test_ops_gemm_non_contiguous_inputs(ops, rng):
    """Strided views are accepted (ops.gemm makes them contiguous)."""
    base = rng.standard_normal((40, 60)).astype(np.float32)
    a = base[::2, ::3]             # (20, 20), non-contiguous
    b = base[1::2, 1::3]           # (20, 20)
    want = a.astype(np.float64) @ b.T.astype(np.float64)
    got = ops.gemm(a, b, transpose_b=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    at = base[:20, :20].T              # a transposed (Fortran-ordered) view
    got_t = ops.gemm(at, b)
    np.testing.assert_allclose(got_t, at.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_ops_gemm_bad_input(ops):
    f32 = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"\(3,\)|2-D"):
        ops.gemm(np.ones(3, np.float32), f32)
    with pytest.raises(TypeError):
        ops.gemm(f32, np.ones((4, 2), np.float64))
    with pytest.raises(TypeError):
        ops.gemm(np.ones((3, 4), np.int32), np.ones((4, 2), np.int32))
    with pytest.raises(ValueError, match="inner"):
        ops.gemm(f32, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="bias"):
        ops.gemm(f32, np.ones((4, 2), np.float32), bias=np.ones(3, np.float32))
    with pytest.raises(ValueError):
        ops.gemm(f32, np.ones((4, 2), np.float32), activation="softmax")
    with pytest.raises(ValueError):
        ops.gemm(f32, np.ones((4, 2), np.float32), beta=1.0)
    with pytest.raises(ValueError):
        ops.gemm(f32, np.ones((4, 2), np.float32), out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError):
        ops.gemm(f32, np.ones((4, 2), np.float32), out=np.empty((2, 3), np.float32).T)


def test_core_wrapper_checks():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    c = np.empty((3, 5), np.float32)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        _core.gemm_f32(np.empty((5, 3), np.float32), a, b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="inner"):
        _core.gemm_f32(c, a, b, None, True, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="2-D"):
        _core.gemm_f32(c, a.ravel(), b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="bias"):
        _core.gemm_f32(c, a, b, np.ones(4, np.float32), False, False, 1, 0, 0, 1)
    with pytest.raises(TypeError):
        _core.gemm_f32(c, a.astype(np.float64), b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(TypeError):
        _core.gemm_f64(c, a, b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="contiguous"):
        _core.gemm_f32(c, np.ones((3, 8), np.float32)[:, ::2], b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="writable"):
        ro = np.empty((3, 5), np.float32)
        ro.flags.writeable = False
        _core.gemm_f32(ro, a, b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="share memory"):
        sq = np.ones((4, 4), np.float32)
        _core.gemm_f32(sq, sq, np.ones((4, 4), np.float32), None, False, False, 1, 0, 0, 1)
    for bad_act in (ACT_CODES["softmax"], -1, 99):
        with pytest.raises(ValueError):
            _core.gemm_f32(c, a, b, None, False, False, 1, 0, bad_act, 1)


# ---- keeping the pre-activation (gemm_keep_f32, the dense forward's path) ----

@pytest.mark.parametrize("act", ELEMENTWISE)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (13, 37, 29), (25, 65, 3), (97, 131, 67),
                                   (40, 64, 300), (1000, 64, 30), (5, 7, 0)])
def test_gemm_keep_is_linear_gemm_then_activation(isa, rng, m, n, k, ta, tb, act):
    """Z is bitwise the linear GEMM and C bitwise act(Z) by the activation
    kernel, whatever the path (A packed or in place, column mode, K = 0), the
    beta and the thread count."""
    a, b, c0, bias = _operands(rng, m, n, k, ta, tb, np.float32)
    for beta, nthreads in ((0.0, 1), (0.5, 2)):
        z_ref = c0.copy()
        _core.gemm_f32(z_ref, a, b, bias, ta, tb, 1.5, beta, ACT_CODES["linear"], nthreads)
        c_ref = np.empty_like(z_ref)
        _core.act_forward_f32(c_ref, z_ref, ACT_CODES[act], 1)
        c, z = c0.copy(), np.full_like(c0, np.nan)
        _core.gemm_keep_f32(c, z, a, b, bias, ta, tb, 1.5, beta, ACT_CODES[act], nthreads)
        np.testing.assert_array_equal(z, z_ref)
        np.testing.assert_array_equal(c, c_ref)


def test_gemm_keep_wrapper_checks():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    c = np.empty((3, 5), np.float32)
    with pytest.raises(ValueError, match="Z must have"):
        _core.gemm_keep_f32(c, np.empty((5, 3), np.float32), a, b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="share memory"):
        _core.gemm_keep_f32(c, c, a, b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(ValueError, match="share memory"):
        _core.gemm_keep_f32(c, c[:, :5], a, b, None, False, False, 1, 0, 0, 1)
    with pytest.raises(TypeError):
        _core.gemm_keep_f32(c, np.empty((3, 5)), a, b, None, False, False, 1, 0, 0, 1)
