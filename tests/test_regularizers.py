"""Weight regularizers: the API (Keras' names, defaults, configs), the fused
penalty kernel (CompiledOps vs NumpyOps, threads), and their effect on a
model (penalty in the reported loss, gradient in the step, frozen layers)."""

import numpy as np
import pytest

import fastnn
from fastnn import layers, models, optimizers, regularizers
from fastnn._ext import _core
from testing_utils import on_threads


# ---- API --------------------------------------------------------------------------

def test_defaults_and_strings_follow_keras():
    assert regularizers.L1().get_config() == {"l1": 0.01}
    assert regularizers.L2().get_config() == {"l2": 0.01}
    assert regularizers.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.get("l1") == regularizers.L1(0.01)
    assert regularizers.get("l2") == regularizers.L2(0.01)
    assert regularizers.get("l1_l2") == regularizers.L1L2(0.01, 0.01)
    assert regularizers.l1_l2(l2=0.5) == regularizers.L1L2(0.0, 0.5)
    assert regularizers.l1 is regularizers.L1 and regularizers.l2 is regularizers.L2
    assert regularizers.get(None) is None
    assert regularizers.get(regularizers.L2) == regularizers.L2()
    reg = regularizers.L1L2(0.1, 0.2)
    assert regularizers.get(reg) is reg
    assert regularizers.get(regularizers.serialize(reg)) == reg


def test_penalty_by_hand():
    x = np.array([[1.0, -2.0], [0.0, 3.0]])
    assert regularizers.L1(0.1)(x) == pytest.approx(0.1 * 6)
    assert regularizers.L2(0.1)(x) == pytest.approx(0.1 * 14)
    assert regularizers.L1L2(0.1, 0.2)(x) == pytest.approx(0.6 + 2.8)
    assert regularizers.L2(2.0)(np.ones((5, 5))) == pytest.approx(50.0)   # Keras' docstring


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_factors(bad):
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(bad)
    with pytest.raises(ValueError, match="l1"):
        regularizers.L1L2(l1=bad)


def test_bad_identifiers():
    for bad in ("l3", 0.1, {"class_name": "Orthogonal", "config": {}},
                {"class_name": "L2", "config": {"l3": 1}}):
        with pytest.raises(ValueError):
            regularizers.get(bad)


def test_dense_config_round_trip():
    dense = layers.Dense(3, kernel_regularizer="l2", bias_regularizer=regularizers.L1(0.5))
    config = dense.get_config()
    assert config["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.01}}
    assert config["bias_regularizer"] == {"class_name": "L1", "config": {"l1": 0.5}}
    config["name"] = "copy"
    clone = layers.Dense.from_config(config)
    assert clone.kernel_regularizer == regularizers.L2(0.01)
    assert clone.bias_regularizer == regularizers.L1(0.5)
    assert layers.Dense(2).get_config()["kernel_regularizer"] is None


# ---- the kernel -------------------------------------------------------------------

SIZES = [1, 2, 7, 31, 4096, 4097, 10007]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.02), (0.3, 0.7)])
def test_kernel_matches_numpy(numpy_ops, compiled_ops, rng, n, l1, l2):
    w = rng.standard_normal(n).astype(np.float32)
    w[::5] = 0.0                              # sign(0) = 0: no L1 push
    g0 = rng.standard_normal(n).astype(np.float32)
    g_ref, g = g0.copy(), g0.copy()
    ref = numpy_ops.regularize_(g_ref, w, l1, l2)
    got = compiled_ops.regularize_(g, w, l1, l2)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6, atol=1e-7)
    assert compiled_ops.regularize_(None, w, l1, l2) == got      # penalty alone


def test_kernel_by_hand(ops):
    w = np.array([1.0, -2.0, 0.0, 0.5], np.float32)
    g = np.ones(4, np.float32)
    penalty = ops.regularize_(g, w, 0.1, 0.25)
    assert penalty == pytest.approx(0.1 * 3.5 + 0.25 * 5.25, rel=1e-12)
    np.testing.assert_allclose(g, 1 + 0.1 * np.sign(w) + 0.5 * w, rtol=1e-7)


def test_kernel_one_and_two_threads_bitwise_equal(compiled_ops, rng):
    w = rng.standard_normal(300007).astype(np.float32)
    g0 = rng.standard_normal(300007).astype(np.float32)
    results = []
    for n in (1, 2):
        g = g0.copy()
        with on_threads(n):
            results.append((compiled_ops.regularize_(g, w, 0.01, 0.02), g))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_kernel_float64_falls_back_to_numpy(compiled_ops, numpy_ops, rng):
    w = rng.standard_normal(9)
    g, g_ref = np.zeros(9), np.zeros(9)
    assert compiled_ops.regularize_(g, w, 0.1, 0.2) == numpy_ops.regularize_(g_ref, w, 0.1, 0.2)
    np.testing.assert_array_equal(g, g_ref)


