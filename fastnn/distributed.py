"""Data-parallel training across processes and machines, over MPI (mpi4py).

Every rank runs the same script on the same, global data::

    strategy = fastnn.distributed.MPI()          # .rank, .size, .is_chief, .comm
    model.fit(X, y, epochs=5, batch_size=64, distributed=strategy)

launched with ``mpiexec -n 4 python -m mpi4py train.py`` (or ``srun``). What
``fit(..., distributed=strategy)`` does:

- At the start, rank 0's parameters, optimizer state (slots and step count)
  and non-trainable state (BatchNormalization's moving statistics) are
  broadcast, one ``Bcast`` per flat buffer, so all ranks start identical.
- Each epoch, rank 0 broadcasts the seed of its shuffle (the state of its
  generator), and every rank draws the permutation rank 0 draws, the one a
  1-process ``fit`` would draw. The shuffled order is cut into global batches
  of ``size * batch_size``; rank r trains on its slice of each. Every rank
  takes the same number of steps; the last, partial global batch is split as
  evenly as possible (``split_evenly``), and a rank left without a sample
  contributes a zero gradient.
- Each step, every rank scales its gradient (a mean over its ``local_n``
  samples, as the loss kernels divide by the batch size) by
  ``local_n / global_n``, then one in-place ``Allreduce`` SUM on the flat
  gradient buffer gives every rank the gradient of the whole global batch:
  2 ranks at batch b equal 1 process at batch 2b, up to float rounding
  (exactly, with no Dropout, for the shuffle order). Clipping and the update
  then run identically everywhere, so weights stay bitwise identical.
- The epoch's loss and metrics (sample-weighted sums) and the validation
  (each rank evaluates an even share) are reduced, so every rank reports the
  same numbers, and callbacks decide the same (EarlyStopping, schedules).
- BatchNormalization's batch statistics stay per rank (Keras' default,
  unsynchronised BN), but the moving statistics are averaged over ranks at
  the end of every epoch, before validation and checkpoints. They are used
  only in inference, and the moving average is linear in the batch
  statistics, so one average per epoch equals averaging every step, for one
  collective per epoch instead of one per step.
- Only the chief (rank 0) prints progress and writes checkpoints and CSV
  logs (callbacks with ``chief_only = True`` are dropped on other ranks).
- A failure on one rank (any exception inside fit) prints its traceback and
  calls ``comm.Abort(1)``, ending the whole job instead of leaving the other
  ranks waiting in a collective forever.
- A missing rank ends the job with exit status 1 after ``timeout`` seconds
  (``MPI(timeout=...)``, else the environment variable ``FASTNN_MPI_TIMEOUT``,
  else 60; ``math.inf`` waits forever). ``fit`` starts with a handshake (small
  point-to-point messages on a private duplicate of the communicator, polled
  against the deadline): a rank that has not called ``fit`` by then, e.g. one
  that left the script with ``sys.exit(0)``, is named on every other rank's
  stderr, then the job aborts. After the handshake a watchdog thread aborts
  the job when any collective of ``fit`` has waited longer than ``timeout``
  for its peers (a rank that vanished with ``os._exit``, or stalled), naming
  the collective and the epoch. So ``timeout`` must exceed the longest time
  the ranks legitimately drift apart inside ``fit``, e.g. a chief-only
  callback's work at an epoch's end. It costs no extra communication per
  step: the watchdog reads a timestamp the collective wrappers already take.
  Launchers differ on a rank that exits *without* ``MPI_Finalize``
  (``os._exit``): MPICH's hydra kills the others at once, but reports that
  rank's own exit status, so ``os._exit(0)`` yields ``mpiexec`` status 0; a
  launcher that leaves the others running (``srun``, ``mpiexec
  -disable-auto-cleanup``) gets the watchdog's abort, status 1.

Only uppercase (buffer) collectives touch the flat buffers; nothing is
pickled in the hot path. The C core knows nothing about MPI. mpi4py is
imported when ``MPI()`` is constructed, never by ``import fastnn``.
"""
import functools
import time
import traceback

import numpy as np

from fastnn import _rank_watch, _runtime
from fastnn import trainer as _trainer

_INSTALL_HINT = ('fastnn.distributed.MPI needs mpi4py and an MPI library: '
                 'pip install "fastnn[mpich]" (mpi4py with a self-contained MPICH), or '
                 'pip install "fastnn[mpi]" to build mpi4py against your site\'s MPI')


def _import_mpi():
    """mpi4py's MPI module (initialising MPI), or ImportError saying what to install."""
    try:
        from mpi4py import MPI as mpi
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    except RuntimeError as exc:        # mpi4py present, but no MPI library it can load
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return mpi


# ---- pure arithmetic (tested in-process) -------------------------------------------

