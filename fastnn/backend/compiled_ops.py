"""CompiledOps: the Ops contract on fastnn's C kernels (fastnn._ext._core).

float32 is the fast path and runs compiled. float64 runs compiled for GEMM,
dense forward, embedding, the broadcast element-wise ops, fastnn.ops'
primitives (unary, compare, where, reduce, softmax), concatenate / split,
batch_matmul and fused attention; its other operations are handed to
NumpyOps, visibly: each method declares its hand-off with one decorator
(fastnn.backend.numpy_handoff), which records it once in ``FALLBACKS`` for
``fastnn.show_config()``. arg_reduce, cumsum and l2_normalize run on NumPy
for every dtype (declared and recorded the same way).
"""
import numpy as np

from fastnn import _runtime
from fastnn._ext import _core
from fastnn.backend.numpy_handoff import (  # noqa: F401  (FALLBACKS: show_config reads it here)
    FALLBACKS, compiled_for_float32, numpy_for_every_dtype,
)
from fastnn.backend.numpy_ops import NumpyOps
from fastnn.backend.ops import (
    ACTIVATIONS, BINARY_OPS, COMPARE_OPS, LOSSES, METRICS, REDUCE_OPS, RNN_CELLS, UNARY_OPS, Ops,
    check_activation, check_attention_args, check_attention_backward_args,
    check_batch_matmul_args, check_batchnorm_args, check_binary_args, check_binary_backward_args,
    check_compare_args, check_conv2d_args, check_dense_args, check_dropout_args,
    check_embedding_indices, check_embedding_table, check_gemm_args, check_loss_args,
    check_metric_args, check_pool_args, dense_stack_layer_by_layer,
    check_layer_norm_args, check_layer_norm_backward_args,
    check_reduce_args, check_reduce_backward_args, check_rnn_args, check_softmax_args,
    check_softmax_backward_args, check_split_args, check_sum_to_shape_args, check_unary_args,
    check_unary_backward_args, check_where_args,
    dropout_scale, dropout_threshold, WindowGeometry,
)

ACT_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
LOSS_CODES = {name: code for code, name in enumerate(LOSSES)}
METRIC_CODES = {name: code for code, name in enumerate(METRICS)}
BINARY_CODES = {name: code for code, name in enumerate(BINARY_OPS)}
UNARY_CODES = {name: code for code, name in enumerate(UNARY_OPS)}
COMPARE_CODES = {name: code for code, name in enumerate(COMPARE_OPS)}
REDUCE_CODES = {name: code for code, name in enumerate(REDUCE_OPS)}

_GEMM_KERNELS = {np.dtype(np.float32): _core.gemm_f32, np.dtype(np.float64): _core.gemm_f64}
_LINEAR = ACT_CODES["linear"]
_GEMM_ACT_CODES = {None: _LINEAR, **{name: code for name, code in ACT_CODES.items()
                                                 if name != "softmax"}}

_F32 = np.dtype(np.float32)
_STACK_MAX_LAYERS = 64        # FNN_DENSE_STACK_MAX_LAYERS (csrc/fastnn.h)

# The thread count every kernel call passes (bound once: one call less per kernel).
_threads = _runtime.get_num_threads


def _numpy_rnn_cache(cache_argument, where):
    """A hand-off adapter for the RNN methods: NumpyOps' cache is narrower than the
    compiled one and lives in its leading columns, so one cache shape serves both
    dtypes (``CompiledOps.rnn_cache_shape``)."""
    def adapt(ops, arguments):
        a = arguments
        n, t, _, u, _ = check_rnn_args(a["cell"], a["x"], a["kernel"], a["recurrent_kernel"],
                                       a["bias"], a["mask"], where)
        a[cache_argument] = ops._reference_rnn_cache(a["cell"], a[cache_argument], n, t, u)
    return adapt


