"""The Ops contract: every hot loop fastnn runs, as one interface.

Two classes implement it with the same methods and the same results:
``NumpyOps`` (numpy_ops.py), the readable reference, and ``CompiledOps``
(compiled_ops.py), which calls the C kernels. Layers, losses and optimizers
do their math only through these methods, so switching the backend switches
every hot loop.

Conventions for every method:
- Arrays are float32 or float64 (class indices are int64). Inputs are not
  modified unless the method name ends in ``_`` or the argument is named
  ``*_out`` / is documented as updated in place.
- ``out=`` arrays, when given, must be C-contiguous, writable, of the right
  shape and dtype; the result is written there and returned.
- Parameter-gradient outputs (``dw_out``, ``db_out``) are OVERWRITTEN.
- Reductions are deterministic: the same inputs give bitwise the same result
  whatever the thread count.
"""
import operator

import numpy as np

ACTIVATIONS = (
    "linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "gelu", "swish",
)
LEAKY_RELU_SLOPE = 0.2   # Keras' default negative_slope for the "leaky_relu" activation
ELU_ALPHA = 1.0          # Keras' default alpha for the "elu" activation
# Activations whose backward pass needs the pre-activation input, not only the output.
NEEDS_PREACTIVATION = frozenset({"elu", "gelu", "swish"})

LOSSES = (
    "mse", "mae", "huber", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)
