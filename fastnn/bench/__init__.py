"""fastnn's benchmark: ``python -m fastnn.bench`` (``--help`` for the options).

From Python::

    from fastnn.bench import BenchConfig, run
    report = run(BenchConfig(workloads=("W1", "W5"), threads=(1,)))
    report.rows, report.failures

The workloads are those of workloads.md (``fastnn.bench.workloads``); every
non-NumPy row is checked against the NumPy reference before it is timed.
"""
from fastnn.bench.runner import BenchConfig, Report, Row, run  # noqa: F401

__all__ = ["BenchConfig", "Report", "Row", "run"]
