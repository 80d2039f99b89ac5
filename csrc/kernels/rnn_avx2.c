/*
 * rnn_avx2.c -- the recurrent kernels' sigmoid and tanh (rnn_act.h) built
 * with AVX2 flags; called by rnn.c only when fnn_isa_current() is
 * this ISA (or better), after cpu.c checked the CPU and the OS.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")   /* see rnn_act.h */
#endif

#include "rnn_act.h"

FNN_RNN_ACT_DEFINE(avx2)