METRICS = ("mae", "mse", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy")
PROB_EPSILON = 1e-7      # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]
L2_NORM_FLOOR = PROB_EPSILON ** 2   # Keras' normalize clamps the squared norm here

# Ops.binary's ops, in the kernels' code order (FNN_BINARY_* in csrc/fastnn.h).
BINARY_OPS = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power")
# fastnn.ops' other primitives (keras.ops names), each tuple in its kernels'
# code order (FNN_UNARY_*, FNN_COMPARE_*, FNN_REDUCE_*).
UNARY_OPS = ("negative", "abs", "sign", "square", "sqrt", "exp", "log", "log1p", "reciprocal")
COMPARE_OPS = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
REDUCE_OPS = ("sum", "mean", "max", "min")
ARG_REDUCE_OPS = ("argmax", "argmin")


class Ops:
    """Interface shared by the NumPy and compiled backends (see module docstring)."""

    name = "abstract"

    # ---- GEMM ---------------------------------------------------------------
    def gemm(self, a, b, *, transpose_a=False, transpose_b=False, alpha=1.0, beta=0.0,
             bias=None, activation=None, out=None):
        """Return ``act(alpha * op(a) @ op(b) + beta * out + bias)``.

        ``op(a)`` is ``a.T`` when ``transpose_a``; likewise for ``b``. ``a`` and ``b``
        are 2-D of one float dtype; ``bias`` has shape ``(n,)``; ``activation`` is
        None or an element-wise activation name (not softmax). ``beta`` other than
        0 requires ``out``; ``beta == 0`` never reads ``out``.
        """
        raise NotImplementedError

    # ---- activations ---------------------------------------------------------
    def activation_forward(self, name, x, out=None):
        """Return ``act(x)``; softmax runs over the last axis. ``out`` may be ``x``."""
        raise NotImplementedError

    def activation_backward(self, name, dy, x, y, out=None):
        """Return ``dy * act'(x)``, given the activation's input ``x`` and output ``y``.

        ``x`` may be None unless ``name in NEEDS_PREACTIVATION``. ``out`` may be ``dy``.
        """
        raise NotImplementedError

    # ---- dense layers --------------------------------------------------------
    def dense_forward(self, x, w, b, activation, out=None, preact_out=None):
        """Return ``y = act(x @ w + b)`` for x (N, I), w (I, O), b (O,) or None.

        When ``preact_out`` (N, O) is given it receives ``x @ w + b``; it must be
        given when ``activation in NEEDS_PREACTIVATION`` or is softmax.
        """
        raise NotImplementedError

    def dense_stack(self, x, kernels, biases, activations):
        """Return dense layers applied in order to x (N, I_0), for inference:
        layer l is ``act_l(h @ kernels[l] + biases[l])`` (a bias may be None).
        Bitwise what dense_forward gives layer after layer on the same backend
        (the compiled one runs blocks of rows through every layer in cache)."""
        raise NotImplementedError

    def dense_backward(self, dy, x, w, y, preact, activation, dw_out, db_out, dx_out=None,
                       scratch=None):
        """Backward of ``y = act(x @ w + b)``.

        Writes (overwrites) ``dw_out`` (I, O) = x.T @ dz and ``db_out`` (O,) =
        column sums of dz (``db_out`` None when the layer has no bias), where
        dz = dy * act'(preact). Returns dx = dz @ w.T (N, I) in ``dx_out`` when
        given or a new array; returns None when ``dx_out is False`` (first layer).
        ``scratch`` (N, O), optional, receives dz when the activation is not
        linear (a linear layer's dz is dy, read in place). ``preact`` may be
        None unless the activation needs it; ``y`` is the layer's output.
        """
        raise NotImplementedError

    # ---- losses and metrics --------------------------------------------------
    def loss(self, name, y_pred, y_true, *, from_logits=False, delta=1.0, grad_out=None,
             sample_weight=None):
        """Return the mean loss over the batch; fill ``grad_out`` with dloss/dy_pred.

        y_pred is (N, D); y_true is (N, D) of y_pred's dtype, or (N,) int64 class
        indices for sparse_categorical_crossentropy. Per-sample losses are means
        over D for mse/mae/huber/binary_crossentropy (Keras). ``delta`` is Huber's.
        With ``from_logits`` the sigmoid/softmax is fused into the loss. Without
        it, probabilities are clipped to [1e-7, 1 - 1e-7] and categorical
        predictions are first normalised to sum to 1, as Keras does.
        ``sample_weight`` (N,) of y_pred's dtype, >= 0, or None (all ones)
        multiplies each sample's loss and gradient row; the mean still divides
        by N, not by the sum of the weights (Keras' "sum over batch size").
        """
        raise NotImplementedError

    def metric_sum(self, name, y_pred, y_true):
        """Return the SUM over the N samples of the per-sample metric (a Python float)."""
        raise NotImplementedError

    # ---- optimizer steps over flat buffers (all update p and state in place) --
    def sgd_update(self, p, g, velocity, *, lr, momentum=0.0, nesterov=False, decay=0.0):
        """Keras SGD: v = momentum v - lr g; p += v (or momentum v - lr g with nesterov).

        ``velocity`` may be None when momentum is 0. ``decay`` = lr * weight_decay
        is applied first: p -= decay * p (every update method does this).
        """
        raise NotImplementedError

    def adam_update(self, p, g, m, v, *, lr_t, beta1, beta2, eps, decay=0.0, vhat=None):
        """Keras Adam with lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) from the caller.

        m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2); with ``vhat`` (amsgrad)
        vhat = max(vhat, v) is used in place of v; p -= lr_t m / (sqrt(v) + eps).
        """
        raise NotImplementedError

    def rmsprop_update(self, p, g, ms, *, lr, rho, eps, momentum=0.0, mom=None, mg=None,
                       decay=0.0):
        """Keras RMSprop: ms = rho ms + (1-rho) g^2; centered (``mg`` given) uses
        ms - mg^2 after mg = rho mg + (1-rho) g; step = lr g / sqrt(denom + eps);
        with ``mom`` (momentum > 0): mom = momentum mom + step; p -= mom, else p -= step.
        """
        raise NotImplementedError

    def adagrad_update(self, p, g, acc, *, lr, eps, decay=0.0):
        """Keras Adagrad: acc += g^2; p -= lr g / sqrt(acc + eps)."""
        raise NotImplementedError

    def nadam_update(self, p, g, m, v, *, lr, beta1, beta2, coef_m, coef_g, v_correction, eps,
                     decay=0.0):
        """Keras Nadam with its momentum schedule folded in by the caller.

        m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2);
        p -= (coef_m m + coef_g g) lr / (sqrt(v / v_correction) + eps), where
        u_t = beta1 (1 - 0.5 * 0.96^t), coef_m = u_{t+1} / (1 - u_1...u_{t+1}),
        coef_g = (1 - u_t) / (1 - u_1...u_t) and v_correction = 1 - beta2^t.
        """
        raise NotImplementedError

    def adamax_update(self, p, g, m, u, *, lr, beta1, beta2, m_correction, eps, decay=0.0):
        """Keras Adamax: m += (g - m)(1 - beta1); u = max(beta2 u, |g|);
        p -= lr m / (m_correction (u + eps)) with m_correction = 1 - beta1^t."""
        raise NotImplementedError

    def lion_update(self, p, g, m, *, lr, beta1, beta2, decay=0.0):
        """Keras Lion: p -= lr sign(beta1 m + (1 - beta1) g) (sign(0) = 0);
        then m = beta2 m + (1 - beta2) g."""
        raise NotImplementedError

    # ---- reductions and element-wise helpers --------------------------------
    def sum_squares(self, x):
        """Return sum(x**2) as a Python float, accumulated in float64, deterministic."""
        raise NotImplementedError

    def scale_(self, x, s):
        """x *= s in place; returns x."""
        raise NotImplementedError

    def clip_(self, x, lo, hi):
        """Clip x to [lo, hi] in place; returns x."""
        raise NotImplementedError

    def all_finite(self, x):
        """True when x holds no NaN or inf."""
        raise NotImplementedError

    # ---- weight regularizers -------------------------------------------------
    def regularize_(self, grad, param, l1, l2):
        """Return Keras' penalty ``l1 sum|param| + l2 sum param^2`` (a Python float,
        accumulated in float64, deterministic) and, unless ``grad`` is None, add
        its gradient ``l1 sign(param) + 2 l2 param`` to ``grad`` in place.

        ``grad`` has param's shape and dtype; l1, l2 are finite and >= 0.
        """
        raise NotImplementedError

    # ---- dropout --------------------------------------------------------------
    # The mask is counter-based (see dropout_keep): element i's fate depends on
    # (seed, i) alone, so both backends and any thread count draw the same one.
    def dropout_mask(self, seed, rate, mask_out):
        """Fill ``mask_out`` (uint8, any shape, C-contiguous) with 1 where flat
        element i is kept for ``seed``, 0 where it is dropped; returns it."""
        raise NotImplementedError

    def dropout_forward(self, x, seed, rate, out=None, mask_out=None):
        """Inverted dropout: ``out = where(keep, x / (1 - rate), 0)`` (as x * scale,
        scale = dropout_scale(rate) in x's dtype), keep = the mask of ``seed`` over
        x's flat indices, written to ``mask_out`` (uint8, x's shape) when given.
        ``seed`` is an int in [0, 2**64); ``rate`` in [0, 1). ``out`` may be ``x``."""
        raise NotImplementedError

    def dropout_backward(self, dy, mask, rate, out=None):
        """Return ``where(mask, dy * scale, 0)`` for a uint8 ``mask`` of dy's shape.

        The same product applies a given (e.g. broadcast) mask in a forward pass.
        ``out`` may be ``dy``."""
        raise NotImplementedError

    # ---- batch normalization -------------------------------------------------
    # x is (M, C): every axis but the channels flattened into rows. Statistics
    # are summed in float64 over fixed row chunks (bitwise for any thread count).
    def batchnorm_stats(self, x, mean_out, var_out):
        """Write the per-channel batch mean and biased variance of x (M, C), M >= 1,
        into ``mean_out`` and ``var_out`` (C,) (OVERWRITTEN)."""
        raise NotImplementedError

    def batchnorm_update_moving_(self, moving_mean, moving_var, mean, var, momentum):
        """Keras' update, in place: moving = moving * momentum + batch * (1 - momentum)
        for the mean and the (biased) variance, computed in float64."""
        raise NotImplementedError

    def batchnorm_forward(self, x, mean, var, gamma, beta, *, epsilon, out=None):
        """Return ``(x - mean) * k + beta`` with ``k = gamma / sqrt(var + epsilon)`` per
        channel (k in float64, rounded to x's dtype); gamma/beta None mean 1/0."""
        raise NotImplementedError

    def batchnorm_backward(self, dy, x, mean, var, gamma, *, epsilon, batch_stats,
                           dgamma_out=None, dbeta_out=None, dx_out=None):
        """Backward of batchnorm_forward. Writes (OVERWRITES) ``dbeta_out`` = sum dy and
        ``dgamma_out`` = sum dy (x - mean) / sqrt(var + epsilon) when given. Returns
        dx in ``dx_out`` (or a new array; None when ``dx_out is False``): through the
        batch statistics (mean and var computed from x) when ``batch_stats``, else
        through fixed statistics, ``dy * gamma / sqrt(var + epsilon)``."""
        raise NotImplementedError

    # ---- layer / RMS normalization over the last axis -------------------------
    # x is (M, C): M rows of C features, each row normalised on its own (Keras'
    # LayerNormalization and RMSNormalization reshape their input to this).
    # Row statistics are taken in float64 (compiled: one pass, shifted by the
    # row's first element, so a large offset does not cancel the variance),
    # then rounded to x's dtype; the element-wise steps run in x's dtype with
    # those rounded statistics, the forward and the backward alike.
    def layer_norm(self, x, gamma, beta, *, epsilon, rms=False, out=None, mean_out=None,
                   rstd_out=None):
        """Return ``(x - mean) * rstd * gamma + beta`` row by row (Keras 3's
        LayerNormalization): mean and the biased variance var of each row of x
        (M, C), ``rstd = 1 / sqrt(var + epsilon)``. With ``rms``, Keras 3's RMS
        normalization: ``x * rstd * gamma`` with ``rstd = 1 / sqrt(mean(x**2) +
        epsilon)``; beta must then be None.

        x float32 or float64, C >= 1; gamma, beta (C,) of x's dtype, or None
        (Keras' scale=False / center=False); epsilon >= 0. ``out`` (M, C), when
        given, receives the result and may be x itself. ``mean_out`` and
        ``rstd_out`` (M,) of x's dtype, when given, receive each row's mean and
        rstd (OVERWRITTEN), what ``layer_norm_backward`` takes; with ``rms`` the
        mean is 0 and ``mean_out`` is filled with zeros. They must share no
        memory with x, out or each other.
        """
        raise NotImplementedError

    def layer_norm_backward(self, dy, x, mean, rstd, gamma, *, rms=False, has_beta=True,
                            dx_out=None, dgamma_out=None, dbeta_out=None):
        """Gradients of ``y = layer_norm(x, gamma, beta, rms=rms)`` from dy (M, C),
        the forward's input x and its ``mean`` and ``rstd`` (M,) (``mean`` is
        unused, and may be None, with ``rms``). Returns ``(dx, dgamma, dbeta)``:

        - dx (M, C), the exact gradient through the row statistics, in ``dx_out``
          (which may be dy or x itself) or a new array; None when ``dx_out is
          False``;
        - dgamma (C,) = sum over rows of ``dy * xhat``, xhat = (x - mean) * rstd
          (x * rstd with ``rms``), in ``dgamma_out`` (OVERWRITTEN) or a new
          array; None when gamma is None (``dgamma_out`` must then be None);
        - dbeta (C,) = sum over rows of dy, in ``dbeta_out`` (OVERWRITTEN) or a
          new array; None when not ``has_beta`` (``dbeta_out`` must then be
          None). ``rms`` requires ``has_beta=False``.

        The output buffers share no memory with the inputs or each other (but
        for dx_out being dy or x). Column sums are bitwise the same for any
        thread count.
        """
        raise NotImplementedError

    # ---- convolution (NHWC) ---------------------------------------------------
    # Shapes: x (N, H, W, C), w (KH, KW, C, F) (Keras' kernel layout), y (N, OH, OW, F).
    # strides (sh, sw) and dilation (dh, dw) are ints >= 1; padding is "valid" or
    # "same" (Keras/TF: see conv2d_padding). conv2d_output_shape gives (OH, OW).
    def conv2d_forward(self, x, w, b, *, strides, padding, dilation, activation, out=None,
                       preact_out=None, cols=None):
        """Return ``y = act(conv(x, w) + b)``: x (N,H,W,C), w (KH,KW,C,F), b (F,) or None.

        y[n, i, j, f] = sum over (p, q, c) of x[n, i*sh + p*dh - top, j*sw + q*dw - left, c]
        * w[p, q, c, f] (zero outside x) + b[f]; (OH, OW) = conv2d_output_shape(...).
        ``preact_out`` (N,OH,OW,F), when given, receives conv + b (as dense_forward);
        it must be given when the activation needs the pre-activation or is softmax.
        ``cols``: optional 1-D float scratch of x's dtype with at least
        ``conv2d_scratch_size(...)`` elements, reused across calls (a kernel that
        needs more allocates its own).
        """
        raise NotImplementedError

    def conv2d_scratch_size(self, x, w, *, strides, padding, dilation):
        """Elements of the ``cols`` scratch this backend's conv2d_forward and
        conv2d_backward use for these operands (0: none)."""
        raise NotImplementedError

    def conv2d_backward(self, dy, x, w, y, preact, *, strides, padding, dilation, activation,
                        dw_out, db_out, dx_out=None, scratch=None, cols=None):
        """Backward of conv2d_forward.

        dz = dy * act'(preact or y) (``scratch`` (N,OH,OW,F), optional, receives it
        unless the activation is linear, as in dense_backward);
        ``dw_out`` (KH,KW,C,F) and ``db_out`` (F,) (None when the layer has no bias)
        are OVERWRITTEN. Returns dx (N,H,W,C) in ``dx_out`` when given or a new
        array; returns None when ``dx_out is False`` (first layer). ``cols`` as in
        conv2d_forward.
        """
        raise NotImplementedError

    # ---- pooling (NHWC) --------------------------------------------------------
    # pool_size (ph, pw) and strides (sh, sw) are ints >= 1; padding "valid" |
    # "same" with conv2d_padding's split (dilation 1). Output (N, OH, OW, C) with
    # (OH, OW) = conv2d_output_shape((H, W), pool_size, strides, padding, (1, 1)).
    def max_pool2d_forward(self, x, *, pool_size, strides, padding, out=None, argmax_out=None):
        """Return y (N,OH,OW,C), each window's maximum of x (N,H,W,C).

        ``argmax_out`` (N,OH,OW,C) int64, when given, receives the index (h * W + w,
        in x's H*W plane) of each window's maximum, the first one in row-major
        window order on ties. Padded positions never win ("same" pads with -inf,
        as TF); NaN propagates (a NaN is the maximum of its window).
        """
        raise NotImplementedError

    def max_pool2d_backward(self, dy, argmax, *, input_shape, out=None):
        """Return dx of ``input_shape`` (N,H,W,C): zeros, plus each dy[n,i,j,c]
        added at (n, argmax[n,i,j,c], c) (windows that overlap add up)."""
        raise NotImplementedError

    def avg_pool2d_forward(self, x, *, pool_size, strides, padding, out=None):
        """Return y (N,OH,OW,C), each window's mean; with "same" padding the sum
        is divided by the count of non-padded elements in the window (TF/Keras)."""
        raise NotImplementedError

    def avg_pool2d_backward(self, dy, *, input_shape, pool_size, strides, padding, out=None):
        """Return dx of ``input_shape`` (N,H,W,C): each dy spread evenly over the
        non-padded elements of its window (1 / count each)."""
        raise NotImplementedError

    # ---- recurrent layers (whole sequences) ------------------------------------
    # Shapes: x (N, T, I); kernel (I, G*U); recurrent_kernel (U, G*U); G =
    # RNN_GATES[cell]; Keras' weight layouts and gate orders (LSTM i,f,c,o; GRU z,r,h).
    def rnn_cache_shape(self, cell, n, t, units):
        """Shape (a tuple) of the float cache ``rnn_forward`` fills for ``rnn_backward``
        for a batch of n sequences of t steps and ``units`` units. Its contents are
        private to the backend; it has x's dtype."""
        raise NotImplementedError

    def rnn_forward(self, cell, x, kernel, recurrent_kernel, bias, *, activation,
                    recurrent_activation, go_backwards=False, mask=None, hs_out=None,
                    cache_out=None):
        """Run ``cell`` (one of RNN_CELLS) over every step of x (N, T, I); return hs (N, T, U).

        bias: simple_rnn (U,), lstm (4U,), gru (2, 3U) = [input bias; recurrent bias]
        (Keras reset_after=True); None when the layer has no bias. The initial state
        is zeros. Steps are processed in order t = 0..T-1, or T-1..0 with
        ``go_backwards``; hs[:, k] is the hidden state after the k-th PROCESSED step
        (Keras' return_sequences output, reversed in time when go_backwards).
        ``mask`` (N, T) uint8/bool or None, indexed by the ORIGINAL time axis: where
        0, the step keeps the previous state (h and, for LSTM, c) and its output is
        the previous output (Keras).
          simple_rnn: h = act(x W + h U + b)
          lstm: z = x W + h U + b; i = ra(z_i), f = ra(z_f), g = act(z_c), o = ra(z_o);
                c = f*c + i*g; h = o*act(c)
          gru (reset_after): xz, xr, xh = x W + b_in; rz, rr, rh = h U + b_rec;
                z = ra(xz + rz); r = ra(xr + rr); hh = act(xh + r*rh);
                h = z*h_prev + (1 - z)*hh
        act = ``activation`` (Keras' default tanh), ra = ``recurrent_activation``
        (default sigmoid): element-wise activation names, not softmax. ``cache_out``,
        when given, is an array of ``rnn_cache_shape(...)`` filled for backward.
        """
        raise NotImplementedError

    def rnn_backward(self, cell, dhs, x, kernel, recurrent_kernel, bias, hs, cache, *,
                     activation, recurrent_activation, go_backwards=False, mask=None,
                     dkernel_out, drecurrent_out, dbias_out, dx_out=None):
        """Back-propagation through time of ``rnn_forward`` (same arguments).

        dhs (N, T, U) is dLoss/dhs (zeros but the last processed step when the layer
        returns only the last state); hs and cache are what forward returned and
        filled. ``dkernel_out`` (I, G*U), ``drecurrent_out`` (U, G*U) and ``dbias_out``
        (bias's shape, or None) are OVERWRITTEN. Returns dx (N, T, I) in ``dx_out``
        or a new array; None when ``dx_out is False``.
        """
        raise NotImplementedError

    # ---- embedding ---------------------------------------------------------------
    def embedding_forward(self, indices, table, out=None):
        """Return y (N, T, D) with y[n, t] = table[indices[n, t]] for indices (N, T)
        int64 in [0, V) and table (V, D) (ValueError before any access otherwise)."""
        raise NotImplementedError

    def embedding_backward(self, dy, indices, dtable_out):
        """OVERWRITE ``dtable_out`` (V, D) with the scatter-add of dy (N, T, D) rows:
        dtable[v] = sum of dy[n, t] over indices[n, t] == v, summed in (n, t) order
        (deterministic whatever the thread count); returns it."""
        raise NotImplementedError

    # ---- broadcast element-wise ops, concatenation, batched matmul -------------
    # Merge layers (Add, Multiply, Concatenate, Dot, ...), the graph's gradient
    # sums and fastnn.ops' primitives. float32 or float64, NumPy's broadcasting;
    # NaN and inf propagate unchecked.
    def binary(self, op, a, b, out=None):
        """Return ``a <op> b`` (``op`` one of BINARY_OPS) with NumPy's broadcasting rules.

        ``a`` and ``b`` are float32 or float64 arrays of one dtype (any rank, 0-d
        included). ``out`` (the broadcast shape, the same dtype, C-contiguous,
        writable) may be ``a`` or ``b`` itself when that operand already has the
        output's shape (in place); it may not otherwise share memory with them.
        maximum / minimum return NaN where either operand is NaN (np.maximum's rule);
        power is ``a ** b`` (0 ** 0 = 1, a negative a to a non-integer b is NaN).
        """
        raise NotImplementedError

    def binary_backward(self, op, dy, a, b, da_out=None, db_out=None):
        """The gradients of ``y = a <op> b`` given dy (y's shape): returns (da, db).

        Each is summed over the axes broadcasting added or stretched, so each has
        its operand's shape (deterministic, fixed order). ``da_out``/``db_out``: an
        array of the operand's shape and dtype to write into (OVERWRITTEN; sharing
        no memory with dy, a, b or each other), None to allocate, or False to skip
        that gradient (None is returned in its place). add: dy, dy; subtract: dy,
        -dy; multiply: dy * b, dy * a; divide: da = dy / b, db = -dy * a / b**2.
        maximum: a gets dy where a >= b, b where a < b; minimum: a gets dy where
        a <= b, b where a > b (TensorFlow's rule, which Keras on TF follows, for
        ties; where the comparison is NaN, b gets dy, as TF's does). power:
        da = dy * b * a ** (b - 1); db = dy * a ** b * log(a) where a > 0, else 0
        (TensorFlow's rule).
        """
        raise NotImplementedError

    def sum_to_shape(self, x, shape, out=None):
        """Sum x over the axes broadcasting from ``shape`` to x.shape added (leading)
        or stretched (size 1 in ``shape``): the backward of broadcasting.

        ``shape`` (a tuple of ints) must broadcast to x.shape. Returns an array of
        ``shape`` (x itself, or a copy into out, when shape == x.shape). Sums are
        accumulated in float64 and deterministic.
        """
        raise NotImplementedError

    def concatenate(self, xs, axis, out=None):
        """Concatenate the arrays ``xs`` (a non-empty list or tuple; one float dtype,
        equal shapes but along ``axis``, at least 1-D) along ``axis`` (negative
        counts from the end). Returns a C-contiguous array (``out`` when given,
        which must share no memory with ``xs``)."""
        raise NotImplementedError

    def split(self, x, sizes, axis, outs=None):
        """The backward of concatenate: x cut along ``axis`` into C-contiguous pieces
        of ``sizes`` (non-negative ints summing to x.shape[axis]). ``outs``, when
        given, has one entry per piece: an array of the piece's shape to write into,
        None to allocate, or False to skip that piece (None in its place). Returns
        the list; the pieces never share memory with x."""
        raise NotImplementedError

    def batch_matmul(self, a, b, *, transpose_a=False, transpose_b=False, out=None):
        """``op(a[i]) @ op(b[i])`` for every i: a (B, M, K) (or (B, K, M) with
        transpose_a), b (B, K, N) (or (B, N, K) with transpose_b) -> (B, M, N);
        float32 or float64 of one dtype; bitwise identical for any thread count.
        ``out`` (B, M, N), when given, must share no memory with a or b."""
        raise NotImplementedError

    # ---- L2 normalization (Dot(normalize=True)) --------------------------------------
    def l2_normalize(self, x, axis, out=None):
        """Keras' ``ops.normalize(x, axis)``: ``x * rsqrt(max(sum(x**2, axis), 1e-14))``
        (the sum kept as an axis; 1e-14 is Keras' epsilon 1e-7 squared, so a zero
        vector stays finite). x float32 or float64; ``out`` x's shape and dtype."""
        raise NotImplementedError

    def l2_normalize_backward(self, dy, x, axis, out=None):
        """The gradient of l2_normalize for dy (x's shape): with r the rsqrt above,
        ``r * (dy - y * sum(dy * y, axis))`` where the squared norm exceeds 1e-14,
        ``r * dy`` where it is clamped."""
        raise NotImplementedError


    # ---- fastnn.ops' primitives: unary, comparisons, select, reductions, softmax --
    # keras.ops names. float32 or float64 (comparisons and arg_reduce: int64 too);
    # NaN and inf propagate unchecked (and without NumPy's warnings). An ``out``
    # may be one of the method's inputs itself where its docstring says so; it
    # may never otherwise share memory with them.
    def unary(self, op, x, out=None):
        """Return ``op(x)`` element-wise (``op`` one of UNARY_OPS) for a float32 or
        float64 array of any shape (0-d included). ``out`` (x's shape and dtype,
        C-contiguous) may be x itself. NumPy's values: sign(0) = 0, sign(NaN) =
        NaN; log / sqrt of a negative are NaN, log(0) = -inf.
        """
        raise NotImplementedError

    def unary_backward(self, op, dy, x, y, out=None):
        """dx = dy * op'(x), given the input x and the output y = unary(op, x)
        (both passed, of dy's shape and dtype; each op reads one of them).
        negative: -dy; abs: dy * sign(x), so abs'(0) = 0; sign: 0 (TensorFlow's
        rules); square: dy * (2 * x); sqrt: (dy * 0.5) / y; exp: dy * y; log:
        dy / x; log1p: dy / (1 + x); reciprocal: dy * -(y * y). ``out`` may be
        dy, x or y itself.
        """
        raise NotImplementedError

    def compare(self, op, a, b, out=None):
        """Element-wise ``a <op> b`` (``op`` one of COMPARE_OPS) with NumPy's
        broadcasting; a and b float32, float64 or int64 of one dtype. Returns a
        bool array (np.bool_) of the broadcast shape (``out`` when given). IEEE:
        a comparison with NaN is False, but not_equal's, which is True.
        """
        raise NotImplementedError

    def where(self, condition, a, b, out=None):
        """``condition ? a : b`` with NumPy's broadcasting of all three: condition
        a bool array, a and b float32 or float64 of one dtype. ``out`` (the
        broadcast shape) may be a or b itself when that operand has the output's
        shape. Its backward, where(condition, dy, 0) and where(condition, 0, dy)
        each summed to its operand's shape (sum_to_shape), is composed by the
        caller; a 0-d zero operand costs nothing extra.
        """
        raise NotImplementedError

    def reduce(self, op, x, axes=None, keepdims=False, out=None):
        """Reduce x over ``axes`` as NumPy's x.sum / mean / max / min (``op`` one of
        REDUCE_OPS). ``axes``: None (all), an int or a tuple of ints, negative
        counted from the end, repeats an error. Returns an array (0-d for a full
        reduction) of x's shape without the reduced axes, or with them as 1 when
        ``keepdims``. float32 / float64; sums (and means) accumulate in float64,
        bitwise identical for any thread count (each result is reduced in a
        fixed order by one thread). The mean of nothing is NaN, the sum 0; max /
        min over an axis of length 0 is a ValueError (NumPy's); NaN propagates.
        """
        raise NotImplementedError

    def reduce_backward(self, op, dy, x, y, axes=None, keepdims=False, out=None):
        """The gradient of ``y = reduce(op, x, axes, keepdims)`` given dy (y's
        shape), as an array of x's shape: sum -> dy broadcast back; mean -> that
        divided by the number of elements reduced into each result; max / min ->
        dy / n where x equals the result (n such elements in its reduction:
        TensorFlow's rule for ties), 0 elsewhere (0 everywhere in a reduction
        whose result is NaN). y is read by max and min only (it may be None for
        sum and mean). ``out`` must not share memory with dy, x or y.
        """
        raise NotImplementedError

    def arg_reduce(self, op, x, axis, keepdims=False, out=None):
        """``op`` "argmax" / "argmin" (ARG_REDUCE_OPS) of x along the int ``axis``
        (None: of the flattened array; with ``keepdims`` every axis is then kept
        as 1): int64 indices of the first occurrence of the extreme (a NaN is
        the extreme: NumPy's rule). x float32, float64 or int64; an empty axis
        (or an empty x with axis None) is a ValueError.
        """
        raise NotImplementedError

    def cumsum(self, x, axis, out=None):
        """NumPy's cumsum of x (float32 / float64) along the int ``axis``,
        accumulated in float64 and rounded to x's dtype (deterministic). ``out``
        may be x itself. Its backward, the reversed cumsum of dy, is composed by
        the caller (e.g. cumsum(dy[::-1])[::-1] along the axis).
        """
        raise NotImplementedError

    def softmax(self, x, axis=-1, out=None):
        """Softmax of x (float32 / float64, at least 1-D) along the int ``axis``:
        ``e / sum(e, axis)``, e = exp(x - max(x, axis)) (stable), the sum in
        float64. ``out`` may be x itself.
        """
        raise NotImplementedError

    def softmax_backward(self, dy, y, axis=-1, out=None):
        """dx = y * (dy - sum(dy * y, axis)) from the softmax's output y (the sum in
        float64). ``out`` may be dy or y itself.
        """
        raise NotImplementedError

    def log_softmax(self, x, axis=-1, out=None):
        """Log-softmax of x along ``axis``: ``(x - m) - log(sum(exp(x - m), axis))``,
        m = max(x, axis), the sum in float64. ``out`` may be x itself.
        """
        raise NotImplementedError

    def log_softmax_backward(self, dy, y, axis=-1, out=None):
        """dx = dy - exp(y) * sum(dy, axis) from the log-softmax's output y (the sum
        in float64). ``out`` may be dy or y itself.
        """
        raise NotImplementedError

    # ---- fused scaled dot-product attention (Keras MultiHeadAttention's core) ------
    # Layout is Keras's after the projections: q (N, Tq, H, D), k (N, Tk, H, D),
    # v (N, Tk, H, Dv), out (N, Tq, H, Dv). Each of these (and dout, dq/dk/dv)
    # must have its inner (T, H, *) axes C-contiguous; its batch stride may be
    # larger (a view cache[:, :t] of a preallocated (N, Tmax, H, D) cache).
    def attention(self, q, k, v, *, scale, causal=False, query_mask=None, key_mask=None,
                  attention_mask=None, dropout_rate=0.0, seed=0, out=None, lse_out=None,
                  probs_out=None):
        """Return ``out`` (N, Tq, H, Dv): Keras 3's ``_compute_attention``.

        s[n,h,i,j] = scale * sum_d q[n,i,h,d] k[n,j,h,d] (in q's dtype, with q
        scaled first, as Keras does). A score is allowed when query_mask[n,i]
        (N, Tq), key_mask[n,j] (N, Tk), attention_mask[n,i,j] (N, Tq, Tk) --
        bool or uint8, nonzero = allowed, None = all -- and, with ``causal``,
        j <= i (Keras's ``tril(ones(Tq, Tk))``, top-left aligned) all hold.
        Disallowed scores get ATTENTION_MASK_VALUE (-1e9) added in q's dtype
        (Keras's ``_masked_softmax``: a fully masked row is not NaN; in float32
        it is uniform). p = softmax over j; with ``dropout_rate`` > 0, p' = p *
        keep / (1 - rate), keep the dropout hash of the flat index
        ((n*H + h)*Tq + i)*Tk + j with ``seed`` (exactly ``dropout_mask(seed,
        rate, mask of shape (N, H, Tq, Tk))``). out[n,i,h,:] = sum_j p' v[n,j,h,:].

        ``lse_out`` (N, H, Tq), q's dtype: each row's log-sum-exp of the masked
        scores, which the backward needs. ``probs_out`` (N, H, Tq, Tk): p before
        dropout (Keras's ``return_attention_scores``); only then does a call
        use memory of order Tq * Tk. Arrays float32 or float64, one dtype.
        """
        raise NotImplementedError

    def attention_backward(self, dout, q, k, v, out, lse, *, scale, causal=False,
                           query_mask=None, key_mask=None, attention_mask=None,
                           dropout_rate=0.0, seed=0, dprobs=None, dq_out=None, dk_out=None,
                           dv_out=None):
        """Return (dq, dk, dv), the gradients of ``attention`` (shapes of q, k, v;
        OVERWRITTEN when given) for dout (out's shape), given the forward's
        ``out`` and ``lse``. Scale, masks and dropout exactly as the forward.
        ``dprobs`` (N, H, Tq, Tk), optional: an extra upstream gradient on the
        returned probabilities p (before dropout).
        """
        raise NotImplementedError

    def attention_scratch_bytes(self, n, tq, tk, h, d, dv, dtype, *, backward):
        """Bytes of working memory one ``attention`` (``backward``: one
        ``attention_backward``) call of these sizes allocates besides its inputs
        and outputs. The compiled kernels' is O((Tq + Tk) * (D + Dv)) per (n, h)
        in flight, never O(Tq * Tk)."""
        raise NotImplementedError


RNN_CELLS = ("simple_rnn", "lstm", "gru")
RNN_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}    # G: kernel columns per unit


