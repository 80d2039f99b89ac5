"""Fuzzing the model loader (issue 12, item 16): a fixed, seeded budget of
damaged and crafted files -- byte flips, truncations, mutated model.json
values, and zips made to attack a loader (path traversal names, symlink
entries, bombs, pickled and object .npy entries, huge declared shapes and
sizes, duplicate members). Each one either loads or raises ValueError (what
load_model documents for a bad file); nothing else escapes, nothing in a file
runs, and no case takes more memory than a small multiple of the loader's own
bound on model.json."""
import copy
import faulthandler
import io
import json
import stat
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import layers, models
from fastnn.saving import archive
from testing_utils import Payload

# Far above what any case needs when the loader is bounded (the largest
# legitimate read is one model.json of at most MAX_JSON_BYTES), far below what
# an unbounded loader takes on them (the JSON bombs alone: gigabytes).
MEMORY_LIMIT = 3 * archive.MAX_JSON_BYTES


# ---- the files the cases start from -----------------------------------------------------
@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Two saved models: a Sequential one with state (BatchNorm, Adam's moments)
    and a graph with a merge and SGD momentum. {name: file bytes}."""
    folder = tmp_path_factory.mktemp("originals")
    fastnn.set_seed(0)
    chain = models.Sequential([layers.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                               layers.BatchNormalization(), layers.Dropout(0.2),
                               layers.Dense(3, activation="softmax")])
    chain.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    chain.fit(np.linspace(-1, 1, 40, dtype=np.float32).reshape(8, 5), np.arange(8) % 3,
              epochs=1, verbose=0)
    inp = layers.Input(shape=(6,))
    merged = layers.Add()([layers.Dense(4, activation="tanh")(inp), layers.Dense(4)(inp)])
    graph = models.Model(inp, layers.Dense(2)(merged))
    graph.compile(optimizer=fastnn.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    files = {}
    for name, model in (("chain", chain), ("graph", graph)):
        model.save(folder / f"{name}.fnn")
        files[name] = (folder / f"{name}.fnn").read_bytes()
    return files


def entries_of(data):
    """[(ZipInfo, payload)] of a file's entries, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def zip_of(entries):
    """A zip of (name or ZipInfo, payload[, compression]) entries, duplicates allowed."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # zipfile warns about duplicate names
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, payload, *compression in entries:
                zf.writestr(name, payload, compress_type=compression[0] if compression
                            else zipfile.ZIP_STORED)
    return buffer.getvalue()


def replaced(data, name, payload, compression=zipfile.ZIP_STORED):
    return zip_of([(info.filename, payload if info.filename == name else body,
                    compression if info.filename == name else info.compress_type)
                   for info, body in entries_of(data)])


def npy(array=None, header=None, body=b""):
    """An .npy entry: a real array's, or a hand-made header (a dict's text) and body."""
    if array is not None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=True)
        return buffer.getvalue()
    text = (header + " " * (64 - (len(header) + 11) % 64) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + body


def with_sizes(data, name, file_size=None, compress_size=None):
    """The zip with ``name``'s sizes rewritten in its central directory record (what
    readers trust), the data itself unchanged."""
    raw = bytearray(data)
    record = raw.rfind(b"PK\x01\x02", 0, raw.rfind(name.encode()))
    if compress_size is not None:
        raw[record + 20:record + 24] = compress_size.to_bytes(4, "little")
    if file_size is not None:
        raw[record + 24:record + 28] = file_size.to_bytes(4, "little")
    return bytes(raw)


# ---- the cases ---------------------------------------------------------------------------
def crafted_cases(files):
    """(name, file bytes) of zips made to attack a loader."""
    data = files["chain"]
    json_text = dict((i.filename, body) for i, body in entries_of(data))["model.json"]
    symlink = zipfile.ZipInfo("model.json")
    symlink.external_attr = (stat.S_IFLNK | 0o777) << 16
    evil = np.empty(4, dtype=object)
    evil[:] = [Payload() for _ in range(4)]
    bomb = b" " * (archive.MAX_JSON_BYTES - 1000) + b"{}"
    cases = {
        # path traversal and absolute names: never extracted, never looked up
        "traversal extra": zip_of([(i.filename, b, i.compress_type) for i, b in
                                   entries_of(data)] + [("../../evil.py", b"import os")]),
        "traversal rename": zip_of([(("../" + i.filename) if i.filename.startswith("weights")
                                     else i.filename, b, i.compress_type)
                                    for i, b in entries_of(data)]),
        "absolute names": zip_of([("/" + i.filename, b, i.compress_type)
                                  for i, b in entries_of(data)]),
        # a symlink entry is only bytes to a loader that never extracts
        "symlink model.json": zip_of([(symlink, b"/etc/passwd")] +
                                     [(i.filename, b, i.compress_type)
                                      for i, b in entries_of(data)[1:]]),
        "symlink weights": replaced(data, "weights/0.npy", b"../../../../etc/shadow"),
        # bombs: huge text that compresses to almost nothing
        "json bomb at the limit": replaced(data, "model.json", bomb, zipfile.ZIP_DEFLATED),
        "json bomb of objects": replaced(data, "model.json", b"[" + b"{}," * (
            archive.MAX_JSON_ITEMS + 5) + b"{}]", zipfile.ZIP_DEFLATED),
        "json bomb declared huge": with_sizes(replaced(data, "model.json", bomb + b" " * 5000,
                                                       zipfile.ZIP_DEFLATED), "model.json",
                                              file_size=0xFFFFFFF0),
        "json bomb declared small": with_sizes(replaced(data, "model.json", bomb,
                                                        zipfile.ZIP_DEFLATED), "model.json",
                                               file_size=len(json_text)),
        "deep json": replaced(data, "model.json", b"[" * 100000 + b"]" * 100000,
                              zipfile.ZIP_DEFLATED),
        "compressed array bomb": replaced(data, "weights/0.npy", npy(np.zeros(10 ** 7, "<f4")),
                                          zipfile.ZIP_DEFLATED),
        "array declared huge": with_sizes(data, "weights/0.npy", file_size=0xFFFFFFF0),
        "array declared tiny": with_sizes(data, "weights/0.npy", file_size=10),
        "array runs past the end": with_sizes(data, "weights/0.npy", compress_size=10 ** 9),
        # pickles and other dtypes in .npy entries
        "pickled objects": replaced(data, "weights/0.npy", npy(evil)),
        "object dtype header": replaced(data, "weights/0.npy", npy(
            header="{'descr': '|O', 'fortran_order': False, 'shape': (5, 4), }",
            body=b"\x80\x04N." * 40)),
        "big-endian": replaced(data, "weights/0.npy", npy(np.zeros((5, 4), ">f4"))),
        "void dtype": replaced(data, "weights/0.npy", npy(np.zeros((5, 4), "V4"))),
        "unicode dtype": replaced(data, "weights/0.npy", npy(np.zeros((5, 4), "<U1"))),
        # huge declared shapes: refused before np.load allocates them
        "huge shape in header": replaced(data, "weights/0.npy", npy(
            header="{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
            body=b"\x00" * 80)),
        "negative shape in header": replaced(data, "weights/0.npy", npy(
            header="{'descr': '<f4', 'fortran_order': False, 'shape': (-5, -4), }",
            body=b"\x00" * 80)),
        "code in header": replaced(data, "weights/0.npy", npy(
            header="{'descr': __import__('os').getcwd(), 'fortran_order': False, "
                   "'shape': (5, 4), }", body=b"\x00" * 80)),
        "huge header": replaced(data, "weights/0.npy", npy(
            header="{'descr': '<f4', 'fortran_order': False, 'shape': (5, 4), 'x': '"
                   + "a" * 20000 + "', }", body=b"\x00" * 80)),
        "npy version 9": replaced(data, "weights/0.npy",
                                  b"\x93NUMPY\x09\x00" + npy(np.zeros((5, 4), "<f4"))[8:]),
        # duplicate members: which one is read would be ambiguous
        "duplicate model.json": zip_of([(i.filename, b, i.compress_type)
                                        for i, b in entries_of(data)]
                                       + [("model.json", b'{"format": "evil"}')]),
        "duplicate weights": zip_of([(i.filename, b, i.compress_type)
                                     for i, b in entries_of(data)]
                                    + [("weights/0.npy", npy(np.ones((5, 4), "<f4")))]),
        "no entries": zip_of([]),
    }
    return list(cases.items())


def flipped_cases(files, rng, count):
    cases = []
    for k in range(count):
        name = ("chain", "graph")[k % 2]
        damaged = bytearray(files[name])
        for at in rng.integers(0, len(damaged), int(rng.integers(1, 5))):
            damaged[at] ^= int(rng.integers(1, 256))
        cases.append((f"{name}: bytes flipped", bytes(damaged)))
    return cases


def truncated_cases(files, rng, count):
    cases = []
    for k in range(count):
        name = ("chain", "graph")[k % 2]
        cut = int(rng.integers(0, len(files[name])))
        cases.append((f"{name}: cut at {cut}", files[name][:cut]))
    return cases


# values a mutation puts somewhere in model.json
ODD_VALUES = [None, True, -1, 0, 2 ** 64, 10 ** 300, -(10 ** 30), 1e308, -0.0, float("nan"),
              float("inf"), "", "x" * 1000, "os.system", "../../etc", [], [None], [[[[[]]]]],
              {}, {"class_name": "Lambda"}, {"class_name": "Functional", "config": {}},
              list(range(50)), [-1, -1], ["input_layer", 0, 0], ["input_layer", 99, 0]]


def mutated_cases(files, rng, count):
    """model.json with one value (anywhere in the document) replaced by an odd one,
    or a key removed; the arrays unchanged."""
    cases = []
    for k in range(count):
        name = ("chain", "graph")[k % 2]
        entries = entries_of(files[name])
        document = json.loads(entries[0][1])
        places = []                           # (container, key) of every value

        def collect(value):
            children = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in children:
                places.append((value, key))
                if isinstance(child, (dict, list)):
                    collect(child)

        mutated = copy.deepcopy(document)
        collect(mutated)
        container, key = places[int(rng.integers(0, len(places)))]
        if isinstance(container, dict) and rng.random() < 0.2:
            del container[key]
            what = f"removed {key!r}"
        else:
            container[key] = copy.deepcopy(ODD_VALUES[int(rng.integers(0, len(ODD_VALUES)))])
            what = f"{key!r} = {container[key]!r:.40}"
        text = json.dumps(mutated).encode()          # NaN and Infinity as JSON allows
        cases.append((f"{name}: {what}", zip_of(
            [("model.json", text, zipfile.ZIP_DEFLATED)]
            + [(i.filename, b, i.compress_type) for i, b in entries[1:]])))
    return cases


# ---- the test -----------------------------------------------------------------------------
def test_every_fuzzed_file_loads_or_raises_value_error(originals, tmp_path):
    rng = np.random.default_rng(2024)
    cases = (crafted_cases(originals) + flipped_cases(originals, rng, 120)
             + truncated_cases(originals, rng, 40) + mutated_cases(originals, rng, 160))
    path = tmp_path / "case.fnn"
    outcomes = {"loaded": 0, "refused": 0}
    faulthandler.dump_traceback_later(300, exit=True)     # a hang fails, never stalls CI
    tracemalloc.start()
    try:
        for name, data in cases:
            path.write_bytes(data)
            tracemalloc.reset_peak()
            try:
                models.load_model(path)
                outcomes["loaded"] += 1
            except ValueError:
                outcomes["refused"] += 1
            except Exception as error:       # noqa: BLE001  (what the test is looking for)
                pytest.fail(f"case {name!r}: {type(error).__name__}: {error}")
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < MEMORY_LIMIT, f"case {name!r} took {peak} bytes"
    finally:
        tracemalloc.stop()
        faulthandler.cancel_dump_traceback_later()
    assert not Payload.ran
    # the budget really exercised both outcomes
    assert outcomes["loaded"] > 10 and outcomes["refused"] > 200, outcomes


def test_crafted_attacks_are_each_refused(originals, tmp_path):
    """Not one of the crafted files is accepted (path traversal and absolute
    names only hide the entries the loader needs)."""
    loads_anyway = {"traversal extra"}       # an extra entry nobody reads is harmless
    path = tmp_path / "case.fnn"
    for name, data in crafted_cases(originals):
        path.write_bytes(data)
        if name in loads_anyway:
            models.load_model(path)
            continue
        with pytest.raises(ValueError):
            models.load_model(path)
    assert not Payload.ran


def test_load_weights_survives_the_same_damage(originals, tmp_path):
    """load_weights reads the same container: damage is a ValueError there too,
    and the model it loads into keeps its weights."""
    rng = np.random.default_rng(7)
    model = models.Sequential([layers.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                               layers.BatchNormalization(), layers.Dropout(0.2),
                               layers.Dense(3, activation="softmax")])
    path = tmp_path / "case.fnn"
    for name, data in (flipped_cases(originals, rng, 40)[::2]
                       + truncated_cases(originals, rng, 20)[::2]):
        before = model.get_weights()
        path.write_bytes(data)
        try:
            model.load_weights(path)
        except ValueError:
            for a, b in zip(before, model.get_weights()):
                np.testing.assert_array_equal(a, b)
