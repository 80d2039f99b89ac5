"""Keras 3's other metrics (Precision, Recall, AUC, F1Score, top-k accuracies, MeanIoU,
RootMeanSquaredError) and compile's weighted_metrics: each against a direct NumPy
formula and, when it is installed, scikit-learn; state accumulated over batches
and reset; names, config round trips and saving; weighted_metrics in History."""
import numpy as np
import pytest

import fastnn
from fastnn import layers, metrics, models


@pytest.fixture
def binary_batch(rng):
    y_true = rng.integers(0, 2, 300)
    y_pred = np.clip(0.35 * y_true + rng.uniform(0, 0.65, 300), 0, 1)
    return y_true, y_pred


def _in_batches(metric, y_true, y_pred, sample_weight=None, size=37):
    metric.reset_state()
    for start in range(0, len(y_true), size):
        part = slice(start, start + size)
        metric.update_state(y_true[part], y_pred[part],
                            None if sample_weight is None else sample_weight[part])
    return np.asarray(metric.result())


# ---- Precision and Recall --------------------------------------------------------------
def _np_precision_recall(y_true, y_pred, threshold, weights=None):
    w = np.ones(y_true.shape) if weights is None else np.broadcast_to(
        weights.reshape(weights.shape + (1,) * (y_true.ndim - weights.ndim)), y_true.shape)
    predicted, positive = y_pred > threshold, y_true != 0
    tp = (w * (predicted & positive)).sum()
    return tp / (w * predicted).sum(), tp / (w * positive).sum()


def test_precision_recall_against_numpy(binary_batch, rng):
    y_true, y_pred = binary_batch
    weights = rng.uniform(0, 2, len(y_true))
    for threshold in (0.5, 0.3, 0.71):
        p, r = _np_precision_recall(y_true, y_pred, threshold)
        assert _in_batches(metrics.Precision(thresholds=threshold), y_true, y_pred) == \
            pytest.approx(p, rel=1e-6)
        assert _in_batches(metrics.Recall(thresholds=threshold), y_true, y_pred) == \
            pytest.approx(r, rel=1e-6)
        pw, rw = _np_precision_recall(y_true, y_pred, threshold, weights)
        assert _in_batches(metrics.Precision(thresholds=threshold), y_true, y_pred, weights) \
            == pytest.approx(pw, rel=1e-6)
        assert _in_batches(metrics.Recall(thresholds=threshold), y_true, y_pred, weights) == \
            pytest.approx(rw, rel=1e-6)
    several = _in_batches(metrics.Precision(thresholds=[0.7, 0.2, 0.5]), y_true, y_pred)
    np.testing.assert_allclose(several, [_np_precision_recall(y_true, y_pred, t)[0]
                                         for t in (0.7, 0.2, 0.5)], rtol=1e-6)


def test_precision_recall_against_sklearn(binary_batch, rng):
    sk = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = binary_batch
    weights = rng.uniform(0, 2, len(y_true))
    hard = (y_pred > 0.5).astype(int)
    assert metrics.Precision()(y_true, y_pred) == pytest.approx(
        sk.precision_score(y_true, hard), rel=1e-6)
    assert _in_batches(metrics.Recall(), y_true, y_pred, weights) == pytest.approx(
        sk.recall_score(y_true, hard, sample_weight=weights), rel=1e-6)


def test_precision_recall_top_k_and_class_id(rng):
    y_true = (rng.uniform(size=(40, 6)) > 0.6).astype(float)
    y_pred = rng.uniform(size=(40, 6))
    top2 = np.zeros_like(y_pred, dtype=bool)
    np.put_along_axis(top2, np.argsort(-y_pred, axis=1)[:, :2], True, axis=1)
    tp = (top2 & (y_true == 1)).sum()
    assert metrics.Precision(top_k=2)(y_true, y_pred) == pytest.approx(tp / top2.sum())
    assert metrics.Recall(top_k=2)(y_true, y_pred) == pytest.approx(tp / y_true.sum())
    c = 3
    predicted = y_pred[:, c] > 0.5
    assert metrics.Precision(class_id=c)(y_true, y_pred) == pytest.approx(
        (predicted & (y_true[:, c] == 1)).sum() / predicted.sum())
    in_top = top2[:, c]
    assert metrics.Recall(top_k=2, class_id=c)(y_true, y_pred) == pytest.approx(
        (in_top & (y_true[:, c] == 1)).sum() / y_true[:, c].sum())
    assert metrics.Precision()(np.zeros(3), np.zeros(3)) == 0.0     # nothing predicted: 0


