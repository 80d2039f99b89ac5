"""``keras.preprocessing.sequence.pad_sequences`` (the same function as
``fastnn.utils.pad_sequences``)."""
from fastnn.utils import pad_sequences

__all__ = ["pad_sequences"]