def test_kernel_bad_input():
    w = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="l1 and l2"):
        _core.regularize_f32(None, w, -1.0, 0.0, 1)
    with pytest.raises(ValueError, match="l1 and l2"):
        _core.regularize_f32(None, w, 0.0, float("nan"), 1)
    with pytest.raises(ValueError, match=r"shape of param \(4,\)"):
        _core.regularize_f32(np.ones(3, np.float32), w, 0.1, 0.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.regularize_f32(None, w.astype(np.float64), 0.1, 0.0, 1)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.regularize_f32(ro, w, 0.1, 0.0, 1)
    assert _core.regularize_f32(None, np.ones(0, np.float32), 0.1, 0.1, 1) == 0.0


# ---- models -----------------------------------------------------------------------

def _data(n=12, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = rng.standard_normal((n, 2)).astype(np.float32)
    return x, y


def _model(kernel_regularizer=None, bias_regularizer=None, lr=0.1, hidden_reg=None):
    fastnn.set_seed(7)
    model = models.Sequential([
        layers.Dense(5, activation="tanh", input_shape=(4,), kernel_regularizer=hidden_reg),
        layers.Dense(2, kernel_regularizer=kernel_regularizer,
                     bias_regularizer=bias_regularizer, bias_initializer="ones"),
    ])
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def _penalty(model, regs):
    total = 0.0
    for layer, reg_pairs in zip(model.layers, regs):
        for weight, reg in zip(layer.get_weights(), reg_pairs):
            if reg is not None:
                total += reg(weight)
    return total


def test_penalty_added_to_evaluate_and_train_loss(backend):
    x, y = _data()
    kreg, breg = regularizers.L1L2(0.01, 0.02), regularizers.L2(0.3)
    plain, reg = _model(), _model(kreg, breg)
    penalty = _penalty(reg, [(None, None), (kreg, breg)])
    assert penalty > 0
    np.testing.assert_allclose(reg.evaluate(x, y, verbose=0),
                               plain.evaluate(x, y, verbose=0) + penalty, rtol=1e-6)
    # The loss a training step reports is computed before its update, as Keras.
    np.testing.assert_allclose(reg.train_on_batch(x, y),
                               plain.train_on_batch(x, y) + penalty, rtol=1e-6)


def test_one_sgd_step_by_hand(backend):
    # w_new = w - lr (data gradient + l1 sign(w) + 2 l2 w): the difference from
    # the same step without the regularizer is exactly the penalty's part.
    x, y = _data()
    lr, l1, l2 = 0.1, 0.05, 0.2
    plain, reg = _model(lr=lr), _model(regularizers.L1L2(l1, l2), lr=lr)
    w0 = reg.layers[1].get_weights()[0].astype(np.float64)
    plain.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    reg.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    diff = reg.layers[1].get_weights()[0] - plain.layers[1].get_weights()[0]
    np.testing.assert_allclose(diff, -lr * (l1 * np.sign(w0) + 2 * l2 * w0), atol=2e-6)
    # Unregularized weights (the first layer's and the bias) got the same
    # first step: only the kernel's range was touched.
    np.testing.assert_array_equal(reg.layers[1].get_weights()[1],
                                  plain.layers[1].get_weights()[1])


def test_fit_history_loss_includes_penalty(backend):
    x, y = _data()
    reg = _model(regularizers.L2(0.5), lr=0.0)          # lr 0: weights never move
    expected = reg.evaluate(x, y, verbose=0)
    history = reg.fit(x, y, batch_size=5, epochs=2, validation_data=(x, y), verbose=0)
    np.testing.assert_allclose(history.history["loss"], [expected] * 2, rtol=1e-6)
    np.testing.assert_allclose(history.history["val_loss"], [expected] * 2, rtol=1e-6)


def test_frozen_layer_has_no_penalty_and_no_push(backend):
    # Keras counts the penalties of trainable weights only.
    x, y = _data()
    hreg = regularizers.L2(0.5)
    reg = _model(hidden_reg=hreg)
    plain = _model()
    penalty = _penalty(reg, [(hreg, None), (None, None)])
    np.testing.assert_allclose(reg.evaluate(x, y, verbose=0),
                               plain.evaluate(x, y, verbose=0) + penalty, rtol=1e-6)
    reg.layers[0].trainable = False
    frozen = reg.layers[0].get_weights()
    np.testing.assert_allclose(reg.evaluate(x, y, verbose=0), plain.evaluate(x, y, verbose=0),
                               rtol=1e-6)
    reg.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for before, after in zip(frozen, reg.layers[0].get_weights()):
        np.testing.assert_array_equal(before, after)


def _regularized_ranges(model):
    return model.buffers.regularized_ranges({id(w) for w in model.trainable_weights})


def test_unregularized_model_has_no_ranges():
    assert _regularized_ranges(_model()) == ()
    assert _regularized_ranges(_model(regularizers.L1L2())) == ()      # zero penalty skipped
    # Kernel and bias with equal factors are one fused range.
    model = _model(regularizers.L2(0.1), regularizers.L2(0.1))
    (start, stop, l1, l2), = _regularized_ranges(model)
    assert (stop - start, l1, l2) == (5 * 2 + 2, 0.0, 0.1)


def test_compiled_and_numpy_models_agree():
    x, y = _data(40)
    weights = {}
    for name in ("numpy", "compiled"):
        previous = fastnn.get_backend()
        fastnn.set_backend(name)
        try:
            model = _model(regularizers.L1L2(0.01, 0.05), regularizers.L1(0.02),
                           hidden_reg="l2")
            history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
            weights[name] = (model.get_weights(), history.history["loss"])
        finally:
            fastnn.set_backend(previous)
    for a, b in zip(weights["numpy"][0], weights["compiled"][0]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(weights["numpy"][1], weights["compiled"][1], rtol=1e-4)