# ---- AUC -------------------------------------------------------------------------------
def _np_auc(y_true, y_pred, num_thresholds, curve, summation):
    """Keras' AUC from its definition, one threshold at a time."""
    thresholds = np.concatenate([[-1e-7], np.arange(1, num_thresholds - 1) /
                                 (num_thresholds - 1), [1 + 1e-7]])
    counts = []
    for t in thresholds:
        predicted, positive = y_pred > t, y_true == 1
        counts.append(((predicted & positive).sum(), (predicted & ~positive).sum(),
                       (~predicted & ~positive).sum(), (~predicted & positive).sum()))
    tp, fp, tn, fn = np.array(counts, dtype=float).T
    if curve == "PR" and summation == "interpolation":
        total = 0.0
        for i in range(len(tp) - 1):
            dtp, pa, pb = tp[i] - tp[i + 1], tp[i] + fp[i], tp[i + 1] + fp[i + 1]
            slope = dtp / (pa - pb) if pa - pb > 0 else 0.0
            intercept = tp[i + 1] - slope * pb
            ratio = pa / pb if pa > 0 and pb > 0 else 1.0
            if tp[i + 1] + fn[i + 1] > 0:
                total += slope * (dtp + intercept * np.log(ratio)) / (tp[i + 1] + fn[i + 1])
        return total
    recall = tp / np.maximum(tp + fn, 1e-300)
    x, y = (fp / (fp + tn), recall) if curve == "ROC" else \
        (recall, np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0))
    heights = {"interpolation": (y[:-1] + y[1:]) / 2, "minoring": np.minimum(y[:-1], y[1:]),
               "majoring": np.maximum(y[:-1], y[1:])}[summation]
    return float(((x[:-1] - x[1:]) * heights).sum())


@pytest.mark.parametrize("curve", ["ROC", "PR"])
@pytest.mark.parametrize("summation", ["interpolation", "minoring", "majoring"])
def test_auc_against_its_definition(binary_batch, curve, summation):
    y_true, y_pred = binary_batch
    metric = metrics.AUC(num_thresholds=50, curve=curve, summation_method=summation)
    assert _in_batches(metric, y_true, y_pred) == pytest.approx(
        _np_auc(y_true, y_pred, 50, curve, summation), rel=1e-5)


def test_auc_minoring_and_majoring_bracket_interpolation(binary_batch):
    y_true, y_pred = binary_batch
    low, mid, high = (metrics.AUC(num_thresholds=20, summation_method=s)(y_true, y_pred)
                      for s in ("minoring", "interpolation", "majoring"))
    assert low <= mid <= high


def test_auc_against_sklearn(binary_batch, rng):
    sk = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = binary_batch
    weights = rng.uniform(0, 2, len(y_true))
    # with fine thresholds the trapezoids of Keras' ROC are the exact area
    assert _in_batches(metrics.AUC(num_thresholds=2000), y_true, y_pred) == pytest.approx(
        sk.roc_auc_score(y_true, y_pred), abs=2e-3)
    assert _in_batches(metrics.AUC(num_thresholds=2000), y_true, y_pred, weights) == \
        pytest.approx(sk.roc_auc_score(y_true, y_pred, sample_weight=weights), abs=2e-3)
    # Keras' default 200 thresholds: within its interpolation's tolerance
    assert metrics.AUC()(y_true, y_pred) == pytest.approx(sk.roc_auc_score(y_true, y_pred),
                                                          abs=1e-2)
    # PR: Davis & Goadrich's interpolation vs sklearn's step-wise average precision
    assert metrics.AUC(curve="PR", num_thresholds=2000)(y_true, y_pred) == pytest.approx(
        sk.average_precision_score(y_true, y_pred), abs=2e-2)