def check_rnn_args(cell, x, kernel, recurrent_kernel, bias, mask, where):
    """Validate rnn_forward/backward operands; return (N, T, I, U, G).

    ValueError names the operand and the shapes involved (x must be (N, T, I)
    with T >= 1; kernel (I, G*U); recurrent_kernel (U, G*U); bias as documented
    in Ops.rnn_forward or None; mask (N, T) or None).
    """
    if cell not in RNN_CELLS:
        raise ValueError(f"{where}: cell must be one of {RNN_CELLS}, got {cell!r}")
    g = RNN_GATES[cell]
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(f"{where}: x must be a 3-D (batch, time, features) array, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: x must be float32 or float64, got {x.dtype}")
    n, t, i = x.shape
    if t < 1:
        raise ValueError(f"{where}: sequences must have at least one step, got x {x.shape}")
    if not isinstance(recurrent_kernel, np.ndarray) or recurrent_kernel.ndim != 2 \
            or recurrent_kernel.shape[1] != g * recurrent_kernel.shape[0]:
        raise ValueError(f"{where}: recurrent_kernel must be (U, {g}*U) for {cell}, got "
                         f"{getattr(recurrent_kernel, 'shape', type(recurrent_kernel).__name__)}")
    u = recurrent_kernel.shape[0]
    if not isinstance(kernel, np.ndarray) or kernel.shape != (i, g * u):
        raise ValueError(f"{where}: kernel must have shape {(i, g * u)} for x {x.shape} and "
                         f"{u} units, got {getattr(kernel, 'shape', type(kernel).__name__)}")
    bias_shape = (2, 3 * u) if cell == "gru" else (g * u,)
    if bias is not None and (not isinstance(bias, np.ndarray) or bias.shape != bias_shape):
        raise ValueError(f"{where}: bias must have shape {bias_shape} for {cell} with {u} "
                         f"units, got {getattr(bias, 'shape', type(bias).__name__)}")
    for name, arr in (("kernel", kernel), ("recurrent_kernel", recurrent_kernel), ("bias", bias)):
        if arr is not None and arr.dtype != x.dtype:
            raise TypeError(f"{where}: {name} must be {x.dtype} like x, got {arr.dtype}")
    if mask is not None and (not isinstance(mask, np.ndarray) or mask.shape != (n, t)
                             or mask.dtype not in (np.uint8, np.bool_)):
        raise ValueError(f"{where}: mask must be a uint8 or bool array of shape {(n, t)} for "
                         f"x {x.shape}, got {getattr(mask, 'dtype', type(mask).__name__)} "
                         f"{getattr(mask, 'shape', '')}")
    return n, t, i, u, g


