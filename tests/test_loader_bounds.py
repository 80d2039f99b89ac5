"""The model loader is bounded (issue 12, items 3-6): it opens regular files
only, bounds model.json's size, number of values and depth before the memory
they would need is taken, caps the layers and nesting a file may describe,
builds in time linear in the layer count, and checks the optimizer settings
it reads with the optimizers' own rules. Every refusal is a ValueError that
says what is wrong."""
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest

from fastnn import layers, models, optimizers, saving, schedules
from fastnn.saving import archive, config


def save_small(path, optimizer="adam"):
    model = models.Sequential([layers.Input(shape=(4,)), layers.Dense(3), layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((8, 4), np.float32), np.zeros((8, 2), np.float32), verbose=0)
    model.save(path)
    return model


def rewrite_json(path, edit=None, text=None):
    """Replace model.json in the file at ``path``: ``edit`` the parsed document,
    or put ``text`` (bytes) in its place."""
    with zipfile.ZipFile(path) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, payload in entries:
            if info.filename == "model.json":
                if edit is not None:
                    document = json.loads(payload)
                    edit(document)
                    payload = json.dumps(document).encode()     # NaN/Infinity allowed
                else:
                    payload = text
                zf.writestr("model.json", payload, compress_type=zipfile.ZIP_DEFLATED)
            else:
                zf.writestr(info, payload)


# ---- item 3: regular files only -----------------------------------------------------
LOAD_EACH = textwrap.dedent("""
    import sys
    from fastnn import models
    for path in sys.argv[1:]:
        try:
            models.load_model(path)
        except ValueError as error:
            print("ValueError:", error, flush=True)
""")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_and_dev_zero_are_refused_at_once(tmp_path):
    """Opening a FIFO for reading waits for a writer and /dev/zero never ends:
    both used to hang load_model. A child process runs the loads, so that a
    regression fails on the timeout instead of hanging the suite."""
    fifo = tmp_path / "model.fnn"
    os.mkfifo(fifo)
    paths = [str(fifo)] + (["/dev/zero"] if os.path.exists("/dev/zero") else [])
    done = subprocess.run([sys.executable, "-c", LOAD_EACH, *paths], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"ValueError: cannot load {fifo}: it is a FIFO (named pipe), not a regular file" \
        in done.stdout
    if len(paths) == 2:
        assert "ValueError: cannot load /dev/zero: it is a character device, not a regular " \
               "file" in done.stdout


def test_a_directory_or_device_is_a_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=f"cannot load {tmp_path}: it is a directory"):
        models.load_model(tmp_path)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="cannot load /dev/null: it is a character device"):
            models.load_model("/dev/null")
        model = models.Sequential([layers.Dense(2, input_shape=(3,))])
        with pytest.raises(ValueError, match="it is a character device"):
            model.load_weights("/dev/null")
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.fnn")


def test_a_symlink_to_a_model_file_loads(tmp_path):
    model = save_small(tmp_path / "real.fnn")
    (tmp_path / "link.fnn").symlink_to(tmp_path / "real.fnn")
    loaded = models.load_model(tmp_path / "link.fnn")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- item 4: model.json bounded before parsing ---------------------------------------
def test_empty_objects_are_refused_before_json_builds_them(tmp_path):
    """A few KB of zip holding millions of "{}" used to make json build millions
    of dicts (GBs at 64 MB). The values are counted first: the memory loading
    takes stays a small multiple of the text's size."""
    save_small(tmp_path / "m.fnn")
    count = archive.MAX_JSON_ITEMS + 10
    text = b'{"format": "fastnn", "pad": [' + b"{}," * count + b"{}]}"
    rewrite_json(tmp_path / "m.fnn", text=text)
    assert (tmp_path / "m.fnn").stat().st_size < len(text) // 100     # a tiny zip bomb
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"holds up to \d+ values, over the limit of "
                                             f"{archive.MAX_JSON_ITEMS}"):
            models.load_model(tmp_path / "m.fnn")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # json would have built count dicts of 64 bytes at least, 20 times the text
    assert peak < 4 * len(text), f"loading peaked at {peak} bytes for {len(text)} of JSON"


