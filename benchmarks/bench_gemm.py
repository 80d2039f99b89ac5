"""W5: float32 GEMM, fastnn's compiled kernel against NumPy's ``@`` (its BLAS).

Run:  python -m pytest benchmarks/bench_gemm.py --benchmark-only
      (add --benchmark-group-by=param:shape to see both backends side by side)

Each case is checked against a float64 product before it is timed; GFLOP/s,
the ISA and the thread count land in ``extra_info``. The compiled side calls
the kernel wrapper with a preallocated output (what layers do). NumPy's
thread count is set with threadpoolctl when it is installed; otherwise NumPy
runs with its own default and ``extra_info["numpy_threads"]`` says "default".

Fair comparisons: some machines set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
(for older OpenBLAS builds); they slow a current NumPy down. Run once as is
and once with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` and report
both (``extra_info["openblas_env"]`` records which it was).
"""
import contextlib
import os

import numpy as np
import pytest

from fastnn._ext import _core

SEED = 20240605
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


def _numpy_threads(n):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "default"
    return threadpool_limits(limits=n, user_api="blas"), n


def _operands(m, n, k):
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    return a, b, np.empty((m, n), np.float32)


def _check(c, a, b):
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-5 * np.sqrt(a.shape[1]) * 4
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol)


def _run(benchmark, fn, flops):
    if flops > 2e8:   # big cases: a few rounds are enough and keep the run short
        benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)
    median = benchmark.stats.stats.median
    benchmark.extra_info["gflops"] = round(flops / median / 1e9, 1)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("backend", ["compiled", "numpy"])
@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_gemm_f32(benchmark, shape, backend, nthreads):
    name, m, n, k = shape
    a, b, c = _operands(m, n, k)
    flops = 2.0 * m * n * k
    benchmark.group = f"gemm {name}"
    benchmark.extra_info.update(
        shape=name, backend=backend, threads=nthreads, isa=_core.isa_current(),
        openblas_env="set" if os.environ.get("OPENBLAS_CORETYPE") else "unset",
    )
    if backend == "compiled":
        def fn():
            _core.gemm_f32(c, a, b, None, False, False, 1.0, 0.0, 0, nthreads)

        fn()
        _check(c, a, b)
        _run(benchmark, fn, flops)
    else:
        limit, used = _numpy_threads(nthreads)
        benchmark.extra_info["numpy_threads"] = used
        with limit:
            np.matmul(a, b, out=c)
            _check(c, a, b)
            _run(benchmark, lambda: np.matmul(a, b, out=c), flops)
