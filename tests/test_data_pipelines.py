"""fit / evaluate / predict on generators, iterables and PyDataset (Keras 3's rules)."""
import io
import threading
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers
from fastnn.utils import PyDataset, Sequence

N, BATCH = 53, 8              # 7 batches, the last one partial
STEPS = -(-N // BATCH)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 3))).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=N).astype(np.float32)
    return x, y, w


def _model(seed=1, dropout=False):
    fastnn.set_seed(seed)
    stack = [layers.Dense(16, activation="relu", input_shape=(5,))]
    if dropout:
        stack.append(layers.Dropout(0.3))
    model = fastnn.Sequential(stack + [layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def _batches(*arrays, epochs=1):
    for _ in range(epochs):
        for start in range(0, N, BATCH):
            yield tuple(a[start:start + BATCH] for a in arrays)


def _same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


class ArrayDataset(PyDataset):
    """Batches of arrays by index; records which indices were read, and in which thread."""

    def __init__(self, *arrays, batch_size=BATCH, **kwargs):
        super().__init__(**kwargs)
        self.arrays, self.batch_size = arrays, batch_size
        self.read, self.threads, self.epochs_ended = [], set(), 0

    def __len__(self):
        return -(-len(self.arrays[0]) // self.batch_size)

    def __getitem__(self, index):
        self.read.append(index)
        self.threads.add(threading.get_ident())
        start = index * self.batch_size
        return tuple(a[start:start + self.batch_size] for a in self.arrays)

    def on_epoch_end(self):
        self.epochs_ended += 1


# ---- fit on streamed batches equals fit on arrays, bitwise ---------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_on_generator_equals_fit_on_arrays(weighted):
    x, y, w = _data()
    sw = w if weighted else None
    by_arrays = _model(dropout=True)
    h1 = by_arrays.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, sample_weight=sw,
                       verbose=0)
    by_generator = _model(dropout=True)
    arrays = (x, y, w) if weighted else (x, y)
    h2 = by_generator.fit(_batches(*arrays, epochs=3), steps_per_epoch=STEPS, epochs=3,
                          verbose=0)
    assert h1.history == h2.history
    assert _same_weights(by_arrays, by_generator)


def test_fit_on_pydataset_equals_fit_on_arrays_and_workers_change_nothing():
    x, y, _ = _data()
    by_arrays = _model()
    by_arrays.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    for workers in (1, 3):
        model = _model()
        data = ArrayDataset(x, y, workers=workers, max_queue_size=2)
        model.fit(data, epochs=2, shuffle=False, verbose=0)
        assert _same_weights(by_arrays, model), workers
        assert data.read == list(range(STEPS)) * 2
        assert data.epochs_ended == 2


def test_multi_input_dict_batches_equal_arrays():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(N, 4)).astype(np.float32)
    b = rng.normal(size=(N, 2)).astype(np.float32)
    y = rng.normal(size=(N, 1)).astype(np.float32)

    def build():
        fastnn.set_seed(5)
        ia, ib = fastnn.Input((4,), name="a"), fastnn.Input((2,), name="b")
        out = layers.Dense(1)(layers.Concatenate()([layers.Dense(3)(ia), ib]))
        model = fastnn.Model([ia, ib], out)
        model.compile("sgd", "mse")
        return model

    m1, m2 = build(), build()
    m1.fit({"a": a, "b": b}, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    gen = (({"a": a[s:s + BATCH], "b": b[s:s + BATCH]}, y[s:s + BATCH])
           for _ in range(2) for s in range(0, N, BATCH))
    m2.fit(gen, steps_per_epoch=STEPS, epochs=2, verbose=0)
    assert _same_weights(m1, m2)


# ---- shuffling and reproducibility ------------------------------------------------------------
def test_pydataset_shuffle_permutes_batch_order_reproducibly():
    x, y, _ = _data()
    runs = []
    for _ in range(2):
        model = _model()
        data = ArrayDataset(x, y)
        model.fit(data, epochs=3, verbose=0)            # shuffle=True: Keras' default
        runs.append((data.read, model.get_weights()))
    (read1, weights1), (read2, weights2) = runs
    assert read1 == read2
    assert all(np.array_equal(u, v) for u, v in zip(weights1, weights2))
    epochs = [read1[i * STEPS:(i + 1) * STEPS] for i in range(3)]
    assert all(sorted(e) == list(range(STEPS)) for e in epochs)      # each batch once
    assert any(e != list(range(STEPS)) for e in epochs)              # in a new order


def test_loading_happens_in_a_background_thread():
    x, y, _ = _data()
    data = ArrayDataset(x, y)
    _model().fit(data, epochs=2, verbose=0)
    # the first batch builds the model in the caller's thread; the rest load beside it
    assert data.threads - {threading.get_ident()}


# ---- steps_per_epoch, exhaustion ----------------------------------------------------------------
def test_generator_is_consumed_across_epochs_with_steps_per_epoch():
    x, y, _ = _data()
    taken = []

    def gen():
        for i, batch in enumerate(_batches(x, y, epochs=2)):
            taken.append(i)
            yield batch

    history = _model().fit(gen(), steps_per_epoch=3, epochs=4, verbose=0)
    assert len(history.history["loss"]) == 4
    assert taken == list(range(12))                   # never read ahead past the last step


def test_generator_running_out_warns_and_ends_the_epoch():
    x, y, _ = _data()
    # 7 batches: epoch 1 takes 5, epoch 2 gets 2 and ends early; epoch 3 gets none
    with pytest.warns(UserWarning) as caught:
        history = _model().fit(_batches(x, y), steps_per_epoch=5, epochs=3, verbose=0)
    messages = [str(w.message) for w in caught]
    assert any("ran out of data after 2 of steps_per_epoch=5" in m for m in messages)
    assert any("ran out of data before epoch 3" in m for m in messages)
    assert len(history.history["loss"]) == 2


def test_exhausted_one_shot_generator_stops_training_with_a_warning():
    x, y, _ = _data()
    with pytest.warns(UserWarning, match="ran out of data before epoch 2"):
        history = _model().fit(_batches(x, y), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1


def test_reiterable_gives_a_new_pass_each_epoch():
    x, y, _ = _data()

    class Batches:
        def __iter__(self):
            return _batches(x, y)

    by_arrays = _model()
    by_arrays.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(Batches(), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    assert _same_weights(by_arrays, model)


def test_pydataset_pass_continues_across_epochs_with_steps_per_epoch():
    x, y, _ = _data()
    data = ArrayDataset(x, y)
    with pytest.warns(UserWarning, match="ran out of data after 1 of steps_per_epoch=3"):
        _model().fit(data, steps_per_epoch=3, epochs=4, shuffle=False, verbose=0)
    # 7 batches: [0 1 2] [3 4 5] [6] (ran out, warned) [0 1 2]
    assert data.read == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]


# ---- validation, evaluate, predict ---------------------------------------------------------
def test_validation_data_may_stream():
    x, y, _ = _data()
    xv, yv, _ = _data(seed=7)
    reference = _model()
    h1 = reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False,
                       validation_data=(xv, yv), verbose=0)
    for validation in (ArrayDataset(xv, yv),):
        model = _model()
        h2 = model.fit(ArrayDataset(x, y), epochs=2, shuffle=False,
                       validation_data=validation, verbose=0)
        assert h2.history == h1.history
    model = _model()
    h3 = model.fit(ArrayDataset(x, y), epochs=2, shuffle=False, verbose=0,
                   validation_data=_batches(xv, yv, epochs=2), validation_steps=STEPS)
    assert h3.history == h1.history


def test_one_shot_validation_generator_used_up_is_a_clear_error():
    x, y, _ = _data()
    with pytest.raises(ValueError, match="validation after epoch 2.*one-shot"):
        _model().fit(ArrayDataset(x, y), epochs=2, validation_data=_batches(x, y), verbose=0)


def test_evaluate_and_predict_on_streams():
    x, y, w = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    expected = model.evaluate(x, y, batch_size=BATCH, sample_weight=w, verbose=0)
    assert model.evaluate(_batches(x, y, w), verbose=0) == expected
    assert model.evaluate(ArrayDataset(x, y, w), verbose=0) == expected
    assert model.evaluate(_batches(x, y, w, epochs=2), steps=STEPS, verbose=0) == expected
    outputs = model.predict(x, batch_size=BATCH, verbose=0)
    assert np.array_equal(model.predict((x[s:s + BATCH] for s in range(0, N, BATCH)),
                                        verbose=0), outputs)
    assert np.array_equal(model.predict(_batches(x), verbose=0), outputs)          # (x,)
    assert np.array_equal(model.predict(ArrayDataset(x, y), verbose=0), outputs)   # y ignored
    assert np.array_equal(model.predict(_batches(x), steps=2, verbose=0), outputs[:16])


def test_steps_with_arrays_limit_evaluate_and_predict():
    x, y, _ = _data()
    model = _model()
    assert model.evaluate(x, y, batch_size=BATCH, steps=2, verbose=0) == \
        model.evaluate(x[:16], y[:16], batch_size=BATCH, verbose=0)
    assert model.predict(x, batch_size=BATCH, steps=3, verbose=0).shape == (24, 3)


# ---- callbacks and progress with an unknown epoch length --------------------------------------
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_callbacks_and_progress_with_unknown_length():
    x, y, _ = _data()
    seen = []

    class Batches:
        def __iter__(self):
            return _batches(x, y)

    class Count(callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(("steps", self.params["steps"]))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    out = _Terminal()
    bar = callbacks.ProgbarLogger(stream=out, interval=0.0)
    history = _model().fit(Batches(), epochs=2, verbose=1, callbacks=[Count(), bar])
    assert seen == [("steps", None)] + list(range(STEPS)) * 2
    assert len(history.history["loss"]) == 2
    text = out.getvalue()
    assert "1/Unknown" in text                      # the first epoch's length is unknown
    assert f"{STEPS}/{STEPS}" in text               # learned when it ended


# ---- errors ------------------------------------------------------------------------------------
def test_errors_are_clear():
    x, y, w = _data()
    model = _model()
    with pytest.raises(ValueError, match="yielded no batches"):
        model.fit(iter(()), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"batch must be \(x,\), \(x, y\) or"):
        model.fit(((x, y, w, w) for _ in range(2)), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch 1 of the generator.*no targets"):
        model.fit((x for _ in range(2)), epochs=1, verbose=0)
    bad = ((x[:8], y[:8], w[:5]) for _ in range(3))
    with pytest.raises(ValueError, match="batch 1 of the generator.*sample_weight"):
        model.fit(bad, epochs=1, verbose=0)
    late = ((x[:8], y[:8] if i < 2 else y[:8, :2]) for i in range(4))
    with pytest.raises(ValueError, match=r"batch 3 of the generator.*y has shape \(8, 2\)"):
        model.fit(late, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="y must be None"):
        model.fit(_batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="sample_weight must be None"):
        model.fit(_batches(x, y), sample_weight=w, verbose=0)
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        model.fit(_batches(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch must be an integer"):
        model.fit(_batches(x, y), steps_per_epoch=0, verbose=0)
    one_rank = object.__new__(fastnn.distributed.MPI)    # no MPI needed: refused first
    one_rank.size = 1
    with pytest.raises(ValueError, match="not supported there"):
        model.fit(_batches(x, y), distributed=one_rank, verbose=0)


def test_an_error_in_the_generator_reaches_the_caller():
    x, y, _ = _data()

    def gen():
        yield x[:8], y[:8]
        yield x[:8], y[:8]
        raise KeyError("disk gone")

    model = _model()
    with pytest.raises(KeyError, match="disk gone"):
        model.fit(gen(), epochs=1, verbose=0)
    assert not model._in_fit
    model.fit(x, y, epochs=1, verbose=0)              # still usable


def test_pydataset_api():
    assert Sequence is PyDataset
    with pytest.raises(ValueError, match="workers"):
        ArrayDataset(np.zeros((2, 1)), workers=0)

    class NoSuper(PyDataset):
        def __init__(self):
            pass

    with pytest.warns(UserWarning, match="super"):
        assert NoSuper().workers == 1
    assert ArrayDataset(np.zeros((9, 1)), batch_size=4).num_batches == 3


# ---- from disk -----------------------------------------------------------------------------
def test_pydataset_reading_npy_shards_trains(tmp_path):
    x, y, _ = _data()
    paths = []
    for i, start in enumerate(range(0, N, BATCH)):
        np.save(tmp_path / f"x{i}.npy", x[start:start + BATCH])
        np.save(tmp_path / f"y{i}.npy", y[start:start + BATCH])
        paths.append((tmp_path / f"x{i}.npy", tmp_path / f"y{i}.npy"))

    class Shards(PyDataset):
        def __init__(self, paths, **kwargs):
            super().__init__(**kwargs)
            self.paths = paths

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, index):
            x_path, y_path = self.paths[index]
            return np.load(x_path), np.load(y_path)

    by_arrays = _model()
    h1 = by_arrays.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)
    from_disk = _model()
    h2 = from_disk.fit(Shards(paths, workers=2), epochs=3, shuffle=False, verbose=0)
    assert h1.history == h2.history
    assert _same_weights(by_arrays, from_disk)
    assert h2.history["loss"][-1] < h2.history["loss"][0]


# ---- a PyTorch DataLoader (optional) ------------------------------------------------------------
def test_torch_dataloader_trains_like_arrays():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    x, y, _ = _data()
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                        batch_size=BATCH, shuffle=False)
    by_arrays = _model()
    by_arrays.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    model = _model()
    model.fit(loader, epochs=2, verbose=0)
    assert _same_weights(by_arrays, model)
    assert np.array_equal(model.predict(loader, verbose=0),
                          model.predict(x, batch_size=BATCH, verbose=0))
