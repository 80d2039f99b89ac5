"""Several inputs and outputs through the training API: x and y as lists or dicts,
losses, loss weights and metrics per output, Keras' log names, sample weights."""
import numpy as np
import pytest

import fastnn
import fastnn as keras
from fastnn import layers

NUM_TAGS, NUM_WORDS, NUM_DEPARTMENTS = 12, 100, 4


def ticket_model():
    """keras.io functional-API guide: three inputs (title, body, tags), two outputs."""
    title_input = keras.Input(shape=(None,), name="title")
    body_input = keras.Input(shape=(None,), name="body")
    tags_input = keras.Input(shape=(NUM_TAGS,), name="tags")
    title_features = layers.Embedding(NUM_WORDS, 16)(title_input)
    body_features = layers.Embedding(NUM_WORDS, 16)(body_input)
    title_features = layers.LSTM(16)(title_features)
    body_features = layers.LSTM(8)(body_features)
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(NUM_DEPARTMENTS, name="department")(x)
    return keras.Model(inputs=[title_input, body_input, tags_input],
                       outputs={"priority": priority_pred, "department": department_pred})


def ticket_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    title = rng.integers(NUM_WORDS, size=(n, 10))
    body = rng.integers(NUM_WORDS, size=(n, 20))
    tags = rng.integers(2, size=(n, NUM_TAGS)).astype("float32")
    priority = rng.random(size=(n, 1))
    department = rng.integers(2, size=(n, NUM_DEPARTMENTS))
    return (title, body, tags), (priority, department)


def compile_ticket(model, form):
    losses = {"priority": keras.losses.BinaryCrossentropy(from_logits=True),
              "department": keras.losses.CategoricalCrossentropy(from_logits=True)}
    weights = {"priority": 1.0, "department": 0.2}
    if form == "list":
        losses, weights = [losses["priority"], losses["department"]], [1.0, 0.2]
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss=losses, loss_weights=weights)


def test_guide_model_fits_with_dicts_and_lists_identically(backend):
    (title, body, tags), (priority, department) = ticket_data()
    histories, weights = [], []
    for form in ("dict", "list"):
        fastnn.set_seed(0)
        model = ticket_model()
        compile_ticket(model, form)
        if form == "dict":
            history = model.fit({"title": title, "body": body, "tags": tags},
                                {"priority": priority, "department": department},
                                epochs=2, batch_size=32, verbose=0)
        else:
            history = model.fit([title, body, tags], [priority, department], epochs=2,
                                batch_size=32, verbose=0)
        histories.append(history.history)
        weights.append(model.get_weights())
    assert set(histories[0]) == {"loss", "priority_loss", "department_loss"}
    assert histories[0] == histories[1]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    # the embeddings are fed integer indices, never floats; the tags floats
    from fastnn import data_prep
    prepared = data_prep.prepare_inputs(model, [title, body, tags], "check")
    assert [a.dtype for a in prepared] == [np.int64, np.int64, np.float32]
    assert model.input_names == ["title", "body", "tags"]
    assert model.output_names == ["priority", "department"]


def test_total_loss_is_the_weighted_sum_of_output_losses(backend):
    fastnn.set_seed(1)
    (title, body, tags), (priority, department) = ticket_data(seed=1)
    model = ticket_model()
    compile_ticket(model, "dict")
    logs = model.evaluate([title, body, tags], [priority, department], return_dict=True,
                          verbose=0)
    assert logs["loss"] == pytest.approx(logs["priority_loss"] + 0.2 * logs["department_loss"],
                                         rel=1e-6)
    each = keras.losses.BinaryCrossentropy(from_logits=True)(
        priority, model.predict([title, body, tags], verbose=0)["priority"])
    assert logs["priority_loss"] == pytest.approx(each, rel=1e-5)
    values = model.evaluate([title, body, tags], [priority, department], verbose=0)
    assert values == pytest.approx(list(logs.values()))


def test_predict_returns_the_outputs_structure(backend):
    fastnn.set_seed(2)
    (title, body, tags), _ = ticket_data(n=5)
    model = ticket_model()
    out = model.predict({"title": title, "body": body, "tags": tags}, verbose=0)
    assert set(out) == {"priority", "department"}
    assert out["priority"].shape == (5, 1) and out["department"].shape == (5, 4)
    inputs = keras.Input(shape=(3,))
    pair = keras.Model(inputs, [layers.Dense(2)(inputs), layers.Dense(1)(inputs)])
    a, b = pair.predict(np.ones((4, 3), np.float32), verbose=0)
    assert a.shape == (4, 2) and b.shape == (4, 1)


def two_output_model():
    inputs = keras.Input(shape=(4,), name="x")
    h = layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, [layers.Dense(3, activation="softmax", name="cls")(h),
                                layers.Dense(1, name="reg")(h)])


