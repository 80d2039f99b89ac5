"""Models: ``Model`` (a chain of layers with compile / fit / evaluate / predict)
and ``Sequential`` (built with a list or ``add``).

Design decision 1: ``compile`` packs every layer's weights into one flat
parameter buffer and one flat gradient buffer; layers keep views into them.
One optimizer call then updates all parameters. Training scratch lives in
one Workspace per layer, reused every step; ``predict`` and ``evaluate`` use
scratch of their own per call, so several threads may predict at once.
"""
import math

import numpy as np

from fastnn import _runtime
from fastnn import callbacks as _callbacks
from fastnn import data_prep as _data_prep
from fastnn import distributed as _distributed
from fastnn import losses as _losses
from fastnn import metrics as _metrics
from fastnn import optimizers as _optimizers
from fastnn import saving as _saving
from fastnn.backend import current_ops
from fastnn.layers.base import Layer, Workspace, unique_name
from fastnn.layers.core import InputLayer
from fastnn.saving import load_model  # noqa: F401  (Keras: models.load_model(path))

# Last-layer activation -> losses that can take its logits instead (Keras on
# TensorFlow does the same): the loss fuses the activation, exactly and stably.
_FUSABLE = {
    "softmax": ("categorical_crossentropy", "sparse_categorical_crossentropy"),
    "sigmoid": ("binary_crossentropy",),
}


