/*
 * act_scalar.h -- the element-wise activations, one scalar at a time.
 *
 * Every float32 activation value in csrc/ comes from fnn_act_apply_f32 /
 * fnn_act_deriv_f32: the activation loops of act_loops_impl.h (act.c, the
 * GEMM epilogue's tiles, the recurrent kernels) inline them, so a fused
 * `act(X W + b)` and a separate `act(Z)` compute the very same values. The
 * transcendental ones are vact.h's branch-free code, which gives the same
 * bits on every ISA and vectorises; float64 uses libm (the reference-precision
 * path). Keras' definitions: leaky_relu slope FNN_LEAKY_RELU_SLOPE (0.2),
 * elu alpha FNN_ELU_ALPHA (1.0), gelu the exact erf form, swish x*sigmoid(x).
 * Softmax is not element-wise and is not here: fnn_act_apply_* return z
 * unchanged for it (and for any unknown code); callers reject it first.
 *
 * Functions:
 *   fnn_act_apply_f32/f64(act, z)        y = act(z)
 *   fnn_act_deriv_f32/f64(act, z, y)     act'(z), given the input z and the
 *                                        output y = act(z); activations whose
 *                                        derivative only needs y ignore z
 *                                        (fnn_act_deriv_needs_input says which).
 *   fnn_sigmoid_f64(z)                   1 / (1 + exp(-z)), never overflows.
 *
 * NaN propagates through every activation (relu(NaN) is NaN, as np.maximum).
 */
#ifndef FNN_ACT_SCALAR_H
#define FNN_ACT_SCALAR_H

#include <math.h>

#include "fastnn.h"
#include "vact.h"

#define FNN_INV_SQRT2 0.70710678118654752440
#define FNN_INV_SQRT_2PI 0.39894228040143267794

/* Split at 0 so that exp() only ever sees a non-positive argument: no
 * overflow for large |z|, and full relative precision for very negative z. */
static inline double fnn_sigmoid_f64(double z)
{
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    else {
        double e = exp(z);
        return e / (1.0 + e);
    }
}

static inline float fnn_act_apply_f32(int act, float z)
{
    switch (act) {
    case FNN_ACT_RELU:
        /* `z < 0` is false for NaN, so NaN passes through like np.maximum. */
        return z < 0.0f ? 0.0f : z;
    case FNN_ACT_LEAKY_RELU:
        return z < 0.0f ? (float)FNN_LEAKY_RELU_SLOPE * z : z;
    case FNN_ACT_ELU:
        return z < 0.0f ? (float)FNN_ELU_ALPHA * vact_expm1_neg_f32(z) : z;
    case FNN_ACT_SIGMOID:
        return vact_sigmoid_f32(z);
    case FNN_ACT_TANH:
        return vact_tanh_f32(z);
    case FNN_ACT_GELU:
        return vact_gelu_f32(z);
    case FNN_ACT_SWISH:
        return vact_swish_f32(z);
    default: /* linear; softmax is not element-wise (rejected by callers) */
        return z;
    }
}

static inline double fnn_act_apply_f64(int act, double z)
{
    switch (act) {
    case FNN_ACT_RELU:
        return z < 0.0 ? 0.0 : z;
    case FNN_ACT_LEAKY_RELU:
        return z < 0.0 ? FNN_LEAKY_RELU_SLOPE * z : z;
    case FNN_ACT_ELU:
        return z < 0.0 ? FNN_ELU_ALPHA * expm1(z) : z;
    case FNN_ACT_SIGMOID:
        return fnn_sigmoid_f64(z);
    case FNN_ACT_TANH:
        return tanh(z);
    case FNN_ACT_GELU:
        return 0.5 * z * (1.0 + erf(z * FNN_INV_SQRT2));
    case FNN_ACT_SWISH:
        return z * fnn_sigmoid_f64(z);
    default:
        return z;
    }
}

/* act'(z) given z (the input) and y = act(z) (the output). relu/leaky/elu
 * branch on y's sign, which equals z's; sigmoid and tanh need only y; gelu
 * and swish need z. The derivative at exactly 0 is the left one for relu and
 * leaky_relu (0 and the slope), as Keras' gradients give. */
static inline float fnn_act_deriv_f32(int act, float z, float y)
{
    switch (act) {
    case FNN_ACT_RELU:
        return y > 0.0f ? 1.0f : 0.0f;
    case FNN_ACT_LEAKY_RELU:
        return y > 0.0f ? 1.0f : (float)FNN_LEAKY_RELU_SLOPE;
    case FNN_ACT_ELU:
        /* For z < 0, y = alpha (e^z - 1), so y' = alpha e^z = y + alpha. */
        return y > 0.0f ? 1.0f : y + (float)FNN_ELU_ALPHA;
    case FNN_ACT_SIGMOID:
        return y * (1.0f - y);
    case FNN_ACT_TANH:
        return 1.0f - y * y;
    case FNN_ACT_GELU:
        return vact_gelu_deriv_f32(z);
    case FNN_ACT_SWISH:
        return vact_swish_deriv_f32(z);
    default:
        return 1.0f;
    }
}

static inline double fnn_act_deriv_f64(int act, double z, double y)
{
    switch (act) {
    case FNN_ACT_RELU:
        return y > 0.0 ? 1.0 : 0.0;
    case FNN_ACT_LEAKY_RELU:
        return y > 0.0 ? 1.0 : FNN_LEAKY_RELU_SLOPE;
    case FNN_ACT_ELU:
        return y > 0.0 ? 1.0 : y + FNN_ELU_ALPHA;
    case FNN_ACT_SIGMOID:
        return y * (1.0 - y);
    case FNN_ACT_TANH:
        return 1.0 - y * y;
    case FNN_ACT_GELU:
        return 0.5 * (1.0 + erf(z * FNN_INV_SQRT2)) + z * FNN_INV_SQRT_2PI * exp(-0.5 * z * z);
    case FNN_ACT_SWISH: {
        double s = fnn_sigmoid_f64(z);
        return s * (1.0 + z * (1.0 - s));
    }
    default:
        return 1.0;
    }
}

/* 1 when fnn_act_deriv_* needs the input z (it cannot be had from y alone). */
static inline int fnn_act_deriv_needs_input(int act)
{
    return act == FNN_ACT_GELU || act == FNN_ACT_SWISH;
}

#endif /* FNN_ACT_SCALAR_H */
