"""Keras-style layers."""
from fastnn.layers.base import Layer
from fastnn.layers.core import Activation, Dense, Flatten, Input, InputLayer, Reshape

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Flatten", "Reshape"]
