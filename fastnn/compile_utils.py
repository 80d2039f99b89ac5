"""What ``compile`` says about each output: its loss, loss weight and metrics.

``compile(loss=..., loss_weights=..., metrics=...)`` takes each as Keras 3 does:
one value for every output, a list with one entry per output, or a dict keyed
by output name (outputs left out get no loss / weight 1 / no metrics). They
are resolved against the model's outputs when it is built (a Sequential model
may be compiled before it knows its input shape), giving one ``Objective``
per output. The logs name things as Keras does: ``loss`` (the weighted total),
``<output>_loss`` for each output when several have losses, and the metrics
as ``<metric>`` (one output) or ``<output>_<metric>`` (several).
"""
import numpy as np

from fastnn import losses as _losses
from fastnn import metrics as _metrics

# Last-layer activation -> losses that can take its logits instead (Keras on
# TensorFlow does the same): the loss fuses the activation, exactly and stably.
FUSABLE = {
    "softmax": ("categorical_crossentropy", "sparse_categorical_crossentropy"),
    "sigmoid": ("binary_crossentropy",),
}


class Objective:
    """One output: its index and name, its Loss (or None), the loss's weight and
    the metric identifiers compile named for it (resolved later, per data)."""

    def __init__(self, index, name, loss, weight, metric_ids, weighted_metric_ids=()):
        self.index, self.name = index, name
        self.loss, self.weight, self.metric_ids = loss, weight, metric_ids
        self.weighted_metric_ids = list(weighted_metric_ids)

    @property
    def sparse_targets(self):
        return self.loss is not None and self.loss.kernel == "sparse_categorical_crossentropy"

    def resolve_metrics(self, output_dim):
        return [_metrics.get(m, sparse_targets=self.sparse_targets, output_dim=output_dim)
                for m in self.metric_ids]

    def resolve_weighted_metrics(self, output_dim):
        """The weighted_metrics compile named for this output (weighed by sample_weight)."""
        return [_metrics.get(m, sparse_targets=self.sparse_targets, output_dim=output_dim)
                for m in self.weighted_metric_ids]


def per_output(value, names, what, default, check):
    """``value`` for each output (a list in output order): a single value for all,
    a list/tuple with one entry per output, or a dict keyed by output name
    (``default`` for outputs it leaves out). ``check`` validates one entry."""
    n = len(names)
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"compile: {what} has keys {unknown} that are not outputs of the "
                             f"model; its outputs are {names}")
        return [check(value[name]) if name in value else default for name in names]
    if isinstance(value, (list, tuple)) and n > 1:
        if len(value) != n:
            raise ValueError(f"compile: {what} is a list of {len(value)} but the model has "
                             f"{n} outputs {names}: give one entry per output, or a dict "
                             "keyed by output name")
        return [check(v) for v in value]
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"compile: {what} is a list of {len(value)} but the model has "
                             f"one output")
        return [check(value[0])]
    return [check(value)] * n


def _loss(value):
    return None if value is None else _losses.get(value)


def _weight(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"compile: a loss weight must be a finite number >= 0, got {value!r}")
    return float(value)


def _metric_list(value):
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for m in items:
        # validate now; "accuracy" is resolved against the data's shapes in fit
        _metrics.get(m, sparse_targets=False, output_dim=2)
    return items


def resolve(loss, loss_weights, metrics, names, weighted_metrics=None):
    """One Objective per output name, from compile's arguments (``weighted_metrics``
    take the same forms as ``metrics``)."""
    n = len(names)
    losses = per_output(loss, names, "loss", None, _loss)
    weights = ([1.0] * n if loss_weights is None
               else per_output(loss_weights, names, "loss_weights", 1.0, _weight))
    metric_lists = _metric_lists(metrics, names, "metrics")
    weighted_lists = _metric_lists(weighted_metrics, names, "weighted_metrics")
    return [Objective(i, name, lo, w, m, wm)
            for i, (name, lo, w, m, wm) in enumerate(zip(names, losses, weights, metric_lists,
                                                         weighted_lists))]


def _metric_lists(metrics, names, what):
    """The metric identifiers of each output, from ``metrics`` (or ``weighted_metrics``)."""
    n = len(names)
    if metrics is None:
        return [[] for _ in names]
    if n == 1:
        if isinstance(metrics, dict):
            return per_output(metrics, names, what, [], _metric_list)
        return [_metric_list(metrics)]
    if isinstance(metrics, dict) or (isinstance(metrics, (list, tuple)) and len(metrics) == n):
        return per_output(metrics, names, what, [], _metric_list)
    raise ValueError(f"compile: for a model with {n} outputs {names}, {what} must be a "
                     "list with one entry (a metric, a list of them or None) per output, "
                     f"or a dict keyed by output name; got {metrics!r}")


def metric_log_names(objectives, metrics, weighted, several):
    """The logs' names of each output's metrics, then its weighted metrics, as Keras 3
    names them: ``<metric>`` (``<output>_<metric>`` when the model has several
    outputs); a repeated metric name gets ``_1``, ``_2``...; a weighted metric whose
    name is taken is ``weighted_<metric>`` instead. ``metrics`` / ``weighted``: lists
    of (output index k, metric) in log order."""
    names, taken = [], {}

    def qualified(k, name):
        return f"{objectives[k].name}_{name}" if several else name

    for k, metric in metrics:
        name = qualified(k, metric.name)
        if name in taken:
            taken[name] += 1
            name = f"{name}_{taken[name] - 1}"
        else:
            taken[name] = 1
        names.append(name)
    for k, metric in weighted:
        name = qualified(k, metric.name)
        if name in taken:
            name = qualified(k, f"weighted_{metric.name}")
            if name in taken:
                taken[name] += 1
                name = f"{name}_{taken[name] - 1}"
            else:
                taken[name] = 1
        else:
            taken[name] = 1
        names.append(name)
    return names


def check_compile_args(loss, loss_weights, metrics, weighted_metrics=None):
    """Validate what can be checked before the outputs are known (unknown names,
    bad weights), so that compile itself raises for them."""
    if weighted_metrics is not None:
        check_compile_args(None, None, weighted_metrics)
    for value in (loss.values() if isinstance(loss, dict)
                  else loss if isinstance(loss, (list, tuple)) else [loss]):
        _loss(value)
    if loss_weights is not None:
        for value in (loss_weights.values() if isinstance(loss_weights, dict)
                      else loss_weights if isinstance(loss_weights, (list, tuple))
                      else [loss_weights]):
            _weight(value)
    if metrics is not None:
        for value in (metrics.values() if isinstance(metrics, dict) else [metrics]):
            if isinstance(value, (list, tuple)):
                for item in value:
                    _metric_list(item)
            else:
                _metric_list(value)