class CompiledOps(Ops):
    """Ops on compiled C kernels (float32; float64 partly, see module docstring)."""

    name = "compiled"

    def __init__(self):
        # where numpy_handoff's declared hand-offs go
        self._reference = NumpyOps()

    # ---- GEMM ---------------------------------------------------------------
    def gemm(self, a, b, *, transpose_a=False, transpose_b=False, alpha=1.0, beta=0.0,
             bias=None, activation=None, out=None):
        # Apps call small GEMMs in loops: the type tests here, then one wrapper call
        # (dtype dispatch, allocation and shape checks in Cython). Any error is
        # worded by the contract's check_gemm_args, as on the NumPy backend.
        act = _GEMM_ACT_CODES.get(activation)
        if (act is None or type(a) is not np.ndarray or type(b) is not np.ndarray
                or a.dtype is not b.dtype or (out is None and beta != 0)):
            check_gemm_args(a, b, transpose_a, transpose_b, beta, bias, activation, out)
        try:
            return _core.gemm(out, a, b, bias, transpose_a, transpose_b, alpha, beta, act,
                              _threads())
        except (ValueError, TypeError):
            check_gemm_args(a, b, transpose_a, transpose_b, beta, bias, activation, out)
            raise

    # ---- activations ---------------------------------------------------------
    @compiled_for_float32("x")
    def activation_forward(self, name, x, out=None):
        if out is None:
            out = np.empty_like(x)
        _core.act_forward_f32(_rows(out), _rows(x), ACT_CODES[check_activation(name)], _threads())
        return out

    @compiled_for_float32("dy")
    def activation_backward(self, name, dy, x, y, out=None):
        if out is None:
            out = np.empty_like(dy)
        _core.act_backward_f32(_rows(out), _rows(dy), _rows_or_none(x), _rows_or_none(y),
                               ACT_CODES[check_activation(name)], _threads())
        return out

    # ---- dense layers --------------------------------------------------------
    def dense_forward(self, x, w, b, activation, out=None, preact_out=None):
        # The short path checks types here and leaves shapes to the kernel's
        # wrapper; any error re-checks with the contract's check_dense_args,
        # so both backends word it alike (naming the argument). One frame:
        # it runs for every dense layer of every training step.
        activation = activation or "linear"
        code = ACT_CODES.get(activation)
        kernel = _GEMM_KERNELS.get(getattr(x, "dtype", None))
        if (kernel is None or code is None or type(x) is not np.ndarray
                or type(w) is not np.ndarray):
            check_dense_args(x, w, b, activation, out, preact_out)
        try:
            if out is None:
                out = np.empty((x.shape[0], w.shape[1]), dtype=x.dtype)
            if activation == "softmax" or (preact_out is not None
                                           and kernel is not _core.gemm_f32):
                # The GEMM's epilogue is per element: a row softmax (or a kept
                # float64 pre-activation's activation) runs after it.
                z = out if preact_out is None else preact_out
                kernel(z, x, w, b, False, False, 1.0, 0.0, _LINEAR, _threads())
                return self.activation_forward(activation, z, out)
            if preact_out is not None:
                _core.gemm_keep_f32(out, preact_out, x, w, b, False, False, 1.0, 0.0, code,
                                    _threads())
            else:
                kernel(out, x, w, b, False, False, 1.0, 0.0, code, _threads())
            return out
        except (ValueError, TypeError):
            check_dense_args(x, w, b, activation, out, preact_out)
            raise

    def dense_stack(self, x, kernels, biases, activations):
        codes = [ACT_CODES.get(a or "linear") for a in activations]
        if (type(x) is np.ndarray and x.dtype is _F32 and x.ndim == 2 and None not in codes
                and 1 <= len(kernels) == len(biases) == len(codes) <= _STACK_MAX_LAYERS):
            out = np.empty((x.shape[0], getattr(kernels[-1], "shape", (0, 0))[-1]), np.float32)
            try:
                _core.dense_stack_f32(out, x, list(kernels), list(biases), codes, _threads())
                return out
            except (ValueError, TypeError):
                pass    # layer by layer: the contract's checks word the error
        return dense_stack_layer_by_layer(self, x, kernels, biases, activations)

    @compiled_for_float32("dy")
    def dense_backward(self, dy, x, w, y, preact, activation, dw_out, db_out, dx_out=None,
                       scratch=None):
        if scratch is None:
            scratch = np.empty_like(dy)
        if dx_out is None:
            dx_out = np.empty_like(x)
        elif dx_out is False:
            dx_out = None
        _core.dense_backward_f32(dx_out, dw_out, db_out, scratch, dy, x, w, preact, y,
                                 ACT_CODES[activation or "linear"], _threads())
        return dx_out

    # ---- losses and metrics --------------------------------------------------
    # Short paths as dense_forward's: type tests here, the kernel's wrapper checks
    # shapes, and an error re-checks with the contract's check (its wording).
    @compiled_for_float32("y_pred")
    def loss(self, name, y_pred, y_true, *, from_logits=False, delta=1.0, grad_out=None,
             sample_weight=None):
        code = LOSS_CODES.get(name)
        sparse = name == "sparse_categorical_crossentropy"
        if (code is None or type(y_pred) is not np.ndarray or type(y_true) is not np.ndarray
                or (sparse and y_true.dtype.kind not in "iu")):
            check_loss_args(name, y_pred, y_true, sample_weight, grad_out)
        if sparse and y_true.dtype != np.int64:
            y_true = np.ascontiguousarray(y_true, dtype=np.int64)
        if sample_weight is not None and (sample_weight.dtype != np.float32
                                          or not sample_weight.flags.c_contiguous):
            sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float32)
        try:
            return _core.loss_f32(grad_out, y_pred, None if sparse else y_true,
                                  y_true if sparse else None, code, bool(from_logits),
                                  float(delta), _threads(), sample_weight)
        except (ValueError, TypeError):
            check_loss_args(name, y_pred, y_true, sample_weight, grad_out)
            raise

    @compiled_for_float32("y_pred")
    def metric_sum(self, name, y_pred, y_true):
        code = METRIC_CODES.get(name)
        sparse = name == "sparse_categorical_accuracy"
        if (code is None or type(y_pred) is not np.ndarray or type(y_true) is not np.ndarray
                or (sparse and y_true.dtype.kind not in "iu")):
            check_metric_args(name, y_pred, y_true)
        if sparse and y_true.dtype != np.int64:
            y_true = np.ascontiguousarray(y_true, dtype=np.int64)
        try:
            return _core.metric_f32(y_pred, None if sparse else y_true,
                                    y_true if sparse else None, code, _threads())
        except (ValueError, TypeError):
            check_metric_args(name, y_pred, y_true)
            raise

    # ---- optimizer steps -----------------------------------------------------
    @compiled_for_float32("p")
    def sgd_update(self, p, g, velocity, *, lr, momentum=0.0, nesterov=False, decay=0.0):
        _core.sgd_update_f32(p, velocity, g, lr, momentum, nesterov, decay, _threads())

    @compiled_for_float32("p")
    def adam_update(self, p, g, m, v, *, lr_t, beta1, beta2, eps, decay=0.0, vhat=None):
        _core.adam_update_f32(p, m, v, vhat, g, lr_t, beta1, beta2, eps, decay, _threads())

    @compiled_for_float32("p")
    def rmsprop_update(self, p, g, ms, *, lr, rho, eps, momentum=0.0, mom=None, mg=None,
                       decay=0.0):
        _core.rmsprop_update_f32(p, ms, mg, mom, g, lr, rho, momentum, eps, decay, _threads())

    @compiled_for_float32("p")
    def adagrad_update(self, p, g, acc, *, lr, eps, decay=0.0):
        _core.adagrad_update_f32(p, acc, g, lr, eps, decay, _threads())

    @compiled_for_float32("p")
    def nadam_update(self, p, g, m, v, *, lr, beta1, beta2, coef_m, coef_g, v_correction, eps,
                     decay=0.0):
        _core.nadam_update_f32(p, m, v, g, lr, beta1, beta2, coef_m, coef_g, v_correction, eps,
                               decay, _threads())

    @compiled_for_float32("p")
    def adamax_update(self, p, g, m, u, *, lr, beta1, beta2, m_correction, eps, decay=0.0):
        _core.adamax_update_f32(p, m, u, g, lr, beta1, beta2, m_correction, eps, decay,
                                _threads())

    @compiled_for_float32("p")
    def lion_update(self, p, g, m, *, lr, beta1, beta2, decay=0.0):
        _core.lion_update_f32(p, m, g, lr, beta1, beta2, decay, _threads())

    # ---- reductions and element-wise helpers --------------------------------
    @compiled_for_float32("x")
    def sum_squares(self, x):
        return _core.sum_squares_f32(_flat(x), _threads())

    @compiled_for_float32("x")
    def scale_(self, x, s):
        _core.scale_f32(_flat(x), s, _threads())
        return x

    @compiled_for_float32("x")
    def clip_(self, x, lo, hi):
        _core.clip_f32(_flat(x), lo, hi, _threads())
        return x

    @compiled_for_float32("x")
    def all_finite(self, x):
        return _core.all_finite_f32(_flat(np.ascontiguousarray(x)), _threads())

    # ---- weight regularizers -------------------------------------------------
    @compiled_for_float32("param")
    def regularize_(self, grad, param, l1, l2):
        return _core.regularize_f32(None if grad is None else _flat(grad), _flat(param),
                                    float(l1), float(l2), _threads())

    # ---- dropout --------------------------------------------------------------
    def dropout_mask(self, seed, rate, mask_out):
        seed, rate = check_dropout_args(seed, rate, "dropout_mask")
        _core.dropout_mask(_flat(mask_out), seed, dropout_threshold(rate), _threads())
        return mask_out

    @compiled_for_float32("x")
    def dropout_forward(self, x, seed, rate, out=None, mask_out=None):
        seed, rate = check_dropout_args(seed, rate, "dropout_forward")
        if out is None:
            out = np.empty(x.shape, np.float32)
        _same_shape(x, out=out, mask_out=mask_out, where="dropout_forward")
        _core.dropout_forward_f32(_flat(out), None if mask_out is None else _flat(mask_out),
                                  np.ascontiguousarray(x).reshape(-1), seed,
                                  dropout_threshold(rate), dropout_scale(rate), _threads())
        return out

    @compiled_for_float32("dy")
    def dropout_backward(self, dy, mask, rate, out=None):
        _, rate = check_dropout_args(0, rate, "dropout_backward")
        if out is None:
            out = np.empty(dy.shape, np.float32)
        _same_shape(dy, out=out, mask=mask, where="dropout_backward")
        _core.dropout_backward_f32(_flat(out), np.ascontiguousarray(dy).reshape(-1),
                                   np.ascontiguousarray(mask).reshape(-1), dropout_scale(rate),
                                   _threads())
        return out

    # ---- batch normalization -------------------------------------------------
    @compiled_for_float32("x")
    def batchnorm_stats(self, x, mean_out, var_out):
        _core.batchnorm_stats_f32(mean_out, var_out, np.ascontiguousarray(x), _threads())

    @compiled_for_float32("moving_mean")
    def batchnorm_update_moving_(self, moving_mean, moving_var, mean, var, momentum):
        _core.batchnorm_update_moving_f32(moving_mean, moving_var, mean, var, float(momentum))

    @compiled_for_float32("x")
    def batchnorm_forward(self, x, mean, var, gamma, beta, *, epsilon, out=None):
        if out is None:
            out = np.empty(x.shape, np.float32)
        try:
            _core.batchnorm_forward_f32(out, np.ascontiguousarray(x), mean, var, gamma, beta,
                                        float(epsilon), _threads())
        except (ValueError, TypeError):
            check_batchnorm_args(x, dict(mean=mean, var=var, gamma=gamma, beta=beta),
                                 "batchnorm_forward")
            raise
        return out

    @compiled_for_float32("x")
    def batchnorm_backward(self, dy, x, mean, var, gamma, *, epsilon, batch_stats,
                           dgamma_out=None, dbeta_out=None, dx_out=None):
        if dx_out is None:
            dx_out = np.empty(x.shape, np.float32)
        elif dx_out is False:
            dx_out = None
        _core.batchnorm_backward_f32(dx_out, dgamma_out, dbeta_out, np.ascontiguousarray(dy),
                                     np.ascontiguousarray(x), mean, var, gamma, float(epsilon),
                                     bool(batch_stats), _threads())
        return dx_out

    # ---- layer / RMS normalization over the last axis ---------------------------
    # csrc/layernorm.c, float32 and float64. Checked in full here (once per layer
    # call: cheap next to the (M, C) passes), the wrapper repeating what the
    # kernel relies on.
    def layer_norm(self, x, gamma, beta, *, epsilon, rms=False, out=None, mean_out=None,
                   rstd_out=None):
        check_layer_norm_args(x, gamma, beta, epsilon, rms, out, mean_out, rstd_out)
        if rms and mean_out is not None:
            mean_out.fill(0)
        if out is None:
            out = np.empty(x.shape, x.dtype)
        _core.layer_norm_forward(out, mean_out, rstd_out, np.ascontiguousarray(x),
                                 _contiguous(gamma), _contiguous(beta), float(epsilon),
                                 bool(rms), _threads())
        return out

    def layer_norm_backward(self, dy, x, mean, rstd, gamma, *, rms=False, has_beta=True,
                            dx_out=None, dgamma_out=None, dbeta_out=None):
        check_layer_norm_backward_args(dy, x, mean, rstd, gamma, rms, has_beta, dx_out,
                                       dgamma_out, dbeta_out)
        c = x.shape[1]
        if dx_out is None:
            dx_out = np.empty(x.shape, x.dtype)
        if gamma is not None and dgamma_out is None:
            dgamma_out = np.empty(c, x.dtype)
        if has_beta and dbeta_out is None:
            dbeta_out = np.empty(c, x.dtype)
        _core.layer_norm_backward(None if dx_out is False else dx_out, dgamma_out, dbeta_out,
                                  np.ascontiguousarray(dy), np.ascontiguousarray(x),
                                  None if rms else _contiguous(mean), _contiguous(rstd),
                                  _contiguous(gamma), bool(rms), _threads())
        return (None if dx_out is False else dx_out), dgamma_out, dbeta_out

    # ---- convolution (NHWC) ---------------------------------------------------
    # csrc/conv.c: im2col chunks into the GEMM, fused bias + activation. float64
    # is handed to NumPy (recorded in FALLBACKS).
    @compiled_for_float32("x")
    def conv2d_forward(self, x, w, b, *, strides, padding, dilation, activation, out=None,
                       preact_out=None, cols=None):
        activation, geom = check_conv2d_args(x, w, b, strides, padding, dilation, activation,
                                             out, preact_out)
        if out is None:
            out = np.empty((geom.n, geom.oh, geom.ow, w.shape[3]), np.float32)
        _core.conv2d_forward_f32(out, preact_out, np.ascontiguousarray(x),
                                 np.ascontiguousarray(w), b, *_conv_kernel_args(geom), cols,
                                 ACT_CODES[activation], _threads())
        return out

    def conv2d_scratch_size(self, x, w, *, strides, padding, dilation):
        if getattr(x, "dtype", None) != np.float32:
            return 0
        _, geom = check_conv2d_args(x, w, None, strides, padding, dilation, None, None, None,
                                    "conv2d_scratch_size")
        y = np.broadcast_to(np.float32(0), (geom.n, geom.oh, geom.ow, w.shape[3]))  # shape only
        threads = _threads()
        return max(_core.conv2d_work_floats(x, w, y, *_conv_kernel_args(geom), backward, threads)
                   for backward in (False, True))

    @compiled_for_float32("dy")
    def conv2d_backward(self, dy, x, w, y, preact, *, strides, padding, dilation, activation,
                        dw_out, db_out, dx_out=None, scratch=None, cols=None):
        activation, geom = check_conv2d_args(x, w, None, strides, padding, dilation, activation,
                                             None, None, "conv2d_backward")
        shape = (geom.n, geom.oh, geom.ow, w.shape[3])
        if getattr(dy, "shape", None) != shape:
            raise ValueError(f"conv2d_backward: dy must have shape {shape} for x {x.shape} and "
                             f"w {w.shape}, got {getattr(dy, 'shape', type(dy).__name__)}")
        if scratch is None:
            scratch = np.empty(shape, np.float32)
        if dx_out is None:
            dx_out = np.empty(x.shape, np.float32)
        elif dx_out is False:
            dx_out = None
        _core.conv2d_backward_f32(dx_out, dw_out, db_out, scratch, np.ascontiguousarray(dy),
                                  np.ascontiguousarray(x), np.ascontiguousarray(w), preact, y,
                                  *_conv_kernel_args(geom), cols, ACT_CODES[activation],
                                  _threads())
        return dx_out

    # ---- pooling (NHWC) --------------------------------------------------------
    @compiled_for_float32("x")
    def max_pool2d_forward(self, x, *, pool_size, strides, padding, out=None, argmax_out=None):
        geom = check_pool_args(x, pool_size, strides, padding, out, "max_pool2d_forward")
        if out is None:
            out = np.empty(geom.output_shape, np.float32)
        _core.max_pool2d_forward_f32(out, argmax_out, np.ascontiguousarray(x),
                                     *_pool_kernel_args(geom), _threads())
        return out

    @compiled_for_float32("dy")
    def max_pool2d_backward(self, dy, argmax, *, input_shape, out=None):
        if out is None:
            out = np.empty(tuple(input_shape), np.float32)
        _core.max_pool2d_backward_f32(out, np.ascontiguousarray(dy), argmax, _threads())
        return out

    @compiled_for_float32("x")
    def avg_pool2d_forward(self, x, *, pool_size, strides, padding, out=None):
        geom = check_pool_args(x, pool_size, strides, padding, out, "avg_pool2d_forward")
        if out is None:
            out = np.empty(geom.output_shape, np.float32)
        _core.avg_pool2d_forward_f32(out, np.ascontiguousarray(x), *_pool_kernel_args(geom),
                                     _threads())
        return out

    @compiled_for_float32("dy")
    def avg_pool2d_backward(self, dy, *, input_shape, pool_size, strides, padding, out=None):
        if out is None:
            out = np.empty(tuple(input_shape), np.float32)
        geom = WindowGeometry(out.shape, pool_size, strides, padding, (1, 1),
                              "avg_pool2d_backward")
        if getattr(dy, "shape", None) != geom.output_shape:
            raise ValueError(f"avg_pool2d_backward: dy must have shape {geom.output_shape} "
                             f"for input_shape {out.shape}, got "
                             f"{getattr(dy, 'shape', type(dy).__name__)}")
        _core.avg_pool2d_backward_f32(out, np.ascontiguousarray(dy), *_pool_kernel_args(geom),
                                      _threads())
        return out

    # ---- recurrent layers -------------------------------------------------------
    # float32 runs csrc/rnn.c: one call for the whole forward, one for the whole
    # BPTT. float64 is handed to NumPy, visibly; NumPy's cache is narrower than
    # the compiled one and lives in its leading columns, so one cache shape
    # serves both dtypes.
    def rnn_cache_shape(self, cell, n, t, units):
        return (int(n), int(t), int(_core.rnn_cache_width(_rnn_code(cell), int(units))))

    @compiled_for_float32("x", adapt=_numpy_rnn_cache("cache_out", "rnn_forward"))
    def rnn_forward(self, cell, x, kernel, recurrent_kernel, bias, *, activation,
                    recurrent_activation, go_backwards=False, mask=None, hs_out=None,
                    cache_out=None):
        n, t, _, u, _ = check_rnn_args(cell, x, kernel, recurrent_kernel, bias, mask,
                                       "rnn_forward")
        act = ACT_CODES[check_activation(activation, allow_softmax=False)]
        ract = ACT_CODES[check_activation(recurrent_activation, allow_softmax=False)]
        if hs_out is None:
            hs_out = np.empty((n, t, u), np.float32)
        _core.rnn_forward_f32(hs_out, cache_out, _contiguous(x), _contiguous(kernel),
                              _contiguous(recurrent_kernel), _contiguous(bias), _mask_u8(mask),
                              _rnn_code(cell), act, ract, bool(go_backwards), _threads())
        return hs_out

    @compiled_for_float32("x", adapt=_numpy_rnn_cache("cache", "rnn_backward"))
    def rnn_backward(self, cell, dhs, x, kernel, recurrent_kernel, bias, hs, cache, *,
                     activation, recurrent_activation, go_backwards=False, mask=None,
                     dkernel_out, drecurrent_out, dbias_out, dx_out=None):
        check_rnn_args(cell, x, kernel, recurrent_kernel, bias, mask, "rnn_backward")
        act = ACT_CODES[check_activation(activation, allow_softmax=False)]
        ract = ACT_CODES[check_activation(recurrent_activation, allow_softmax=False)]
        if dx_out is None:
            dx_out = np.empty(x.shape, np.float32)
        elif dx_out is False:
            dx_out = None
        _core.rnn_backward_f32(dx_out, dkernel_out, drecurrent_out, dbias_out,
                               _contiguous(dhs), _contiguous(x), _contiguous(kernel),
                               _contiguous(recurrent_kernel), _contiguous(hs), cache,
                               _mask_u8(mask), _rnn_code(cell), act, ract, bool(go_backwards),
                               _threads())
        return dx_out

    def _reference_rnn_cache(self, cell, cache, n, t, u):
        """The leading columns of a compiled-shape cache that NumpyOps uses (float64)."""
        if cache is None:
            return None
        shape = self.rnn_cache_shape(cell, n, t, u)
        if not isinstance(cache, np.ndarray) or cache.shape != shape:
            raise ValueError(f"rnn cache must have shape {shape} for {cell} over x "
                             f"{(n, t)} with {u} units, got "
                             f"{getattr(cache, 'shape', type(cache).__name__)}")
        return cache[..., :self._reference.rnn_cache_shape(cell, n, t, u)[2]]

    # ---- embedding ---------------------------------------------------------------
    def embedding_forward(self, indices, table, out=None):
        check_embedding_table(table, "embedding_forward")
        idx = check_embedding_indices(indices, table.shape[0], "embedding_forward")
        if out is None:
            out = np.empty(idx.shape + (table.shape[1],), table.dtype)
        _core.embedding_forward(out, idx, np.ascontiguousarray(table), _threads())
        return out

    def embedding_backward(self, dy, indices, dtable_out):
        idx = check_embedding_indices(indices, dtable_out.shape[0], "embedding_backward")
        _core.embedding_backward(dtable_out, np.ascontiguousarray(dy), idx, _threads())
        return dtable_out

    # ---- broadcast element-wise ops, concatenation, batched matmul -------------
    # csrc/elementwise.c, concat.c, batch_matmul.c, float32 and float64 (no
    # NumPy fallback). Merges and gradient sums of small tensors run every
    # step, so the path is short: a dict lookup and type tests here, the shared
    # checks only when those fail; the wrappers check shapes, dtypes and
    # overlaps (same errors as the shared checks) and allocate the outputs.
    def binary(self, op, a, b, out=None):
        code = BINARY_CODES.get(op) if type(op) is str else None
        if code is None or type(a) is not np.ndarray or type(b) is not np.ndarray:
            check_binary_args(op, a, b, out)
            code = BINARY_CODES[op]
        return _core.binary_forward(out, a, b, code, _threads())

    def binary_backward(self, op, dy, a, b, da_out=None, db_out=None):
        code = BINARY_CODES.get(op) if type(op) is str else None
        if (code is None or type(a) is not np.ndarray or type(b) is not np.ndarray
                or type(dy) is not np.ndarray):
            check_binary_backward_args(op, dy, a, b, da_out, db_out)
            code = BINARY_CODES[op]
        return _core.binary_backward(da_out, db_out, dy, a, b, code, _threads())

    def sum_to_shape(self, x, shape, out=None):
        if type(x) is not np.ndarray:
            shape = check_sum_to_shape_args(x, shape, out)
        return _core.sum_to_shape(out, x, shape, _threads())

    def concatenate(self, xs, axis, out=None):
        return _core.concat_forward(out, xs, axis, _threads())

    def split(self, x, sizes, axis, outs=None):
        if type(x) is not np.ndarray:
            check_split_args(x, sizes, axis, outs)
        return _core.concat_backward(outs, x, sizes, axis, _threads())

    def batch_matmul(self, a, b, *, transpose_a=False, transpose_b=False, out=None):
        if type(a) is not np.ndarray or type(b) is not np.ndarray:
            check_batch_matmul_args(a, b, transpose_a, transpose_b, out)
        return _core.batch_matmul(out, a, b, bool(transpose_a), bool(transpose_b), _threads())

    # ---- fastnn.ops' primitives ---------------------------------------------------
    # csrc/elementwise.c (unary, compare, where, reduce: sum_to_shape's engine)
    # and csrc/softmax.c, float32 and float64. These run every step on the small
    # tensors of traced custom layers, so the path is as binary's: a dict lookup
    # and type tests here, the shared checks only when those fail, the wrappers
    # checking the rest with the same errors. arg_reduce and cumsum are handed
    # to NumPy (recorded in FALLBACKS).
    def unary(self, op, x, out=None):
        code = UNARY_CODES.get(op) if type(op) is str else None
        if code is None or type(x) is not np.ndarray:
            check_unary_args(op, x, out)
            code = UNARY_CODES[op]
        return _core.unary_forward(out, x, code, _threads())

    def unary_backward(self, op, dy, x, y, out=None):
        code = UNARY_CODES.get(op) if type(op) is str else None
        if (code is None or type(dy) is not np.ndarray or type(x) is not np.ndarray
                or type(y) is not np.ndarray):
            check_unary_backward_args(op, dy, x, y, out)
            code = UNARY_CODES[op]
        return _core.unary_backward(out, dy, x, y, code, _threads())

    def compare(self, op, a, b, out=None):
        code = COMPARE_CODES.get(op) if type(op) is str else None
        if code is None or type(a) is not np.ndarray or type(b) is not np.ndarray:
            check_compare_args(op, a, b, out)
            code = COMPARE_CODES[op]
        return _core.compare(out, a, b, code, _threads())

    def where(self, condition, a, b, out=None):
        if (type(condition) is not np.ndarray or type(a) is not np.ndarray
                or type(b) is not np.ndarray):
            check_where_args(condition, a, b, out)
        return _core.where(out, condition, a, b, _threads())

    def reduce(self, op, x, axes=None, keepdims=False, out=None):
        code = REDUCE_CODES.get(op) if type(op) is str else None
        if code is None or type(x) is not np.ndarray:
            check_reduce_args(op, x, axes, keepdims, out)
            code = REDUCE_CODES[op]
        return _core.reduce(out, x, axes, bool(keepdims), code, _threads())

    def reduce_backward(self, op, dy, x, y, axes=None, keepdims=False, out=None):
        code = REDUCE_CODES.get(op) if type(op) is str else None
        if code is None or type(x) is not np.ndarray or type(dy) is not np.ndarray:
            check_reduce_backward_args(op, dy, x, y, axes, keepdims, out)
            code = REDUCE_CODES[op]
        return _core.reduce_backward(out, dy, x, y, axes, bool(keepdims), code, _threads())

    arg_reduce = numpy_for_every_dtype(NumpyOps.arg_reduce, "x")
    cumsum = numpy_for_every_dtype(NumpyOps.cumsum, "x")

    def softmax(self, x, axis=-1, out=None):
        if type(x) is not np.ndarray:
            check_softmax_args(x, axis, out, "softmax")
        return _core.softmax_forward(out, x, axis, False, _threads())

    def softmax_backward(self, dy, y, axis=-1, out=None):
        if type(dy) is not np.ndarray or type(y) is not np.ndarray:
            check_softmax_backward_args(dy, y, axis, out, "softmax_backward")
        return _core.softmax_backward(out, dy, y, axis, False, _threads())

    def log_softmax(self, x, axis=-1, out=None):
        if type(x) is not np.ndarray:
            check_softmax_args(x, axis, out, "log_softmax")
        return _core.softmax_forward(out, x, axis, True, _threads())

    def log_softmax_backward(self, dy, y, axis=-1, out=None):
        if type(dy) is not np.ndarray or type(y) is not np.ndarray:
            check_softmax_backward_args(dy, y, axis, out, "log_softmax_backward")
        return _core.softmax_backward(out, dy, y, axis, True, _threads())

    # ---- L2 normalization: rare (Dot(normalize=True)), handed to NumPy visibly ------
    l2_normalize = numpy_for_every_dtype(NumpyOps.l2_normalize, "x")
    l2_normalize_backward = numpy_for_every_dtype(NumpyOps.l2_normalize_backward, "x")

    # ---- fused attention: csrc/attention.c, float32 and float64 ------------------------
    # Validation in Python (ops.check_attention_args: the errors users see),
    # then one kernel call with the GIL released. The kernels' scratch is
    # allocated by the wrapper at exactly attention_scratch_bytes.
    def attention(self, q, k, v, *, scale, causal=False, query_mask=None, key_mask=None,
                  attention_mask=None, dropout_rate=0.0, seed=0, out=None, lse_out=None,
                  probs_out=None):
        n, tq, tk, h, d, dv, scale, seed, rate = check_attention_args(
            q, k, v, scale, causal, query_mask, key_mask, attention_mask, dropout_rate, seed,
            out, lse_out, probs_out)
        if out is None:
            out = np.empty((n, tq, h, dv), q.dtype)
        if lse_out is None:
            lse_out = np.empty((n, h, tq), q.dtype)
        return _core.attention_forward(
            out, lse_out, probs_out, None, q, k, v, _contiguous(query_mask),
            _contiguous(key_mask), _contiguous(attention_mask), scale, bool(causal), seed,
            dropout_threshold(rate), dropout_scale(rate), _threads())

    def attention_backward(self, dout, q, k, v, out, lse, *, scale, causal=False,
                           query_mask=None, key_mask=None, attention_mask=None,
                           dropout_rate=0.0, seed=0, dprobs=None, dq_out=None, dk_out=None,
                           dv_out=None):
        n, tq, tk, h, d, dv, scale, seed, rate = check_attention_backward_args(
            dout, q, k, v, out, lse, scale, causal, query_mask, key_mask, attention_mask,
            dropout_rate, seed, dprobs, dq_out, dk_out, dv_out)
        dq = np.empty(q.shape, q.dtype) if dq_out is None else dq_out
        dk = np.empty(k.shape, q.dtype) if dk_out is None else dk_out
        dvv = np.empty(v.shape, q.dtype) if dv_out is None else dv_out
        return _core.attention_backward(
            dq, dk, dvv, None, dout, q, k, v, out, np.ascontiguousarray(lse),
            None if dprobs is None else np.ascontiguousarray(dprobs), _contiguous(query_mask),
            _contiguous(key_mask), _contiguous(attention_mask), scale, bool(causal), seed,
            dropout_threshold(rate), dropout_scale(rate), _threads())

    def attention_scratch_bytes(self, n, tq, tk, h, d, dv, dtype, *, backward):
        return _core.attention_work_bytes(n, tq, tk, h, d, dv, np.dtype(dtype).itemsize,
                                          bool(backward))


