"""Keras' confusion-matrix metrics: Precision, Recall and AUC.

Each counts, in state variables, the (sample-weighted) true / false positives
and negatives of every batch at fixed thresholds -- a prediction counts as
positive when it is strictly greater than the threshold, as in Keras -- and
computes its result from the counts, so a result over many batches equals
the result over all of them at once. Labels are read as booleans (non-zero:
positive); every element of y_pred is one binary decision unless ``top_k`` /
``class_id`` / ``multi_label`` say otherwise. They run on each batch's
arrays (NumPy): metrics need no gradient.
"""
import numpy as np

from fastnn.metrics import Metric

EPSILON = 1e-7                 # keras.backend.epsilon()
_NEG_INF = -1e10               # what top_k filtering gives the predictions it drops


def same_rank(y_true, y_pred):
    """y_true and y_pred as float arrays of one shape: a target missing (or with an
    extra) trailing axis of 1 is reshaped, as Keras' squeeze_or_expand_to_same_rank."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    if y_true.shape != y_pred.shape and y_true.size == y_pred.size:
        y_true = y_true.reshape(y_pred.shape)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true of shape {y_true.shape} does not match y_pred of shape "
                         f"{y_pred.shape}")
    return y_true, y_pred


def broadcast_weights(sample_weight, shape):
    """``sample_weight`` (None: 1; one per sample, or per sample and step) broadcast to
    ``shape`` by adding trailing axes (float64)."""
    if sample_weight is None:
        return np.ones(shape)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim < len(shape):
        w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
    return np.broadcast_to(w, shape)


def confusion_at_thresholds(positive, scores, weights, thresholds):
    """(tp, fp, tn, fn) of flat boolean labels ``positive`` and ``scores`` at each of
    the ascending ``thresholds`` (a score > threshold is predicted positive), each
    count the sum of ``weights`` (float64 arrays, one entry per threshold)."""
    above = np.searchsorted(thresholds, scores, side="left")   # thresholds below each score
    bins = len(thresholds) + 1
    pos = np.bincount(above, weights=weights * positive, minlength=bins)
    neg = np.bincount(above, weights=weights * ~positive, minlength=bins)
    # a score with `above` thresholds below it is positive at thresholds 0 .. above-1
    tp = np.cumsum(pos[::-1])[::-1][1:]
    fp = np.cumsum(neg[::-1])[::-1][1:]
    return tp, fp, neg.sum() - fp, pos.sum() - tp


def _divide_no_nan(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast_shapes(a.shape, b.shape)), where=b != 0)


def _filter_top_k(y_pred, k):
    """Keras' _filter_top_k: all but the k largest of each row (last axis) set to -1e10."""
    order = np.argsort(-y_pred, axis=-1, kind="stable")[..., :k]
    kept = np.full(y_pred.shape, _NEG_INF)
    np.put_along_axis(kept, order, np.take_along_axis(y_pred, order, axis=-1), axis=-1)
    return kept


def _check_thresholds(where, thresholds, default):
    """(the thresholds as a float64 array, whether one was given as a number)."""
    if thresholds is None:
        return np.array([default]), True
    single = np.isscalar(thresholds)
    values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if values.ndim != 1 or not values.size or np.any((values < 0) | (values > 1)):
        raise ValueError(f"{where}: thresholds must be numbers in [0, 1], got {thresholds!r}")
    return values, single


