"""The runtime: the extension really loaded, OpenMP not silently lost, backend /
thread / dtype / seed control, show_config's truth, fork safety, the ops proxy."""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastnn
from fastnn.backend import compiled_ops, get_ops
from fastnn.backend.ops import Ops


def run_python(code, **env):
    """Run code in a fresh interpreter with extra environment variables; return stdout.

    It runs outside the source tree, so it imports the installed fastnn."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, **env},
                            cwd=tempfile.gettempdir())
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_compiled_extension_loaded():
    """Without this, every 'compiled' test could silently run NumPy."""
    from fastnn._ext import _core
    assert fastnn.get_backend() == "compiled" or os.environ.get("FASTNN_BACKEND") == "numpy"
    assert type(get_ops("compiled")).__name__ == "CompiledOps"
    assert _core.__file__.endswith((".so", ".pyd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gcc builds have OpenMP")
def test_openmp_was_not_silently_lost():
    from fastnn._ext import _core
    assert _core.openmp_enabled()
    assert fastnn.show_config(mode="dicts")["openmp"] is True


def test_interfaces_are_identical():
    """NumpyOps and CompiledOps implement every Ops method with the same signature."""
    import inspect
    for name, member in vars(Ops).items():
        if name.startswith("_") or not callable(member):
            continue
        want = inspect.signature(member)
        for cls in (type(get_ops("numpy")), compiled_ops.CompiledOps):
            assert getattr(cls, name) is not member, f"{cls.__name__} lacks {name}"
            assert inspect.signature(getattr(cls, name)) == want, f"{cls.__name__}.{name}"


def test_numpy_backend_imports_no_compiled_code():
    out = run_python("""
        import sys
        import fastnn.backend.numpy_ops
        print(any(m.startswith("fastnn._ext") for m in sys.modules))
    """)
    assert out == "False"


def test_show_config_tells_the_truth():
    from fastnn._ext import _core
    config = fastnn.show_config(mode="dicts")
    assert set(config) == {"version", "backend", "isa", "gemm_blocking", "openmp", "threads",
                           "oversubscription_guard", "fallbacks"}
    assert config["version"] == fastnn.__version__
    assert config["isa"] == _core.isa_current() == _core.isa_best()
    # the blocking in force: the ISA's tile, blocks whole tiles
    b = config["gemm_blocking"]
    tile = {"generic": (4, 16), "avx2": (6, 16), "avx512": (12, 32)}[config["isa"]]
    assert (b["mr"], b["nr"]) == tile
    assert b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0 and b["kc"] % 8 == 0
    assert config["threads"] == fastnn.get_num_threads()
    assert config["oversubscription_guard"] is fastnn.get_oversubscription_guard() is True
    with pytest.raises(ValueError):
        fastnn.show_config(mode="xml")


def test_show_config_lists_numpy_fallbacks():
    ops = get_ops("compiled")
    x = np.ones((2, 3))                                # float64 activation: handed to NumPy
    ops.activation_forward("tanh", x)
    assert "activation_forward float64" in fastnn.show_config(mode="dicts")["fallbacks"]


def test_show_config_prints(capsys):
    fastnn.show_config()
    out = capsys.readouterr().out
    assert "backend" in out and "isa" in out and "openmp" in out and "threads" in out
    assert "oversubscription guard: on" in out


def test_backend_switch_takes_effect_on_next_call(monkeypatch):
    from fastnn.backend import get_ops
    ran = []
    for name in ("numpy", "compiled"):
        backend = get_ops(name)
        monkeypatch.setattr(backend, "gemm", lambda *args, _name=name, _gemm=backend.gemm,
                            **kwargs: ran.append(_name) or _gemm(*args, **kwargs))
    a = np.ones((2, 3), np.float32)
    previous = fastnn.get_backend()
    try:
        fastnn.set_backend("numpy")
        fastnn.ops.gemm(a, a, transpose_b=True)
        fastnn.set_backend("compiled")
        np.testing.assert_array_equal(fastnn.ops.gemm(a, a, transpose_b=True), a @ a.T)
        assert ran == ["numpy", "compiled"]
        with pytest.raises(ValueError, match="backend"):
            fastnn.set_backend("cuda")
    finally:
        fastnn.set_backend(previous)


def test_env_selects_backend_and_isa():
    assert run_python("import fastnn; print(fastnn.get_backend())", FASTNN_BACKEND="numpy") == "numpy"
    out = run_python("import fastnn; print(fastnn.show_config(mode='dicts')['isa'])",
                     FASTNN_ISA="generic")
    assert out == "generic"
    bad = subprocess.run([sys.executable, "-c", "import fastnn; fastnn.show_config()"],
                         capture_output=True, text=True, env={**os.environ, "FASTNN_ISA": "sse9"},
                         cwd=tempfile.gettempdir())
    assert bad.returncode != 0 and "FASTNN_ISA" in bad.stderr


def test_num_threads_control():
    previous = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        for bad in (0, -2, 1.5, "2", True):
            with pytest.raises(ValueError):
                fastnn.set_num_threads(bad)
    finally:
        fastnn.set_num_threads(previous)
    assert run_python("import fastnn; print(fastnn.get_num_threads())", OMP_NUM_THREADS="3") == "3"


def test_set_seed_is_reproducible_and_leaves_numpy_alone():
    np.random.seed(7)
    expected_np = np.random.random()
    np.random.seed(7)
    fastnn.set_seed(5)
    a = fastnn.layers.Dense(4, input_shape=(3,))
    a.build((3,))
    fastnn.utils.set_random_seed(5)
    b = fastnn.layers.Dense(4, input_shape=(3,))
    b.build((3,))
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    assert np.random.random() == expected_np


def test_floatx_controls_new_layers():
    try:
        fastnn.set_floatx("float64")
        assert fastnn.layers.Dense(2).dtype == np.float64
        with pytest.raises(ValueError):
            fastnn.set_floatx("float16")
    finally:
        fastnn.set_floatx("float32")
    assert fastnn.layers.Dense(2).dtype == np.float32


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_runs_kernels_without_hanging():
    out = run_python("""
        import os, numpy as np, fastnn
        fastnn.set_num_threads(2)
        a = np.ones((300, 300), np.float32)
        fastnn.ops.gemm(a, a)                       # start OpenMP's threads in the parent
        pid = os.fork()
        if pid == 0:
            r = fastnn.ops.gemm(a, a)
            os._exit(0 if r[0, 0] == 300 and fastnn.get_num_threads() == 1 else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    assert out == "0"


def test_lazy_submodules_reachable_after_import():
    assert fastnn.ops.gemm is not None
    assert "gemm" in dir(fastnn.ops)
    with pytest.raises(AttributeError):
        fastnn.ops.not_a_kernel
    with pytest.raises(AttributeError):
        fastnn.not_a_module


def test_oversubscription_guard_runs_kernels_serially_and_identically():
    """A team that waited on a descheduled thread sends kernels to one thread for a
    while; the results stay bitwise the same."""
    from fastnn._ext import _core
    ops = get_ops("compiled")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 300)).astype(np.float32)
    b = rng.standard_normal((300, 200)).astype(np.float32)
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    try:
        threaded = ops.gemm(a, b)
        for _ in range(8):          # repeated reports lengthen the back-off
            _core._report_team_wait(10_000_000, 12_000_000)
        assert _core.oversubscribed()
        np.testing.assert_array_equal(ops.gemm(a, b), threaded)
        _core.reset_oversubscription()
        assert not _core.oversubscribed()
    finally:
        fastnn.set_num_threads(previous)


