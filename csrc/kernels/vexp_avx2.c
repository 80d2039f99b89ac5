/*
 * vexp_avx2.c -- e^x over arrays (vexp.h) built with AVX2 flags;
 * called by vexp.c only when fnn_isa_current() is this ISA, after cpu.c
 * checked the CPU and the OS.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")   /* see vexp.h */
#endif

#include "vexp.h"

FNN_VEXP_DEFINE(avx2)
