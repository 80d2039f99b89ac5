"""Saving and loading (design decision 9): one zip file that is data, never code.

Round trips on both backends (predictions equal, training resumes bitwise),
weights-only files, configs, and every kind of bad file refused with a
ValueError -- without importing or running anything, and without touching
the model being loaded into.
"""
import io
import json
import os
import sys
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import layers, losses, metrics, models, optimizers, saving, schedules
from testing_utils import Payload


def data(n=96, features=6, outputs=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    labels = np.argmax(x[:, :outputs] + 0.3 * x[:, outputs:2 * outputs], axis=1)
    return x, labels


def small_model(optimizer="adam", dtype=None, frozen_first=False):
    model = models.Sequential([
        layers.Input(shape=(6,), dtype=dtype),
        layers.Dense(7, activation="relu", dtype=dtype),
        layers.Reshape((7, 1), dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(3, dtype=dtype),
        layers.Activation("softmax", dtype=dtype),
    ])
    model.layers[0].trainable = not frozen_first
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", metrics.SparseCategoricalAccuracy(name="sca")])
    return model


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# ---- round trips ----------------------------------------------------------------
def test_load_model_predicts_identically_and_keeps_compile_config(backend, tmp_path):
    fastnn.set_seed(0)
    x, y = data()
    model = small_model()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    assert type(loaded) is models.Sequential and loaded.name == model.name
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.name for a in loaded.layers] == [b.name for b in model.layers]
    assert loaded.input_shape == model.input_shape
    assert_same_weights(model, loaded)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert type(loaded.optimizer) is optimizers.Adam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    assert type(loaded.loss) is losses.SparseCategoricalCrossentropy
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    assert [type(m) for m in loaded._metric_ids] == [str, metrics.SparseCategoricalAccuracy]


OPTIMIZERS = [
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.AdamW(0.01, clipnorm=1.0),
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: optimizers.Adagrad(0.05, clipvalue=0.5),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS,
                         ids=["adam-amsgrad", "adamw", "sgd-nesterov", "rmsprop", "adagrad"])
def test_training_resumes_bitwise_after_save_and_load(backend, tmp_path, make_optimizer):
    x, y = data()
    fastnn.set_seed(3)
    straight = small_model(make_optimizer())
    fastnn.set_seed(3)
    resumed = small_model(make_optimizer())
    assert_same_weights(straight, resumed)

    straight.fit(x, y, epochs=2, batch_size=20, shuffle=False, verbose=0)
    resumed.fit(x, y, epochs=1, batch_size=20, shuffle=False, verbose=0)
    resumed.save(tmp_path / "half.fnn")
    resumed = models.load_model(tmp_path / "half.fnn")
    resumed.fit(x, y, epochs=1, batch_size=20, shuffle=False, verbose=0)

    assert_same_weights(straight, resumed)
    for name, value in straight.optimizer.variables().items():
        np.testing.assert_array_equal(resumed.optimizer.variables()[name], value)
    assert resumed.optimizer.iterations == straight.optimizer.iterations


def test_dropout_and_batchnorm_state_resume_bitwise(backend, tmp_path):
    """BatchNorm's moving statistics travel with the weights, and loading leaves
    fastnn's random generator alone, so dropout masks continue their stream."""
    x, y = data()

    def make():
        fastnn.set_seed(10)
        model = models.Sequential([layers.Dense(8, input_shape=(6,)),
                                   layers.BatchNormalization(), layers.Activation("relu"),
                                   layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    straight, resumed = make(), make()
    fastnn.set_seed(11)
    straight.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    fastnn.set_seed(11)
    resumed.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    resumed.save(tmp_path / "m.fnn")
    state = fastnn._runtime.rng().bit_generator.state
    resumed = models.load_model(tmp_path / "m.fnn")
    assert fastnn._runtime.rng().bit_generator.state == state
    resumed.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert_same_weights(straight, resumed)


def test_frozen_layer_and_float64_survive_the_round_trip(backend, tmp_path):
    x, y = data()
    fastnn.set_seed(4)
    model = small_model(dtype="float64", frozen_first=True)
    frozen = model.layers[0].get_weights()
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    assert loaded.dtype == np.float64 and not loaded.layers[0].trainable
    loaded.fit(x, y, epochs=1, batch_size=32, verbose=0)
    for before, after in zip(frozen, loaded.layers[0].get_weights()):
        np.testing.assert_array_equal(before, after)


def test_file_is_one_zip_of_json_and_plain_npy_arrays(tmp_path):
    fastnn.set_seed(5)
    model = small_model()
    path = tmp_path / "model.keras"          # any extension is accepted
    model.save(str(path))
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]     # no temporary file left
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("model.json"))
        assert document["format"] == "fastnn"
        assert document["format_version"] == saving.FORMAT_VERSION == 2
        assert document["compile"]["metrics"] == {"kind": "list", "value": [
            "accuracy", {"class_name": "SparseCategoricalAccuracy", "config": {"name": "sca"}}]}
        names = archive.namelist()
        arrays = [n for n in names if n.endswith(".npy")]
        assert len(arrays) == len(model.get_weights()) + len(model.optimizer.variables())
        for name in arrays:
            assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED
        first = np.load(io.BytesIO(archive.read("weights/0.npy")), allow_pickle=False)
    np.testing.assert_array_equal(first, model.get_weights()[0])
    # saving the same model twice gives the same bytes (no timestamps inside)
    model.save(tmp_path / "again.fnn")
    assert (tmp_path / "again.fnn").read_bytes() == path.read_bytes()


def test_a_failed_save_leaves_the_previous_file_untouched(tmp_path, monkeypatch):
    fastnn.set_seed(6)
    model = small_model()
    path = tmp_path / "m.fnn"
    model.save(path)
    good = path.read_bytes()
    calls = []

    def failing_write_entry(archive, name, *args):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return original(archive, name, *args)

    original = saving.archive._write_entry
    monkeypatch.setattr(saving.archive, "_write_entry", failing_write_entry)
    model.fit(*data(), epochs=1, verbose=0)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["m.fnn"]


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.fnn")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.fnn", overwrite=False)
    with pytest.raises(TypeError, match="file path"):
        model.save(12)