def check_embedding_indices(indices, vocab, where):
    """Validate embedding indices: an integer array with every value in [0, vocab).

    Returns them as C-contiguous int64. ValueError (never an out-of-bounds read)
    for a float or bool array, a negative index or one >= vocab.
    """
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise ValueError(f"{where}: indices must be an integer array, got "
                         f"{getattr(indices, 'dtype', type(indices).__name__)}")
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"{where}: indices {indices.shape} must lie in [0, {vocab}) "
                             f"for a table of {vocab} rows, got values in [{lo}, {hi}]")
    return np.ascontiguousarray(indices, dtype=np.int64)


DROPOUT_GOLDEN = 0x9E3779B97F4A7C15    # splitmix64's increment
MASK64 = (1 << 64) - 1


def mix64(z):
    """splitmix64's finaliser on a Python int (mod 2**64); csrc/dropout.c's mix64."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def check_dropout_args(seed, rate, where):
    """Validate a dropout seed (int in [0, 2**64)) and rate (in [0, 1)); return both."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MASK64:
        raise ValueError(f"{where}: seed must be an integer in [0, 2**64), got {seed!r}")
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{where}: rate must be in [0, 1), got {rate}")
    return int(seed), rate


def dropout_threshold(rate):
    """Elements whose 53-bit hash is below this are dropped: floor(rate * 2**53)."""
    return int(rate * 2.0 ** 53)


def dropout_scale(rate):
    """The factor kept elements are multiplied by: 1 / (1 - rate), in float64."""
    return 1.0 / (1.0 - rate)


def check_batchnorm_args(x, vectors, where):
    """Validate x (M, C) of float dtype and per-channel vectors {name: array or None}."""
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"{where}: x must be a 2-D (rows, channels) array, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: x must be float32 or float64, got {x.dtype}")
    channels = x.shape[1]
    for name, v in vectors.items():
        if v is None:
            continue
        if not isinstance(v, np.ndarray) or v.shape != (channels,) or v.dtype != x.dtype:
            raise ValueError(f"{where}: {name} must be a {x.dtype} array of shape "
                             f"{(channels,)} for x {x.shape}, got "
                             f"{getattr(v, 'dtype', '')} {getattr(v, 'shape', type(v).__name__)}")
    return channels


def _check_ln_vector(v, name, n, dtype, where, *, out=False):
    """v must be None or a (n,) array of ``dtype`` (C-contiguous and writable when
    ``out``); ValueError naming it otherwise."""
    if v is None:
        return
    if not isinstance(v, np.ndarray) or v.shape != (n,) or v.dtype != dtype:
        raise ValueError(f"{where}: {name} must be None or a {dtype} array of shape {(n,)}, "
                         f"got {getattr(v, 'dtype', type(v).__name__)} "
                         f"{getattr(v, 'shape', '')}".rstrip())
    if out and (not v.flags.c_contiguous or not v.flags.writeable):
        raise ValueError(f"{where}: {name} must be C-contiguous and writable")


def _check_ln_x(x, name, where):
    """x must be a float32 / float64 array of shape (M, C), C >= 1 (ValueError)."""
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"{where}: {name} must be a 2-D (rows, features) array, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{where}: {name} must be float32 or float64, got {x.dtype}")
    if x.shape[1] < 1:
        raise ValueError(f"{where}: {name} {x.shape} has no features to normalise")


def _check_ln_disjoint(outputs, inputs, where, allowed=()):
    """No output ({name: array or None}) shares memory with another output or an
    input, except the (output, input) pairs in ``allowed`` when the output is
    that input itself. Inputs may share memory with each other."""
    outs = [(k, v) for k, v in outputs.items() if isinstance(v, np.ndarray)]
    ins = [(k, v) for k, v in inputs.items() if isinstance(v, np.ndarray)]
    for i, (na, a) in enumerate(outs):
        for nb, b in outs[i + 1:] + ins:
            if not np.may_share_memory(a, b):
                continue
            if (na, nb) in allowed:
                if _is_alias(a, b):
                    continue
                raise ValueError(f"{where}: {na} {a.shape} shares memory with {nb} "
                                 f"{b.shape} without being that array itself")
            raise ValueError(f"{where}: {na} {a.shape} must not share memory with {nb} "
                             f"{b.shape}")


