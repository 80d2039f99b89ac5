/*
 * rnn_act.h -- the sigmoid and tanh of the recurrent kernels, written so that
 * the compiler vectorises them (private to csrc/).
 *
 * Branch-free polynomial code, a few ulp from libm, NaN in -> NaN out. The
 * same source is compiled three times: in rnn.c (baseline ISA) and in
 * kernels/rnn_avx2.c and kernels/rnn_avx512.c (with those ISA flags, chosen
 * at run time after fnn_isa_current()). ISO C mode keeps -ffp-contract=off,
 * so no FMA is formed and every build computes the same values: results do
 * not depend on the ISA either.
 *
 * A file that includes this must first disable GCC's -ftrapping-math (see
 * RNN_ACT_OPTIONS): without that GCC will not if-convert the selects and the
 * loops run one element at a time.
 *
 *   fnn_rnn_sigmoid_f32_<isa>(y, z, n)   y[n] = 1 / (1 + e^-z)
 *   fnn_rnn_tanh_f32_<isa>(y, z, n)      y[n] = tanh(z)
 * y may equal z.
 */
#ifndef FNN_RNN_ACT_H
#define FNN_RNN_ACT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define RNN_LOG2E 1.44269504088896341f
#define RNN_LN2_HI 0.693359375f          /* ln 2 = HI + LO, HI with 9 bits */
#define RNN_LN2_LO -2.12194440e-4f
#define RNN_ROUND_MAGIC 12582912.0f      /* 1.5 * 2^23: x + it rounds x to an integer */
#define RNN_EXP_MAX 88.0f                /* e^88 < FLT_MAX, k <= 127 */
#define RNN_EXP_MIN -87.0f               /* e^-87 > FLT_MIN: 2^k stays normal */

/* e^x for x in [-87, 88] (clamped outside; NaN stays NaN), branch-free:
 * x = k ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^7 (relative
 * error < 6e-9 before rounding), 2^k built in the exponent bits. */
static inline float rnn_exp(float x)
{
    float t, kf, r, p, s;
    uint32_t bits;

    x = x > RNN_EXP_MAX ? RNN_EXP_MAX : x;
    x = x < RNN_EXP_MIN ? RNN_EXP_MIN : x;
    t = x * RNN_LOG2E + RNN_ROUND_MAGIC;     /* k sits in t's low mantissa bits */
    kf = t - RNN_ROUND_MAGIC;
    r = x - kf * RNN_LN2_HI;
    r = r - kf * RNN_LN2_LO;
    p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23; /* (k + 127) << 23 = 2^k */
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

static inline float rnn_sigmoid(float z)
{
    return 1.0f / (1.0f + rnn_exp(-z));
}

/* tanh |z| = (1 - e) / (1 + e), e = e^(-2|z|); below 0.3 its odd Taylor
 * series to z^9 (no cancellation near 0). */
static inline float rnn_tanh(float z)
{
    const float a = fabsf(z);
    const float e = rnn_exp(-2.0f * a);
    const float big = (1.0f - e) / (1.0f + e);
    const float a2 = a * a;
    float p = 62.0f / 2835.0f;
    p = p * a2 - 17.0f / 315.0f;
    p = p * a2 + 2.0f / 15.0f;
    p = p * a2 - 1.0f / 3.0f;
    p = a + a * a2 * p;
    return copysignf(a < 0.3f ? p : big, z);
}

/* The two loops, defined by each file that includes this with its suffix. */
#define FNN_RNN_ACT_DEFINE(SUFFIX)                                              \
    void fnn_rnn_sigmoid_f32_##SUFFIX(float *y, const float *z, int64_t n)     \
    {                                                                          \
        int64_t j;                                                             \
        _Pragma("omp simd")                                                    \
        for (j = 0; j < n; j++) {                                              \
            y[j] = rnn_sigmoid(z[j]);                                          \
        }                                                                      \
    }                                                                          \
    void fnn_rnn_tanh_f32_##SUFFIX(float *y, const float *z, int64_t n)        \
    {                                                                          \
        int64_t j;                                                             \
        _Pragma("omp simd")                                                    \
        for (j = 0; j < n; j++) {                                              \
            y[j] = rnn_tanh(z[j]);                                             \
        }                                                                      \
    }

typedef void (*fnn_rnn_act_f32)(float *y, const float *z, int64_t n);

void fnn_rnn_sigmoid_f32_generic(float *y, const float *z, int64_t n);
void fnn_rnn_tanh_f32_generic(float *y, const float *z, int64_t n);
#ifdef FNN_HAVE_X86_KERNELS
void fnn_rnn_sigmoid_f32_avx2(float *y, const float *z, int64_t n);
void fnn_rnn_tanh_f32_avx2(float *y, const float *z, int64_t n);
void fnn_rnn_sigmoid_f32_avx512(float *y, const float *z, int64_t n);
void fnn_rnn_tanh_f32_avx512(float *y, const float *z, int64_t n);
#endif

#endif /* FNN_RNN_ACT_H */