def _conv_kernel_args(geom):
    """conv.pxi's geometry arguments: strides, dilation, (top, left) padding."""
    return (geom.sh, geom.sw), (geom.dh, geom.dw), (geom.top, geom.left)


def _pool_kernel_args(geom):
    """pool.pxi's window arguments: kh, kw, sh, sw, top, left."""
    return geom.kh, geom.kw, geom.sh, geom.sw, geom.top, geom.left


def _same_shape(ref, where, **arrays):
    """Raise ValueError unless every given array (None skipped) has ref's shape."""
    for name, a in arrays.items():
        if a is not None and getattr(a, "shape", None) != ref.shape:
            raise ValueError(f"{where}: {name} must have shape {ref.shape}, got "
                             f"{getattr(a, 'shape', type(a).__name__)}")


def _rows(a):
    """View an array as 2-D (rows, last axis) without copying."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1] if a.ndim else 1)


def _rows_or_none(a):
    return None if a is None else _rows(a)


def _flat(a):
    """A 1-D view of a C-contiguous array (in-place kernels need a view, not a copy)."""
    flat = a.reshape(-1)
    if not np.shares_memory(flat, a) and a.size:
        raise ValueError("in-place operations need a C-contiguous array")
    return flat


def _rnn_code(cell):
    """The FNN_RNN_* code of a cell name (ValueError naming the choices)."""
    if cell not in RNN_CELLS:
        raise ValueError(f"cell must be one of {RNN_CELLS}, got {cell!r}")
    return RNN_CELLS.index(cell)


def _contiguous(a):
    """a itself when C-contiguous (or None), else a C-contiguous copy."""
    return a if a is None or a.flags.c_contiguous else np.ascontiguousarray(a)


def _mask_u8(mask):
    """A (N, T) bool/uint8 mask as C-contiguous uint8 (a view when possible)."""
    if mask is None:
        return None
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    return _contiguous(mask)
