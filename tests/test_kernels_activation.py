"""Activation kernels: CompiledOps against NumpyOps (float32), odd shapes,
extreme inputs, in-place calls, 1 vs 2 threads, and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn._ext import _core
from fastnn.backend import compiled_ops as compiled_module
from fastnn.backend.ops import ACTIVATIONS, NEEDS_PREACTIVATION
from testing_utils import on_threads

SHAPES = [(1, 1), (1, 17), (7, 13), (31, 1), (3, 64), (64, 33)]
# The reference computes gelu's erf in double, the kernels erff in float32:
# the two agree to a few float32 ulps, not bitwise.
RTOL, ATOL = 1e-5, 1e-6
# The reference's sigmoid, 0.5 (1 + tanh(x / 2)) in float32, has an absolute
# error up to about half an ulp of 1 (6e-8) where sigmoid is tiny (x < -9),
# while the kernel keeps full relative precision there. swish multiplies
# that error by about 1 + |x|: allow for it, element by element.
REF_SIGMOID_ERROR = 1.2e-7


def _assert_close(got, ref, slack, msg):
    bound = RTOL * np.abs(ref) + ATOL + slack
    bad = ~(np.abs(got.astype(np.float64) - ref) <= bound)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{msg}: {bad.sum()} of {bad.size} elements differ; first at {i}: "
                             f"got {got[i]!r}, reference {ref[i]!r}, bound {bound[i]!r}")


def _inputs(rng, shape, scale=3.0):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    return x, dy


def _check_pair(numpy_ops, compiled_ops, name, x, dy):
    y_ref = numpy_ops.activation_forward(name, x)
    y = compiled_ops.activation_forward(name, x)
    assert y.dtype == np.float32 and y.shape == x.shape
    slack = REF_SIGMOID_ERROR * (1 + np.abs(x)) if name == "swish" else 0.0
    _assert_close(y, y_ref, slack, f"{name} forward")
    # Both backends get the same y, so backward compares derivatives only.
    dx_ref = numpy_ops.activation_backward(name, dy, x, y_ref)
    dx = compiled_ops.activation_backward(name, dy, x, y_ref)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    _assert_close(dx, dx_ref, slack * np.abs(dy), f"{name} backward")


def test_codes_match_ops():
    assert _core.KERNEL_ACTIVATIONS == ACTIVATIONS
    assert [compiled_module.ACT_CODES[a] for a in ACTIVATIONS] == list(range(len(ACTIVATIONS)))
    for code, name in enumerate(ACTIVATIONS):
        assert _core.act_needs_input(code) == (name in NEEDS_PREACTIVATION), name


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy(numpy_ops, compiled_ops, rng, name, shape):
    x, dy = _inputs(rng, shape)
    _check_pair(numpy_ops, compiled_ops, name, x, dy)


@given(n=st.integers(1, 70), o=st.integers(1, 70), scale=st.sampled_from([0.01, 1.0, 8.0]),
       seed=st.integers(0, 2**31 - 1))
def test_matches_numpy_drawn_shapes(numpy_ops, compiled_ops, n, o, scale, seed):
    rng = np.random.default_rng(seed)
    x, dy = _inputs(rng, (n, o), scale)
    for name in ACTIVATIONS:
        _check_pair(numpy_ops, compiled_ops, name, x, dy)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_extreme_inputs(numpy_ops, compiled_ops, name):
    x = np.array([[-1e4, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 1e4]], np.float32)
    dy = np.ones_like(x)
    with np.errstate(all="ignore"):
        y = compiled_ops.activation_forward(name, x)
        dx = compiled_ops.activation_backward(name, dy, x, y)
        y_ref = numpy_ops.activation_forward(name, x)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)


def test_sigmoid_keeps_precision_for_very_negative_inputs(compiled_ops):
    # exp(-30) / (1 + exp(-30)): the kernel keeps full relative precision.
    y = compiled_ops.activation_forward("sigmoid", np.array([[-30.0]], np.float32))
    np.testing.assert_allclose(y, [[np.exp(-30.0)]], rtol=1e-6)


def test_softmax_rows_sum_to_one_and_shift_invariant(compiled_ops, rng):
    x = (rng.standard_normal((9, 23)) * 50).astype(np.float32)
    y = compiled_ops.activation_forward("softmax", x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    y_shift = compiled_ops.activation_forward("softmax", x + np.float32(1000.0))
    np.testing.assert_allclose(y_shift, y, atol=1e-4)
    assert np.isfinite(y_shift).all()


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_in_place(compiled_ops, rng, name):
    x, dy = _inputs(rng, (5, 11))
    y = compiled_ops.activation_forward(name, x)
    dx = compiled_ops.activation_backward(name, dy, x, y)
    buf = x.copy()
    assert compiled_ops.activation_forward(name, buf, out=buf) is buf
    np.testing.assert_array_equal(buf, y)
    g = dy.copy()
    assert compiled_ops.activation_backward(name, g, x, y, out=g) is g
    np.testing.assert_array_equal(g, dx)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_three_d_input(numpy_ops, compiled_ops, rng, name):
    x, dy = _inputs(rng, (3, 4, 7))
    slack = REF_SIGMOID_ERROR * (1 + np.abs(x)) if name == "swish" else 0.0
    _assert_close(compiled_ops.activation_forward(name, x), numpy_ops.activation_forward(name, x),
                  slack, name)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_one_and_two_threads_bitwise_equal(compiled_ops, rng, name):
    # Large enough that every activation runs a parallel region on 2 threads.
    x, dy = _inputs(rng, (301, 257))
    results = []
    for n in (1, 2):
        with on_threads(n):
            y = compiled_ops.activation_forward(name, x)
            dx = compiled_ops.activation_backward(name, dy, x, y)
        results.append((y, dx))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_empty_arrays(compiled_ops):
    x = np.empty((0, 5), np.float32)
    for name in ACTIVATIONS:
        y = compiled_ops.activation_forward(name, x)
        assert y.shape == (0, 5)
        assert compiled_ops.activation_backward(name, x, x, y).shape == (0, 5)


# ---- bad input: a clear exception, never a crash ---------------------------------

def test_wrong_dtype_is_type_error():
    x = np.zeros((2, 3), np.float64)
    y = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="float32"):
        _core.act_forward_f32(y, x, 1, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.act_forward_f32(x, y, 1, 1)
    with pytest.raises(TypeError):
        _core.act_forward_f32([[0.0]], y, 1, 1)
    with pytest.raises(TypeError):
        _core.act_forward_f32(None, y, 1, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.act_backward_f32(y, y, None, x, 1, 1)


def test_wrong_shapes_are_value_errors():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        _core.act_forward_f32(np.zeros((3, 2), np.float32), a, 1, 1)
    with pytest.raises(ValueError, match="2-D"):
        _core.act_forward_f32(a, np.zeros(6, np.float32), 1, 1)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        _core.act_backward_f32(a, a, None, np.zeros((2, 4), np.float32), 1, 1)


def test_layout_and_writability_errors():
    a = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.act_forward_f32(np.zeros((6, 4), np.float32), a.T, 1, 1)
    ro = np.zeros((4, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.act_forward_f32(ro, a, 1, 1)


def test_bad_code_and_missing_operands():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="activation code"):
        _core.act_forward_f32(a, a, 99, 1)
    with pytest.raises(ValueError, match="activation code"):
        _core.act_backward_f32(a, a, a, a, -1, 1)
    with pytest.raises(ValueError, match="input X"):
        _core.act_backward_f32(a, a, None, a, ACTIVATIONS.index("gelu"), 1)
    with pytest.raises(ValueError, match="output Y"):
        _core.act_backward_f32(a, a, a, None, ACTIVATIONS.index("relu"), 1)
    _core.act_backward_f32(a, a, None, None, ACTIVATIONS.index("linear"), 1)
