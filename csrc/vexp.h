/*
 * vexp.h -- e^x over arrays, written so that the compiler vectorises it
 * (private to csrc/): the exp of Ops.unary and of softmax / log-softmax.
 *
 * libm's expf / exp run one element at a time (2-3 ns each here); this is
 * branch-free arithmetic on whole vectors. Full range, as libm's: results
 * overflow to inf above ln(max), go subnormal below ln(min normal) and round
 * to 0 below that; e^inf = inf, e^-inf = 0, NaN in -> NaN out. Accuracy: a
 * couple of ulp from the correctly rounded value (NumPy's own SIMD exp is
 * as close, from the other side: the two agree to a few ulp).
 *
 * Method (Cody & Waite): x = k ln2 + r with k = round(x / ln2), r from a
 * two-part ln2 (exact products), e^r by its Taylor series (to r^7 in float,
 * relative error 5e-9; to r^13 in double, 5e-18), then e^r 2^k1 2^k2 with
 * k1 + k2 = k, each 2^ki built in the exponent bits and normal, so the
 * scaling is exact until the last product, which rounds once if the result
 * is subnormal.
 *
 * The same source is compiled three times: in vexp.c (the baseline ISA) and
 * in kernels/vexp_avx2.c and kernels/vexp_avx512.c (with those flags), and
 * fnn_vexp_<f32|f64> calls the one for fnn_isa_current(). ISO C mode keeps
 * -ffp-contract=off, so no FMA is formed and every build computes the same
 * values: results do not depend on the ISA (nor, element-wise, on the thread
 * count). A file that includes this first includes fnn_vector_opts.h (GCC's
 * -ftrapping-math off), so the clamps compile to vector min / max.
 *
 *   fnn_vexp_f32(y, x, n)   y[n] = e^x[n]   (y may equal x)
 *   fnn_vexp_f64(y, x, n)
 */
#ifndef FNN_VEXP_H
#define FNN_VEXP_H

#include <stdint.h>
#include <string.h>

/* float: clamp to [-104, 89]: e^89 overflows to inf, e^-104 rounds to 0. */
#define VEXP_F32_HI 89.0f
#define VEXP_F32_LO -104.0f
#define VEXP_F32_LOG2E 1.44269504088896341f
#define VEXP_F32_LN2_HI 0.693359375f           /* ln 2 = HI + LO, HI with 9 bits */
#define VEXP_F32_LN2_LO -2.12194440e-4f
#define VEXP_F32_MAGIC 12582912.0f              /* 1.5 * 2^23: x + it rounds x to an integer */
#define VEXP_F32_MAGIC_BITS 0x4B400000u

/* double: clamp to [-746, 710]. */
#define VEXP_F64_HI 710.0
#define VEXP_F64_LO -746.0
#define VEXP_F64_LOG2E 1.44269504088896338700e+00
#define VEXP_F64_LN2_HI 6.93147180369123816490e-01 /* fdlibm's: 21 trailing zero bits */
#define VEXP_F64_LN2_LO 1.90821492927058770002e-10
#define VEXP_F64_MAGIC 6755399441055744.0       /* 1.5 * 2^52 */
#define VEXP_F64_MAGIC_BITS 0x4338000000000000ull

/* 2^k for an integer-valued float k in [-126, 127]: k + MAGIC holds k in its
 * low mantissa bits; (those bits + 127) << 23 is 2^k (unsigned arithmetic). */
static inline float vexp_pow2_f32(float k)
{
    const float t = k + VEXP_F32_MAGIC;
    uint32_t bits;
    float s;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - VEXP_F32_MAGIC_BITS + 127u) << 23;
    memcpy(&s, &bits, sizeof s);
    return s;
}

static inline double vexp_pow2_f64(double k)
{
    const double t = k + VEXP_F64_MAGIC;
    uint64_t bits;
    double s;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - VEXP_F64_MAGIC_BITS + 1023u) << 52;
    memcpy(&s, &bits, sizeof s);
    return s;
}

/* round(x) for |x| < 2^22 (ties to even), as a float. */
static inline float vexp_round_f32(float x)
{
    return (x + VEXP_F32_MAGIC) - VEXP_F32_MAGIC;
}

/* e^r for |r| <= ln2 / 2 + a little: its Taylor series to r^7 (relative
 * error 5e-9 before rounding), Horner's order. Shared by vexp1_f32 and the
 * activations of vact.h, which reduce their arguments the same way. */
static inline float vexp_poly_f32(float r)
{
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p;
}

