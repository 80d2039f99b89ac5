/*
 * layernorm_avx512.c -- layernorm.c's per-row loops (layernorm_rows_impl.h)
 * built with AVX-512 flags; called by layernorm.c only when fnn_isa_current()
 * is this ISA, after cpu.c checked the CPU and the OS. Same values as every
 * other build (layernorm_rows.h).
 */
#include <math.h>

#include "layernorm_rows.h"

#define FNN_LN_ISA avx512

#define FNN_T float
#define FNN_LN_SFX f32
#include "layernorm_rows_impl.h"
#undef FNN_T
#undef FNN_LN_SFX

#define FNN_T double
#define FNN_LN_SFX f64
#include "layernorm_rows_impl.h"
#undef FNN_T
#undef FNN_LN_SFX
