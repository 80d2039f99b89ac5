"""Optimizer steps and reductions: hand-computed steps, CompiledOps against
NumpyOps over several steps (every buffer a step changes), 1 vs 2 threads
bitwise, bad input."""
import multiprocessing
import os
import platform

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from testing_utils import num_threads, on_threads

SIZES = [1, 7, 17, 1000, 100_003]
RTOL, ATOL = 1e-6, 1e-7
f32 = np.float32


def _arr(values):
    return np.array(values, dtype=f32)


# ---- hand-computed steps (Keras 3 formulas, worked out in float64) ---------------

def test_sgd_hand_computed(ops):
    p, g = _arr([1.0, -2.0]), _arr([0.5, 0.25])
    ops.sgd_update(p, g, None, lr=0.1)
    np.testing.assert_allclose(p, [0.95, -2.025], rtol=1e-7)

    # v = 0.9 v - 0.1 g = [0.09 - 0.05, -0.18 - 0.025]; p += v
    p, v = _arr([1.0, -2.0]), _arr([0.1, -0.2])
    ops.sgd_update(p, g, v, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(v, [0.04, -0.205], rtol=1e-6)
    np.testing.assert_allclose(p, [1.04, -2.205], rtol=1e-7)

    # nesterov: p += 0.9 v_new - 0.1 g = [0.036 - 0.05, -0.1845 - 0.025]
    p, v = _arr([1.0, -2.0]), _arr([0.1, -0.2])
    ops.sgd_update(p, g, v, lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(v, [0.04, -0.205], rtol=1e-6)
    np.testing.assert_allclose(p, [0.986, -2.2095], rtol=1e-7)

    # decoupled decay first: p = p - 0.01 p = [0.99, -1.98], then p -= 0.1 g
    p = _arr([1.0, -2.0])
    ops.sgd_update(p, g, None, lr=0.1, decay=0.01)
    np.testing.assert_allclose(p, [0.94, -2.005], rtol=1e-7)


def test_sgd_without_momentum_leaves_velocity_alone(ops):
    p, g, v = _arr([1.0]), _arr([0.5]), _arr([3.0])
    ops.sgd_update(p, g, v, lr=0.1, momentum=0.0)
    np.testing.assert_array_equal(v, [3.0])
    np.testing.assert_allclose(p, [0.95], rtol=1e-7)


def test_adam_hand_computed(ops):
    # beta1 = 0.5, beta2 = 0.75: 1 - beta is exact in float32, so the step
    # is the same whichever precision forms the complements.
    p, g = _arr([1.0, -1.0, 0.0]), _arr([0.5, -2.0, 0.0])
    m, v = _arr([0.0, 0.2, 0.0]), _arr([0.0, 1.0, 0.0])
    lr, b1, b2, eps, t = 0.1, 0.5, 0.75, 1e-7, 1
    lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)              # = 0.1
    ops.adam_update(p, g, m, v, lr_t=lr_t, beta1=b1, beta2=b2, eps=eps)
    # m = m + (g - m)(1 - b1) = [0.25, -0.9, 0]; v = v + (g^2 - v)(1 - b2) = [0.0625, 1.75, 0]
    np.testing.assert_allclose(m, [0.25, -0.9, 0.0], rtol=1e-7)
    np.testing.assert_allclose(v, [0.0625, 1.75, 0.0], rtol=1e-7)
    expected = [1.0 - 0.1 * 0.25 / (0.25 + eps), -1.0 + 0.1 * 0.9 / (np.sqrt(1.75) + eps), 0.0]
    np.testing.assert_allclose(p, expected, rtol=1e-6)


def test_adam_amsgrad_and_decay_hand_computed(ops):
    p, g = _arr([2.0, 2.0]), _arr([1.0, 1.0])
    m, v, vhat = _arr([0.0, 0.0]), _arr([0.0, 0.0]), _arr([4.0, 0.0])
    ops.adam_update(p, g, m, v, lr_t=0.5, beta1=0.5, beta2=0.75, eps=0.0, decay=0.25, vhat=vhat)
    # decay: p = 2 - 0.25 * 2 = 1.5; m = 0.5; v = 0.25; vhat = max(vhat, v) = [4, 0.25]
    np.testing.assert_allclose(vhat, [4.0, 0.25], rtol=1e-7)
    np.testing.assert_allclose(v, [0.25, 0.25], rtol=1e-7)
    # p = 1.5 - 0.5 * 0.5 / sqrt(vhat) = [1.5 - 0.125, 1.5 - 0.5]
    np.testing.assert_allclose(p, [1.375, 1.0], rtol=1e-7)


def test_rmsprop_hand_computed(ops):
    lr, rho, eps = 0.01, 0.9, 1e-7
    p, g, ms = _arr([1.0]), _arr([0.5]), _arr([0.0])
    ops.rmsprop_update(p, g, ms, lr=lr, rho=rho, eps=eps)
    # ms = 0.1 * 0.25 = 0.025; p -= 0.01 * 0.5 / sqrt(0.025 + 1e-7)
    np.testing.assert_allclose(ms, [0.025], rtol=1e-6)
    np.testing.assert_allclose(p, [1.0 - 0.005 / np.sqrt(0.025 + eps)], rtol=1e-6)

    # centered with momentum: mg = 0.1 * 0.5 = 0.05; denominator 0.025 - 0.0025;
    # mom = 0.5 * 0.2 + step; p -= mom
    p, ms, mg, mom = _arr([1.0]), _arr([0.0]), _arr([0.0]), _arr([0.2])
    ops.rmsprop_update(p, g, ms, lr=lr, rho=rho, eps=eps, momentum=0.5, mom=mom, mg=mg)
    step = 0.005 / np.sqrt(0.025 - 0.0025 + eps)
    np.testing.assert_allclose(mg, [0.05], rtol=1e-6)
    np.testing.assert_allclose(mom, [0.1 + step], rtol=1e-6)
    np.testing.assert_allclose(p, [1.0 - 0.1 - step], rtol=1e-6)


def test_adagrad_hand_computed(ops):
    p, g, acc = _arr([1.0, -3.0]), _arr([0.5, 0.0]), _arr([0.1, 0.1])
    ops.adagrad_update(p, g, acc, lr=0.01, eps=1e-7, decay=0.5)
    # decay halves p first; acc = [0.35, 0.1]
    np.testing.assert_allclose(acc, [0.35, 0.1], rtol=1e-7)
    np.testing.assert_allclose(p, [0.5 - 0.005 / np.sqrt(0.35 + 1e-7), -1.5], rtol=1e-7)


# ---- against the reference, several steps ---------------------------------------

def _state(rng, n, names):
    out = {"p": rng.standard_normal(n).astype(f32)}
    for name in names:
        out[name] = np.abs(rng.standard_normal(n)).astype(f32) * f32(0.1)
    if "mg" in out:
        # A reachable centered state: the mean gradient is signed and the
        # mean square at least its square, so ms - mg^2 stays well above 0.
        out["mg"] = rng.standard_normal(n).astype(f32) * f32(0.1)
        out["ms"] += out["mg"] * out["mg"]
    return out


def _run(ops, kind, state, grads, cfg):
    s = {k: v.copy() for k, v in state.items()}
    for g in grads:
        if kind == "sgd":
            ops.sgd_update(s["p"], g, s.get("v"), lr=cfg["lr"], momentum=cfg.get("momentum", 0.0),
                           nesterov=cfg.get("nesterov", False), decay=cfg.get("decay", 0.0))
        elif kind == "adam":
            ops.adam_update(s["p"], g, s["m"], s["v"], lr_t=cfg["lr"], beta1=cfg["beta1"],
                            beta2=cfg["beta2"], eps=1e-7, decay=cfg.get("decay", 0.0),
                            vhat=s.get("vhat"))
        elif kind == "rmsprop":
            ops.rmsprop_update(s["p"], g, s["ms"], lr=cfg["lr"], rho=0.9, eps=1e-7,
                               momentum=cfg.get("momentum", 0.0), mom=s.get("mom"),
                               mg=s.get("mg"), decay=cfg.get("decay", 0.0))
        elif kind == "adagrad":
            ops.adagrad_update(s["p"], g, s["acc"], lr=cfg["lr"], eps=1e-7,
                               decay=cfg.get("decay", 0.0))
        elif kind == "nadam":
            # the schedule's coefficients are the optimizer's business: any values do here
            ops.nadam_update(s["p"], g, s["m"], s["v"], lr=cfg["lr"], beta1=cfg["beta1"],
                             beta2=cfg["beta2"], coef_m=0.4, coef_g=0.05,
                             v_correction=1 - cfg["beta2"] ** 3, eps=1e-7,
                             decay=cfg.get("decay", 0.0))
        elif kind == "adamax":
            ops.adamax_update(s["p"], g, s["m"], s["u"], lr=cfg["lr"], beta1=cfg["beta1"],
                              beta2=cfg["beta2"], m_correction=1 - cfg["beta1"], eps=1e-7,
                              decay=cfg.get("decay", 0.0))
        else:
            ops.lion_update(s["p"], g, s["m"], lr=cfg["lr"], beta1=cfg["beta1"],
                            beta2=cfg["beta2"], decay=cfg.get("decay", 0.0))
    return s


# (kind, state buffers, config). Adam's betas have complements exact in
# float32 here; see test_adam_default_betas_match_reference for 0.9 / 0.999.
CASES = [
    ("sgd", [], dict(lr=0.1)),
    ("sgd", ["v"], dict(lr=0.1, momentum=0.9)),
    ("sgd", ["v"], dict(lr=0.05, momentum=0.5, nesterov=True, decay=1e-3)),
    ("adam", ["m", "v"], dict(lr=1e-3, beta1=0.875, beta2=0.9990234375)),
    ("adam", ["m", "v", "vhat"], dict(lr=1e-3, beta1=0.875, beta2=0.9990234375, decay=1e-4)),
    ("rmsprop", ["ms"], dict(lr=1e-3)),
    ("rmsprop", ["ms", "mg"], dict(lr=1e-3, decay=1e-4)),
    ("rmsprop", ["ms", "mom"], dict(lr=1e-3, momentum=0.9)),
    ("rmsprop", ["ms", "mg", "mom"], dict(lr=1e-3, momentum=0.5)),
    ("adagrad", ["acc"], dict(lr=1e-2, decay=1e-3)),
    ("nadam", ["m", "v"], dict(lr=1e-3, beta1=0.9, beta2=0.999)),
    ("nadam", ["m", "v"], dict(lr=1e-2, beta1=0.875, beta2=0.9990234375, decay=1e-4)),
    ("adamax", ["m", "u"], dict(lr=1e-3, beta1=0.9, beta2=0.999)),
    ("adamax", ["m", "u"], dict(lr=1e-2, beta1=0.5, beta2=0.75, decay=1e-3)),
    ("lion", ["m"], dict(lr=1e-3, beta1=0.9, beta2=0.99)),
    ("lion", ["m"], dict(lr=1e-2, beta1=0.5, beta2=0.75, decay=1e-3)),
]


def _compare(numpy_ops, compiled_ops, kind, names, cfg, n, rng, steps=3):
    state = _state(rng, n, names)
    grads = [rng.standard_normal(n).astype(f32) for _ in range(steps)]
    ref = _run(numpy_ops, kind, state, grads, cfg)
    got = _run(compiled_ops, kind, state, grads, cfg)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{kind} {names} {cfg}: {key}")


@pytest.mark.parametrize("kind, names, cfg", CASES)
@pytest.mark.parametrize("n", SIZES)
def test_matches_numpy(numpy_ops, compiled_ops, rng, kind, names, cfg, n):
    _compare(numpy_ops, compiled_ops, kind, names, cfg, n, rng)


@given(n=st.integers(1, 300), case=st.sampled_from(CASES), seed=st.integers(0, 2**31 - 1))
def test_matches_numpy_drawn_sizes(numpy_ops, compiled_ops, n, case, seed):
    kind, names, cfg = case
    _compare(numpy_ops, compiled_ops, kind, names, cfg, n, np.random.default_rng(seed))


def test_adam_default_betas_match_reference(numpy_ops, compiled_ops, rng):
    # First step from zero moments: v = (1 - beta2) g^2 shows the complement.
    zeros = np.zeros(101, f32)
    state = {"p": rng.standard_normal(101).astype(f32), "m": zeros, "v": zeros}
    grads = [rng.standard_normal(101).astype(f32)]
    cfg = dict(lr=1e-3, beta1=0.9, beta2=0.999)
    ref = _run(numpy_ops, "adam", state, grads, cfg)
    got = _run(compiled_ops, "adam", state, grads, cfg)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=RTOL, atol=0, err_msg=key)


