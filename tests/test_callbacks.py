"""Callbacks: each one's behaviour on scripted metric sequences (a callback
earlier in the list writes the monitored value into the shared logs, so the
real fit loop drives the callback under test), the progress output on fake
terminal / log-file streams, and the hooks' order in fit, evaluate, predict."""
import csv
import io
import os
import sys

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers, models, optimizers


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y = (x @ rng.standard_normal(5)).astype(np.float32)
    return x, y


def small_model(optimizer=None, metrics=("mae",)):
    fastnn.set_seed(0)
    model = models.Sequential([layers.Dense(4, activation="tanh", input_shape=(5,)),
                               layers.Dense(1)])
    model.compile(optimizer=optimizer or optimizers.SGD(0.01), loss="mse", metrics=list(metrics))
    return model


class Script(callbacks.Callback):
    """Writes ``values[epoch]`` as ``key`` into the epoch logs (placed before the
    callback under test, which then reads it from the same dict)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class WeightsPerEpoch(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def fit_scripted(model, key, values, *cbs, **kwargs):
    x, y = data()
    kwargs.setdefault("epochs", len(values))
    return model.fit(x, y, batch_size=10, verbose=0,
                     callbacks=[Script(key, values), *cbs], **kwargs)


# ---- EarlyStopping -----------------------------------------------------------
@pytest.mark.parametrize("values, kwargs, epochs_run", [
    ([1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.6], {"patience": 2}, 4),     # stops at epoch index 3
    ([1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.6], {"patience": 0}, 3),
    ([1.0, 0.8, 0.7, 0.6, 0.5], {"patience": 1}, 5),                 # always improving
    ([1.0, 0.95, 0.92, 0.5], {"patience": 1, "min_delta": 0.1}, 2),     # 0.05 is no improvement
    ([1.0, 1.1, 1.2, 1.3, 0.1], {"patience": 1, "start_from_epoch": 2}, 4),
    ([1.0, 1.1, 1.2, 1.3, 0.1], {"patience": 1}, 2),
])
def test_early_stopping_stops_at_the_right_epoch(values, kwargs, epochs_run):
    stopper = callbacks.EarlyStopping(monitor="val_loss", **kwargs)
    history = fit_scripted(small_model(), "val_loss", values, stopper)
    assert len(history.history["loss"]) == epochs_run
    assert history.history["val_loss"] == values[:epochs_run]
    if epochs_run < len(values):
        assert stopper.stopped_epoch == epochs_run - 1


def test_early_stopping_restores_the_best_epochs_weights():
    values = [1.0, 0.5, 0.7, 0.8, 0.9, 0.95]
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    seen = WeightsPerEpoch()
    model = small_model()
    history = fit_scripted(model, "val_loss", values, seen, stopper)
    assert len(history.history["loss"]) == 4 and stopper.best_epoch == 1
    for best, now in zip(seen.weights[1], model.get_weights()):
        np.testing.assert_array_equal(best, now)
    assert not np.array_equal(seen.weights[-1][0], model.get_weights()[0])


def test_early_stopping_restores_best_weights_even_without_stopping():
    seen = WeightsPerEpoch()
    model = small_model()
    fit_scripted(model, "val_loss", [0.5, 0.9, 0.8],
                 seen, callbacks.EarlyStopping(patience=5, restore_best_weights=True))
    np.testing.assert_array_equal(seen.weights[0][0], model.get_weights()[0])


def test_early_stopping_without_restore_keeps_the_last_weights():
    seen = WeightsPerEpoch()
    model = small_model()
    fit_scripted(model, "val_loss", [0.5, 0.9, 0.8], seen, callbacks.EarlyStopping(patience=1))
    np.testing.assert_array_equal(seen.weights[1][0], model.get_weights()[0])


def test_early_stopping_baseline():
    values = [0.9, 0.95, 0.97, 0.99]
    # never below the baseline: the first epoch does not reset the count
    with_baseline = fit_scripted(small_model(), "val_loss", values,
                                 callbacks.EarlyStopping(patience=2, baseline=0.5))
    without = fit_scripted(small_model(), "val_loss", values, callbacks.EarlyStopping(patience=2))
    assert len(with_baseline.history["loss"]) == 2
    assert len(without.history["loss"]) == 3
    # beating the baseline behaves as without one
    beaten = fit_scripted(small_model(), "val_loss", [0.4, 0.45, 0.46, 0.47],
                          callbacks.EarlyStopping(patience=2, baseline=0.5))
    assert len(beaten.history["loss"]) == 3


def test_early_stopping_mode_max_and_auto_direction_for_accuracy():
    values = [0.5, 0.6, 0.55, 0.58, 0.9]
    for stopper in (callbacks.EarlyStopping(monitor="val_acc", mode="max", patience=1),
                    callbacks.EarlyStopping(monitor="val_accuracy", patience=1)):
        history = fit_scripted(small_model(), stopper.monitor, values, stopper)
        assert len(history.history["loss"]) == 3
    # in min mode the same sequence stops after the second epoch
    history = fit_scripted(small_model(), "val_acc", values,
                           callbacks.EarlyStopping(monitor="val_acc", mode="min", patience=0))
    assert len(history.history["loss"]) == 2


def test_early_stopping_on_a_real_validation_loss():
    x, y = data(60)
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=1)
    model = small_model(optimizers.SGD(0.0))       # nothing changes: no epoch improves
    history = model.fit(x, y, epochs=10, batch_size=20, validation_split=0.25, verbose=0,
                        callbacks=[stopper])
    assert len(history.history["val_loss"]) == 2 and model.stop_training


def test_monitored_key_missing_warns_and_skips():
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="val_loss.*not available.*loss"):
        history = fit_scripted(small_model(), "other", [1.0, 2.0, 3.0], stopper)
    assert len(history.history["loss"]) == 3


def test_auto_mode_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="mode='max'"):
        fit_scripted(small_model(), "val_score", [1.0, 2.0],
                     callbacks.EarlyStopping(monitor="val_score"))
    with pytest.warns(UserWarning, match="unknown"):
        callbacks.EarlyStopping(mode="largest")


# ---- ModelCheckpoint (against a recording model) -------------------------------
class SavingModel:
    """Stands in for a model whose save/save_weights write a marker file."""

    def __init__(self):
        self.saved = []
        self.stop_training = False

    def save(self, path):
        self._write(path, "model")

    def save_weights(self, path):
        self._write(path, "weights")

    def _write(self, path, what):
        with open(path, "w") as f:
            f.write(what)
        self.saved.append((what, os.path.basename(path)))


def drive_epochs(cb, model, logs_per_epoch, steps=0):
    """Run ``cb``'s hooks as fit would, with the given logs per epoch."""
    cb.set_model(model)
    cb.set_params({"epochs": len(logs_per_epoch), "steps": steps, "verbose": 0})
    cb.on_train_begin()
    for epoch, logs in enumerate(logs_per_epoch):
        cb.on_epoch_begin(epoch)
        for batch in range(steps):
            cb.on_train_batch_begin(batch)
            cb.on_train_batch_end(batch, {"loss": 1.0})
        cb.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    cb.on_train_end()


