"""python -m fastnn.bench: the table, the JSON and the checks, on tiny sizes (seconds).

No assertion here is on speed: these tests check the mechanics (what rows appear,
what the JSON holds, that a wrong kernel is refused rather than timed).
"""
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import tempfile
import types

import numpy as np
import pytest

import fastnn
from fastnn import _runtime, layers, models
from fastnn.backend import NumpyOps
from fastnn.bench import BenchConfig, onnx_peer, peers, run, timing, workloads
from fastnn.bench.__main__ import main
from fastnn.bench.checks import TOLERANCE, rel_error
from fastnn.bench.machine import machine_line
from fastnn.bench.workloads import GEMM_QUICK, GemmShape

TINY = ["--threads", "1", "--n", "96", "--repeats", "1", "--no-peers"]
TINY_GEMM = (GemmShape(17, 5, 3), GemmShape(40, 33, 24))


def _tiny_config(**kwargs):
    base = dict(threads=(1,), n=96, repeats=1, gemm_shapes=TINY_GEMM, min_sample_s=1e-4,
                peers=False)
    return BenchConfig(**{**base, **kwargs})


class HonestOps(NumpyOps):
    """Stands in for a correct compiled backend."""

    name = "compiled"


class WrongGradientOps(HonestOps):
    """A 'fast' backend whose dense backward is 1% off and whose GEMM is shifted."""

    def dense_backward(self, dy, x, w, y, preact, activation, dw_out, db_out, dx_out=None,
                       scratch=None):
        dx = super().dense_backward(dy, x, w, y, preact, activation, dw_out, db_out, dx_out,
                                    scratch)
        dw_out *= np.float32(1.01)
        return dx

    def gemm(self, a, b, **kwargs):
        out = super().gemm(a, b, **kwargs)
        out += out.dtype.type(1e-2)
        return out


@pytest.fixture
def fake_compiled(monkeypatch):
    """Install an Ops class as the "compiled" backend (whether or not it is built)."""
    from fastnn import backend

    def install(ops):
        fake_extension = types.SimpleNamespace(reset_oversubscription=lambda: None)
        monkeypatch.setattr(_runtime, "extension", lambda: fake_extension)
        monkeypatch.setitem(backend._instances, "compiled", ops)
    return install


def test_cli_prints_machine_line_then_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    rc = main(["--workloads", "W1,W1-infer,W2", *TINY, "--json", str(path)])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    machine = out[0]
    assert machine.startswith("fastnn ") and "numpy " in machine and "cores" in machine
    assert "BLAS" in machine
    assert ("could NOT be limited" in machine) != timing.can_limit_blas()
    header = next(i for i, line in enumerate(out) if line.startswith("workload"))
    for column in ("threads", "backend", "throughput", "x numpy", "check"):
        assert column in out[header]
    backends = ["numpy"] + (["compiled"] if _runtime.extension() is not None else [])
    rows = [line.split() for line in out[header + 1:]
            if line.strip() and not line.startswith("results written")]
    assert [(r[0], r[4]) for r in rows] == [
        (w, b) for w in ("W1", "W1-infer", "W2") for b in backends]

    data = json.loads(path.read_text())
    assert data["ok"] is True and data["failures"] == []
    assert data["machine_line"] == machine
    assert data["config"]["threads"] == [1] and data["config"]["n"] == 96
    assert len(data["rows"]) == len(rows)
    for row in data["rows"]:
        assert row["unit"] == "samples/s" and row["threads"] == 1
        assert math.isfinite(row["value"]) and row["value"] > 0
        assert len(row["times_s"]) == 1
        assert row["value"] == pytest.approx(96 / row["times_s"][0])
        if row["backend"] == "numpy":
            assert row["check"] == "reference" and row["speedup"] == 1.0
        else:
            assert row["check"].startswith("ok") and row["speedup"] > 0


def test_gemm_rows_report_gflops_per_shape():
    report = run(_tiny_config(workloads=("W5",), backends=("numpy",)))
    assert report.ok
    assert [row.size for row in report.rows] == ["17x3@3x5", "40x24@24x33"]
    for row, shape in zip(report.rows, TINY_GEMM):
        assert row.unit == "GFLOP/s"
        assert row.value == pytest.approx(shape.flops / row.times_s[0] / 1e9)


def test_a_correct_second_backend_is_checked_timed_and_compared(fake_compiled):
    fake_compiled(HonestOps())
    report = run(_tiny_config(workloads=("W1", "W5")))
    assert report.ok, report.failures
    compiled = [row for row in report.rows if row.backend == "compiled"]
    assert [row.workload for row in compiled] == ["W1", "W5", "W5"]
    for row in compiled:
        assert row.check.startswith("ok") and row.value > 0 and row.speedup > 0


