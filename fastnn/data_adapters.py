"""Batches that stream in: Python generators, iterables and PyDataset (Keras 3's rules).

``fit`` / ``evaluate`` / ``predict`` take, besides arrays, a source of whole
batches: a ``fastnn.utils.PyDataset``, or any iterable (a generator, a PyTorch
``DataLoader``, an object with ``__iter__``) yielding ``(x, y)``,
``(x, y, sample_weight)`` or, for predict, ``x`` / ``(x,)`` -- arrays, or
anything ``np.asarray`` turns into arrays.

How many batches make an epoch (or an evaluation) is Keras 3's rule:
- without ``steps`` (``steps_per_epoch``, ``validation_steps``, ``steps``): a
  PyDataset's ``len``; an iterable until it is exhausted. A re-iterable source
  (a PyDataset, a DataLoader, anything whose ``iter()`` starts over) gives a
  new pass each epoch; a one-shot iterator (a generator) is used up by the
  first, and an epoch that then gets no batch ends training with a warning.
- with ``steps``: that many batches, the pass carrying on across epochs (a
  generator is consumed across epochs; a PyDataset's pass continues where the
  last epoch stopped). Data that runs out first ends the epoch early with a
  warning, and the next epoch starts a new pass.

A ``StreamFeed`` runs one source for one call: each epoch's batches are read
and prepared (cast, checked) by a background thread (``BackgroundLoader``)
while the model computes; the call's first batch is prepared in the calling
thread, since it may build the model.
"""
import itertools
import os
import sys
import threading
import warnings

import numpy as np

from fastnn import _runtime
from fastnn.background_loader import BackgroundLoader, ordered_pool
from fastnn.py_dataset import PyDataset

# Batches a generator's loader reads ahead of the model: one being read while
# another waits is enough to overlap loading with compute; more smooths jitter.
ITERATOR_READ_AHEAD = 4


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(message):
    """A UserWarning pointing at the user's line (the first frame outside fastnn)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)


def is_batch_source(x):
    """Whether ``x`` is a PyDataset or an iterable of batches (rather than arrays, a
    list / tuple / dict of arrays, or an array-like such as a tensor)."""
    if isinstance(x, PyDataset):
        return True
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False                         # a tensor, a DataFrame: one array
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def describe(source):
    if isinstance(source, PyDataset):
        return f"the PyDataset {type(source).__name__}"
    return "the generator" if hasattr(source, "__next__") else \
        f"the iterable {type(source).__name__}"


def check_steps(steps, name, where):
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{where}: {name} must be an integer >= 1 or None, got {steps!r}")
    return int(steps)


# ---- one batch ----------------------------------------------------------------------
def unpack_batch(batch, where):
    """A batch as (x, y, sample_weight) of arrays (None where absent), as Keras
    unpacks it: a tuple or list of 1 to 3 items, or anything else as x alone."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        batch = (batch,)
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"{where}: a batch must be (x,), (x, y) or (x, y, sample_weight); "
                         f"got a tuple of {len(batch)} items")
    x, y, w = batch + (None,) * (3 - len(batch))
    if x is None:
        raise ValueError(f"{where}: the batch's x is None")
    return _as_arrays(x, where, "x"), _as_arrays(y, where, "y"), _as_arrays(w, where,
                                                                            "sample_weight")