class _PrecisionRecall(Metric):
    """Precision / Recall: counts at ``thresholds`` (default 0.5, or every top-k
    prediction with ``top_k``), optionally of one ``class_id`` only."""

    counted = ()               # which of tp / fp / fn the result needs

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        where = type(self).__name__
        self.init_thresholds = thresholds
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(
                top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"{where}: top_k must be an integer >= 1, got {top_k!r}")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(
                class_id, (int, np.integer)) or class_id < 0):
            raise ValueError(f"{where}: class_id must be an integer >= 0, got {class_id!r}")
        self.top_k, self.class_id = top_k, class_id
        # with top_k, the kept predictions count as positive at the default threshold
        self.thresholds, self._single = _check_thresholds(
            where, thresholds, 0.5 if top_k is None else _NEG_INF)
        self._order = np.argsort(self.thresholds, kind="stable")
        shape = (len(self.thresholds),)
        self.true_positives = self.add_weight(shape, name="true_positives")
        self.false_positives = self.add_weight(shape, name="false_positives")
        self.false_negatives = self.add_weight(shape, name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch's counts (sample_weight: one per sample, or broadcastable)."""
        y_true, y_pred = same_rank(y_true, np.asarray(y_pred, dtype=np.float64))
        weights = broadcast_weights(sample_weight, y_pred.shape)
        if self.top_k is not None:
            y_pred = _filter_top_k(y_pred, self.top_k)
        if self.class_id is not None:
            if self.class_id >= y_pred.shape[-1]:
                raise ValueError(f"{type(self).__name__}: class_id {self.class_id} is out of "
                                 f"range for predictions of shape {y_pred.shape}")
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
            weights = weights[..., self.class_id]
        ordered = self.thresholds[self._order]
        tp, fp, _, fn = confusion_at_thresholds(y_true.reshape(-1) != 0, y_pred.reshape(-1),
                                                weights.reshape(-1), ordered)
        back = np.empty_like(self._order)
        back[self._order] = np.arange(len(self._order))
        self.true_positives.assign_add(tp[back])
        self.false_positives.assign_add(fp[back])
        self.false_negatives.assign_add(fn[back])

    def _finish(self, values):
        return values[0] if self._single else values

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """tp / (tp + fp) at each threshold (0 when nothing was predicted positive); a
    float for one threshold, an array for a list of them."""

    default_name = "precision"

    def result(self):
        tp, fp = np.asarray(self.true_positives), np.asarray(self.false_positives)
        return self._finish(_divide_no_nan(tp, tp + fp).astype(self.dtype))


class Recall(_PrecisionRecall):
    """tp / (tp + fn) at each threshold (0 when there was no positive label); a
    float for one threshold, an array for a list of them."""

    default_name = "recall"

    def result(self):
        tp, fn = np.asarray(self.true_positives), np.asarray(self.false_negatives)
        return self._finish(_divide_no_nan(tp, tp + fn).astype(self.dtype))


_CURVES = ("ROC", "PR")
_SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(Metric):
    """The area under the ROC or precision-recall curve, approximated from the counts
    at ``num_thresholds`` thresholds (0 - 1e-7, i / (num_thresholds - 1) for i in
    1 .. num_thresholds - 2, 1 + 1e-7) or at the given ``thresholds`` (plus those two
    end points). ``summation_method`` "interpolation" takes the trapezoid rule for ROC
    and Davis & Goadrich's interpolation for PR; "minoring" / "majoring" take the
    lower / upper Riemann sum. With ``multi_label`` each column of y_pred has its
    own curve and the result is their mean (weighted by ``label_weights``);
    without it every element is one decision (``label_weights`` then weighs the
    columns' counts). ``from_logits`` applies a sigmoid first. Keras 3's arguments.
    """

    default_name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        curve = curve.upper() if isinstance(curve, str) else curve
        if curve not in _CURVES:
            raise ValueError(f"AUC: curve must be one of {_CURVES}, got {curve!r}")
        summation = summation_method.lower() if isinstance(summation_method, str) else None
        if summation not in _SUMMATIONS:
            raise ValueError(f"AUC: summation_method must be one of {_SUMMATIONS}, got "
                             f"{summation_method!r}")
        self.curve, self.summation_method = curve, summation
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = np.sort(_check_thresholds("AUC", thresholds, 0.5)[0])
        else:
            if isinstance(num_thresholds, bool) or not isinstance(
                    num_thresholds, (int, np.integer)) or num_thresholds <= 1:
                raise ValueError(f"AUC: num_thresholds must be an integer > 1, got "
                                 f"{num_thresholds!r}")
            inner = np.array([(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)])
        self._thresholds = np.concatenate([[-EPSILON], inner, [1.0 + EPSILON]])
        self.num_thresholds = len(self._thresholds)
        if num_labels is not None and not multi_label:
            raise ValueError("AUC: num_labels is needed only when multi_label is True")
        self.multi_label, self.num_labels = bool(multi_label), num_labels
        self.label_weights = None if label_weights is None else \
            np.asarray(label_weights, dtype=np.float64).reshape(-1)
        self.from_logits = bool(from_logits)
        self._counts = None
        if not self.multi_label:
            self._build(())
        elif num_labels:
            self._build((int(num_labels),))

    @property
    def thresholds(self):
        """The thresholds, end points included (a list)."""
        return list(self._thresholds)

    def _build(self, labels_shape):
        shape = (self.num_thresholds,) + tuple(labels_shape)
        self._counts = [self.add_weight(shape, name=name) for name in
                        ("true_positives", "false_positives", "true_negatives",
                         "false_negatives")]
        (self.true_positives, self.false_positives, self.true_negatives,
         self.false_negatives) = self._counts

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch's counts at every threshold."""
        y_true, y_pred = same_rank(y_true, np.asarray(y_pred, dtype=np.float64))
        if self.from_logits:
            y_pred = 0.5 * (1.0 + np.tanh(0.5 * y_pred))       # the sigmoid, overflow-free
        weights = broadcast_weights(sample_weight, y_pred.shape)
        positive = y_true != 0
        if self.multi_label:
            if y_pred.ndim != 2:
                raise ValueError(f"AUC: y_pred must have rank 2 when multi_label=True, got "
                                 f"shape {y_pred.shape}")
            if self._counts is None:
                self._build((y_pred.shape[1],))
            if self.true_positives.shape[1] != y_pred.shape[1]:
                raise ValueError(f"AUC: built for {self.true_positives.shape[1]} labels, got "
                                 f"y_pred of shape {y_pred.shape}")
            columns = [confusion_at_thresholds(positive[:, j], y_pred[:, j], weights[:, j],
                                               self._thresholds)
                       for j in range(y_pred.shape[1])]
            counts = [np.stack([c[i] for c in columns], axis=1) for i in range(4)]
        else:
            if self.label_weights is not None:
                weights = weights * self.label_weights
            counts = confusion_at_thresholds(positive.reshape(-1), y_pred.reshape(-1),
                                             np.ascontiguousarray(weights).reshape(-1),
                                             self._thresholds)
        for variable, count in zip(self._counts, counts):
            variable.assign_add(count)

    def result(self):
        if self._counts is None:
            return self.dtype.type(0.0)
        tp, fp, tn, fn = (np.asarray(v, dtype=np.float64) for v in self._counts)
        if self.curve == "PR" and self.summation_method == "interpolation":
            areas = self._interpolated_pr(tp, fp, fn)
        else:
            recall = _divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide_no_nan(fp, fp + tn), recall
            else:
                x, y = recall, _divide_no_nan(tp, tp + fp)
            if self.summation_method == "interpolation":
                heights = (y[:-1] + y[1:]) / 2.0
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:-1], y[1:])
            else:
                heights = np.maximum(y[:-1], y[1:])
            areas = ((x[:-1] - x[1:]) * heights).sum(axis=0)
        if not self.multi_label:
            return self.dtype.type(areas)
        if self.label_weights is None:
            return self.dtype.type(np.mean(areas))
        return self.dtype.type(_divide_no_nan(np.sum(areas * self.label_weights),
                                              np.sum(self.label_weights)))

    @staticmethod
    def _interpolated_pr(tp, fp, fn):
        """Davis & Goadrich's PR area: between successive thresholds tp and the
        predicted positives p = tp + fp vary linearly, and precision tp / p is
        integrated exactly over recall (Keras' interpolate_pr_auc)."""
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        slope = _divide_no_nan(dtp, np.maximum(p[:-1] - p[1:], 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore"):
            log_ratio = np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)), 0.0)
        increments = _divide_no_nan(slope * (dtp + intercept * log_ratio),
                                    np.maximum(tp[1:] + fn[1:], 0))
        return increments.sum(axis=0)

    def reset_state(self):
        if self._counts is not None:
            for variable in self._counts:
                variable.value.fill(0)

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype.name,
                  "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None
                  else self.label_weights.tolist(),
                  "from_logits": self.from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
