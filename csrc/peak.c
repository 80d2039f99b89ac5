/*
 * peak.c -- the float32 FMA peak of this machine, measured: the yardstick the
 * benchmark's "fraction of peak" divides by. The loop is the ISA in force's
 * (peak.h); the portable build runs twelve scalar multiply-add chains.
 */
#include "fastnn.h"
#include "fnn_omp.h"
#include "peak.h"

static inline float mul_add(float a, float b, float c)
{
    return a * b + c;
}

double fnn_fma_loop_generic(int64_t iters)
{
    float m = 0.999999f, c = 1e-7f;
    float a0 = 0.f, a1 = 1.f, a2 = 2.f, a3 = 3.f, a4 = 4.f, a5 = 5.f;
    float a6 = 6.f, a7 = 7.f, a8 = 8.f, a9 = 9.f, a10 = 10.f, a11 = 11.f;
    FNN_PEAK_BODY(float, mul_add)
    return (double)a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
}

/* One thread's loop for the ISA in force and its FLOPs per iteration. */
static double run_loop(int64_t iters, double *flops_per_iter)
{
    double lanes = 1.0;
    double value;
#ifdef FNN_HAVE_X86_KERNELS
    switch (fnn_isa_current()) {
    case FNN_ISA_AVX512:
        lanes = 16.0;
        value = fnn_fma_loop_avx512(iters);
        break;
    case FNN_ISA_AVX2:
        lanes = 8.0;
        value = fnn_fma_loop_avx2(iters);
        break;
    default:
        value = fnn_fma_loop_generic(iters);
        break;
    }
#else
    value = fnn_fma_loop_generic(iters);
#endif
    *flops_per_iter = FNN_PEAK_ACCUMULATORS * lanes * 2.0;
    return value;
}

double fnn_fma_peak_gflops(int nthreads, double seconds)
{
    double flops_per_iter = 0.0, sink = 0.0;
    int64_t iters = 1 << 16;
    int64_t start, elapsed = 0;
    if (nthreads < 1 || fnn_pool_lost()) {
        nthreads = 1;      /* forked after OpenMP's pool started: a team would hang */
    }
    /* Calibrate on one thread (this also warms the core up): grow the loop until
     * it runs for a tenth of the budget. */
    while (1) {
        start = fnn_now_ns();
        sink += run_loop(iters, &flops_per_iter);
        elapsed = fnn_now_ns() - start;
        if (elapsed * 10.0 >= seconds * 1e9 || iters > ((int64_t)1 << 40)) {
            break;
        }
        iters *= 2;
    }
    iters = (int64_t)(iters * (seconds * 1e9 / (elapsed > 0 ? (double)elapsed : 1.0)));
    if (iters < 1) {
        iters = 1;
    }
    start = fnn_now_ns();
#pragma omp parallel num_threads(nthreads) reduction(+ : sink)
    {
        fnn_note_team();
        double per_iter;
        sink += run_loop(iters, &per_iter);
    }
    elapsed = fnn_now_ns() - start;
    if (sink == 12345.678) {          /* never true: keeps the loops' results alive */
        elapsed += 1;
    }
    return nthreads * (double)iters * flops_per_iter / (double)elapsed;
}