def two_output_data(n=60, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, np.argmax(x[:, :3], axis=1), (x[:, :1] * 2).astype(np.float32)


def test_metrics_per_output_are_named_as_keras_names_them(backend):
    fastnn.set_seed(3)
    x, labels, target = two_output_data()
    model = two_output_model()
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"],
                  metrics={"cls": "accuracy", "reg": ["mae", "mse"]})
    history = model.fit(x, [labels, target], epochs=2, verbose=0, validation_split=0.25)
    assert list(history.history) == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae",
                                     "reg_mse", "val_loss", "val_cls_loss", "val_reg_loss",
                                     "val_cls_accuracy", "val_reg_mae", "val_reg_mse"]
    logs = model.evaluate(x, {"cls": labels, "reg": target}, return_dict=True, verbose=0)
    pred_cls, pred_reg = model.predict(x, verbose=0)
    assert logs["reg_mae"] == pytest.approx(np.mean(np.abs(pred_reg - target)), rel=1e-5)
    assert logs["cls_accuracy"] == pytest.approx(np.mean(pred_cls.argmax(1) == labels))


def test_an_output_without_a_loss_gets_no_target_and_no_gradient(backend):
    fastnn.set_seed(4)
    x, labels, target = two_output_data(seed=4)
    model = two_output_model()
    model.compile(optimizer="adam", loss={"reg": "mse"})
    reg_only = model.get_layer("cls").get_weights()
    history = model.fit(x, {"reg": target}, epochs=2, verbose=0)
    assert set(history.history) == {"loss"}
    for a, b in zip(reg_only, model.get_layer("cls").get_weights()):
        np.testing.assert_array_equal(a, b)          # nothing reaches the unused head
    assert model.evaluate(x, [None, target], verbose=0) == model.evaluate(x, {"reg": target},
                                                                          verbose=0)


def test_sample_weight_per_output(backend):
    fastnn.set_seed(5)
    x, labels, target = two_output_data(seed=5)
    model = two_output_model()
    model.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy", "mse"])
    weights = np.linspace(0, 2, len(x)).astype(np.float32)
    plain = model.evaluate(x, [labels, target], return_dict=True, verbose=0)
    weighted = model.evaluate(x, [labels, target], sample_weight={"reg": weights},
                              return_dict=True, verbose=0)
    assert weighted["cls_loss"] == pytest.approx(plain["cls_loss"])
    assert weighted["reg_loss"] != pytest.approx(plain["reg_loss"])
    with pytest.raises(ValueError, match="class_weight is only supported for models with one"):
        model.fit(x, [labels, target], class_weight={0: 1.0}, verbose=0)


WRONG = {
    "x dict keys": (lambda m, x, l, t: m.fit({"nope": x}, [l, t], verbose=0),
                    r"input names \['x'\]; got keys \['nope'\]"),
    "y dict keys": (lambda m, x, l, t: m.fit(x, {"cls": l, "regression": t}, verbose=0),
                    r"\['regression'\] are not outputs of the model, whose outputs are "
                    r"\['cls', 'reg'\]"),
    "y as one array": (lambda m, x, l, t: m.fit(x, t, verbose=0),
                       r"2 outputs \['cls', 'reg'\]: pass y as a list"),
    "y list length": (lambda m, x, l, t: m.fit(x, [l, t, t], verbose=0),
                      "a list of 3 but the model has 2 outputs"),
    "x list length": (lambda m, x, l, t: m.fit([x, x], [l, t], verbose=0), "got a list of 2"),
    "y shape": (lambda m, x, l, t: m.fit(x, [l, np.zeros((len(x), 2))], verbose=0),
                r"\(60, 2\) but the model's output \(layer 'reg'\) is \(None, 1\)"),
}


@pytest.mark.parametrize("call,match", WRONG.values(), ids=WRONG.keys())
def test_wrong_structures_name_what_was_expected(backend, call, match):
    x, labels, target = two_output_data()
    model = two_output_model()
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match=match):
        call(model, x, labels, target)


@pytest.mark.parametrize("kwargs,match", [
    ({"loss": {"cls": "mse", "nope": "mse"}}, r"\['nope'\] that are not outputs"),
    ({"loss": ["mse"] * 3}, "list of 3 but the model has 2 outputs"),
    ({"loss": "mse", "loss_weights": [1.0]}, "loss_weights is a list of 1"),
    ({"loss": "mse", "loss_weights": [1.0, -1.0]}, "finite number >= 0"),
    ({"loss": "mse", "metrics": ["mae"]}, "one entry .* per output"),
])
def test_compile_structures_are_checked_against_the_outputs(kwargs, match):
    x, labels, target = two_output_data()
    model = two_output_model()
    with pytest.raises(ValueError, match=match):
        model.compile(optimizer="adam", **kwargs)
        model.fit(x, [labels, target], verbose=0)
