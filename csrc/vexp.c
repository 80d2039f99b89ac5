/*
 * vexp.c -- e^x over arrays (vexp.h) for the baseline ISA, and the entry
 * points that pick the build for the ISA in force (kernels/vexp_<isa>.c,
 * chosen after cpu.c checked the CPU and the OS; every build gives the same
 * values).
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")   /* see vexp.h */
#endif

#include "vexp.h"

#include "fastnn.h"

FNN_VEXP_DEFINE(generic)

void fnn_vexp_f32(float *y, const float *x, int64_t n)
{
#ifdef FNN_HAVE_X86_KERNELS
    switch (fnn_isa_current()) {
    case FNN_ISA_AVX512:
        fnn_vexp_f32_avx512(y, x, n);
        return;
    case FNN_ISA_AVX2:
        fnn_vexp_f32_avx2(y, x, n);
        return;
    default:
        break;
    }
#endif
    fnn_vexp_f32_generic(y, x, n);
}

void fnn_vexp_f64(double *y, const double *x, int64_t n)
{
#ifdef FNN_HAVE_X86_KERNELS
    switch (fnn_isa_current()) {
    case FNN_ISA_AVX512:
        fnn_vexp_f64_avx512(y, x, n);
        return;
    case FNN_ISA_AVX2:
        fnn_vexp_f64_avx2(y, x, n);
        return;
    default:
        break;
    }
#endif
    fnn_vexp_f64_generic(y, x, n);
}
