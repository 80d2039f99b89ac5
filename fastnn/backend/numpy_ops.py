"""NumpyOps: the readable reference of every Ops method (float32 and float64).

This module imports no compiled code. It is the spec the compiled kernels are
tested against and the fallback when the extension is absent, so clarity wins
over speed here -- though it is still vectorised NumPy, not Python loops.
"""
import math

import numpy as np

from fastnn.backend.ops import (
    ATTENTION_MASK_VALUE, DROPOUT_GOLDEN, ELU_ALPHA, L2_NORM_FLOOR, LEAKY_RELU_SLOPE,
    PROB_EPSILON, Ops, check_activation, check_arg_reduce_args, check_attention_args,
    check_attention_backward_args,
    check_batch_matmul_args, check_batchnorm_args, check_binary_args,
    check_binary_backward_args, check_compare_args, check_concatenate_args, check_conv2d_args,
    check_cumsum_args, check_dense_args, check_dropout_args, check_embedding_indices,
    check_embedding_table, check_gemm_args, check_layer_norm_args,
    check_layer_norm_backward_args, check_loss_args, check_metric_args, check_pool_args,
    check_reduce_args,
    check_reduce_backward_args, check_rnn_args, check_softmax_args,
    check_softmax_backward_args, check_split_args, check_sum_to_shape_args,
    check_unary_args, check_unary_backward_args, check_where_args, dense_stack_layer_by_layer,
    dropout_scale,
    dropout_threshold, mix64, reduced_shape, WindowGeometry,
)

_erf = np.frompyfunc(math.erf, 1, 1)

_BINARY_UFUNCS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
                  "divide": np.divide, "maximum": np.maximum, "minimum": np.minimum,
                  "power": np.power}
_UNARY_UFUNCS = {"negative": np.negative, "abs": np.abs, "sign": np.sign,
                 "square": np.square, "sqrt": np.sqrt, "exp": np.exp, "log": np.log,
                 "log1p": np.log1p, "reciprocal": np.reciprocal}
_COMPARE_UFUNCS = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less,
                   "less_equal": np.less_equal, "greater": np.greater,
                   "greater_equal": np.greater_equal}


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


