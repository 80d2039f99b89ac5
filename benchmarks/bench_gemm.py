"""W5: float32 GEMM, fastnn's compiled kernel against NumPy's ``@`` (its BLAS).

Run:  python -m pytest benchmarks/bench_gemm.py --benchmark-only

The shapes are W5's: square 1024 and 2048, and the products W1-W4's layers
make. The compiled side calls the kernel wrapper (``_core.gemm_f32``, what
``CompiledOps.gemm`` calls after validating) with a preallocated output; the
NumPy side is ``np.matmul(a, b, out=c)``. Both run back to back at 1 and 2
threads (the conftest's ``threads`` fixture limits fastnn and NumPy's BLAS),
from a fixed seed, each checked against NumpyOps before it is timed, with
GFLOP/s and the ISA in ``extra_info``.

Fair comparisons: some machines set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
(for older OpenBLAS builds); they slow a current NumPy down. Run once as is
and once under ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` and report
both (``extra_info["openblas_env"]`` records which it was).
"""
import os

import numpy as np
import pytest

# (name, M, N, K): C[M,N] = A[M,K] @ B[K,N]
SHAPES = [
    ("square1024", 1024, 1024, 1024),
    ("square2048", 2048, 2048, 2048),
    ("w1_32x10@10x64", 32, 64, 10),
    ("w2_128x784@784x512", 128, 512, 784),
    ("w3_36864x288@288x64", 36864, 64, 288),
    ("w3_im2col_43264x9@9x32", 43264, 32, 9),
    ("w4_64x128@128x512", 64, 512, 128),
]


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_gemm_f32(benchmark, backend, threads, rng, reference, assert_close, record_rate,
                  shape):
    name, m, n, k = shape
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    if backend == "compiled":
        from fastnn._ext import _core

        def fn():
            _core.gemm_f32(c, a, b, None, False, False, 1.0, 0.0, 0, threads)
        isa = _core.isa_current()
    else:
        def fn():
            np.matmul(a, b, out=c)
        isa = "blas"

    fn()
    assert_close(c, reference.gemm(a, b), f"gemm {name}")
    benchmark.group = f"gemm {name} {threads}t"
    benchmark.extra_info.update(
        shape=name, isa=isa,
        openblas_env="set" if os.environ.get("OPENBLAS_CORETYPE") else "unset")
    flops = 2.0 * m * n * k
    if flops > 2e8:   # 10-70 ms a call: a few rounds keep the suite short
        benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)
    record_rate(flops, "GFLOP/s", 1e9)
