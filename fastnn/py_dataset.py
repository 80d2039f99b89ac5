"""``PyDataset`` (alias ``Sequence``): a dataset of batches written in Python (Keras 3).

A subclass says how many batches there are (``__len__``) and how to make one
(``__getitem__``: ``(x, y)``, ``(x, y, sample_weight)``, ``(x,)`` or ``x``);
``fit``, ``evaluate`` and ``predict`` take it like arrays. Because batches are
addressed by index, ``fit(shuffle=True)`` permutes the order of the batches
each pass (the samples inside a batch keep the order ``__getitem__`` gives),
and ``workers > 1`` loads several batches at once.
"""
import warnings


class PyDataset:
    """Base class of a dataset whose batches come from Python code.

    Subclasses call ``super().__init__(**kwargs)`` and implement ``__len__``
    (the number of batches) and ``__getitem__(index)`` (one whole batch);
    ``on_epoch_begin`` / ``on_epoch_end`` run around each epoch (and each
    evaluation) over the dataset, for example to reshuffle samples between
    epochs.

    Args:
        workers: how many batches are loaded at once while the model trains.
            With 1 (the default) one background thread loads the next batches
            in order; with more, a pool of that many threads calls
            ``__getitem__`` for different indices at once (make it thread-safe).
            Reading files, decoding and NumPy work release the GIL, so threads
            overlap well with the compiled kernels, which release it too.
        use_multiprocessing: accepted for Keras compatibility; fastnn loads
            with threads either way and never starts processes (a process
            pool would need a picklable dataset and could not share the
            model's kernels' threads safely).
        max_queue_size: how many loaded batches may wait for the model
            (default 10); lower it to hold less memory.

    Example::

        class Shards(fastnn.utils.PyDataset):
            def __init__(self, paths, **kwargs):
                super().__init__(**kwargs)
                self.paths = paths
            def __len__(self):
                return len(self.paths)
            def __getitem__(self, i):
                batch = np.load(self.paths[i])
                return batch["x"], batch["y"]
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    # The settings are properties so that a subclass that forgot super().__init__
    # still works, with Keras' warning.
    @property
    def workers(self):
        self._defaults_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"PyDataset: workers must be an integer >= 1, got {value!r}")
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._defaults_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self):
        self._defaults_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"PyDataset: max_queue_size must be an integer >= 1, got "
                             f"{value!r}")
        self._max_queue_size = value

    def _defaults_if_super_not_called(self):
        missing = [name for name in ("_workers", "_use_multiprocessing", "_max_queue_size")
                   if name not in self.__dict__]
        if missing:
            self.__dict__.setdefault("_workers", 1)
            self.__dict__.setdefault("_use_multiprocessing", False)
            self.__dict__.setdefault("_max_queue_size", 10)
            warnings.warn(f"{type(self).__name__} should call super().__init__(**kwargs) in "
                          "its constructor (kwargs may hold workers, use_multiprocessing, "
                          "max_queue_size); using the defaults", stacklevel=3)

    def __getitem__(self, index):
        """The batch at position ``index``: ``(x, y)``, ``(x, y, sample_weight)``,
        ``(x,)`` or ``x``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self):
        """The number of batches."""
        raise NotImplementedError(f"{type(self).__name__} must implement __len__()")

    @property
    def num_batches(self):
        """The number of batches (``len(self)``)."""
        return len(self)

    def on_epoch_begin(self):
        """Called before each epoch (and each evaluation) reads the dataset."""

    def on_epoch_end(self):
        """Called after each epoch (and each evaluation) has read the dataset."""


Sequence = PyDataset
