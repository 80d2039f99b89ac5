"""NumpyOps: the readable reference of every Ops method (float32 and float64).

This module imports no compiled code. It is the spec the compiled kernels are
tested against and the fallback when the extension is absent, so clarity wins
over speed here -- though it is still vectorised NumPy, not Python loops.
"""
import math

import numpy as np

from fastnn.backend.ops import (
    ELU_ALPHA, LEAKY_RELU_SLOPE, PROB_EPSILON, Ops, check_activation,
    check_gemm_args,
)

_erf = np.frompyfunc(math.erf, 1, 1)


def _erf_array(x):
    return _erf(x).astype(x.dtype, copy=False)


def _sigmoid(x):
    # exp(-|x|) never overflows, and each branch keeps full relative precision
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _activate(name, x):
    """act(x) as a new array."""
    if name == "linear":
        return x.copy()
    if name == "relu":
        return np.maximum(x, 0)
    if name == "leaky_relu":
        return np.where(x > 0, x, x * x.dtype.type(LEAKY_RELU_SLOPE))
    if name == "elu":
        return np.where(x > 0, x, ELU_ALPHA * np.expm1(np.minimum(x, 0))).astype(x.dtype)
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        return _softmax(x)
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf_array(x / np.sqrt(2.0).astype(x.dtype)))
    if name == "swish":
        return x * _sigmoid(x)
    raise ValueError(f"unknown activation {name!r}")


def _activation_grad(name, dy, x, y):
    """dy * act'(x) as a new array; x is the input, y the output."""
    if name == "linear":
        return dy.copy()
    if name == "relu":
        return dy * (y > 0)
    if name == "leaky_relu":
        return dy * np.where(y > 0, 1.0, LEAKY_RELU_SLOPE).astype(dy.dtype)
    if name == "elu":
        return dy * np.where(x > 0, 1.0, ELU_ALPHA * np.exp(np.minimum(x, 0))).astype(dy.dtype)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    if name == "gelu":
        cdf = 0.5 * (1.0 + _erf_array(x / np.sqrt(2.0).astype(x.dtype)))
        pdf = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi).astype(x.dtype)
        return dy * (cdf + x * pdf)
    if name == "swish":
        s = _sigmoid(x)
        return dy * (s + x * s * (1 - s))
    raise ValueError(f"unknown activation {name!r}")


def _write(result, out):
    if out is None:
        return result
    np.copyto(out, result, casting="same_kind")
    return out


class NumpyOps(Ops):
    """The reference backend: every Ops method in plain, vectorised NumPy."""

    name = "numpy"

    # ---- GEMM ---------------------------------------------------------------
    def gemm(self, a, b, *, transpose_a=False, transpose_b=False, alpha=1.0, beta=0.0,
             bias=None, activation=None, out=None):
        _, _, _, dtype = check_gemm_args(a, b, transpose_a, transpose_b, beta, bias,
                                         activation, out)
        result = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
        if alpha != 1.0:
            result *= dtype.type(alpha)
        if beta != 0.0:
            result += dtype.type(beta) * out
        if bias is not None:
            result += bias
        return _write(_activate(check_activation(activation), result), out)

    # ---- activations ---------------------------------------------------------
    def activation_forward(self, name, x, out=None):
        return _write(_activate(check_activation(name), x), out)

    def activation_backward(self, name, dy, x, y, out=None):
        return _write(_activation_grad(check_activation(name), dy, x, y), out)

    # ---- dense layers --------------------------------------------------------
    def dense_forward(self, x, w, b, activation, out=None, preact_out=None):
        activation = check_activation(activation)
        z = x @ w
        if b is not None:
            z += b
        if preact_out is not None:
            _write(z, preact_out)
        return _write(_activate(activation, z), out)

    def dense_backward(self, dy, x, w, y, preact, activation, dw_out, db_out, dx_out=None,
                       scratch=None):
        dz = _activation_grad(check_activation(activation), dy, preact, y)
        if scratch is not None:
            np.copyto(scratch, dz)
        np.matmul(x.T, dz, out=dw_out)
        if db_out is not None:
            np.sum(dz, axis=0, out=db_out)
        if dx_out is False:
            return None
        return _write(dz @ w.T, dx_out)

    # ---- losses and metrics --------------------------------------------------
    def loss(self, name, y_pred, y_true, *, from_logits=False, delta=1.0, grad_out=None):
        n = y_pred.shape[0]
        if n == 0:
            raise ValueError(f"loss {name!r}: empty batch")
        p = y_pred.astype(np.float64)
        if name == "sparse_categorical_crossentropy":
            labels = np.asarray(y_true)
            if labels.shape != (n,) or labels.dtype.kind not in "iu":
                raise ValueError(f"sparse labels must be {n} integers, got {labels.shape} {labels.dtype}")
            if labels.size and (labels.min() < 0 or labels.max() >= p.shape[1]):
                raise ValueError(f"class index out of range [0, {p.shape[1]})")
            t = np.zeros_like(p)
            t[np.arange(n), labels] = 1.0
        else:
            if y_true.shape != y_pred.shape:
                raise ValueError(f"loss {name!r}: y_true {y_true.shape} and y_pred "
                                 f"{y_pred.shape} differ")
            t = y_true.astype(np.float64)
        per_sample, grad = _loss_and_grad(name, p, t, from_logits, delta)
        if grad_out is not None:
            np.copyto(grad_out, grad / n, casting="same_kind")
        return float(per_sample.sum() / n)

    def metric_sum(self, name, y_pred, y_true):
        if name == "mae":
            return float(np.abs(y_pred - y_true).astype(np.float64).mean(axis=-1).sum())
        if name == "mse":
            return float(((y_pred - y_true).astype(np.float64) ** 2).mean(axis=-1).sum())
        if name == "binary_accuracy":
            return float(((y_pred > 0.5) == (y_true > 0.5)).mean(axis=-1).sum())
        if name == "categorical_accuracy":
            return float((y_pred.argmax(axis=-1) == y_true.argmax(axis=-1)).sum())
        if name == "sparse_categorical_accuracy":
            return float((y_pred.argmax(axis=-1) == y_true).sum())
        raise ValueError(f"unknown metric {name!r}")

    # ---- optimizer steps -----------------------------------------------------
    def sgd_update(self, p, g, velocity, *, lr, momentum=0.0, nesterov=False, decay=0.0):
        t = p.dtype.type
        _decay(p, decay)
        if momentum == 0.0 or velocity is None:
            p -= t(lr) * g
            return
        velocity *= t(momentum)
        velocity -= t(lr) * g
        if nesterov:
            p += t(momentum) * velocity - t(lr) * g
        else:
            p += velocity

    def adam_update(self, p, g, m, v, *, lr_t, beta1, beta2, eps, decay=0.0, vhat=None):
        t = p.dtype.type
        _decay(p, decay)
        m += (g - m) * t(1 - beta1)
        v += (g * g - v) * t(1 - beta2)
        if vhat is not None:
            np.maximum(vhat, v, out=vhat)
            denom = np.sqrt(vhat) + t(eps)
        else:
            denom = np.sqrt(v) + t(eps)
        p -= t(lr_t) * m / denom

    def rmsprop_update(self, p, g, ms, *, lr, rho, eps, momentum=0.0, mom=None, mg=None,
                       decay=0.0):
        t = p.dtype.type
        _decay(p, decay)
        ms *= t(rho)
        ms += t(1 - rho) * g * g
        denom = ms
        if mg is not None:
            mg *= t(rho)
            mg += t(1 - rho) * g
            denom = ms - mg * mg
        step = t(lr) * g / np.sqrt(denom + t(eps))
        if mom is not None and momentum > 0:
            mom *= t(momentum)
            mom += step
            p -= mom
        else:
            p -= step

    def adagrad_update(self, p, g, acc, *, lr, eps, decay=0.0):
        t = p.dtype.type
        _decay(p, decay)
        acc += g * g
        p -= t(lr) * g / np.sqrt(acc + t(eps))

    # ---- reductions and element-wise helpers --------------------------------
    def sum_squares(self, x):
        x64 = x.astype(np.float64, copy=False).reshape(-1)
        return float(np.dot(x64, x64))

    def scale_(self, x, s):
        x *= x.dtype.type(s)
        return x

    def clip_(self, x, lo, hi):
        np.clip(x, x.dtype.type(lo), x.dtype.type(hi), out=x)
        return x

    def all_finite(self, x):
        return bool(np.isfinite(x).all())


