"""Callbacks: hooks the fit / evaluate / predict loops call (Keras' names).

``History`` is attached to every ``fit`` and returned by it; ``ProgbarLogger``
prints progress when ``verbose`` is on. The others are opt-in:
``EarlyStopping``, ``ModelCheckpoint``, ``ReduceLROnPlateau``,
``LearningRateScheduler``, ``TerminateOnNaN``, ``CSVLogger``.

The loops build per-batch logs only when some callback overrides a per-batch
hook (``CallbackList.wants_batch_hooks``); a callback that overrides one but
does not always need it says so in ``_implements_train_batch_hooks``.
"""
import csv
import inspect
import math
import numbers
import os
import sys
import time
import warnings


class Callback:
    """Base class: override the hooks you need.

    ``self.model`` and ``self.params`` (``epochs``, ``steps``, ``verbose``) are
    set by the loop before the first hook. Hooks that end with ``logs`` receive
    the same dict every later callback sees, so a callback may add entries
    (as ``ReduceLROnPlateau`` adds ``learning_rate``).
    """

    # True for callbacks that print or write files: in a distributed fit only
    # the chief (rank 0) runs them.
    chief_only = False

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        """Called before each training batch (by default calls ``on_batch_begin``, Keras' alias)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training batch with the epoch's running logs
        (by default calls ``on_batch_end``, Keras' alias)."""
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    # Whether the loops must call this callback's per-batch hooks. Overriding a
    # hook is the default signal; a callback that only sometimes needs them
    # (a progress bar writing to a log file) narrows it.
    def _implements_train_batch_hooks(self):
        return _overrides(self, "on_batch_begin", "on_batch_end",
                          "on_train_batch_begin", "on_train_batch_end")

    def _implements_test_batch_hooks(self):
        return _overrides(self, "on_test_batch_begin", "on_test_batch_end")

    def _implements_predict_batch_hooks(self):
        return _overrides(self, "on_predict_batch_begin", "on_predict_batch_end")


def _overrides(callback, *hooks):
    return any(getattr(type(callback), hook) is not getattr(Callback, hook)
               or hook in vars(callback) for hook in hooks)


class CallbackList:
    """Calls a list of callbacks in order, and says which per-batch hooks anyone
    reads, so the loops build per-batch logs only when needed.

    ``add_history`` / ``add_progbar`` append a ``History`` / ``ProgbarLogger``
    after the user's callbacks unless one was given (Keras' order: the user's
    callbacks may add entries to the logs before they are recorded or printed).
    ``chief=False`` (a distributed fit's other ranks) drops the callbacks whose
    ``chief_only`` is true: those that print or write files.
    """

    def __init__(self, callbacks, model, params, add_history=False, add_progbar=False,
                 chief=True):
        self.callbacks = list(callbacks or ())
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be fastnn.callbacks.Callback instances, "
                                f"got {type(cb).__name__}")
        if not chief:
            self.callbacks = [cb for cb in self.callbacks if not cb.chief_only]
            add_progbar = False
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self.wants_batch_hooks = any(cb._implements_train_batch_hooks() for cb in self.callbacks)
        self.wants_test_batch_hooks = any(cb._implements_test_batch_hooks()
                                          for cb in self.callbacks)
        self.wants_predict_batch_hooks = any(cb._implements_predict_batch_hooks()
                                             for cb in self.callbacks)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is a list per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path=None):
        """Draw the loss and each metric per epoch (validation curves beside their
        training curves), one panel each; save to ``path`` when given. Returns the
        matplotlib Figure. Needs matplotlib: ``pip install "fastnn[plot]"``."""
        try:
            import matplotlib
            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError('History.plot needs matplotlib: pip install "fastnn[plot]"') from None
        names = [key for key in self.history if not key.startswith("val_")]
        names += [key[4:] for key in self.history
                  if key.startswith("val_") and key[4:] not in self.history]
        if not names:
            raise ValueError("History.plot: nothing recorded yet (call fit first)")
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
        epochs = [e + 1 for e in self.epoch] or None
        for ax, name in zip(axes[0], names):
            for key, label in ((name, "train"), ("val_" + name, "validation")):
                values = self.history.get(key)
                if values:
                    ax.plot(epochs if epochs and len(epochs) == len(values)
                            else range(1, len(values) + 1), values, marker="o", label=label)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


