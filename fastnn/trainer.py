"""The loops: fit, evaluate, predict and their one-batch forms, over any model.

Every loop runs the model's execution plan (fastnn.graph.plan): forward over
the graph, the losses of the outputs that have one, backward in reverse
order into the flat gradient buffer, one optimizer call. What one call
computes with (the plan, the outputs' losses and metrics, which outputs take
their layer's logits) is a ``Run``; the arrays it works on are a ``Data``.

A fit talks to its surroundings through a small protocol (``FitSync``): the
single-process ``LocalSync`` here, and fastnn.distributed's MPI helper, which
exchanges gradients and logs at the same hook points.
"""
import math
from typing import Protocol

import numpy as np

from fastnn import _runtime
from fastnn import callbacks as _callbacks
from fastnn import data_adapters as _adapters
from fastnn import data_prep as _data_prep
from fastnn.backend import current_ops
from fastnn.run import Run
from fastnn.graph.workspace import Workspace


# ---- the arrays of one call ----------------------------------------------------------
class Data:
    """Prepared ``inputs`` (one array per model input), ``targets`` (one per output
    with a loss or metrics: rows of targets, class indices, or -- for a loss of
    your own -- the targets as given; or None), ``weights`` (one weight per target
    row, or None), for ``n`` samples; ``raw_shapes``: each target's shape per
    sample as given."""

    __slots__ = ("inputs", "targets", "weights", "n", "rows", "raw_shapes")

    def __init__(self, inputs, targets=(), weights=(), raw_shapes=()):
        self.inputs, self.targets = list(inputs), list(targets)
        self.weights = list(weights) or [None] * len(self.targets)
        self.raw_shapes = list(raw_shapes) or [None] * len(self.targets)
        self.n = self.inputs[0].shape[0]
        # target rows per sample (time steps for sequence outputs), per target
        self.rows = [0 if t is None or not self.n else t.shape[0] // self.n
                     for t in self.targets]

    def slice(self, start, stop):
        """Samples [start, stop) of every array (views)."""
        return Data([x[start:stop] for x in self.inputs],
                    [_rows(t, start, stop, r) for t, r in zip(self.targets, self.rows)],
                    [_rows(w, start, stop, r) for w, r in zip(self.weights, self.rows)],
                    self.raw_shapes)

    def shuffled(self, order, buffers):
        """Every array gathered in ``order`` into ``buffers`` (a Workspace reused
        every epoch: one gather per array per epoch, no allocation after the first)."""
        def take(a, key, rows):
            if a is None:
                return None
            per_sample = a.reshape((self.n, rows) + a.shape[1:]) if rows else a
            out = buffers.buffer(key, per_sample.shape, a.dtype)
            return np.take(per_sample, order, axis=0, out=out).reshape(a.shape)
        return Data([take(x, ("x", i), 0) for i, x in enumerate(self.inputs)],
                    [take(t, ("y", i), r) for i, (t, r) in enumerate(zip(self.targets,
                                                                         self.rows))],
                    [take(w, ("w", i), r) for i, (w, r) in enumerate(zip(self.weights,
                                                                         self.rows))],
                    self.raw_shapes)


def _rows(a, start, stop, rows):
    return None if a is None else a[start * rows:stop * rows]


# ---- fit -----------------------------------------------------------------------------
class FitSync(Protocol):
    """The hook points of one fit; LocalSync (one process) and fastnn.distributed's
    MPI helper implement them. ``steps`` and ``is_chief`` are attributes."""

    def begin(self, cbs, epochs, initial_epoch, n_val): ...
    def shuffle_order(self, n): ...
    def local_bounds(self, step): ...
    def average_gradients(self): ...
    def empty_step(self, ranges): ...
    def logs(self, run, sums, step): ...
    def end_epoch(self, run, sums, step): ...
    def agree_stop(self): ...
    def evaluate(self, run, data, batch_size, cbs): ...