def test_auc_multi_label_logits_and_given_thresholds(rng):
    y_true = (rng.uniform(size=(80, 3)) > 0.5).astype(float)
    y_pred = np.clip(0.3 * y_true + rng.uniform(0, 0.7, (80, 3)), 0, 1)
    per_label = [_np_auc(y_true[:, j], y_pred[:, j], 30, "ROC", "interpolation")
                 for j in range(3)]
    assert metrics.AUC(num_thresholds=30, multi_label=True)(y_true, y_pred) == \
        pytest.approx(np.mean(per_label), rel=1e-5)
    weighted = metrics.AUC(num_thresholds=30, multi_label=True, label_weights=[1, 2, 3])
    assert weighted(y_true, y_pred) == pytest.approx(
        np.dot(per_label, [1, 2, 3]) / 6, rel=1e-5)
    flat = _np_auc(y_true.ravel(), y_pred.ravel(), 30, "ROC", "interpolation")
    assert metrics.AUC(num_thresholds=30)(y_true, y_pred) == pytest.approx(flat, rel=1e-5)
    logits = np.log(y_pred.clip(1e-6, 1 - 1e-6) / (1 - y_pred.clip(1e-6, 1 - 1e-6)))
    assert metrics.AUC(num_thresholds=30, from_logits=True)(y_true, logits) == \
        pytest.approx(flat, rel=1e-4)
    given = metrics.AUC(thresholds=[0.25, 0.5, 0.75])
    assert given.num_thresholds == 5 and given.thresholds[1:-1] == [0.25, 0.5, 0.75]
    assert given(y_true, y_pred) == pytest.approx(
        _np_auc(y_true.ravel(), y_pred.ravel(), 5, "ROC", "interpolation"), rel=1e-6)
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve"):
        metrics.AUC(curve="XY")


# ---- F1Score ------------------------------------------------------------------------------
def _np_f1(y_true, hard, average, weights=None):
    w = np.ones((len(y_true), 1)) if weights is None else weights[:, None]
    axis = None if average == "micro" else 0
    tp = (w * hard * y_true).sum(axis)
    fp = (w * hard * (1 - y_true)).sum(axis)
    fn = (w * (1 - hard) * y_true).sum(axis)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-300)
    if average == "weighted":
        support = (w * y_true).sum(0)
        return (f1 * support).sum() / support.sum()
    return f1.mean() if average == "macro" else f1


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_f1_score_against_numpy_and_sklearn(average, rng):
    y_true = np.eye(4)[rng.integers(0, 4, 90)]
    y_pred = rng.dirichlet(np.ones(4), 90) + 0.3 * y_true
    weights = rng.uniform(0, 2, 90)
    hard = (y_pred == y_pred.max(1, keepdims=True)).astype(float)
    got = _in_batches(metrics.F1Score(average=average), y_true, y_pred)
    np.testing.assert_allclose(got, _np_f1(y_true, hard, average), rtol=1e-5)
    multi = (rng.uniform(size=(90, 4)) > 0.5).astype(float)
    thresholded = (y_pred > 0.3).astype(float)
    got_w = _in_batches(metrics.F1Score(average=average, threshold=0.3), multi, y_pred, weights)
    np.testing.assert_allclose(got_w, _np_f1(multi, thresholded, average, weights), rtol=1e-5)
    try:
        import sklearn.metrics as sk
    except ImportError:
        return
    np.testing.assert_allclose(got, sk.f1_score(y_true, hard, average=average), rtol=1e-5)
    np.testing.assert_allclose(got_w, sk.f1_score(multi, thresholded, average=average,
                                                  sample_weight=weights), rtol=1e-5)


def test_f1_score_checks_its_arguments():
    with pytest.raises(ValueError, match="average"):
        metrics.F1Score(average="samples")
    with pytest.raises(ValueError, match="threshold"):
        metrics.F1Score(threshold=1.5)
    with pytest.raises(ValueError, match="2D"):
        metrics.F1Score().update_state(np.ones(3), np.ones(3))