def check_layer_norm_args(x, gamma, beta, epsilon, rms, out, mean_out, rstd_out):
    """Validate Ops.layer_norm's arguments (ValueError naming the argument);
    return (M, C)."""
    where = "rms_norm" if rms else "layer_norm"
    _check_ln_x(x, "x", where)
    m, c = x.shape
    if rms and beta is not None:
        raise ValueError(f"{where}: RMS normalization has no beta (center); pass beta=None")
    _check_ln_vector(gamma, "gamma", c, x.dtype, where)
    _check_ln_vector(beta, "beta", c, x.dtype, where)
    if (isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating,
                                                              np.integer))
            or not 0 <= float(epsilon) < float("inf")):
        raise ValueError(f"{where}: epsilon must be a finite number >= 0, got {epsilon!r}")
    if out is not None:
        _check_array_out(out, "out", (m, c), x.dtype, where, f" like x {x.shape}")
    _check_ln_vector(mean_out, "mean_out", m, x.dtype, where, out=True)
    _check_ln_vector(rstd_out, "rstd_out", m, x.dtype, where, out=True)
    _check_ln_disjoint({"out": out, "mean_out": mean_out, "rstd_out": rstd_out},
                       {"x": x, "gamma": gamma, "beta": beta}, where, allowed=(("out", "x"),))
    return m, c


def check_layer_norm_backward_args(dy, x, mean, rstd, gamma, rms, has_beta, dx_out,
                                   dgamma_out, dbeta_out):
    """Validate Ops.layer_norm_backward's arguments (ValueError naming the
    argument); return (M, C)."""
    where = "rms_norm_backward" if rms else "layer_norm_backward"
    _check_ln_x(x, "x", where)
    m, c = x.shape
    if not isinstance(dy, np.ndarray) or dy.shape != x.shape or dy.dtype != x.dtype:
        raise ValueError(f"{where}: dy must be a {x.dtype} array of x's shape {x.shape}, got "
                         f"{getattr(dy, 'dtype', type(dy).__name__)} {getattr(dy, 'shape', '')}")
    if rms and has_beta:
        raise ValueError(f"{where}: RMS normalization has no beta; pass has_beta=False")
    if mean is None and not rms:
        raise ValueError(f"{where}: mean is required (the forward's mean_out)")
    if rstd is None:
        raise ValueError(f"{where}: rstd is required (the forward's rstd_out)")
    _check_ln_vector(mean, "mean", m, x.dtype, where)
    _check_ln_vector(rstd, "rstd", m, x.dtype, where)
    _check_ln_vector(gamma, "gamma", c, x.dtype, where)
    if gamma is None and dgamma_out is not None:
        raise ValueError(f"{where}: dgamma_out given but gamma is None (no scale)")
    if not has_beta and dbeta_out is not None:
        raise ValueError(f"{where}: dbeta_out given but has_beta is False (no center)")
    if dx_out is not None and dx_out is not False:
        _check_array_out(dx_out, "dx_out", (m, c), x.dtype, where, f" like x {x.shape}")
    _check_ln_vector(dgamma_out, "dgamma_out", c, x.dtype, where, out=True)
    _check_ln_vector(dbeta_out, "dbeta_out", c, x.dtype, where, out=True)
    _check_ln_disjoint({"dx_out": dx_out if dx_out is not False else None,
                        "dgamma_out": dgamma_out, "dbeta_out": dbeta_out},
                       {"dy": dy, "x": x, "mean": mean, "rstd": rstd, "gamma": gamma}, where,
                       allowed=(("dx_out", "dy"), ("dx_out", "x")))
    return m, c


def check_activation(name, *, allow_softmax=True, where=None):
    """Validate an activation name for a kernel; returns it."""
    if name is None:
        return "linear"
    if name not in ACTIVATIONS or (name == "softmax" and not allow_softmax):
        allowed = [a for a in ACTIVATIONS if allow_softmax or a != "softmax"]
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}unknown activation {name!r}; expected one of {allowed}")
    return name


def check_gemm_args(a, b, transpose_a, transpose_b, beta, bias, activation, out):
    """Validate fastnn.ops.gemm's arguments; return (m, n, k, dtype)."""
    for arg, label in ((a, "a"), (b, "b")):
        if not isinstance(arg, np.ndarray):
            raise TypeError(f"gemm: {label} must be a numpy array, got {type(arg).__name__}")
        if arg.ndim != 2:
            raise ValueError(f"gemm: {label} must be 2-D, got shape {arg.shape}")
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm: a and b must share a float32 or float64 dtype, got {a.dtype} and {b.dtype}")
    m, k = a.shape[::-1] if transpose_a else a.shape
    k2, n = b.shape[::-1] if transpose_b else b.shape
    if k != k2:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) is {(m, k)} and op(b) is {(k2, n)} "
            f"(a {a.shape}, transpose_a={transpose_a}; b {b.shape}, transpose_b={transpose_b})"
        )
    if bias is not None:
        if not isinstance(bias, np.ndarray) or bias.shape != (n,) or bias.dtype != a.dtype:
            raise ValueError(f"gemm: bias must be a {a.dtype} array of shape {(n,)}, got "
                             f"{getattr(bias, 'shape', type(bias).__name__)}")
    check_activation(activation, allow_softmax=False)
    if out is not None:
        check_out(out, (m, n), a.dtype, "gemm")
    elif beta != 0:
        raise ValueError("gemm: beta != 0 needs out= (the matrix it scales and adds)")
    return m, n, k, a.dtype


def int_pair(value, what):
    """(a, b) of ints from an int or a 2-sequence of ints (ValueError naming ``what``)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}") from None
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    return int(a), int(b)


def conv2d_padding(size, kernel, stride, padding, dilation=1):
    """(before, after) zero padding along one axis of ``size`` (Keras/TF).

    "valid" pads nothing. "same" pads max((ceil(size/stride) - 1) * stride +
    (kernel - 1) * dilation + 1 - size, 0) in total, top/left = total // 2, the
    extra row or column at the bottom/right.
    """
    if padding == "valid":
        return 0, 0
    if padding != "same":
        raise ValueError(f'padding must be "valid" or "same", got {padding!r}')
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv2d_output_shape(input_hw, kernel_hw, strides, padding, dilation=(1, 1)):
    """(OH, OW) of a convolution or pooling window over (H, W) (Keras' formulas).

    "valid": ceil((H - (KH - 1) * dh) / sh), which is < 1 when the (dilated)
    kernel is larger than the input; "same": ceil(H / sh). Each argument but
    padding is a pair (an int means the same value on both axes).
    """
    if padding not in ("valid", "same"):
        raise ValueError(f'padding must be "valid" or "same", got {padding!r}')
    dims = []
    for size, k, s, d in zip(int_pair(input_hw, "input size"), int_pair(kernel_hw, "kernel size"),
                             int_pair(strides, "strides"), int_pair(dilation, "dilation")):
        if k < 1 or s < 1 or d < 1:
            raise ValueError(f"kernel size, strides and dilation must be >= 1, got "
                             f"kernel {kernel_hw}, strides {strides}, dilation {dilation}")
        if padding == "same":
            dims.append(-(-size // s))
        else:
            dims.append(max(-(-(size - (k - 1) * d) // s), 0))
    return tuple(dims)


class WindowGeometry:
    """Where a convolution or pooling window goes over an NHWC input: the one
    geometry both backends use (Keras' output sizes, TF's "same" split).

    Fields: n, h, w, c (input), kh, kw (window), sh, sw (strides), dh, dw
    (dilation), oh, ow (output), top, bottom, left, right (zero padding).
    """

    def __init__(self, input_shape, window, strides, padding, dilation=(1, 1),
                 where="window"):
        if len(input_shape) != 4:
            raise ValueError(f"{where}: x must be 4-D (N, H, W, C), got shape "
                             f"{tuple(input_shape)}")
        self.n, self.h, self.w, self.c = (int(d) for d in input_shape)
        try:
            self.kh, self.kw = int_pair(window, "window size")
            self.sh, self.sw = int_pair(strides, "strides")
            self.dh, self.dw = int_pair(dilation, "dilation")
            self.oh, self.ow = conv2d_output_shape((self.h, self.w), (self.kh, self.kw),
                                                   (self.sh, self.sw), padding,
                                                   (self.dh, self.dw))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if self.oh < 1 or self.ow < 1 or self.h < 1 or self.w < 1:
            raise ValueError(f"{where}: window {(self.kh, self.kw)} (dilation "
                             f"{(self.dh, self.dw)}) does not fit the input "
                             f"{(self.h, self.w)} with {padding!r} padding")
        self.top, self.bottom = conv2d_padding(self.h, self.kh, self.sh, padding, self.dh)
        self.left, self.right = conv2d_padding(self.w, self.kw, self.sw, padding, self.dw)

    @property
    def output_shape(self):
        """(N, OH, OW, C): a pooling output (a convolution's has F for C)."""
        return (self.n, self.oh, self.ow, self.c)


def _check_vector(v, name, length, dtype, where, why=""):
    """v must be None or a (length,) array of dtype."""
    if v is not None and (not isinstance(v, np.ndarray) or v.shape != (length,)
                          or v.dtype != dtype):
        raise ValueError(f"{where}: {name} must be a {dtype} array of shape {(length,)}{why}, "
                         f"got {getattr(v, 'dtype', type(v).__name__)} "
                         f"{getattr(v, 'shape', '')}".rstrip())


def dense_stack_layer_by_layer(ops, x, kernels, biases, activations):
    """Ops.dense_stack as one dense_forward call per layer (the reference, and the
    compiled backend's path for float64 and for arguments its kernel refuses)."""
    if not len(kernels) == len(biases) == len(activations) >= 1:
        raise ValueError(f"dense_stack: one kernel, bias and activation per layer, got "
                         f"{len(kernels)}, {len(biases)} and {len(activations)}")
    for w, b, activation in zip(kernels, biases, activations):
        x = ops.dense_forward(x, w, b, activation)
    return x


def check_dense_args(x, w, b, activation, out, preact_out, where="dense_forward"):
    """Validate Ops.dense_forward's arguments; return the activation name."""
    activation = check_activation(activation, where=where)
    _check_float_array(x, "x", where, 2)
    _check_float_array(w, "w", where, 2, x.dtype)
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"{where}: x {x.shape} has {x.shape[1]} features but w {w.shape} "
                         f"expects {w.shape[0]} (x is (N, I), w is (I, O))")
    _check_vector(b, "b", w.shape[1], x.dtype, where, f" for w {w.shape}")
    shape = (x.shape[0], w.shape[1])
    for arr, name in ((out, "out"), (preact_out, "preact_out")):
        if arr is not None:
            _check_array_out(arr, name, shape, x.dtype, where, f" for x {x.shape} @ w {w.shape}")
    return activation


def check_loss_args(name, y_pred, y_true, sample_weight, grad_out, where="loss"):
    """Validate Ops.loss's arguments (sparse labels: integers, one per row)."""
    if name not in LOSSES:
        raise ValueError(f"{where}: unknown loss {name!r}; expected one of {list(LOSSES)}")
    _check_float_array(y_pred, "y_pred", where, 2)
    n = y_pred.shape[0]
    if n == 0 or y_pred.shape[1] == 0:
        raise ValueError(f"{where} {name!r}: empty batch: y_pred has shape {y_pred.shape}")
    _check_targets(name == "sparse_categorical_crossentropy", y_pred, y_true, f"{where} {name!r}",
                   labels_in_range=True)
    if sample_weight is not None:
        shape = getattr(sample_weight, "shape", None)
        if shape != (n,) or np.asarray(sample_weight).dtype.kind not in "fiu":
            raise ValueError(f"{where} {name!r}: sample_weight must be {n} numbers (shape "
                             f"{(n,)}), got {shape}")
    if grad_out is not None:
        _check_array_out(grad_out, "grad_out", y_pred.shape, y_pred.dtype, where,
                         " (like y_pred)")


def check_metric_args(name, y_pred, y_true, where="metric_sum"):
    """Validate Ops.metric_sum's arguments."""
    if name not in METRICS:
        raise ValueError(f"{where}: unknown metric {name!r}; expected one of {list(METRICS)}")
    _check_float_array(y_pred, "y_pred", where, 2)
    _check_targets(name == "sparse_categorical_accuracy", y_pred, y_true, f"{where} {name!r}")


def _check_targets(sparse, y_pred, y_true, where, labels_in_range=False):
    """y_true has y_pred's shape, or is one integer label per row when sparse (in
    range for a loss: a metric counts an out-of-range label as a miss)."""
    n = y_pred.shape[0]
    if sparse:
        if (not isinstance(y_true, np.ndarray) or y_true.shape != (n,)
                or y_true.dtype.kind not in "iu"):
            raise ValueError(f"{where}: labels (y_true) must be an integer array of shape "
                             f"{(n,)}, got {getattr(y_true, 'dtype', type(y_true).__name__)} "
                             f"{getattr(y_true, 'shape', '')}".rstrip())
        if labels_in_range and y_true.size and (y_true.min() < 0
                                                or y_true.max() >= y_pred.shape[1]):
            raise ValueError(f"{where}: a class index in labels is out of range "
                             f"[0, {y_pred.shape[1]})")
    elif not isinstance(y_true, np.ndarray) or y_true.shape != y_pred.shape:
        raise ValueError(f"{where}: y_true must have y_pred's shape {y_pred.shape}, got "
                         f"{getattr(y_true, 'shape', type(y_true).__name__)}")


def check_conv2d_args(x, w, b, strides, padding, dilation, activation, out, preact_out,
                      where="conv2d_forward", geometry=WindowGeometry):
    """Validate Ops.conv2d_forward's arguments; return (activation, geometry) (a
    WindowGeometry, or the backend's subclass of it given as ``geometry``)."""
    activation = check_activation(activation, where=where)
    _check_float_array(x, "x", where, 4)
    _check_float_array(w, "w", where, 4, x.dtype)
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"{where}: x {x.shape} has {x.shape[3]} channels but w {w.shape} "
                         f"expects {w.shape[2]}")
    _check_vector(b, "b", w.shape[3], x.dtype, where, f" for w {w.shape}")
    geom = geometry(x.shape, w.shape[:2], strides, padding, dilation,
                    f"{where} (x {x.shape}, w {w.shape})")
    shape = (geom.n, geom.oh, geom.ow, w.shape[3])
    for arr, name in ((out, "out"), (preact_out, "preact_out")):
        if arr is not None:
            _check_array_out(arr, name, shape, x.dtype, where)
    return activation, geom