class LocalSync:
    """A single-process fit: the FitSync hooks with nothing to exchange."""

    is_chief = True

    def __init__(self, model, ops, n, batch_size):
        self.model, self.ops = model, ops
        self.n, self.batch_size = n, batch_size
        self.steps = -(-n // batch_size)

    def begin(self, cbs, epochs, initial_epoch, n_val):
        pass

    def shuffle_order(self, n):
        # fit runs inside Model.fit: rng() is the model's own generator
        return _runtime.rng().permutation(n)

    def local_bounds(self, step):
        start = step * self.batch_size
        return start, min(start + self.batch_size, self.n)

    def average_gradients(self):
        pass

    def empty_step(self, ranges):
        raise AssertionError("a single-process fit has no empty steps")

    def logs(self, run, sums, step):
        return run.logs(sums, min(self.n, (step + 1) * self.batch_size))

    end_epoch = logs

    def agree_stop(self):
        return self.model.stop_training

    def evaluate(self, run, data, batch_size, cbs):
        return evaluate_data(run, data, batch_size, cbs)


class StreamSync(LocalSync):
    """A single-process fit over streamed batches (fastnn.data_adapters): the number
    of steps may be unknown until the first epoch ends, and the logs divide by
    the samples seen so far (``seen``, counted as batches arrive)."""

    def __init__(self, model, feed):
        self.model, self.feed, self.seen = model, feed, 0

    @property
    def steps(self):
        return self.feed.steps

    def logs(self, run, sums, step):
        return run.logs(sums, self.seen)

    end_epoch = logs


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split,
        validation_data, shuffle, class_weight, sample_weight, initial_epoch, stop_on_nan,
        distributed, steps_per_epoch=None, validation_steps=None):
    """Model.fit (see its docstring)."""
    if model._in_fit:
        raise RuntimeError(f"{model.name}: fit() is already running (it is not re-entrant)")
    batch_size = check_batch_size(batch_size, "fit")
    epochs = _check_count(epochs, "epochs")
    initial_epoch = _check_count(initial_epoch, "initial_epoch")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
    if validation_split and validation_data is not None:
        raise ValueError("fit: pass validation_split or validation_data, not both")
    streamed = _adapters.is_batch_source(x)
    val_streamed = validation_data is not None and _adapters.is_batch_source(validation_data)
    if streamed:
        _check_stream_call("fit", x, y, sample_weight)
        if validation_split:
            raise ValueError("fit: validation_split needs arrays (it holds out their last "
                             f"samples); with {_adapters.describe(x)} pass validation_data")
    elif steps_per_epoch is not None:
        raise ValueError("fit: steps_per_epoch applies to a generator or PyDataset; with "
                         "arrays an epoch is every batch_size slice of x")
    if validation_steps is not None and not val_streamed:
        raise ValueError("fit: validation_steps applies to validation_data given as a "
                         "generator or PyDataset")
    if distributed is not None and (streamed or val_streamed):
        raise ValueError("fit(distributed=...) takes arrays: every rank slices the same "
                         "x and y; generators and PyDataset are not supported there")
    feed = None
    if streamed:
        feed = _adapters.StreamFeed(x, steps_per_epoch, "steps_per_epoch", shuffle,
                                    _batch_preparer(model, class_weight, "fit"), "fit")
    try:
        data = feed.start() if streamed else _prepare(model, x, y, sample_weight,
                                                      class_weight, "fit")
        return _fit_prepared(model, data, feed, batch_size, epochs, verbose, callbacks,
                             validation_split, validation_data, val_streamed, validation_steps,
                             shuffle, sample_weight, initial_epoch, stop_on_nan, distributed)
    finally:
        if feed is not None:
            feed.close()