# ---- progress ----------------------------------------------------------------
class ProgbarLogger(Callback):
    """Prints training progress.

    ``verbose=1``: on a terminal or in a Jupyter notebook, an ``Epoch i/n``
    header, then a progress line (bar, step count, ETA, running loss and
    metrics) redrawn in place with a carriage return at most once every
    ``interval`` seconds, then the epoch's final line with validation
    metrics. Elsewhere (a log file, a pipe) only the final line, so logs are
    not flooded, and no per-batch hook is requested. ``verbose=2``: the final
    line only. ``verbose=0``: nothing. ``verbose=None`` takes fit's value.
    """

    _BAR_WIDTH = 30
    chief_only = True

    def __init__(self, verbose=None, stream=None, interval=0.1):
        super().__init__()
        self._verbose_arg = verbose
        self.verbose = verbose
        self._stream_arg = stream
        self.interval = float(interval)
        self._epoch_start = self._last_draw = 0.0
        self._drawn = 0
        self._live_now = False

    def set_params(self, params):
        super().set_params(params)
        self.verbose = params.get("verbose", 1) if self._verbose_arg is None else self._verbose_arg
        if self.verbose == "auto":
            self.verbose = 1

    @property
    def stream(self):
        # resolved at use, so a replaced sys.stdout (a notebook, capture) is honoured
        return self._stream_arg if self._stream_arg is not None else sys.stdout

    def _live(self):
        """Whether per-batch redraws reach a display that can overwrite a line."""
        return self.verbose == 1 and _is_interactive(self.stream)

    def _implements_train_batch_hooks(self):
        return self._live()

    def on_train_begin(self, logs=None):
        self._live_now = self._live()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()
        self._last_draw = -math.inf          # the first batch always draws
        self._drawn = 0
        if self.verbose == 1 and self._live_now:
            self._write(f"Epoch {epoch + 1}/{self.params.get('epochs')}\n")

    def on_train_batch_end(self, batch, logs=None):
        if not self._live_now:
            return
        now = time.monotonic()
        if now - self._last_draw < self.interval:
            return
        self._last_draw = now
        steps = self.params.get("steps")
        done = batch + 1
        if not steps:                    # a generator's first epoch: length unknown (Keras)
            self._redraw(f"{done}/Unknown - {_format_duration(now - self._epoch_start)}"
                         f"{_format_logs(logs)}")
            return
        eta = (now - self._epoch_start) / done * max(steps - done, 0)
        self._redraw(f"{_step_count(done, steps)} {_bar(done, steps, self._BAR_WIDTH)}"
                     f" - ETA: {_format_duration(eta)}{_format_logs(logs)}")

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose not in (1, 2):
            return
        elapsed = time.monotonic() - self._epoch_start
        steps = self.params.get("steps") or 1
        timing = f"{elapsed:.0f}s {_format_step_time(elapsed / steps)}/step"
        if self._live_now:
            self._redraw(f"{_step_count(steps, steps)} {_bar(steps, steps, self._BAR_WIDTH)}"
                         f" - {timing}{_format_logs(logs)}")
            self._write("\n")
        else:
            self._write(f"Epoch {epoch + 1}/{self.params.get('epochs')} - "
                        f"{_step_count(steps, steps)} - {timing}{_format_logs(logs)}\n")

    def _redraw(self, line):
        # pad with spaces so a shorter line fully covers the previous one
        self._write("\r" + line.ljust(self._drawn))
        self._drawn = len(line)

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()


def _is_interactive(stream):
    """A terminal, or a Jupyter (ipykernel) output stream: both honour '\\r'."""
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except (ValueError, OSError):     # a closed or detached stream
        return False
    # ipykernel's OutStream reports isatty() False yet redraws '\r' in place
    return type(stream).__module__.startswith("ipykernel")


def _step_count(done, steps):
    return f"{done:>{len(str(steps))}}/{steps}"


def _bar(done, steps, width):
    filled = min(width, int(width * done / steps))
    if filled < width:
        return "[" + "=" * filled + ">" + "." * (width - filled - 1) + "]"
    return "[" + "=" * width + "]"