def _gradient(ops, g, shape, out):
    """binary_backward's gradient: g summed to ``shape``, in ``out`` or a new array
    (never g itself); None when ``out is False``."""
    if out is False:
        return None
    if out is None:
        out = np.empty(shape, g.dtype)
    return ops.sum_to_shape(g, shape, out=out)


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
        activation = check_dense_args(x, w, b, activation, out, preact_out)
        z = x @ w
        if b is not None:
            z += b
        if preact_out is not None:
            _write(z, preact_out)
        return _write(_activate(activation, z), out)

    def dense_stack(self, x, kernels, biases, activations):
        return dense_stack_layer_by_layer(self, x, kernels, biases, activations)

    def dense_backward(self, dy, x, w, y, preact, activation, dw_out, db_out, dx_out=None,
                       scratch=None):
        activation = check_activation(activation)
        dz = _activation_grad(activation, dy, preact, y)
        if scratch is not None and activation != "linear":
            np.copyto(scratch, dz)
        np.matmul(x.T, dz, out=dw_out)
        if db_out is not None:
            np.sum(dz, axis=0, out=db_out)
        if dx_out is False:
            return None
        return _write(dz @ w.T, dx_out)

    # ---- losses and metrics --------------------------------------------------
    def loss(self, name, y_pred, y_true, *, from_logits=False, delta=1.0, grad_out=None,
             sample_weight=None):
        check_loss_args(name, y_pred, y_true, sample_weight, grad_out)
        n = y_pred.shape[0]
        p = y_pred.astype(np.float64)
        if name == "sparse_categorical_crossentropy":
            t = np.zeros_like(p)
            t[np.arange(n), y_true] = 1.0
        else:
            t = y_true.astype(np.float64)
        per_sample, grad = _loss_and_grad(name, p, t, from_logits, delta)
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            per_sample = per_sample * w
            grad = grad * w[:, None]
        if grad_out is not None:
            np.copyto(grad_out, grad / n, casting="same_kind")
        return float(per_sample.sum() / n)

    def metric_sum(self, name, y_pred, y_true):
        check_metric_args(name, y_pred, y_true)
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
        raise AssertionError(f"metric {name!r} is in METRICS but not computed here")

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

    def nadam_update(self, p, g, m, v, *, lr, beta1, beta2, coef_m, coef_g, v_correction, eps,
                     decay=0.0):
        t = p.dtype.type
        _decay(p, decay)
        m += (g - m) * t(1 - beta1)
        v += (g * g - v) * t(1 - beta2)
        m_hat = t(coef_m) * m + t(coef_g) * g
        p -= m_hat * t(lr) / (np.sqrt(v / t(v_correction)) + t(eps))

    def adamax_update(self, p, g, m, u, *, lr, beta1, beta2, m_correction, eps, decay=0.0):
        t = p.dtype.type
        _decay(p, decay)
        m += (g - m) * t(1 - beta1)
        np.maximum(t(beta2) * u, np.abs(g), out=u)
        p -= t(lr) * m / (t(m_correction) * (u + t(eps)))

    def lion_update(self, p, g, m, *, lr, beta1, beta2, decay=0.0):
        t = p.dtype.type
        _decay(p, decay)
        p -= t(lr) * np.sign(m * t(beta1) + g * t(1 - beta1))
        m *= t(beta2)
        m += g * t(1 - beta2)

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

    # ---- weight regularizers -------------------------------------------------
    def regularize_(self, grad, param, l1, l2):
        if not (0.0 <= l1 < np.inf and 0.0 <= l2 < np.inf):
            raise ValueError(f"regularize_: l1 and l2 must be finite and >= 0, got "
                             f"l1={l1}, l2={l2}")
        if grad is not None:
            t = param.dtype.type
            grad += t(l1) * np.sign(param) + t(2.0 * l2) * param
        w64 = param.astype(np.float64, copy=False).reshape(-1)
        return float(l1 * np.abs(w64).sum() + l2 * np.dot(w64, w64))

    # ---- dropout --------------------------------------------------------------
    def dropout_mask(self, seed, rate, mask_out):
        seed, rate = check_dropout_args(seed, rate, "dropout_mask")
        _check_mask(mask_out, None, "dropout_mask")
        np.copyto(mask_out, _dropout_keep(seed, rate, mask_out.size).reshape(mask_out.shape))
        return mask_out

    def dropout_forward(self, x, seed, rate, out=None, mask_out=None):
        seed, rate = check_dropout_args(seed, rate, "dropout_forward")
        keep = _dropout_keep(seed, rate, x.size).reshape(x.shape)
        if mask_out is not None:
            np.copyto(_check_mask(mask_out, x.shape, "dropout_forward"), keep)
        t = x.dtype.type
        return _write(np.where(keep, x * t(dropout_scale(rate)), t(0)), out)

    def dropout_backward(self, dy, mask, rate, out=None):
        _, rate = check_dropout_args(0, rate, "dropout_backward")
        _check_mask(mask, dy.shape, "dropout_backward")
        t = dy.dtype.type
        return _write(np.where(mask != 0, dy * t(dropout_scale(rate)), t(0)), out)

    # ---- batch normalization -------------------------------------------------
    def batchnorm_stats(self, x, mean_out, var_out):
        _check_bn(x, {"mean_out": mean_out, "var_out": var_out}, "batchnorm_stats",
                  required=("mean_out", "var_out"))
        if x.shape[0] < 1:
            raise ValueError("batchnorm_stats: x has no rows; batch statistics need at least one")
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=0)
        np.copyto(mean_out, mean, casting="same_kind")
        np.copyto(var_out, np.square(x64 - mean).mean(axis=0), casting="same_kind")

    def batchnorm_update_moving_(self, moving_mean, moving_var, mean, var, momentum):
        _check_bn(np.reshape(moving_mean, (1, -1)),
                  {"moving_var": moving_var, "mean": mean, "var": var},
                  "batchnorm_update_moving_", required=("moving_var", "mean", "var"))
        rest = 1.0 - momentum
        for moving, batch in ((moving_mean, mean), (moving_var, var)):
            np.copyto(moving, moving.astype(np.float64) * momentum
                      + batch.astype(np.float64) * rest, casting="same_kind")

    def batchnorm_forward(self, x, mean, var, gamma, beta, *, epsilon, out=None):
        _check_bn(x, {"mean": mean, "var": var, "gamma": gamma, "beta": beta},
                  "batchnorm_forward", required=("mean", "var"))
        k = _bn_scale(var, gamma, epsilon).astype(x.dtype)
        y = (x - mean) * k
        if beta is not None:
            y += beta
        return _write(y, out)

    def batchnorm_backward(self, dy, x, mean, var, gamma, *, epsilon, batch_stats,
                           dgamma_out=None, dbeta_out=None, dx_out=None):
        _check_bn(x, {"mean": mean, "var": var, "gamma": gamma, "dgamma_out": dgamma_out,
                      "dbeta_out": dbeta_out}, "batchnorm_backward", required=("mean", "var"))
        if not isinstance(dy, np.ndarray) or dy.shape != x.shape:
            raise ValueError(f"batchnorm_backward: dy must have x's shape {x.shape}, got "
                             f"{getattr(dy, 'shape', type(dy).__name__)}")
        m = x.shape[0]
        s = 1.0 / np.sqrt(var.astype(np.float64) + epsilon)
        dy64 = dy.astype(np.float64)
        sum_dy = dy64.sum(axis=0)
        sum_dyx = (dy64 * (x.astype(np.float64) - mean.astype(np.float64))).sum(axis=0)
        if dbeta_out is not None:
            np.copyto(dbeta_out, sum_dy, casting="same_kind")
        if dgamma_out is not None:
            np.copyto(dgamma_out, sum_dyx * s, casting="same_kind")
        if dx_out is False:
            return None
        dtype = x.dtype
        k = _bn_scale(var, gamma, epsilon).astype(dtype)
        if batch_stats and m > 0:
            a = (sum_dy / m).astype(dtype)
            b = (sum_dyx * s * s / m).astype(dtype)
            dx = k * (dy - a - (x - mean) * b)
        else:
            dx = k * dy
        return _write(dx, dx_out)

    # ---- layer / RMS normalization over the last axis -------------------------
    def layer_norm(self, x, gamma, beta, *, epsilon, rms=False, out=None, mean_out=None,
                   rstd_out=None):
        check_layer_norm_args(x, gamma, beta, epsilon, rms, out, mean_out, rstd_out)
        x64 = x.astype(np.float64)
        if rms:
            mean = np.zeros(x.shape[0])
            var = np.square(x64).mean(axis=1)                 # the mean square
        else:
            mean = x64.mean(axis=1)
            var = np.square(x64 - mean[:, None]).mean(axis=1)
        # Rounded to x's dtype: the backward receives exactly these.
        mean = mean.astype(x.dtype)
        rstd = (1.0 / np.sqrt(var + epsilon)).astype(x.dtype)
        y = (x - mean[:, None]) * rstd[:, None]
        if gamma is not None:
            y *= gamma
        if beta is not None:
            y += beta
        if mean_out is not None:
            np.copyto(mean_out, mean)
        if rstd_out is not None:
            np.copyto(rstd_out, rstd)
        return _write(y, out)

    def layer_norm_backward(self, dy, x, mean, rstd, gamma, *, rms=False, has_beta=True,
                            dx_out=None, dgamma_out=None, dbeta_out=None):
        # y = xhat * gamma + beta, xhat = (x - mean) * rstd. With g = dy * gamma,
        # dL/dxhat = g, and through mean and rstd (rstd = (var + eps)^-1/2):
        #   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
        # (RMS: no mean, so no mean(g) term); dgamma = sum dy xhat, dbeta = sum dy.
        check_layer_norm_backward_args(dy, x, mean, rstd, gamma, rms, has_beta, dx_out,
                                       dgamma_out, dbeta_out)
        m, c = x.shape
        dtype = x.dtype
        center = np.zeros((m, 1), dtype) if rms else mean[:, None]
        xhat = (x - center) * rstd[:, None]
        dgamma = dbeta = dx = None
        if gamma is not None:
            dgamma = (dy.astype(np.float64) * xhat.astype(np.float64)).sum(axis=0)
            dgamma = _write(dgamma.astype(dtype), dgamma_out)
        if has_beta:
            dbeta = _write(dy.astype(np.float64).sum(axis=0).astype(dtype), dbeta_out)
        if dx_out is not False:
            g = dy if gamma is None else dy * gamma
            a = np.zeros((m, 1), dtype) if rms else \
                g.astype(np.float64).mean(axis=1, keepdims=True).astype(dtype)
            b = (g.astype(np.float64) * xhat.astype(np.float64)).mean(
                axis=1, keepdims=True).astype(dtype)
            dx = _write(rstd[:, None] * ((g - a) - xhat * b), dx_out)
        return dx, dgamma, dbeta

    # ---- convolution (NHWC) ---------------------------------------------------
    # im2col as a strided view: _windows(x) is (N, OH, OW, C, KH, KW) without a
    # copy; tensordot over (KH, KW, C) then is the convolution. The backward
    # pass is the transpose: dw contracts the same windows with dz over
    # (N, OH, OW); dx scatters dz @ w^T back, one kernel tap at a time.
    def conv2d_forward(self, x, w, b, *, strides, padding, dilation, activation, out=None,
                       preact_out=None, cols=None):
        activation, geom = check_conv2d_args(x, w, b, strides, padding, dilation, activation,
                                             out, preact_out, geometry=_ConvGeometry)
        win = geom.windows(np.pad(x, geom.pad_widths()))
        z = np.tensordot(win, w, axes=([4, 5, 3], [0, 1, 2]))
        if b is not None:
            z += b
        if preact_out is not None:
            _write(z, preact_out)
        return _write(_activate(activation, z), out)

    def conv2d_scratch_size(self, x, w, *, strides, padding, dilation):
        return 0        # the reference needs no im2col scratch

    def conv2d_backward(self, dy, x, w, y, preact, *, strides, padding, dilation, activation,
                        dw_out, db_out, dx_out=None, scratch=None, cols=None):
        activation = check_activation(activation)
        dz = _activation_grad(activation, dy, preact, y)
        if scratch is not None and activation != "linear":
            np.copyto(scratch, dz)
        geom = _ConvGeometry(x.shape, w.shape[:2], strides, padding, dilation,
                             "conv2d_backward")
        win = geom.windows(np.pad(x, geom.pad_widths()))
        dw = np.tensordot(win, dz, axes=([0, 1, 2], [0, 1, 2]))      # (C, KH, KW, F)
        np.copyto(dw_out, dw.transpose(1, 2, 0, 3))
        if db_out is not None:
            np.sum(dz, axis=(0, 1, 2), out=db_out)
        if dx_out is False:
            return None
        dcols = np.tensordot(dz, w, axes=([3], [3]))                 # (N, OH, OW, KH, KW, C)
        dxp = np.zeros(geom.padded_shape(), dtype=x.dtype)
        for p in range(geom.kh):
            for q in range(geom.kw):
                dxp[geom.tap(p, q)] += dcols[:, :, :, p, q, :]
        return _write(geom.crop(dxp), dx_out)

    # ---- pooling (NHWC) --------------------------------------------------------
    def max_pool2d_forward(self, x, *, pool_size, strides, padding, out=None, argmax_out=None):
        geom = check_pool_args(x, pool_size, strides, padding, out, "max_pool2d_forward",
                               geometry=_ConvGeometry)
        pads = geom.pad_widths()
        vals = geom.windows(np.pad(x, pads, constant_values=-np.inf))
        valid = geom.windows(np.pad(np.ones(x.shape[1:3], bool), pads[1:3]), spatial=(0, 1))
        vals = vals.reshape(vals.shape[:4] + (-1,))                  # (N, OH, OW, C, KH*KW)
        valid = valid.reshape(valid.shape[:2] + (1, -1))             # (OH, OW, 1, KH*KW)
        # Every window holds at least one real element, so this maximum (NaN
        # propagating) is one of them; the first real element equal to it wins.
        y = vals.max(axis=-1)
        if argmax_out is not None:
            m = y[..., None]
            hit = valid & ((vals == m) | (np.isnan(vals) & np.isnan(m)))
            k = hit.argmax(axis=-1)
            p, q = np.divmod(k, geom.kw)
            i = np.arange(geom.oh).reshape(1, -1, 1, 1)
            j = np.arange(geom.ow).reshape(1, 1, -1, 1)
            h = i * geom.sh + p - geom.top
            col = j * geom.sw + q - geom.left
            np.copyto(argmax_out, h * geom.w + col)
        return _write(y, out)

    def max_pool2d_backward(self, dy, argmax, *, input_shape, out=None):
        n, h, w, c = input_shape
        dx = np.zeros((n, h * w, c), dtype=dy.dtype)
        rows = np.arange(n).reshape(-1, 1, 1, 1)
        chans = np.arange(c).reshape(1, 1, 1, -1)
        np.add.at(dx, (rows, argmax, chans), dy)    # overlapping windows add up
        return _write(dx.reshape(input_shape), out)

    def avg_pool2d_forward(self, x, *, pool_size, strides, padding, out=None):
        geom = check_pool_args(x, pool_size, strides, padding, out, "avg_pool2d_forward",
                               geometry=_ConvGeometry)
        total = geom.windows(np.pad(x, geom.pad_widths())).sum(axis=(4, 5))
        return _write(total / geom.counts(x.dtype), out)

    def avg_pool2d_backward(self, dy, *, input_shape, pool_size, strides, padding, out=None):
        geom = _ConvGeometry(input_shape, pool_size, strides, padding, (1, 1),
                             "avg_pool2d_backward")
        share = dy / geom.counts(dy.dtype)
        dxp = np.zeros(geom.padded_shape(), dtype=dy.dtype)
        for p in range(geom.kh):
            for q in range(geom.kw):
                dxp[geom.tap(p, q)] += share
        return _write(geom.crop(dxp), out)

    # ---- recurrent layers ----------------------------------------------------------
    # One readable loop over time steps. The cache keeps, per processed step k,
    # the pre-activations backward differentiates through (and, for LSTM, the
    # cell state): simple_rnn [z] (U); lstm [z_i z_f z_c z_o | c] (5U);
    # gru [z_z z_r | rh | z_h] (4U) with rh = h U_h + b_rec_h (reset_after).
    def rnn_cache_shape(self, cell, n, t, units):
        return (int(n), int(t), _RNN_CACHE_WIDTH[cell] * int(units))

    def rnn_forward(self, cell, x, kernel, recurrent_kernel, bias, *, activation,
                    recurrent_activation, go_backwards=False, mask=None, hs_out=None,
                    cache_out=None):
        n, t, _, u, _ = check_rnn_args(cell, x, kernel, recurrent_kernel, bias, mask,
                                       "rnn_forward")
        act = check_activation(activation, allow_softmax=False)
        ract = check_activation(recurrent_activation, allow_softmax=False)
        hs = np.empty((n, t, u), x.dtype)
        cache = np.empty(self.rnn_cache_shape(cell, n, t, u), x.dtype)
        b_in, b_rec = _rnn_biases(cell, bias, kernel.shape[1], x.dtype)
        h = np.zeros((n, u), x.dtype)
        c = np.zeros((n, u), x.dtype)          # LSTM's cell state
        xw_all = x @ kernel + b_in             # the input projection of every step at once
        for k, step in enumerate(_rnn_steps(t, go_backwards)):
            xw = xw_all[:, step]
            if cell == "simple_rnn":
                z = xw + h @ recurrent_kernel
                h_new, cache[:, k] = _activate(act, z), z
            elif cell == "lstm":
                z = xw + h @ recurrent_kernel
                i, f, g, o = _lstm_gates(z, u, act, ract)
                c_new = f * c + i * g
                h_new = o * _activate(act, c_new)
                c = _keep_masked(mask, step, c_new, c)
                cache[:, k, :4 * u], cache[:, k, 4 * u:] = z, c
            else:
                hu = h @ recurrent_kernel + b_rec
                zr = xw[:, :2 * u] + hu[:, :2 * u]
                zz, rr = _activate(ract, zr[:, :u]), _activate(ract, zr[:, u:])
                zh = xw[:, 2 * u:] + rr * hu[:, 2 * u:]
                h_new = zz * h + (1 - zz) * _activate(act, zh)
                cache[:, k, :2 * u], cache[:, k, 2 * u:3 * u] = zr, hu[:, 2 * u:]
                cache[:, k, 3 * u:] = zh
            h = _keep_masked(mask, step, h_new, h)
            hs[:, k] = h
        if cache_out is not None:
            np.copyto(cache_out, cache)
        return _write(hs, hs_out)

    def rnn_backward(self, cell, dhs, x, kernel, recurrent_kernel, bias, hs, cache, *,
                     activation, recurrent_activation, go_backwards=False, mask=None,
                     dkernel_out, drecurrent_out, dbias_out, dx_out=None):
        n, t, _, u, _ = check_rnn_args(cell, x, kernel, recurrent_kernel, bias, mask,
                                       "rnn_backward")
        for name, arr, shape in (("dhs", dhs, (n, t, u)), ("hs", hs, (n, t, u)),
                                 ("cache", cache, self.rnn_cache_shape(cell, n, t, u))):
            if not isinstance(arr, np.ndarray) or arr.shape != shape:
                raise ValueError(f"rnn_backward: {name} must have shape {shape} for x "
                                 f"{x.shape}, got {getattr(arr, 'shape', type(arr).__name__)}")
        act = check_activation(activation, allow_softmax=False)
        ract = check_activation(recurrent_activation, allow_softmax=False)
        dtype = x.dtype
        dr = np.zeros(recurrent_kernel.shape, dtype)
        db_rec = np.zeros(kernel.shape[1], dtype)
        dxw = np.zeros((n, t, kernel.shape[1]), dtype)    # dL/d(x W + b_in), every step
        dh_next = np.zeros((n, u), dtype)      # dL/dh flowing back from later steps
        dc_next = np.zeros((n, u), dtype)      # dL/dc (LSTM)
        zeros = np.zeros((n, u), dtype)
        for k, step in reversed(list(enumerate(_rnn_steps(t, go_backwards)))):
            h_prev = hs[:, k - 1] if k > 0 else zeros
            dh = dhs[:, k] + dh_next
            # A masked step copied the state through: its gradient passes straight back.
            dh_cell, dh_skip = _split_masked(mask, step, dh)
            if cell == "simple_rnn":
                z = cache[:, k]
                dz = _activation_grad(act, dh_cell, z, _activate(act, z))
                dx_in = dz_rec = dz
                dh_direct = zeros
            elif cell == "lstm":
                z, c_prev = cache[:, k, :4 * u], (cache[:, k - 1, 4 * u:] if k > 0 else zeros)
                i, f, g, o = _lstm_gates(z, u, act, ract)
                c_new = f * c_prev + i * g
                tc = _activate(act, c_new)
                dc_cell, dc_skip = _split_masked(mask, step, dc_next)
                dc = dc_cell + _activation_grad(act, dh_cell * o, c_new, tc)
                dz = np.concatenate([
                    _activation_grad(ract, dc * g, z[:, :u], i),
                    _activation_grad(ract, dc * c_prev, z[:, u:2 * u], f),
                    _activation_grad(act, dc * i, z[:, 2 * u:3 * u], g),
                    _activation_grad(ract, dh_cell * tc, z[:, 3 * u:], o)], axis=1)
                dx_in = dz_rec = dz
                dh_direct = zeros
                dc_next = dc * f + dc_skip
            else:
                zr, rh, zh = cache[:, k, :2 * u], cache[:, k, 2 * u:3 * u], cache[:, k, 3 * u:]
                zz, rr = _activate(ract, zr[:, :u]), _activate(ract, zr[:, u:])
                hh = _activate(act, zh)
                dzh = _activation_grad(act, dh_cell * (1 - zz), zh, hh)
                dzz = _activation_grad(ract, dh_cell * (h_prev - hh), zr[:, :u], zz)
                dzr = _activation_grad(ract, dzh * rh, zr[:, u:], rr)
                dx_in = np.concatenate([dzz, dzr, dzh], axis=1)
                dz_rec = np.concatenate([dzz, dzr, dzh * rr], axis=1)
                dh_direct = dh_cell * zz
            dxw[:, step] = dx_in
            dr += h_prev.T @ dz_rec
            db_rec += dz_rec.sum(axis=0)
            dh_next = dz_rec @ recurrent_kernel.T + dh_direct + dh_skip
        # The input side of every step at once: one GEMM each for dkernel and dx.
        dk = x.reshape(-1, x.shape[2]).T @ dxw.reshape(-1, dxw.shape[2])
        db_in = dxw.reshape(-1, dxw.shape[2]).sum(axis=0)
        np.copyto(dkernel_out, dk)
        np.copyto(drecurrent_out, dr)
        if dbias_out is not None:
            np.copyto(dbias_out, np.stack([db_in, db_rec]) if cell == "gru" else db_in)
        if dx_out is False:
            return None
        return _write(dxw @ kernel.T, dx_out)

    # ---- embedding ---------------------------------------------------------------
    def embedding_forward(self, indices, table, out=None):
        check_embedding_table(table, "embedding_forward")
        idx = check_embedding_indices(indices, table.shape[0], "embedding_forward")
        return _write(table[idx], out)

    def embedding_backward(self, dy, indices, dtable_out):
        v, d = dtable_out.shape
        idx = check_embedding_indices(indices, v, "embedding_backward")
        if not isinstance(dy, np.ndarray) or dy.shape != idx.shape + (d,):
            raise ValueError(f"embedding_backward: dy must have shape {idx.shape + (d,)} for "
                             f"indices {idx.shape} and a table {dtable_out.shape}, got "
                             f"{getattr(dy, 'shape', type(dy).__name__)}")
        dtable_out[...] = 0
        # np.add.at adds repeated indices one after another, in order
        np.add.at(dtable_out, idx.reshape(-1), dy.reshape(-1, d))
        return dtable_out

    # ---- broadcast element-wise ops, concatenation, batched matmul -------------
    # NaN and inf propagate without NumPy's warnings (the kernels check nothing).
    def binary(self, op, a, b, out=None):
        shape, dtype = check_binary_args(op, a, b, out)
        if out is None:
            out = np.empty(shape, dtype)
        with np.errstate(all="ignore"):
            _BINARY_UFUNCS[op](a, b, out=out)      # exact aliasing (out is a) is fine
        return out

    def binary_backward(self, op, dy, a, b, da_out=None, db_out=None):
        check_binary_backward_args(op, dy, a, b, da_out, db_out)
        with np.errstate(all="ignore"):
            if op == "add":
                ga, gb = dy, dy
            elif op == "subtract":
                ga, gb = dy, -dy
            elif op == "multiply":
                ga, gb = dy * b, dy * a
            elif op == "divide":
                ga, gb = dy / b, (-dy * a) / (b * b)
            elif op == "power":
                # TF's rule: db is 0 where a <= 0 (log(a) is NaN or -inf there).
                ga = dy * b * np.power(a, b - 1)
                gb = np.where(a > 0, dy * np.power(a, b) * np.log(a), dy.dtype.type(0))
            else:
                # TF's rule: a takes dy where it wins (ties included), b the rest.
                wins = a >= b if op == "maximum" else a <= b
                zero = dy.dtype.type(0)
                ga, gb = np.where(wins, dy, zero), np.where(wins, zero, dy)
        # (arithmetic on 0-d arrays gives NumPy scalars: back to arrays)
        return (_gradient(self, np.asarray(ga), a.shape, da_out),
                _gradient(self, np.asarray(gb), b.shape, db_out))

    def sum_to_shape(self, x, shape, out=None):
        shape = check_sum_to_shape_args(x, shape, out)
        if shape == x.shape:
            return x if out is None else _write(x, out)
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                          if n == 1 and x.shape[lead + i] != 1)
        total = np.asarray(x.sum(axis=axes, dtype=np.float64)).reshape(shape)
        return _write(total.astype(x.dtype), out)

    def concatenate(self, xs, axis, out=None):
        axis, _, _ = check_concatenate_args(xs, axis, out)
        return np.concatenate(xs, axis=axis, out=out)

    def split(self, x, sizes, axis, outs=None):
        axis, sizes = check_split_args(x, sizes, axis, outs)
        pieces = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
        outs = [None] * len(sizes) if outs is None else outs
        return [None if o is False else p.copy() if o is None else _write(p, o)
                for p, o in zip(pieces, outs)]

    def batch_matmul(self, a, b, *, transpose_a=False, transpose_b=False, out=None):
        check_batch_matmul_args(a, b, transpose_a, transpose_b, out)
        result = np.matmul(a.transpose(0, 2, 1) if transpose_a else a,
                           b.transpose(0, 2, 1) if transpose_b else b)
        return _write(result, out)

    # ---- fastnn.ops' primitives: unary, comparisons, select, reductions, softmax --
    # NaN and inf propagate without NumPy's warnings (the kernels check nothing).
    def unary(self, op, x, out=None):
        check_unary_args(op, x, out)
        if out is None:
            out = np.empty(x.shape, x.dtype)
        with np.errstate(all="ignore"):
            _UNARY_UFUNCS[op](x, out=out)          # exact aliasing (out is x) is fine
        return out

    def unary_backward(self, op, dy, x, y, out=None):
        check_unary_backward_args(op, dy, x, y, out)
        with np.errstate(all="ignore"):
            if op == "negative":
                dx = -dy
            elif op == "abs":
                dx = dy * np.sign(x)               # abs'(0) = 0 (TF)
            elif op == "sign":
                dx = np.zeros_like(dy)
            elif op == "square":
                dx = dy * (2 * x)
            elif op == "sqrt":
                dx = (dy * 0.5) / y
            elif op == "exp":
                dx = dy * y
            elif op == "log":
                dx = dy / x
            elif op == "log1p":
                dx = dy / (1 + x)
            else:                                  # reciprocal
                dx = dy * -(y * y)
        return _write(np.asarray(dx), out)

    def compare(self, op, a, b, out=None):
        shape = check_compare_args(op, a, b, out)
        if out is None:
            out = np.empty(shape, np.bool_)
        _COMPARE_UFUNCS[op](a, b, out=out)
        return out

    def where(self, condition, a, b, out=None):
        check_where_args(condition, a, b, out)
        return _write(np.asarray(np.where(condition, a, b)), out)

    def reduce(self, op, x, axes=None, keepdims=False, out=None):
        axes, _ = check_reduce_args(op, x, axes, keepdims, out)
        with np.errstate(all="ignore"):
            if op in ("sum", "mean"):
                total = x.sum(axis=axes, dtype=np.float64, keepdims=keepdims)
                if op == "mean":
                    total = total / math.prod(x.shape[d] for d in axes)
                result = np.asarray(total).astype(x.dtype)
            else:
                result = np.asarray(x.max(axis=axes, keepdims=keepdims) if op == "max"
                                    else x.min(axis=axes, keepdims=keepdims))
        return _write(result, out)

    def reduce_backward(self, op, dy, x, y, axes=None, keepdims=False, out=None):
        axes, _ = check_reduce_backward_args(op, dy, x, y, axes, keepdims, out)
        kept = reduced_shape(x.shape, axes, True)          # dy and y with the axes kept
        dyk = dy.reshape(kept)
        count = math.prod(x.shape[d] for d in axes)
        with np.errstate(all="ignore"):
            if op == "sum":
                dx = np.broadcast_to(dyk, x.shape)
            elif op == "mean":
                dx = dyk / x.dtype.type(count)
            else:
                # TF's rule: the elements equal to the extreme share dy evenly.
                hit = x == y.reshape(kept)
                share = dyk / hit.sum(axis=axes, keepdims=True).astype(x.dtype)
                dx = np.where(hit, share, x.dtype.type(0))
        if out is None:
            out = np.empty(x.shape, x.dtype)
        np.copyto(out, dx)
        return out

    def arg_reduce(self, op, x, axis, keepdims=False, out=None):
        axis, _ = check_arg_reduce_args(op, x, axis, keepdims, out)
        fn = np.argmax if op == "argmax" else np.argmin
        result = np.asarray(fn(x, axis=axis, keepdims=bool(keepdims)), dtype=np.int64)
        return _write(result, out)

    def cumsum(self, x, axis, out=None):
        axis = check_cumsum_args(x, axis, out)
        return _write(np.cumsum(x, axis=axis, dtype=np.float64).astype(x.dtype), out)

    def softmax(self, x, axis=-1, out=None):
        axis = check_softmax_args(x, axis, out, "softmax")
        if x.size == 0:
            return _write(x.copy(), out)
        with np.errstate(all="ignore"):
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            total = e.sum(axis=axis, dtype=np.float64, keepdims=True)
            return _write((e * (1.0 / total)).astype(x.dtype), out)

    def softmax_backward(self, dy, y, axis=-1, out=None):
        axis = check_softmax_backward_args(dy, y, axis, out, "softmax_backward")
        with np.errstate(all="ignore"):
            dot = (dy.astype(np.float64) * y).sum(axis=axis, keepdims=True).astype(dy.dtype)
            return _write(y * (dy - dot), out)

    def log_softmax(self, x, axis=-1, out=None):
        axis = check_softmax_args(x, axis, out, "log_softmax")
        if x.size == 0:
            return _write(x.copy(), out)
        with np.errstate(all="ignore"):
            shifted = x - x.max(axis=axis, keepdims=True)
            total = np.exp(shifted).sum(axis=axis, dtype=np.float64, keepdims=True)
            return _write(shifted - np.log(total).astype(x.dtype), out)

    def log_softmax_backward(self, dy, y, axis=-1, out=None):
        axis = check_softmax_backward_args(dy, y, axis, out, "log_softmax_backward")
        with np.errstate(all="ignore"):
            total = dy.sum(axis=axis, dtype=np.float64, keepdims=True).astype(dy.dtype)
            return _write(dy - np.exp(y) * total, out)

    # ---- L2 normalization ----------------------------------------------------------
    def l2_normalize(self, x, axis, out=None):
        squares = np.sum(x * x, axis=axis, keepdims=True)
        scale = 1.0 / np.sqrt(np.maximum(squares, x.dtype.type(L2_NORM_FLOOR)))
        return _write(x * scale, out)

    def l2_normalize_backward(self, dy, x, axis, out=None):
        squares = np.sum(x * x, axis=axis, keepdims=True)
        free = squares > L2_NORM_FLOOR          # where the norm is not clamped
        scale = 1.0 / np.sqrt(np.maximum(squares, x.dtype.type(L2_NORM_FLOOR)))
        y = x * scale
        along = np.sum(dy * y, axis=axis, keepdims=True)
        return _write(scale * (dy - np.where(free, y * along, 0)), out)


    # ---- fused attention (the reference: O(Tq * Tk) memory) -------------------------
    def attention(self, q, k, v, *, scale, causal=False, query_mask=None, key_mask=None,
                  attention_mask=None, dropout_rate=0.0, seed=0, out=None, lse_out=None,
                  probs_out=None):
        n, tq, tk, h, d, dv, scale, seed, rate = check_attention_args(
            q, k, v, scale, causal, query_mask, key_mask, attention_mask, dropout_rate, seed,
            out, lse_out, probs_out)
        s = _attention_scores(q, k, scale, causal, query_mask, key_mask, attention_mask)
        with np.errstate(all="ignore"):
            m = s.max(axis=-1, keepdims=True)
            e = np.exp(s - m)
            total = e.sum(axis=-1, dtype=np.float64, keepdims=True)
            p = (e * (1.0 / total)).astype(q.dtype)
            lse = (m + np.log(total)).astype(q.dtype)[..., 0]
        y = np.matmul(_attention_dropout(p, seed, rate), v.transpose(0, 2, 1, 3))
        if lse_out is not None:
            np.copyto(lse_out, lse)
        if probs_out is not None:
            np.copyto(probs_out, p)
        return _write(np.ascontiguousarray(y.transpose(0, 2, 1, 3)), out)

    def attention_backward(self, dout, q, k, v, out, lse, *, scale, causal=False,
                           query_mask=None, key_mask=None, attention_mask=None,
                           dropout_rate=0.0, seed=0, dprobs=None, dq_out=None, dk_out=None,
                           dv_out=None):
        n, tq, tk, h, d, dv, scale, seed, rate = check_attention_backward_args(
            dout, q, k, v, out, lse, scale, causal, query_mask, key_mask, attention_mask,
            dropout_rate, seed, dprobs, dq_out, dk_out, dv_out)
        t = q.dtype.type
        s = _attention_scores(q, k, scale, causal, query_mask, key_mask, attention_mask)
        # The forward's softmax, recomputed from the scores (not from lse: for a
        # row with no allowed key, float32 rounds lse = -1e9 + log(sum) to -1e9).
        with np.errstate(all="ignore"):
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            total = e.sum(axis=-1, dtype=np.float64, keepdims=True)
            p = (e * (1.0 / total)).astype(q.dtype)
        do = dout.transpose(0, 2, 1, 3)                       # (N, H, Tq, Dv)
        dp = _attention_dropout(np.matmul(do, v.transpose(0, 2, 3, 1)), seed, rate)
        if dprobs is not None:
            dp = dp + dprobs
        delta = (p * dp).sum(axis=-1, dtype=np.float64, keepdims=True).astype(q.dtype)
        ds = p * (dp - delta) * t(scale)                      # d loss / d (q . k)
        dq = np.matmul(ds, k.transpose(0, 2, 1, 3))
        dk = np.matmul(ds.transpose(0, 1, 3, 2), q.transpose(0, 2, 1, 3))
        dvv = np.matmul(_attention_dropout(p, seed, rate).transpose(0, 1, 3, 2), do)
        return tuple(_write(np.ascontiguousarray(g.transpose(0, 2, 1, 3)), o)
                     for g, o in ((dq, dq_out), (dk, dk_out), (dvv, dv_out)))

    def attention_scratch_bytes(self, n, tq, tk, h, d, dv, dtype, *, backward):
        # The reference's (N, H, Tq, Tk) temporaries: scores, exp / p, dropped p
        # (forward); scores, p, dp, ds and the dropped copies (backward).
        count = 6 if backward else 3
        return count * int(n) * int(h) * int(tq) * int(tk) * np.dtype(dtype).itemsize