class Model:
    """A chain of layers, trained as one: the base class of Sequential."""

    def __init__(self, layers=None, name=None):
        self.name = name or unique_name("sequential" if isinstance(self, Sequential) else "model")
        self._layers = []
        self._input_shape = None      # batch axis excluded
        self.optimizer = None
        self.loss = None
        self._metric_ids = []
        self._compiled_layers = None  # the layer chain compile() packed
        self._params = self._grads = None
        self._weight_ranges = []      # (start, stop, weight) per weight, in packing order
        self._train_ws = []
        self._in_fit = False
        self.stop_training = False
        self.history = None
        for layer in layers or ():
            self.add(layer)

    # ---- structure -----------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    @property
    def built(self):
        return self._input_shape is not None

    @property
    def dtype(self):
        return self._layers[0].dtype if self._layers else np.dtype(_runtime.floatx())

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + self._input_shape

    @property
    def output_shape(self):
        if not self.built or not self._layers:
            return None
        return (None,) + self._layers[-1].output_shape

    def add(self, layer):
        """Append a layer (an ``Input`` may only come first)."""
        if isinstance(layer, InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError(f"{self.name}: an Input must be the first thing added")
            self._input_shape = layer.input_shape_hint
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: add() takes a fastnn layer, got {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"{self.name}: a layer named {layer.name!r} is already in the model; "
                             "layer names must be unique")
        if layer in self._layers:
            raise ValueError(f"{self.name}: layer {layer.name!r} is already in the model")
        if not self._layers and self._input_shape is None and layer.input_shape_hint is not None:
            self._input_shape = layer.input_shape_hint
        self._layers.append(layer)
        if self._input_shape is not None:
            try:
                self._build_layers(self._input_shape)
            except Exception:
                self._layers.pop()
                raise

    def pop(self):
        """Remove and return the last layer (compile again before training)."""
        if not self._layers:
            raise ValueError(f"{self.name}: pop() on a model with no layers")
        return self._layers.pop()

    def get_layer(self, name=None, index=None):
        """A layer by name or by index."""
        if index is not None:
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers are "
                         f"{[layer.name for layer in self._layers]}")

    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape`` (with or without the batch axis None)."""
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        self._build_layers(tuple(int(d) for d in shape))
        self._input_shape = tuple(int(d) for d in shape)

    def _build_layers(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
            elif layer.input_shape != shape:
                raise ValueError(f"layer {layer.name!r} was built for inputs {(None,) + layer.input_shape}"
                                 f" but receives {(None,) + shape} here")
            shape = layer.output_shape
        return shape

    # ---- compile and packing -------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Set the optimizer, loss and metrics, and pack the weights into flat buffers."""
        self.optimizer = _optimizers.get(optimizer)
        self.loss = None if loss is None else _losses.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, _metrics.Metric)):
            metrics = [metrics]
        for m in metrics:
            # validate now; "accuracy" is resolved against the data's shapes in fit
            _metrics.get(m, sparse_targets=False, output_dim=2)
        self._metric_ids = list(metrics)
        self._compiled_layers = tuple(self._layers)
        self._params = None
        if self.built:
            self._pack()

    def _pack(self):
        if not self._layers:
            raise ValueError(f"{self.name}: the model has no layers")
        dtype = self.dtype
        for layer in self._layers:
            if layer.dtype != dtype:
                raise ValueError(f"{self.name}: layer {layer.name!r} is {layer.dtype} but the "
                                 f"model is {dtype}; every layer must share one dtype")
        # Only variables created trainable live in the flat buffers; state such as
        # BatchNorm's moving statistics stays beside them (design decision 1).
        weights = [w for layer in self._layers for w in layer._weights if w.trainable]
        total = sum(w.size for w in weights)
        params = np.empty(total, dtype=dtype)
        grads = np.zeros(total, dtype=dtype)
        ranges, offset = [], 0
        for w in weights:
            stop = offset + w.size
            params[offset:stop] = w.value.reshape(-1)
            w.value = params[offset:stop].reshape(w.shape)
            w.grad = grads[offset:stop].reshape(w.shape)
            ranges.append((offset, stop, w))
            offset = stop
        for layer in self._layers:
            layer._packed_into = self
        self._params, self._grads, self._weight_ranges = params, grads, ranges
        self._train_ws = [Workspace() for _ in self._layers]
        self.optimizer._slots = {}
        self.optimizer.build(total, dtype)

    def _trainable_ranges(self):
        """Merged (start, stop) ranges of trainable weights, and each such weight's range."""
        trainable = {id(w) for layer in self._layers for w in layer.trainable_weights}
        per_weight = [(s, e) for s, e, w in self._weight_ranges if id(w) in trainable and e > s]
        merged = []
        for s, e in per_weight:
            if merged and merged[-1][1] == s:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        return merged, per_weight

    def _check_ready_to_train(self, x_shape):
        if self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile() before training")
        if self.loss is None:
            raise ValueError(f"{self.name}: compile() was called without a loss; pass "
                             "loss=... to compile() before training or evaluating")
        if tuple(self._layers) != self._compiled_layers:
            raise RuntimeError(f"{self.name}: layers were added or removed after compile(); "
                               "call compile() again")
        if not self.built:
            self.build(x_shape[1:])
        if self._params is None:
            self._pack()
        for layer in self._layers:
            if getattr(layer, "_packed_into", None) is not self:
                raise RuntimeError(f"{self.name}: layer {layer.name!r} now belongs to another "
                                   "compiled model; call compile() on this model again")

    # ---- data ----------------------------------------------------------------
    def _prepare_x(self, x, where):
        return _data_prep.prepare_x(self, x, where)

    def _prepare_y(self, y, n, where):
        return _data_prep.prepare_y(self, y, n, where)

    def _prepare_sample_weight(self, sample_weight, class_weight, y, n, where):
        return _data_prep.prepare_sample_weight(self, sample_weight, class_weight, y, n, where)

    def _sparse_targets(self):
        return self.loss is not None and self.loss.kernel == "sparse_categorical_crossentropy"

    def _resolve_metrics(self):
        out_dim = self._layers[-1].output_shape[-1]
        return [_metrics.get(m, sparse_targets=self._sparse_targets(), output_dim=out_dim)
                for m in self._metric_ids]

    def _fused_output(self):
        """Whether the loss takes the last layer's logits (see _FUSABLE)."""
        last = self._layers[-1]
        fusable = _FUSABLE.get(getattr(last, "activation", None), ())
        fused = (self.loss is not None and not self.loss.from_logits
                 and self.loss.kernel in fusable and hasattr(last, "logits"))
        last.keep_logits = fused
        return fused

    # ---- the steps -----------------------------------------------------------
    def _forward(self, ops, x, training, workspaces):
        # A time-step mask (Embedding(mask_zero=True)) travels in each layer's own
        # workspace -- per call for predict, so threads never share one.
        mask = None
        for layer, ws in zip(self._layers, workspaces):
            ws.mask = mask
            x = layer.forward(ops, x, training, ws)
            if mask is not None or layer.makes_mask:
                mask = layer.output_mask(ws)
        return x

    def _batch_loss(self, ops, out, y, fused, ws_last, grad_out=None, sample_weight=None):
        """Mean loss of a batch from its outputs (or the last layer's logits);
        ``sample_weight`` (one weight per target row, or None) weights each row."""
        loss = self.loss
        pred = (self._layers[-1].logits(ws_last) if fused else out).reshape(-1, out.shape[-1])
        return ops.loss(loss.kernel, pred, y, from_logits=loss.from_logits or fused,
                        delta=loss.delta, grad_out=grad_out, sample_weight=sample_weight)

    def _train_step(self, ops, xb, yb, fused, ranges, metrics, sums, stop_on_nan, epoch, step,
                    sample_weight=None, regs=(), sync=None):
        # sync: a distributed fit's helper (fastnn.distributed), None otherwise
        if sync is not None and not len(xb):
            return sync.empty_step(ranges)      # no sample of the last global batch here
        layers, wss = self._layers, self._train_ws
        out = self._forward(ops, xb, True, wss)
        grad = wss[-1].buffer("dloss", out.shape, out.dtype)
        loss = self._batch_loss(ops, out, yb, fused, wss[-1], grad.reshape(-1, out.shape[-1]),
                                sample_weight)
        if stop_on_nan and not math.isfinite(loss):
            raise self._nan_loss_error(loss, epoch, step)
        d = grad
        last = len(layers) - 1
        for i in range(last, -1, -1):
            if i == last and fused:
                d = layers[i].backward(ops, d, wss[i], i > 0, from_preact=True)
            else:
                d = layers[i].backward(ops, d, wss[i], i > 0)
        if regs:
            # Keras adds the weights' penalties to the loss it reports and trains on.
            loss += self._regularize(ops, regs, with_grad=True)
            if stop_on_nan and not math.isfinite(loss):
                raise self._nan_loss_error(loss, epoch, step)
        if sync is not None:
            sync.average_gradients()            # distributed: one Allreduce of the gradients
        self.optimizer.apply(ops, self._params, self._grads, ranges[0], ranges[1])
        if metrics:
            pred = out.reshape(-1, out.shape[-1])
            for k, metric in enumerate(metrics):
                sums[k] += ops.metric_sum(metric.kernel, pred, yb)
        return loss

    def _nan_loss_error(self, loss, epoch, step):
        where = "train_on_batch" if epoch is None else f"epoch {epoch + 1}, batch {step + 1}"
        return FloatingPointError(f"{self.name}: the loss became {loss} at {where}; the "
                                  "update was not applied, so the weights are the last finite "
                                  "ones (lower the learning rate, or clip gradients)")

    # ---- regularizers (penalties of trainable weights) -----------------------
    def _regularized_ranges(self):
        """(start, stop, l1, l2) of each trainable weight with a nonzero regularizer,
        neighbours with equal factors merged: empty when nothing is regularized, so
        an unregularized model pays nothing. Computed at the start of every fit, as
        the trainable ranges are (Keras counts trainable weights' penalties only)."""
        trainable = {id(w) for layer in self._layers for w in layer.trainable_weights}
        regs = []
        for start, stop, w in self._weight_ranges:
            reg = getattr(w, "regularizer", None)
            if reg is None or reg.is_zero or id(w) not in trainable or stop == start:
                continue
            if regs and regs[-1][1] == start and regs[-1][2:] == (reg.l1, reg.l2):
                regs[-1] = (regs[-1][0], stop, reg.l1, reg.l2)
            else:
                regs.append((start, stop, reg.l1, reg.l2))
        return tuple(regs)

    def _regularize(self, ops, regs, with_grad):
        """The summed penalty over ``regs``; with_grad adds its gradient to the
        flat gradient buffer (after backward, before clipping and the update)."""
        params, grads = self._params, self._grads
        penalty = 0.0
        for start, stop, l1, l2 in regs:
            penalty += ops.regularize_(grads[start:stop] if with_grad else None,
                                       params[start:stop], l1, l2)
        return penalty

    # ---- public loops --------------------------------------------------------
    @_distributed.ends_job_on_failure
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, stop_on_nan=True, *, distributed=None):
        """Train for ``epochs`` epochs over (x, y) in shuffled batches; return a History.

        The last partial batch is trained, not dropped. ``validation_split`` holds
        out the last fraction of the data (before shuffling); ``validation_data``
        is an (x, y) or (x, y, sample_weight) tuple; both add ``val_*`` entries to
        the history. ``sample_weight`` (one weight >= 0 per sample) or ``class_weight``
        ({class index: weight}; not both, as Keras 3) weights each sample's loss,
        still divided by the batch size; metrics stay unweighted (Keras' ``metrics=``).
        validation_split splits sample_weight like x and y. Weight regularizers'
        penalties are added to the reported loss and trained on. A NaN or inf
        loss raises FloatingPointError before that step's update unless
        ``stop_on_nan=False`` (then ``callbacks.TerminateOnNaN`` can stop training).
        ``verbose``: 0 silent; 1 (or "auto") a progress bar redrawn in place on a
        terminal or in a notebook, just one line per epoch in a log file; 2 one
        line per epoch. ``callbacks``: ``fastnn.callbacks.Callback`` instances;
        validation runs their ``on_test_*`` hooks, as in Keras.
        ``distributed``: a ``fastnn.distributed.MPI()`` strategy for data-parallel
        training: every rank passes the same x and y and trains on its slice of
        each global batch of ``size * batch_size`` (see fastnn.distributed).
        """
        if self._in_fit:
            raise RuntimeError(f"{self.name}: fit() is already running (it is not re-entrant)")
        batch_size = _check_batch_size(batch_size, "fit")
        epochs = _check_count(epochs, "epochs")
        initial_epoch = _check_count(initial_epoch, "initial_epoch")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_split and validation_data is not None:
            raise ValueError("fit: pass validation_split or validation_data, not both")
        x = self._prepare_x(x, "fit")
        self._check_ready_to_train(x.shape)
        y = self._prepare_y(y, x.shape[0], "fit")
        y_rows = y.shape[0] // x.shape[0]     # target rows per sample (sequence outputs)
        sw = self._prepare_sample_weight(sample_weight, class_weight, y, x.shape[0], "fit")
        val_sw = None
        if validation_split:
            n_val = int(x.shape[0] * validation_split)
            if n_val == 0 or n_val == x.shape[0]:
                raise ValueError(f"fit: validation_split={validation_split} of {x.shape[0]} "
                                 "samples leaves an empty training or validation set")
            split = x.shape[0] - n_val
            validation_data = (x[split:], y[split * y_rows:], "prepared")
            x, y = x[:split], y[:split * y_rows]
            if sw is not None and sample_weight is not None:
                # Keras splits sample_weight with x and y; class_weight stays with training.
                val_sw = sw[split * y_rows:]
            sw = None if sw is None else sw[:split * y_rows]
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("fit: validation_data must be a pair (x_val, y_val) or a "
                                 "triple (x_val, y_val, val_sample_weight)")
            vx = self._prepare_x(validation_data[0], "fit (validation_data)")
            vy = self._prepare_y(validation_data[1], vx.shape[0], "fit (validation_data)")
            if len(validation_data) == 3:
                val_sw = self._prepare_sample_weight(validation_data[2], None, vy, vx.shape[0],
                                                     "fit (validation_data)")
            validation_data = (vx, vy, "prepared")

        ops = current_ops()
        metrics = self._resolve_metrics()
        fused = self._fused_output()
        ranges = self._trainable_ranges()
        regs = self._regularized_ranges()
        n = x.shape[0]
        sync = (_LocalFit(self, ops, n, batch_size) if distributed is None
                else distributed._fit_sync(self, ops, n, batch_size))
        if verbose == "auto":
            verbose = 1
        # History and the progress bar come after the user's callbacks (Keras'
        # order), so entries those add to the logs are recorded and printed
        cbs = _callbacks.CallbackList(callbacks, self,
                                      {"epochs": epochs, "steps": sync.steps, "verbose": verbose},
                                      add_history=True, add_progbar=bool(verbose),
                                      chief=sync.is_chief)
        history = self.history = cbs.history
        self.stop_training = False
        self._in_fit = True
        shuffled = Workspace()
        logs = {}
        try:
            sync.begin(cbs, epochs, initial_epoch,
                       -1 if validation_data is None else len(validation_data[0]))
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                if shuffle:
                    # one gather per epoch into buffers reused across epochs
                    order = sync.shuffle_order(n)
                    xs = np.take(x, order, axis=0, out=shuffled.buffer("x", x.shape, x.dtype))
                    y_by_sample = y.reshape((n, y_rows) + y.shape[1:])
                    ys = np.take(y_by_sample, order, axis=0,
                                 out=shuffled.buffer("y", y_by_sample.shape, y.dtype)).reshape(y.shape)
                    sws = None if sw is None else np.take(
                        sw.reshape(n, y_rows), order, axis=0,
                        out=shuffled.buffer("sw", (n, y_rows), sw.dtype)).reshape(-1)
                else:
                    xs, ys, sws = x, y, sw
                loss_sum, sums = 0.0, [0.0] * len(metrics)
                for step in range(sync.steps):
                    start, stop = sync.local_bounds(step)
                    if cbs.wants_batch_hooks:
                        cbs.on_train_batch_begin(step)
                    loss = self._train_step(ops, xs[start:stop], ys[start * y_rows:stop * y_rows],
                                            fused, ranges, metrics, sums, stop_on_nan, epoch, step,
                                            None if sws is None
                                            else sws[start * y_rows:stop * y_rows], regs, sync)
                    loss_sum += loss * (stop - start)
                    if cbs.wants_batch_hooks:
                        cbs.on_train_batch_end(step, sync.logs(loss_sum, sums, metrics, step,
                                                               y_rows))
                        self.stop_training = sync.agree_stop()
                    if self.stop_training:
                        break
                logs = sync.end_epoch(loss_sum, sums, metrics, step, y_rows)
                if validation_data is not None:
                    val = sync.evaluate(validation_data[0], validation_data[1], batch_size,
                                        metrics, fused, cbs, val_sw)
                    logs.update({"val_" + k: v for k, v in val.items()})
                cbs.on_epoch_end(epoch, logs)
                self.stop_training = sync.agree_stop()
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            self._in_fit = False
        return history

    def _logs(self, loss_sum, sums, metrics, seen, y_rows):
        logs = {"loss": loss_sum / seen}
        for metric, total in zip(metrics, sums):
            logs[metric.name] = total / (seen * y_rows)
        return logs

    def _evaluate_prepared(self, ops, x, y, batch_size, metrics, fused, cbs=None,
                           sample_weight=None):
        n = x.shape[0]
        y_rows = y.shape[0] // n
        wss = [Workspace() for _ in self._layers]
        loss_sum, sums = 0.0, [0.0] * len(metrics)
        batch_hooks = cbs is not None and cbs.wants_test_batch_hooks
        if cbs is not None:
            cbs.on_test_begin()
        for step, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            if batch_hooks:
                cbs.on_test_batch_begin(step)
            yb = y[start * y_rows:stop * y_rows]
            wb = None if sample_weight is None else sample_weight[start * y_rows:stop * y_rows]
            out = self._forward(ops, x[start:stop], False, wss)
            loss_sum += self._batch_loss(ops, out, yb, fused, wss[-1], None, wb) * (stop - start)
            pred = out.reshape(-1, out.shape[-1])
            for k, metric in enumerate(metrics):
                sums[k] += ops.metric_sum(metric.kernel, pred, yb)
            if batch_hooks:
                cbs.on_test_batch_end(step, self._logs(loss_sum, sums, metrics, stop, y_rows))
        logs = self._logs(loss_sum, sums, metrics, n, y_rows)
        regs = self._regularized_ranges()
        if regs:
            # Keras' test step adds the trainable weights' penalties to the loss too.
            logs["loss"] += self._regularize(ops, regs, with_grad=False)
        if cbs is not None:
            cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 return_dict=False, callbacks=None):
        """Return the mean loss over (x, y), or ``[loss, *metrics]`` when metrics were compiled.

        ``callbacks`` get ``on_test_begin``, ``on_test_batch_begin/end`` and ``on_test_end``.
        ``sample_weight`` (one weight >= 0 per sample) weights each sample's loss
        (still divided by the number of samples, as Keras); metrics stay unweighted.
        The loss includes the trainable weights' regularization penalties (Keras).
        """
        batch_size = _check_batch_size(batch_size, "evaluate")
        x = self._prepare_x(x, "evaluate")
        self._check_ready_to_train(x.shape)
        y = self._prepare_y(y, x.shape[0], "evaluate")
        sw = self._prepare_sample_weight(sample_weight, None, y, x.shape[0], "evaluate")
        metrics = self._resolve_metrics()
        cbs = None if callbacks is None else _callbacks.CallbackList(
            callbacks, self, {"epochs": 1, "steps": -(-x.shape[0] // batch_size),
                              "verbose": verbose})
        logs = self._evaluate_prepared(current_ops(), x, y, batch_size, metrics,
                                       self._fused_output(), cbs, sw)
        if verbose in (1, 2):
            print(" - ".join(f"{k}: {v:.4g}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Return the model's outputs for x, computed in batches (inference mode).

        Safe to call from several threads at once: each call has its own scratch.
        ``callbacks`` get ``on_predict_begin``, ``on_predict_batch_begin/end``
        (logs ``{"outputs": batch outputs}``) and ``on_predict_end``.
        """
        batch_size = _check_batch_size(batch_size, "predict")
        x = self._prepare_x(x, "predict")
        ops = current_ops()
        n = x.shape[0]
        out = np.empty((n,) + self._layers[-1].output_shape, dtype=self.dtype)
        wss = [Workspace() for _ in self._layers]
        cbs = None if callbacks is None else _callbacks.CallbackList(
            callbacks, self, {"epochs": 1, "steps": -(-n // batch_size), "verbose": verbose})
        batch_hooks = cbs is not None and cbs.wants_predict_batch_hooks
        if cbs is not None:
            cbs.on_predict_begin()
        for step, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            if batch_hooks:
                cbs.on_predict_batch_begin(step)
            out[start:stop] = self._forward(ops, x[start:stop], False, wss)
            if batch_hooks:
                cbs.on_predict_batch_end(step, {"outputs": out[start:stop]})
        if cbs is not None:
            cbs.on_predict_end()
        return out

    def predict_on_batch(self, x):
        """The outputs for one batch x (all of it at once)."""
        x_arr = np.asarray(x)
        return self.predict(x_arr, batch_size=max(1, x_arr.shape[0] if x_arr.ndim else 1))

    def __call__(self, x, training=False):
        """Keras' ``model(x)``: the outputs for x as one batch (inference mode)."""
        return self.predict_on_batch(x)

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One training step on (x, y); returns the loss, or [loss, *metrics]."""
        x = self._prepare_x(x, "train_on_batch")
        self._check_ready_to_train(x.shape)
        y = self._prepare_y(y, x.shape[0], "train_on_batch")
        sw = self._prepare_sample_weight(sample_weight, class_weight, y, x.shape[0],
                                         "train_on_batch")
        if self._in_fit:
            raise RuntimeError(f"{self.name}: train_on_batch() inside fit() is not supported")
        metrics = self._resolve_metrics()
        sums = [0.0] * len(metrics)
        loss = self._train_step(current_ops(), x, y, self._fused_output(),
                                self._trainable_ranges(), metrics, sums, True, None, None,
                                sw, self._regularized_ranges())
        if not metrics:
            return loss
        return [loss] + [total / y.shape[0] for total in sums]

    def test_on_batch(self, x, y, sample_weight=None):
        """The loss (or [loss, *metrics]) on one batch, without training."""
        x_arr = np.asarray(x)
        return self.evaluate(x, y, batch_size=max(1, x_arr.shape[0] if x_arr.ndim else 1),
                             verbose=0, sample_weight=sample_weight)

    # ---- weights and description ---------------------------------------------
    def get_weights(self):
        """Copies of every layer's weights, in order (Keras' shapes)."""
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set every layer's weights from a list in get_weights' order and shapes."""
        weights = list(weights)
        expected = sum(len(layer._weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"{self.name}: expected {expected} weight arrays, got {len(weights)}")
        at = 0
        for layer in self._layers:
            k = len(layer._weights)
            layer.set_weights(weights[at:at + k])
            at += k

    def count_params(self):
        return sum(layer.count_params() for layer in self._layers)

    def summary(self, print_fn=None):
        """Print each layer's type, output shape and parameter count, and the totals."""
        print_fn = print_fn or print
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self._layers:
            shape = (None,) + layer.output_shape if layer.built else "?"
            rows.append((f"{layer.name} ({type(layer).__name__})", str(shape),
                         f"{layer.count_params():,}"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        for i, row in enumerate(rows):
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)))
            print_fn("=" * sum(widths) if i == 0 else line)
        trainable = sum(w.size for layer in self._layers for w in layer.trainable_weights)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    # ---- saving (design decision 9; fastnn.saving does the work) ------------
    def save(self, filepath, overwrite=True):
        """Write the model to one file (any extension; ``.fnn`` recommended): architecture,
        weights, compile config and optimizer state. Read it with ``models.load_model``."""
        _saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Write only the weights (read them with ``load_weights``)."""
        _saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Copy the weights of a file from ``save_weights`` (or ``save``) into this model.

        The architecture must match; on any mismatch nothing is changed (ValueError).
        """
        _saving.load_weights(self, filepath)

    def get_config(self):
        """The architecture as JSON-able data: name, input shape, each layer's class and config."""
        return _saving.model_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new, uncompiled model from ``get_config()``'s dict (fastnn's own layer
        types, plus ``custom_objects``: class name -> class)."""
        return _saving.model_from_config(config, custom_objects, model_class=cls)


class _LocalFit:
    """The hook points of one single-process ``fit``: the same interface as a
    distributed fit's helper (fastnn.distributed), with nothing to exchange."""

    is_chief = True

    def __init__(self, model, ops, n, batch_size):
        self.model, self.ops = model, ops
        self.n, self.batch_size = n, batch_size
        self.steps = -(-n // batch_size)

    def begin(self, cbs, epochs, initial_epoch, n_val):
        pass

    def shuffle_order(self, n):
        return _runtime.rng().permutation(n)

    def local_bounds(self, step):
        start = step * self.batch_size
        return start, min(start + self.batch_size, self.n)

    def average_gradients(self):
        pass

    def logs(self, loss_sum, sums, metrics, step, y_rows):
        seen = min(self.n, (step + 1) * self.batch_size)
        return self.model._logs(loss_sum, sums, metrics, seen, y_rows)

    end_epoch = logs

    def agree_stop(self):
        return self.model.stop_training

    def evaluate(self, x, y, batch_size, metrics, fused, cbs, sample_weight):
        return self.model._evaluate_prepared(self.ops, x, y, batch_size, metrics, fused, cbs,
                                             sample_weight)


class Sequential(Model):
    """A linear stack of layers: ``Sequential([Dense(...), ...])`` or ``.add(layer)``."""


def _check_batch_size(batch_size, where):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"fit: {name} must be an integer >= 0, got {value!r}")
    return int(value)