def check_pool_args(x, pool_size, strides, padding, out, where, geometry=WindowGeometry):
    """Validate a pooling forward's arguments; return its geometry (as
    check_conv2d_args)."""
    _check_float_array(x, "x", where, 4)
    geom = geometry(x.shape, pool_size, strides, padding, (1, 1), f"{where} (x {x.shape})")
    if out is not None:
        _check_array_out(out, "out", geom.output_shape, x.dtype, where)
    return geom


def check_embedding_table(table, where):
    """The table must be a 2-D (vocabulary, features) float array."""
    _check_float_array(table, "table", where, 2)
    return table


def check_out(out, shape, dtype, where):
    """Validate an ``out=`` array: right type, shape, dtype, C-contiguous and writable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{where}: out must be a numpy array, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"{where}: out must have shape {tuple(shape)} and dtype {dtype}, "
                         f"got {out.shape} {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{where}: out must be C-contiguous and writable")
    return out


# ---- broadcast element-wise ops, concatenation, batched matmul: shared checks --
# Both backends raise the same errors: NumpyOps calls these on every call,
# CompiledOps when its fast path's preconditions fail (its kernel wrappers
# check the rest, with the same error types and wording).
_FLOAT_DTYPES = (np.float32, np.float64)


def _check_array_out(arr, name, shape, dtype, where, why=""):
    """Validate an output array named ``name``: type, shape, dtype, layout."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy array, got {type(arr).__name__}")
    if arr.shape != tuple(shape) or arr.dtype != dtype:
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)} and dtype {dtype}"
                         f"{why}, got {arr.shape} {arr.dtype}")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{where}: {name} must be C-contiguous and writable")
    return arr


def _is_alias(out, x):
    """True when x is out itself: the same C-contiguous memory with the same shape."""
    return (out.__array_interface__["data"][0] == x.__array_interface__["data"][0]
            and out.shape == x.shape and x.flags.c_contiguous)


def check_binary_args(op, a, b, out, where="binary"):
    """Validate Ops.binary's arguments; return (shape, dtype) of the result."""
    if not isinstance(op, str) or op not in BINARY_OPS:
        raise ValueError(f"{where}: op must be one of {BINARY_OPS}, got {op!r}")
    where = f"{where} {op}"
    for arg, label in ((a, "a"), (b, "b")):
        if not isinstance(arg, np.ndarray):
            raise TypeError(f"{where}: {label} must be a numpy array, got {type(arg).__name__}")
    if a.dtype != b.dtype or a.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{where}: a and b must share a float32 or float64 dtype, got "
                        f"{a.dtype} and {b.dtype}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{where}: a {a.shape} and b {b.shape} do not broadcast") from None
    if out is not None:
        _check_array_out(out, "out", shape, a.dtype, where, f" for a {a.shape} and b {b.shape}")
        for arg in (a, b):
            if np.may_share_memory(out, arg) and not _is_alias(out, arg):
                raise ValueError(f"{where}: out {out.shape} shares memory with a {a.shape} or "
                                 f"b {b.shape} without being that operand itself")
    return shape, a.dtype


def check_binary_backward_args(op, dy, a, b, da_out, db_out):
    """Validate Ops.binary_backward's arguments; return (shape, dtype) of dy."""
    shape, dtype = check_binary_args(op, a, b, None, "binary_backward")
    where = f"binary_backward {op}"
    if not isinstance(dy, np.ndarray):
        raise TypeError(f"{where}: dy must be a numpy array, got {type(dy).__name__}")
    if dy.dtype != dtype:
        raise TypeError(f"{where}: dy must be {dtype} like a and b, got {dy.dtype}")
    if dy.shape != shape:
        raise ValueError(f"{where}: dy must have shape {shape}, the broadcast of a {a.shape} "
                         f"and b {b.shape}, got {dy.shape}")
    given = []
    for g, name, operand, label in ((da_out, "da_out", a, "a"), (db_out, "db_out", b, "b")):
        if g is None or g is False:
            continue
        _check_array_out(g, name, operand.shape, dtype, where, f" like {label} {operand.shape}")
        if any(np.may_share_memory(g, x) for x in [dy, a, b, *given]):
            raise ValueError(f"{where}: da_out and db_out must not share memory with dy, a, "
                             f"b or each other")
        given.append(g)
    return shape, dtype