class _ConvGeometry(WindowGeometry):
    """WindowGeometry with the index arithmetic of the NumPy convolution and pooling."""

    def pad_widths(self):
        return ((0, 0), (self.top, self.bottom), (self.left, self.right), (0, 0))

    def padded_shape(self):
        return (self.n, self.h + self.top + self.bottom, self.w + self.left + self.right, self.c)

    def windows(self, xp, spatial=(1, 2)):
        """Strided view of padded ``xp``: (..., OH, OW, [rest], KH, KW) -- the
        (OH, OW) axes replace ``spatial``, the kernel taps come last."""
        span = ((self.kh - 1) * self.dh + 1, (self.kw - 1) * self.dw + 1)
        v = np.lib.stride_tricks.sliding_window_view(xp, span, axis=spatial)
        index = [slice(None)] * v.ndim
        index[spatial[0]] = slice(0, (self.oh - 1) * self.sh + 1, self.sh)
        index[spatial[1]] = slice(0, (self.ow - 1) * self.sw + 1, self.sw)
        index[-2] = slice(None, None, self.dh)
        index[-1] = slice(None, None, self.dw)
        return v[tuple(index)]

    def tap(self, p, q):
        """Index of the padded-input elements kernel tap (p, q) reads, (N, OH, OW, C)."""
        rows = slice(p * self.dh, p * self.dh + (self.oh - 1) * self.sh + 1, self.sh)
        cols = slice(q * self.dw, q * self.dw + (self.ow - 1) * self.sw + 1, self.sw)
        return (slice(None), rows, cols, slice(None))

    def crop(self, xp):
        return xp[:, self.top:self.top + self.h, self.left:self.left + self.w, :]

    def counts(self, dtype):
        """Real (non-padded) elements in each window, (OH, OW, 1)."""
        ones = np.pad(np.ones((self.h, self.w), dtype), ((self.top, self.bottom),
                                                         (self.left, self.right)))
        return self.windows(ones, spatial=(0, 1)).sum(axis=(2, 3))[..., None]


