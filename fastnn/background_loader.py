"""Loading batches in a background thread while the model computes.

The kernels release the GIL, so a thread that reads, decodes or converts the
next batches runs while the current step computes: an epoch over a generator
that costs as much as a step takes about one step's time per batch instead
of two. Batches arrive in order; an exception raised while loading reaches
the consumer at the batch where it happened, with its traceback.
"""
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

_END = object()          # the source has no more items
_POLL_S = 0.05           # how often a blocked producer checks whether it was stopped


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


class BackgroundLoader:
    """Iterate over ``produce()``'s items, each made in a background thread,
    at most ``depth`` ahead of the consumer.

    ``produce``: a callable returning an iterator; it runs in the loader thread
    and ends when the iterator does. ``close()`` (or leaving a ``with`` block)
    stops the thread early: it is joined, so nothing still reads the source
    after close returns (unless the source itself blocks forever, when the
    daemon thread is left behind).
    """

    def __init__(self, produce, depth, name="fastnn-loader"):
        self._queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(produce,), name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self, produce):
        items = produce()
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as error:          # handed to the consumer, raised there
            self._put(_Failure(error))
            return
        finally:
            # a stopped producer's own clean-up (a worker pool's) runs now, here
            close = getattr(items, "close", None)
            if close is not None:
                close()
        self._put(_END)

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item

    def close(self):
        """Stop loading and wait for the thread (drop what was loaded ahead)."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(_POLL_S)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ordered_pool(load, keys, workers, depth):
    """Yield ``load(key)`` for each of ``keys`` in order, computed by ``workers``
    threads with at most ``depth`` loads in flight (for a PyDataset's workers)."""
    keys = iter(keys)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastnn-worker") as pool:
        pending = []
        try:
            for key in keys:
                pending.append(pool.submit(load, key))
                if len(pending) >= depth:
                    break
            while pending:
                result = pending.pop(0).result()
                key = next(keys, _END)
                if key is not _END:
                    pending.append(pool.submit(load, key))
                yield result
        finally:
            for future in pending:
                future.cancel()
