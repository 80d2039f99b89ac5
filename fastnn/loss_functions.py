"""Keras 3's loss functions beyond the fused five, as fastnn.ops formulas.

Each takes ``(y_true, y_pred)`` (and its Keras keyword arguments) and returns
one value per sample (the last axis reduced), exactly Keras 3's formula with
its epsilon (1e-7). Written with fastnn.ops only, each runs eagerly on arrays
and is traced into a model's graph when a model trains with it, so its
gradient is the composition of the ops' own backward passes -- no gradient is
written by hand here. The loss classes in fastnn.losses wrap them.
"""
import math

import numpy as np

from fastnn import ops

EPSILON = 1e-7                 # keras.backend.epsilon()
_NORM_FLOOR = EPSILON ** 2     # ops.normalize clamps the squared norm here
_LOG2 = math.log(2.0)


def _as_pair(y_true, y_pred):
    """y_pred as a float tensor and y_true cast to its dtype (Keras' first lines)."""
    y_pred = ops.convert_to_tensor(y_pred)
    dtype = np.dtype(y_pred.dtype)
    if dtype.kind != "f":
        y_pred = ops.cast(y_pred, "float32")
        dtype = np.dtype(np.float32)
    return ops.cast(y_true, dtype), y_pred


def _hinge_labels(y_true):
    """Keras' convert_binary_labels_to_hinge: labels all 0 or 1 become -1 or 1;
    any other labels are used as given. The test is one for the whole batch (a
    0/1 flag computed by the graph, since traced code cannot branch on values)."""
    dtype = y_true.dtype
    is_zero_or_one = ops.add(ops.cast(ops.equal(y_true, 0.0), dtype),
                             ops.cast(ops.equal(y_true, 1.0), dtype))
    all_binary = ops.min(is_zero_or_one)
    # all_binary == 1: y + (y - 1) = 2y - 1; all_binary == 0: y unchanged
    return ops.add(y_true, ops.multiply(all_binary, ops.subtract(y_true, 1.0)))


def hinge(y_true, y_pred):
    """``mean(maximum(1 - y_true * y_pred, 0), axis=-1)``; 0/1 labels become -1/1."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    margin = ops.subtract(1.0, ops.multiply(y_true, y_pred))
    return ops.mean(ops.maximum(margin, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """``mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)``; 0/1 labels become -1/1."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    margin = ops.subtract(1.0, ops.multiply(y_true, y_pred))
    return ops.mean(ops.square(ops.maximum(margin, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    """``maximum(neg - pos + 1, 0)`` with ``pos = sum(y_true * y_pred)`` and
    ``neg = max((1 - y_true) * y_pred)`` over the last axis (one-hot y_true)."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    pos = ops.sum(ops.multiply(y_true, y_pred), axis=-1)
    neg = ops.max(ops.multiply(ops.subtract(1.0, y_true), y_pred), axis=-1)
    return ops.maximum(ops.add(ops.subtract(neg, pos), 1.0), 0.0)


def kl_divergence(y_true, y_pred):
    """``sum(y_true * log(y_true / y_pred), axis=-1)``, both clipped to [1e-7, 1]."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    y_true = ops.clip(y_true, EPSILON, 1.0)
    y_pred = ops.clip(y_pred, EPSILON, 1.0)
    return ops.sum(ops.multiply(y_true, ops.log(ops.divide(y_true, y_pred))), axis=-1)


def poisson(y_true, y_pred):
    """``mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)``."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    return ops.mean(ops.subtract(y_pred, ops.multiply(y_true, ops.log(ops.add(y_pred, EPSILON)))),
                    axis=-1)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)), axis=-1)``.

    Computed as ``|x| + log1p(exp(-2|x|)) - log 2`` -- the same value as Keras'
    ``x + softplus(-2x) - log 2``, with no overflow for large errors, and a
    composed gradient ``sign(x) * tanh(|x|) = tanh(x)`` that is exactly 0 at a
    perfect prediction.
    """
    y_true, y_pred = _as_pair(y_true, y_pred)
    error = ops.abs(ops.subtract(y_pred, y_true))
    values = ops.add(error, ops.log1p(ops.exp(ops.multiply(-2.0, error))))
    return ops.mean(ops.subtract(values, _LOG2), axis=-1)


def _l2_normalize(x, axis):
    """Keras' ``ops.normalize(x, axis)``: ``x / sqrt(max(sum(x**2), 1e-14))``."""
    squares = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return ops.multiply(x, ops.reciprocal(ops.sqrt(ops.maximum(squares, _NORM_FLOOR))))


def cosine_similarity(y_true, y_pred, axis=-1):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)``: -1 for the same
    direction, 0 for orthogonal vectors or a zero vector."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    return ops.negative(ops.sum(ops.multiply(_l2_normalize(y_true, axis),
                                             _l2_normalize(y_pred, axis)), axis=axis))


def _elementwise_binary_crossentropy(y_true, probabilities):
    """Keras' backend binary_crossentropy on probabilities: clipped to
    [1e-7, 1 - 1e-7], ``-(y log p + (1 - y) log(1 - p))`` element-wise."""
    p = ops.clip(probabilities, EPSILON, 1.0 - EPSILON)
    return ops.negative(ops.add(ops.multiply(y_true, ops.log(p)),
                                ops.multiply(ops.subtract(1.0, y_true),
                                             ops.log(ops.subtract(1.0, p)))))


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """Keras' binary focal crossentropy: ``mean((1 - p_t)**gamma * bce, axis)`` with
    ``p_t = y p + (1 - y)(1 - p)``; with apply_class_balancing each value is also
    weighed by ``alpha`` (class 1) or ``1 - alpha`` (class 0). Labels are smoothed
    toward 0.5 first; logits go through a sigmoid."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    if label_smoothing:
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    bce = _elementwise_binary_crossentropy(y_true, y_pred)
    not_true = ops.subtract(1.0, y_true)
    p_t = ops.add(ops.multiply(y_true, y_pred),
                  ops.multiply(not_true, ops.subtract(1.0, y_pred)))
    focal = ops.multiply(ops.power(ops.subtract(1.0, p_t), float(gamma)), bce)
    if apply_class_balancing:
        weight = ops.add(ops.multiply(y_true, alpha), ops.multiply(not_true, 1.0 - alpha))
        focal = ops.multiply(weight, focal)
    return ops.mean(focal, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Keras' categorical focal crossentropy: ``sum(alpha (1 - p)**gamma (-y log p),
    axis)`` with p the predictions renormalized to sum to 1 and clipped to
    [1e-7, 1 - 1e-7]. ``alpha`` is a number or one weight per class; labels are
    smoothed toward 1 / classes first; logits go through a softmax."""
    y_true, y_pred = _as_pair(y_true, y_pred)
    if label_smoothing:
        classes = y_pred.shape[-1]
        y_true = ops.add(ops.multiply(y_true, 1.0 - label_smoothing), label_smoothing / classes)
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=axis)
    p = ops.divide(y_pred, ops.sum(y_pred, axis=axis, keepdims=True))
    p = ops.clip(p, EPSILON, 1.0 - EPSILON)
    cce = ops.negative(ops.multiply(y_true, ops.log(p)))
    if not np.isscalar(alpha):
        alpha = np.asarray(alpha, dtype=np.dtype(y_pred.dtype))
    weighting = ops.multiply(ops.power(ops.subtract(1.0, p), float(gamma)), alpha)
    return ops.sum(ops.multiply(weighting, cce), axis=axis)