def _format_duration(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def _format_step_time(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


def _format_value(value):
    if not math.isfinite(value):
        return str(float(value))          # a NaN or inf loss must show, not vanish
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.4e}"


def _format_logs(logs):
    parts = [f"{key}: {_format_value(value)}" for key, value in (logs or {}).items()
             if isinstance(value, numbers.Real) and not isinstance(value, bool)]
    return (" - " + " - ".join(parts)) if parts else ""


# ---- monitoring a quantity ---------------------------------------------------
_MINIMIZED = {"loss", "mae", "mse", "mean_absolute_error", "mean_squared_error"}


def _metric_direction(name, model):
    """"max" or "min" for a metric name, from the model's compiled metrics or
    the name itself; None when neither tells."""
    for metric in getattr(model, "_metric_ids", ()) or ():
        if getattr(metric, "name", None) == name and getattr(metric, "kernel", None):
            return "max" if "accuracy" in metric.kernel else "min"
    if name in _MINIMIZED or name.endswith(("_loss", "_error")):
        return "min"
    if name in ("acc", "accuracy") or name.endswith("_accuracy"):
        return "max"
    return None


class _MonitorCallback(Callback):
    """Shared logic of callbacks that watch one quantity in the epoch logs."""

    def __init__(self, monitor, mode, min_delta=0.0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode {mode!r} is unknown, fallback to auto "
                          "mode.", stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta)
        self._direction = None

    def _guess_direction(self, name):
        """The direction when mode="auto" and the metric is unknown (Keras 3: an error)."""
        raise ValueError(
            f"{type(self).__name__} callback received monitor={self.monitor!r}, but fastnn "
            "cannot tell whether that quantity should be maximized or minimized; pass "
            "mode='max' to monitor its highest value or mode='min' for its lowest")

    def _resolve_direction(self):
        if self._direction is None:
            if self.mode != "auto":
                self._direction = self.mode
            else:
                name = self.monitor.removeprefix("val_")
                self._direction = (_metric_direction(name, self.model)
                                   or self._guess_direction(name))
        return self._direction

    def _is_improvement(self, value, reference):
        """Whether ``value`` beats ``reference`` by more than ``min_delta``."""
        if reference is None:
            return True
        if self._resolve_direction() == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def _monitored(self, logs, what):
        """The monitored value from ``logs``, or None with Keras' warning."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"{what} conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}",
                          stacklevel=3)
        return value


def _require_settable_lr(callback):
    """The optimizer whose float learning rate ``callback`` may set."""
    optimizer = getattr(callback.model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{type(callback).__name__}: the model's optimizer must have a "
                         "learning_rate attribute (compile the model first)")
    if callable(optimizer.learning_rate):
        raise TypeError(
            f"{type(callback).__name__}: this optimizer was created with a learning-rate "
            "schedule as its learning_rate, hence its learning rate is not settable. To let "
            "a callback set it, create the optimizer with a float learning_rate.")
    return optimizer


def _current_lr(model):
    optimizer = model.optimizer
    current = getattr(optimizer, "current_learning_rate", None)
    return float(current() if current is not None else optimizer.learning_rate)


# ---- EarlyStopping -----------------------------------------------------------
class EarlyStopping(_MonitorCallback):
    """Stop training when a monitored quantity has stopped improving.

    At the end of each epoch from ``start_from_epoch`` on, ``monitor`` is
    compared with the best value so far; a change smaller than ``min_delta``
    is no improvement. After ``patience`` epochs without improvement
    ``model.stop_training`` is set. With ``baseline``, the patience count is
    reset only by values that beat both the best value and the baseline, so
    training stops after ``patience`` epochs if the baseline is never beaten.
    With ``restore_best_weights`` the weights of the best epoch are put back
    when training ends (via ``get_weights`` / ``set_weights``), whether or
    not it stopped early.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self._reset()     # an instance may be reused across fits
        self._resolve_direction()

    def on_epoch_end(self, epoch, logs=None):
        self._resolve_direction()
        current = self._monitored(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # nothing kept yet: the current weights are the best seen
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


# ---- ModelCheckpoint ---------------------------------------------------------
class ModelCheckpoint(_MonitorCallback):
    """Save the model (``model.save``) or its weights (``model.save_weights``)
    at the end of every epoch, or every ``save_freq`` batches.

    ``filepath`` may hold ``str.format`` fields filled from the epoch number
    (1-based, as printed) and the logs: ``"ckpt-{epoch:02d}-{val_loss:.2f}.fnn"``.
    With ``save_best_only`` a file is written only when ``monitor`` improves
    on the best value so far (or on ``initial_value_threshold``); a missing
    ``monitor`` warns and skips the save.
    """

    chief_only = True

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and (isinstance(save_freq, bool)
                                     or not isinstance(save_freq, numbers.Integral)
                                     or save_freq < 1):
            raise ValueError(f"ModelCheckpoint: unrecognized save_freq {save_freq!r}; expected "
                             "'epoch' or an integer number of batches >= 1")
        self.save_freq = save_freq
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold
        self._current_epoch = 0
        self._batches_since_save = 0

    def _implements_train_batch_hooks(self):
        return self.save_freq != "epoch"

    def on_train_begin(self, logs=None):
        method = "save_weights" if self.save_weights_only else "save"
        if not callable(getattr(self.model, method, None)):
            raise TypeError(f"ModelCheckpoint: the model has no {method}() method")
        if self.save_best_only:
            self._resolve_direction()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        path = self._file_path(epoch, batch, logs)
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
            self._write(path)
            return
        current = self._monitored(logs, "Can save best model only with")
        if current is None:
            return
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from "
                      f"{self._best_for_print()} to {current:.5f}, saving model to {path}")
            self.best = current
            self._write(path)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                  f"{self._best_for_print()}")

    def _best_for_print(self):
        if self.best is None:
            return "inf" if self._resolve_direction() == "min" else "-inf"
        return f"{self.best:.5f}"

    def _file_path(self, epoch, batch, logs):
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError) as exc:
            raise KeyError(f"ModelCheckpoint: failed to format the filepath "
                           f"{self.filepath!r}: no value for {exc} (available: "
                           f"{sorted(fields)})") from None

    def _write(self, path):
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if os.path.isdir(path):
            raise IsADirectoryError(f"ModelCheckpoint: the filepath {path!r} is an existing "
                                    "directory; give a file name")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


