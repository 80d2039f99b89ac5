"""Run the benchmark: every chosen workload x thread count x backend, checked, then timed.

``run(BenchConfig(...))`` returns a ``Report`` (machine info, rows, failures);
``on_row`` sees each row as soon as it is measured, so a long run shows progress.
Within one (workload, threads) group the NumPy row comes first and every
other row carries its speedup over it, measured in the same run.
"""
import dataclasses
from dataclasses import dataclass, field

import numpy as np

import fastnn
from fastnn import decoding
from fastnn.backend import get_ops
from fastnn.bench import checks, onnx_peer, peers, workloads
from fastnn.bench.machine import machine_info
from fastnn.bench.timing import (
    compiled_available, machine_cores, measure, measure_per_call, median, thread_limit,
    using_backend,
)

GEMM = "W5"
ALL_WORKLOADS = tuple(workloads.WORKLOADS) + (GEMM,)
BACKENDS = ("numpy", "compiled")     # run order: the NumPy reference first
# The start of the check of a row not run for a reason that is no failure (a
# peer that cannot express the model): shown with its reason, not timed, and
# not counted among the failures.
SKIPPED = "skipped: "


@dataclass
class BenchConfig:
    """What to run. ``None`` fields take the mode's default (quick, or ``full``)."""

    workloads: tuple = ALL_WORKLOADS
    threads: tuple = None            # default: 1 and 2, capped at the machine's cores
    backends: tuple = BACKENDS       # "compiled" is dropped when the extension is absent
    full: bool = False
    repeats: int = None              # timed repeats (the median is reported): 5 full, 3 quick
    n: int = None                    # samples per epoch, overriding every workload's
    gemm_shapes: tuple = None        # W5 shapes; default workloads.GEMM_FULL / GEMM_QUICK
    min_sample_s: float = None       # W5: shortest timed repeat: 0.1 s full, 0.02 s quick
    seed: int = 0
    peers: bool = True               # PyTorch / ONNX Runtime rows when installed

    def resolved(self):
        """A copy with every default filled in and the names validated."""
        unknown = [w for w in self.workloads if w not in ALL_WORKLOADS]
        if unknown:
            raise ValueError(f"unknown workload(s) {unknown}; "
                             f"expected some of {list(ALL_WORKLOADS)}")
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            raise ValueError(f"unknown backend(s) {bad}; expected some of {list(BACKENDS)}")
        threads = self.threads or tuple(t for t in (1, 2) if t <= machine_cores())
        if any(int(t) < 1 for t in threads):
            raise ValueError(f"thread counts must be >= 1, got {list(threads)}")
        return dataclasses.replace(
            self, threads=tuple(int(t) for t in threads),
            backends=tuple(b for b in BACKENDS if b in self.backends),
            repeats=self.repeats or (5 if self.full else 3),
            gemm_shapes=self.gemm_shapes or (workloads.GEMM_FULL if self.full
                                             else workloads.GEMM_QUICK),
            min_sample_s=self.min_sample_s or (0.1 if self.full else 0.02))


@dataclass
class Row:
    """One measured (or refused) line of the table."""

    workload: str
    size: str                        # "N=2048 b=32" or a GEMM shape
    threads: int
    backend: str
    unit: str                        # "samples/s" or "GFLOP/s"
    value: float = None              # None when the check failed or the row was
                                     # skipped: nothing was timed
    check: str = "reference"
    speedup: float = None            # value / the NumPy row's value of the same group
    times_s: list = field(default_factory=list)
    blas_threads_limited: bool = None
    peak_fraction: float = None      # achieved FLOP/s / the measured FMA peak of its threads


@dataclass
class Report:
    """The results of one run."""

    machine: dict
    config: dict
    rows: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.failures


