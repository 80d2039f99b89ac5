"""Agreement checks run before anything is timed: a fast wrong kernel is not a result.

Each check runs the same computation on the NumPy reference and on the
backend under test, from the same seed, and compares every array with
``rel_error`` (the largest absolute difference over the largest magnitude of
the reference), which float32 rounding keeps far below ``TOLERANCE``.
"""
import copy
from dataclasses import dataclass

import numpy as np

import fastnn
from fastnn.backend import current_ops
from fastnn.bench.timing import using_backend

TOLERANCE = 1e-4
REFERENCE = "numpy"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``ok``, the worst relative error seen, and why not ok."""

    ok: bool
    error: float
    message: str = ""

    def summary(self):
        if self.ok:
            return f"ok ({self.error:.0e})"
        return f"FAILED: {self.message}"


def rel_error(got, want):
    """max |got - want| / max |want| (inf when shapes differ or ``got`` is not finite)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-30)
    return float(np.max(np.abs(got - want), initial=0.0)) / scale


def compare(got, want, what):
    """Compare dicts of named arrays (the same keys) within TOLERANCE; a CheckResult."""
    worst, failures = 0.0, []
    for key, reference in want.items():
        err = rel_error(got[key], reference)
        worst = max(worst, err)
        if not err <= TOLERANCE:
            failures.append(f"{key} differs (rel. error {err:.2g} > {TOLERANCE:g})")
    if failures:
        return CheckResult(False, worst, f"{what}: " + "; ".join(failures))
    return CheckResult(True, worst)


def first_batch(workload, x, y):
    """The first batch of (x, y) (at most ``batch_size`` samples)."""
    k = min(workload.batch_size, x.shape[0])
    return x[:k], y[:k]


def model_snapshot(workload, backend, xb, yb, seed):
    """On ``backend``, from ``seed``: the outputs of a fresh model for xb and, for a
    training workload, the loss and gradients of one train_on_batch and two steps of
    the model's optimizer on fixed inputs (see optimizer_steps)."""
    with using_backend(backend):
        fastnn.set_seed(seed)
        model = workload.build()
        snap = {"outputs": model.predict(xb, batch_size=xb.shape[0], verbose=0)}
        if not workload.train:
            return snap
        fresh_optimizer = copy.deepcopy(model.optimizer)
        snap["loss"] = np.asarray(model.train_on_batch(xb, yb))
        if model.buffers is not None:                # the flat gradient buffer (design 1)
            snap["gradients"] = model.buffers.grads.copy()
        snap["optimizer steps"] = optimizer_steps(fresh_optimizer, model.count_params(),
                                                  model.dtype, seed)
        return snap


def optimizer_steps(optimizer, size, dtype, seed, steps=2):
    """Parameters after ``steps`` updates by ``optimizer`` (a fresh one) of a flat
    buffer of ``size`` from fixed parameters and gradients, on the current backend.

    The optimizer is checked on identical inputs rather than through the model:
    Adam's first step is about lr * sign(g), so rounding-level differences in tiny
    gradients would flip whole steps and hide a real error in the noise.
    """
    rng = np.random.default_rng(seed)
    params = rng.uniform(-0.1, 0.1, size).astype(dtype)
    grads = (rng.standard_normal(size) * 0.01).astype(dtype)
    optimizer.build(size, dtype)
    everything = [(0, size)]
    for _ in range(steps):
        optimizer.apply(current_ops(), params, grads, everything, everything)
    return params


def check_model(workload, backend, x, y, seed):
    """Does ``backend`` agree with NumPy on ``workload``'s first batch (see model_snapshot)?"""
    xb, yb = first_batch(workload, x, y)
    try:
        want = model_snapshot(workload, REFERENCE, xb, yb, seed)
        got = model_snapshot(workload, backend, xb, yb, seed)
    except Exception as exc:     # a crashing kernel is a failed check, reported as such
        return CheckResult(False, float("inf"), f"{type(exc).__name__}: {exc}")
    return compare(got, want, f"{workload.name} {backend} vs {REFERENCE}")


def check_gemm(gemm, a, b, c, label):
    """Run ``gemm()`` (which writes ``a @ b`` into ``c``) once and compare with NumPy."""
    want = a.astype(np.float64) @ b.astype(np.float64)
    try:
        gemm()
    except Exception as exc:
        return CheckResult(False, float("inf"), f"{type(exc).__name__}: {exc}")
    return compare({"C": c}, {"C": want}, f"gemm {label}")
