"""``python -m fastnn.bench.distributed``: W2 trained on 1 rank vs. 2 ranks over MPI.

Launches ``mpiexec -n R python -m mpi4py -m fastnn.bench.distributed --worker``
once per rank count (1 thread per rank by default), and prints, per row:
samples/s over the timed epochs, the speed-up over the first row, and the
time rank 0 spent in MPI collectives (the gradient Allreduce, mostly; this
includes waiting for the slower rank). Not part of ``python -m fastnn.bench``.
Without mpi4py it prints why it skipped and exits 0.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_parser():
    """The argparse parser of ``python -m fastnn.bench.distributed``."""
    parser = argparse.ArgumentParser(prog="python -m fastnn.bench.distributed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="1,2", metavar="R1,R2",
                        help="rank counts to compare (default 1,2)")
    parser.add_argument("--threads", type=int, default=1, metavar="T",
                        help="threads per rank (default 1)")
    parser.add_argument("--n", type=int, default=4096, metavar="N",
                        help="samples per epoch (default 4096; W2's full size is 8192)")
    parser.add_argument("--epochs", type=int, default=2, metavar="E",
                        help="timed epochs, after one warm-up epoch (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", metavar="JSON", help=argparse.SUPPRESS)
    return parser


# ---- one run, on every rank ------------------------------------------------------------

def worker(args):
    """Train W2 with ``distributed=MPI()``; rank 0 writes its figures to ``args.worker``."""
    import fastnn
    from fastnn.bench.workloads import WORKLOADS

    strategy = fastnn.distributed.MPI()
    w2 = WORKLOADS["W2"]
    fastnn.set_seed(args.seed)
    model = w2.build()
    x, y = w2.make_data(args.n, np.random.default_rng(args.seed))
    warm = min(args.n, 2 * strategy.size * w2.batch_size)
    model.fit(x[:warm], y[:warm], batch_size=w2.batch_size, epochs=1, verbose=0,
              distributed=strategy)
    start = time.perf_counter()
    model.fit(x, y, batch_size=w2.batch_size, epochs=args.epochs, verbose=0,
              distributed=strategy)
    elapsed = time.perf_counter() - start       # fit ends in a collective: ranks in step
    if strategy.is_chief:
        result = {"ranks": strategy.size, "threads": fastnn.get_num_threads(),
                  "seconds": elapsed, "comm_seconds": strategy.comm_seconds,
                  "samples_per_s": args.n * args.epochs / elapsed,
                  "steps": -(-args.n // (strategy.size * w2.batch_size)) * args.epochs,
                  "parameters": int(model.buffers.size)}
        Path(args.worker).write_text(json.dumps(result))


# ---- the driver ------------------------------------------------------------------------

def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def run_ranks(ranks, args, launcher):
    """Run the worker on ``ranks`` ranks; its figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [launcher, "-n", str(ranks), sys.executable, "-m", "mpi4py", "-m",
                   "fastnn.bench.distributed", "--worker", out, "--n", str(args.n),
                   "--epochs", str(args.epochs), "--seed", str(args.seed)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        return json.loads(Path(out).read_text())


def format_table(rows):
    """The results as text lines: one row per rank count."""
    lines = [f"{'ranks':>5} {'thr/rank':>8} {'samples/s':>10} {'speed-up':>8} "
             f"{'comm s':>7} {'comm %':>6} {'comm ms/step':>12}"]
    base = rows[0]["samples_per_s"]
    for r in rows:
        lines.append(f"{r['ranks']:>5} {r['threads']:>8} {r['samples_per_s']:>10.0f} "
                     f"{r['samples_per_s'] / base:>7.2f}x {r['comm_seconds']:>7.3f} "
                     f"{100 * r['comm_seconds'] / r['seconds']:>5.1f}% "
                     f"{1000 * r['comm_seconds'] / r['steps']:>12.2f}")
    return lines


def main(argv=None):
    """Run the comparison from command-line arguments; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    try:
        ranks = [int(r) for r in args.ranks.split(",") if r.strip()]
    except ValueError:
        ranks = []
    if not ranks or min(ranks) < 1 or min(args.threads, args.n, args.epochs) < 1:
        parser.error("--ranks, --threads, --n and --epochs take integers >= 1")
    try:
        import mpi4py  # noqa: F401  (only whether it is there; the workers initialise MPI)
    except ImportError:
        print('skipped: the distributed benchmark needs mpi4py (pip install "fastnn[mpich]")')
        return 0
    launcher = mpiexec()
    if launcher is None:
        print("skipped: no mpiexec beside this Python or on PATH (pip install mpich)")
        return 0
    print(f"W2 (MLP 784-512-512-10, Adam, batch 128 per rank), {args.n} samples, "
          f"{args.epochs} timed epoch(s), {args.threads} thread(s) per rank, "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    for r in ranks:
        rows.append(run_ranks(r, args, launcher))
        print(format_table(rows)[-1] if len(rows) > 1 else "\n".join(format_table(rows)),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