def test_fma_peak_probe_runs_the_loop_of_the_isa_in_force():
    from fastnn._ext import _core
    value = _core.fma_peak_gflops(1, 0.01)
    assert np.isfinite(value) and value > 0
    with pytest.raises(ValueError, match="nthreads"):
        _core.fma_peak_gflops(0, 0.01)


# ---- the oversubscription guard is an explicit policy ------------------------------

def _guard_reports(core, count=8):
    """Tell the guard `count` times that a team waited most of its region on a
    descheduled thread."""
    for _ in range(count):
        core._report_team_wait(10_000_000, 12_000_000)


def test_oversubscription_guard_can_be_switched_off_and_on():
    from fastnn._ext import _core
    from testing_utils import num_threads
    a = np.ones((400, 300), np.float32)
    try:
        fastnn.set_oversubscription_guard(False)
        assert fastnn.get_oversubscription_guard() is False
        assert fastnn.show_config(mode="dicts")["oversubscription_guard"] is False
        _guard_reports(_core)
        assert not _core.oversubscribed()
        with num_threads(2):
            _core.reset_max_team_seen()
            fastnn.ops.gemm(a, a.T)
        assert _core.max_team_seen() == 2           # off: never backs off
        fastnn.set_oversubscription_guard(True)
        _guard_reports(_core)
        assert _core.oversubscribed()
        with num_threads(2):
            _core.reset_max_team_seen()
            fastnn.ops.gemm(a, a.T)
        assert _core.max_team_seen() <= 1           # on: backs off
        fastnn.set_oversubscription_guard(False)     # and switching forgets the reports
        assert not _core.oversubscribed()
        for bad in (0, 1, "off", None):
            with pytest.raises(ValueError, match="enabled"):
                fastnn.set_oversubscription_guard(bad)
    finally:
        fastnn.set_oversubscription_guard(True)
        _core.reset_oversubscription()


