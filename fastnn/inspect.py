"""Looking inside a model: every layer call's outputs, and saliency (input gradients).

Both run in inference mode, in batches, with scratch of their own: they never
touch the model's training workspaces or its gradient buffer. They reuse the
model's executor (fastnn.graph.plan), so they see any graph: shared layers,
several inputs and outputs, nested models.
"""
import numpy as np

from fastnn import data_prep as _data_prep
from fastnn.backend import current_ops
from fastnn.run import Run
from fastnn.trainer import Data

_BATCH = 256


def activations(model, X, batch_size=_BATCH):
    """Return {name: output} for every layer call of the model's graph, in order
    (inference mode): the layer's name, with ``:1``, ``:2``... for its second,
    third... call. A nested model's entry is its output."""
    inputs = _data_prep.prepare_inputs(model, X, "activations")
    ops, plan = current_ops(), model.plan()
    calls, seen = [], {}
    for node in model.graph.nodes:
        count = seen.get(id(node.operation), 0)
        seen[id(node.operation)] = count + 1
        name = node.operation.name if count == 0 else f"{node.operation.name}:{count}"
        calls.append((name, plan.node_slots[node]))
    outputs = {name: [] for name, _ in calls}
    scratch = plan.scratch(param_grads=False)
    n = inputs[0].shape[0]
    for start in range(0, n, batch_size):
        values = plan.forward_all(ops, [x[start:start + batch_size] for x in inputs], False,
                                  scratch)
        for name, slots in calls:
            # copies: the workspaces are reused by the next batch
            outputs[name].append([values[s].copy() for s in slots])
    result = {}
    for name, parts in outputs.items():
        joined = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
        result[name] = joined[0] if len(joined) == 1 else joined
    return result


def input_gradients(model, X, target=None, y=None, batch_size=_BATCH, output=0):
    """Saliency: gradients with respect to the inputs, shaped like X (a list for a
    model with several inputs; None for an input of integer indices), in
    inference mode.

    - ``target`` (an int, or one int per sample) indexes each sample's
      flattened ``output`` (its index or name): the gradient of that unit;
    - ``y`` (targets, as for ``evaluate``): the gradient of each sample's loss
      (every output's, weighted as compiled), not divided by the batch size
      (needs a compiled model);
    - neither: the gradient of each sample's top-scoring unit of ``output``.
    """
    if target is not None and y is not None:
        raise ValueError("input_gradients: pass target or y, not both")
    inputs = _data_prep.prepare_inputs(model, X, "input_gradients")
    ops, plan = current_ops(), model.plan()
    n = inputs[0].shape[0]
    out_k = _output_index(model, output)
    out_size = int(np.prod(model.outputs[out_k].shape[1:]))
    targets = None if target is None else _check_targets(target, n, out_size)
    run = data = None
    if y is not None:
        if model.optimizer is None or all(o.loss is None for o in model.objectives()):
            raise ValueError("input_gradients: y= needs a model compiled with a loss")
        targets, raw_shapes = _data_prep.prepare_targets(model, model.objectives(), y, n,
                                                         "input_gradients")
        data = Data(inputs, targets, [], raw_shapes)
        run = Run(model, ops, data)              # the losses as fit and evaluate take them
        plan = run.plan
        schedule = plan.schedule(run.grad_slots(), run.fused_slots(), inputs_need_grad=True)
    else:
        schedule = plan.schedule([plan.output_slots[out_k]], inputs_need_grad=True)
    scratch = plan.scratch(param_grads=False)
    grads = [np.zeros(x.shape, dtype=x.dtype) if x.dtype.kind == "f" else None for x in inputs]
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = [x[start:stop] for x in inputs]
        if run is not None:
            part = data.slice(start, stop)
            outs = plan.forward(ops, run.plan_inputs(batch, part.targets), False, scratch)
            _, douts = run.batch_losses(outs, part.targets, part.weights, stop - start,
                                        scratch, run.zero_sums(), with_grad=True)
            for d in douts:
                d *= stop - start        # per-sample losses, not their batch mean
        else:
            outs = plan.forward(ops, batch, False, scratch)
            flat = outs[out_k].reshape(stop - start, -1)
            chosen = flat.argmax(axis=1) if targets is None else targets[start:stop]
            dout = np.zeros_like(flat)
            dout[np.arange(stop - start), chosen] = 1
            douts = [dout.reshape(outs[out_k].shape)]
        input_grads = plan.backward(ops, schedule, douts, scratch)
        for grad, part in zip(grads, input_grads):
            if grad is not None and part is not None:
                grad[start:stop] = part
    return grads[0] if len(grads) == 1 else grads


def _output_index(model, output):
    names = model.output_names
    if isinstance(output, str):
        if output not in names:
            raise ValueError(f"input_gradients: no output named {output!r}; outputs are {names}")
        return names.index(output)
    if isinstance(output, bool) or not isinstance(output, (int, np.integer)) \
            or not 0 <= output < len(names):
        raise ValueError(f"input_gradients: output must be an output's name or index in "
                         f"[0, {len(names)}), got {output!r}")
    return int(output)


def _check_targets(target, n, out_size):
    targets = np.asarray(target)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"input_gradients: target must be integers, got {targets.dtype}")
    targets = np.broadcast_to(targets, (n,)) if targets.ndim == 0 else targets
    if targets.shape != (n,):
        raise ValueError(f"input_gradients: target must be an int or {n} ints, got shape "
                         f"{targets.shape}")
    if targets.min() < 0 or targets.max() >= out_size:
        raise ValueError(f"input_gradients: target must index the flattened output "
                         f"[0, {out_size}), got [{targets.min()}, {targets.max()}]")
    return targets.astype(np.int64)
