/*
 * vact.h -- the float32 transcendental activations, one element at a time,
 * written so that the compiler vectorises loops over them (private to csrc/).
 *
 * These are THE float32 definitions: act_scalar.h's fnn_act_apply_f32 /
 * fnn_act_deriv_f32 call them, and so do the loops of act_loops_impl.h, which
 * are compiled once per ISA (act.c for the baseline, kernels/act_avx2.c and
 * kernels/act_avx512.c with those flags). Every build gives the same bits:
 * only IEEE additions, multiplications, divisions, comparisons and bit
 * operations, in the order written, and ISO C mode keeps -ffp-contract=off,
 * so no FMA is formed. A fused act(X W + b) (the GEMM epilogue), act.c's
 * kernels and the recurrent kernels therefore agree bitwise, whatever the ISA
 * and the thread count. (float64 stays on libm: it is the reference path.)
 *
 * A file that includes this should first include fnn_vector_opts.h (GCC's
 * -ftrapping-math off): otherwise GCC does not if-convert the selects below and the
 * loops run one element at a time. Values do not depend on that option.
 *
 * Accuracy, measured over every float32 input against a float64 reference
 * (tests/test_kernels_act_vector.py keeps a dense grid of it): a few ulp,
 * tails included. NaN in -> NaN out; +-inf give the limits (sigmoid 0 / 1,
 * tanh -1 / 1, elu -alpha, gelu and swish -0 / +inf; derivatives 0 / 1), and
 * no finite input gives inf or NaN.
 *
 *   vact_sigmoid_f32(z)        1 / (1 + e^-z)
 *   vact_tanh_f32(z)           tanh z
 *   vact_expm1_neg_f32(z)      e^z - 1 for z <= 0 (elu's negative side)
 *   vact_gelu_f32(x)           x Phi(x), Phi the normal CDF (Keras' exact gelu:
 *                              0.5 x (1 + erf(x / sqrt 2)))
 *   vact_gelu_deriv_f32(x)     Phi(x) + x phi(x)
 *   vact_swish_f32(x)          x sigmoid(x)
 *   vact_swish_deriv_f32(x)    s (1 + x (1 - s)), s = sigmoid(x)
 */
#ifndef FNN_VACT_H
#define FNN_VACT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vexp.h"

/* ---- sigmoid, tanh, expm1 ------------------------------------------------ */

/* 2^k = s1 s2 for k in [-252, 0] held as t = k + VEXP_F32_MAGIC (the rounding
 * step of the reductions below leaves it there): k1 = floor(k / 2) and
 * k - k1 in [-126, 0], split in integer arithmetic, so both factors are
 * normal and a product scaled by s1 then s2 rounds once if it is subnormal. */
static inline __attribute__((always_inline)) void vact_pow2_split(float t, float *s1, float *s2)
{
    uint32_t kb, k1b, bits;
    memcpy(&kb, &t, sizeof kb);
    kb = kb - VEXP_F32_MAGIC_BITS + 256u;      /* k + 256 >= 4 */
    k1b = kb >> 1;                             /* k1 + 128 */
    bits = (k1b - 1u) << 23;                   /* (k1 + 127) << 23 = 2^k1 */
    memcpy(s1, &bits, sizeof bits);
    bits = (kb - k1b - 1u) << 23;              /* (k - k1 + 127) << 23 */
    memcpy(s2, &bits, sizeof bits);
}

/* e^t for t <= 0 as p 2^k1 2^k2 (vexp1_f32's reduction and polynomial), the
 * scale factors left to the caller, who multiplies them in last. Clamped at
 * -120 (vexp1_f32 clamps at -104, where e^t is 0 but x e^t need not be):
 * k >= -174. */
typedef struct {
    float p, s1, s2;
} vact_exp_parts;

static inline __attribute__((always_inline)) vact_exp_parts vact_exp_neg(float x)
{
    vact_exp_parts e;
    float t, k, r;
    x = x < -120.0f ? -120.0f : x;             /* NaN fails the test and stays */
    t = x * VEXP_F32_LOG2E + VEXP_F32_MAGIC;
    k = t - VEXP_F32_MAGIC;
    r = x - k * VEXP_F32_LN2_HI;
    r = r - k * VEXP_F32_LN2_LO;
    e.p = vexp_poly_f32(r);
    vact_pow2_split(t, &e.s1, &e.s2);
    return e;
}

/* sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0, where
 * e = e^-|z|: no overflow, full relative precision for z very negative (a
 * subnormal e rounds once, in vexp1_f32, and 1 + e is then 1), one
 * division, no branch. */
static inline float vact_sigmoid_f32(float z)
{
    const float e = vexp1_f32(-fabsf(z));
    return (z >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* tanh |z| = (1 - e) / (1 + e), e = e^(-2|z|); below 0.3, where 1 - e would
 * cancel, its odd Taylor series to z^9. The recurrent kernels' definition
 * (formerly rnn_act.h), unchanged in value. */
static inline float vact_tanh_f32(float z)
{
    const float a = fabsf(z);
    const float e = vexp1_f32(-2.0f * a);
    const float big = (1.0f - e) / (1.0f + e);
    const float a2 = a * a;
    float p = 62.0f / 2835.0f;
    p = p * a2 - 17.0f / 315.0f;
    p = p * a2 + 2.0f / 15.0f;
    p = p * a2 - 1.0f / 3.0f;
    p = a + a * a2 * p;
    return copysignf(a < 0.3f ? p : big, z);
}

/* e^z - 1 for z <= 0 (z > 0 gives expm1(0) = 0; NaN stays NaN):
 * z = k ln2 + r, |r| <= ln2 / 2, so e^z - 1 = 2^k expm1(r) + (2^k - 1), where
 * 2^k expm1(r) is exact and 2^k - 1 too (k >= -29): one rounding after
 * expm1(r), whose Taylor series to r^9 has no cancellation. Below -20 the
 * result is -1 in float32; the clamp keeps 2^k normal. */
static inline float vact_expm1_neg_f32(float z)
{
    float k, r, q, pm, s;
    z = z < -20.0f ? -20.0f : z;
    z = z > 0.0f ? 0.0f : z;
    k = vexp_round_f32(z * VEXP_F32_LOG2E);
    r = z - k * VEXP_F32_LN2_HI;
    r = r - k * VEXP_F32_LN2_LO;
    q = 1.0f / 362880.0f;
    q = q * r + 1.0f / 40320.0f;
    q = q * r + 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    pm = r + (r * r) * q;
    s = vexp_pow2_f32(k);
    return s * pm + (s - 1.0f);
}

/* ---- gelu ---------------------------------------------------------------- */

/* Phi(-u) = e^(-u^2/2) M(u) for u >= 0. M(u) = m(u) / sqrt(2 pi), m the Mills
 * ratio Phi(-u) / phi(u), is written m(u) = 1 / (u + g(u)) with g = a(u) / b(u)
 * rational of degree 3/4, fitted minimax over u in [0.5, 15] for the relative
 * error of m (1.2e-8), so
 *     M(u) = b / ((u b + a) sqrt(2 pi)).
 * In this form the rounding errors of a and b, and of u b, are damped by
 * a / (u b + a) (small for large u), and all coefficients are positive: no
 * cancellation. */
#define VACT_GELU_A0 7.978706956e-01f
#define VACT_GELU_A1 4.296974540e-01f
#define VACT_GELU_A2 1.162634492e-01f
#define VACT_GELU_A3 1.432646438e-02f
#define VACT_GELU_B1 9.938583374e-01f
#define VACT_GELU_B2 4.620606601e-01f
#define VACT_GELU_B3 1.160508841e-01f
#define VACT_GELU_B4 1.433157641e-02f
#define VACT_SQRT_2PI 2.506628275e+00f   /* rounds within 0.002 ulp */
/* Near 0 that form sums terms of about 1/2 after five or six roundings each
 * (6 ulp); for |x| < 0.5 a polynomial in x^2 does better (1.5 ulp):
 *   gelu(x)  = x / 2 + x^2 P(x^2),   P(x^2) = (Phi(x) - 1/2) / x,
 *   gelu'(x) = 1/2 + x R(x^2),       R(x^2) = (gelu'(x) - 1/2) / x,
 * minimax for the relative error of P and R (9e-9, 3e-10). */
#define VACT_GELU_P0 3.989422917e-01f
#define VACT_GELU_P1 -6.648994237e-02f
#define VACT_GELU_P2 9.964836761e-03f
#define VACT_GELU_P3 -1.131130382e-03f
#define VACT_GELU_R0 7.978845835e-01f
#define VACT_GELU_R1 -2.659614682e-01f
#define VACT_GELU_R2 5.984000862e-02f
#define VACT_GELU_R3 -9.483693168e-03f
#define VACT_GELU_R4 1.085618977e-03f
#define VACT_GELU_CENTRAL 0.5f
/* |x| beyond which Phi(-|x|) and phi(x) are 0 in float32 (Phi(-15) ~ 1e-51). */
#define VACT_GELU_XMAX 15.0f

/* The pieces gelu and its derivative share, for xc = x clamped to [-15, 15]
 * and u = |xc|: e^(-u^2/2) = p 2^k1 2^k2 (p near 1, the scale factors normal,
 * multiplied in last so that a subnormal result rounds once), and b, u b
 * and a of M.
 *
 * u^2 / 2 exactly: u = uh + ul with uh the top 12 bits of u, so uh^2, uh ul
 * and ul^2 are exact; hi = -uh^2 / 2 is exact and lo = -(uh ul + ul^2 / 2)
 * rounds once, |lo| < 2^-11 |hi|. Reduction as in vexp1_f32, with lo added
 * into r: hi - k ln2_hi is exact (both are multiples of hi's ulp or of 2^-9
 * and the difference is below 1). Without this split the rounding of u^2
 * (relative 2^-24, times u^2 / 2 up to 112) would cost up to ~50 ulp.
 * k is in [-163, 0]. */
typedef struct {
    float p, s1, s2, b, ub, a;
} vact_gelu_parts;

static inline __attribute__((always_inline)) vact_gelu_parts vact_gelu_split(float xc)
{
    vact_gelu_parts g;
    const float u = fabsf(xc);
    float uh, ul, hi, lo, t, k, r, a, b;
    uint32_t bits;

    memcpy(&bits, &u, sizeof bits);
    bits &= 0xFFFFF000u;
    memcpy(&uh, &bits, sizeof uh);
    ul = u - uh;
    hi = -(uh * uh) * 0.5f;
    lo = -(uh * ul + (ul * ul) * 0.5f);
    t = hi * VEXP_F32_LOG2E + VEXP_F32_MAGIC;    /* k in t's low mantissa bits */
    k = t - VEXP_F32_MAGIC;
    r = hi - k * VEXP_F32_LN2_HI;
    r = r - k * VEXP_F32_LN2_LO;
    r = r + lo;
    g.p = vexp_poly_f32(r);
    vact_pow2_split(t, &g.s1, &g.s2);

    a = VACT_GELU_A3;
    a = a * u + VACT_GELU_A2;
    a = a * u + VACT_GELU_A1;
    a = a * u + VACT_GELU_A0;
    b = VACT_GELU_B4;
    b = b * u + VACT_GELU_B3;
    b = b * u + VACT_GELU_B2;
    b = b * u + VACT_GELU_B1;
    b = b * u + 1.0f;
    g.b = b;
    g.ub = u * b;
    g.a = a;
    return g;
}

static inline float vact_gelu_clamp(float x)
{
    x = x > VACT_GELU_XMAX ? VACT_GELU_XMAX : x;   /* NaN fails both tests and stays */
    x = x < -VACT_GELU_XMAX ? -VACT_GELU_XMAX : x;
    return x;
}

/* gelu(x) = x Phi(x). x < 0: x e^(-u^2/2) M(u) = -e^(-u^2/2) ub / ((ub + a)
 * sqrt(2 pi)), ub = u b: one product chain, the scaling last. x >= 0:
 * x (1 - e^(-u^2/2) M(u)), the subtracted part <= 1/2. Beyond |x| = 15 the
 * clamped x gives Phi = 0 (the result -0) or 1 (x). */
static inline float vact_gelu_f32(float x)
{
    const float xc = vact_gelu_clamp(x);
    const vact_gelu_parts g = vact_gelu_split(xc);
    const float w = xc < 0.0f ? -g.ub : -g.b;
    const float e = ((g.p * w) / ((g.ub + g.a) * VACT_SQRT_2PI) * g.s1) * g.s2;
    const float s = x * x;
    float P = VACT_GELU_P3;
    P = P * s + VACT_GELU_P2;
    P = P * s + VACT_GELU_P1;
    P = P * s + VACT_GELU_P0;
    if (fabsf(x) < VACT_GELU_CENTRAL) {
        return 0.5f * x + s * P;
    }
    return x < 0.0f ? e : x * (1.0f + e);
}

/* gelu'(x) = Phi(x) + x phi(x)
 *          = (x < 0 ? 0 : 1) + e^(-u^2/2) (x (ub + a) +- b) / ((ub + a) sqrt(2 pi))
 * (+ for x < 0). Near its zero (x ~ -0.75) the two terms cancel: the error
 * there is a few ulp of phi, not of the (tiny) result. */
static inline float vact_gelu_deriv_f32(float x)
{
    const float xc = vact_gelu_clamp(x);
    const vact_gelu_parts g = vact_gelu_split(xc);
    const float den = g.ub + g.a;
    const float v = xc * den + (xc < 0.0f ? g.b : -g.b);
    const float e = ((g.p * v) / (den * VACT_SQRT_2PI) * g.s1) * g.s2;
    const float s = x * x;
    float R = VACT_GELU_R4;
    R = R * s + VACT_GELU_R3;
    R = R * s + VACT_GELU_R2;
    R = R * s + VACT_GELU_R1;
    R = R * s + VACT_GELU_R0;
    if (fabsf(x) < VACT_GELU_CENTRAL) {
        return 0.5f + x * R;
    }
    return x < 0.0f ? e : 1.0f + e;
}

/* ---- swish ---------------------------------------------------------------- */

/* swish(x) = x / (1 + e) for x >= 0 and (x p / (1 + e)) 2^k for x < 0, with
 * e = e^-|x| = p 2^k as in vact_sigmoid_f32: one rounding into the subnormal
 * range (x e^x is normal down to x = -87 - log(87)), and 0 from x = -120 on:
 * swish(-inf) = -0. */
static inline float vact_swish_f32(float x)
{
    const float xc = x < -120.0f ? -120.0f : x;
    const vact_exp_parts ep = vact_exp_neg(-fabsf(x));
    const float e = (ep.p * ep.s1) * ep.s2;
    const float q = (x >= 0.0f ? x : xc * ep.p) / (1.0f + e);
    return x >= 0.0f ? q : (q * ep.s1) * ep.s2;
}

/* swish'(x) = s (1 + x (1 - s)), s = sigmoid(x). 1 - s is taken as e s for
 * x >= 0, where 1 - s would cancel (14 ulp at x = 15 otherwise); for x < 0
 * the product is formed on s / 2^k and scaled last, as in swish. x is
 * clamped to +-120 in the product (e s is 0 beyond): swish'(+-inf) = 1, -0. */
static inline float vact_swish_deriv_f32(float x)
{
    float xc = x < -120.0f ? -120.0f : x;          /* NaN fails both tests and stays */
    xc = xc > 120.0f ? 120.0f : xc;
    const vact_exp_parts ep = vact_exp_neg(-fabsf(x));
    const float e = (ep.p * ep.s1) * ep.s2;
    const float m = (x >= 0.0f ? 1.0f : ep.p) / (1.0f + e);   /* s, or s / 2^k */
    const float s = x >= 0.0f ? m : (m * ep.s1) * ep.s2;
    const float t = 1.0f + xc * (x >= 0.0f ? e * s : 1.0f - s);
    return x >= 0.0f ? m * t : ((m * t) * ep.s1) * ep.s2;
}

#endif /* FNN_VACT_H */
