"""Nadam, Adamax and Lion (Keras 3): first steps worked out by hand from the
published rules, PyTorch's NAdam and Adamax (when installed), and models that
train, save, load and resume bitwise. Their C kernels are checked against the
NumPy twins, and on 1 vs 2 threads, with the other updates in
test_kernels_optim.py."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import layers, models, optimizers
from fastnn._ext import _core

f32 = np.float32


def nadam_scalars(beta_1, beta_2, t, u_product_before):
    """(coef_m, coef_g, v_correction, u_product after step t) from Keras 3's
    nadam.py, in float64: u_t = beta_1 (1 - 0.5 * 0.96^t)."""
    u_t = beta_1 * (1 - 0.5 * 0.96 ** t)
    u_next = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
    u_product = u_product_before * u_t
    return (u_next / (1 - u_product * u_next), (1 - u_t) / (1 - u_product),
            1 - beta_2 ** t, u_product)


# ---- kernels: one step of each by hand ----------------------------------------------

def test_nadam_kernel_hand_computed(ops):
    # beta1 = 0.5, beta2 = 0.75: complements exact in float32
    p, g = np.array([1.0, -1.0], f32), np.array([0.5, -2.0], f32)
    m, v = np.array([0.0, 0.2], f32), np.array([0.0, 1.0], f32)
    ops.nadam_update(p, g, m, v, lr=0.1, beta1=0.5, beta2=0.75, coef_m=0.25, coef_g=0.5,
                     v_correction=0.5, eps=1e-7, decay=0.5)
    # m = [0.25, -0.9]; v = [0.0625, 1.75]; decay halves p first
    np.testing.assert_allclose(m, [0.25, -0.9], rtol=1e-7)
    np.testing.assert_allclose(v, [0.0625, 1.75], rtol=1e-7)
    mhat = np.array([0.25 * 0.25 + 0.5 * 0.5, 0.25 * -0.9 + 0.5 * -2.0])
    denom = np.sqrt(np.array([0.0625, 1.75]) / 0.5) + 1e-7
    np.testing.assert_allclose(p, np.array([0.5, -0.5]) - mhat * 0.1 / denom, rtol=1e-6)


def test_adamax_kernel_hand_computed(ops):
    p, g = np.array([1.0, 2.0, -1.0], f32), np.array([0.5, -0.25, 0.0], f32)
    m, u = np.array([0.0, 0.5, 1.0], f32), np.array([1.0, 0.0, 2.0], f32)
    ops.adamax_update(p, g, m, u, lr=0.1, beta1=0.5, beta2=0.5, m_correction=0.75, eps=0.0,
                      decay=0.25)
    # m = m + (g - m) 0.5 = [0.25, 0.125, 0.5]; u = max(0.5 u, |g|) = [0.5, 0.25, 1]
    np.testing.assert_allclose(m, [0.25, 0.125, 0.5], rtol=1e-7)
    np.testing.assert_allclose(u, [0.5, 0.25, 1.0], rtol=1e-7)
    decayed = np.array([0.75, 1.5, -0.75])
    expected = decayed - 0.1 * np.array([0.25, 0.125, 0.5]) / (0.75 * np.array([0.5, 0.25, 1]))
    np.testing.assert_allclose(p, expected, rtol=1e-6)


def test_lion_kernel_hand_computed(ops):
    # c = 0.5 m + 0.5 g = [1, -0.25, 0]: the weights move by exactly lr (none where c = 0)
    p, g = np.array([1.0, 1.0, 1.0], f32), np.array([1.0, 0.5, -1.0], f32)
    m = np.array([1.0, -1.0, 1.0], f32)
    ops.lion_update(p, g, m, lr=0.125, beta1=0.5, beta2=0.75, decay=0.5)
    np.testing.assert_array_equal(p, [0.5 - 0.125, 0.5 + 0.125, 0.5])
    # m = 0.75 m + 0.25 g
    np.testing.assert_array_equal(m, [1.0, -0.625, 0.5])


def test_lion_kernel_keeps_nan_like_np_sign(ops):
    p, g, m = np.ones(3, f32), np.array([np.nan, 0.0, -0.0], f32), np.zeros(3, f32)
    with np.errstate(invalid="ignore"):
        ops.lion_update(p, g, m, lr=0.5, beta1=0.9, beta2=0.99)
    assert np.isnan(p[0]) and np.isnan(m[0])
    np.testing.assert_array_equal(p[1:], [1.0, 1.0])


def test_adamax_kernel_propagates_nan_like_np_maximum(ops):
    p, m = np.ones(2, f32), np.zeros(2, f32)
    u, g = np.array([np.nan, 1.0], f32), np.array([0.5, np.nan], f32)
    with np.errstate(invalid="ignore"):
        ops.adamax_update(p, g, m, u, lr=0.1, beta1=0.9, beta2=0.999, m_correction=0.1,
                          eps=1e-7)
    assert np.isnan(u).all()


def test_kernels_refuse_bad_arguments():
    p, short, d = np.zeros(5, f32), np.zeros(4, f32), np.zeros(5, np.float64)
    with pytest.raises(ValueError, match="v"):
        _core.nadam_update_f32(p, p.copy(), short, p.copy(), 0.1, 0.9, 0.999, 1.0, 1.0, 1.0,
                               1e-7, 0.0, 1)
    with pytest.raises(TypeError, match="float32"):
        _core.adamax_update_f32(p, p.copy(), p.copy(), d, 0.1, 0.9, 0.999, 0.1, 1e-7, 0.0, 1)
    ro = np.zeros(5, f32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.lion_update_f32(p, ro, p.copy(), 0.1, 0.9, 0.99, 0.0, 1)


# ---- optimizer classes: first steps from the published rules -------------------------

P0 = np.array([1.0, -2.0, 3.0, 0.5, -0.25], dtype=f32)
GRADS = [np.array([0.1, 0.2, -0.3, 0.0, 1.5], dtype=f32),
         np.array([-0.2, 0.1, -0.1, 0.3, 0.5], dtype=f32),
         np.array([0.05, -0.4, 0.2, -0.1, 0.0], dtype=f32)]


def run_steps(ops, opt, p, grads):
    p = p.copy()
    opt.build(p.size, p.dtype)
    for g in grads:
        opt.apply(ops, p, g.copy(), [(0, p.size)], [(0, p.size)])
    return p


def test_nadam_steps_by_hand(ops):
    opt = optimizers.Nadam(learning_rate=0.1, weight_decay=0.5)
    p = run_steps(ops, opt, P0, GRADS)
    expected, m, v, u_product = P0.astype(np.float64), 0.0, 0.0, 1.0
    b1, b2, eps = 0.9, 0.999, 1e-7
    for t, g in enumerate(GRADS, start=1):
        g = g.astype(np.float64)
        u_t = b1 * (1 - 0.5 * 0.96 ** t)
        u_next = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        u_product *= u_t
        expected = expected - 0.1 * 0.5 * expected
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * g / (1 - u_product)
        expected = expected - 0.1 * m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)
    assert opt.variables()["u_product"][0] == pytest.approx(u_product, rel=1e-15)
    assert opt.iterations == 3


def test_adamax_steps_by_hand(ops):
    p = run_steps(ops, optimizers.Adamax(learning_rate=0.1, weight_decay=0.5), P0, GRADS)
    expected, m, u = P0.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(GRADS, start=1):
        g = g.astype(np.float64)
        expected = expected - 0.1 * 0.5 * expected
        m = 0.9 * m + 0.1 * g
        u = np.maximum(0.999 * u, np.abs(g))
        expected = expected - 0.1 / (1 - 0.9 ** t) * m / (u + 1e-7)
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)


def test_lion_steps_by_hand(ops):
    """Chen et al. 2023, Algorithm 2 (decoupled decay first, as Keras applies it)."""
    p = run_steps(ops, optimizers.Lion(learning_rate=0.1, weight_decay=0.5), P0, GRADS)
    expected, m = P0.astype(np.float64), np.zeros(P0.size)
    for g in GRADS:
        g = g.astype(np.float64)
        expected = expected - 0.1 * 0.5 * expected
        expected = expected - 0.1 * np.sign(0.9 * m + 0.1 * g)
        m = 0.99 * m + 0.01 * g
    np.testing.assert_allclose(p, expected, rtol=1e-6, atol=1e-7)


def test_nadam_u_product_advances_once_per_step_over_several_ranges(ops):
    """Frozen layers split the update into ranges; the schedule is per step."""
    one, two = optimizers.Nadam(0.1), optimizers.Nadam(0.1)
    whole = run_steps(ops, one, P0, GRADS)
    p = P0.copy()
    two.build(p.size, p.dtype)
    for g in GRADS:
        two.apply(ops, p, g.copy(), [(0, 2), (2, 5)], [(0, 2), (2, 5)])
    np.testing.assert_array_equal(p, whole)
    assert two.variables()["u_product"][0] == one.variables()["u_product"][0]


@pytest.mark.torch_oracle
@pytest.mark.parametrize("weight_decay", [None, 0.1])
def test_nadam_matches_pytorch_with_keras_momentum_schedule(ops, weight_decay):
    """Keras 3 schedules the momentum as beta_1 (1 - 0.5 * 0.96^t); PyTorch's NAdam
    as beta_1 (1 - 0.5 * 0.96^(momentum_decay t)) with momentum_decay = 0.004 by
    default. With momentum_decay = 1 the two are the same rule (Keras's is
    followed here)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(37)
    grads = [rng.standard_normal(37) for _ in range(6)]
    p = run_steps(ops, optimizers.Nadam(0.01, weight_decay=weight_decay), p0.astype(f32),
                  [g.astype(f32) for g in grads])
    tp = torch.tensor(p0, requires_grad=True)
    topt = torch.optim.NAdam([tp], lr=0.01, eps=1e-7, momentum_decay=1.0,
                             weight_decay=weight_decay or 0.0, decoupled_weight_decay=True)
    for g in grads:
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=2e-5, atol=2e-6)
    # PyTorch's default schedule is another rule: its first step is already
    # outside the tolerance above
    tq = torch.tensor(p0, requires_grad=True)
    default = torch.optim.NAdam([tq], lr=0.01, eps=1e-7)
    tq.grad = torch.tensor(grads[0])
    default.step()
    first = run_steps(ops, optimizers.Nadam(0.01), p0.astype(f32), [grads[0].astype(f32)])
    assert not np.allclose(first, tq.detach().numpy(), rtol=2e-5, atol=2e-6)