def run(config, on_start=None, on_row=None):
    """Run the benchmark described by ``config`` (a BenchConfig); return a Report.

    ``on_start(report)`` is called once the machine is described, before any
    row; ``on_row(row)`` after each row. fastnn's backend and thread settings
    are restored afterwards.
    """
    cfg = config.resolved()
    if "compiled" in cfg.backends and not compiled_available():
        cfg = dataclasses.replace(cfg, backends=tuple(b for b in cfg.backends if b != "compiled"))
    report = Report(machine_info(peers=cfg.peers), _config_dict(cfg))
    if on_start is not None:
        on_start(report)

    def emit(row):
        report.rows.append(row)
        if row.value is None and not row.check.startswith(SKIPPED):
            report.failures.append(f"{row.workload} {row.size} threads={row.threads} "
                                   f"{row.backend}: {row.check}")
        if on_row is not None:
            on_row(row)

    for name in cfg.workloads:
        for threads in cfg.threads:
            if name == GEMM:
                gemm_rows(cfg, threads, emit)
            else:
                model_rows(workloads.WORKLOADS[name], cfg, threads, emit,
                           report.machine.get("fma_peak_gflops"))
    return report


def _config_dict(cfg):
    d = dataclasses.asdict(cfg)
    d["gemm_shapes"] = [s.label for s in cfg.gemm_shapes]
    return d


def _with_speedup(row, reference):
    if reference is not None and reference.value and row.value is not None:
        row.speedup = row.value / reference.value
    return row


# ---- model workloads (W1, W1-infer, W2, ...) ----------------------------------------

def model_rows(workload, cfg, threads, emit, report_peak=None):
    """Check, then time, ``workload`` on each backend (NumPy first) and peer;
    ``report_peak``: one core's measured FMA peak (GFLOP/s), for % of peak."""
    n = cfg.n or (workload.n_full if cfg.full else workload.n_quick)
    x, y = workload.make_data(n, np.random.default_rng(cfg.seed))
    size = f"N={n} b={workload.batch_size}"
    reference = None
    with thread_limit(threads) as limited:
        for backend in cfg.backends:                    # numpy first: the reference row
            row = Row(workload.name, size, threads, backend, workload.unit,
                      blas_threads_limited=limited)
            if backend != checks.REFERENCE:
                result = checks.check_model(workload, backend, x, y, cfg.seed)
                row.check = result.summary()
                if not result.ok:
                    emit(row)
                    continue
            row.times_s = time_model(workload, backend, x, y, cfg)
            row.value = n * workload.per_sample() / median(row.times_s)
            row.peak_fraction = _peak_fraction(workload, n, row, report_peak)
            if backend == checks.REFERENCE:
                reference = row
            emit(_with_speedup(row, reference))
        if cfg.peers and peers.torch_available():
            emit(_with_speedup(torch_row(workload, cfg, threads, x, y, size, report_peak),
                               reference))
        if cfg.peers and onnx_peer.runs(workload) and onnx_peer.available():
            emit(_with_speedup(onnx_row(workload, cfg, threads, x, y, size, report_peak),
                               reference))


def time_model(workload, backend, x, y, cfg):
    """Seconds per epoch (fit) or per pass (predict) of ``workload`` on ``backend``."""
    with using_backend(backend):
        fastnn.set_seed(cfg.seed)
        model = workload.build()
        if workload.train:
            def once():
                model.fit(x, y, batch_size=workload.batch_size, epochs=1, verbose=0)
            return measure(once, cfg.repeats, warmup=1)
        if workload.generate:
            def once():
                for start in range(0, x.shape[0], workload.batch_size):
                    decoding.generate(model, x[start:start + workload.batch_size],
                                      workload.generate, temperature=0.0)
            return measure(once, cfg.repeats, warmup=1)

        def once():
            model.predict(x, batch_size=workload.batch_size, verbose=0)
        # A pass takes well under a millisecond: time loops of passes, as for GEMM.
        return measure_per_call(once, cfg.repeats, cfg.min_sample_s)


def torch_row(workload, cfg, threads, x, y, size, peak=None):
    """The PyTorch row of ``workload`` (same model, initial weights and batch)."""
    row = Row(workload.name, size, threads, peers.PEER, workload.unit)
    try:
        model = _reference_model(workload, cfg)
        if not peers.supports(model, workload):
            row.check = "FAILED: this model has no PyTorch twin yet"
            return row
        xb, want = _reference_outputs(workload, model, x, y)
        runner = peers.TorchRunner(model, x, y, workload.batch_size, cfg.seed, workload)
        with peers.torch_threads(threads):
            result = peers.check_torch(runner, want, xb, workload.name)
            row.check = result.summary()
            if not result.ok:
                return row
            if workload.train:
                row.times_s = measure(runner.epoch, cfg.repeats, warmup=1)
            elif workload.generate:
                row.times_s = measure(lambda: runner.generate(workload.generate), cfg.repeats,
                                      warmup=1)
            else:
                row.times_s = measure_per_call(runner.predict, cfg.repeats, cfg.min_sample_s)
    except Exception as exc:     # a peer's problem is reported, never fatal
        row.check = f"FAILED: {type(exc).__name__}: {exc}"
        return row
    return _timed(row, workload, x.shape[0], peak)