def test_a_wrong_kernel_is_reported_loudly_and_not_timed(fake_compiled, capsys):
    fake_compiled(WrongGradientOps())
    rc = main(["--workloads", "W1,W5", *TINY])
    captured = capsys.readouterr()
    assert rc == 1
    expected = 1 + len(GEMM_QUICK)          # W1 and each quick W5 shape
    assert f"CHECK FAILED for {expected} row(s)" in captured.err
    assert "W1 compiled vs numpy: gradients differ" in captured.err
    assert "gemm square 1024: C differs" in captured.err
    failed = [line for line in captured.out.splitlines() if " compiled " in line]
    assert len(failed) == expected
    assert all("not timed" in line and "FAILED" in line for line in failed)


class WrongAdamOps(HonestOps):
    def adam_update(self, p, g, m, v, *, lr_t, **kwargs):
        super().adam_update(p, g, m, v, lr_t=lr_t * 1.01, **kwargs)


class WrongForwardOps(HonestOps):
    def dense_forward(self, x, w, b, activation, out=None, preact_out=None):
        y = super().dense_forward(x, w, b, activation, out, preact_out)
        y[-1] += y.dtype.type(0.05)       # only the last row: a tail-handling bug
        return y


@pytest.mark.parametrize("ops, what", [(WrongAdamOps(), "optimizer steps differ"),
                                       (WrongForwardOps(), "outputs differ")])
def test_each_part_of_a_training_step_is_checked(fake_compiled, ops, what):
    fake_compiled(ops)
    report = run(_tiny_config(workloads=("W1",)))
    [row] = [row for row in report.rows if row.backend == "compiled"]
    assert row.value is None and what in row.check
    assert report.failures and not report.ok


def test_a_crashing_kernel_is_a_failed_check(fake_compiled):
    class CrashingOps(HonestOps):
        def adam_update(self, *args, **kwargs):
            raise MemoryError("kernel blew up")

    fake_compiled(CrashingOps())
    report = run(_tiny_config(workloads=("W1",)))
    assert not report.ok
    [row] = [row for row in report.rows if row.backend == "compiled"]
    assert row.value is None and "MemoryError: kernel blew up" in row.check


def test_run_restores_backend_and_threads(fake_compiled):
    fake_compiled(HonestOps())
    before = (_runtime.settings.backend, _runtime.settings.num_threads)
    run(_tiny_config(workloads=("W1-infer",), threads=(2, 1)))
    assert (_runtime.settings.backend, _runtime.settings.num_threads) == before


def test_rel_error_catches_nan_and_shape_mismatch():
    want = np.ones(4, np.float32)
    assert rel_error(want, want) == 0.0
    assert rel_error(want * (1 + TOLERANCE / 10), want) <= TOLERANCE
    assert rel_error(np.array([1, 1, np.nan, 1], np.float32), want) == math.inf
    assert rel_error(np.ones(5, np.float32), want) == math.inf


@pytest.mark.parametrize("args", [["--workloads", "W9"], ["--threads", "0"],
                                  ["--backends", "cuda"], ["--repeats", "0"],
                                  ["--json", "/no/such/dir/bench.json"]])