def _fit_prepared(model, data, feed, batch_size, epochs, verbose, callbacks, validation_split,
                  validation_data, val_streamed, validation_steps, shuffle, sample_weight,
                  initial_epoch, stop_on_nan, distributed):
    """fit's loop over ``data`` (arrays), or over ``feed``'s batches (``data`` is
    then its first batch)."""
    val = val_feed = None
    if validation_split:
        n_val = int(data.n * validation_split)
        if n_val == 0 or n_val == data.n:
            raise ValueError(f"fit: validation_split={validation_split} of {data.n} "
                             "samples leaves an empty training or validation set")
        split = data.n - n_val
        val = data.slice(split, data.n)
        if sample_weight is None:
            # Keras splits sample_weight with x and y; class_weight stays with training.
            val.weights = [None] * len(val.targets)
        data = data.slice(0, split)
    elif val_streamed:
        val_feed = _adapters.StreamFeed(validation_data, validation_steps, "validation_steps",
                                        False, _batch_preparer(model, None,
                                                               "fit (validation_data)"),
                                        "fit (validation_data)")
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a pair (x_val, y_val), a "
                             "triple (x_val, y_val, val_sample_weight), a generator or a "
                             "PyDataset")
        val = _prepare(model, validation_data[0], validation_data[1],
                       validation_data[2] if len(validation_data) == 3 else None, None,
                       "fit (validation_data)")

    ops = current_ops()
    run = Run(model, ops, data)
    if distributed is not None and run.has_stateful_metrics:
        raise ValueError("fit(distributed=...): metrics with a state of their own (Metric "
                         "subclasses) cannot be combined across ranks; use a metric function")
    schedule = run.schedule()
    scratch = _training_scratch(model, run.plan)
    buffers = model.buffers
    trainable = {id(w) for w in model.trainable_weights}
    ranges = buffers.trainable_ranges(trainable)
    regs = buffers.regularized_ranges(trainable)
    if feed is not None:
        sync = StreamSync(model, feed)
    elif distributed is None:
        sync = LocalSync(model, ops, data.n, batch_size)
    else:
        sync = distributed._fit_sync(model, ops, data.n, batch_size)
    if verbose == "auto":
        verbose = 1
    # History and the progress bar come after the user's callbacks (Keras'
    # order), so entries those add to the logs are recorded and printed.
    # "steps" is None while a stream's length is unknown (Keras' "Unknown").
    params = {"epochs": epochs, "steps": sync.steps, "verbose": verbose}
    cbs = _callbacks.CallbackList(callbacks, model, params, add_history=True,
                                  add_progbar=bool(verbose), chief=sync.is_chief)
    history = model.history = cbs.history
    model.stop_training = False
    model._in_fit = True
    shuffled = Workspace()
    logs = {}
    step_fn = _train_step(run, schedule, scratch, ranges, regs, stop_on_nan, sync)
    try:
        sync.begin(cbs, epochs, initial_epoch, -1 if val is None else val.n)
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            batches = (_stream_epoch(feed, sync, run) if feed is not None
                       else _array_epoch(data, sync, shuffle, shuffled))
            sums = run.zero_sums()
            step = -1
            try:
                for step, (inputs, targets, weights, b) in enumerate(batches):
                    if cbs.wants_batch_hooks:
                        cbs.on_train_batch_begin(step)
                    step_fn(inputs, targets, weights, b, sums, epoch, step)
                    if cbs.wants_batch_hooks:
                        cbs.on_train_batch_end(step, sync.logs(run, sums, step))
                        model.stop_training = sync.agree_stop()
                    if model.stop_training:
                        break
            except BaseException:
                if feed is not None:
                    feed.close()
                raise
            if feed is not None:
                feed.end_epoch()
            if step < 0:
                # only a stream gets here: a one-shot generator used up by earlier epochs
                _adapters.warn(f"fit: {_adapters.describe(feed.source)} ran out of data "
                               f"before epoch {epoch + 1}; training stops here (pass "
                               "steps_per_epoch and a generator that can produce "
                               "steps_per_epoch * epochs batches, or a PyDataset)")
                break
            if params["steps"] is None:
                params["steps"] = sync.steps or step + 1
            logs = sync.end_epoch(run, sums, step)
            if val is not None:
                val_logs = sync.evaluate(run, val, batch_size, cbs)
                logs.update({"val_" + k: v for k, v in val_logs.items()})
            elif val_feed is not None:
                val_logs = _evaluate_feed(run, val_feed, cbs, epoch)
                logs.update({"val_" + k: v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, logs)
            model.stop_training = sync.agree_stop()
            if model.stop_training:
                break
        cbs.on_train_end(logs)
    finally:
        model._in_fit = False
        if val_feed is not None:
            val_feed.close()
    return history


def _array_epoch(data, sync, shuffle, shuffled):
    """One epoch's batches of arrays: (inputs, targets, weights, size), views of
    ``data`` in a new shuffled order when ``shuffle`` (drawn now, before any step)."""
    epoch_data = data.shuffled(sync.shuffle_order(data.n), shuffled) if shuffle else data
    batch_of = _slicer(epoch_data)
    local_bounds = sync.local_bounds

    def batches():
        for step in range(sync.steps):
            start, stop = local_bounds(step)
            inputs, targets, weights = batch_of(start, stop)
            yield inputs, targets, weights, stop - start
    return batches()


def _stream_epoch(feed, sync, run):
    """One epoch's streamed batches, as _array_epoch's tuples, counted in ``sync.seen``."""
    sync.seen = 0
    for data in feed.epoch():
        if data.raw_shapes != run.raw_shapes:      # batches of another sequence length
            run.raw_shapes = data.raw_shapes
        sync.seen += data.n
        yield data.inputs, data.targets, data.weights, data.n


def _check_stream_call(where, x, y, sample_weight):
    what = _adapters.describe(x)
    if y is not None:
        raise ValueError(f"{where}: y must be None when x is {what}: the targets come in "
                         "its batches, (x, y) or (x, y, sample_weight)")
    if sample_weight is not None:
        raise ValueError(f"{where}: sample_weight must be None when x is {what}: yield "
                         "(x, y, sample_weight) batches instead")


def _batch_preparer(model, class_weight, where):
    """``prepare(x, y, sample_weight, where)`` -> the Data of one streamed batch."""
    def prepare(x, y, sample_weight, at):
        if y is None:
            raise ValueError(f"{at}: the batch has no targets; {where.split(' ')[0]} needs "
                             "(x, y) or (x, y, sample_weight) batches")
        return _prepare(model, x, y, sample_weight, class_weight, at)
    return prepare


def _slicer(data):
    """``batch_of(start, stop)`` -> (inputs, targets, weights) of samples [start, stop)
    of ``data`` (views); the common one-input, one-target, unweighted case costs
    no more than two slices."""
    xs, ys, ws, rows = data.inputs, data.targets, data.weights, data.rows
    if len(xs) == 1 and len(ys) == 1 and ws[0] is None and ys[0] is not None:
        x0, y0, r0 = xs[0], ys[0], rows[0]
        return lambda start, stop: ([x0[start:stop]], [y0[start * r0:stop * r0]], ws)

    def batch_of(start, stop):
        return ([x[start:stop] for x in xs],
                [None if y is None else y[start * r:stop * r] for y, r in zip(ys, rows)],
                [None if w is None else w[start * r:stop * r] for w, r in zip(ws, rows)])
    return batch_of


def _train_step(run, schedule, scratch, ranges, regs, stop_on_nan, sync=None):
    """The training step of one fit: ``step(inputs, targets, weights, b, sums, epoch,
    index)`` runs forward, the losses, backward, the penalties and the update on
    one batch of ``b`` samples, adds its loss times b to ``sums`` and returns the
    loss. Everything it uses is looked up once, here: W1's steps take ~20 us."""
    model, ops, plan = run.model, run.ops, run.plan
    forward, backward, plan_inputs = plan.forward, plan.backward, run.plan_inputs
    batch_losses, add_metrics, with_metrics = run.batch_losses, run.add_metrics, bool(run.metrics)
    buffers = model.buffers
    params, grads, regularize = buffers.params, buffers.grads, buffers.regularize
    apply = model.optimizer.apply
    merged, per_weight = ranges
    exchange = sync is not None and not isinstance(sync, LocalSync)

    def step(inputs, targets, weights, b, sums, epoch, index):
        if exchange and not b:
            return sync.empty_step(ranges)        # no sample of the last global batch here
        outs = forward(ops, plan_inputs(inputs, targets), True, scratch)
        loss, out_grads = batch_losses(outs, targets, weights, b, scratch, sums, True)
        if stop_on_nan and not math.isfinite(loss):
            raise _nan_loss_error(model, loss, epoch, index)
        backward(ops, schedule, out_grads, scratch)
        if regs:
            # Keras adds the weights' penalties to the loss it reports and trains on.
            loss += regularize(ops, regs, with_grad=True)
            if stop_on_nan and not math.isfinite(loss):
                raise _nan_loss_error(model, loss, epoch, index)
        if exchange:
            sync.average_gradients()            # distributed: one Allreduce of the gradients
        apply(ops, params, grads, merged, per_weight)
        if with_metrics:
            add_metrics(outs, targets, sums, scratch.masks)
        sums[0] += loss * b
        return loss
    return step


def _training_scratch(model, plan):
    """The model's training workspaces, reused every step of every fit."""
    held = model._train_scratch
    if held is None or held[0] is not plan:
        held = model._train_scratch = (plan, plan.scratch())
    return held[1]


def _nan_loss_error(model, loss, epoch, step):
    where = "train_on_batch" if epoch is None else f"epoch {epoch + 1}, batch {step + 1}"
    return FloatingPointError(f"{model.name}: the loss became {loss} at {where}; the "
                              "update was not applied, so the weights are the last finite "
                              "ones (lower the learning rate, or clip gradients)")


def _prepare(model, x, y, sample_weight, class_weight, where):
    """The Data of (x, y, weights), after the checks that the model can train."""
    inputs = _data_prep.prepare_inputs(model, x, where)
    model.check_ready_to_train()
    objectives = model.objectives()
    n = inputs[0].shape[0]
    targets, raw_shapes = _data_prep.prepare_targets(model, objectives, y, n, where)
    weights = _data_prep.prepare_sample_weights(model, objectives, targets, sample_weight,
                                                class_weight, n, where)
    return Data(inputs, targets, weights, raw_shapes)


# ---- evaluate ------------------------------------------------------------------------
def evaluate_data(run, data, batch_size, cbs=None):
    """The logs of ``run`` over ``data`` in inference mode, with callbacks' test hooks."""
    batches = (data.slice(start, min(start + batch_size, data.n))
               for start in range(0, data.n, batch_size))
    return evaluate_batches(run, batches, cbs)


def evaluate_batches(run, batches, cbs=None, empty_error=None):
    """The logs of ``run`` over an iterable of Data batches (inference mode);
    ``empty_error``: the message of the ValueError raised when there is none."""
    plan, ops = run.plan, run.ops
    scratch = plan.scratch(param_grads=False)
    sums = run.zero_sums()
    batch_hooks = cbs is not None and cbs.wants_test_batch_hooks
    if cbs is not None:
        cbs.on_test_begin()
    seen = 0
    for step, batch in enumerate(batches):
        if batch_hooks:
            cbs.on_test_batch_begin(step)
        outs = plan.forward(ops, run.plan_inputs(batch.inputs, batch.targets), False, scratch)
        loss, _ = run.batch_losses(outs, batch.targets, batch.weights, batch.n, scratch, sums,
                                   with_grad=False)
        sums[0] += loss * batch.n
        run.add_metrics(outs, batch.targets, sums, scratch.masks)
        seen += batch.n
        if batch_hooks:
            cbs.on_test_batch_end(step, run.logs(sums, seen))
    if not seen:
        raise ValueError(empty_error or "evaluate: no batches")
    logs = run.logs(sums, seen)
    model = run.model
    regs = model.buffers.regularized_ranges({id(w) for w in model.trainable_weights})
    if regs:
        # Keras' test step adds the trainable weights' penalties to the loss too.
        logs["loss"] += model.buffers.regularize(ops, regs, with_grad=False)
    if cbs is not None:
        cbs.on_test_end(logs)
    return logs


def _evaluate_feed(run, feed, cbs, epoch=None):
    """The logs of ``run`` over one pass of a StreamFeed (an evaluation, or fit's
    validation after ``epoch``)."""
    def batches():
        for data in feed.epoch():
            if data.raw_shapes != run.raw_shapes:
                run.raw_shapes = data.raw_shapes
            yield data

    what = _adapters.describe(feed.source)
    hint = (" (a one-shot generator is used up by the first validation: pass "
            "validation_steps and one that repeats, or a PyDataset)" if epoch else "")
    when = f" for the validation after epoch {epoch + 1}" if epoch is not None else ""
    try:
        logs = evaluate_batches(run, batches(), cbs,
                                f"{feed.where}: {what} yielded no batches{when}{hint}")
    except BaseException:
        feed.close()
        raise
    feed.end_epoch()
    return logs


def evaluate(model, x, y, batch_size, verbose, sample_weight, return_dict, callbacks,
             steps=None):
    """Model.evaluate (see its docstring)."""
    batch_size = check_batch_size(batch_size, "evaluate")
    if _adapters.is_batch_source(x):
        _check_stream_call("evaluate", x, y, sample_weight)
        feed = _adapters.StreamFeed(x, steps, "steps", False,
                                    _batch_preparer(model, None, "evaluate"), "evaluate")
        try:
            first = feed.start()
            cbs = _callback_list(callbacks, model, feed.steps, verbose)
            run = Run(model, current_ops(), first)
            return _report(_evaluate_feed(run, feed, cbs), verbose, return_dict)
        finally:
            feed.close()
    steps = _adapters.check_steps(steps, "steps", "evaluate")
    data = _prepare(model, x, y, sample_weight, None, "evaluate")
    if steps is not None:
        data = data.slice(0, _first_steps(data.n, batch_size, steps, "evaluate"))
    return _evaluate_logs(model, data, batch_size, verbose, return_dict, callbacks)


def _first_steps(n, batch_size, steps, where):
    """How many samples ``steps`` batches of arrays cover (Keras warns when there are
    fewer batches than steps, and runs those)."""
    available = -(-n // batch_size)
    if steps > available:
        _adapters.warn(f"{where}: steps={steps} but the arrays make only {available} "
                       f"batches of {batch_size}; running those")
    return min(n, steps * batch_size)


def test_on_batch(model, x, y, sample_weight):
    """Model.test_on_batch: evaluate on all of (x, y) as one batch."""
    data = _prepare(model, x, y, sample_weight, None, "test_on_batch")
    return _evaluate_logs(model, data, data.n, 0, False, None)


def _callback_list(callbacks, model, steps, verbose):
    return None if callbacks is None else _callbacks.CallbackList(
        callbacks, model, {"epochs": 1, "steps": steps, "verbose": verbose})


def _evaluate_logs(model, data, batch_size, verbose, return_dict, callbacks):
    cbs = _callback_list(callbacks, model, -(-data.n // batch_size), verbose)
    run = Run(model, current_ops(), data)
    return _report(evaluate_data(run, data, batch_size, cbs), verbose, return_dict)


def _report(logs, verbose, return_dict):
    if verbose in (1, 2):
        print(" - ".join(f"{k}: {v:.4g}" for k, v in logs.items()))
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def train_on_batch(model, x, y, sample_weight, class_weight):
    """Model.train_on_batch: one training step on (x, y); the loss, or [loss, ...]."""
    if model._in_fit:
        raise RuntimeError(f"{model.name}: train_on_batch() inside fit() is not supported")
    data = _prepare(model, x, y, sample_weight, class_weight, "train_on_batch")
    ops = current_ops()
    run = Run(model, ops, data)
    trainable = {id(w) for w in model.trainable_weights}
    step = _train_step(run, run.schedule(), _training_scratch(model, run.plan),
                       model.buffers.trainable_ranges(trainable),
                       model.buffers.regularized_ranges(trainable), True)
    sums = run.zero_sums()
    step(data.inputs, data.targets, data.weights, data.n, sums, None, None)
    values = list(run.logs(sums, data.n).values())
    return values[0] if len(values) == 1 else values


# ---- predict -------------------------------------------------------------------------
def predict(model, x, batch_size, verbose, callbacks, steps=None):
    """Model.predict (see its docstring)."""
    batch_size = check_batch_size(batch_size, "predict")
    if _adapters.is_batch_source(x):
        feed = _adapters.StreamFeed(
            x, steps, "steps", False,
            lambda x, y, sample_weight, at: _data_prep.prepare_inputs(model, x, at), "predict")
        try:
            return _predict_feed(model, feed, callbacks, verbose)
        finally:
            feed.close()
    steps = _adapters.check_steps(steps, "steps", "predict")
    inputs = _data_prep.prepare_inputs(model, x, "predict")
    if steps is not None:
        n = _first_steps(inputs[0].shape[0], batch_size, steps, "predict")
        inputs = [a[:n] for a in inputs]
    return _predict_arrays(model, inputs, batch_size, verbose, callbacks)


def _predict_feed(model, feed, callbacks, verbose):
    """predict over streamed batches: each batch's outputs, concatenated."""
    feed.start()                              # may build the model
    ops, plan = current_ops(), model.plan()
    scratch = plan.scratch(param_grads=False)
    cbs = _callback_list(callbacks, model, feed.steps, verbose)
    batch_hooks = cbs is not None and cbs.wants_predict_batch_hooks
    if cbs is not None:
        cbs.on_predict_begin()
    parts = []
    for step, inputs in enumerate(feed.epoch()):
        if batch_hooks:
            cbs.on_predict_batch_begin(step)
        outs = [np.array(o) for o in plan.predict(ops, inputs, scratch)]   # scratch is reused
        parts.append(outs)
        if batch_hooks:
            cbs.on_predict_batch_end(step, {"outputs": model.pack_outputs(outs)})
    feed.end_epoch()
    if cbs is not None:
        cbs.on_predict_end()
    return model.pack_outputs([np.concatenate(per_output) for per_output in zip(*parts)])


def predict_on_batch(model, x):
    """Model.predict_on_batch: the outputs for all of x as one batch."""
    inputs = _data_prep.prepare_inputs(model, x, "predict_on_batch")
    return _predict_arrays(model, inputs, inputs[0].shape[0], 0, None)


def call_on_arrays(model, x, training):
    """``model(x)`` on arrays: one batch, in training mode when asked (BatchNorm's
    batch statistics, dropout), without touching the model's training scratch."""
    inputs = _data_prep.prepare_inputs(model, x, "call")
    if not training:
        return _predict_arrays(model, inputs, inputs[0].shape[0], 0, None)
    plan = model.plan()
    outs = plan.forward(current_ops(), inputs, True, plan.scratch(param_grads=False))
    return model.pack_outputs([np.array(o) for o in outs])


def _predict_arrays(model, inputs, batch_size, verbose, callbacks):
    ops, plan = current_ops(), model.plan()
    n = inputs[0].shape[0]
    scratch = plan.scratch(param_grads=False)
    cbs = None if callbacks is None else _callbacks.CallbackList(
        callbacks, model, {"epochs": 1, "steps": -(-n // batch_size), "verbose": verbose})
    batch_hooks = cbs is not None and cbs.wants_predict_batch_hooks
    if cbs is not None:
        cbs.on_predict_begin()
    results = None
    for step, start in enumerate(range(0, n, batch_size)):
        stop = min(start + batch_size, n)
        if batch_hooks:
            cbs.on_predict_batch_begin(step)
        outs = plan.predict(ops, [x[start:stop] for x in inputs], scratch)
        if results is None:
            results = [np.empty((n,) + o.shape[1:], dtype=o.dtype) for o in outs]
        for result, out in zip(results, outs):
            result[start:stop] = out
        if batch_hooks:
            batch_out = [r[start:stop] for r in results]
            cbs.on_predict_batch_end(step, {"outputs": model.pack_outputs(batch_out)})
    if cbs is not None:
        cbs.on_predict_end()
    return model.pack_outputs(results)


# ---- argument checks -----------------------------------------------------------------
def check_batch_size(batch_size, where):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"fit: {name} must be an integer >= 0, got {value!r}")
    return int(value)