def onnx_row(workload, cfg, threads, x, y, size, peak=None):
    """The ONNX Runtime row of inference ``workload``: the model's initial weights
    as an ONNX graph, run on ``threads`` intra-op threads, same samples and batch."""
    row = Row(workload.name, size, threads, onnx_peer.PEER, workload.unit)
    try:
        model = _reference_model(workload, cfg)
        try:
            runner = onnx_peer.OnnxRunner(model, x, workload.batch_size, threads)
        except onnx_peer.UnsupportedModel as exc:
            row.check = SKIPPED + str(exc)
            return row
        xb, want = _reference_outputs(workload, model, x, y)
        result = onnx_peer.check_onnx(runner, want, xb, workload.name)
        row.check = result.summary()
        if not result.ok:
            return row
        row.times_s = measure_per_call(runner.predict, cfg.repeats, cfg.min_sample_s)
    except Exception as exc:     # a peer's problem is reported, never fatal
        row.check = f"FAILED: {type(exc).__name__}: {exc}"
        return row
    return _timed(row, workload, x.shape[0], peak)


def _timed(row, workload, n, peak):
    """``row`` with its throughput over ``n`` samples and its share of ``peak``."""
    row.value = n * workload.per_sample() / median(row.times_s)
    row.peak_fraction = _peak_fraction(workload, n, row, peak)
    return row


def _reference_model(workload, cfg):
    """``workload``'s model with the initial weights of ``cfg.seed``, on NumPy."""
    with using_backend(checks.REFERENCE):
        fastnn.set_seed(cfg.seed)
        return workload.build()


def _reference_outputs(workload, model, x, y):
    """The first batch of x and NumPy's predict of it: what a peer must match."""
    xb, _ = checks.first_batch(workload, x, y)
    with using_backend(checks.REFERENCE):
        return xb, model.predict(xb, batch_size=xb.shape[0], verbose=0)


def _peak_fraction(workload, n, row, peak):
    """The row's FLOP/s over ``peak`` (GFLOP/s of one core) times its threads."""
    if not workload.flops or not peak or not row.times_s:
        return None
    return n * workload.flops / median(row.times_s) / (peak * 1e9 * row.threads)


# ---- W5: GEMM -------------------------------------------------------------------------

def gemm_rows(cfg, threads, emit):
    """GFLOP/s of NumPy's ``A @ B`` and fastnn.ops.gemm for each W5 shape."""
    rng = np.random.default_rng(cfg.seed)
    for shape in cfg.gemm_shapes:
        a, b, c = workloads.gemm_operands(shape, rng)
        reference = None
        with thread_limit(threads) as limited:
            for backend in cfg.backends:
                row = Row(GEMM, shape.label, threads, backend, "GFLOP/s",
                          blas_threads_limited=limited)
                call = _gemm_call(backend, a, b, c)
                if backend != checks.REFERENCE:
                    result = checks.check_gemm(call, a, b, c, shape.label)
                    row.check = result.summary()
                    if not result.ok:
                        emit(row)
                        continue
                row.times_s = measure_per_call(call, cfg.repeats, cfg.min_sample_s)
                row.value = shape.flops / median(row.times_s) / 1e9
                if backend == checks.REFERENCE:
                    reference = row
                emit(_with_speedup(row, reference))


def _gemm_call(backend, a, b, c):
    """A no-argument callable writing a @ b into c: NumPy's matmul, or the backend's gemm."""
    if backend == "numpy":
        return lambda: np.matmul(a, b, out=c)
    gemm = get_ops(backend).gemm
    return lambda: gemm(a, b, out=c)
