"""A node: one call of a layer on symbolic tensors.

Nodes are numbered in the order they are created. A node's inputs always
exist before it, so that order is a topological order of any graph; a model
sorts the nodes it needs by it once, when it is built.
"""
import itertools

_creation = itertools.count()


class Node:
    """``operation`` (a layer or a model) called on ``inputs`` (KerasTensors) giving
    ``outputs``. ``list_input``: the layer was called on a list (merge layers);
    ``training``: a value fixed at call time (``base(x, training=False)``) or None
    to follow the model's mode; ``subgraph``: for a layer with a traced ``call``,
    the Graph of that call (from placeholders of ``inputs`` to ``outputs``), and
    ``arguments`` how the call was made."""

    __slots__ = ("operation", "inputs", "outputs", "list_input", "training", "order",
                 "subgraph", "arguments", "static")

    def __init__(self, operation, inputs, outputs, list_input=False, training=None,
                 subgraph=None, arguments=None, static=None):
        self.operation = operation
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.list_input = bool(list_input)
        self.training = training
        self.subgraph = subgraph
        # a call's arguments as data (a layer of your own, or one of fastnn's taking
        # several): its args and kwargs with each tensor replaced by {"__tensor__":
        # its index in ``inputs``}, to replay the call when a file is loaded
        self.arguments = arguments
        # what such a call fixed that is not a tensor (MultiHeadAttention's causal
        # mask...): the layer reads it from its workspace when the node runs
        self.static = static
        self.order = next(_creation)
        for i, tensor in enumerate(self.outputs):
            tensor.node, tensor.index = self, i
        operation._inbound_nodes.append(self)

    # Keras' names
    @property
    def input_tensors(self):
        return list(self.inputs)

    @property
    def output_tensors(self):
        return list(self.outputs)

    def inputs_as_called(self):
        """The inputs as the layer was called: a list for merge layers, else one
        tensor (an Input's node: its own tensor, as Keras' ``InputLayer.input``)."""
        if not self.inputs:
            return self.outputs[0]
        return list(self.inputs) if self.list_input else self.inputs[0]

    @property
    def is_input(self):
        """Whether this is the node of an ``Input`` (or of a traced call's placeholder):
        a graph's entry, not something it computes."""
        return getattr(self.operation, "is_graph_input", False)

    def parent_nodes(self):
        """The nodes that make this node's inputs."""
        return [t.node for t in self.inputs if t.node is not None]

    def detach(self):
        """Forget this node (a Sequential model popping its last layer)."""
        nodes = self.operation._inbound_nodes
        if self in nodes:
            nodes.remove(self)

    def __repr__(self):
        return f"<Node {self.operation.name} #{self.order}>"