def test_the_value_count_is_an_upper_bound_checked_on_any_file(tmp_path, monkeypatch):
    save_small(tmp_path / "m.fnn")
    monkeypatch.setattr(archive, "MAX_JSON_ITEMS", 200)
    rewrite_json(tmp_path / "m.fnn", edit=lambda d: d.update(pad=list(range(300))))
    with pytest.raises(ValueError, match="over the limit of 200"):
        models.load_model(tmp_path / "m.fnn")


def test_deep_nesting_is_refused(tmp_path):
    save_small(tmp_path / "m.fnn")
    deep = archive.MAX_JSON_DEPTH + 5
    text = (b'{"format": "fastnn", "format_version": 2, "kind": "model", "x": '
            + b"[" * deep + b"]" * deep + b"}")
    rewrite_json(tmp_path / "m.fnn", text=text)
    with pytest.raises(ValueError, match=f"nested more than {archive.MAX_JSON_DEPTH} deep"):
        models.load_model(tmp_path / "m.fnn")


def test_a_real_model_is_far_inside_the_json_bounds(tmp_path):
    """About 60 values, nesting 3 levels deeper per nested model, about 1 KB a
    layer: MAX_LAYERS layers and MAX_NESTING nested models fit with room."""
    inp = layers.Input(shape=(8, 8, 3))
    x = inp
    for _ in range(20):
        x = layers.Conv2D(3, 3, padding="same", activation="relu",
                          kernel_regularizer="l1_l2")(x)
    model = models.Model(inp, x)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.save(tmp_path / "m.fnn")
    raw = zipfile.ZipFile(tmp_path / "m.fnn").read("model.json")
    per_layer_items = (raw.count(b",") + raw.count(b"[") + raw.count(b"{")) / 21
    assert per_layer_items * config.MAX_LAYERS < archive.MAX_JSON_ITEMS / 1.5
    assert len(raw) / 21 * config.MAX_LAYERS < archive.MAX_JSON_BYTES / 1.5
    assert 3 * config.MAX_NESTING + 20 < archive.MAX_JSON_DEPTH


def test_save_refuses_what_load_would_refuse(tmp_path, monkeypatch):
    model = models.Sequential([layers.Input(shape=(4,))]
                              + [layers.Activation("relu") for _ in range(30)])
    monkeypatch.setattr(archive, "MAX_JSON_ITEMS", 100)
    with pytest.raises(ValueError, match="cannot save to .*too large.*over the limit of 100"):
        model.save(tmp_path / "m.fnn")
    monkeypatch.undo()
    monkeypatch.setattr(config, "MAX_LAYERS", 20)
    with pytest.raises(ValueError, match="cannot save model .*more than 20 layers"):
        model.save(tmp_path / "m.fnn")
    assert os.listdir(tmp_path) == []


# ---- items 5 and 6: layer count, nesting, linear time ---------------------------------
def weightless_file(path, n, nested=0):
    """A model file of ``n`` Activation layers (each nested model adds its own n)."""
    def chain(k):
        return models.Sequential([layers.Input(shape=(4,))]
                                 + [layers.Activation("relu") for _ in range(k)])
    model = chain(n)
    for _ in range(nested):
        inner = model
        model = chain(n)
        model.add(inner)
    model.save(path)
    return model