_RNN_CACHE_WIDTH = {"simple_rnn": 1, "lstm": 5, "gru": 4}


def _rnn_steps(t, go_backwards):
    """The original time index of each processed step, in processing order."""
    return range(t - 1, -1, -1) if go_backwards else range(t)


def _rnn_biases(cell, bias, width, dtype):
    """(input-side bias, recurrent-side bias), each (G*U,); zeros when absent."""
    if bias is None:
        return np.zeros(width, dtype), np.zeros(width, dtype)
    if cell == "gru":
        return bias[0], bias[1]
    return bias, np.zeros(width, dtype)


def _lstm_gates(z, u, act, ract):
    """i, f, g, o from LSTM pre-activations z (N, 4U), Keras' order i, f, c, o."""
    return (_activate(ract, z[:, :u]), _activate(ract, z[:, u:2 * u]),
            _activate(act, z[:, 2 * u:3 * u]), _activate(ract, z[:, 3 * u:]))


def _keep_masked(mask, step, new, old):
    """new where the step is unmasked, old (the previous state) where masked."""
    if mask is None:
        return new
    return np.where(mask[:, step, None] != 0, new, old)


def _split_masked(mask, step, grad):
    """(the gradient through the cell, the gradient that skips a masked step)."""
    if mask is None:
        return grad, np.zeros_like(grad)
    keep = mask[:, step, None] != 0
    zero = grad.dtype.type(0)
    return np.where(keep, grad, zero), np.where(keep, zero, grad)