def test_cli_rejects_bad_arguments(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_importing_the_bench_imports_no_peer():
    code = ("import sys, fastnn.bench, fastnn.bench.__main__; "
            "print([m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir()).stdout
    assert out.strip() == "[]"


def test_numpy_openblas_threads_can_be_limited_without_threadpoolctl():
    from fastnn.bench import blas
    if not blas.available():
        pytest.skip("NumPy is not linked to a loadable OpenBLAS here")
    before = blas.get_threads()
    with timing.blas_threads(1) as limited:
        assert limited
        if not timing.have_threadpoolctl():
            assert blas.get_threads() == 1
    assert blas.get_threads() == before


def test_cache_sizes_read_from_a_sysfs_tree(tmp_path):
    from fastnn.bench.machine import cache_sizes
    for index, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "32K"),
                                                  ("2", "Unified", "2048K"),
                                                  ("3", "Unified", "32M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(value + "\n")
    (tmp_path / "index9").mkdir()             # unreadable entries are skipped
    assert cache_sizes(str(tmp_path)) == {"L1d": 48 * 1024, "L2": 2048 * 1024,
                                          "L3": 32 * 1024 ** 2}
    assert cache_sizes(str(tmp_path / "missing")) == {}


# ---- ONNX Runtime, the optional inference peer -----------------------------------------

def _mlp(*dense, input_dim=7):
    """A compiled Sequential of Dense(units, activation[, use_bias]) layers."""
    model = models.Sequential([layers.Dense(*args, **({"input_shape": (input_dim,)} if i == 0
                                                        else {}))
                               for i, args in enumerate(dense)])
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("floatx", ["float32", "float64"])
@pytest.mark.parametrize("dense", [
    [(64, "relu"), (32, "relu"), (1,)],                   # W1's shape
    [(13, "sigmoid"), (5, "tanh", False), (3, "softmax")],
])
def test_the_onnx_graph_predicts_what_the_fastnn_model_does(floatx, dense):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    fastnn.set_floatx(floatx)
    try:
        fastnn.set_seed(3)
        model = _mlp(*dense)
    finally:
        fastnn.set_floatx("float32")
    x = np.random.default_rng(0).uniform(-2, 2, size=(37, 7)).astype(floatx)
    runner = onnx_peer.OnnxRunner(model, x, batch_size=16, threads=1)
    got = runner.outputs(x)
    assert got.dtype == np.dtype(floatx) and got.shape == (37, dense[-1][0])
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5 if floatx == "float32" else 1e-12,
                               atol=1e-6 if floatx == "float32" else 1e-12)


@pytest.mark.parametrize("build, reason", [
    (lambda: _mlp((8, "gelu"), (1,)), "activation 'gelu' has no ONNX node"),
    (lambda: models.Sequential([layers.Conv2D(4, 3, input_shape=(8, 8, 1)), layers.Flatten(),
                                layers.Dense(2)]), "inputs must be \\(batch, features\\)"),
    (lambda: models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dropout(0.5),
                                layers.Dense(2)]), "Dropout\\) has no ONNX graph"),
])
def test_the_onnx_graph_names_what_it_cannot_express(build, reason):
    with pytest.raises(onnx_peer.UnsupportedModel, match=reason):
        onnx_peer.onnx_model(build())


@pytest.fixture
def only_onnx_peer(monkeypatch):
    """Peers on, but no PyTorch rows: these tests are about ONNX Runtime's."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(peers, "torch_available", lambda: False)


def test_onnxruntime_rows_are_checked_then_timed_at_each_thread_count(only_onnx_peer):
    import onnxruntime
    report = run(_tiny_config(workloads=("W1", "W1-infer"), threads=(1, 2), peers=True))
    assert report.ok, report.failures
    assert report.machine["peers"] == {"onnxruntime": onnxruntime.__version__}
    assert "| onnxruntime " + onnxruntime.__version__ in machine_line(report.machine)
    rows = [row for row in report.rows if row.backend == "onnxruntime"]
    assert [(row.workload, row.threads) for row in rows] == [("W1-infer", 1), ("W1-infer", 2)]
    for row in rows:
        assert row.check.startswith("ok") and row.value > 0 and row.speedup > 0
        assert row.value == pytest.approx(96 / statistics.median(row.times_s))


def test_an_onnx_graph_that_disagrees_is_reported_and_not_timed(only_onnx_peer, monkeypatch):
    from onnx import numpy_helper
    honest = onnx_peer.onnx_model

    def off_by_one_percent(model):
        proto = honest(model)
        kernel = proto.graph.initializer[0]
        kernel.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(kernel) * 1.01,
                                                kernel.name))
        return proto

    monkeypatch.setattr(onnx_peer, "onnx_model", off_by_one_percent)
    report = run(_tiny_config(workloads=("W1-infer",), peers=True))
    [row] = [row for row in report.rows if row.backend == "onnxruntime"]
    assert row.value is None and row.times_s == []
    assert "W1-infer onnxruntime vs numpy: outputs differ" in row.check
    assert not report.ok and len(report.failures) == 1


def test_a_model_onnx_cannot_express_is_skipped_with_its_reason(only_onnx_peer, monkeypatch):
    gelu = dataclasses.replace(workloads.WORKLOADS["W1-infer"],
                               build=lambda: _mlp((8, "gelu"), (1,), input_dim=10))
    monkeypatch.setitem(workloads.WORKLOADS, "W1-infer", gelu)
    report = run(_tiny_config(workloads=("W1-infer",), peers=True))
    [row] = [row for row in report.rows if row.backend == "onnxruntime"]
    assert row.value is None and row.check.startswith("skipped: ") and "'gelu'" in row.check
    assert report.ok, report.failures       # a peer that cannot express it is no failure


def test_the_bench_runs_without_onnxruntime(monkeypatch):
    monkeypatch.setattr(peers, "torch_available", lambda: False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)      # `import onnxruntime` fails
    assert not onnx_peer.available()
    report = run(_tiny_config(workloads=("W1-infer",), peers=True))
    assert report.ok, report.failures
    assert report.machine["peers"] == {}
    assert {row.backend for row in report.rows} <= {"numpy", "compiled"}
    assert any(row.backend == "numpy" and row.value > 0 for row in report.rows)
