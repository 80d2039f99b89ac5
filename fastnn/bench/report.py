"""The report: a fixed-width table (printed row by row as results arrive) and JSON."""
import dataclasses
import json
import math
import os
import tempfile

from fastnn.bench.checks import TOLERANCE
from fastnn.bench.machine import machine_line

COLUMNS = (("workload", 9), ("size", 19), ("threads", 7), ("backend", 11),
           ("throughput", 22), ("x numpy", 8), ("of peak", 7), ("check", 0))


def header():
    """The table's header line."""
    return _line([name for name, _ in COLUMNS])


def format_row(row):
    """One table line for a Row."""
    speedup = "" if row.speedup is None else f"{row.speedup:.2f}x"
    check = row.check
    if row.backend == "numpy" and row.blas_threads_limited is False:
        check += " (BLAS threads not limited)"
    peak = "" if row.peak_fraction is None else f"{row.peak_fraction:.0%}"
    return _line([row.workload, row.size, str(row.threads), row.backend,
                  format_value(row.value, row.unit), speedup, peak, check])


def format_value(value, unit):
    """Throughput with its unit: integers with separators, GFLOP/s with one decimal."""
    if value is None:
        return "not timed"
    if unit == "GFLOP/s" or value < 100:
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f} {unit}"


def _line(cells):
    parts = []
    for (name, width), cell in zip(COLUMNS, cells):
        right = name in ("threads", "throughput", "x numpy", "of peak")
        parts.append(cell.rjust(width) if right else cell.ljust(width))
    return "  ".join(parts).rstrip()


def preamble(report, mode):
    """The machine line and what the table shows, printed before the rows."""
    return [machine_line(report.machine),
            f"mode: {mode}; median of {report.config['repeats']} timed repeats after one "
            f"warm-up; each non-NumPy row checked against NumPy first (rel. tol {TOLERANCE:g})",
            "", header()]


def footer(report):
    """Lines printed after the table: the failures, loudly."""
    if report.ok:
        return []
    lines = ["", f"CHECK FAILED for {len(report.failures)} row(s); those rows were NOT timed:"]
    return lines + [f"  {failure}" for failure in report.failures]


def to_json_dict(report):
    """The report as plain JSON-ready data (non-finite numbers become null)."""
    return {
        "machine": report.machine,
        "machine_line": machine_line(report.machine),
        "config": report.config,
        "rows": [_finite(dataclasses.asdict(row)) for row in report.rows],
        "failures": list(report.failures),
        "ok": report.ok,
    }


def write_json(report, path):
    """Write ``to_json_dict(report)`` to ``path`` (atomically: temp file, then rename)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bench-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(to_json_dict(report), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _finite(d):
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}
