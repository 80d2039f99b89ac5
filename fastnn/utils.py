"""Utilities with Keras' names: to_categorical, pad_sequences, set_random_seed,
PyDataset (alias Sequence)."""
import numpy as np

from fastnn._runtime import set_seed
from fastnn.py_dataset import PyDataset, Sequence  # noqa: F401  (Keras' names)
from fastnn.registry import register_keras_serializable  # noqa: F401  (Keras' alias)


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels: shape (..., ) -> (..., num_classes)."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"to_categorical: labels must be integers, got dtype {y.dtype}")
    if y.ndim >= 1 and y.shape[-1] == 1 and y.ndim > 1:
        y = y.reshape(y.shape[:-1])
    labels = y.astype(np.int64)
    if y.dtype.kind == "f" and not np.array_equal(labels, y):
        raise ValueError("to_categorical: labels must be whole numbers")
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical: labels must be >= 0, got {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(f"to_categorical: label {labels.max()} >= num_classes={num_classes}")
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out


def set_random_seed(seed):
    """Seed fastnn's generator (initializers, shuffling, dropout; each model draws from a
    generator of its own taken from it); an alias of fastnn.set_seed."""
    set_seed(seed)


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pad (and cut) sequences of different lengths to one array (Keras').

    ``sequences``: a list of sequences (lists or arrays; each step a number or an
    array of one shape). Returns an array of shape (len(sequences), maxlen) +
    step shape, ``maxlen`` defaulting to the longest sequence. Shorter ones are
    filled with ``value`` before ("pre") or after ("post") their steps; longer
    ones lose their first ("pre") or last ("post") steps.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'pad_sequences: padding must be "pre" or "post", got {padding!r}')
    if truncating not in ("pre", "post"):
        raise ValueError(f'pad_sequences: truncating must be "pre" or "post", got '
                         f"{truncating!r}")
    if not hasattr(sequences, "__len__"):
        raise ValueError("pad_sequences: sequences must be a list of sequences (iterables)")
    lengths, step_shape = [], None
    for i, seq in enumerate(sequences):
        if not hasattr(seq, "__len__"):
            raise ValueError(f"pad_sequences: sequence {i} is not a sequence: {seq!r}")
        lengths.append(len(seq))
        if step_shape is None and len(seq):
            step_shape = np.asarray(seq).shape[1:]
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be an integer >= 0 or None, got {maxlen!r}")
    step_shape = step_shape or ()
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" and isinstance(value, str):
        raise ValueError(f"pad_sequences: dtype {dtype} cannot hold the padding value {value!r}")
    out = np.full((len(lengths), int(maxlen)) + step_shape, value, dtype=dtype)
    for i, seq in enumerate(sequences):
        if not len(seq) or not maxlen:
            continue
        kept = np.asarray(seq[-maxlen:] if truncating == "pre" else seq[:maxlen], dtype=dtype)
        if kept.shape[1:] != step_shape:
            raise ValueError(f"pad_sequences: the steps of sequence {i} have shape "
                             f"{kept.shape[1:]}, expected {step_shape} like the first sequence's")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, maxlen - len(kept):] = kept
    return out
