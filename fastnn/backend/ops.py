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

    def dense_backward(self, dy, x, w, y, preact, activation, dw_out, db_out, dx_out=None,
                       scratch=None):
        """Backward of ``y = act(x @ w + b)``.

        Writes (overwrites) ``dw_out`` (I, O) = x.T @ dz and ``db_out`` (O,) =
        column sums of dz (``db_out`` None when the layer has no bias), where
        dz = dy * act'(preact). Returns dx = dz @ w.T (N, I) in ``dx_out`` when
        given or a new array; returns None when ``dx_out is False`` (first layer).
        ``scratch`` (N, O), optional, holds dz. ``preact`` may be None unless the
        activation needs it; ``y`` is the layer's output.
        """
        raise NotImplementedError

    # ---- losses and metrics --------------------------------------------------
    def loss(self, name, y_pred, y_true, *, from_logits=False, delta=1.0, grad_out=None):
        """Return the mean loss over the batch; fill ``grad_out`` with dloss/dy_pred.

        y_pred is (N, D); y_true is (N, D) of y_pred's dtype, or (N,) int64 class
        indices for sparse_categorical_crossentropy. Per-sample losses are means
        over D for mse/mae/huber/binary_crossentropy (Keras). ``delta`` is Huber's.
        With ``from_logits`` the sigmoid/softmax is fused into the loss. Without
        it, probabilities are clipped to [1e-7, 1 - 1e-7] and categorical
        predictions are first normalised to sum to 1, as Keras does.
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


def check_activation(name, *, allow_softmax=True):
    """Validate an activation name for a kernel; returns it."""
    if name is None:
        return "linear"
    if name not in ACTIVATIONS or (name == "softmax" and not allow_softmax):
        allowed = [a for a in ACTIVATIONS if allow_softmax or a != "softmax"]
        raise ValueError(f"unknown activation {name!r}; expected one of {allowed}")
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
