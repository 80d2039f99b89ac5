/*
 * attention_generic.c -- attention's task loops (attention_kern.h) for any
 * CPU: GCC/Clang vector extensions of 16 bytes (SSE2 on x86-64, NEON on
 * ARM, scalar code elsewhere), a multiply and an add per step (no FMA is
 * formed: ISO C's -ffp-contract=off). Register tiles 4 x 2 vectors, or 8 x 1.
 */
#include "fnn_vector_opts.h"   /* first: see there */

#include <stdint.h>
#include <string.h>

#include "vexp.h"

typedef float att_gv_f32 __attribute__((vector_size(16)));
typedef double att_gv_f64 __attribute__((vector_size(16)));

#define ATT_GENERIC_VECTOR(SFX, T, VT, LANES)                                  \
    static inline VT att_gload_##SFX(const T *p)                               \
    {                                                                          \
        VT v;                                                                  \
        memcpy(&v, p, sizeof v);                                               \
        return v;                                                              \
    }                                                                          \
    static inline void att_gstore_##SFX(T *p, VT v)                            \
    {                                                                          \
        memcpy(p, &v, sizeof v);                                               \
    }                                                                          \
    static inline VT att_gloadm_##SFX(const T *p, int n)                       \
    {                                                                          \
        VT v = {0};                                                            \
        for (int k = 0; k < n; k++) {                                          \
            v[k] = p[k];                                                       \
        }                                                                      \
        return v;                                                              \
    }                                                                          \
    static inline void att_gstorem_##SFX(T *p, VT v, int n)                    \
    {                                                                          \
        for (int k = 0; k < n; k++) {                                          \
            p[k] = v[k];                                                       \
        }                                                                      \
    }                                                                          \
    static inline void att_gtr_##SFX(T *dst, int64_t ldd, const T *src, int64_t lds, T s)  \
    {                                                                          \
        for (int r = 0; r < LANES; r++) {                                      \
            for (int c = 0; c < LANES; c++) {                                  \
                dst[c * ldd + r] = s * src[r * lds + c];                       \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    static inline VT att_gmax_##SFX(VT a, VT b)                                \
    {                                                                          \
        for (int k = 0; k < LANES; k++) {                                      \
            b[k] = a[k] > b[k] ? a[k] : b[k];                                  \
        }                                                                      \
        return b;                                                              \
    }                                                                          \
    static inline VT att_gset1_##SFX(T x)                                      \
    {                                                                          \
        VT v;                                                                  \
        for (int k = 0; k < LANES; k++) {                                      \
            v[k] = x;                                                          \
        }                                                                      \
        return v;                                                              \
    }

ATT_GENERIC_VECTOR(f32, float, att_gv_f32, 4)
ATT_GENERIC_VECTOR(f64, double, att_gv_f64, 2)

#define ATT_ISA generic
#define ATT_NV 2
#define ATT_MR_WIDE 4
#define ATT_MR_NARROW 8
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VMASK_T int
#define VMASK(n) (n)

#define ATT_T float
#define ATT_SFX f32
#define ATT_EXP vexp1_soft_f32
#define ATT_V att_gv_f32
#define VL 4
#define VZERO() ((att_gv_f32){0})
#define VSET1(x) att_gset1_f32(x)
#define VMAX(a, b) att_gmax_f32(a, b)
#define VLOAD(p) att_gload_f32(p)
#define VSTORE(p, v) att_gstore_f32(p, v)
#define VLOADM(p, m) att_gloadm_f32(p, m)
#define VSTOREM(p, v, m) att_gstorem_f32(p, v, m)
#define ATT_TRANSPOSE att_gtr_f32
#include "attention_kern.h"
#undef ATT_T
#undef ATT_SFX
#undef ATT_EXP
#undef ATT_V
#undef VL
#undef VZERO
#undef VSET1
#undef VMAX
#undef VLOAD
#undef VSTORE
#undef VLOADM
#undef VSTOREM
#undef ATT_TRANSPOSE

#define ATT_T double
#define ATT_SFX f64
#define ATT_EXP vexp1_soft_f64
#define ATT_V att_gv_f64
#define VL 2
#define VZERO() ((att_gv_f64){0})
#define VSET1(x) att_gset1_f64(x)
#define VMAX(a, b) att_gmax_f64(a, b)
#define VLOAD(p) att_gload_f64(p)
#define VSTORE(p, v) att_gstore_f64(p, v)
#define VLOADM(p, m) att_gloadm_f64(p, m)
#define VSTOREM(p, v, m) att_gstorem_f64(p, v, m)
#define ATT_TRANSPOSE att_gtr_f64
#include "attention_kern.h"
