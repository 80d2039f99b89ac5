"""Keras-style automatic names (dense, dense_1, dense_2...), one counter per prefix
for every layer, model and operation of the process."""
import itertools
import re
from collections import defaultdict

_name_counters = defaultdict(itertools.count)


def unique_name(prefix):
    """``prefix``, then ``prefix_1``, ``prefix_2``... on later calls."""
    n = next(_name_counters[prefix])
    return prefix if n == 0 else f"{prefix}_{n}"


def snake_case(name):
    # A digit does not start a word (Keras: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d).
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
