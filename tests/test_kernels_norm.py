"""Dropout and batch-normalization kernels: CompiledOps against NumpyOps for
every buffer a call writes, the mask's definition, 1 vs 2 threads, finite
differences (float64, NumpyOps) and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn.backend.numpy_ops import NumpyOps
from testing_utils import numeric_grad, on_threads

MASK64 = (1 << 64) - 1
SHAPES_1D = [(1,), (2,), (7,), (4099,), (100003,)]           # 100003: parallel path
BN_SHAPES = [(1, 1), (1, 7), (2, 3), (13, 17), (97, 9), (193, 260), (20011, 3), (300, 131)]


def keep_by_definition(seed, rate, n):
    """The mask of fastnn.h, one element at a time in Python ints."""
    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)
    key = mix(seed)
    threshold = int(rate * 2.0 ** 53)
    return np.array([(mix((key + (i + 1) * 0x9E3779B97F4A7C15) & MASK64) >> 11) >= threshold
                     for i in range(n)], dtype=np.uint8)


# ---- dropout -------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 12345, MASK64])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_mask_follows_its_definition(ops, seed, rate):
    mask = ops.dropout_mask(seed, rate, np.empty(257, np.uint8))
    np.testing.assert_array_equal(mask, keep_by_definition(seed, rate, 257))


@pytest.mark.parametrize("shape", SHAPES_1D + [(13, 17), (3, 5, 31)])
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.95])
def test_dropout_forward_matches_numpy_bitwise(numpy_ops, compiled_ops, rng, shape, rate):
    x = rng.standard_normal(shape).astype(np.float32)
    results = []
    for ops in (numpy_ops, compiled_ops):
        mask = np.full(shape, 7, np.uint8)
        y = ops.dropout_forward(x, 987654321, rate, mask_out=mask)
        results.append((y, mask))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert set(np.unique(results[1][1])) <= {0, 1}


@pytest.mark.parametrize("shape", [(1,), (13, 17), (100003,)])
def test_dropout_backward_matches_numpy_and_definition(numpy_ops, compiled_ops, rng, shape):
    rate = 0.3
    dy = rng.standard_normal(shape).astype(np.float32)
    mask = numpy_ops.dropout_mask(5, rate, np.empty(shape, np.uint8))
    want = np.where(mask == 1, dy * np.float32(1 / (1 - rate)), np.float32(0))
    for ops in (numpy_ops, compiled_ops):
        np.testing.assert_array_equal(ops.dropout_backward(dy, mask, rate), want)


def test_forward_mask_equals_dropout_mask_and_scale_is_exact(ops, rng):
    rate = 0.4
    x = rng.standard_normal((61, 33)).astype(np.float32)
    mask = np.empty(x.shape, np.uint8)
    y = ops.dropout_forward(x, 77, rate, mask_out=mask)
    np.testing.assert_array_equal(mask, ops.dropout_mask(77, rate, np.empty(x.shape, np.uint8)))
    kept = mask == 1
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1.0 / (1.0 - rate)))
    assert (y[~kept] == 0).all()


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_fraction_dropped_is_rate(ops, rate):
    n = 200_000
    mask = ops.dropout_mask(2024, rate, np.empty(n, np.uint8))
    dropped = 1.0 - mask.mean()
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / n)


def test_different_seeds_give_different_masks(ops):
    a = ops.dropout_mask(1, 0.5, np.empty(1000, np.uint8))
    b = ops.dropout_mask(2, 0.5, np.empty(1000, np.uint8))
    assert 0.3 < (a != b).mean() < 0.7


def test_dropout_is_bitwise_equal_for_1_and_2_threads(compiled_ops, rng):
    x = rng.standard_normal(300_007).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for n in (1, 2):
        with on_threads(n):
            mask = np.empty(x.shape, np.uint8)
            y = compiled_ops.dropout_forward(x, 31337, 0.5, mask_out=mask)
            dx = compiled_ops.dropout_backward(dy, mask, 0.5)
            results.append((y, mask, dx))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_dropout_in_place_and_float64(numpy_ops, compiled_ops, rng):
    x = rng.standard_normal((9, 5)).astype(np.float32)
    want = numpy_ops.dropout_forward(x, 3, 0.5)
    inplace = x.copy()
    assert compiled_ops.dropout_forward(inplace, 3, 0.5, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, want)
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(compiled_ops.dropout_forward(x64, 3, 0.5),
                                  numpy_ops.dropout_forward(x64, 3, 0.5))


@pytest.mark.parametrize("kwargs, match", [
    ({"rate": 1.0}, "rate"), ({"rate": -0.1}, "rate"), ({"rate": float("nan")}, "rate"),
    ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"), ({"seed": 1.5}, "seed"),
])
def test_dropout_bad_arguments(ops, kwargs, match):
    args = {"seed": 1, "rate": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        ops.dropout_forward(np.ones(4, np.float32), args["seed"], args["rate"])


def test_dropout_bad_mask(ops):
    with pytest.raises((ValueError, TypeError)):
        ops.dropout_forward(np.ones((2, 3), np.float32), 1, 0.5, mask_out=np.empty(5, np.uint8))
    with pytest.raises((ValueError, TypeError)):
        ops.dropout_backward(np.ones(4, np.float32), np.ones(4, np.float32), 0.5)


# ---- batch normalization ----------------------------------------------------

def bn_case(rng, shape, dtype=np.float32, offset=0.0):
    c = shape[1]
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3.0, c) + offset).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dy


def run_bn(ops, x, gamma, beta, dy, batch_stats, eps=1e-3):
    """Every buffer a training (or inference) step writes, outputs pre-filled with NaN."""
    c = x.shape[1]
    if batch_stats:
        mean, var = np.full(c, np.nan, x.dtype), np.full(c, np.nan, x.dtype)
        ops.batchnorm_stats(x, mean, var)
    else:
        mean = np.linspace(-1, 1, c).astype(x.dtype)
        var = np.linspace(0.5, 2, c).astype(x.dtype)
    y = ops.batchnorm_forward(x, mean, var, gamma, beta, epsilon=eps,
                              out=np.full(x.shape, np.nan, x.dtype))
    dgamma = np.full(c, np.nan, x.dtype) if gamma is not None else None
    dbeta = np.full(c, np.nan, x.dtype) if beta is not None else None
    dx = ops.batchnorm_backward(dy, x, mean, var, gamma, epsilon=eps, batch_stats=batch_stats,
                                dgamma_out=dgamma, dbeta_out=dbeta,
                                dx_out=np.full(x.shape, np.nan, x.dtype))
    return {"mean": mean, "var": var, "y": y, "dgamma": dgamma, "dbeta": dbeta, "dx": dx}


def assert_bn_close(ref, got, rtol=2e-5, atol=2e-5):
    for key, r in ref.items():
        if r is None:
            assert got[key] is None, key
            continue
        scale = max(1.0, float(np.abs(r).max())) if r.size else 1.0
        np.testing.assert_allclose(got[key], r, rtol=rtol, atol=atol * scale, err_msg=key)


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("batch_stats", [True, False])
def test_batchnorm_matches_numpy(numpy_ops, compiled_ops, rng, shape, batch_stats):
    x, gamma, beta, dy = bn_case(rng, shape)
    assert_bn_close(run_bn(numpy_ops, x, gamma, beta, dy, batch_stats),
                    run_bn(compiled_ops, x, gamma, beta, dy, batch_stats))


@pytest.mark.parametrize("use_gamma, use_beta", [(False, True), (True, False), (False, False)])
def test_batchnorm_without_gamma_or_beta(numpy_ops, compiled_ops, rng, use_gamma, use_beta):
    x, gamma, beta, dy = bn_case(rng, (31, 10))
    gamma, beta = (gamma if use_gamma else None), (beta if use_beta else None)
    ref = run_bn(numpy_ops, x, gamma, beta, dy, True)
    assert_bn_close(ref, run_bn(compiled_ops, x, gamma, beta, dy, True))
    if not use_beta:
        np.testing.assert_allclose(ref["y"].mean(axis=0), 0, atol=1e-5)


@given(m=st.integers(1, 300), c=st.integers(1, 40), seed=st.integers(0, 2**31 - 1),
       batch_stats=st.booleans())
def test_batchnorm_matches_numpy_drawn_shapes(numpy_ops, compiled_ops, m, c, seed, batch_stats):
    x, gamma, beta, dy = bn_case(np.random.default_rng(seed), (m, c))
    assert_bn_close(run_bn(numpy_ops, x, gamma, beta, dy, batch_stats),
                    run_bn(compiled_ops, x, gamma, beta, dy, batch_stats))


def test_batchnorm_statistics_by_hand_and_large_mean(ops, rng):
    x, _, _, _ = bn_case(rng, (501, 6), offset=1000.0)
    mean, var = np.empty(6, np.float32), np.empty(6, np.float32)
    ops.batchnorm_stats(x, mean, var)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-7)
    # biased variance, and two passes: the 1000 offset does not cancel it away
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-6)


def test_batchnorm_single_row_has_zero_variance(ops):
    x = np.array([[3.0, -2.0, 0.5]], np.float32)
    mean, var = np.empty(3, np.float32), np.empty(3, np.float32)
    ops.batchnorm_stats(x, mean, var)
    np.testing.assert_array_equal(mean, x[0])
    np.testing.assert_array_equal(var, 0)
    beta = np.array([1.0, 2.0, 3.0], np.float32)
    y = ops.batchnorm_forward(x, mean, var, np.ones(3, np.float32), beta, epsilon=1e-3)
    np.testing.assert_array_equal(y[0], beta)


def test_moving_update_by_hand(numpy_ops, compiled_ops):
    mean = np.array([1.0, -2.0, 0.5], np.float32)
    var = np.array([4.0, 0.25, 1.0], np.float32)
    want_mm = np.float32([0.99 * 0.1 + 0.01 * 1.0, 0.99 * 0.2 - 0.01 * 2.0, 0.99 * 0.3 + 0.005])
    want_mv = np.float32([0.99 * 1.0 + 0.04, 0.99 * 2.0 + 0.0025, 0.99 * 3.0 + 0.01])
    for ops in (numpy_ops, compiled_ops):
        mm = np.array([0.1, 0.2, 0.3], np.float32)
        mv = np.array([1.0, 2.0, 3.0], np.float32)
        ops.batchnorm_update_moving_(mm, mv, mean, var, 0.99)
        np.testing.assert_allclose(mm, want_mm, rtol=1e-6)
        np.testing.assert_allclose(mv, want_mv, rtol=1e-6)


@pytest.mark.parametrize("shape", [(20011, 37), (300, 600), (4096, 17)])
def test_batchnorm_is_bitwise_equal_for_1_and_2_threads(compiled_ops, rng, shape):
    x, gamma, beta, dy = bn_case(rng, shape)
    results = []
    for n in (1, 2):
        with on_threads(n):
            results.append(run_bn(compiled_ops, x, gamma, beta, dy, True))
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)


def test_batchnorm_float64_falls_back_and_matches(numpy_ops, compiled_ops, rng):
    x, gamma, beta, dy = bn_case(rng, (17, 5), dtype=np.float64)
    assert_bn_close(run_bn(numpy_ops, x, gamma, beta, dy, True),
                    run_bn(compiled_ops, x, gamma, beta, dy, True), rtol=1e-12, atol=1e-12)


def test_batchnorm_bad_input(ops):
    c = 4
    with pytest.raises(ValueError):
        ops.batchnorm_stats(np.empty((0, c), np.float32), np.empty(c, np.float32),
                            np.empty(c, np.float32))
    with pytest.raises((ValueError, TypeError)):
        ops.batchnorm_stats(np.ones((3, c), np.float32), np.empty(c + 1, np.float32),
                            np.empty(c, np.float32))
    with pytest.raises((ValueError, TypeError)):
        ops.batchnorm_forward(np.ones((3, c), np.float32), np.zeros(c, np.float32),
                              np.ones(c, np.float32), np.ones(c - 1, np.float32), None,
                              epsilon=1e-3)
    with pytest.raises((ValueError, TypeError)):
        ops.batchnorm_backward(np.ones((2, c), np.float32), np.ones((3, c), np.float32),
                               np.zeros(c, np.float32), np.ones(c, np.float32), None,
                               epsilon=1e-3, batch_stats=True)


# ---- finite differences, float64, the NumPy reference ------------------------

@pytest.mark.parametrize("batch_stats", [True, False])
@pytest.mark.parametrize("shape", [(1, 3), (2, 3), (7, 5)])
def test_batchnorm_backward_matches_finite_differences(batch_stats, shape, rng):
    ops = NumpyOps()
    x, gamma, beta, w = bn_case(rng, shape, dtype=np.float64)
    c = shape[1]
    fixed_mean = rng.standard_normal(c)
    fixed_var = rng.uniform(0.5, 2.0, c)
    eps = 1e-3

    def stats():
        if not batch_stats:
            return fixed_mean, fixed_var
        mean, var = np.empty(c), np.empty(c)
        ops.batchnorm_stats(x, mean, var)
        return mean, var

    def loss():                                       # L = sum(w * y)
        mean, var = stats()
        return float((w * ops.batchnorm_forward(x, mean, var, gamma, beta, epsilon=eps)).sum())

    mean, var = stats()
    dgamma, dbeta = np.empty(c), np.empty(c)
    dx = ops.batchnorm_backward(w, x, mean, var, gamma, epsilon=eps, batch_stats=batch_stats,
                                dgamma_out=dgamma, dbeta_out=dbeta)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numeric_grad(loss, gamma), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dbeta, numeric_grad(loss, beta), rtol=1e-5, atol=1e-7)


def test_dropout_backward_matches_finite_differences(rng):
    ops = NumpyOps()
    x = rng.standard_normal((4, 6))
    w = rng.standard_normal((4, 6))
    mask = np.empty(x.shape, np.uint8)
    ops.dropout_forward(x, 11, 0.5, mask_out=mask)
    dx = ops.dropout_backward(w, mask, 0.5)
    numeric = numeric_grad(lambda: float((w * ops.dropout_forward(x, 11, 0.5)).sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)
