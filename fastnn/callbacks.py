"""Callbacks: hooks the fit / evaluate / predict loops call (Keras' names).

``History`` is attached to every ``fit`` and returned by it.
"""
import math
import sys
import time


class Callback:
    """Base class: override the hooks you need. ``self.model`` is set by fit."""

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
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


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


class ProgbarLogger(Callback):
    """Prints progress: verbose=1 a per-batch line redrawn in place (at most ~10
    times a second, and only on a terminal), verbose=2 one line per epoch."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self._last_draw = 0.0
        self._epoch_start = 0.0

    def _interactive(self):
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty()) or "ipykernel" in sys.modules

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch = epoch
        if self.verbose == 1:
            self.stream.write(f"Epoch {epoch + 1}/{self.params.get('epochs')}\n")

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose != 1 or not self._interactive():
            return
        now = time.perf_counter()
        steps = self.params.get("steps") or 1
        if now - self._last_draw < 0.1 and batch + 1 < steps:
            return
        self._last_draw = now
        done = (batch + 1) / steps
        bar = "=" * int(done * 30)
        eta = (now - self._epoch_start) / done * (1 - done)
        self.stream.write(f"\r{batch + 1}/{steps} [{bar:<30}] - ETA: {eta:.0f}s"
                          f"{_format_logs(logs)}")
        self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose not in (1, 2):
            return
        elapsed = time.perf_counter() - self._epoch_start
        steps = self.params.get("steps")
        prefix = "\r" if self.verbose == 1 and self._interactive() else ""
        lead = f"{steps}/{steps} - " if self.verbose == 1 else f"Epoch {epoch + 1}/{self.params.get('epochs')} - "
        self.stream.write(f"{prefix}{lead}{elapsed:.2f}s{_format_logs(logs)}\n")
        self.stream.flush()


def _format_logs(logs):
    parts = []
    for key, value in (logs or {}).items():
        if isinstance(value, float) and math.isfinite(value):
            parts.append(f"{key}: {value:.4g}")
    return (" - " + " - ".join(parts)) if parts else ""


class CallbackList:
    """Calls a list of callbacks in order. Knows whether any wants per-batch hooks,
    so the fit loop builds per-batch logs only when someone reads them."""

    _BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end")

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self.wants_batch_hooks = any(
            getattr(type(cb), hook) is not getattr(Callback, hook)
            for cb in self.callbacks for hook in self._BATCH_HOOKS
        )

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call
