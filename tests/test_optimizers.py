"""Optimizer classes on both backends: hand-computed steps, clipping, weight
decay, schedules, and (when PyTorch is installed) PyTorch's formulas."""
import math

import numpy as np
import pytest

from fastnn import optimizers


def run_steps(ops, opt, p, grads, ranges=None, weight_ranges=None):
    p = p.copy()
    n = p.size
    ranges = ranges or [(0, n)]
    opt.build(n, p.dtype)
    for g in grads:
        opt.apply(ops, p, g.copy(), ranges, weight_ranges or ranges)
    return p


P0 = np.array([1.0, -2.0, 3.0, 0.5], dtype=np.float32)
G = np.array([0.1, 0.2, -0.3, 0.0], dtype=np.float32)


def test_sgd_plain_and_momentum_by_hand(ops):
    p = run_steps(ops, optimizers.SGD(learning_rate=0.1), P0, [G])
    np.testing.assert_allclose(p, P0 - 0.1 * G, rtol=1e-6)
    p = run_steps(ops, optimizers.SGD(learning_rate=0.1, momentum=0.9), P0, [G, G])
    v1 = -0.1 * G
    v2 = 0.9 * v1 - 0.1 * G
    np.testing.assert_allclose(p, P0 + v1 + v2, rtol=1e-6)
    p = run_steps(ops, optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True), P0, [G, G])
    step1 = 0.9 * v1 - 0.1 * G
    step2 = 0.9 * v2 - 0.1 * G
    np.testing.assert_allclose(p, P0 + step1 + step2, rtol=1e-6)


def test_adam_by_hand(ops):
    p = run_steps(ops, optimizers.Adam(learning_rate=0.1), P0, [G, G])
    m = v = np.zeros(4)
    expected = P0.astype(np.float64)
    for t in (1, 2):
        m = 0.9 * m + 0.1 * G
        v = 0.999 * v + 0.001 * G.astype(np.float64) ** 2
        lr_t = 0.1 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        expected = expected - lr_t * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-7)


def test_adamw_decays_before_the_adam_step(ops):
    p = run_steps(ops, optimizers.AdamW(learning_rate=0.1, weight_decay=0.5), P0, [G])
    decayed = P0 * (1 - 0.1 * 0.5)
    lr_t = 0.1 * math.sqrt(1 - 0.999) / (1 - 0.9)
    expected = decayed - lr_t * (0.1 * G) / (np.sqrt(0.001 * G ** 2) + 1e-7)
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-7)


def test_rmsprop_and_adagrad_by_hand(ops):
    p = run_steps(ops, optimizers.RMSprop(learning_rate=0.1), P0, [G])
    ms = 0.1 * G ** 2
    np.testing.assert_allclose(p, P0 - 0.1 * G / np.sqrt(ms + 1e-7), rtol=1e-5)
    p = run_steps(ops, optimizers.RMSprop(learning_rate=0.1, centered=True, momentum=0.5), P0, [G])
    mg = 0.1 * G
    np.testing.assert_allclose(p, P0 - 0.1 * G / np.sqrt(ms - mg * mg + 1e-7), rtol=1e-5)
    p = run_steps(ops, optimizers.Adagrad(learning_rate=0.1), P0, [G])
    acc = 0.1 + G ** 2
    np.testing.assert_allclose(p, P0 - 0.1 * G / np.sqrt(acc + 1e-7), rtol=1e-6)


def test_clipping(ops):
    big = np.array([3.0, 4.0, 0.0, 0.0], dtype=np.float32)          # norm 5
    p = run_steps(ops, optimizers.SGD(1.0, clipnorm=1.0), P0, [big],
                  weight_ranges=[(0, 2), (2, 4)])
    np.testing.assert_allclose(p, P0 - big / 5, rtol=1e-6)
    p = run_steps(ops, optimizers.SGD(1.0, clipvalue=0.5), P0, [big])
    np.testing.assert_allclose(p, P0 - np.clip(big, -0.5, 0.5), rtol=1e-6)
    two = np.array([3.0, 0.0, 4.0, 0.0], dtype=np.float32)
    p = run_steps(ops, optimizers.SGD(1.0, global_clipnorm=2.5), P0, [two],
                  weight_ranges=[(0, 2), (2, 4)])
    np.testing.assert_allclose(p, P0 - two / 2, rtol=1e-6)
    with pytest.raises(ValueError):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