def test_checkpoint_every_epoch_formats_names_from_epoch_and_logs(tmp_path):
    model = SavingModel()
    template = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.fnn")
    drive_epochs(callbacks.ModelCheckpoint(template), model,
                 [{"val_loss": 1.0}, {"val_loss": 1.234}, {"val_loss": 0.5}])
    assert model.saved == [("model", "ckpt-01-1.00.fnn"), ("model", "ckpt-02-1.23.fnn"),
                           ("model", "ckpt-03-0.50.fnn")]
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01-1.00.fnn", "ckpt-02-1.23.fnn",
                                            "ckpt-03-0.50.fnn"]


def test_checkpoint_save_best_only_writes_only_on_improvement(tmp_path):
    model = SavingModel()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "best-{epoch}.fnn"), save_best_only=True)
    drive_epochs(cb, model, [{"val_loss": v} for v in (1.0, 1.2, 0.8, 0.8, 0.9, 0.3)])
    assert [name for _, name in model.saved] == ["best-1.fnn", "best-3.fnn", "best-6.fnn"]
    assert cb.best == 0.3


def test_checkpoint_mode_max_weights_only_and_threshold(tmp_path):
    model = SavingModel()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "w.weights"), monitor="val_accuracy",
                                   save_best_only=True, save_weights_only=True,
                                   initial_value_threshold=0.6)
    drive_epochs(cb, model, [{"val_accuracy": v} for v in (0.5, 0.7, 0.65, 0.9)])
    assert model.saved == [("weights", "w.weights")] * 2


