"""Keras' per-class score metrics: FBetaScore / F1Score and MeanIoU.

Both accumulate per-class (sample-weighted) counts in state variables over
the batches and compute the score from them, as Keras 3 does -- including its
epsilon (1e-7) in the F-score's divisions. They run on each batch's arrays
(NumPy): metrics need no gradient.
"""
import numpy as np

from fastnn.confusion_metrics import EPSILON
from fastnn.metrics import Metric

_AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """The F-beta score of multi-label or one-hot multi-class predictions (N, C).

    A prediction is positive when it is the row's largest (``threshold=None``; an
    all-zero row has none) or above ``threshold``. ``average``: None gives one score
    per class; "micro" pools the counts of every class; "macro" is the mean of the
    classes' scores; "weighted" weighs them by their (sample-weighted) number of
    true labels.
    """

    default_name = "fbeta_score"

    def __init__(self, average=None, beta=1.0, threshold=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        where = type(self).__name__
        if average not in _AVERAGES:
            raise ValueError(f"{where}: average must be one of {_AVERAGES}, got {average!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"{where}: beta must be a number > 0, got {beta!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(
                threshold, (int, float)) or not 0.0 < threshold <= 1.0):
            raise ValueError(f"{where}: threshold must be a number in (0, 1], got "
                             f"{threshold!r}")
        self.average, self.beta = average, float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self._counts = None

    def _build(self, classes):
        shape = () if self.average == "micro" else (classes,)
        self._counts = [self.add_weight(shape, name=name) for name in
                        ("true_positives", "false_positives", "false_negatives",
                         "intermediate_weights")]
        (self.true_positives, self.false_positives, self.false_negatives,
         self.intermediate_weights) = self._counts
        self._classes = classes

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch's per-class counts (sample_weight: one per sample)."""
        y_pred = np.asarray(y_pred, dtype=np.float64)
        y_true = np.asarray(y_true, dtype=np.float64)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__} expects 2D inputs of one shape "
                             f"(batch_size, classes); got y_true {y_true.shape} and y_pred "
                             f"{y_pred.shape}")
        if self._counts is None:
            self._build(y_pred.shape[1])
        elif y_pred.shape[1] != self._classes:
            raise ValueError(f"{type(self).__name__}: built for {self._classes} classes, got "
                             f"y_pred of shape {y_pred.shape}")
        if self.threshold is None:
            top = y_pred.max(axis=-1, keepdims=True)
            predicted = (y_pred >= top) & (np.abs(y_pred) > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.astype(np.float64)
        weights = np.ones((len(y_pred), 1)) if sample_weight is None else \
            np.asarray(sample_weight, dtype=np.float64).reshape(-1, 1)
        axis = None if self.average == "micro" else 0
        for variable, values in zip(self._counts, (predicted * y_true,
                                                   predicted * (1.0 - y_true),
                                                   (1.0 - predicted) * y_true, y_true)):
            variable.assign_add((values * weights).sum(axis=axis))

    def result(self):
        if self._counts is None:
            return self.dtype.type(0.0)
        tp, fp, fn, support = (np.asarray(v, dtype=np.float64) for v in self._counts)
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        beta2 = self.beta ** 2
        score = (1.0 + beta2) * precision * recall / (beta2 * precision + recall + EPSILON)
        if self.average == "weighted":
            score = np.sum(score * support / (support.sum() + EPSILON))
        elif self.average is not None:
            score = np.mean(score)
        return np.asarray(score, dtype=self.dtype)[()]

    def reset_state(self):
        if self._counts is not None:
            for variable in self._counts:
                variable.value.fill(0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "average": self.average,
                "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F1 score (FBetaScore with beta = 1); see FBetaScore."""

    default_name = "f1_score"

    def __init__(self, average=None, threshold=None, name=None, dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


class MeanIoU(Metric):
    """The mean over classes of intersection over union, tp / (tp + fp + fn), from a
    (sample-weighted) confusion matrix of ``num_classes`` classes accumulated over
    the batches; classes absent from both labels and predictions are left out of
    the mean. Labels and predictions are class ids (``sparse_y_true`` /
    ``sparse_y_pred`` True, as Keras' defaults) or scores whose argmax over ``axis``
    is taken; entries whose label is ``ignore_class`` are skipped."""

    default_name = "mean_io_u"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(name=name, dtype=dtype)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
                or num_classes < 1:
            raise ValueError(f"MeanIoU: num_classes must be an integer >= 1, got "
                             f"{num_classes!r}")
        self.num_classes, self.ignore_class = int(num_classes), ignore_class
        self.sparse_y_true, self.sparse_y_pred = bool(sparse_y_true), bool(sparse_y_pred)
        self.axis = int(axis)
        self.total_cm = self.add_weight((self.num_classes, self.num_classes),
                                        name="total_confusion_matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch to the confusion matrix (rows: labels, columns: predictions)."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if not self.sparse_y_true:
            y_true = y_true.argmax(axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = y_pred.argmax(axis=self.axis)
        labels = y_true.reshape(-1).astype(np.int64)
        predicted = y_pred.reshape(-1).astype(np.int64)
        if labels.shape != predicted.shape:
            raise ValueError(f"MeanIoU: {labels.size} labels but {predicted.size} predictions")
        weights = np.ones(labels.shape) if sample_weight is None else np.broadcast_to(
            np.asarray(sample_weight, dtype=np.float64).reshape(-1), labels.shape)
        if self.ignore_class is not None:
            kept = labels != self.ignore_class
            labels, predicted, weights = labels[kept], predicted[kept], weights[kept]
        n = self.num_classes
        outside = (labels < 0) | (labels >= n) | (predicted < 0) | (predicted >= n)
        if np.any(outside):
            raise ValueError(f"MeanIoU: class ids must lie in [0, {n}); got labels "
                             f"{np.unique(labels[outside]).tolist()[:5]} / predictions "
                             f"{np.unique(predicted[outside]).tolist()[:5]} (for scores, "
                             "pass sparse_y_pred=False)")
        cm = np.bincount(labels * n + predicted, weights=weights, minlength=n * n)
        self.total_cm.assign_add(cm.reshape(n, n))

    def result(self):
        cm = np.asarray(self.total_cm, dtype=np.float64)
        tp = np.diag(cm)
        denominator = cm.sum(axis=0) + cm.sum(axis=1) - tp
        present = np.sum(denominator > 1e-9)
        iou = tp / (denominator + EPSILON)
        return self.dtype.type(iou.sum() / (present + EPSILON))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "num_classes": self.num_classes,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
