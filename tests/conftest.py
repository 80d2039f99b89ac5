"""Shared fixtures: every kernel test runs on both backends.

Tests import the installed fastnn (no path tricks). Hypothesis uses a CI
profile (few examples, no deadline) so the suite stays within minutes.

Tests that compare with PyTorch carry the `torch_oracle` marker and skip
without torch; with FASTNN_REQUIRE_TORCH=1 (CI's oracle step) such a skip is a
failure, so the comparisons can never pass by not running.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from fastnn.backend.numpy_ops import NumpyOps  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under FASTNN_REQUIRE_TORCH=1, a torch_oracle test that skipped fails."""
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and os.environ.get("FASTNN_REQUIRE_TORCH") == "1"
            and item.get_closest_marker("torch_oracle") is not None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"FASTNN_REQUIRE_TORCH=1: a PyTorch comparison skipped ({reason})"


def _compiled():
    from fastnn.backend.compiled_ops import CompiledOps
    return CompiledOps()


@pytest.fixture(scope="session")
def numpy_ops():
    return NumpyOps()


@pytest.fixture(scope="session")
def compiled_ops():
    return _compiled()


@pytest.fixture(params=["numpy", "compiled"], scope="session")
def ops(request):
    """Each backend in turn."""
    return NumpyOps() if request.param == "numpy" else _compiled()


@pytest.fixture(params=["numpy", "compiled"])
def backend(request):
    """Run a model-level test once per backend (restoring the previous one)."""
    import fastnn
    previous = fastnn.get_backend()
    fastnn.set_backend(request.param)
    yield request.param
    fastnn.set_backend(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