def test_checkpoint_every_n_batches_and_subfolders(tmp_path):
    model = SavingModel()
    cb = callbacks.ModelCheckpoint(str(tmp_path / "sub" / "e{epoch}-b{batch}.fnn"), save_freq=3)
    drive_epochs(cb, model, [{}, {}], steps=4)
    assert [name for _, name in model.saved] == ["e1-b3.fnn", "e2-b2.fnn"]


def test_checkpoint_bad_arguments_and_missing_fields(tmp_path):
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.ModelCheckpoint("x.fnn", save_freq="batch")
    with pytest.raises(KeyError, match="val_acc"):
        drive_epochs(callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.fnn")), SavingModel(),
                     [{"val_loss": 1.0}])
    model = SavingModel()
    with pytest.warns(UserWarning, match="val_loss"):
        drive_epochs(callbacks.ModelCheckpoint(str(tmp_path / "m.fnn"), save_best_only=True),
                     model, [{"loss": 1.0}])
    assert model.saved == []


def test_checkpoint_with_a_real_model_round_trips(tmp_path):
    x, y = data()
    model = small_model()
    path = str(tmp_path / "m-{epoch}.fnn")
    model.fit(x, y, epochs=2, batch_size=10, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(path, monitor="loss")])
    loaded = models.load_model(str(tmp_path / "m-2.fnn"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_checkpoint_best_weights_of_a_real_model(tmp_path):
    path = str(tmp_path / "best.weights")
    seen = WeightsPerEpoch()
    fit_scripted(small_model(), "val_loss", [1.0, 0.5, 0.7, 0.9], seen,
                 callbacks.ModelCheckpoint(path, save_best_only=True, save_weights_only=True))
    fresh = small_model()
    fresh.load_weights(path)
    for best, loaded in zip(seen.weights[1], fresh.get_weights()):
        np.testing.assert_array_equal(best, loaded)


# ---- ReduceLROnPlateau / LearningRateScheduler ----------------------------------
def test_reduce_lr_on_plateau_reduces_and_respects_min_lr():
    model = small_model(optimizers.SGD(0.1))
    reducer = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2,
                                          min_lr=0.03)
    history = fit_scripted(model, "val_loss", [1.0] * 8, reducer)
    # logged at each epoch's end, before that epoch's reduction
    assert history.history["learning_rate"] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03])
    assert model.optimizer.learning_rate == 0.03


def test_reduce_lr_on_plateau_cooldown_and_improvement_resets():
    model = small_model(optimizers.SGD(0.1))
    reducer = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1,
                                          cooldown=2)
    history = fit_scripted(model, "val_loss", [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5], reducer)
    # Keras' counting: reduce at epoch 1; the cooldown counter runs out during
    # epoch 3, which counts again -> reduce; epoch 4 cools down, epoch 5
    # improves, epoch 6 does not -> reduce
    assert history.history["learning_rate"] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001])
    assert model.optimizer.learning_rate == pytest.approx(1e-4)


def test_reduce_lr_on_plateau_min_delta():
    model = small_model(optimizers.SGD(0.1))
    fit_scripted(model, "val_loss", [1.0, 0.99995, 0.9999],
                 callbacks.ReduceLROnPlateau(factor=0.5, patience=2))
    assert model.optimizer.learning_rate == 0.05       # steps below 1e-4 are no improvement


def test_reduce_lr_on_plateau_refuses_a_schedule_and_bad_factor():
    schedule = optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(TypeError, match="schedule.*not settable"):
        fit_scripted(small_model(optimizers.SGD(schedule)), "val_loss", [1.0, 1.0],
                     callbacks.ReduceLROnPlateau())
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    seen = []

    class Peek(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                seen.append(self.model.optimizer.current_learning_rate())

    model = small_model(optimizers.SGD(0.2))
    x, y = data()
    history = model.fit(x, y, epochs=3, batch_size=10, verbose=0,
                        callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
                                   Peek()])
    assert seen == pytest.approx([0.1, 0.05, 0.025])        # used by the epoch's steps
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])