static inline float vexp1_f32(float x)
{
    float k, k1, r, p;
    x = x > VEXP_F32_HI ? VEXP_F32_HI : x;    /* NaN fails both tests and stays */
    x = x < VEXP_F32_LO ? VEXP_F32_LO : x;
    k = vexp_round_f32(x * VEXP_F32_LOG2E);   /* round(x / ln2) */
    r = x - k * VEXP_F32_LN2_HI;
    r = r - k * VEXP_F32_LN2_LO;
    p = vexp_poly_f32(r);
    /* k in [-150, 129]: halves k1 = round(k / 2), k - k1 in [-75, 65]. */
    k1 = vexp_round_f32(k * 0.5f);
    return (p * vexp_pow2_f32(k1)) * vexp_pow2_f32(k - k1);
}

static inline double vexp1_f64(double x)
{
    double k, k1, r, p;
    x = x > VEXP_F64_HI ? VEXP_F64_HI : x;
    x = x < VEXP_F64_LO ? VEXP_F64_LO : x;
    k = (x * VEXP_F64_LOG2E + VEXP_F64_MAGIC) - VEXP_F64_MAGIC;
    r = x - k * VEXP_F64_LN2_HI;
    r = r - k * VEXP_F64_LN2_LO;
    p = 1.0 / 6227020800.0;                 /* 1 / 13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* k in [-1076, 1025]: k1 and k - k1 in [-538, 513]. */
    k1 = (k * 0.5 + VEXP_F64_MAGIC) - VEXP_F64_MAGIC;
    return (p * vexp_pow2_f64(k1)) * vexp_pow2_f64(k - k1);
}

/* e^x where the caller knows x <= 88 (float) / 709 (double), such as x - max
 * in a softmax: one scaling by 2^k instead of two, since no result here
 * overflows; results below the smallest normal are flushed to 0 (x < -87,
 * resp. x < -708) instead of going subnormal. Elsewhere bitwise equal to
 * vexp1_f32 / vexp1_f64 (the same reduction and polynomial), and NaN in ->
 * NaN out. About a third fewer operations. */
static inline float vexp1_soft_f32(float x)
{
    const float y = x < -87.0f ? -87.0f : x;
    float k, r, p;
    k = (y * VEXP_F32_LOG2E + VEXP_F32_MAGIC) - VEXP_F32_MAGIC;
    r = y - k * VEXP_F32_LN2_HI;
    r = r - k * VEXP_F32_LN2_LO;
    p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    p = p * vexp_pow2_f32(k);
    return x < -87.0f ? 0.0f : p;
}

static inline double vexp1_soft_f64(double x)
{
    const double y = x < -708.0 ? -708.0 : x;
    double k, r, p;
    k = (y * VEXP_F64_LOG2E + VEXP_F64_MAGIC) - VEXP_F64_MAGIC;
    r = y - k * VEXP_F64_LN2_HI;
    r = r - k * VEXP_F64_LN2_LO;
    p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    p = p * vexp_pow2_f64(k);
    return x < -708.0 ? 0.0 : p;
}

/* The loops, defined by each file that includes this with its suffix. */
#define FNN_VEXP_DEFINE(SUFFIX)                                              \
    void fnn_vexp_f32_##SUFFIX(float *y, const float *x, int64_t n)          \
    {                                                                        \
        int64_t j;                                                           \
        _Pragma("omp simd")                                                  \
        for (j = 0; j < n; j++) {                                            \
            y[j] = vexp1_f32(x[j]);                                          \
        }                                                                    \
    }                                                                        \
    void fnn_vexp_f64_##SUFFIX(double *y, const double *x, int64_t n)        \
    {                                                                        \
        int64_t j;                                                           \
        _Pragma("omp simd")                                                  \
        for (j = 0; j < n; j++) {                                            \
            y[j] = vexp1_f64(x[j]);                                          \
        }                                                                    \
    }

void fnn_vexp_f32_generic(float *y, const float *x, int64_t n);
void fnn_vexp_f64_generic(double *y, const double *x, int64_t n);
#ifdef FNN_HAVE_X86_KERNELS
void fnn_vexp_f32_avx2(float *y, const float *x, int64_t n);
void fnn_vexp_f64_avx2(double *y, const double *x, int64_t n);
void fnn_vexp_f32_avx512(float *y, const float *x, int64_t n);
void fnn_vexp_f64_avx512(double *y, const double *x, int64_t n);
#endif

/* y[n] = e^x[n] with the loop of the ISA in force (vexp.c). */
void fnn_vexp_f32(float *y, const float *x, int64_t n);
void fnn_vexp_f64(double *y, const double *x, int64_t n);

#endif /* FNN_VEXP_H */