def test_uncompiled_and_unbuilt_models_round_trip(tmp_path):
    built = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    built.save(tmp_path / "built.fnn")
    loaded = models.load_model(tmp_path / "built.fnn")
    assert loaded.optimizer is None and loaded.loss is None
    assert_same_weights(built, loaded)

    unbuilt = models.Sequential([layers.Dense(4), layers.Dense(2, activation="tanh")])
    unbuilt.compile(optimizer="sgd", loss="mse")
    unbuilt.save(tmp_path / "unbuilt.fnn")
    loaded = models.load_model(tmp_path / "unbuilt.fnn")
    assert not loaded.built and type(loaded.optimizer) is optimizers.SGD
    loaded.fit(np.ones((8, 5), np.float32), np.zeros((8, 2), np.float32), verbose=0)

    assert models.load_model(tmp_path / "unbuilt.fnn", compile=False).optimizer is None


def test_state_of_a_stale_packing_is_left_out(tmp_path):
    """After pop() the optimizer state no longer fits the layers: the loaded model
    starts it afresh, as compile() would."""
    model = small_model()
    model.fit(*data(), epochs=1, verbose=0)
    model.pop()
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert all(not v.any() for v in loaded.optimizer.variables().values())


def test_a_learning_rate_schedule_is_saved_but_a_python_callable_is_refused(tmp_path):
    schedule = schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5)
    model = small_model(optimizers.SGD(learning_rate=schedule))
    model.fit(*data(), epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    assert type(loaded.optimizer.learning_rate) is schedules.ExponentialDecay
    assert loaded.optimizer.current_learning_rate() == model.optimizer.current_learning_rate()

    model.optimizer.learning_rate = lambda step: 0.1
    with pytest.raises(ValueError, match="Python callable"):
        model.save(tmp_path / "lambda.fnn")


class Scale(layers.Layer):
    """A user's own layer, loadable only when passed in custom_objects."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def forward(self, ops, x, training=False, ws=None):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_custom_layers_load_only_through_custom_objects(tmp_path):
    model = models.Sequential([layers.Dense(3, input_shape=(2,)), Scale(3.0)])
    model.save(tmp_path / "m.fnn")
    with pytest.raises(ValueError, match="unknown layer class 'Scale'"):
        models.load_model(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn", custom_objects={"Scale": Scale})
    x = np.ones((2, 2), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[1].factor == 3.0


# ---- configs --------------------------------------------------------------------
@pytest.mark.parametrize("layer", [
    layers.InputLayer(shape=(4, 2), dtype="float64", name="in"),
    layers.Dense(5, activation="tanh", use_bias=False, kernel_initializer="he_normal",
                 input_shape=(3,), trainable=False, name="d"),
    layers.Activation("sigmoid", name="act"),
    layers.Flatten(name="flat"),
    layers.Reshape((-1, 2), name="resh"),
], ids=lambda layer: type(layer).__name__)
def test_layer_get_config_from_config_round_trips(layer):
    config = layer.get_config()
    assert json.loads(json.dumps(config)) == config
    clone = type(layer).from_config(config)
    assert type(clone) is type(layer) and clone.get_config() == config
    assert layers.LAYER_CLASSES[type(layer).__name__] is type(layer)


def test_model_get_config_from_config_round_trips():
    model = small_model()
    config = model.get_config()
    clone = models.Sequential.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config and clone.optimizer is None
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]


# ---- weights only -----------------------------------------------------------------
def test_save_weights_load_weights_into_the_same_architecture(backend, tmp_path):
    x, y = data()
    fastnn.set_seed(7)
    trained = small_model()
    trained.fit(x, y, epochs=1, verbose=0)
    trained.save_weights(tmp_path / "w.fnn")
    trained.save(tmp_path / "full.fnn")
    for source in ("w.fnn", "full.fnn"):
        fresh = small_model()           # other layer names, other initial weights
        fresh.load_weights(tmp_path / source)
        assert_same_weights(trained, fresh)
        np.testing.assert_array_equal(fresh.predict(x), trained.predict(x))
        fresh.fit(x, y, epochs=1, verbose=0)     # still packed: trains in place
    with pytest.raises(ValueError, match="weights only"):
        models.load_model(tmp_path / "w.fnn")


def test_load_weights_mismatch_names_the_layer_and_changes_nothing(tmp_path):
    small_model().save_weights(tmp_path / "w.fnn")
    other = models.Sequential([layers.Input(shape=(6,)), layers.Dense(7, activation="relu"),
                               layers.Dense(4, name="head")])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"'head'.*\(7, 4\).*\(7, 3\)"):
        other.load_weights(tmp_path / "w.fnn")
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)

    shorter = models.Sequential([layers.Dense(7, input_shape=(6,))])
    with pytest.raises(ValueError, match="holds 4 weight arrays but model .* has 2"):
        shorter.load_weights(tmp_path / "w.fnn")
    with pytest.raises(ValueError, match="build the model"):
        models.Sequential([layers.Dense(7)]).load_weights(tmp_path / "w.fnn")


def test_load_weights_refuses_another_dtype(tmp_path):
    small_model(dtype="float64").save_weights(tmp_path / "w64.fnn")
    model = small_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="float32 .* but the file has float64"):
        model.load_weights(tmp_path / "w64.fnn")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# ---- bad files --------------------------------------------------------------------
def read_entries(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: (archive.read(info), info.compress_type)
                for info in archive.infolist()}


def write_entries(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, (payload, compression) in entries.items():
            archive.writestr(name, payload, compress_type=compression)


def tampered(tmp_path, edit_document=None, edit_entries=None):
    """A saved model's file with its model.json and/or entries edited."""
    fastnn.set_seed(8)
    model = small_model()
    model.fit(*data(), epochs=1, verbose=0)
    model.save(tmp_path / "good.fnn")
    entries = read_entries(tmp_path / "good.fnn")
    if edit_document:
        document = json.loads(entries["model.json"][0])
        edit_document(document)
        entries["model.json"] = (json.dumps(document).encode(), zipfile.ZIP_DEFLATED)
    if edit_entries:
        edit_entries(entries)
    write_entries(tmp_path / "bad.fnn", entries)
    return tmp_path / "bad.fnn"


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def first_layer(document):
    """The first layer after the Input layer (format 2 lists the Input first)."""
    return [layer for layer in document["model"]["config"]["layers"]
            if layer["class_name"] != "InputLayer"][0]


def set_entry(name, payload, compression=zipfile.ZIP_STORED):
    def edit(entries):
        entries[name] = (payload, compression)
    return edit


BAD_DOCUMENTS = {
    "wrong format": (lambda d: d.update(format="keras"), "not a fastnn model file"),
    "newer version": (lambda d: d.update(format_version=3), "version 3 is not supported"),
    "version as text": (lambda d: d.update(format_version="1"), "format_version must be"),
    "version as bool": (lambda d: d.update(format_version=True), "format_version must be"),
    "unknown kind": (lambda d: d.update(kind="pickle"), "kind must be"),
    "Lambda layer": (lambda d: first_layer(d).update(class_name="Lambda"),
                     "unknown layer class 'Lambda'"),
    "dotted layer": (lambda d: first_layer(d).update(class_name="os.system"),
                     "unknown layer class 'os.system'"),
    "base layer": (lambda d: first_layer(d).update(class_name="Layer"),
                   "unknown layer class 'Layer'"),
    "non-string class": (lambda d: first_layer(d).update(class_name=["Dense"]),
                         "class_name must be a string"),
    "unknown model": (lambda d: d["model"].update(class_name="Pipeline"),
                      "unknown model class"),
    "unknown optimizer": (lambda d: d["compile"]["optimizer"].update(class_name="Shampoo"),
                          "unknown optimizer class 'Shampoo'"),
    "optimizer base": (lambda d: d["compile"]["optimizer"].update(class_name="Optimizer"),
                       "unknown optimizer class"),
    "unknown loss": (lambda d: d["compile"]["loss"]["value"].update(class_name="eval"),
                     "unknown loss class 'eval'"),
    "unknown metric": (lambda d: d["compile"].update(metrics=["__import__('os')"]),
                       "unknown metric"),
    "bad layer config": (lambda d: first_layer(d)["config"].update(units=-1),
                         "layer Dense cannot be built from"),
    "unexpected kwarg": (lambda d: first_layer(d)["config"].update(code="import os"),
                         "unexpected keyword argument 'code'"),
    "infinite units": (lambda d: first_layer(d)["config"].update(units=1e400),
                       "layer Dense cannot be built from"),
    "bad optimizer config": (lambda d: d["compile"]["optimizer"]["config"].update(beta_1=2),
                             "optimizer Adam cannot be built from"),
    "negative iterations": (lambda d: d["compile"]["optimizer"].update(iterations=-1),
                            "iterations must be"),
    "wrong weight shape": (lambda d: d["weights"][0].update(shape=[6, 8]),
                           r"weight 'kernel' is float32 of shape \(6, 7\), but the file has "
                           r"float32 of shape \(6, 8\)"),
    "wrong weight dtype": (lambda d: d["weights"][0].update(dtype="int64"),
                           "dtype must be one of"),
    "weight names swapped": (lambda d: d["weights"][0].update(name="bias"),
                             "the manifest lists"),
    "missing weight": (lambda d: d["weights"].pop(), "weight 'bias' of shape \\(3,\\) needs more "
                       "values than the file holds"),
    "extra weight": (lambda d: d["weights"].append(dict(d["weights"][-1])),
                     "entry weights/4.npy is missing"),
    "bad shape entry": (lambda d: d["weights"][0].update(shape=[6, -7]),
                        "non-negative integers"),
    "huge declared shape": (lambda d: d["weights"][0].update(shape=[10 ** 6, 10 ** 6]),
                            "weights/0.npy declares"),
    "wrong state name": (lambda d: d["optimizer_state"][0].update(name="momentum"),
                         "optimizer state holds"),
    "wrong state shape": (lambda d: d["optimizer_state"][0].update(shape=[3]),
                          r"optimizer state 'm': .*manifest says a float32 array of shape \(3,\)"),
    "not an object": (lambda d: d.clear() or d.update(format="fastnn", format_version=1,
                                                      kind="model", model=[]),
                      "must be described by an object"),
}


@pytest.mark.parametrize("edit,match", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_tampered_model_json_is_refused(tmp_path, edit, match):
    path = tampered(tmp_path, edit_document=edit)
    with pytest.raises(ValueError, match=match):
        models.load_model(path)


def test_an_architecture_bigger_than_the_stored_weights_allocates_nothing(tmp_path):
    """Units and input shape say 10^12 kernel values; the file holds ~100. The
    layer is refused before its weights are allocated."""
    def edit(document):
        document["model"]["config"]["layers"][0]["config"]["shape"] = [10 ** 6]   # the Input
        first_layer(document)["config"]["units"] = 10 ** 6
    path = tampered(tmp_path, edit_document=edit)
    with pytest.raises(ValueError, match="needs more values than the file holds"):
        models.load_model(path)


BAD_ENTRIES = {
    "missing model.json": (lambda e: e.pop("model.json"), "no model.json"),
    "json garbage": (set_entry("model.json", b"{not json", zipfile.ZIP_DEFLATED),
                     "not valid JSON"),
    "json not utf-8": (set_entry("model.json", b"\xff\xfe\x00{", zipfile.ZIP_DEFLATED),
                       "not valid JSON"),
    "json nested deeply": (set_entry("model.json", b"[" * 100000 + b"]" * 100000,
                                     zipfile.ZIP_DEFLATED), "not valid JSON|not a fastnn"),
    "missing array": (lambda e: e.pop("weights/1.npy"), "entry weights/1.npy is missing"),
    "compressed array": (lambda e: e.update({"weights/0.npy": (e["weights/0.npy"][0],
                                                               zipfile.ZIP_DEFLATED)}),
                         "is compressed"),
    "wrong array shape": (set_entry("weights/0.npy", npy_bytes(np.zeros((7, 6), np.float32))),
                          r"holds float32 of shape \(7, 6\)"),
    "wrong array dtype": (set_entry("weights/0.npy", npy_bytes(np.zeros((6, 7), np.int32))),
                          "holds int32"),
    "fortran order": (set_entry("weights/0.npy",
                                npy_bytes(np.asfortranarray(np.zeros((6, 7), np.float32)))),
                      "Fortran order"),
    "nan weights": (set_entry("weights/1.npy", npy_bytes(np.full(7, np.nan, np.float32))),
                    "contains NaN or inf"),
    "not npy": (set_entry("weights/1.npy", b"\x00" * (7 * 4 + 128)), "weights/1.npy"),
    "oversized entry": (set_entry("weights/1.npy", npy_bytes(np.zeros(7, np.float32)) +
                                  b"\x00" * 100000), "declares 100156 bytes"),
}


@pytest.mark.parametrize("edit,match", BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_tampered_entries_are_refused(tmp_path, edit, match):
    path = tampered(tmp_path, edit_entries=edit)
    with pytest.raises(ValueError, match=match):
        models.load_model(path)


def test_a_pickled_object_array_never_runs(tmp_path):
    evil = np.empty(7, dtype=object)
    evil[:] = [Payload() for _ in range(7)]
    path = tampered(tmp_path, edit_entries=set_entry("weights/1.npy",
                                                     npy_bytes(evil, allow_pickle=True)))
    with pytest.raises(ValueError, match="holds object"):
        models.load_model(path)
    assert not Payload.ran


def test_an_unknown_layer_is_refused_without_importing_anything(tmp_path):
    attempts = []

    class RecordImports:
        def find_spec(self, name, path=None, target=None):
            attempts.append(name)
            return None

    names = ["os.system", "subprocess.Popen", "fastnn_evil.Layer", "Lambda", "__import__"]
    paths = []
    for i, name in enumerate(names):
        folder = tmp_path / str(i)
        folder.mkdir()
        paths.append(tampered(folder, lambda d, n=name: first_layer(d).update(class_name=n)))
    sys.meta_path.insert(0, RecordImports())
    try:
        for path, name in zip(paths, names):
            with pytest.raises(ValueError, match=f"unknown layer class '{name}'"):
                models.load_model(path)
    finally:
        sys.meta_path.pop(0)
    assert attempts == []


def test_oversized_model_json_is_refused_before_reading(tmp_path, monkeypatch):
    path = tampered(tmp_path, edit_entries=set_entry(
        "model.json", b" " * 5000 + b"{}", zipfile.ZIP_DEFLATED))   # a tiny zip bomb
    monkeypatch.setattr(saving.archive, "MAX_JSON_BYTES", 4096)
    with pytest.raises(ValueError, match="declares 5002 bytes, over the 4096-byte limit"):
        models.load_model(path)


def test_overlapping_entries_cannot_multiply_the_file(tmp_path):
    """Two central-directory records pointing at the same stored data (the
    "overlapping zip bomb"): refused (by zipfile's name check here; saving also
    refuses entries that together declare more bytes than the file has)."""
    model = models.Sequential([layers.Dense(300, input_shape=(300,), use_bias=False),
                               layers.Dense(300, use_bias=False)])
    model.save(tmp_path / "m.fnn")
    raw = bytearray((tmp_path / "m.fnn").read_bytes())
    with zipfile.ZipFile(tmp_path / "m.fnn") as archive:
        first, second = archive.getinfo("weights/0.npy"), archive.getinfo("weights/1.npy")
    # point the second weight's central record at the first weight's local header
    cd_name = b"weights/1.npy"
    at = raw.rfind(b"PK\x01\x02", 0, raw.rfind(cd_name))
    raw[at + 42:at + 46] = first.header_offset.to_bytes(4, "little")
    assert second.file_size == first.file_size
    (tmp_path / "overlap.fnn").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged|overlapping"):
        models.load_model(tmp_path / "overlap.fnn")


@pytest.mark.parametrize("contents", [b"", b"hello, not a zip", b"PK\x03\x04" + b"\x00" * 40,
                                      np.arange(10).tobytes()],
                         ids=["empty", "text", "zip magic only", "raw array"])
def test_foreign_files_are_refused(tmp_path, contents):
    (tmp_path / "foreign.fnn").write_bytes(contents)
    with pytest.raises(ValueError, match="not a fastnn model file"):
        models.load_model(tmp_path / "foreign.fnn")
    with pytest.raises(ValueError, match="not a fastnn model file"):
        small_model().load_weights(tmp_path / "foreign.fnn")


def test_a_zip_of_something_else_is_refused(tmp_path):
    write_entries(tmp_path / "other.zip", {"readme.txt": (b"hi", zipfile.ZIP_DEFLATED)})
    with pytest.raises(ValueError, match="no model.json"):
        models.load_model(tmp_path / "other.zip")


def test_every_truncation_and_corruption_raises_value_error(tmp_path):
    """Cut the file at many lengths and flip bytes at many places: each load
    either raises ValueError or (a flip in a field zip ignores) loads a model
    identical to the original. Nothing else escapes."""
    fastnn.set_seed(9)
    model = small_model()
    model.fit(*data(), epochs=1, verbose=0)
    model.save(tmp_path / "good.fnn")
    good = (tmp_path / "good.fnn").read_bytes()
    bad = tmp_path / "bad.fnn"
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(0, len(good), 40).tolist()) | {0, 1, len(good) - 1})
    for cut in cuts:
        bad.write_bytes(good[:cut])
        with pytest.raises(ValueError):
            models.load_model(bad)
    x = data()[0]
    for at in rng.integers(0, len(good), 120).tolist():
        damaged = bytearray(good)
        damaged[at] ^= 0xFF
        bad.write_bytes(bytes(damaged))
        try:
            loaded = models.load_model(bad)
        except ValueError:
            continue
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