def test_learning_rate_scheduler_one_argument_and_bad_outputs():
    model = small_model(optimizers.SGD(0.2))
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))])
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    with pytest.raises(ValueError, match="should be a float"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: "fast")])
    with pytest.raises(ValueError, match="learning_rate"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: -1.0)])
    scheduled = small_model(optimizers.SGD(optimizers.schedules.CosineDecay(0.1, 10)))
    with pytest.raises(TypeError, match="not settable"):
        scheduled.fit(x, y, epochs=1, verbose=0,
                      callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: 0.1)])


# ---- TerminateOnNaN ----------------------------------------------------------
def overflowing_model():
    # hidden units all tanh(1) > 0, output weights near float32's max: the first
    # batch's outputs overflow to inf, so its loss is not finite
    model = small_model()
    k1, b1, k2, b2 = model.get_weights()
    big = np.float32(3e38)
    model.set_weights([np.zeros_like(k1), np.ones_like(b1), np.full_like(k2, big),
                       np.full_like(b2, big)])
    return model


def test_terminate_on_nan_stops_after_the_bad_batch_when_fit_does_not_raise():
    batches = []

    class Count(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    x, y = data()
    model = overflowing_model()
    with np.errstate(all="ignore"):
        history = model.fit(x, y, epochs=3, batch_size=10, verbose=0, stop_on_nan=False,
                            callbacks=[callbacks.TerminateOnNaN(), Count()])
    assert batches == [0] and model.stop_training
    assert len(history.history["loss"]) == 1 and not np.isfinite(history.history["loss"][0])


def test_fit_raises_before_terminate_on_nan_by_default():
    x, y = data()
    model = overflowing_model()
    before = model.get_weights()
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        model.fit(x, y, epochs=3, batch_size=10, verbose=0,
                  callbacks=[callbacks.TerminateOnNaN()])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_terminate_on_nan_ignores_finite_losses():
    cb = callbacks.TerminateOnNaN()
    cb.set_model(SavingModel())
    cb.on_train_batch_end(0, {"loss": 1e30})
    assert not cb.model.stop_training
    cb.on_train_batch_end(1, {"loss": float("inf")})
    assert cb.model.stop_training


# ---- CSVLogger ---------------------------------------------------------------
def read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_header_rows_and_flush_each_epoch(tmp_path):
    path = tmp_path / "log.csv"
    rows_seen = []

    class ReadBack(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rows_seen.append(len(read_csv(path)))

    x, y = data(50)
    history = small_model().fit(x, y, epochs=3, batch_size=10, validation_split=0.2, verbose=0,
                                callbacks=[callbacks.CSVLogger(path), ReadBack()])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for i, row in enumerate(rows[1:]):
        for key, cell in zip(rows[0][1:], row[1:]):
            assert float(cell) == pytest.approx(history.history[key][i], rel=1e-12)
    assert rows_seen == [2, 3, 4]          # header + each row on disk at its epoch's end


def test_csv_logger_append_and_overwrite_and_separator(tmp_path):
    path = str(tmp_path / "log.csv")
    x, y = data()
    model = small_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path, separator=";")])
    model.fit(x, y, epochs=3, verbose=0,
              callbacks=[callbacks.CSVLogger(path, separator=";", append=True)])
    rows = read_csv(path, ";")
    assert rows[0] == ["epoch", "loss", "mae"] and len(rows) == 1 + 2 + 3
    assert [r[0] for r in rows[1:]] == ["0", "1", "0", "1", "2"]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    assert len(read_csv(path)) == 2


def test_csv_logger_marks_keys_missing_later(tmp_path):
    path = str(tmp_path / "log.csv")
    cb = callbacks.CSVLogger(path)
    drive_epochs(cb, SavingModel(), [{"loss": 1.0, "extra": 2.0}, {"loss": 0.5}])
    assert read_csv(path) == [["epoch", "extra", "loss"], ["0", "2.0", "1.0"],
                              ["1", "NA", "0.5"]]


# ---- progress output -----------------------------------------------------------
class LogFile(io.StringIO):
    def isatty(self):
        return False


class Terminal(io.StringIO):
    def isatty(self):
        return True


class NotebookStream(io.StringIO):
    """Looks like ipykernel's OutStream: not a TTY, yet redraws '\\r' in place."""