def _decay(p, decay):
    if decay:
        p -= p.dtype.type(decay) * p


def _loss_and_grad(name, p, t, from_logits, delta):
    """Per-sample losses (N,) and the gradient of their SUM w.r.t. p, in float64."""
    d = p.shape[1]
    eps = PROB_EPSILON
    if name == "mse":
        e = p - t
        return (e * e).mean(axis=1), 2.0 * e / d
    if name == "mae":
        e = p - t
        return np.abs(e).mean(axis=1), np.sign(e) / d
    if name == "huber":
        e = p - t
        a = np.abs(e)
        quad = np.minimum(a, delta)
        per_elem = 0.5 * quad * quad + delta * (a - quad)
        return per_elem.mean(axis=1), np.clip(e, -delta, delta) / d
    if name == "binary_crossentropy":
        if from_logits:
            per_elem = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
            return per_elem.mean(axis=1), (_sigmoid(p) - t) / d
        q = np.clip(p, eps, 1 - eps)
        per_elem = -(t * np.log(q) + (1 - t) * np.log(1 - q))
        inside = (p >= eps) & (p <= 1 - eps)
        return per_elem.mean(axis=1), np.where(inside, (q - t) / (q * (1 - q)), 0.0) / d
    if name == "categorical_crossentropy":
        if from_logits:
            logq = _log_softmax(p)
            return -(t * logq).sum(axis=1), np.exp(logq) * t.sum(axis=1, keepdims=True) - t
        s = p.sum(axis=1, keepdims=True)
        q = p / s
        qc = np.clip(q, eps, 1 - eps)
        per_sample = -(t * np.log(qc)).sum(axis=1)
        dq = np.where((q >= eps) & (q <= 1 - eps), -t / qc, 0.0)     # dL/dq
        return per_sample, (dq - (dq * q).sum(axis=1, keepdims=True)) / s
    if name == "sparse_categorical_crossentropy":
        if from_logits:
            logq = _log_softmax(p)
            return -(t * logq).sum(axis=1), np.exp(logq) - t
        # Keras (TF): clip the probabilities, then normalise them through log-softmax.
        pc = np.clip(p, eps, 1 - eps)
        s = pc.sum(axis=1, keepdims=True)
        per_sample = -(t * (np.log(pc) - np.log(s))).sum(axis=1)
        inside = (p >= eps) & (p <= 1 - eps)
        return per_sample, np.where(inside, -t / pc + 1.0 / s, 0.0)
    raise ValueError(f"unknown loss {name!r}")
