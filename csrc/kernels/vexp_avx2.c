/*
 * vexp_avx2.c -- e^x over arrays (vexp.h) built with AVX2 flags;
 * put in the kernel table by cpu.c only when this ISA is selected, after it
 * checked the CPU and the OS.
 */
#include "fnn_vector_opts.h"   /* first: see there */

#include "vexp.h"

FNN_VEXP_DEFINE(avx2)
