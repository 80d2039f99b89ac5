/*
 * vexp.c -- e^x over arrays (vexp.h) for the baseline ISA, and the entry
 * points that call the build of the ISA in force through cpu.c's kernel
 * table (kernels/vexp_<isa>.c; every build gives the same values).
 */
#include "fnn_vector_opts.h"   /* first: see there */

#include "vexp.h"

#include "fastnn.h"
#include "gemm_internal.h"

FNN_VEXP_DEFINE(generic)

/* The build of the ISA in force, from cpu.c's kernel table. */
void fnn_vexp_f32(float *y, const float *x, int64_t n)
{
    fnn_kernels()->vexp.f32(y, x, n);
}

void fnn_vexp_f64(double *y, const double *x, int64_t n)
{
    fnn_kernels()->vexp.f64(y, x, n);
}