# ---- top-k accuracies -------------------------------------------------------------------
def test_top_k_accuracies_against_numpy(rng):
    y_pred = rng.uniform(size=(50, 7))
    labels = rng.integers(0, 7, 50)
    rank = (y_pred > y_pred[np.arange(50), labels][:, None]).sum(1)      # 0: the top
    weights = rng.uniform(0, 2, 50)
    for k in (1, 3, 5):
        hit = (rank < k).astype(float)
        assert _in_batches(metrics.SparseTopKCategoricalAccuracy(k=k), labels, y_pred) == \
            pytest.approx(hit.mean(), rel=1e-6)
        assert _in_batches(metrics.TopKCategoricalAccuracy(k=k), np.eye(7)[labels], y_pred,
                           weights) == pytest.approx((hit * weights).sum() / weights.sum(),
                                                     rel=1e-6)
    assert metrics.TopKCategoricalAccuracy().k == 5
    sorted_ids = np.argsort(-y_pred, axis=1)
    assert metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True)(
        labels[:, None], sorted_ids) == pytest.approx((rank < 2).mean())
    # ties at the k-th value count as in the top k (Keras' in_top_k)
    assert metrics.sparse_top_k_categorical_accuracy(np.array([2]), np.array([[0.5, 0.5, 0.5]]),
                                                     k=1)[0] == 1.0


# ---- MeanIoU and RootMeanSquaredError -------------------------------------------------------
def _np_mean_iou(labels, predicted, n, weights=None):
    cm = np.zeros((n, n))
    np.add.at(cm, (labels, predicted), 1.0 if weights is None else weights)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean()


def test_mean_iou_against_numpy_and_sklearn(rng):
    labels = rng.integers(0, 5, (30, 4))
    predicted = np.where(rng.uniform(size=(30, 4)) < 0.6, labels, rng.integers(0, 5, (30, 4)))
    predicted[predicted == 4] = 0                    # class 4: never predicted
    weights = rng.uniform(0, 2, 30)
    assert _in_batches(metrics.MeanIoU(num_classes=6), labels, predicted) == pytest.approx(
        _np_mean_iou(labels.ravel(), predicted.ravel(), 6), rel=1e-5)    # class 5: absent
    scores = np.eye(6)[predicted] + 0.01
    got = _in_batches(metrics.MeanIoU(6, sparse_y_pred=False), labels, scores,
                      np.repeat(weights[:, None], 4, 1))
    assert got == pytest.approx(_np_mean_iou(labels.ravel(), predicted.ravel(), 6,
                                             np.repeat(weights, 4)), rel=1e-5)
    kept = labels.ravel() != 2
    assert metrics.MeanIoU(6, ignore_class=2)(labels, predicted) == pytest.approx(
        _np_mean_iou(labels.ravel()[kept], predicted.ravel()[kept], 6), rel=1e-5)
    try:
        import sklearn.metrics as sk
    except ImportError:
        return
    present = np.union1d(labels, predicted)
    assert metrics.MeanIoU(6)(labels, predicted) == pytest.approx(
        sk.jaccard_score(labels.ravel(), predicted.ravel(), labels=present, average="macro"),
        rel=1e-5)
    with pytest.raises(ValueError, match="sparse_y_pred"):
        metrics.MeanIoU(3)(np.array([0, 1]), np.array([0, 7]))


def test_root_mean_squared_error(rng):
    y_true, y_pred = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    weights = rng.uniform(0, 2, 40)
    assert _in_batches(metrics.RootMeanSquaredError(), y_true, y_pred) == pytest.approx(
        np.sqrt(((y_true - y_pred) ** 2).mean()), rel=1e-6)
    per_sample = ((y_true - y_pred) ** 2).mean(1)
    assert _in_batches(metrics.RootMeanSquaredError(), y_true, y_pred, weights) == \
        pytest.approx(np.sqrt((per_sample * weights).sum() / weights.sum()), rel=1e-6)
    try:
        import sklearn.metrics as sk
    except ImportError:
        return
    assert metrics.RootMeanSquaredError()(y_true, y_pred) == pytest.approx(
        np.sqrt(sk.mean_squared_error(y_true, y_pred)), rel=1e-6)