NotebookStream.__module__ = "ipykernel.iostream"


@pytest.mark.parametrize("verbose", [1, 2, "auto"])
def test_progress_to_a_log_file_is_one_line_per_epoch(monkeypatch, verbose):
    stream = LogFile()
    monkeypatch.setattr(sys, "stdout", stream)
    x, y = data(50)
    small_model().fit(x, y, epochs=3, batch_size=5, validation_split=0.2, verbose=verbose)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 3 and text.endswith("\n")
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3") and "8/8" in line
        assert "loss: " in line and "mae: " in line and "val_loss: " in line and "val_mae" in line


def test_verbose_zero_is_silent(monkeypatch):
    stream = LogFile()
    monkeypatch.setattr(sys, "stdout", stream)
    x, y = data()
    small_model().fit(x, y, epochs=2, verbose=0)
    assert stream.getvalue() == ""


@pytest.mark.parametrize("stream_type", [Terminal, NotebookStream])
def test_progress_on_a_terminal_redraws_in_place(monkeypatch, stream_type):
    stream = stream_type()
    monkeypatch.setattr(sys, "stdout", stream)
    x, y = data(50)
    small_model().fit(x, y, epochs=2, batch_size=5, validation_split=0.2, verbose=1)
    text = stream.getvalue()
    assert text.startswith("Epoch 1/2\n") and "Epoch 2/2\n" in text
    assert text.count("\r") >= 2 * 2           # at least one redraw and the final line per epoch
    finals = [chunk.split("\r")[-1] for chunk in text.split("\n")[:-1] if "\r" in chunk]
    assert len(finals) == 2
    for line in finals:
        assert line.startswith("8/8 [" + "=" * 30 + "]") and "val_loss: " in line


def test_progress_redraw_is_throttled_and_pads_shorter_lines():
    stream = Terminal()
    bar = callbacks.ProgbarLogger(verbose=1, stream=stream, interval=0)
    bar.set_params({"epochs": 1, "steps": 4, "verbose": 1})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    for batch, loss in enumerate([123.5, 1.0, float("nan"), 0.5]):
        bar.on_train_batch_end(batch, {"loss": loss})
    draws = stream.getvalue().split("\r")[1:]
    assert len(draws) == 4
    assert draws[0].startswith("1/4 [=======>......................] - ETA:")
    assert "loss: 123.5000" in draws[0] and "loss: nan" in draws[2]
    assert len(draws[1]) >= len(draws[0])       # padded over the longer previous line
    slow = callbacks.ProgbarLogger(verbose=1, stream=Terminal(), interval=3600)
    slow.set_params({"epochs": 1, "steps": 50, "verbose": 1})
    slow.on_train_begin()
    slow.on_epoch_begin(0)
    for batch in range(50):
        slow.on_train_batch_end(batch, {"loss": 1.0})
    assert slow.stream.getvalue().count("\r") == 1


def test_progress_on_a_log_file_asks_for_no_per_batch_logs(monkeypatch):
    from fastnn import trainer
    calls = []
    original = trainer.Run.logs

    def counting(*args):
        calls.append(1)
        return original(*args)
    monkeypatch.setattr(trainer.Run, "logs", counting)

    x, y = data(40)
    monkeypatch.setattr(sys, "stdout", LogFile())
    model = small_model()
    model.fit(x, y, epochs=2, batch_size=5, verbose=1)
    assert len(calls) == 2                      # one per epoch, none per batch
    monkeypatch.setattr(sys, "stdout", Terminal())
    calls.clear()
    model.fit(x, y, epochs=2, batch_size=5, verbose=1)
    assert len(calls) == 2 * (8 + 1)
    assert not callbacks.CallbackList([callbacks.ProgbarLogger(2, stream=Terminal())],
                                      model, {}).wants_batch_hooks


# ---- hooks and their order -----------------------------------------------------
class Recorder(callbacks.Callback):
    HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
             "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
             "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
             "on_predict_batch_begin", "on_predict_batch_end")

    def __init__(self):
        super().__init__()
        self.events = []
        self.logs = []
        for hook in self.HOOKS:
            setattr(self, hook, self._recording(hook))

    def _recording(self, hook):
        short = hook[3:]
        if hook.endswith(("_begin", "_end")) and ("epoch" in hook or "batch" in hook):
            def record(index, logs=None):
                self.events.append(f"{short}{index}")
                self.logs.append((short, logs))
        else:
            def record(logs=None):
                self.events.append(short)
                self.logs.append((short, logs))
        return record