def test_frozen_ranges_are_skipped(ops):
    p = run_steps(ops, optimizers.Adam(0.1), P0, [G + 1], ranges=[(0, 1), (3, 4)])
    assert p[1] == P0[1] and p[2] == P0[2]
    assert p[0] != P0[0] and p[3] != P0[3]


def test_schedule_and_settable_learning_rate(ops):
    opt = optimizers.SGD(learning_rate=lambda step: 0.1 * (step + 1))
    p = run_steps(ops, opt, P0, [G, G])
    np.testing.assert_allclose(p, P0 - 0.1 * G - 0.2 * G, rtol=1e-6)
    opt.learning_rate = 0.5
    assert opt.current_learning_rate() == 0.5
    with pytest.raises(ValueError):
        opt.learning_rate = -1.0


def test_get_resolves_names_with_keras_defaults():
    assert optimizers.get("adam").learning_rate == 0.001
    assert optimizers.get("sgd").learning_rate == 0.01
    assert optimizers.get("AdamW").weight_decay == 0.004
    assert optimizers.get("adagrad").initial_accumulator_value == 0.1
    with pytest.raises(ValueError, match="optimizer"):
        optimizers.get("lbfgs")


TORCH_CASES = [
    ("sgd", dict(learning_rate=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(learning_rate=0.05, momentum=0.9, nesterov=True),
     dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", dict(learning_rate=0.01, epsilon=1e-12), dict(lr=0.01, eps=1e-12)),
    ("adam", dict(learning_rate=0.01, epsilon=1e-12, amsgrad=True),
     dict(lr=0.01, eps=1e-12, amsgrad=True)),
    ("adamw", dict(learning_rate=0.01, weight_decay=0.1, epsilon=1e-12),
     dict(lr=0.01, weight_decay=0.1, eps=1e-12)),
    ("rmsprop", dict(learning_rate=0.01, epsilon=1e-14), dict(lr=0.01, alpha=0.9, eps=1e-7)),
    ("rmsprop", dict(learning_rate=0.01, momentum=0.5, centered=True, epsilon=1e-14),
     dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, eps=1e-7)),
    ("adagrad", dict(learning_rate=0.1, epsilon=1e-14),
     dict(lr=0.1, initial_accumulator_value=0.1, eps=1e-7)),
]


@pytest.mark.parametrize("name,ours,theirs", TORCH_CASES)
@pytest.mark.torch_oracle
def test_matches_pytorch(ops, name, ours, theirs):
    """PyTorch writes the same optimizers differently (epsilon placement aside)."""
    torch = pytest.importorskip("torch")
    classes = {"sgd": (optimizers.SGD, torch.optim.SGD), "adam": (optimizers.Adam, torch.optim.Adam),
               "adamw": (optimizers.AdamW, torch.optim.AdamW),
               "rmsprop": (optimizers.RMSprop, torch.optim.RMSprop),
               "adagrad": (optimizers.Adagrad, torch.optim.Adagrad)}
    ours_cls, theirs_cls = classes[name]
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(37).astype(np.float64)
    grads = [rng.standard_normal(37) for _ in range(6)]
    # Keras' RMSprop / Adagrad put epsilon inside the square root, PyTorch outside:
    # with both tiny the two agree.
    p = run_steps(ops, ours_cls(**ours), p0.astype(np.float32),
                  [g.astype(np.float32) for g in grads])
    tp = torch.tensor(p0, requires_grad=True)
    topt = theirs_cls([tp], **theirs)
    for g in grads:
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=2e-4, atol=2e-5)


