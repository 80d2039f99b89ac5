"""Calling a layer: on symbolic tensors it records a node, on arrays it computes.

``layer(x)`` with ``x`` a KerasTensor (or, for merge layers, a list of them)
builds the layer for x's shape if it is not built yet (checks the shape if it
is), and returns KerasTensors for its outputs, recorded as a Node. With arrays
it runs the layer's forward pass now, on the current backend, in inference
mode unless ``training=True``.
"""
import numpy as np

from fastnn.graph.node import Node
from fastnn.graph.tensor import KerasTensor, any_symbolic


def call_layer(layer, inputs, training):
    if training is not None and not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{layer.name}: training must be True, False or None, got {training!r}")
    if any_symbolic(inputs):
        return _symbolic_call(layer, inputs, None if training is None else bool(training))
    return _eager_call(layer, inputs, bool(training))


def layer_inputs(layer, inputs):
    """The call's inputs as a list, checked against what ``layer`` takes."""
    if layer.takes_list:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError(f"{layer.name}: a {type(layer).__name__} layer is called on a "
                             f"list of inputs, got {type(inputs).__name__}")
        return list(inputs)
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 1:
            raise ValueError(f"{layer.name}: a {type(layer).__name__} layer takes one input, "
                             f"got a list of {len(inputs)}")
        inputs = inputs[0]
    return [inputs]


def _symbolic_call(layer, inputs, training):
    tensors = layer_inputs(layer, inputs)
    for t in tensors:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"{layer.name}: called on a mix of symbolic tensors and "
                            f"{type(t).__name__}; pass only tensors from keras.Input or "
                            "from other layers")
    shape = _build_or_check(layer, [t.shape[1:] for t in tensors])
    out_shape = tuple(layer.compute_output_shape(shape))
    batches = {t.shape[0] for t in tensors}
    batch = batches.pop() if len(batches) == 1 else None
    output = KerasTensor((batch,) + out_shape, layer.dtype, name=layer.name)
    Node(layer, tensors, [output], list_input=layer.takes_list, training=training)
    return output


def _build_or_check(layer, shapes):
    """Build ``layer`` for its inputs' ``shapes`` (batch axis excluded), or check
    that the built layer takes them; returns the shape argument it was given."""
    shape = shapes if layer.takes_list else shapes[0]
    if not layer.built:
        layer.build(shape)
    else:
        layer.check_input_shape(shape)
    return shape


def _eager_call(layer, inputs, training):
    from fastnn.backend import current_ops
    arrays = [_as_array(layer, x) for x in layer_inputs(layer, inputs)]
    _build_or_check(layer, [a.shape[1:] for a in arrays])
    return layer.forward(current_ops(), arrays if layer.takes_list else arrays[0], training, None)


def _as_array(layer, x):
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{layer.name}: inputs need a batch axis, got a scalar")
    if getattr(layer, "integer_input", False):
        return layer.prepare_indices(x, layer.name)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{layer.name}: inputs must be numeric, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=layer.dtype)
