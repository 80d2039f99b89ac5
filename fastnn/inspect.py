"""Looking inside a model: each layer's outputs, and saliency (input gradients).

Both run in inference mode, in batches, with scratch of their own: they never
touch the model's training workspaces or its gradient buffer.
"""
import numpy as np

from fastnn.backend import current_ops
from fastnn.layers.base import Workspace

_BATCH = 256


def activations(model, X, batch_size=_BATCH):
    """Return {layer name: that layer's output for X}, in layer order (inference mode)."""
    x = model._prepare_x(X, "activations")
    ops = current_ops()
    names = [layer.name for layer in model.layers]
    outputs = {name: [] for name in names}
    workspaces = [Workspace() for _ in names]
    for start in range(0, x.shape[0], batch_size):
        out, mask = x[start:start + batch_size], None
        for layer, ws, name in zip(model.layers, workspaces, names):
            ws.mask = mask               # a time-step mask travels as in Model._forward
            out = layer.forward(ops, out, False, ws)
            if mask is not None or layer.makes_mask:
                mask = layer.output_mask(ws)
            outputs[name].append(out.copy())   # the workspace is reused by the next batch
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def input_gradients(model, X, target=None, y=None, batch_size=_BATCH):
    """Saliency: gradients with respect to the inputs, shaped like X (inference mode).

    - ``target`` (an int, or one int per sample) indexes each sample's
      flattened output: the gradient of that output unit;
    - ``y`` (targets, as for ``evaluate``): the gradient of each sample's loss,
      not divided by the batch size (needs a compiled model);
    - neither: the gradient of each sample's top-scoring output unit.
    """
    if target is not None and y is not None:
        raise ValueError("input_gradients: pass target or y, not both")
    x = model._prepare_x(X, "input_gradients")
    n = x.shape[0]
    out_size = int(np.prod(model.layers[-1].output_shape))
    targets = None
    if target is not None:
        targets = _check_targets(target, n, out_size)
    if y is not None:
        if model.loss is None:
            raise ValueError("input_gradients: y= needs a model compiled with a loss")
        y = model._prepare_y(y, n, "input_gradients")
    ops = current_ops()
    fused = model._fused_output() if y is not None else False
    y_rows = 0 if y is None else y.shape[0] // n
    workspaces = [Workspace(param_grads=False) for _ in model.layers]
    grads = np.empty(x.shape, dtype=x.dtype)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        out = model._forward(ops, x[start:stop], False, workspaces)
        flat = out.reshape(stop - start, -1)
        if y is not None:
            dout = np.empty_like(out)
            model._batch_loss(ops, out, y[start * y_rows:stop * y_rows], fused, workspaces[-1],
                              dout.reshape(-1, out.shape[-1]))
            dout *= stop - start        # per-sample losses, not their batch mean
        else:
            chosen = flat.argmax(axis=1) if targets is None else targets[start:stop]
            dout = np.zeros_like(flat)
            dout[np.arange(stop - start), chosen] = 1
            dout = dout.reshape(out.shape)
        grads[start:stop] = _backward(model, ops, dout, workspaces, fused and y is not None)
    return grads


def _backward(model, ops, dout, workspaces, fused):
    layers = model.layers
    d = dout
    for i in range(len(layers) - 1, -1, -1):
        if i == len(layers) - 1 and fused:
            d = layers[i].backward(ops, d, workspaces[i], True, from_preact=True)
        else:
            d = layers[i].backward(ops, d, workspaces[i], True)
    return d


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