@pytest.mark.torch_oracle
def test_adamax_matches_pytorch(ops):
    """PyTorch adds epsilon to |g| inside the max, Keras to u after it: the first
    step is the same rule, later ones differ by about epsilon relative to |g|."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(37)
    grads = [rng.standard_normal(37) for _ in range(6)]
    tp = torch.tensor(p0, requires_grad=True)
    topt = torch.optim.Adamax([tp], lr=0.01, eps=1e-7)
    tp.grad = torch.tensor(grads[0])
    topt.step()
    first = run_steps(ops, optimizers.Adamax(0.01), p0.astype(f32), [grads[0].astype(f32)])
    np.testing.assert_allclose(first, tp.detach().numpy(), rtol=1e-6, atol=1e-7)
    for g in grads[1:]:
        tp.grad = torch.tensor(g)
        topt.step()
    p = run_steps(ops, optimizers.Adamax(0.01), p0.astype(f32), [g.astype(f32) for g in grads])
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=2e-5, atol=2e-6)


# ---- settings, get and serialize ---------------------------------------------------------

def test_defaults_are_keras_defaults():
    nadam, adamax, lion = (optimizers.get(n) for n in ("nadam", "Adamax", "LION"))
    assert (type(nadam), nadam.learning_rate, nadam.beta_1, nadam.beta_2, nadam.epsilon) == (
        optimizers.Nadam, 0.001, 0.9, 0.999, 1e-7)
    assert (type(adamax), adamax.learning_rate, adamax.beta_1, adamax.beta_2,
            adamax.epsilon) == (optimizers.Adamax, 0.001, 0.9, 0.999, 1e-7)
    assert (type(lion), lion.learning_rate, lion.beta_1, lion.beta_2) == (
        optimizers.Lion, 0.001, 0.9, 0.99)
    assert (nadam.name, adamax.name, lion.name) == ("nadam", "adamax", "lion")


@pytest.mark.parametrize("opt", [
    optimizers.Nadam(0.01, beta_1=0.8, epsilon=1e-6, clipnorm=1.0),
    optimizers.Adamax(0.02, beta_2=0.9, weight_decay=0.01, name="mine"),
    optimizers.Lion(1e-4, beta_1=0.95, beta_2=0.98, global_clipnorm=2.0),
])
def test_serialize_round_trips(opt):
    spec = optimizers.serialize(opt)
    assert spec["class_name"] == type(opt).__name__
    again = optimizers.deserialize(spec)
    assert type(again) is type(opt)
    assert again.get_config() == opt.get_config()
    assert type(opt).from_config(opt.get_config()).get_config() == opt.get_config()
    assert optimizers.get(spec).get_config() == opt.get_config()


@pytest.mark.parametrize("make, match", [
    (lambda: optimizers.Nadam(epsilon=0), "Nadam: epsilon must be a finite number > 0"),
    (lambda: optimizers.Nadam(beta_2=1.0), "Nadam: beta_2 must be a number in"),
    (lambda: optimizers.Adamax(beta_1=-0.1), "Adamax: beta_1 must be a number in"),
    (lambda: optimizers.Adamax(epsilon=float("nan")), "Adamax: epsilon must be"),
    (lambda: optimizers.Lion(beta_1=0.0), r"Lion: beta_1 must be a number in \(0, 1\], got 0"),
    (lambda: optimizers.Lion(beta_1=1.5), r"Lion: beta_1 must be a number in \(0, 1\]"),
    (lambda: optimizers.Lion(beta_2=1.0), "Lion: beta_2 must be a number in"),
    (lambda: optimizers.Lion(weight_decay=-1), "Lion: weight_decay must be"),
])
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_lion_accepts_beta_1_of_one_as_keras_does(ops):
    # sign(m) alone: the first step from m = 0 moves nothing, the momentum still learns
    opt = optimizers.Lion(0.1, beta_1=1.0)
    p = run_steps(ops, opt, P0, GRADS[:1])
    np.testing.assert_array_equal(p, P0)
    np.testing.assert_allclose(opt.variables()["momentum"], 0.01 * GRADS[0], rtol=1e-6)


# ---- models: train, save, load, resume -------------------------------------------------

def _data(n=96):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 6)).astype(f32)
    return x, np.argmax(x[:, :3] + 0.3 * x[:, 3:], axis=1)


def _model(optimizer):
    model = models.Sequential([layers.Input(shape=(6,)), layers.Dense(8, activation="relu"),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


MAKERS = [lambda: optimizers.Nadam(0.01), lambda: optimizers.Adamax(0.02, weight_decay=0.01),
          lambda: optimizers.Lion(0.003)]


@pytest.mark.parametrize("make", MAKERS, ids=["nadam", "adamax", "lion"])
def test_a_model_trains(backend, make):
    x, y = _data()
    fastnn.set_seed(1)
    model = _model(make())
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0) < before


@pytest.mark.parametrize("make", MAKERS, ids=["nadam", "adamax", "lion"])
def test_training_resumes_bitwise_after_save_and_load(backend, tmp_path, make):
    x, y = _data()
    fastnn.set_seed(3)
    straight = _model(make())
    fastnn.set_seed(3)
    resumed = _model(make())
    straight.fit(x, y, epochs=2, batch_size=20, shuffle=False, verbose=0)
    resumed.fit(x, y, epochs=1, batch_size=20, shuffle=False, verbose=0)
    resumed.save(tmp_path / "half.fnn")
    resumed = models.load_model(tmp_path / "half.fnn")
    assert type(resumed.optimizer) is type(straight.optimizer)
    resumed.fit(x, y, epochs=1, batch_size=20, shuffle=False, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert list(resumed.optimizer.variables()) == list(straight.optimizer.variables())
    for name, value in straight.optimizer.variables().items():
        np.testing.assert_array_equal(resumed.optimizer.variables()[name], value, err_msg=name)
    assert resumed.optimizer.iterations == straight.optimizer.iterations


def test_nadam_u_product_is_saved_not_recomputed(tmp_path):
    """The momentum-schedule product is state: a file that lost it (u_product
    back to 1) would resume with other steps, so the loaded value must be the
    saved one."""
    x, y = _data()
    fastnn.set_seed(3)
    model = _model(optimizers.Nadam(0.01))
    model.fit(x, y, epochs=1, batch_size=20, shuffle=False, verbose=0)
    saved = float(model.optimizer.variables()["u_product"][0])
    steps = model.optimizer.iterations
    expected = math.prod(0.9 * (1 - 0.5 * 0.96 ** t) for t in range(1, steps + 1))
    assert saved == pytest.approx(expected, rel=1e-12)
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    assert loaded.optimizer.variables()["u_product"].dtype == np.float64
    assert float(loaded.optimizer.variables()["u_product"][0]) == saved
