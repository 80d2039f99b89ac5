"""A model's graph: the nodes between its input and output tensors, sorted once.

Nodes are found by walking back from the outputs and stopping at the inputs,
then sorted by creation order (a node's inputs always exist before it, so
that is a topological order, and it is the order the user wrote). Errors name
the tensors and layers involved: an output that depends on a tensor which is
not an input ("disconnected"), an input no output uses, a repeated input.
"""
from fastnn.graph.tensor import KerasTensor


def describe(tensor):
    """'dense_1 output (None, 64)' -- a tensor as errors name it."""
    node = tensor.node
    if node is None:
        return f"a tensor of shape {tensor.shape}"
    what = "input" if node.is_input else "output"
    if len(node.outputs) > 1:
        what += f" {tensor.index}"
    return f"{node.operation.name!r} {what} {tensor.shape}"


def unique(items):
    """``items`` in order, each object once (by identity)."""
    out, seen = [], set()
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


class Graph:
    """The sorted nodes of ``outputs`` as functions of ``inputs`` (KerasTensors)."""

    def __init__(self, inputs, outputs, where, allow_unused=False):
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        for role, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            if not tensors:
                raise ValueError(f"{where}: a model needs at least one of its {role}")
            for t in tensors:
                if not isinstance(t, KerasTensor):
                    raise TypeError(f"{where}: {role} must be symbolic tensors (from "
                                    f"keras.Input or a layer called on one), got "
                                    f"{type(t).__name__}")
        input_ids = {id(t) for t in self.inputs}
        if len(input_ids) != len(self.inputs):
            raise ValueError(f"{where}: the same tensor is passed twice in inputs")
        self.nodes = self._walk(where, input_ids, allow_unused)

    def _walk(self, where, input_ids, allow_unused):
        found, reached, seen = {}, set(), set()
        stack = [(t, t) for t in self.outputs]
        while stack:
            tensor, output = stack.pop()
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if id(tensor) in input_ids:
                reached.add(id(tensor))
                continue
            node = tensor.node
            if node is None or node.is_input:
                names = ", ".join(describe(t) for t in self.inputs)
                raise ValueError(f"{where}: the graph is disconnected: output "
                                 f"{describe(output)} depends on {describe(tensor)}, which "
                                 f"is not one of the model's inputs ({names})")
            found[node.order] = node
            stack.extend((t, output) for t in node.inputs)
        unused = [describe(t) for t in self.inputs if id(t) not in reached]
        if unused and not allow_unused:
            raise ValueError(f"{where}: input {', '.join(unused)} is not connected to any "
                             f"of the outputs ({', '.join(describe(t) for t in self.outputs)})")
        return [found[k] for k in sorted(found)]

    def layers(self):
        """The layers of the graph: the Input layers (in input order), then every other
        operation in the order of its first call, each once (Keras' model.layers)."""
        inputs = [t.node.operation for t in self.inputs if t.node is not None and t.node.is_input]
        return unique(inputs + [node.operation for node in self.nodes])

    def nodes_of(self, operation):
        """This graph's calls of ``operation``, in order."""
        return [n for n in self.nodes if n.operation is operation]