def calls_during(fn):
    """The number of Python function calls (and generator steps) ``fn()`` makes:
    a measure of work that does not depend on the machine's speed."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def test_loading_takes_work_linear_in_the_layer_count(tmp_path):
    """Adding each layer once scanned all the layers before it, so 20,000 layers
    took 65 s. Counted in function calls, not seconds: twice the layers, twice
    the work (a quadratic step would make it four times)."""
    weightless_file(tmp_path / "small.fnn", 200)
    weightless_file(tmp_path / "big.fnn", 800)
    models.load_model(tmp_path / "small.fnn")         # warm: imports, caches
    small = calls_during(lambda: models.load_model(tmp_path / "small.fnn"))
    big = calls_during(lambda: models.load_model(tmp_path / "big.fnn"))
    assert big < 4.4 * small, f"200 layers: {small} calls, 800 layers: {big} calls"


def test_building_a_sequential_from_a_list_is_linear_too():
    def build(n):
        chain = [layers.Input(shape=(4,))] + [layers.Activation("relu") for _ in range(n)]
        return lambda: models.Sequential(chain)
    small, big = calls_during(build(200)), calls_during(build(800))
    assert big < 4.4 * small, f"200 layers: {small} calls, 800 layers: {big} calls"


def test_eight_thousand_layers_load(tmp_path):
    model = weightless_file(tmp_path / "m.fnn", 8000)
    loaded = models.load_model(tmp_path / "m.fnn")
    assert len(loaded.layers) == 8000
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_over_max_layers_is_refused_before_building_any(tmp_path, monkeypatch):
    weightless_file(tmp_path / "m.fnn", 40)
    built = []
    original = layers.Activation.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(config, "MAX_LAYERS", 30)
    monkeypatch.setattr(layers.Activation, "__init__", counting_init)
    with pytest.raises(ValueError, match="more than 30 layers .*nested models' included"):
        models.load_model(tmp_path / "m.fnn")
    assert built == []


def test_the_layer_cap_counts_nested_models_layers(tmp_path, monkeypatch):
    """Each model of the file is under the cap, the file as a whole is not."""
    weightless_file(tmp_path / "m.fnn", 20, nested=2)          # 3 models of 21-22 layers
    monkeypatch.setattr(config, "MAX_LAYERS", 50)
    with pytest.raises(ValueError, match="more than 50 layers"):
        models.load_model(tmp_path / "m.fnn")
    monkeypatch.setattr(config, "MAX_LAYERS", 70)
    assert len(models.load_model(tmp_path / "m.fnn").layers) == 21


def test_the_layer_cap_counts_graph_nodes(tmp_path, monkeypatch):
    inp = layers.Input(shape=(4,))
    shared = layers.Dense(4)
    x = inp
    for _ in range(12):                       # one layer, twelve calls
        x = shared(x)
    models.Model(inp, x).save(tmp_path / "m.fnn")
    monkeypatch.setattr(config, "MAX_LAYERS", 10)
    with pytest.raises(ValueError, match="more than 10 layer calls"):
        models.load_model(tmp_path / "m.fnn")


def test_nesting_deeper_than_max_nesting_is_refused(tmp_path, monkeypatch):
    weightless_file(tmp_path / "m.fnn", 1, nested=4)
    monkeypatch.setattr(config, "MAX_NESTING", 3)
    with pytest.raises(ValueError, match="models are nested more than 3 deep"):
        models.load_model(tmp_path / "m.fnn")
    with pytest.raises(ValueError, match="cannot save model .*nested more than 3 deep"):
        weightless_file(tmp_path / "again.fnn", 1, nested=4)
    monkeypatch.setattr(config, "MAX_NESTING", 4)
    models.load_model(tmp_path / "m.fnn")


def test_model_from_config_applies_the_same_caps(monkeypatch):
    model = models.Sequential([layers.Input(shape=(4,))]
                              + [layers.Activation("relu") for _ in range(12)])
    monkeypatch.setattr(config, "MAX_LAYERS", 10)
    with pytest.raises(ValueError, match="more than 10 layers"):
        models.Sequential.from_config(model.get_config())
    with pytest.raises(ValueError, match="more than 10 layers"):
        saving.model_from_config(model.get_config())


# ---- item 6: optimizer settings read from a file ------------------------------------
def optimizer_edit(**changes):
    def edit(document):
        spec = document["compile"]["optimizer"]
        for key, value in changes.items():
            (spec if key == "iterations" else spec["config"])[key] = value
    return edit


BAD_SETTINGS = {
    "epsilon 0": ("adam", dict(epsilon=0), "Adam: epsilon must be a finite number > 0"),
    "epsilon nan": ("adam", dict(epsilon=float("nan")), "epsilon must be"),
    "learning rate 2**31": ("adam", dict(learning_rate=2 ** 31), "learning_rate must be"),
    "learning rate inf": ("sgd", dict(learning_rate=float("inf")), "learning_rate must be"),
    "learning rate negative": ("sgd", dict(learning_rate=-0.1), "learning_rate must be"),
    "learning rate text": ("sgd", dict(learning_rate="0.1"), "learning_rate must be"),
    "iterations 10**300": ("adam", dict(iterations=10 ** 300),
                           r"iterations must be an integer in \[0, 2\*\*62\)"),
    "iterations 2**62": ("adam", dict(iterations=2 ** 62), "iterations must be"),
    "iterations float": ("adam", dict(iterations=3.0), "iterations must be"),
    "iterations bool": ("adam", dict(iterations=True), "iterations must be"),
    "momentum 1": ("sgd", dict(momentum=1.0), r"SGD: momentum must be a number in \[0, 1\)"),
    "beta_2 1": ("adam", dict(beta_2=1), "beta_2 must be"),
    "beta_1 negative": ("adam", dict(beta_1=-0.5), "beta_1 must be"),
    "rho 1": ("rmsprop", dict(rho=1.0), "RMSprop: rho must be"),
    "rmsprop momentum 1": ("rmsprop", dict(momentum=1.0), "momentum must be"),
    "clipnorm 0": ("adam", dict(clipnorm=0), "clipnorm must be a finite number > 0"),
    "clipvalue negative": ("sgd", dict(clipvalue=-1.0), "clipvalue must be"),
    "global_clipnorm inf": ("sgd", dict(global_clipnorm=float("inf")), "global_clipnorm"),
    "accumulator negative": ("adagrad", dict(initial_accumulator_value=-1.0),
                             "initial_accumulator_value must be"),
    "schedule rate 1e4": ("sgd", dict(learning_rate={
        "class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 1e4, "decay_steps": 10, "decay_rate": 0.5}}),
        "initial_learning_rate must be"),
    "schedule values nan": ("sgd", dict(learning_rate={
        "class_name": "PiecewiseConstantDecay",
        "config": {"boundaries": [5], "values": [0.1, float("nan")]}}), "values must be"),
}


@pytest.mark.parametrize("optimizer,changes,match", BAD_SETTINGS.values(),
                         ids=BAD_SETTINGS.keys())
def test_bad_optimizer_settings_in_a_file_are_refused(tmp_path, optimizer, changes, match):
    save_small(tmp_path / "m.fnn", optimizer)
    rewrite_json(tmp_path / "m.fnn", edit=optimizer_edit(**changes))
    with pytest.raises(ValueError, match=match):
        models.load_model(tmp_path / "m.fnn")
    models.load_model(tmp_path / "m.fnn", compile=False)      # the architecture is fine


def test_settings_at_the_edges_load(tmp_path):
    """Keras-compatible values stay valid: momentum 0, a zero learning rate,
    the largest step count, schedules."""
    edges = [("sgd", dict(momentum=0.0, learning_rate=0.0, iterations=2 ** 62 - 1)),
             ("adam", dict(beta_1=0.0, epsilon=1e-300, learning_rate=1e3, clipvalue=1e-9)),
             ("sgd", dict(learning_rate={"class_name": "CosineDecay", "config": {
                 "initial_learning_rate": 0.0, "decay_steps": 10, "warmup_target": 0.1,
                 "warmup_steps": 5}}))]
    for i, (optimizer, changes) in enumerate(edges):
        save_small(tmp_path / f"{i}.fnn", optimizer)
        rewrite_json(tmp_path / f"{i}.fnn", edit=optimizer_edit(**changes))
        loaded = models.load_model(tmp_path / f"{i}.fnn")
        if "iterations" in changes:
            assert loaded.optimizer.iterations == changes["iterations"]
    assert isinstance(loaded.optimizer.learning_rate, schedules.CosineDecay)


def test_loaded_settings_use_the_constructors_rules():
    """One rule for both: what the constructor refuses, the loader refuses."""
    with pytest.raises(ValueError, match="Adam: epsilon must be"):
        optimizers.Adam(epsilon=0)
    with pytest.raises(ValueError, match="iterations must be"):
        optimizers.Adam().iterations = 10 ** 300