def check_sum_to_shape_args(x, shape, out):
    """Validate Ops.sum_to_shape's arguments; return ``shape`` as a tuple of ints."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"sum_to_shape: x must be a numpy array, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"sum_to_shape: x must be float32 or float64, got {x.dtype}")
    shape = tuple(operator.index(n) for n in shape)
    lead = x.ndim - len(shape)
    if lead < 0 or any(n != x.shape[lead + i] and n != 1 for i, n in enumerate(shape)):
        raise ValueError(f"sum_to_shape: shape {shape} does not broadcast to x {x.shape}")
    if out is not None:
        _check_array_out(out, "out", shape, x.dtype, "sum_to_shape", f" for x {x.shape}")
        if np.may_share_memory(out, x) and not (shape == x.shape and _is_alias(out, x)):
            raise ValueError(f"sum_to_shape: out {out.shape} must not share memory with x "
                             f"{x.shape}")
    return shape


def _check_axis(axis, ndim, where):
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: axis {axis} is out of range for {ndim}-D arrays")
    return axis % ndim


def check_concatenate_args(xs, axis, out):
    """Validate Ops.concatenate's arguments; return (axis >= 0, shape, dtype) of the result."""
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise ValueError(f"concatenate: xs must be a non-empty list or tuple of arrays, got "
                         f"{xs!r:.80}")
    for i, x in enumerate(xs):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"concatenate: xs[{i}] must be a numpy array, got "
                            f"{type(x).__name__}")
    x0 = xs[0]
    if x0.ndim == 0:
        raise ValueError("concatenate: 0-d arrays cannot be concatenated")
    axis = _check_axis(axis, x0.ndim, "concatenate")
    for i, x in enumerate(xs):
        if x.dtype != x0.dtype or x0.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"concatenate: the arrays must share a float32 or float64 dtype, "
                            f"got xs[0] {x0.dtype} and xs[{i}] {x.dtype}")
        if x.ndim != x0.ndim or any(n != m for d, (n, m) in enumerate(zip(x.shape, x0.shape))
                                    if d != axis):
            raise ValueError(f"concatenate: every array must have the shape of xs[0] "
                             f"{x0.shape} but along axis {axis}, got xs[{i}] {x.shape}")
    shape = list(x0.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    shape = tuple(shape)
    if out is not None:
        _check_array_out(out, "out", shape, x0.dtype, "concatenate")
        for i, x in enumerate(xs):
            if np.may_share_memory(out, x):
                raise ValueError(f"concatenate: out {out.shape} must not share memory with "
                                 f"xs[{i}] {x.shape}")
    return axis, shape, x0.dtype


def check_split_args(x, sizes, axis, outs):
    """Validate Ops.split's arguments; return (axis >= 0, sizes as a tuple of ints)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"split: x must be a numpy array, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"split: x must be float32 or float64, got {x.dtype}")
    if x.ndim == 0:
        raise ValueError("split: a 0-d array cannot be split")
    axis = _check_axis(axis, x.ndim, "split")
    if not isinstance(sizes, (list, tuple)) or len(sizes) == 0:
        raise ValueError(f"split: sizes must be a non-empty list of ints, got {sizes!r:.80}")
    try:
        ints = tuple(operator.index(n) for n in sizes)
    except TypeError:
        ints = None
    if ints is None or min(ints) < 0 or sum(ints) != x.shape[axis]:
        raise ValueError(f"split: sizes {list(sizes)} must be non-negative ints summing to "
                         f"x.shape[{axis}] = {x.shape[axis]} (x {x.shape})")
    if outs is not None:
        if not isinstance(outs, (list, tuple)) or len(outs) != len(ints):
            raise ValueError(f"split: outs must be None or a list of {len(ints)} entries, got "
                             f"{outs!r:.80}")
        given = []
        for i, (o, n) in enumerate(zip(outs, ints)):
            if o is None or o is False:
                continue
            shape = x.shape[:axis] + (n,) + x.shape[axis + 1:]
            _check_array_out(o, f"outs[{i}]", shape, x.dtype, "split",
                             f" for piece {i} of x {x.shape}")
            if np.may_share_memory(o, x):
                raise ValueError(f"split: outs[{i}] must not share memory with x")
            if any(np.may_share_memory(o, g) for g in given):
                raise ValueError(f"split: outs[{i}] shares memory with another piece")
            given.append(o)
    return axis, ints


def check_batch_matmul_args(a, b, transpose_a, transpose_b, out):
    """Validate Ops.batch_matmul's arguments; return ((B, M, N), dtype) of the result."""
    for arg, label in ((a, "a"), (b, "b")):
        if not isinstance(arg, np.ndarray):
            raise TypeError(f"batch_matmul: {label} must be a numpy array, got "
                            f"{type(arg).__name__}")
    if a.dtype != b.dtype or a.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"batch_matmul: a and b must share a float32 or float64 dtype, got "
                        f"{a.dtype} and {b.dtype}")
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"batch_matmul: a and b must be 3-D (batch, rows, columns), got a "
                         f"{a.shape} and b {b.shape}")
    batch, m, k = (a.shape[0], a.shape[2], a.shape[1]) if transpose_a else a.shape
    batch_b, k2, n = (b.shape[0], b.shape[2], b.shape[1]) if transpose_b else b.shape
    if batch_b != batch or k2 != k:
        raise ValueError(f"batch_matmul: op(a) is {(batch, m, k)} and op(b) is "
                         f"{(batch_b, k2, n)}: the batch sizes and inner dimensions must "
                         f"match (a {a.shape}, transpose_a={bool(transpose_a)}; b {b.shape}, "
                         f"transpose_b={bool(transpose_b)})")
    if out is not None:
        _check_array_out(out, "out", (batch, m, n), a.dtype, "batch_matmul",
                         f" for op(a) {(batch, m, k)} @ op(b) {(batch, k, n)}")
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise ValueError("batch_matmul: out must not share memory with a or b")
    return (batch, m, n), a.dtype


# ---- fastnn.ops' primitives: shared checks --------------------------------------
# The same contract as above: NumpyOps calls these on every call, CompiledOps
# when its fast path's preconditions fail; the kernel wrappers word their
# errors the same way (tests hold both backends to one message).
_COMPARE_DTYPES = (np.float32, np.float64, np.int64)


def _check_op(op, choices, where):
    if not isinstance(op, str) or op not in choices:
        raise ValueError(f"{where}: op must be one of {choices}, got {op!r}")
    return op


def _check_float_array(arr, name, where, ndim=None, dtype=None):
    """arr must be a float32 or float64 numpy array (of ``dtype`` when given;
    TypeError otherwise) with ``ndim`` axes when given (ValueError otherwise)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy array, got {type(arr).__name__}")
    if dtype is None and arr.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{where}: {name} must be float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{where}: {name} must have dtype {dtype} (like x), got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{where}: {name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def _check_like(arr, name, ref, ref_name, where):
    """arr must be an array of ref's dtype (TypeError) and shape (ValueError)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != ref.dtype:
        raise TypeError(f"{where}: {name} must be {ref.dtype} like {ref_name}, got {arr.dtype}")
    if arr.shape != ref.shape:
        raise ValueError(f"{where}: {name} must have {ref_name}'s shape {ref.shape}, got "
                         f"{arr.shape}")
    return arr


def _check_out_aliases(out, inputs, names, where):
    """out may be one of ``inputs`` itself, but share no other memory with them."""
    for x in inputs:
        if x is not None and np.may_share_memory(out, x) and not _is_alias(out, x):
            raise ValueError(f"{where}: out {out.shape} shares memory with {names} without "
                             f"being that array itself")


def _axis_index(a, axes, where):
    if isinstance(a, bool):
        a = None
    try:
        return operator.index(a)
    except TypeError:
        raise TypeError(f"{where}: axes must be None, an int or a tuple of ints, got "
                        f"{axes!r}") from None


def check_axes(axes, shape, where):
    """``axes`` (None: all; an int or a tuple / list of ints, negative from the end)
    normalised against ``shape``: a sorted tuple of distinct axes >= 0."""
    ndim = len(shape)
    if axes is None:
        return tuple(range(ndim))
    given = tuple(axes) if isinstance(axes, (tuple, list)) else (axes,)
    seen = []
    for a in given:
        d = _axis_index(a, axes, where)
        if not -ndim <= d < ndim:
            raise ValueError(f"{where}: axis {d} is out of range for x of shape {shape}")
        d %= ndim
        if d in seen:
            raise ValueError(f"{where}: axes {axes!r} repeat axis {d} of x {shape}")
        seen.append(d)
    return tuple(sorted(seen))


def reduced_shape(shape, axes, keepdims):
    """The shape of a reduction of ``shape`` over the (normalised) ``axes``."""
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def check_unary_args(op, x, out):
    """Validate Ops.unary's arguments; return x's dtype."""
    _check_op(op, UNARY_OPS, "unary")
    where = f"unary {op}"
    _check_float_array(x, "x", where)
    if out is not None:
        _check_array_out(out, "out", x.shape, x.dtype, where, f" like x {x.shape}")
        _check_out_aliases(out, (x,), "x", where)
    return x.dtype


def check_unary_backward_args(op, dy, x, y, out):
    """Validate Ops.unary_backward's arguments; return dy's dtype."""
    _check_op(op, UNARY_OPS, "unary_backward")
    where = f"unary_backward {op}"
    _check_float_array(dy, "dy", where)
    _check_like(x, "x", dy, "dy", where)
    _check_like(y, "y", dy, "dy", where)
    if out is not None:
        _check_array_out(out, "out", dy.shape, dy.dtype, where, f" like dy {dy.shape}")
        _check_out_aliases(out, (dy, x, y), "dy, x or y", where)
    return dy.dtype


def check_compare_args(op, a, b, out):
    """Validate Ops.compare's arguments; return the broadcast shape."""
    _check_op(op, COMPARE_OPS, "compare")
    where = f"compare {op}"
    for arg, label in ((a, "a"), (b, "b")):
        if not isinstance(arg, np.ndarray):
            raise TypeError(f"{where}: {label} must be a numpy array, got {type(arg).__name__}")
    if a.dtype != b.dtype or a.dtype not in _COMPARE_DTYPES:
        raise TypeError(f"{where}: a and b must share a float32, float64 or int64 dtype, got "
                        f"{a.dtype} and {b.dtype}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{where}: a {a.shape} and b {b.shape} do not broadcast") from None
    if out is not None:
        _check_array_out(out, "out", shape, np.dtype(np.bool_), where,
                         f" for a {a.shape} and b {b.shape}")
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise ValueError(f"{where}: out must not share memory with a or b")
    return shape


def check_where_args(condition, a, b, out):
    """Validate Ops.where's arguments; return (shape, dtype) of the result."""
    for arg, label in ((condition, "condition"), (a, "a"), (b, "b")):
        if not isinstance(arg, np.ndarray):
            raise TypeError(f"where: {label} must be a numpy array, got {type(arg).__name__}")
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool array, got {condition.dtype}")
    if a.dtype != b.dtype or a.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"where: a and b must share a float32 or float64 dtype, got "
                        f"{a.dtype} and {b.dtype}")
    try:
        shape = np.broadcast_shapes(condition.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition {condition.shape}, a {a.shape} and b {b.shape} "
                         f"do not broadcast") from None
    if out is not None:
        _check_array_out(out, "out", shape, a.dtype, "where",
                         f" for condition {condition.shape}, a {a.shape} and b {b.shape}")
        if np.may_share_memory(out, condition):
            raise ValueError("where: out must not share memory with condition")
        _check_out_aliases(out, (a, b), "a or b", "where")
    return shape, a.dtype


def check_reduce_args(op, x, axes, keepdims, out):
    """Validate Ops.reduce's arguments; return (axes, shape of the result)."""
    _check_op(op, REDUCE_OPS, "reduce")
    where = f"reduce {op}"
    _check_float_array(x, "x", where)
    axes = check_axes(axes, x.shape, where)
    if op in ("max", "min") and any(x.shape[d] == 0 for d in axes):
        raise ValueError(f"{where}: x {x.shape} is empty along the reduced axes {axes} "
                         f"(a {op} of nothing has no value)")
    shape = reduced_shape(x.shape, axes, keepdims)
    if out is not None:
        _check_array_out(out, "out", shape, x.dtype, where, f" for x {x.shape} reduced over "
                         f"axes {axes}")
        if np.may_share_memory(out, x) and not (shape == x.shape and _is_alias(out, x)):
            raise ValueError(f"{where}: out {out.shape} must not share memory with x {x.shape}")
    return axes, shape


def check_reduce_backward_args(op, dy, x, y, axes, keepdims, out):
    """Validate Ops.reduce_backward's arguments; return (axes, shape of y)."""
    _check_op(op, REDUCE_OPS, "reduce_backward")
    where = f"reduce_backward {op}"
    _check_float_array(x, "x", where)
    axes = check_axes(axes, x.shape, where)
    shape = reduced_shape(x.shape, axes, keepdims)
    for arg, label in ((dy, "dy"), (y, "y")):
        if arg is None and (label == "y" and op in ("sum", "mean")):
            continue
        if not isinstance(arg, np.ndarray):
            raise TypeError(f"{where}: {label} must be a numpy array, got {type(arg).__name__}")
        if arg.dtype != x.dtype:
            raise TypeError(f"{where}: {label} must be {x.dtype} like x, got {arg.dtype}")
        if arg.shape != shape:
            raise ValueError(f"{where}: {label} must have shape {shape} (x {x.shape} reduced "
                             f"over axes {axes}, keepdims={bool(keepdims)}), got {arg.shape}")
    if out is not None:
        _check_array_out(out, "out", x.shape, x.dtype, where, f" like x {x.shape}")
        if any(a is not None and np.may_share_memory(out, a) for a in (dy, x, y)):
            raise ValueError(f"{where}: out must not share memory with dy, x or y")
    return axes, shape


