"""Each model draws from a random generator of its own.

A model takes its generator from fastnn's (``fastnn.set_seed``) when it is
created, and draws everything random it does from it: the initial weights of
layers it builds, fit's shuffles, dropout masks (in fit, train_on_batch and
``model(x, training=True)``). So models created in a fixed order after
``set_seed`` give the same results whether they are fitted one after the
other, in the other order, or at the same time from two threads; and a saved
model carries its generator, so training resumed from the file continues
the stream whatever else the process drew meanwhile.
"""
import json
import threading
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers, models, optimizers


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 6)).astype(np.float32)
    y = (x[:, :2].sum(axis=1, keepdims=True) > 0).astype(np.float32)
    return x, y


def two_models():
    """A Sequential model that builds its layers at its first fit (in the thread
    that fits it) and a graph model built now; both drop out."""
    lazy = models.Sequential([layers.Dense(16, activation="relu"), layers.Dropout(0.5),
                              layers.Dense(1)])
    inputs = fastnn.Input((6,))
    hidden = layers.Dropout(0.3)(layers.Dense(12, activation="tanh")(inputs))
    graph = models.Model(inputs, layers.Dense(1)(hidden))
    for model in (lazy, graph):
        model.compile(optimizer=optimizers.SGD(0.05), loss="mse")
    return [lazy, graph]


def fit(model, extra_callbacks=()):
    x, y = data()
    model.fit(x, y, epochs=3, batch_size=8, shuffle=True, verbose=0,
              callbacks=list(extra_callbacks))
    return model.get_weights()


def assert_same(results, expected):
    for got, want in zip(results, expected):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def fitted_one_after_the_other(seed, order=(0, 1)):
    fastnn.set_seed(seed)
    pair = two_models()
    results = [None, None]
    for k in order:
        results[k] = fit(pair[k])
    return results


class TakeTurns(callbacks.Callback):
    """Makes two fits alternate, one training step each (``first`` starts), so
    their random draws interleave in a known order."""

    def __init__(self, me, turns):
        super().__init__()
        self.me, self.turns = me, turns

    def on_train_begin(self, logs=None):
        self.turns.wait_for(self.me)

    def on_train_batch_end(self, batch, logs=None):
        self.turns.pass_on(self.me)
        self.turns.wait_for(self.me)

    def on_train_end(self, logs=None):
        self.turns.finish(self.me)


class Turns:
    def __init__(self, first):
        self.condition = threading.Condition()
        self.turn, self.finished = first, set()

    def wait_for(self, me):
        with self.condition:
            if not self.condition.wait_for(
                    lambda: self.turn == me or (1 - me) in self.finished, timeout=60):
                raise TimeoutError("the other fit never passed its turn on")

    def pass_on(self, me):
        with self.condition:
            self.turn = 1 - me
            self.condition.notify_all()

    def finish(self, me):
        with self.condition:
            self.finished.add(me)
            self.turn = 1 - me
            self.condition.notify_all()