def _dropout_keep(seed, rate, n):
    """The keep decisions (bool, n) of flat elements 0..n-1: splitmix64 read at
    position i from key mix64(seed), its top 53 bits against the threshold --
    csrc/dropout.c's arithmetic, in uint64 (which wraps mod 2**64 as C does)."""
    z = np.arange(1, n + 1, dtype=np.uint64)
    z *= np.uint64(DROPOUT_GOLDEN)
    z += np.uint64(mix64(seed))
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)) >= np.uint64(dropout_threshold(rate))


def _attention_allowed(n, tq, tk, causal, query_mask, key_mask, attention_mask):
    """allowed[n, i, j] (bool, broadcastable to (N, Tq, Tk)): every mask, and j <= i
    when causal (Keras's tril(ones(Tq, Tk)), top-left aligned). None when all are."""
    allowed = None

    def both(a, b):
        return b if a is None else a & b
    if query_mask is not None:
        allowed = both(allowed, (query_mask != 0)[:, :, None])
    if key_mask is not None:
        allowed = both(allowed, (key_mask != 0)[:, None, :])
    if attention_mask is not None:
        allowed = both(allowed, attention_mask != 0)
    if causal:
        allowed = both(allowed, np.tril(np.ones((tq, tk), dtype=bool))[None])
    return allowed


