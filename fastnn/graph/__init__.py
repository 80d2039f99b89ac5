"""The functional graph: symbolic tensors, the nodes layer calls record, a model's
sorted graph (``Graph``) and the executor that runs it (``fastnn.graph.plan``)."""
from fastnn.graph.graph import Graph
from fastnn.graph.node import Node
from fastnn.graph.tensor import KerasTensor, KerasHistory, any_symbolic, is_symbolic

__all__ = ["Graph", "KerasHistory", "KerasTensor", "Node", "any_symbolic", "is_symbolic"]