@pytest.mark.parametrize("kind, names, cfg", CASES)
def test_one_and_two_threads_bitwise_equal(compiled_ops, rng, kind, names, cfg):
    n = 100_003
    state = _state(rng, n, names)
    grads = [rng.standard_normal(n).astype(f32) for _ in range(2)]
    results = []
    for threads in (1, 2):
        with on_threads(threads):
            results.append(_run(compiled_ops, kind, state, grads, cfg))
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)


# ---- reductions and element-wise helpers ----------------------------------------

@pytest.mark.parametrize("n", [0, 1, 7, 4095, 4096, 4097, 300_001])
def test_sum_squares(ops, rng, n):
    x = rng.standard_normal(n).astype(f32)
    got = ops.sum_squares(x)
    assert isinstance(got, float)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(got, float(x64 @ x64), rtol=1e-12)


def test_sum_squares_one_and_two_threads_bitwise_equal(compiled_ops, rng):
    for n in (300_001, 1_048_576 + 3):
        x = rng.standard_normal(n).astype(f32)
        results = []
        for threads in (1, 2, 3):
            with on_threads(threads):
                results.append(compiled_ops.sum_squares(x))
        assert results[0] == results[1] == results[2]


def test_sum_squares_of_a_matrix(compiled_ops, rng):
    x = rng.standard_normal((31, 17)).astype(f32)
    np.testing.assert_allclose(compiled_ops.sum_squares(x),
                               float((x.astype(np.float64) ** 2).sum()), rtol=1e-12)


