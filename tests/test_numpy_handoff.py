"""The compiled backend's hand-offs to NumPy (fastnn.backend.numpy_handoff): declared
once per method, the whole call passed on, recorded once, the float32 path untouched."""
import threading

import numpy as np
import pytest

import fastnn
from fastnn.backend import compiled_ops, get_ops, numpy_handoff
from fastnn.backend.numpy_handoff import compiled_for_float32


@pytest.fixture
def compiled():
    return get_ops("compiled")


def test_fallbacks_is_one_list_that_show_config_reports(compiled):
    assert compiled_ops.FALLBACKS is numpy_handoff.FALLBACKS
    compiled.sum_squares(np.ones(5))
    assert "sum_squares float64" in fastnn.show_config(mode="dicts")["fallbacks"]


def test_a_hand_off_is_recorded_once_per_method_and_dtype(compiled):
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    for _ in range(3):
        compiled.activation_forward("tanh", x)
        compiled.activation_forward("tanh", x.astype(np.float16))
    fallbacks = compiled_ops.FALLBACKS
    assert fallbacks.count("activation_forward float64") == 1
    assert fallbacks.count("activation_forward float16") == 1


def test_recording_from_many_threads_keeps_one_entry():
    label = "a_method_of_this_test float64"
    barrier = threading.Barrier(8)

    def record():
        barrier.wait()
        for _ in range(200):
            numpy_handoff.record_fallback("a_method_of_this_test", np.float64)
    threads = [threading.Thread(target=record) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert numpy_handoff.FALLBACKS.count(label) == 1
    finally:
        while label in numpy_handoff.FALLBACKS:
            numpy_handoff.FALLBACKS.remove(label)


def test_the_whole_call_reaches_numpy_positional_or_by_keyword(compiled):
    numpy = get_ops("numpy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 7))
    want = numpy.activation_forward("gelu", x)
    np.testing.assert_array_equal(compiled.activation_forward("gelu", x), want)
    out = np.empty_like(x)
    assert compiled.activation_forward(name="gelu", x=x, out=out) is out
    np.testing.assert_array_equal(out, want)
    # keyword-only arguments pass through too
    p, g = rng.standard_normal(9), rng.standard_normal(9)
    p_ref, vel, vel_ref = p.copy(), np.zeros(9), np.zeros(9)
    compiled.sgd_update(p, g, vel, lr=0.1, momentum=0.9, nesterov=True, decay=0.01)
    numpy.sgd_update(p_ref, g, vel_ref, lr=0.1, momentum=0.9, nesterov=True, decay=0.01)
    np.testing.assert_array_equal(p, p_ref)
    np.testing.assert_array_equal(vel, vel_ref)


def test_float32_runs_compiled_and_records_nothing(compiled):
    before = list(compiled_ops.FALLBACKS)
    x = np.ones((2, 3), np.float32)
    compiled.activation_forward("relu", x)
    compiled.scale_(x, 2.0)
    compiled.sum_squares(x)
    assert compiled_ops.FALLBACKS == before


def test_an_argument_without_a_dtype_gets_the_compiled_checks(compiled):
    # once an AttributeError ('list' object has no attribute 'dtype')
    w = np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(TypeError, match="conv2d_forward: x must be a numpy array"):
        compiled.conv2d_forward([[1.0]], w, None, strides=(1, 1), padding="valid",
                                dilation=(1, 1), activation=None)


def test_declarations_keep_the_signature_and_are_checked():
    import inspect

    class Demo:
        def __init__(self):
            self._reference = self

        @compiled_for_float32("x")
        def twice(self, x, *, factor=2):
            return "compiled"

    assert str(inspect.signature(Demo.twice)) == "(self, x, *, factor=2)"
    assert Demo().twice(np.ones(2, np.float32), factor=3) == "compiled"
    with pytest.raises(TypeError, match="no argument 'y'"):
        compiled_for_float32("y")(lambda self, x: x)
    with pytest.raises(TypeError, match="plain named arguments"):
        compiled_for_float32("x")(lambda self, x, *rest: x)