# ---- settings: one rule for constructors and loaded files (fastnn.optimizer_settings) ---
BAD_SETTINGS = [
    (optimizers.Adam, dict(epsilon=0), "Adam: epsilon must be a finite number > 0, got 0"),
    (optimizers.Adam, dict(epsilon=-1e-7), "epsilon must be"),
    (optimizers.RMSprop, dict(epsilon=float("inf")), "RMSprop: epsilon must be"),
    (optimizers.Adagrad, dict(epsilon=0.0), "Adagrad: epsilon must be"),
    (optimizers.AdamW, dict(epsilon=float("nan")), "AdamW: epsilon must be"),
    (optimizers.SGD, dict(learning_rate=2 ** 31), "SGD: learning_rate must be a finite "
                                                   "number >= 0 and <= 1000, got 2147483648"),
    (optimizers.Adam, dict(learning_rate=float("nan")), "learning_rate must be"),
    (optimizers.Adam, dict(learning_rate=-1e-3), "learning_rate must be"),
    (optimizers.Adam, dict(learning_rate="0.001"), "learning_rate must be"),
    (optimizers.SGD, dict(momentum=1.0), r"SGD: momentum must be a number in \[0, 1\)"),
    (optimizers.SGD, dict(momentum=-0.1), "momentum must be"),
    (optimizers.RMSprop, dict(momentum=1.5), "RMSprop: momentum must be"),
    (optimizers.RMSprop, dict(rho=1.0), "RMSprop: rho must be"),
    (optimizers.Adam, dict(beta_1=1.0), "Adam: beta_1 must be"),
    (optimizers.AdamW, dict(beta_2=1.0), "AdamW: beta_2 must be"),
    (optimizers.Adam, dict(beta_2=True), "beta_2 must be"),
    (optimizers.SGD, dict(clipnorm=0.0), "SGD: clipnorm must be a finite number > 0"),
    (optimizers.SGD, dict(clipvalue=float("inf")), "clipvalue must be"),
    (optimizers.Adam, dict(global_clipnorm=-1.0), "global_clipnorm must be"),
    (optimizers.Adam, dict(weight_decay=float("nan")), "weight_decay must be"),
    (optimizers.Adagrad, dict(initial_accumulator_value=-0.1),
     "initial_accumulator_value must be"),
]


@pytest.mark.parametrize("cls,kwargs,match", BAD_SETTINGS,
                         ids=[f"{c.__name__}-{next(iter(k))}={next(iter(k.values()))!r}"
                              for c, k, _ in BAD_SETTINGS])
def test_a_setting_outside_its_range_is_a_value_error_naming_it(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_keras_compatible_settings_still_construct():
    assert optimizers.SGD(momentum=0.0).momentum == 0.0
    assert optimizers.SGD(0.0).learning_rate == 0.0      # gradients without training
    assert optimizers.RMSprop(momentum=0.0, centered=True).momentum == 0.0
    assert optimizers.Adam(beta_1=0.0, beta_2=np.float32(0.5), epsilon=1e-12).beta_2 == 0.5
    assert optimizers.Adam(learning_rate=np.float64(1e3)).learning_rate == 1e3
    assert optimizers.SGD(clipnorm=1).clipnorm == 1.0
    schedule = optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    assert optimizers.Adam(learning_rate=schedule).learning_rate is schedule
    assert callable(optimizers.SGD(learning_rate=lambda step: 0.1).learning_rate)


def test_the_settable_learning_rate_and_step_count_follow_the_same_rules():
    opt = optimizers.SGD()
    for bad in (float("inf"), 1e4, -1.0):
        with pytest.raises(ValueError, match="learning_rate must be"):
            opt.learning_rate = bad
    opt.iterations = 2 ** 62 - 1
    for bad in (2 ** 62, -1, 1.0, 10 ** 300, "3"):
        with pytest.raises(ValueError, match=r"SGD: iterations must be an integer in \[0, 2"):
            opt.iterations = bad
    assert opt.iterations == 2 ** 62 - 1
    opt.iterations = np.int64(7)
    assert opt.iterations == 7 and type(opt.iterations) is int


def test_an_error_quotes_a_huge_value_briefly():
    with pytest.raises(ValueError, match="an integer of 997 bits") as info:
        optimizers.Adam().iterations = 10 ** 300
    assert len(str(info.value)) < 200


def test_a_schedule_value_outside_the_range_stops_the_step(ops):
    """A callable learning rate is checked at each step it is used: NaN or a
    runaway value is a ValueError naming the step, and the weights keep their
    last values."""
    opt = optimizers.SGD(learning_rate=lambda step: [0.1, float("nan")][step])
    p = P0.copy()
    opt.build(p.size, p.dtype)
    opt.apply(ops, p, G.copy(), [(0, 4)], [(0, 4)])
    before = p.copy()
    with pytest.raises(ValueError, match="SGD at step 1: scheduled learning rate must be"):
        opt.apply(ops, p, G.copy(), [(0, 4)], [(0, 4)])
    np.testing.assert_array_equal(p, before)
