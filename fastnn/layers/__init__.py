"""Keras-style layers."""
from fastnn.layers.base import Layer
from fastnn.layers.core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from fastnn.layers.normalization import BatchNormalization
from fastnn.layers.regularization import Dropout

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Flatten", "Reshape",
           "Dropout", "BatchNormalization"]

# The layer types a saved model may name, by class name: fastnn.saving builds
# only these (plus a caller's own custom_objects), so a file can never make
# fastnn import or run anything else. Adding a layer type is one line here,
# e.g. ``"Dropout": Dropout,`` -- its get_config() must return keyword
# arguments its __init__ (or from_config) accepts.
LAYER_CLASSES = {
    "InputLayer": InputLayer,
    "Dense": Dense,
    "Activation": Activation,
    "Flatten": Flatten,
    "Reshape": Reshape,
    "Dropout": Dropout,
    "BatchNormalization": BatchNormalization,
}
