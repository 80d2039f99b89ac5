"""Keras-style layers."""
from fastnn import registry as _registry
from fastnn.layers.base import Layer
from fastnn.layers.core import Activation, Dense, Flatten, Input, InputLayer, Reshape
from fastnn.layers.normalization import BatchNormalization
from fastnn.layers.layer_normalization import LayerNormalization, RMSNormalization
from fastnn.layers.attention import MultiHeadAttention
from fastnn.layers.position_embedding import PositionEmbedding
from fastnn.layers.regularization import Dropout
from fastnn.layers.embedding import Embedding
from fastnn.layers.einsum_dense import EinsumDense
from fastnn.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from fastnn.layers.convolutional import Conv1D, Conv2D, Convolution1D, Convolution2D
from fastnn.layers.merging import (
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
    concatenate, dot, maximum, minimum, multiply, subtract,
)
from fastnn.layers.activation_layers import ELU, PReLU, LeakyReLU, ReLU, Softmax
from fastnn.layers.reshaping import (
    Cropping1D, Cropping2D, Permute, RepeatVector, Rescaling, ZeroPadding1D, ZeroPadding2D,
)
from fastnn.layers.noise import (
    GaussianDropout, GaussianNoise, SpatialDropout1D, SpatialDropout2D,
)
from fastnn.layers.pooling import (
    AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
    GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D,
)

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Flatten", "Reshape",
           "Dropout", "BatchNormalization", "LayerNormalization", "RMSNormalization",
           "MultiHeadAttention", "PositionEmbedding", "Embedding", "EinsumDense", "SimpleRNN", "LSTM", "GRU",
           "Bidirectional",
           "Conv1D", "Conv2D", "Convolution1D", "Convolution2D",
           "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D",
           "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
           "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
           "RepeatVector", "Permute", "Rescaling", "ZeroPadding1D", "ZeroPadding2D",
           "Cropping1D", "Cropping2D",
           "GaussianNoise", "GaussianDropout", "SpatialDropout1D", "SpatialDropout2D",
           "serialize", "deserialize"]

# The layer types a saved model may name, by class name (fastnn.registry):
# fastnn.saving builds only these (plus a caller's own custom_objects), so a
# file can never make fastnn import or run anything else. Adding a layer type
# is one line here, e.g. ``"Dropout": Dropout,`` -- its get_config() must
# return keyword arguments its __init__ (or from_config) accepts.
LAYER_CLASSES = {
    "InputLayer": InputLayer,
    "Dense": Dense,
    "Activation": Activation,
    "Flatten": Flatten,
    "Reshape": Reshape,
    "Dropout": Dropout,
    "BatchNormalization": BatchNormalization,
    "LayerNormalization": LayerNormalization,
    "RMSNormalization": RMSNormalization,
    "MultiHeadAttention": MultiHeadAttention,
    "PositionEmbedding": PositionEmbedding,
    "Embedding": Embedding,
    "EinsumDense": EinsumDense,
    "SimpleRNN": SimpleRNN,
    "LSTM": LSTM,
    "GRU": GRU,
    "Bidirectional": Bidirectional,
    "Conv2D": Conv2D,
    "Conv1D": Conv1D,
    "MaxPooling2D": MaxPooling2D,
    "AveragePooling2D": AveragePooling2D,
    "GlobalMaxPooling2D": GlobalMaxPooling2D,
    "GlobalAveragePooling2D": GlobalAveragePooling2D,
    "MaxPooling1D": MaxPooling1D,
    "AveragePooling1D": AveragePooling1D,
    "GlobalMaxPooling1D": GlobalMaxPooling1D,
    "GlobalAveragePooling1D": GlobalAveragePooling1D,
    "Add": Add,
    "Subtract": Subtract,
    "Multiply": Multiply,
    "Average": Average,
    "Maximum": Maximum,
    "Minimum": Minimum,
    "Concatenate": Concatenate,
    "Dot": Dot,
    "ReLU": ReLU,
    "LeakyReLU": LeakyReLU,
    "PReLU": PReLU,
    "ELU": ELU,
    "Softmax": Softmax,
    "RepeatVector": RepeatVector,
    "Permute": Permute,
    "Rescaling": Rescaling,
    "ZeroPadding1D": ZeroPadding1D,
    "ZeroPadding2D": ZeroPadding2D,
    "Cropping1D": Cropping1D,
    "Cropping2D": Cropping2D,
    "GaussianNoise": GaussianNoise,
    "GaussianDropout": GaussianDropout,
    "SpatialDropout1D": SpatialDropout1D,
    "SpatialDropout2D": SpatialDropout2D,
}
for _name, _cls in LAYER_CLASSES.items():
    _registry.register("layer", _name, _cls)


def serialize(layer):
    """Keras' description of a layer, ``{"class_name": ..., "config": get_config()}``
    (a registered class by its ``package>name``). A whole model is saved with
    ``save`` or described by ``fastnn.saving.model_config``."""
    return _registry.serialize(layer)


def deserialize(config, custom_objects=None):
    """A new layer from a ``serialize`` description: fastnn's own layer classes,
    those registered with register_keras_serializable and those in
    ``custom_objects``."""
    return _registry.deserialize("layer", config, custom_objects, base=Layer)