def test_hooks_order_in_fit_with_validation():
    rec = Recorder()
    x, y = data(30)
    small_model().fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[rec],
                      validation_data=(x[:15], y[:15]))
    epoch = lambda e: ([f"epoch_begin{e}"]
                       + [f"train_batch_{w}{b}" for b in range(3) for w in ("begin", "end")]
                       + ["test_begin"]
                       + [f"test_batch_{w}{b}" for b in range(2) for w in ("begin", "end")]
                       + ["test_end", f"epoch_end{e}"])
    assert rec.events == ["train_begin"] + epoch(0) + epoch(1) + ["train_end"]
    test_end = next(logs for name, logs in rec.logs if name == "test_end")
    epoch_end = next(logs for name, logs in rec.logs if name == "epoch_end")
    assert set(test_end) == {"loss", "mae"}
    assert test_end["loss"] == epoch_end["val_loss"]


def test_hooks_order_in_evaluate_and_predict():
    rec = Recorder()
    x, y = data(25)
    model = small_model()
    loss, mae = model.evaluate(x, y, batch_size=10, verbose=0, callbacks=[rec])
    assert rec.events == ["test_begin", "test_batch_begin0", "test_batch_end0",
                          "test_batch_begin1", "test_batch_end1", "test_batch_begin2",
                          "test_batch_end2", "test_end"]
    assert rec.logs[-1][1] == {"loss": loss, "mae": mae}
    rec.events.clear()
    rec.logs.clear()
    out = model.predict(x, batch_size=10, callbacks=[rec])
    assert rec.events == ["predict_begin", "predict_batch_begin0", "predict_batch_end0",
                          "predict_batch_begin1", "predict_batch_end1",
                          "predict_batch_begin2", "predict_batch_end2", "predict_end"]
    batch_outputs = [logs["outputs"] for name, logs in rec.logs if name == "predict_batch_end"]
    np.testing.assert_array_equal(np.concatenate(batch_outputs), out)


def test_batch_alias_hooks_and_logs_added_by_callbacks_reach_history():
    ends = []

    class Alias(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            ends.append((batch, sorted(logs)))

    history = fit_scripted(small_model(), "extra", [1.0, 2.0], Alias())
    assert history.history["extra"] == [1.0, 2.0]       # History runs after user callbacks
    assert ends[:2] == [(0, ["loss", "mae"]), (1, ["loss", "mae"])]


def test_stop_training_mid_epoch_ends_the_epoch():
    class StopAtBatch(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    x, y = data(40)
    history = small_model().fit(x, y, epochs=5, batch_size=10, verbose=0,
                                callbacks=[StopAtBatch()])
    assert len(history.history["loss"]) == 1


def test_user_history_and_progbar_are_used_not_duplicated():
    history = callbacks.History()
    stream = LogFile()
    x, y = data()
    returned = small_model().fit(x, y, epochs=2, verbose=1,
                                 callbacks=[history, callbacks.ProgbarLogger(stream=stream)])
    assert returned is history and len(history.history["loss"]) == 2
    assert len(stream.getvalue().splitlines()) == 2


def test_callbacks_must_be_callback_instances():
    x, y = data()
    with pytest.raises(TypeError, match="Callback instances"):
        small_model().fit(x, y, epochs=1, verbose=0, callbacks=[lambda: None])


def test_history_plot_draws_every_curve(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    history = callbacks.History()
    history.on_train_begin()
    for epoch, (loss, mae) in enumerate([(1.0, 0.8), (0.5, 0.6), (0.25, 0.4)]):
        history.on_epoch_end(epoch, {"loss": loss, "mae": mae, "val_loss": loss * 1.1})
    path = tmp_path / "history.png"
    fig = history.plot(path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "mae"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "validation"]
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [1.0, 0.5, 0.25])
    with pytest.raises(ValueError, match="nothing recorded"):
        callbacks.History().plot()


def test_history_plot_names_the_extra_without_matplotlib(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"fastnn\[plot\]"):
        callbacks.History().plot()
