"""fastnn: a Keras-style neural-network engine for the CPU.

Hot loops run in C with OpenMP (the compiled backend); a pure-NumPy backend
with the same interface is the reference and the fallback.

    from fastnn import layers, models
    model = models.Sequential([layers.Dense(64, activation="relu", input_shape=(10,)),
                               layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(X, y, epochs=10, batch_size=32)
"""
import importlib

from fastnn import (  # noqa: F401
    activations, callbacks, initializers, layers, losses, metrics, models, optimizers,
    preprocessing, regularizers, saving, utils,
)
from fastnn._runtime import (  # noqa: F401
    floatx, get_backend, get_num_threads, get_oversubscription_guard, set_backend, set_floatx,
    set_num_threads, set_oversubscription_guard, set_seed,
)
from fastnn._version import __version__  # noqa: F401
from fastnn.config import show_config  # noqa: F401
from fastnn.graph.tensor import KerasTensor  # noqa: F401
from fastnn.layers import Input  # noqa: F401
from fastnn.models import Model, Sequential  # noqa: F401

# Reachable as attributes right after `import fastnn`, imported on first use.
_LAZY = ("ops", "inspect", "distributed", "backend", "bench")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"fastnn.{name}")
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
