/*
 * act_avx2.c -- the float32 activation loops (act_loops_impl.h) built with
 * AVX2 flags; put in the kernel table by cpu.c only when this ISA is
 * selected, after it checked the CPU and the OS. Same values as every other
 * build (vact.h).
 */
#include "fnn_vector_opts.h"   /* first: see there */

#define FNN_ACT_ISA avx2
#include "act_loops_impl.h"