def test_oversubscription_backoff_doubles_up_to_one_second():
    """20 ms, doubled on each report that follows a retry, at most 1 s (it
    used to double past it, to 1.28 s)."""
    from fastnn._ext import _core
    _guard_reports(_core, 1)         # a first report may follow an idle gap: ignored
    _core.reset_oversubscription()
    try:
        lengths = []
        for _ in range(7):
            _guard_reports(_core, 1)
            lengths.append(_core._oversubscription_backoff_ns() // 1_000_000)
        assert lengths == [40, 80, 160, 320, 640, 1000, 1000]   # the next back-off's length
    finally:
        _core.reset_oversubscription()


# ---- counting the threads that really ran ------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gcc builds have OpenMP")
def test_max_team_seen_counts_the_threads_kernels_really_ran():
    from fastnn._ext import _core
    from testing_utils import on_threads
    a = np.ones((400, 300), np.float32)
    _core.reset_max_team_seen()
    assert _core.max_team_seen() == 0
    with on_threads(1):
        fastnn.ops.gemm(a, a.T)
    assert _core.max_team_seen() <= 1
    for n in (2, 3):
        with on_threads(n):
            fastnn.ops.gemm(a, a.T)
        assert _core.max_team_seen() == n
    with on_threads(2, check=False):
        fastnn.ops.gemm(a[:2, :3], a[:3, :2])       # too small to share: one thread
    assert _core.max_team_seen() <= 1
    assert _core.openmp_pool_started()


# Where csrc/ may open a parallel region: the one parallel loop (fnn_run_units)
# and the two kernels whose regions are not a split of units -- the float32
# GEMM's phases of packing and tiles between barriers, and the peak-FLOP probe
# that runs the same loop on every thread at once.
PARALLEL_REGION_FILES = {"fnn_omp.h": 1, "gemm.c": 1, "peak.c": 1}


def test_every_parallel_region_records_its_team():
    """fnn_note_team() opens every parallel region in csrc/: the team counter and
    the fork rule (a child of a live pool runs serially) rely on it. Kernels
    split their work through fnn_run_units (fnn_omp.h), whose one region does
    this for all of them; no other file opens a region of its own."""
    import pathlib
    import re
    csrc = pathlib.Path(__file__).resolve().parent.parent / "csrc"
    if not csrc.is_dir():
        pytest.skip("the C sources are not beside the tests")
    regions = {}
    for path in sorted(csrc.rglob("*.[ch]")):
        text = path.read_text()
        for match in re.finditer(r'omp parallel(?! for)[^\n]*\n', text):
            regions[path.name] = regions.get(path.name, 0) + 1
            opening = text[match.end():match.end() + 400]
            body = opening[opening.index("{") + 1:]
            first = re.sub(r"[\\\s]+", " ", body).strip()
            statements = [s for s in first.split(";")[:4]]
            assert any("fnn_note_team()" in s for s in statements), \
                f"{path.name}: a parallel region does not call fnn_note_team() first"
        assert not re.search(r"omp parallel for", text), \
            f"{path.name}: 'omp parallel for' has no place for fnn_note_team()"
    assert regions == PARALLEL_REGION_FILES, \
        "parallel regions outside fnn_run_units: split the work with fnn_run_units instead"


# ---- the default thread count: affinity mask and cgroup quota ----------------------

def _fake_cgroup(tmp_path, self_cgroup, files):
    """A fake /sys/fs/cgroup tree (files: relative path -> text) and a fake
    /proc/self/cgroup; returns (root, self_cgroup path)."""
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    proc = tmp_path / "self_cgroup"
    proc.write_text(self_cgroup)
    return str(root), str(proc)


@pytest.mark.parametrize("cpu_max, want", [
    ("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1),
    ("max 100000\n", None), ("garbage\n", None), ("0 100000\n", None), ("100000 0\n", None),
])
def test_cgroup_v2_quota(tmp_path, cpu_max, want):
    from fastnn import _cpus
    root, proc = _fake_cgroup(tmp_path, "0::/\n", {"cpu.max": cpu_max})
    assert _cpus.cgroup_cpu_limit(root, proc) == want


def test_cgroup_v2_tightest_level_binds_and_host_paths_fall_back_to_the_root(tmp_path):
    from fastnn import _cpus
    root, proc = _fake_cgroup(tmp_path, "0::/app.slice/job\n", {
        "cpu.max": "max 100000\n",
        "app.slice/cpu.max": "300000 100000\n",
        "app.slice/job/cpu.max": "max 100000\n",
    })
    assert _cpus.cgroup_cpu_limit(root, proc) == 3
    # a container: /proc/self/cgroup names the host's path, the mount is its own cgroup
    root, proc = _fake_cgroup(tmp_path / "c", "0::/docker/abc123\n",
                              {"cpu.max": "400000 100000\n"})
    assert _cpus.cgroup_cpu_limit(root, proc) == 4


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path, mount):
    from fastnn import _cpus
    root, proc = _fake_cgroup(tmp_path, "5:memory:/x\n4:cpu,cpuacct:/job\n", {
        f"{mount}/cpu.cfs_quota_us": "-1\n", f"{mount}/cpu.cfs_period_us": "100000\n",
        f"{mount}/job/cpu.cfs_quota_us": "250000\n", f"{mount}/job/cpu.cfs_period_us": "100000\n",
    })
    assert _cpus.cgroup_cpu_limit(root, proc) == 3


def test_no_cgroup_files_means_no_limit(tmp_path):
    from fastnn import _cpus
    root, proc = _fake_cgroup(tmp_path, "0::/\n4:cpu:/\n", {})
    assert _cpus.cgroup_cpu_limit(root, proc) is None
    assert _cpus.cgroup_cpu_limit(root, str(tmp_path / "missing")) is None


def test_default_thread_count_honours_the_cgroup_quota_and_omp_num_threads(tmp_path,
                                                                          monkeypatch):
    from fastnn import _cpus, _runtime
    root, proc = _fake_cgroup(tmp_path, "0::/\n", {"cpu.max": "100000 100000\n"})
    monkeypatch.setattr(_cpus, "CGROUP_ROOT", root)
    monkeypatch.setattr(_cpus, "SELF_CGROUP", proc)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert _runtime.available_cores() == 1
    assert _runtime._default_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _runtime._default_num_threads() == 3      # OMP_NUM_THREADS still wins


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_default_thread_count_honours_the_affinity_mask():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        import fastnn
        from fastnn import _cpus
        limit = _cpus.cgroup_cpu_limit()
        print(fastnn.get_num_threads(), limit)
    """)], capture_output=True, text=True, timeout=120, env=env, cwd=tempfile.gettempdir())
    assert result.returncode == 0, result.stderr
    threads, _ = result.stdout.split()
    assert threads == "1"


# ---- fork: only a child of a live OpenMP pool runs serially ------------------------

FORK_SCRIPT = """
    import contextlib, io, os, signal, warnings
    import numpy as np
    import fastnn
    from fastnn._ext import _core
    fastnn.set_oversubscription_guard(False)
    a = np.ones((400, 300), np.float32)
    fastnn.set_num_threads(PARENT_THREADS)
    fastnn.ops.gemm(a, a.T)
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)                 # a hang ends the child, not the test run
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fastnn.set_num_threads(2)
        _core.reset_max_team_seen()
        r = fastnn.ops.gemm(a, a.T)
        c = np.empty((400, 400), np.float32)
        _core.gemm_f32(c, a, a, None, False, True, 1.0, 0.0, 0, 2)   # 2 threads asked in C
        ok = r[0, 0] == 300 and c[0, 0] == 300
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            fastnn.show_config()
        print(fastnn.get_num_threads(), _core.max_team_seen(), _core.openmp_pool_lost(),
              len(caught), ok, "forked after OpenMP started" in shown.getvalue(), flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gcc builds have OpenMP")
def test_child_of_a_parent_without_openmp_threads_uses_its_threads():
    """The parent ran kernels on one thread only: OpenMP never started a pool,
    so the child honours set_num_threads(2) and really runs two threads."""
    out = run_python(FORK_SCRIPT.replace("PARENT_THREADS", "1"))
    child, status = out.splitlines()
    assert status == "0"
    assert child.split() == ["2", "2", "False", "0", "True", "False"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gcc builds have OpenMP")
def test_child_of_a_live_openmp_pool_runs_serially_and_says_so():
    """GNU libgomp hangs starting a team in such a child: every kernel runs on one
    thread there, even when 2 are asked for (set_num_threads warns; a kernel
    called with nthreads=2 directly still runs on one)."""
    out = run_python(FORK_SCRIPT.replace("PARENT_THREADS", "2"))
    child, status = out.splitlines()
    assert status == "0"
    assert child.split() == ["1", "0", "True", "1", "True", "True"]