# ---- state, names, config ------------------------------------------------------------------
ALL = [lambda: metrics.Precision(thresholds=[0.3, 0.6]), lambda: metrics.Recall(class_id=1),
       lambda: metrics.AUC(num_thresholds=40), lambda: metrics.AUC(curve="PR"),
       lambda: metrics.F1Score(average="macro"),
       lambda: metrics.TopKCategoricalAccuracy(k=2),
       lambda: metrics.MeanIoU(3, sparse_y_true=False, sparse_y_pred=False),
       lambda: metrics.RootMeanSquaredError()]


@pytest.mark.parametrize("make", ALL)
def test_state_accumulates_over_batches_and_resets(make, rng):
    y_true = np.eye(3)[rng.integers(0, 3, 60)]
    y_pred = rng.dirichlet(np.ones(3), 60)
    whole = make()
    whole.update_state(y_true, y_pred)
    expected = np.asarray(whole.result())
    split = make()
    for _ in range(2):                    # a second pass after reset_state: the same
        split.reset_state()
        for part in (slice(0, 13), slice(13, 41), slice(41, 60)):
            split.update_state(y_true[part], y_pred[part])
        np.testing.assert_allclose(np.asarray(split.result()), expected, rtol=1e-5)
    split.reset_state()
    split.update_state(y_true[:5], y_pred[:5])
    fresh = make()
    fresh.update_state(y_true[:5], y_pred[:5])
    np.testing.assert_allclose(np.asarray(split.result()), np.asarray(fresh.result()),
                               rtol=1e-6)
    again = metrics.deserialize(metrics.serialize(split))
    assert type(again) is type(split) and again.get_config() == split.get_config()


@pytest.mark.parametrize("identifier, cls", [
    ("precision", metrics.Precision), ("recall", metrics.Recall), ("auc", metrics.AUC),
    ("AUC", metrics.AUC), ("f1_score", metrics.F1Score), ("F1Score", metrics.F1Score),
    ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
    ("sparse_top_k_categorical_accuracy", metrics.SparseTopKCategoricalAccuracy),
    ("root_mean_squared_error", metrics.RootMeanSquaredError)])
def test_get_by_keras_names(identifier, cls):
    metric = metrics.get(identifier)
    assert type(metric) is cls


def test_default_names_are_keras():
    assert [m.name for m in (metrics.Precision(), metrics.Recall(), metrics.AUC(),
                             metrics.F1Score(), metrics.MeanIoU(2),
                             metrics.RootMeanSquaredError(), metrics.TopKCategoricalAccuracy(),
                             metrics.SparseTopKCategoricalAccuracy())] == \
        ["precision", "recall", "auc", "f1_score", "mean_io_u", "root_mean_squared_error",
         "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"]


# ---- in a model: fit / evaluate logs, weighted_metrics, saving ----------------------------
def _classifier(seed=0):
    fastnn.set_seed(seed)
    return models.Sequential([layers.Dense(8, activation="tanh", input_shape=(5,)),
                              layers.Dense(1, activation="sigmoid")])


def _binary_data(rng, n=120):
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * rng.normal(size=n)) > 0).astype(np.float32)
    return x, y


def test_metrics_in_evaluate_match_the_metric_on_predictions(backend, rng):
    x, y = _binary_data(rng)
    model = _classifier()
    model.compile("adam", "binary_crossentropy",
                  metrics=["auc", metrics.Precision(), metrics.Recall(thresholds=[0.3, 0.7]),
                           metrics.RootMeanSquaredError()])
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    logs = model.evaluate(x, y, batch_size=17, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)
    assert logs["auc"] == pytest.approx(metrics.AUC()(y, pred), rel=1e-6)
    assert logs["precision"] == pytest.approx(metrics.Precision()(y, pred), rel=1e-6)
    np.testing.assert_allclose(logs["recall"], metrics.Recall(thresholds=[0.3, 0.7])(y, pred),
                               rtol=1e-6)
    assert logs["root_mean_squared_error"] == pytest.approx(
        np.sqrt(((pred[:, 0] - y) ** 2).mean()), rel=1e-5)