@pytest.mark.parametrize("n", [1, 13, 200_003])
def test_scale_and_clip_match_numpy(numpy_ops, compiled_ops, rng, n):
    x = (rng.standard_normal(n) * 3).astype(f32)
    x[0] = np.nan
    for method, args in (("scale_", (0.37,)), ("clip_", (-1.5, 2.0))):
        a, b = x.copy(), x.copy()
        with np.errstate(invalid="ignore"):
            getattr(numpy_ops, method)(a, *args)
        assert getattr(compiled_ops, method)(b, *args) is b
        np.testing.assert_array_equal(a, b)


def test_clip_with_lo_above_hi_gives_hi_like_numpy(numpy_ops, compiled_ops):
    a = _arr([-5.0, 0.0, 5.0])
    b = a.copy()
    numpy_ops.clip_(a, 1.0, -1.0)
    compiled_ops.clip_(b, 1.0, -1.0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [1, 9, 8192, 8193, 200_003])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite(ops, rng, n, bad):
    x = rng.standard_normal(n).astype(f32)
    x[0] = np.finfo(f32).max
    assert ops.all_finite(x) is True
    for where in {0, n // 2, n - 1}:
        y = x.copy()
        y[where] = bad
        assert ops.all_finite(y) is False
        with num_threads(2):
            assert ops.all_finite(y) is False
    assert ops.all_finite(np.empty(0, f32)) is True


def test_helpers_thread_counts_agree(compiled_ops, rng):
    x = rng.standard_normal(300_001).astype(f32)
    outs = []
    for threads in (1, 2):
        with on_threads(threads):
            a = x.copy()
            compiled_ops.scale_(a, 1.7)
            compiled_ops.clip_(a, -1.0, 1.0)
            outs.append(a)
    np.testing.assert_array_equal(outs[0], outs[1])


def _child_sum_squares(x, queue):
    from fastnn.backend.compiled_ops import CompiledOps
    queue.put(CompiledOps().sum_squares(x))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_reductions_work_in_a_forked_child(compiled_ops, rng):
    # The parent starts OpenMP's thread pool; the forked child runs on one
    # thread (no parallel region at all) and gets the same bits.
    x = rng.standard_normal(300_001).astype(f32)
    with num_threads(2):
        expected = compiled_ops.sum_squares(x)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_sum_squares, args=(x, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("a kernel hung in a child forked after OpenMP started")
    assert child.exitcode == 0
    assert queue.get(timeout=10) == expected


# ---- bad input ------------------------------------------------------------------

def test_wrong_dtype_is_type_error():
    p = np.zeros(5, f32)
    d = np.zeros(5, np.float64)
    with pytest.raises(TypeError, match="float32"):
        _core.sgd_update_f32(p, None, d, 0.1, 0.0, False, 0.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.adam_update_f32(p, p.copy(), d, None, p.copy(), 0.1, 0.9, 0.999, 1e-7, 0.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.rmsprop_update_f32(p, p.copy(), d, None, p.copy(), 0.1, 0.9, 0.0, 1e-7, 0.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.adagrad_update_f32(d, p, p.copy(), 0.1, 1e-7, 0.0, 1)
    for fn, args in ((_core.sum_squares_f32, ()), (_core.scale_f32, (2.0,)),
                     (_core.clip_f32, (0.0, 1.0)), (_core.all_finite_f32, ())):
        with pytest.raises(TypeError, match="float32"):
            fn(d, *args, 1)
    with pytest.raises(TypeError):
        _core.sgd_update_f32(None, None, p, 0.1, 0.0, False, 0.0, 1)
    with pytest.raises(TypeError):
        _core.sgd_update_f32(p, [0.0] * 5, p.copy(), 0.1, 0.9, False, 0.0, 1)


def test_wrong_shapes_are_value_errors():
    p, short = np.zeros(5, f32), np.zeros(4, f32)
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        _core.sgd_update_f32(p, None, short, 0.1, 0.0, False, 0.0, 1)
    with pytest.raises(ValueError, match="velocity"):
        _core.sgd_update_f32(p, short, p.copy(), 0.1, 0.9, False, 0.0, 1)
    with pytest.raises(ValueError, match="vhat"):
        _core.adam_update_f32(p, p.copy(), p.copy(), short, p.copy(), 0.1, 0.9, 0.999, 1e-7,
                              0.0, 1)
    with pytest.raises(ValueError, match="mom"):
        _core.rmsprop_update_f32(p, p.copy(), None, short, p.copy(), 0.1, 0.9, 0.5, 1e-7, 0.0, 1)
    with pytest.raises(ValueError, match="acc"):
        _core.adagrad_update_f32(p, np.zeros((5, 1), f32), p.copy(), 0.1, 1e-7, 0.0, 1)


def test_layout_and_writability_errors():
    p = np.zeros(10, f32)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.sgd_update_f32(p[::2], None, np.zeros(5, f32), 0.1, 0.0, False, 0.0, 1)
    ro = np.zeros(5, f32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.adagrad_update_f32(ro, np.zeros(5, f32), np.zeros(5, f32), 0.1, 1e-7, 0.0, 1)
    with pytest.raises(ValueError, match="writable"):
        _core.scale_f32(ro, 2.0, 1)
    # Read-only is fine for what is only read.
    _core.sgd_update_f32(np.zeros(5, f32), None, ro, 0.1, 0.0, False, 0.0, 1)
    assert _core.all_finite_f32(ro, 1) is True


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64", "i686"),
                    reason="flushing subnormals is set in x86's MXCSR")
def test_updates_flush_subnormals_and_restore_the_callers_mode(compiled_ops, numpy_ops):
    """A dead unit's Adam moment decays through the subnormals (100x slower
    arithmetic): the updates flush them to zero, as TensorFlow's CPU kernels
    do, and leave the calling thread's floating-point mode as it was."""
    tiny = np.finfo(np.float32).tiny
    n = 1001
    state = {}
    for name, ops in (("compiled", compiled_ops), ("numpy", numpy_ops)):
        p = np.ones(n, np.float32)
        m = np.full(n, tiny / 4, np.float32)          # subnormal
        v = np.full(n, 1e-6, np.float32)
        ops.adam_update(p, np.zeros(n, np.float32), m, v, lr_t=1e-3, beta1=0.9, beta2=0.999,
                        eps=1e-7)
        state[name] = p, m
    np.testing.assert_array_equal(state["compiled"][1], 0.0)
    assert np.all(state["numpy"][1] > 0)             # the reference keeps them
    np.testing.assert_allclose(state["compiled"][0], state["numpy"][0], rtol=1e-6)
    # the caller's mode is untouched: NumPy still produces subnormals here
    assert np.float32(tiny) * np.float32(0.25) > 0


@pytest.mark.parametrize("kind, names, cfg", CASES[::2])
def test_float64_runs_on_the_reference(ops, rng, kind, names, cfg):
    """Float64 steps go to NumPy (compiled_for_float32) and agree with a float32 run."""
    state = _state(rng, 33, names)
    grads = [rng.standard_normal(33).astype(f32) for _ in range(2)]
    state64 = {k: v.astype(np.float64) for k, v in state.items()}
    got = _run(ops, kind, state64, [g.astype(np.float64) for g in grads], cfg)
    ref = _run(ops, kind, state, grads, cfg)
    for key in ref:
        assert got[key].dtype == np.float64
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)
