"""Keras' ``keras.preprocessing`` path: ``preprocessing.sequence.pad_sequences``."""
from fastnn.preprocessing import sequence

__all__ = ["sequence"]