def global_steps(n, size, batch_size):
    """Steps per epoch when ``size`` ranks take ``batch_size`` samples each per step."""
    return -(-n // (size * batch_size))


def split_evenly(total, parts, index):
    """(offset, count) of part ``index`` when ``total`` items are cut into ``parts``
    contiguous parts as evenly as possible (the first ``total % parts`` get one more)."""
    base, extra = divmod(total, parts)
    return index * base + min(index, extra), base + (index < extra)


def local_bounds(step, n, size, rank, batch_size):
    """(start, stop) of rank ``rank``'s slice of global batch ``step`` (of ``size *
    batch_size`` samples, the last one shorter) in an epoch of ``n`` samples, and
    that global batch's size."""
    g_start = step * size * batch_size
    g_count = min(n - g_start, size * batch_size)
    offset, count = split_evenly(g_count, size, rank)
    return g_start + offset, g_start + offset + count, g_count


def weighted_mean(values, counts):
    """sum(values[i] * counts[i]) / sum(counts): the mean of means over parts of
    different sizes (rank-local losses, metrics) as if over all samples at once."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("weighted_mean: the counts sum to 0")
    return float((values * counts).sum() / total)


# ---- the strategy --------------------------------------------------------------------

class MPI:
    """Data-parallel training over MPI: pass it to ``model.fit(..., distributed=...)``.

    ``comm`` (default ``MPI.COMM_WORLD``) is the communicator of the ranks that
    train together. Attributes: ``rank``, ``size``, ``is_chief`` (rank 0),
    ``comm``, ``local_size`` (ranks on this node), ``timeout`` and
    ``comm_seconds`` (time spent in collectives during the last fit).

    ``timeout`` (seconds; default: the environment variable
    ``FASTNN_MPI_TIMEOUT``, else 60; ``math.inf`` waits forever) bounds how
    long a rank waits for the others inside ``fit``: for all of them to reach
    its start, then in any one collective. Past it, the rank says on stderr
    which ranks (or which collective) it waited for and aborts the job with
    exit status 1 instead of hanging.

    Constructing it sets fastnn's thread count to this node's cores divided by
    its ranks, unless ``fastnn.set_num_threads`` or ``OMP_NUM_THREADS`` chose
    one. Raises ImportError naming what to install when mpi4py is missing.
    """

    def __init__(self, comm=None, timeout=None):
        self.timeout = _rank_watch.resolve_timeout(timeout)   # before MPI starts
        self._mpi = _import_mpi()
        self.comm = self._mpi.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.local_size = self._count_local_ranks()
        # fastnn's own handshake messages travel here, never among the user's
        self._control = self.comm.Dup()
        self.comm_seconds = 0.0
        self._waiting = None        # (what, perf_counter at entry) during a collective
        self._epoch = 0             # the running epoch, from 1 (0: none yet), for messages
        _runtime.set_default_num_threads(max(1, _runtime.available_cores() // self.local_size))

    @property
    def is_chief(self):
        """Whether this is rank 0, the one that prints and writes files."""
        return self.rank == 0

    def __repr__(self):
        return f"fastnn.distributed.MPI(rank={self.rank}, size={self.size})"

    def _count_local_ranks(self):
        # ranks that share this node's memory share its cores
        local = self.comm.Split_type(self._mpi.COMM_TYPE_SHARED, key=self.rank)
        try:
            return local.Get_size()
        finally:
            local.Free()

    # ---- collectives (timed: the benchmark reports the time in communication;
    # ``what`` names it for the watchdog, which reads ``_waiting``) ----
    def _bcast(self, buf, what):
        start = time.perf_counter()
        self._waiting = (what, start)
        self.comm.Bcast(buf, root=0)
        self._waiting = None
        self.comm_seconds += time.perf_counter() - start

    def _allreduce(self, buf, what, op=None):
        start = time.perf_counter()
        self._waiting = (what, start)
        self.comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM if op is None else op)
        self._waiting = None
        self.comm_seconds += time.perf_counter() - start

    def _agree(self, flag, what):
        """True on every rank when ``flag`` is true on any (keeps ranks in step)."""
        buf = np.array([int(bool(flag))], dtype=np.int64)
        self._allreduce(buf, what, self._mpi.MAX)
        return bool(buf[0])

    def _fit_sync(self, model, ops, n, batch_size):
        """The per-fit helper ``Model.fit`` calls at its hook points."""
        return _FitSync(self, model, ops, n, batch_size)


def ends_job_on_failure(fit):
    """Decorates ``Model.fit``: with ``distributed=`` an MPI strategy of several
    ranks, an exception on any rank prints its traceback and aborts the whole
    job (``comm.Abort(1)``), and a watchdog aborts it when a collective waits
    longer than the strategy's timeout, so no rank waits forever in a
    collective. Without it, or on a single rank, exceptions propagate as usual."""
    @functools.wraps(fit)
    def guarded(model, *args, distributed=None, **kwargs):
        if distributed is None:
            return fit(model, *args, **kwargs)
        if not isinstance(distributed, MPI):
            raise TypeError(f"fit: distributed must be a fastnn.distributed.MPI() strategy, "
                            f"got {type(distributed).__name__}")
        if distributed.size == 1:
            return fit(model, *args, distributed=distributed, **kwargs)
        try:
            with _rank_watch.Watchdog(distributed):
                return fit(model, *args, distributed=distributed, **kwargs)
        except BaseException:
            _rank_watch.abort_job(distributed, "failed inside fit; aborting the job\n"
                                  + traceback.format_exc().rstrip("\n"))
            raise                       # not reached: Abort ends the process
    return guarded


class _FitSync:
    """The collectives of one distributed ``fit``: set up at its start, then called
    by the fit loop at its few hook points (all ranks call each one in step)."""

    def __init__(self, strategy, model, ops, n, batch_size):
        self.strategy = strategy
        self.model = model
        self.ops = ops
        self.n = n
        self.batch_size = batch_size
        self.rank, self.size = strategy.rank, strategy.size
        self.is_chief = strategy.is_chief
        self.steps = global_steps(n, self.size, batch_size)
        self._weight = 1.0              # local_n / global_n of the current step

    # ---- the start of fit ------------------------------------------------------------
    def begin(self, cbs, epochs, initial_epoch, n_val):
        """Check every rank runs the same fit, agree on per-batch hooks, and
        broadcast rank 0's parameters, optimizer state and non-trainable state."""
        self.strategy.comm_seconds = 0.0
        self.strategy._epoch = 0
        self._next_epoch = initial_epoch + 1
        # fit's first collective: a rank that never comes is named, not waited for
        _rank_watch.arrive(self.strategy, "the start of fit")
        self._check_same_fit(epochs, initial_epoch, n_val)
        # a chief's live progress bar wants per-batch logs; they are reduced, so
        # every rank must call the batch hooks when any does
        cbs.wants_batch_hooks = self.strategy._agree(cbs.wants_batch_hooks,
                                                     "agreement on per-batch callbacks")
        model, optimizer = self.model, self.model.optimizer
        what = "broadcast of rank 0's weights and optimizer state"
        self.strategy._bcast(model.buffers.params, what)
        for name in sorted(optimizer._slots):
            self.strategy._bcast(optimizer._slots[name], what)
        step = np.array([optimizer.iterations], dtype=np.int64)
        self.strategy._bcast(step, what)
        optimizer.iterations = int(step[0])
        self._bcast_state()

    def _check_same_fit(self, epochs, initial_epoch, n_val):
        names = ("samples", "batch_size", "epochs", "initial_epoch", "validation samples",
                 "parameters", "optimizer state arrays")
        facts = np.array([self.n, self.batch_size, epochs, initial_epoch, n_val,
                          self.model.buffers.size, len(self.model.optimizer._slots)],
                         dtype=np.int64)
        low, high = facts.copy(), facts.copy()
        what = "check that every rank runs the same fit"
        self.strategy._allreduce(low, what, self.strategy._mpi.MIN)
        self.strategy._allreduce(high, what, self.strategy._mpi.MAX)
        differ = [f"{name} ({lo} to {hi})" for name, lo, hi in zip(names, low, high) if lo != hi]
        if differ:
            raise ValueError("fit(distributed=...): every rank must call fit with the same "
                             "model, data and arguments, but these differ between ranks: "
                             + ", ".join(differ))

    # ---- non-trainable state (BatchNorm moving statistics) ---------------------------
    def _bcast_state(self):
        weights = self.model.state_weights(changing_only=False)
        if weights:
            staged = self._stage(weights)
            self.strategy._bcast(staged, "broadcast of rank 0's non-trainable state")
            self._unstage(weights, staged)

    def _average_state(self):
        weights = self.model.state_weights(changing_only=True)
        if weights:
            # float64 staging: the sum of equal float32 values is exact, so
            # ranks that agree keep their values bit for bit
            staged = self._stage(weights)
            self.strategy._allreduce(staged, "average of the moving statistics")
            staged /= self.size
            self._unstage(weights, staged)

    @staticmethod
    def _stage(weights):
        return np.concatenate([w.value.reshape(-1) for w in weights]).astype(np.float64)

    @staticmethod
    def _unstage(weights, staged):
        at = 0
        for w in weights:
            w.value[...] = staged[at:at + w.size].reshape(w.shape)
            at += w.size

    # ---- each epoch and step ---------------------------------------------------------
    def shuffle_order(self, n):
        """This epoch's permutation of the n samples: rank 0's generator draws it,
        exactly as a 1-process fit would; the others draw it from its broadcast state."""
        self.strategy._epoch = self._next_epoch      # an epoch starts (for messages)
        rng = _runtime.rng()
        words = _pack_rng_state(rng) if self.is_chief else np.zeros(_RNG_WORDS, np.uint64)
        self.strategy._bcast(words, "broadcast of the shuffle")
        if self.is_chief:
            return rng.permutation(n)
        return _unpack_rng_state(words).permutation(n)

    def local_bounds(self, step):
        """(start, stop) of this rank's slice of global batch ``step``."""
        if step == 0:                   # an epoch starts (also when not shuffled)
            self.strategy._epoch = self._next_epoch
        start, stop, g_count = local_bounds(step, self.n, self.size, self.rank, self.batch_size)
        self._weight = (stop - start) / g_count
        return start, stop

    def average_gradients(self):
        """Make the flat gradient buffer the global batch's mean gradient on every
        rank: scale by local_n / global_n, then one in-place Allreduce SUM."""
        grads = self.model.buffers.grads
        if self._weight != 1.0:
            self.ops.scale_(grads, self._weight)
        self.strategy._allreduce(grads, "gradient Allreduce")

    def empty_step(self, ranges):
        """A step on a rank with no sample of the (last) global batch: a zero
        gradient in the Allreduce, then the same update as every other rank."""
        buffers = self.model.buffers
        buffers.grads.fill(0)
        self.strategy._allreduce(buffers.grads, "gradient Allreduce")
        self.model.optimizer.apply(self.ops, buffers.params, buffers.grads, ranges[0], ranges[1])
        return 0.0

    def logs(self, run, sums, step):
        """The loss and metrics over every rank's samples up to ``step``: rank-local
        sums (each value times the local batch size) summed, divided by the count."""
        totals = np.array(sums, dtype=np.float64)
        self.strategy._allreduce(totals, "Allreduce of the loss and metrics")
        seen = min(self.n, (step + 1) * self.size * self.batch_size)
        return run.logs([float(t) for t in totals], seen)

    def end_epoch(self, run, sums, step):
        """The epoch's reduced logs; also averages the moving statistics, so
        validation and checkpoints see the same model on every rank."""
        self._average_state()
        self._next_epoch += 1
        return self.logs(run, sums, step)

    def agree_stop(self):
        """Whether any rank's callbacks asked to stop (then every rank stops)."""
        return self.strategy._agree(self.model.stop_training, "agreement on stopping")

    def evaluate(self, run, data, batch_size, cbs):
        """Validation: each rank evaluates an even share of ``data``; the shares'
        means are combined weighted by their sizes. Runs the callbacks'
        ``on_test_begin`` / ``on_test_end`` (not the per-batch test hooks)."""
        n = data.n
        start, count = split_evenly(n, self.size, self.rank)
        if cbs is not None:
            cbs.on_test_begin()
        if count:
            logs = _trainer.evaluate_data(run, data.slice(start, start + count), batch_size)
        else:                           # fewer samples than ranks: the same keys, zeros
            logs = run.logs(run.zero_sums(), 1)
        totals = np.array([value * count for value in logs.values()], dtype=np.float64)
        self.strategy._allreduce(totals, "Allreduce of the validation results")
        logs = {key: float(total / n) for key, total in zip(logs, totals)}
        if cbs is not None:
            cbs.on_test_end(logs)
        return logs


# ---- the shuffle seed: rank 0's generator state, as words ----------------------------
# words: [kind, state low, state high, inc low, inc high, has_uint32, uinteger]
# kind 1: a PCG64-family generator (fastnn's default_rng) sent as its full state;
# kind 0: any other generator: rank 0 sends a seed it draws (word 1).
_RNG_WORDS = 7
_MASK64 = (1 << 64) - 1
_PCG = ("PCG64", "PCG64DXSM")


def _pack_rng_state(rng):
    words = np.zeros(_RNG_WORDS, dtype=np.uint64)
    state = rng.bit_generator.state
    if state.get("bit_generator") in _PCG:
        inner = state["state"]
        words[:] = [1 if state["bit_generator"] == "PCG64" else 2,
                    inner["state"] & _MASK64, inner["state"] >> 64,
                    inner["inc"] & _MASK64, inner["inc"] >> 64,
                    state["has_uint32"], state["uinteger"]]
    else:
        words[1] = int(rng.integers(0, 2 ** 63))
    return words


def _unpack_rng_state(words):
    kind = int(words[0])
    if kind == 0:
        return np.random.default_rng(int(words[1]))
    name = _PCG[kind - 1]
    bit_generator = getattr(np.random, name)()
    bit_generator.state = {
        "bit_generator": name,
        "state": {"state": int(words[1]) | (int(words[2]) << 64),
                  "inc": int(words[3]) | (int(words[4]) << 64)},
        "has_uint32": int(words[5]), "uinteger": int(words[6])}
    return np.random.Generator(bit_generator)
