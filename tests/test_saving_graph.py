"""Saving graph models (format 2): nodes, shared layers, merges, nested models,
several inputs and outputs -- and files written by fastnn 0.1 (format 1)."""
import json
import pathlib
import zipfile

import numpy as np
import pytest

import fastnn
import fastnn as keras
from fastnn import layers, models, optimizers

V1 = pathlib.Path(__file__).parent / "data" / "format_v1"


def graph_model():
    """Shared layers, merges, a nested functional model and a nested Sequential."""
    a = keras.Input(shape=(6,), name="a")
    b = keras.Input(shape=(6,), name="b")
    inner_in = keras.Input(shape=(6,))
    encoder = keras.Model(inner_in, layers.Dense(5, activation="tanh")(inner_in),
                          name="encoder")
    ea, eb = encoder(a), encoder(b)                       # the encoder is shared
    shared = layers.Dense(5, activation="relu", name="shared")
    merged = layers.concatenate([layers.add([shared(ea), shared(eb)]),
                                 layers.maximum([ea, eb])])
    head = models.Sequential([layers.Dense(4, activation="relu"), layers.Dropout(0.2),
                              layers.BatchNormalization()], name="head")
    h = head(merged)
    out_cls = layers.Dense(3, activation="softmax", name="cls")(h)
    out_reg = layers.Dense(1, name="reg")(layers.multiply([h, h]))
    return keras.Model({"a": a, "b": b}, {"cls": out_cls, "reg": out_reg}, name="siamese")


def graph_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, 6)).astype(np.float32)
    b = rng.standard_normal((n, 6)).astype(np.float32)
    return {"a": a, "b": b}, {"cls": np.argmax(a[:, :3] - b[:, :3], axis=1),
                              "reg": (a[:, :1] * b[:, 1:2]).astype(np.float32)}


def compiled_graph_model():
    model = graph_model()
    model.compile(optimizer=optimizers.Adam(0.01),
                  loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5},
                  metrics={"cls": ["accuracy"], "reg": "mae"})
    return model


def test_graph_round_trip_predicts_identically_and_resumes_bitwise(backend, tmp_path):
    fastnn.set_seed(0)
    x, y = graph_data()
    model = compiled_graph_model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "g.fnn")
    loaded = models.load_model(tmp_path / "g.fnn")
    assert type(loaded) is models.Model and loaded.name == "siamese"
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert type(loaded.get_layer("head")) is models.Sequential
    assert loaded.input_names == ["a", "b"] and loaded.output_names == ["cls", "reg"]
    want, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert set(got) == {"cls", "reg"}
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    assert loaded.count_params() == model.count_params()
    assert len(loaded.get_layer("shared")._inbound_nodes) == 2      # still shared
    for m in (model, loaded):
        fastnn.set_seed(1)
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.evaluate(x, y, return_dict=True, verbose=0) == \
        model.evaluate(x, y, return_dict=True, verbose=0)


def test_config_describes_nodes_and_rebuilds_without_running_code():
    model = graph_model()
    config = model.get_config()
    assert {"layers", "nodes", "inputs", "outputs"} <= set(config)
    adds = [n for n in config["nodes"] if n["layer"].startswith("add")]
    assert adds and adds[0]["list"] is True
    assert config["output_keys"] == ["cls", "reg"]
    json.dumps(config)                                  # plain data
    clone = models.Model.from_config(config)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    x, _ = graph_data(n=5)
    clone.set_weights(model.get_weights())
    for key, value in model.predict(x, verbose=0).items():
        np.testing.assert_allclose(clone.predict(x, verbose=0)[key], value, rtol=1e-6)


def test_load_weights_matches_by_layer_name_then_by_order(tmp_path):
    fastnn.set_seed(2)
    model = graph_model()
    model.save_weights(tmp_path / "w.fnn")
    x, _ = graph_data(n=4)
    want = model.predict(x, verbose=0)
    fastnn.set_seed(3)
    same_names = models.Model.from_config(model.get_config())      # same names: by name
    same_names.load_weights(tmp_path / "w.fnn")
    fastnn.set_seed(4)
    renamed = graph_model()                                         # new automatic names
    renamed.load_weights(tmp_path / "w.fnn")                        # by order
    for other in (same_names, renamed):
        got = other.predict(x, verbose=0)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def tamper(tmp_path, edit):
    model = graph_model()
    model.save(tmp_path / "good.fnn")
    with zipfile.ZipFile(tmp_path / "good.fnn") as z:
        entries = {i.filename: (z.read(i), i.compress_type) for i in z.infolist()}
    document = json.loads(entries["model.json"][0])
    edit(document["model"]["config"])
    entries["model.json"] = (json.dumps(document).encode(), zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(tmp_path / "bad.fnn", "w") as z:
        for name, (payload, kind) in entries.items():
            z.writestr(zipfile.ZipInfo(name), payload, compress_type=kind)
    return tmp_path / "bad.fnn"


def _reverse_nodes(config):
    config["nodes"].reverse()


BAD_GRAPHS = {
    "forward reference": (_reverse_nodes, "does not exist \\(yet\\): nodes must come in order"),
    "unknown layer": (lambda c: c["nodes"][0].update(layer="ghost"), "'ghost' is not a layer"),
    "input layer called": (lambda c: c["nodes"][0].update(layer="a"), "'a' is not a layer"),
    "bad reference": (lambda c: c["nodes"][0].update(inputs=[["a", 0]]),
                      "must be \\[layer name, node index, tensor index\\]"),
    "no outputs": (lambda c: c.update(outputs=[]), "outputs must be a non-empty list"),
    "bad training": (lambda c: c["nodes"][0].update(training="yes"), "training must be"),
    "wrong shapes": (lambda c: c["nodes"][-1].update(inputs=[["a", 0, 0]]),
                     "cannot be called on"),
}


@pytest.mark.parametrize("edit,match", BAD_GRAPHS.values(), ids=BAD_GRAPHS.keys())
def test_tampered_graphs_are_refused(tmp_path, edit, match):
    with pytest.raises(ValueError, match=match):
        models.load_model(tamper(tmp_path, edit))


# ---- files written by fastnn 0.1 (format version 1) -------------------------------
@pytest.mark.parametrize("name", ["mlp", "cnn", "seq"])
def test_format_1_files_load_and_predict_as_they_did(backend, name):
    model = models.load_model(V1 / f"{name}.fnn")
    assert type(model) is models.Sequential
    x = np.load(V1 / f"{name}_x.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(V1 / f"{name}_pred.npy"),
                               rtol=1e-5, atol=1e-6)


def test_format_1_training_resumes_bitwise():
    # the reference weights were trained on the compiled backend (the default)
    model = models.load_model(V1 / "mlp.fnn")
    assert type(model.optimizer) is optimizers.Adam and model.optimizer.iterations == 8
    fastnn.set_seed(1)
    model.fit(np.load(V1 / "resume_x.npy"), np.load(V1 / "resume_y.npy"), epochs=1,
              batch_size=8, shuffle=False, verbose=0)
    stored = np.load(V1 / "mlp_resumed_weights.npz")
    for k, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(w, stored[f"arr_{k}"])


def test_format_1_weights_file_loads_into_a_rebuilt_model():
    model = models.Sequential([layers.Dense(8, activation="relu", input_shape=(10,)),
                               layers.Dropout(0.1), layers.Dense(1)])
    model.load_weights(V1 / "mlp_weights.fnn")
    np.testing.assert_allclose(model.predict(np.load(V1 / "mlp_x.npy"), verbose=0),
                               np.load(V1 / "mlp_pred.npy"), rtol=1e-5, atol=1e-6)