# ---- learning rate -----------------------------------------------------------
class ReduceLROnPlateau(_MonitorCallback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved
    by more than ``min_delta`` for ``patience`` epochs, never below ``min_lr``;
    then wait ``cooldown`` epochs before counting again. Adds
    ``learning_rate`` to each epoch's logs. The optimizer's learning rate
    must be a float: with a schedule it raises ``TypeError`` at train begin.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0; got "
                             f"factor={factor}")
        if factor < 0 or min_lr < 0:
            raise ValueError(f"ReduceLROnPlateau: factor and min_lr must be >= 0, got "
                             f"factor={factor}, min_lr={min_lr}")
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr
        self._reset()

    def _guess_direction(self, name):
        # Keras keeps its older rule here rather than raising
        return "max" if "acc" in self.monitor else "min"

    def _reset(self):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = None

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()
        _require_settable_lr(self)
        self._resolve_direction()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_lr(self.model)
        current = self._monitored(logs, "Learning rate reduction is")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(epoch)

    def _reduce(self, epoch):
        optimizer = _require_settable_lr(self)
        old_lr = float(optimizer.learning_rate)
        if old_lr <= self.min_lr:
            return
        new_lr = max(old_lr * self.factor, self.min_lr)
        optimizer.learning_rate = new_lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        self.cooldown_counter = self.cooldown
        self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to
    ``schedule(epoch, lr)`` (``epoch`` 0-based, ``lr`` the current rate; a
    one-argument ``schedule(epoch)`` works too). Adds ``learning_rate`` to
    each epoch's logs. The optimizer's learning rate must be a float.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _accepts_two_args(schedule)

    def on_train_begin(self, logs=None):
        _require_settable_lr(self)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _require_settable_lr(self)
        lr = float(optimizer.learning_rate)
        new_lr = self.schedule(epoch, lr) if self._takes_lr else self.schedule(epoch)
        if isinstance(new_lr, bool) or not isinstance(new_lr, numbers.Real):
            # ValueError, not TypeError: Keras' error for this
            message = f"the output of the schedule function should be a float, got {new_lr!r}"
            raise ValueError(f"LearningRateScheduler: {message}")  # noqa: TRY004
        optimizer.learning_rate = float(new_lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{float(new_lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_lr(self.model)


def _accepts_two_args(fn):
    try:
        inspect.signature(fn).bind(0, 0.0)
    except TypeError:
        return False
    except ValueError:       # no signature (some builtins): assume Keras' (epoch, lr)
        return True
    return True


# ---- TerminateOnNaN ----------------------------------------------------------
class TerminateOnNaN(Callback):
    """Stop training after a batch whose loss is NaN or infinite.

    fit's own guard comes first: with the default ``fit(..., stop_on_nan=True)``
    a non-finite loss raises ``FloatingPointError`` before that step's update
    (weights stay the last finite ones) and this callback never sees it. With
    ``stop_on_nan=False`` the step is applied, as in Keras, and this callback
    sets ``model.stop_training`` so fit ends after that batch.
    """

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


# ---- CSVLogger ---------------------------------------------------------------
class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row: an ``epoch`` column (0-based, as
    Keras), then the first epoch's log keys in sorted order; a key missing
    later is written ``NA``. The file is flushed after every epoch. With
    ``append=True`` rows are added to an existing file and the header is
    written only if the file is empty.
    """

    chief_only = True

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self.csv_file = None
        self._writer = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        self._close()
        self._write_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as existing:
                self._write_header = not existing.readline()
        # kept open across epochs (closed at train end), as Keras does
        self.csv_file = open(self.filename, "a" if self.append else "w",  # noqa: SIM115
                             newline="", encoding="utf-8")
        self._writer = csv.writer(self.csv_file, delimiter=self.sep, lineterminator="\n")
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self._write_header:
                self._writer.writerow(["epoch"] + self.keys)
        self._writer.writerow([epoch] + [_csv_value(logs.get(key, "NA")) for key in self.keys])
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self._writer = None


def _csv_value(value):
    if isinstance(value, (str, numbers.Number)):
        return value
    if hasattr(value, "__iter__"):
        return "[" + ", ".join(map(str, value)) + "]"
    return value
