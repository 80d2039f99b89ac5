"""What one fit / evaluate / train_on_batch call computes with: a ``Run``.

It fixes, for the call's data, the execution plan (the model's own, or the
model's extended with the losses of your own, traced into it), the outputs
that have losses (and whether each takes its layer's logits), the metrics
and the names of the logs. During the call it turns a batch's outputs into
the loss and the seed gradients of backward, and accumulates the running
sums the logs are made of (``sums``: the total loss, each output's loss when
there are several, then each metric's; all sample-weighted sums, so that
distributed training reduces them with one Allreduce).
"""
import numpy as np

from fastnn import data_prep as _data_prep
from fastnn import losses as _losses
from fastnn import metrics as _metrics
from fastnn.compile_utils import FUSABLE, metric_log_names
from fastnn.graph.calls import placeholder
from fastnn.graph.graph import Graph
from fastnn.graph.operation import as_symbolic, tracing
from fastnn.graph.plan import Plan


class Run:
    """One call's view of the model (see the module docstring)."""

    def __init__(self, model, ops, data):
        self.model, self.ops = model, ops
        objectives = _data_prep.target_objectives(model.objectives())
        self.objectives = objectives
        self.out_index = [o.index for o in objectives]       # target k -> model output
        traced = [(k, o) for k, o in enumerate(objectives) if o.loss is not None
                  and o.loss.is_traced]
        self.plan = plan = _loss_plan(model, traced, data) if traced else model.plan()
        n_out = len(model.outputs)
        self.slots = [plan.output_slots[o.index] for o in objectives]
        value_slot = {k: plan.output_slots[n_out + i] for i, (k, _) in enumerate(traced)}
        self.losses = []       # (target k, objective, fused step or None, loss value slot)
        loss_slots = [self.slots[k] for k, o in enumerate(objectives) if o.loss is not None
                      and not o.loss.is_traced]
        for k, objective in enumerate(objectives):
            if objective.loss is None:
                continue
            if objective.loss.is_traced:
                self.losses.append((k, objective, None, value_slot[k]))
            else:
                self.losses.append((k, objective, self._fused_step(objective, loss_slots),
                                    None))
        # (target k, metric, its first sums index or None, weighed by sample_weight?):
        # every output's metrics, then every output's weighted_metrics
        self.metrics = []
        self.loss_names = len(self.losses) if len(self.losses) > 1 else 0
        at = 1 + self.loss_names
        for weighted in (False, True):
            for k, objective in enumerate(objectives):
                dim = model.outputs[objective.index].shape[-1]
                for metric in (objective.resolve_weighted_metrics(dim) if weighted
                               else objective.resolve_metrics(dim)):
                    width = 0 if metric.is_stateful else 2       # (sum, count)
                    self.metrics.append((k, metric, at if width else None, weighted))
                    at += width
        self.n_sums = at
        several = len(model.output_names) > 1
        self.names = ["loss"] + [f"{o.name}_loss" for _, o, _, _ in
                                 self.losses[:self.loss_names]]
        self.names += metric_log_names(objectives, [(k, m) for k, m, _, w in self.metrics
                                                    if not w],
                                       [(k, m) for k, m, _, w in self.metrics if w], several)
        self._batch_weights = None     # the sample weights batch_losses saw last
        self.raw_shapes = data.raw_shapes
        self.raw_targets = {k for k, _ in traced}    # targets kept as given (traced losses)
        self.batch_losses = self._make_batch_losses()

    # ---- the plan's outputs --------------------------------------------------------
    def _fused_step(self, objective, loss_slots):
        """The step whose layer's logits this output's loss takes (softmax / sigmoid
        fused into cross-entropy, as Keras on TensorFlow does), or None. Only an
        output nothing else reads, made by a layer called once, is fused."""
        plan, loss = self.plan, objective.loss
        slot = plan.output_slots[objective.index]
        k = plan.producer(slot)
        if k is None:
            return None
        layer = plan.steps[k].layer
        fused = (not loss.from_logits and hasattr(layer, "logits")
                 and loss.kernel in FUSABLE.get(getattr(layer, "activation", None), ())
                 and not plan.consumers(slot) and loss_slots.count(slot) == 1
                 and sum(st.layer is layer for st in plan.steps) == 1)
        if hasattr(layer, "keep_logits"):
            layer.keep_logits = fused
        return k if fused else None

    def grad_slots(self):
        """Where backward starts: each kernel loss's output, each traced loss's values."""
        return [self.slots[k] if value is None else value for k, _, _, value in self.losses]

    def fused_slots(self):
        return [self.slots[k] for k, _, step, _ in self.losses if step is not None]

    def schedule(self, inputs_need_grad=False):
        """The backward pass of this run's losses (fixed for the run: which layers
        are frozen is read now, as Keras reads it at compile / fit)."""
        schedule = self.plan.schedule(self.grad_slots(), self.fused_slots(), inputs_need_grad)
        for layer in schedule.unreached:        # no gradient reaches them: zeros, not stale
            for w in layer.trainable_weights:
                if w.grad is not None:
                    w.grad.fill(0)
        return schedule

    def plan_inputs(self, inputs, targets):
        """The plan's inputs for a batch: the model's, then the traced losses' targets."""
        if len(self.plan.input_slots) == len(inputs):
            return inputs
        return list(inputs) + [targets[k] for k, o, _, value in self.losses
                               if value is not None]

    # ---- losses --------------------------------------------------------------------------
    def _make_batch_losses(self):
        """``batch_losses(outs, targets, weights, b, scratch, sums, with_grad)``: the
        batch's total (weighted) loss, each output's loss times the batch size
        ``b`` added to ``sums``; with_grad also gives backward's seeds (in the order
        of ``self.losses``). Built once per run, with every lookup done here (W1's
        step is ~20 us; this runs in every one)."""
        ops, per_output = self.ops, bool(self.loss_names)
        n_out = len(self.model.outputs)
        terms = []
        for j, (k, objective, step, value_slot) in enumerate(self.losses):
            loss = objective.loss
            fused = None if step is None else (self.plan.steps[step].layer, step)
            traced_at = None if value_slot is None else \
                n_out + [v for *_, v in self.losses if v is not None].index(value_slot)
            terms.append((j, k, self.out_index[k], loss, objective.weight, fused, traced_at,
                          f"dloss{k}"))

        output_slots = self.slots

        def batch_losses(outs, targets, weights, b, scratch, sums, with_grad):
            self._batch_weights = weights     # the same batch's weighted_metrics use them
            total, grads = 0.0, []
            masks = scratch.masks
            for j, k, output, loss, weight, fused, traced_at, key in terms:
                mask = None if masks is None else masks[output_slots[k]]
                if traced_at is not None:
                    values = outs[traced_at]
                    grad = scratch.own.buffer(key, values.shape, values.dtype) \
                        if with_grad else None
                    w = weights[k]
                    if mask is not None and mask.shape == values.shape:
                        w = masked_weights(w, mask, loss.reduction, values.dtype)
                    value, grad = _losses.reduce_values(ops, values, w, loss.reduction, grad)
                else:
                    out = outs[output]
                    width = out.shape[-1]
                    grad = scratch.own.buffer(key, out.shape, out.dtype) if with_grad else None
                    pred, from_logits = out, loss.from_logits
                    if fused is not None:
                        pred, from_logits = fused[0].logits(scratch.steps[fused[1]]), True
                    w = weights[k]
                    if mask is not None and mask.size * width == out.size:
                        w = masked_weights(w, mask, loss.reduction, out.dtype).reshape(-1)
                    value = ops.loss(loss.kernel, pred.reshape(-1, width), targets[k],
                                     from_logits=from_logits, delta=loss.delta,
                                     grad_out=None if grad is None else grad.reshape(-1, width),
                                     sample_weight=w)
                if weight != 1.0:
                    if grad is not None:
                        ops.scale_(grad.reshape(-1), weight)
                    total += weight * value
                else:
                    total += value
                if per_output:
                    sums[1 + j] += value * b
                grads.append(grad)
            return total, grads
        return batch_losses

    # ---- metrics and logs --------------------------------------------------------------
    def zero_sums(self):
        """Fresh running sums (and stateful metrics reset): an epoch or an evaluation starts."""
        for _, metric, _, _ in self.metrics:
            if metric.is_stateful:
                metric.reset_state()
        return [0.0] * self.n_sums

    def add_metrics(self, outs, targets, sums, masks=None):
        """Add one batch's metric values to ``sums`` (stateful metrics update themselves).
        ``masks``: each slot's time-step mask (a forward's ``scratch.masks``): masked
        steps of an output count in none of its metrics, as in Keras. Weighted metrics
        take the sample weights of the batch whose losses were computed last (each
        step computes its losses, then its metrics)."""
        batch_weights = self._batch_weights
        for k, metric, at, weighted in self.metrics:
            target = targets[k]
            if target is None:
                continue
            out = outs[self.out_index[k]]
            width = out.shape[-1]
            mask = None if masks is None else masks[self.slots[k]]
            if weighted and batch_weights and batch_weights[k] is not None:
                row_weights = batch_weights[k].reshape(-1)       # one per target row
                if mask is not None and mask.size == row_weights.size:
                    row_weights = row_weights * mask.reshape(-1)     # masked steps weigh 0
                self._add_weighted(k, metric, at, out, target, row_weights, sums)
                continue
            if metric.kernel is not None:
                # kernel metrics read (rows, D) targets or class indices; a traced loss's
                # targets are kept as given, shaped like the output
                rows = target.reshape(-1, width) if k in self.raw_targets else target
                pred = out.reshape(-1, width)
                if mask is not None and mask.size == pred.shape[0]:
                    kept = mask.reshape(-1).astype(bool)
                    pred, rows = pred[kept], rows[kept]
                if pred.shape[0]:
                    sums[at] += self.ops.metric_sum(metric.kernel, pred, rows)
                sums[at + 1] += pred.shape[0]
                continue
            y_true = target.reshape((out.shape[0],) + self.raw_shapes[k])
            if metric.is_stateful:
                if mask is None:
                    metric.update_state(y_true, out)
                else:
                    metric.update_state(y_true, out, sample_weight=mask.astype(out.dtype))
                continue
            values = metric.values(y_true, out)
            if mask is not None and values.shape == mask.shape:
                sums[at] += float((values * mask).sum())
                sums[at + 1] += int(mask.sum())
            elif values.ndim:
                sums[at] += float(values.sum())
                sums[at + 1] += values.size
            else:                                    # a batch mean: weigh it by the batch
                sums[at] += float(values) * out.shape[0]
                sums[at + 1] += out.shape[0]

    def _add_weighted(self, k, metric, at, out, target, row_weights, sums):
        """Add one batch to a weighted metric: its values weighed by the batch's
        sample weights (Keras' weighted_metrics)."""
        width = out.shape[-1]
        if metric.kernel is not None:
            rows = target.reshape(-1, width) if k in self.raw_targets else target
            values = _metrics.kernel_values(metric.kernel, out.reshape(-1, width), rows)
            sums[at] += float(values @ row_weights)
            sums[at + 1] += float(row_weights.sum())
            return
        y_true = target.reshape((out.shape[0],) + self.raw_shapes[k])
        steps = out.shape[:-1]
        weights = row_weights.reshape(steps) if row_weights.size * width == out.size \
            else row_weights
        if metric.is_stateful:
            metric.update_state(y_true, out, sample_weight=weights)
            return
        total, count = _metrics.weighted_sums(metric.values(y_true, out), weights)
        sums[at] += total
        sums[at + 1] += count

    def logs(self, sums, seen):
        """The logs dict of ``sums`` over ``seen`` samples."""
        logs = {"loss": sums[0] / seen}
        for j in range(self.loss_names):
            logs[self.names[1 + j]] = sums[1 + j] / seen
        for (k, metric, at, _), name in zip(self.metrics, self.names[1 + self.loss_names:]):
            if metric.is_stateful:
                value = np.asarray(metric.result())
                # one per threshold or class (Precision's list, F1Score's average=None)
                logs[name] = float(value) if value.ndim == 0 else value.copy()
            else:
                logs[name] = sums[at] / sums[at + 1] if sums[at + 1] else 0.0
        return logs

    @property
    def has_stateful_metrics(self):
        return any(metric.is_stateful for _, metric, _, _ in self.metrics)


