"""Noticing a rank that is missing, so that a distributed ``fit`` ends instead of
waiting for it forever.

An MPI collective returns only when every rank of the communicator has joined
it. A rank that exited before ``fit`` (``sys.exit`` finalises MPI cleanly, so
the launcher sees nothing wrong), or that vanished or stalled during it, leaves
the others blocked for good unless the launcher kills them: MPICH's hydra does
when a rank exits without ``MPI_Finalize``; ``srun`` and ``mpiexec
-disable-auto-cleanup`` do not. Two guards, bounded by the strategy's
``timeout`` (seconds), end such a job with exit status 1:

- ``arrive``: the first collective of ``fit`` is a handshake of small
  point-to-point messages on the strategy's private communicator, polled
  against a deadline, so each rank knows *which* ranks did not arrive and
  names them before aborting.
- ``Watchdog``: during the rest of ``fit``, a thread aborts the job when one
  collective has waited longer than the timeout. It adds no communication: the
  strategy only records when it entered its current collective (``_waiting``).
"""
import math
import numbers
import os
import sys
import threading
import time

import numpy as np

DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_ENV = "FASTNN_MPI_TIMEOUT"
_ABORT_GRACE_S = 0.2        # see abort_job
_ARRIVE_TAG = 1             # on the private communicator: no clash with the user's tags
_MAX_POLL_PAUSE_S = 0.02    # the handshake's latency once every rank is there
_NAMED_AT_MOST = 20         # ranks named in a message; the rest are counted


def resolve_timeout(timeout):
    """The timeout in seconds: ``timeout`` when given, else the environment
    variable FASTNN_MPI_TIMEOUT, else 60. ``math.inf`` (or ``"inf"``) waits
    forever. Raises ValueError / TypeError naming the source of a bad value."""
    source = "MPI(timeout=...)"
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV, "").strip()
        if not text:
            return DEFAULT_TIMEOUT_S
        source = TIMEOUT_ENV
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds > 0 (or 'inf' to "
                             f"wait forever), got {text!r}") from None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"{source} must be a number of seconds, got "
                        f"{type(timeout).__name__}")
    timeout = float(timeout)
    if not timeout > 0:             # also refuses NaN
        raise ValueError(f"{source} must be a number of seconds > 0 (or math.inf to wait "
                         f"forever), got {timeout!r}")
    return timeout


def abort_job(strategy, message):
    """Write ``message`` on stderr, naming this rank, then end the whole job with
    exit status 1 (``comm.Abort(1)``, or ``os._exit(1)`` from a thread that MPI
    does not allow to call it)."""
    sys.stdout.flush()
    # one write, then a moment for the launcher to forward it: output still in
    # flight when MPI_Abort kills the job can be lost
    sys.stderr.write(f"fastnn.distributed: rank {strategy.rank} of {strategy.size} {message}\n")
    sys.stderr.flush()
    time.sleep(_ABORT_GRACE_S)
    mpi = strategy._mpi
    if (threading.current_thread() is threading.main_thread()
            or mpi.Query_thread() == mpi.THREAD_MULTIPLE):
        strategy.comm.Abort(1)
    else:
        # a rank that exits without MPI_Finalize makes the launcher end the job
        os._exit(1)


def _name_ranks(ranks):
    shown = ", ".join(str(r) for r in ranks[:_NAMED_AT_MOST])
    more = len(ranks) - _NAMED_AT_MOST
    label = "rank" if len(ranks) == 1 else "ranks"
    return f"{label} {shown}" + (f" and {more} more" if more > 0 else "")


def _how_to_wait_longer(timeout):
    return (f"within {timeout:g} s (fastnn.distributed.MPI(timeout=...) or "
            f"{TIMEOUT_ENV} set it; inf waits forever)")


def arrive(strategy, where):
    """Return once every rank has called ``arrive`` too. A rank that has not
    within ``strategy.timeout`` seconds is named on stderr and the job aborted."""
    control, rank, size = strategy._control, strategy.rank, strategy.size
    note = np.array([rank], dtype=np.int64)
    inbox = np.zeros(size, dtype=np.int64)      # one slot per peer
    peers = [p for p in range(size) if p != rank]
    receiving = {p: control.Irecv(inbox[p:p + 1], source=p, tag=_ARRIVE_TAG) for p in peers}
    sending = {p: control.Isend(note, dest=p, tag=_ARRIVE_TAG) for p in peers}
    deadline = time.monotonic() + strategy.timeout
    pause = 1e-4
    while True:
        # Test() frees a request once it completes; keep only the pending ones
        receiving = {p: req for p, req in receiving.items() if not req.Test()}
        sending = {p: req for p, req in sending.items() if not req.Test()}
        if not receiving and not sending:
            return
        if time.monotonic() >= deadline:
            missing = sorted(set(receiving) | set(sending))
            one = len(missing) == 1
            abort_job(strategy, f"waited for {_name_ranks(missing)} at {where}, but "
                      f"{'it' if one else 'they'} did not arrive "
                      f"{_how_to_wait_longer(strategy.timeout)}. Every rank must call fit; "
                      f"{'that one has' if one else 'those have'} exited, failed before "
                      f"fit or {'is' if one else 'are'} still busy elsewhere. Aborting "
                      f"the job")
            return                  # reached only when Abort is faked (tests)
        time.sleep(pause)
        pause = min(2 * pause, _MAX_POLL_PAUSE_S)


class Watchdog:
    """A context manager around one distributed ``fit``: while inside, a daemon
    thread aborts the job when the strategy's current collective has waited
    longer than ``strategy.timeout``. With an infinite timeout it does nothing."""

    def __init__(self, strategy):
        self.strategy = strategy
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if math.isfinite(self.strategy.timeout):
            self._thread = threading.Thread(target=self._watch, name="fastnn-mpi-watchdog",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False

    def _watch(self):
        strategy = self.strategy
        timeout = strategy.timeout
        # the abort comes at most a quarter of the timeout (or 1 s) late
        period = min(1.0, timeout / 4)
        while not self._stop.wait(period):
            waiting = strategy._waiting         # (what, perf_counter at entry) or None
            if waiting is None:
                continue
            what, since = waiting
            waited = time.perf_counter() - since
            if waited > timeout:
                epoch = strategy._epoch
                when = f"epoch {epoch}" if epoch else "before the first epoch"
                abort_job(strategy, f"waited {waited:.1f} s in fit's {what} ({when}) "
                          f"for the other ranks, more than the "
                          f"timeout of {timeout:g} s (fastnn.distributed.MPI(timeout=...) "
                          f"or {TIMEOUT_ENV}; inf waits forever): a rank has exited, "
                          f"crashed or stalled; aborting the job")
                return              # reached only when Abort is faked (tests)