def check_arg_reduce_args(op, x, axis, keepdims, out):
    """Validate Ops.arg_reduce's arguments; return (axis >= 0 or None, result shape)."""
    _check_op(op, ARG_REDUCE_OPS, "arg_reduce")
    where = f"arg_reduce {op}"
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: x must be a numpy array, got {type(x).__name__}")
    if x.dtype not in _COMPARE_DTYPES:
        raise TypeError(f"{where}: x must be float32, float64 or int64, got {x.dtype}")
    if axis is None:
        if x.size == 0:
            raise ValueError(f"{where}: x {x.shape} is empty")
        shape = (1,) * x.ndim if keepdims else ()
    else:
        axis = _check_one_axis(axis, x.shape, where)
        if x.shape[axis] == 0:
            raise ValueError(f"{where}: x {x.shape} is empty along axis {axis}")
        shape = reduced_shape(x.shape, (axis,), keepdims)
    if out is not None:
        _check_array_out(out, "out", shape, np.dtype(np.int64), where, f" for x {x.shape}")
        if np.may_share_memory(out, x):
            raise ValueError(f"{where}: out must not share memory with x")
    return axis, shape


def _check_one_axis(axis, shape, where, name="x"):
    """One int axis (negative from the end) of ``shape``, as an axis >= 0."""
    try:
        if isinstance(axis, bool):
            raise TypeError
        d = operator.index(axis)
    except TypeError:
        raise TypeError(f"{where}: axis must be an int, got {axis!r}") from None
    if not -len(shape) <= d < len(shape):
        raise ValueError(f"{where}: axis {d} is out of range for {name} of shape {shape}")
    return d % len(shape)


def check_cumsum_args(x, axis, out):
    """Validate Ops.cumsum's arguments; return the axis (>= 0)."""
    _check_float_array(x, "x", "cumsum")
    axis = _check_one_axis(axis, x.shape, "cumsum")
    if out is not None:
        _check_array_out(out, "out", x.shape, x.dtype, "cumsum", f" like x {x.shape}")
        _check_out_aliases(out, (x,), "x", "cumsum")
    return axis


def check_softmax_args(x, axis, out, where):
    """Validate softmax / log_softmax's arguments; return the axis (>= 0)."""
    _check_float_array(x, "x", where)
    axis = _check_one_axis(axis, x.shape, where)
    if out is not None:
        _check_array_out(out, "out", x.shape, x.dtype, where, f" like x {x.shape}")
        _check_out_aliases(out, (x,), "x", where)
    return axis


def check_softmax_backward_args(dy, y, axis, out, where):
    """Validate softmax_backward / log_softmax_backward's arguments; return the axis."""
    _check_float_array(dy, "dy", where)
    _check_like(y, "y", dy, "dy", where)
    axis = _check_one_axis(axis, dy.shape, where, "dy")
    if out is not None:
        _check_array_out(out, "out", dy.shape, dy.dtype, where, f" like dy {dy.shape}")
        _check_out_aliases(out, (dy, y), "dy or y", where)
    return axis


# ---- fused attention: shared checks ---------------------------------------------
# Keras's _masked_softmax adds this to disallowed scores (its large negative
# number for float32 and float64).
ATTENTION_MASK_VALUE = -1e9
_MASK_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8))


def _describe(arr):
    if isinstance(arr, np.ndarray):
        return f"{arr.shape} {arr.dtype}"
    return type(arr).__name__


def attention_batch_stride(arr):
    """The batch stride, in elements, of a (N, T, H, X) array whose inner axes are
    C-contiguous (checked by _check_attention_tensor)."""
    inner = arr.shape[1] * arr.shape[2] * arr.shape[3]
    if arr.shape[0] <= 1:
        return inner
    return arr.strides[0] // arr.itemsize


def _check_attention_tensor(arr, name, shape, dtype, where, writable=False):
    """A (N, T, H, X) array of ``shape`` and ``dtype`` whose inner (T, H, X) axes
    are C-contiguous and whose batch stride is at least T*H*X elements."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 4:
        raise ValueError(f"{where}: {name} must be a 4-D array of shape {tuple(shape)}, got "
                         f"{_describe(arr)}")
    if arr.dtype != dtype:
        raise ValueError(f"{where}: {name} must be {np.dtype(dtype).name} like q, got "
                         f"{arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)}, got {arr.shape}")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{where}: {name} must be writable")
    n, t, h, x = arr.shape
    if arr.size:
        item = arr.itemsize
        want = (h * x * item, x * item, item)
        inner_ok = all(size <= 1 or stride == w for size, stride, w
                       in zip(arr.shape[1:], arr.strides[1:], want))
        batch = arr.strides[0]
        batch_ok = n <= 1 or (batch % item == 0 and batch // item >= t * h * x)
        if not (inner_ok and batch_ok):
            raise ValueError(
                f"{where}: {name} {arr.shape} must have its inner (T, H, features) axes "
                f"C-contiguous and a batch stride of at least T*H*features elements (a "
                f"C-contiguous array or a view such as cache[:, :t]), got strides "
                f"{arr.strides}")
    return arr


def _check_attention_mask(mask, name, shape, where):
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.dtype not in _MASK_DTYPES:
        raise ValueError(f"{where}: {name} must be a bool or uint8 array of shape "
                         f"{tuple(shape)}, got {_describe(mask)}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)}, got {mask.shape}")
    return mask


def _check_attention_plain(arr, name, shape, dtype, where, writable):
    """An lse / probs array: shape, dtype; C-contiguous and writable when an output."""
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{where}: {name} must be an array of shape {tuple(shape)}, got "
                         f"{_describe(arr)}")
    if arr.dtype != dtype or arr.shape != tuple(shape):
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)} and dtype "
                         f"{np.dtype(dtype).name}, got {arr.shape} {arr.dtype}")
    if writable and not (arr.flags.c_contiguous and arr.flags.writeable):
        raise ValueError(f"{where}: {name} must be C-contiguous and writable")
    return arr


def _check_no_overlap(outputs, inputs, where):
    """No output may share memory with an input or with another output."""
    named = [(n, a) for n, a in outputs if a is not None]
    for i, (name, arr) in enumerate(named):
        for other, x in list(inputs) + named[i + 1:]:
            if x is not None and np.may_share_memory(arr, x):
                raise ValueError(f"{where}: {name} must not share memory with {other}")


def check_attention_args(q, k, v, scale, causal, query_mask, key_mask, attention_mask,
                         dropout_rate, seed, out=None, lse_out=None, probs_out=None,
                         where="attention"):
    """Validate Ops.attention's arguments (every error a ValueError naming the
    argument); return (N, Tq, Tk, H, D, Dv, scale, seed, rate)."""
    if not isinstance(q, np.ndarray) or q.ndim != 4 or q.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{where}: q must be a 4-D float32 or float64 array (N, Tq, H, D), "
                         f"got {_describe(q)}")
    n, tq, h, d = q.shape
    if not isinstance(k, np.ndarray) or k.ndim != 4:
        raise ValueError(f"{where}: k must be a 4-D array (N, Tk, H, D), got {_describe(k)}")
    tk = k.shape[1]
    if not isinstance(v, np.ndarray) or v.ndim != 4:
        raise ValueError(f"{where}: v must be a 4-D array (N, Tk, H, Dv), got {_describe(v)}")
    dv = v.shape[3]
    _check_attention_tensor(q, "q", (n, tq, h, d), q.dtype, where)
    _check_attention_tensor(k, "k", (n, tk, h, d), q.dtype, where)
    _check_attention_tensor(v, "v", (n, tk, h, dv), q.dtype, where)
    if tk < 1:
        raise ValueError(f"{where}: k and v must hold at least one key (Tk >= 1), got k "
                         f"{k.shape}")
    if d < 1 or dv < 1:
        raise ValueError(f"{where}: q's and v's feature axes must not be empty, got q "
                         f"{q.shape} and v {v.shape}")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.number)) \
            or not np.isfinite(scale):
        raise ValueError(f"{where}: scale must be a finite number, got {scale!r}")
    if not isinstance(causal, (bool, np.bool_)):
        raise ValueError(f"{where}: causal must be True or False, got {causal!r}")
    _check_attention_mask(query_mask, "query_mask", (n, tq), where)
    _check_attention_mask(key_mask, "key_mask", (n, tk), where)
    _check_attention_mask(attention_mask, "attention_mask", (n, tq, tk), where)
    seed, rate = check_dropout_args(seed, dropout_rate, where)
    if out is not None:
        _check_attention_tensor(out, "out", (n, tq, h, dv), q.dtype, where, writable=True)
    if lse_out is not None:
        _check_attention_plain(lse_out, "lse_out", (n, h, tq), q.dtype, where, True)
    if probs_out is not None:
        _check_attention_plain(probs_out, "probs_out", (n, h, tq, tk), q.dtype, where, True)
    _check_no_overlap((("out", out), ("lse_out", lse_out), ("probs_out", probs_out)),
                      (("q", q), ("k", k), ("v", v)), where)
    return n, tq, tk, h, d, dv, float(scale), seed, rate


def check_attention_backward_args(dout, q, k, v, out, lse, scale, causal, query_mask, key_mask,
                                  attention_mask, dropout_rate, seed, dprobs, dq_out, dk_out,
                                  dv_out, where="attention_backward"):
    """Validate Ops.attention_backward's arguments (ValueErrors naming the
    argument); return (N, Tq, Tk, H, D, Dv, scale, seed, rate)."""
    dims = check_attention_args(q, k, v, scale, causal, query_mask, key_mask, attention_mask,
                                dropout_rate, seed, where=where)
    n, tq, tk, h, d, dv = dims[:6]
    _check_attention_tensor(dout, "dout", (n, tq, h, dv), q.dtype, where)
    _check_attention_tensor(out, "out", (n, tq, h, dv), q.dtype, where)
    _check_attention_plain(lse, "lse", (n, h, tq), q.dtype, where, False)
    if dprobs is not None:
        _check_attention_plain(dprobs, "dprobs", (n, h, tq, tk), q.dtype, where, False)
    for name, arr, shape in (("dq_out", dq_out, q.shape), ("dk_out", dk_out, k.shape),
                             ("dv_out", dv_out, v.shape)):
        if arr is not None:
            _check_attention_tensor(arr, name, shape, q.dtype, where, writable=True)
    _check_no_overlap((("dq_out", dq_out), ("dk_out", dk_out), ("dv_out", dv_out)),
                      (("dout", dout), ("q", q), ("k", k), ("v", v), ("out", out),
                       ("lse", lse), ("dprobs", dprobs)), where)
    return dims