def _as_arrays(value, where, what):
    """Every leaf of a (nested) list / tuple / dict as a NumPy array."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict):
        return {k: _as_arrays(v, where, what) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and value and not _is_number_list(value):
        return [_as_arrays(v, where, what) for v in value]
    try:
        return np.asarray(value)
    except Exception as error:
        raise TypeError(f"{where}: the batch's {what} ({type(value).__name__}) cannot be "
                        f"turned into an array: {error}") from error


def _is_number_list(value):
    # a nested list of numbers is one array's data, not a structure of arrays
    first = value[0]
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    return isinstance(first, (int, float, complex, bool, np.generic))


# ---- one call's source --------------------------------------------------------------
class StreamFeed:
    """The batches of ``source`` for one fit / evaluate / predict call (see the module
    docstring). ``prepare(x, y, sample_weight, where)`` turns one batch into what
    the loop runs on; ``steps``: the batches per epoch when known (given, or a
    PyDataset's length; else learned at the end of the first epoch)."""

    def __init__(self, source, steps, steps_name, shuffle, prepare, where):
        self.source, self.where, self.steps_name = source, where, steps_name
        self.dataset = source if isinstance(source, PyDataset) else None
        self.given_steps = check_steps(steps, steps_name, where)
        self.one_shot = self.dataset is None and hasattr(source, "__next__")
        self.shuffle = bool(shuffle) and self.dataset is not None
        self.prepare = prepare
        self.steps = self.given_steps if self.given_steps is not None else self._length()
        self._iterator = None                 # an iterable's open pass
        self._order, self._at = None, 0       # a PyDataset's open pass
        self._ready = threading.Event()       # the model is built: prepare in the loader
        self._epoch = None                    # the open epoch: (loader, its state)
        self._held = None                     # the first batch, read by start()
        self.epochs_read = 0

    def _length(self):
        if self.dataset is None:
            return None
        n = len(self.dataset)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{self.where}: {describe(self.source)}'s __len__ must return "
                             f"an integer >= 0, got {n!r}")
        return int(n)

    # ---- epochs -------------------------------------------------------------------
    def start(self):
        """Open the first epoch and return its first prepared batch (in this thread:
        it may build the model); ``epoch()`` then yields it first."""
        self._open()
        try:
            self._held = next(self._epoch[0])
        except StopIteration:
            self.close()
            raise ValueError(f"{self.where}: {describe(self.source)} yielded no batches") \
                from None
        return self._held

    def epoch(self):
        """An iterator over this epoch's prepared batches; call ``end_epoch()`` after it."""
        if self._epoch is None:
            self._open()
        loader = self._epoch[0]
        items = itertools.chain((self._held,), loader) if self._held is not None else loader
        self._held = None
        return items

    def _open(self):
        state = {"ran_out": False, "count": 0}
        if self.dataset is not None:
            self.dataset.on_epoch_begin()
            produce, depth = self._dataset_batches(state), self.dataset.max_queue_size
        else:
            if self._iterator is None or self.given_steps is None:
                self._iterator = iter(self.source)
            produce, depth = self._iterator_batches(state), ITERATOR_READ_AHEAD
        self._epoch = (_Prepared(BackgroundLoader(produce, depth), self), state)

    def _dataset_batches(self, state):
        n = self._length()
        if self._order is None or self._at >= len(self._order) or self.given_steps is None:
            self._order = (_runtime.rng().permutation(n) if self.shuffle
                           else np.arange(n))          # drawn here, in the caller's thread
            self._at = 0
        want = self.given_steps or len(self._order)
        indices = self._order[self._at:self._at + want]
        self._at += len(indices)
        state["ran_out"] = len(indices) < want
        state["count"] = len(indices)
        dataset, ready, where = self.dataset, self._ready, self.where

        def load(position_index):
            position, index = position_index
            at = f"{where} (batch {position + 1}: {type(dataset).__name__}[{index}])"
            batch = unpack_batch(dataset[int(index)], at)
            return self.prepare(*batch, at) if ready.is_set() else _Raw(batch, at)

        keys = list(enumerate(indices))
        workers = dataset.workers
        if workers > 1:
            return lambda: ordered_pool(load, keys, workers, dataset.max_queue_size)
        return lambda: (load(key) for key in keys)

    def _iterator_batches(self, state):
        iterator, want = self._iterator, self.given_steps
        ready, where, name = self._ready, self.where, describe(self.source)

        def produce():
            position = 0
            while want is None or position < want:
                try:
                    raw = next(iterator)
                except StopIteration:
                    state["ran_out"] = True
                    return
                position += 1
                state["count"] = position
                at = f"{where} (batch {position} of {name})"
                batch = unpack_batch(raw, at)
                yield self.prepare(*batch, at) if ready.is_set() else _Raw(batch, at)
        return produce

    def end_epoch(self):
        """Finish the epoch: stop its loader, tell a PyDataset, warn when the data ran
        out before the steps asked for. Returns how many batches it had."""
        if self._epoch is None:
            return 0
        loader, state = self._epoch
        self._epoch = None
        loader.close()
        if self.dataset is not None:
            self.dataset.on_epoch_end()
        count = state["count"]
        if state["ran_out"]:
            if self.dataset is None:
                self._iterator = None          # a re-iterable starts over next epoch
            if self.given_steps is not None and count:
                warn(f"{self.where}: {describe(self.source)} ran out of data after {count} "
                     f"of {self.steps_name}={self.given_steps} batches; the epoch ended early "
                     f"(make sure it can produce at least {self.steps_name} * epochs "
                     "batches)")
        if self.steps is None and count and self.epochs_read == 0:
            self.steps = count                 # learned at the end of the first epoch
        self.epochs_read += 1
        return count

    def close(self):
        """Stop any loading (an interrupted call)."""
        if self._epoch is not None:
            self._epoch[0].close()
            self._epoch = None


class _Raw:
    """A batch read before the model was ready: prepared in the calling thread."""

    __slots__ = ("batch", "where")

    def __init__(self, batch, where):
        self.batch, self.where = batch, where


class _Prepared:
    """The loader's items, each prepared: in the loader thread once the model is
    ready, else here in the calling thread (which then marks the model ready)."""

    def __init__(self, loader, feed):
        self.loader, self.feed = loader, feed

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.loader)
        if isinstance(item, _Raw):
            item = self.feed.prepare(*item.batch, item.where)
            self.feed._ready.set()
        return item

    def close(self):
        self.loader.close()