def fitted_in_two_threads(seed, first, lockstep):
    """Both models fitted at the same time, thread ``first`` started first:
    in lockstep (alternating steps) or free-running from a common start."""
    fastnn.set_seed(seed)
    pair = two_models()
    results, errors = [None, None], []
    turns, start = Turns(first), threading.Barrier(2)

    def work(k):
        try:
            start.wait(timeout=60)
            results[k] = fit(pair[k], [TakeTurns(k, turns)] if lockstep else [])
        except BaseException as error:     # reported by the main thread
            errors.append(error)
            turns.finish(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in (first, 1 - first)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert all(r is not None for r in results)
    return results


def test_a_model_draws_the_same_whatever_other_models_draw_before_it():
    assert_same(fitted_one_after_the_other(5, order=(1, 0)),
                fitted_one_after_the_other(5, order=(0, 1)))


@pytest.mark.parametrize("first", [0, 1])
def test_fits_interleaved_step_by_step_in_two_threads_equal_sequential_fits(first):
    expected = fitted_one_after_the_other(5)
    assert_same(fitted_in_two_threads(5, first, lockstep=True), expected)


def test_concurrent_fits_are_reproducible_run_after_run():
    expected = fitted_one_after_the_other(6)
    for run in range(4):
        assert_same(fitted_in_two_threads(6, first=run % 2, lockstep=False), expected)


class Pause(callbacks.Callback):
    """Stops the fit after its third step until the main thread lets it go on."""

    def __init__(self):
        super().__init__()
        self.paused, self.resume = threading.Event(), threading.Event()

    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            self.paused.set()
            if not self.resume.wait(timeout=60):
                raise TimeoutError("the main thread never resumed the fit")


def test_set_seed_in_another_thread_does_not_move_a_running_fit():
    expected = fitted_one_after_the_other(3)
    fastnn.set_seed(3)
    pair = two_models()
    pause, results, errors = Pause(), [None, None], []

    def work():
        try:
            results[0] = fit(pair[0], [pause])
        except BaseException as error:      # reported by the main thread
            errors.append(error)
            pause.paused.set()

    thread = threading.Thread(target=work)
    thread.start()
    assert pause.paused.wait(timeout=60)
    fastnn.set_seed(99)                     # mid-fit, from another thread
    pause.resume.set()
    thread.join(timeout=120)
    assert not errors, errors
    assert_same(results[:1], expected[:1])


def test_set_seed_makes_a_single_thread_run_reproducible():
    first = fitted_one_after_the_other(7)
    assert_same(fitted_one_after_the_other(7), first)
    other = fitted_one_after_the_other(8)
    assert not np.array_equal(other[0][0], first[0][0])


def test_a_model_built_right_after_set_seed_starts_from_the_seeded_stream():
    # A model's generator continues fastnn's where the model takes it, so one
    # model built after set_seed draws exactly what fastnn's generator gives.
    fastnn.set_seed(3)
    model = models.Sequential([fastnn.Input((4,)),
                               layers.Dense(3, kernel_initializer="random_uniform")])
    expected = np.random.default_rng(3).uniform(-0.05, 0.05, (4, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.get_weights()[0], expected)


def test_set_seed_before_fit_restarts_the_models_stream():
    x, y = data()
    fastnn.set_seed(1)
    a, b = two_models()[1], two_models()[1]
    a.fit(x, y, epochs=1, batch_size=8, verbose=0)        # a draws; b does not
    b.set_weights(a.get_weights())
    results = []
    for model in (a, b):
        fastnn.set_seed(9)
        results.append(fit(model))
    assert_same([results[1]], [results[0]])


def test_dropout_in_a_training_call_draws_from_the_models_stream():
    x = np.ones((4, 6), np.float32)

    def outputs(order):
        fastnn.set_seed(2)
        pair = two_models()
        pair[0].build((None, 6))
        got = [None, None]
        for k in order:
            got[k] = np.asarray(pair[k](x, training=True))
        return got

    assert_same([outputs((1, 0))], [outputs((0, 1))])


def test_a_loaded_model_continues_its_stream_whatever_was_drawn_meanwhile(tmp_path):
    def make():
        fastnn.set_seed(4)
        return two_models()[1]

    straight, resumed, other = make(), make(), two_models()[0]
    x, y = data()
    fastnn.set_seed(5)
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0)
    fastnn.set_seed(5)
    resumed.fit(x, y, epochs=1, batch_size=8, verbose=0)
    resumed.save(tmp_path / "m.fnn")
    fit(other)                                  # draws in between, from another model
    resumed = models.load_model(tmp_path / "m.fnn")
    resumed.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert_same([resumed.get_weights()], [straight.get_weights()])


def with_random_state(tmp_path, value):
    """A copy of a saved model whose model.json holds ``value`` as its random state."""
    fastnn.set_seed(0)
    source, target = tmp_path / "m.fnn", tmp_path / "tampered.fnn"
    two_models()[1].save(source)
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            raw = zin.read(info)
            if info.filename == "model.json":
                document = json.loads(raw)
                assert "random_state" in document
                document["random_state"] = value
                raw = json.dumps(document).encode()
            zout.writestr(info, raw)
    return target


@pytest.mark.parametrize("value", [
    "PCG64", [1, 2], {"bit_generator": "MT19937", "state": "0x1", "inc": "0x1"},
    {"bit_generator": "PCG64", "state": "0x1", "inc": "0x2"},
    {"bit_generator": "PCG64", "state": "-0x1", "inc": "0x1"},
    {"bit_generator": "PCG64", "state": "0x" + "f" * 33, "inc": "0x1"},
    {"bit_generator": "PCG64", "state": 1, "inc": "0x1"},
    {"bit_generator": "PCG64", "state": "0x1"},
])
def test_a_tampered_random_state_is_refused(tmp_path, value):
    with pytest.raises(ValueError, match="random_state"):
        models.load_model(with_random_state(tmp_path, value))
