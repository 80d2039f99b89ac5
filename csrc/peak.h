/*
 * peak.h -- the float32 FMA loop that measures this machine's peak: twelve
 * independent vector accumulators, each a fused multiply-add per iteration,
 * enough to keep both FMA pipes busy on every CPU fastnn targets (latency
 * 4-5 cycles x 2 ports). One loop per ISA (kernels/peak_<isa>.c, at that
 * ISA's vector width); peak.c times it.
 *
 *   fnn_fma_loop_<isa>(iters)  runs iters iterations; returns a value that
 *                              depends on every accumulator (so none is
 *                              optimised away)
 *   each iteration is FNN_PEAK_ACCUMULATORS x lanes x 2 FLOPs
 */
#ifndef FNN_PEAK_H
#define FNN_PEAK_H

#include <stdint.h>

#define FNN_PEAK_ACCUMULATORS 12

/* The loop body over a vector type V with fma F(a, b, c) = a * b + c; twelve
 * named accumulators, so they live in registers. */
#define FNN_PEAK_BODY(V, F)                                                   \
    for (int64_t i = 0; i < iters; i++) {                                     \
        a0 = F(a0, m, c); a1 = F(a1, m, c); a2 = F(a2, m, c);                 \
        a3 = F(a3, m, c); a4 = F(a4, m, c); a5 = F(a5, m, c);                 \
        a6 = F(a6, m, c); a7 = F(a7, m, c); a8 = F(a8, m, c);                 \
        a9 = F(a9, m, c); a10 = F(a10, m, c); a11 = F(a11, m, c);             \
    }

double fnn_fma_loop_generic(int64_t iters);
#ifdef FNN_HAVE_X86_KERNELS
double fnn_fma_loop_avx2(int64_t iters);
double fnn_fma_loop_avx512(int64_t iters);
#endif

/* Peak float32 GFLOP/s of `nthreads` threads each running the loop of the ISA
 * in force for about `seconds` (timed together, after a short warm-up). */
double fnn_fma_peak_gflops(int nthreads, double seconds);

#endif /* FNN_PEAK_H */
