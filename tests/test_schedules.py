"""Learning-rate schedules (fastnn.optimizers.schedules): Keras' formulas at
chosen steps against hand-computed values, argument checks, config round
trips, and a schedule actually driving an optimizer's steps."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import layers, models, optimizers
from fastnn.optimizers import schedules


def test_schedules_are_reachable_as_keras_names():
    import fastnn as keras
    assert keras.optimizers.schedules.ExponentialDecay is schedules.ExponentialDecay
    for name in ("LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
                 "CosineDecay"):
        assert hasattr(keras.optimizers.schedules, name)


@pytest.mark.parametrize("step, expected", [
    (0, 0.1), (5, 0.1 * 0.5 ** 0.5), (10, 0.05), (25, 0.1 * 0.5 ** 2.5), (100, 0.1 * 0.5 ** 10),
])
def test_exponential_decay_values(step, expected):
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert s(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 0.1), (9, 0.1), (10, 0.05), (19, 0.05),
                                            (20, 0.025), (35, 0.0125)])
def test_exponential_decay_staircase_values(step, expected):
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert s(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 1.0), (10, 1.0), (11, 0.5), (20, 0.5),
                                            (21, 0.1), (10_000, 0.1)])
def test_piecewise_constant_values_and_boundaries_inclusive(step, expected):
    s = schedules.PiecewiseConstantDecay(boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    assert s(step) == expected


@pytest.mark.parametrize("step, expected", [
    (0, 1.0), (25, 0.5 * (1 + math.sqrt(0.5))), (50, 0.5), (75, 0.5 * (1 - math.sqrt(0.5))),
    (100, 0.0), (400, 0.0),          # flat after decay_steps
])
def test_cosine_decay_values(step, expected):
    s = schedules.CosineDecay(1.0, decay_steps=100)
    assert s(step) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 2.0), (50, 2.0 * (0.9 * 0.5 + 0.1)),
                                            (100, 0.2), (150, 0.2)])
def test_cosine_decay_alpha_is_the_floor_fraction(step, expected):
    s = schedules.CosineDecay(2.0, decay_steps=100, alpha=0.1)
    assert s(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, expected", [
    (0, 0.0), (5, 0.5), (9, 0.9),           # linear warmup from 0 to the target
    (10, 1.0), (60, 0.5), (110, 0.0),       # then the cosine from the target
    (1000, 0.0),
])
def test_cosine_decay_with_warmup(step, expected):
    s = schedules.CosineDecay(0.0, decay_steps=100, warmup_target=1.0, warmup_steps=10)
    assert s(step) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps.*> 0"),
    (lambda: schedules.ExponentialDecay(0.1, -3, 0.5), "decay_steps.*> 0"),
    (lambda: schedules.ExponentialDecay(0.1, 10, 0.0), "decay_rate.*> 0"),
    (lambda: schedules.ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate.*>= 0"),
    (lambda: schedules.ExponentialDecay(float("nan"), 10, 0.5), "finite"),
    (lambda: schedules.ExponentialDecay("0.1", 10, 0.5), "finite number"),
    (lambda: schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5]), "1 less than"),
    (lambda: schedules.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]), "increasing"),
    (lambda: schedules.PiecewiseConstantDecay([10], [1.0, -0.5]), "values.*>= 0"),
    (lambda: schedules.CosineDecay(0.1, 0), "decay_steps.*> 0"),
    (lambda: schedules.CosineDecay(0.1, 10, alpha=1.5), r"alpha.*\[0, 1\]"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_target=1.0, warmup_steps=-1), "warmup_steps"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_target=float("inf")), "warmup_target"),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("schedule", [
    schedules.ExponentialDecay(0.1, 7, 0.9, staircase=True),
    schedules.PiecewiseConstantDecay([3, 8], [0.3, 0.2, 0.1]),
    schedules.CosineDecay(0.01, 50, alpha=0.05, warmup_target=0.1, warmup_steps=5),
])
def test_config_round_trip(schedule):
    again = type(schedule).from_config(schedule.get_config())
    same = schedules.deserialize(schedules.serialize(schedule))
    for step in (0, 3, 4, 9, 40, 100):
        assert again(step) == schedule(step) == same(step)


def test_deserialize_refuses_unknown_classes():
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        schedules.deserialize({"class_name": "os.system", "config": {}})
    with pytest.raises(ValueError, match="class_name"):
        schedules.deserialize("ExponentialDecay")


def test_base_class_requires_call_and_config():
    with pytest.raises(NotImplementedError):
        schedules.LearningRateSchedule()(0)

    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1 * 0.5 ** step

    assert Halving()(2) == 0.025
    with pytest.raises(NotImplementedError):
        Halving().get_config()


def _tiny_model(optimizer):
    fastnn.set_seed(3)
    model = models.Sequential([layers.Dense(3, activation="tanh", input_shape=(4,)),
                               layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("make_optimizer", [
    lambda lr: optimizers.SGD(lr, momentum=0.9), lambda lr: optimizers.Adam(lr),
    lambda lr: optimizers.RMSprop(lr), lambda lr: optimizers.Adagrad(lr),
])
def test_optimizer_steps_with_the_schedule_value_at_each_iteration(make_optimizer):
    schedule = schedules.PiecewiseConstantDecay([1, 3], [0.05, 0.01, 0.001])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    scheduled = _tiny_model(make_optimizer(schedule))
    manual = _tiny_model(make_optimizer(1.0))
    for step in range(5):
        assert scheduled.optimizer.current_learning_rate() == schedule(step)
        manual.optimizer.learning_rate = schedule(step)   # what the schedule should have used
        scheduled.train_on_batch(x, y)
        manual.train_on_batch(x, y)
        for a, b in zip(scheduled.get_weights(), manual.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert scheduled.optimizer.iterations == 5


def test_keras_import_path():
    from fastnn.optimizers.schedules import ExponentialDecay
    assert ExponentialDecay is fastnn.optimizers.schedules.ExponentialDecay


@pytest.mark.parametrize("make, match", [
    (lambda: schedules.ExponentialDecay(2e3, 10, 0.5), "initial_learning_rate must be"),
    (lambda: schedules.PiecewiseConstantDecay([10], [0.1, 1e4]), "values must be"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_target=5e3), "warmup_target must be"),
])
def test_rates_above_the_optimizers_bound_are_refused(make, match):
    """The schedules' rates obey the optimizers' own range (<= MAX_LEARNING_RATE)."""
    with pytest.raises(ValueError, match=match + r" a finite number >= 0 and <= 1000"):
        make()


def test_a_growing_schedule_is_stopped_at_the_bound_not_at_inf():
    """decay_rate > 1 grows the rate without end: training stops with a ValueError
    at the first step past MAX_LEARNING_RATE, the weights still finite."""
    schedule = schedules.ExponentialDecay(1.0, decay_steps=1, decay_rate=10.0)
    model = _tiny_model(optimizers.SGD(schedule))
    x = np.ones((4, 4), np.float32)
    y = np.zeros((4, 1), np.float32)
    for _ in range(4):                       # rates 1, 10, 100, 1000
        model.train_on_batch(x, y)
    before = model.get_weights()
    with pytest.raises(ValueError, match="step 4: scheduled learning rate must be"):
        model.train_on_batch(x, y)
    assert model.optimizer.iterations == 4
    for a, b in zip(before, model.get_weights()):
        assert np.isfinite(b).all()
        np.testing.assert_array_equal(a, b)