def test_weighted_metrics_names_and_values_in_history(backend, rng):
    x, y = _binary_data(rng, 96)
    w = rng.uniform(0.1, 2.0, 96).astype(np.float32)
    model = _classifier()
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy", "mae"],
                  weighted_metrics=["accuracy", "auc", metrics.Precision()])
    history = model.fit(x, y, sample_weight=w, epochs=1, batch_size=96, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "mae", "weighted_accuracy", "auc",
                                     "precision"]
    logs = model.evaluate(x, y, sample_weight=w, batch_size=25, return_dict=True, verbose=0)
    pred = model.predict(x, verbose=0)[:, 0]
    hit = ((pred > 0.5) == (y > 0.5)).astype(float)
    assert logs["accuracy"] == pytest.approx(hit.mean(), rel=1e-6)
    assert logs["weighted_accuracy"] == pytest.approx((hit * w).sum() / w.sum(), rel=1e-5)
    assert logs["auc"] == pytest.approx(metrics.AUC()(y, pred, sample_weight=w), rel=1e-5)
    assert logs["precision"] == pytest.approx(
        metrics.Precision()(y, pred, sample_weight=w), rel=1e-5)
    # without sample weights, a weighted metric is the plain one
    plain = model.evaluate(x, y, return_dict=True, verbose=0)
    assert plain["weighted_accuracy"] == pytest.approx(plain["accuracy"])
    # fit's logs weigh too: these weights make the two accuracies differ
    assert history.history["weighted_accuracy"][0] != pytest.approx(
        history.history["accuracy"][0], rel=1e-9)


def test_weighted_metrics_of_several_outputs(rng):
    x = rng.normal(size=(40, 5)).astype(np.float32)
    inputs = fastnn.Input(shape=(5,))
    a = layers.Dense(1, name="a")(inputs)
    b = layers.Dense(2, name="b")(inputs)
    model = fastnn.Model(inputs, [a, b])
    model.compile("sgd", ["mse", "mse"], metrics=[["mae"], []],
                  weighted_metrics={"a": ["mae"], "b": ["mse"]})
    ya, yb = rng.normal(size=(40, 1)), rng.normal(size=(40, 2))
    w = rng.uniform(0, 2, 40)
    logs = model.evaluate(x, [ya, yb], sample_weight=w, return_dict=True, verbose=0)
    assert [k for k in logs if "mae" in k or "mse" in k] == ["a_mae", "a_weighted_mae", "b_mse"]
    pa, pb = model.predict(x, verbose=0)
    assert logs["a_weighted_mae"] == pytest.approx(
        (np.abs(pa - ya)[:, 0] * w).sum() / w.sum(), rel=1e-5)
    assert logs["b_mse"] == pytest.approx(
        (((pb - yb) ** 2).mean(1) * w).sum() / w.sum(), rel=1e-5)


def test_saving_a_compiled_model_keeps_its_metrics_and_weighted_metrics(tmp_path, rng):
    x, y = _binary_data(rng, 60)
    w = rng.uniform(0.1, 2.0, 60)
    model = _classifier()
    model.compile("adam", "binary_focal_crossentropy",
                  metrics=[metrics.AUC(curve="PR", num_thresholds=50), metrics.F1Score(
                      threshold=0.5), metrics.Recall(thresholds=[0.2, 0.8])],
                  weighted_metrics=["accuracy", metrics.RootMeanSquaredError(name="rmse")])
    model.fit(x, y[:, None], epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    before = model.evaluate(x, y[:, None], sample_weight=w, return_dict=True, verbose=0)
    after = loaded.evaluate(x, y[:, None], sample_weight=w, return_dict=True, verbose=0)
    assert list(after) == list(before) == ["loss", "auc", "f1_score", "recall", "accuracy",
                                           "rmse"]
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6)
