"""pytest-benchmark suite: ``pytest benchmarks/ --benchmark-only`` (not part of tests/).

Collection: the files are named ``bench_*.py`` so that a plain ``pytest`` (whose
testpaths is ["tests"]) and pytest's default ``python_files`` (test_*.py) never
pick them up. The ``pytest_collect_file`` hook below collects them as test
modules, and, being in this directory's conftest, it is active only when pytest
collects benchmarks/ itself -- no pytest.ini here (that would move the rootdir).

Every benchmark runs on both backends in one session (the ``backend``
fixture; compiled is skipped when the extension is not built), back to back
for each case, at 1 and 2 threads, from a fixed seed, and checks its result against NumpyOps before it
is timed. ``benchmark.extra_info`` carries GFLOP/s, samples/s or params/s.
"""
import fnmatch

import numpy as np
import pytest

from fastnn.backend import get_ops
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.bench.checks import TOLERANCE, rel_error
from fastnn.bench.timing import (
    compiled_available, compiled_import_error, machine_cores, thread_limit, using_backend,
)

SEED = 1234
THREADS = tuple(t for t in (1, 2) if t <= machine_cores())


def pytest_collect_file(file_path, parent):
    """Collect bench_*.py as test modules, unless pytest's python plugin already does
    (a file named on the command line, or a python_files override)."""
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    patterns = parent.config.getini("python_files")
    if parent.session.isinitpath(file_path) or any(
            fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return None
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(items):
    """Run each case's backends back to back (same shape, same threads), so the two
    timings share the machine's conditions; otherwise the order is unchanged."""
    first_seen = {}

    def group(item):
        spec = getattr(item, "callspec", None)
        params = () if spec is None else tuple(
            (k, repr(v)) for k, v in spec.params.items() if k != "backend")
        return first_seen.setdefault((str(item.path), item.originalname, params),
                                     len(first_seen))

    order = {id(item): (group(item), i) for i, item in enumerate(items)}
    items.sort(key=lambda item: order[id(item)])


@pytest.fixture(params=["numpy", "compiled"])
def backend(request):
    """Each backend's name in turn; the whole backend is in force during the test."""
    if request.param == "compiled" and not compiled_available():
        pytest.skip(f"compiled extension not built ({compiled_import_error()})")
    return request.param


@pytest.fixture
def ops(backend):
    """The Ops of ``backend``, made the current backend for the test."""
    with using_backend(backend):
        yield get_ops(backend)


@pytest.fixture(scope="session")
def reference():
    """NumpyOps, which every result is checked against before it is timed."""
    return NumpyOps()


@pytest.fixture(params=THREADS, ids=lambda t: f"{t}t")
def threads(request, benchmark):
    """fastnn's (and, with threadpoolctl, NumPy's BLAS) thread count for the test."""
    with thread_limit(request.param) as blas_limited:
        benchmark.extra_info["threads"] = request.param
        benchmark.extra_info["blas_threads_limited"] = blas_limited
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


@pytest.fixture
def assert_close():
    """assert_close(got, want, what): max |got - want| / max |want| within TOLERANCE."""
    def check(got, want, what="result"):
        err = rel_error(got, want)
        assert err <= TOLERANCE, f"{what}: rel. error {err:.3g} > {TOLERANCE:g} vs NumpyOps"
    return check


@pytest.fixture
def record_rate(benchmark):
    """record_rate(per_call, unit, scale=1.0): put ``per_call / median seconds / scale``
    into benchmark.extra_info[unit] (after the benchmark ran; no-op when disabled)."""
    def record(per_call, unit, scale=1.0):
        stats = benchmark.stats
        if stats is None:       # --benchmark-disable: the function ran once, untimed
            return
        benchmark.extra_info[unit] = per_call / stats.stats.median / scale
    return record
