"""``python -m fastnn.bench``: the benchmark table (see ``--help``)."""
import argparse
import os
import sys

from fastnn.bench import report as _report
from fastnn.bench.runner import ALL_WORKLOADS, BACKENDS, BenchConfig, run
from fastnn.bench.timing import compiled_available, compiled_import_error, machine_cores

DESCRIPTION = """\
Benchmark fastnn: each workload of workloads.md (W1 MLP train, W1-infer predict,
W2 MNIST-size MLP, W3 CNN, W4-rnn / W4-lstm recurrent, C1 a custom residual MLP,
W6 a small GPT: training tokens/s and, W6-gen, KV-cache generation; W5 GEMM) on
each backend (compiled, numpy) and thread count, plus PyTorch rows when torch
is installed and, for W1-infer, ONNX Runtime rows (intra-op threads = the row's
threads) when onnxruntime and onnx are: `pip install onnxruntime onnx`.
Throughput is samples/s (tokens/s for W6) over one full shuffled epoch
(model.fit), one predict pass or one generate call, after a warm-up, median of
the repeats; "of peak" is the FLOP rate over this machine's measured
float32 FMA peak; W5 is GFLOP/s of fastnn.ops.gemm vs NumPy's A @ B. Every
non-NumPy row is first checked against NumPy and is not timed if it disagrees.
Quick by default (smaller N, a few minutes); --full uses workloads.md's sizes.
Exit status: 0 when every check passed, 1 when one failed."""


def _names(text, allowed, what):
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in allowed]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {unknown or text!r}; choose from {','.join(allowed)}")
    return tuple(names)


def _threads(text):
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts >= 1 like 1,2; got {text!r}")
    return counts


def build_parser():
    """The argparse parser of ``python -m fastnn.bench``."""
    parser = argparse.ArgumentParser(prog="python -m fastnn.bench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="workloads.md's sizes (N=8192, W5 up to 2048^2, 5 repeats)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--threads", type=_threads, metavar="T1,T2",
                        help=f"thread counts (default: 1 and 2, capped at this machine's "
                             f"{machine_cores()} cores)")
    parser.add_argument("--workloads", metavar="W1,W2,...",
                        type=lambda s: _names(s, ALL_WORKLOADS, "workload"),
                        default=ALL_WORKLOADS,
                        help=f"workloads to run (default: all of {','.join(ALL_WORKLOADS)})")
    parser.add_argument("--backends", metavar="compiled,numpy",
                        type=lambda s: _names(s, BACKENDS, "backend"),
                        help="backends to run (default: compiled when it is built, and numpy)")
    parser.add_argument("--repeats", type=int, metavar="R",
                        help="timed repeats per row; the median is reported (default 3, --full 5)")
    parser.add_argument("--n", type=int, metavar="N",
                        help="samples per epoch for every model workload (overrides the mode)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the peer rows (PyTorch, ONNX Runtime) even when installed")
    return parser


def config_from_args(args, parser):
    """The BenchConfig the parsed command line asks for."""
    if args.backends and "compiled" in args.backends and not compiled_available():
        parser.error(f"--backends compiled: the compiled extension is not available "
                     f"({compiled_import_error()}); build it with "
                     "`python setup.py build_ext --inplace`")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        parser.error(f"--json {args.json}: its directory does not exist")
    for name in ("repeats", "n"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    return BenchConfig(workloads=args.workloads, threads=args.threads,
                       backends=args.backends or BACKENDS, full=args.full,
                       repeats=args.repeats, n=args.n, seed=args.seed, peers=not args.no_peers)


def main(argv=None):
    """Run the benchmark from command-line arguments; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    mode = "full" if args.full else "quick"

    def on_start(report):
        for line in _report.preamble(report, mode):
            print(line, flush=True)

    def on_row(row):
        print(_report.format_row(row), flush=True)

    result = run(config, on_start=on_start, on_row=on_row)
    for line in _report.footer(result):
        print(line, file=sys.stderr, flush=True)
    if args.json:
        _report.write_json(result, args.json)
        print(f"results written to {args.json}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