def _attention_scores(q, k, scale, causal, query_mask, key_mask, attention_mask):
    """The masked scores (N, H, Tq, Tk) in q's dtype: (q * scale) . k, plus
    ATTENTION_MASK_VALUE where not allowed (Keras's _masked_softmax)."""
    t = q.dtype.type
    s = np.matmul((q * t(scale)).transpose(0, 2, 1, 3), k.transpose(0, 2, 3, 1))
    allowed = _attention_allowed(q.shape[0], q.shape[1], k.shape[1], causal, query_mask,
                                 key_mask, attention_mask)
    if allowed is not None:
        s = np.where(allowed[:, None], s, s + t(ATTENTION_MASK_VALUE))
    return s


def _attention_dropout(x, seed, rate):
    """x (N, H, Tq, Tk) times keep / (1 - rate), keep the dropout hash of x's flat
    index (dropout_mask's over that shape); x itself when rate is 0."""
    if rate == 0.0:
        return x
    keep = _dropout_keep(seed, rate, x.size).reshape(x.shape)
    t = x.dtype.type
    return np.where(keep, x * t(dropout_scale(rate)), t(0))


def _check_mask(mask, shape, where):
    """A uint8 mask array of ``shape`` (None: any shape)."""
    if (not isinstance(mask, np.ndarray) or mask.dtype != np.uint8
            or (shape is not None and mask.shape != tuple(shape))):
        want = "" if shape is None else f" of shape {tuple(shape)}"
        raise ValueError(f"{where}: mask must be a uint8 array{want}, got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} "
                         f"{getattr(mask, 'shape', '')}")
    return mask


def _check_bn(x, vectors, where, required=()):
    for name in required:
        if vectors[name] is None:
            raise ValueError(f"{where}: {name} is required")
    return check_batchnorm_args(x, vectors, where)


def _bn_scale(var, gamma, epsilon):
    """Per-channel gamma / sqrt(var + epsilon) in float64 (gamma None: 1)."""
    inv = 1.0 / np.sqrt(var.astype(np.float64) + epsilon)
    return inv if gamma is None else gamma.astype(np.float64) * inv


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
