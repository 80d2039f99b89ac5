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
                           "fallbacks"}
    assert config["version"] == fastnn.__version__
    assert config["isa"] == _core.isa_current() == _core.isa_best()
    # the blocking in force: the ISA's tile, blocks whole tiles
    b = config["gemm_blocking"]
    tile = {"generic": (4, 16), "avx2": (6, 16), "avx512": (12, 32)}[config["isa"]]
    assert (b["mr"], b["nr"]) == tile
    assert b["mc"] % b["mr"] == 0 and b["nc"] % b["nr"] == 0 and b["kc"] % 8 == 0
    assert config["threads"] == fastnn.get_num_threads()
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


def test_backend_switch_takes_effect_on_next_call():
    previous = fastnn.get_backend()
    try:
        fastnn.set_backend("numpy")
        assert fastnn.ops.gemm.__self__.name == "numpy"
        fastnn.set_backend("compiled")
        assert fastnn.ops.gemm.__self__.name == "compiled"
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