def _loss_plan(model, traced, data):
    """The model's plan extended with its traced losses: each loss's ``call`` traced
    on a placeholder of its targets and the model's output, its per-sample values
    a new output. Kept per model structure and targets' signature."""
    base = model.plan()
    key = tuple((k, data.raw_shapes[k], data.targets[k].dtype.str) for k, _ in traced)
    cache = model.__dict__.setdefault("_loss_plans", {})
    held = cache.get(key)
    if held is not None and held[0] is base:
        return held[1]
    graph = model.graph
    placeholders, values = [], []
    for k, objective in traced:
        y_true = placeholder((None,) + data.raw_shapes[k], data.targets[k].dtype,
                             f"y_true_{objective.name}")
        with tracing():
            value = objective.loss.call(y_true, graph.outputs[objective.index])
        placeholders.append(y_true)
        values.append(as_symbolic(value))
    extended = Graph(list(graph.inputs) + placeholders, list(graph.outputs) + values,
                     f"the losses of {model.name!r}", allow_unused=True)
    plan = Plan(extended)
    cache[key] = (base, plan)
    return plan


def masked_weights(sample_weight, mask, reduction, dtype):
    """Keras' ``apply_mask``: the loss weights of an output's time steps under its mask
    (N, T) -- the sample weights (None: 1; per sample or per step) times the mask,
    and for mean reductions times total / kept steps, so that the loss is the mean
    over the kept steps. Shaped like the mask."""
    weights = mask.astype(dtype)
    if reduction in ("sum_over_batch_size", "mean"):
        kept = int(mask.sum())
        weights *= dtype.type(mask.size / kept if kept else 0.0)
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=dtype)
        weights *= w.reshape(mask.shape) if w.size == mask.size else \
            w.reshape(w.shape + (1,) * (mask.ndim - w.ndim))
    return weights
