"""One registry (fastnn.registry) behind every kind's get / serialize / deserialize,
the loader and register_keras_serializable: Keras 3's names and dict shapes, custom
objects, and errors that name the kind, the name and the close matches."""
import numpy as np
import pytest

import fastnn
from fastnn import (
    activations, initializers, layers, losses, metrics, models, optimizers, registry,
    regularizers,
)
from fastnn.optimizers import schedules


# ---- get / serialize / deserialize, kind by kind -------------------------------------
def test_activations_by_name():
    assert activations.get("relu") is activations.relu
    assert activations.get("silu") is activations.swish
    assert activations.get(None) is activations.linear
    assert activations.serialize(activations.tanh) == "tanh"
    assert activations.deserialize(activations.serialize(activations.gelu)) is activations.gelu


@pytest.mark.parametrize("initializer", [
    initializers.HeNormal(), initializers.Orthogonal(gain=2.5),
    initializers.RandomUniform(-0.1, 0.2), initializers.TruncatedNormal(stddev=0.02),
])
def test_initializers_round_trip(initializer):
    again = initializers.get(initializers.serialize(initializer))
    assert type(again) is type(initializer) and again.get_config() == initializer.get_config()
    spec = registry.serialize(initializer)
    assert initializers.deserialize(spec).get_config() == initializer.get_config()
    assert type(initializers.get(type(initializer).__name__)) is type(initializer)


@pytest.mark.parametrize("loss", [
    losses.MeanSquaredError(), losses.MeanAbsoluteError(name="l1"), losses.Huber(delta=0.3),
    losses.BinaryCrossentropy(from_logits=True), losses.CategoricalCrossentropy(),
    losses.SparseCategoricalCrossentropy(from_logits=True),
])
def test_losses_round_trip(loss):
    spec = losses.serialize(loss)
    assert spec == {"class_name": type(loss).__name__, "config": loss.get_config()}
    for again in (losses.deserialize(spec), losses.get(spec)):
        assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_losses_by_keras_names():
    assert type(losses.get("mse")) is losses.MeanSquaredError
    assert type(losses.get("huber_loss")) is losses.Huber
    assert type(losses.get("MeanAbsoluteError")) is losses.MeanAbsoluteError


@pytest.mark.parametrize("metric", [
    metrics.MeanAbsoluteError(), metrics.MeanSquaredError(name="m"), metrics.BinaryAccuracy(),
    metrics.CategoricalAccuracy(), metrics.SparseCategoricalAccuracy(),
])
def test_metrics_round_trip(metric):
    again = metrics.deserialize(metrics.serialize(metric))
    assert type(again) is type(metric) and again.name == metric.name
    assert type(metrics.get(metrics.serialize(metric))) is type(metric)


def test_metric_names_and_accuracy_needs_the_outputs():
    assert metrics.get("mae").name == "mae"
    assert type(metrics.get("mean_squared_error")) is metrics.MeanSquaredError
    with pytest.raises(ValueError, match="resolved from the model's outputs"):
        metrics.get("accuracy")


@pytest.mark.parametrize("optimizer", [
    optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 3, 0.5), amsgrad=True),
    optimizers.AdamW(weight_decay=0.01, clipnorm=1.0), optimizers.RMSprop(centered=True),
    optimizers.Adagrad(initial_accumulator_value=0.2),
])
def test_optimizers_round_trip(optimizer):
    spec = optimizers.serialize(optimizer)
    assert spec["class_name"] == type(optimizer).__name__
    again = optimizers.get(spec)
    assert type(again) is type(optimizer)
    assert optimizers.serialize(again) == spec
    assert again.current_learning_rate() == optimizer.current_learning_rate()


def test_optimizers_by_name_in_any_case():
    for name in ("adam", "Adam", "ADAM", "AdamW", "sgd", "SGD", "rmsprop", "Adagrad"):
        assert type(optimizers.get(name)).__name__.lower() == name.lower()


def test_regularizers_and_schedules_round_trip():
    for reg in (regularizers.L1(0.2), regularizers.L2(0.3), regularizers.L1L2(0.1, 0.4)):
        assert regularizers.deserialize(regularizers.serialize(reg)) == reg
        assert regularizers.get(regularizers.serialize(reg)) == reg
    assert regularizers.get("l1_l2") == regularizers.L1L2(0.01, 0.01)
    schedule = schedules.CosineDecay(0.01, 50, alpha=0.1, warmup_target=0.1, warmup_steps=5)
    again = schedules.deserialize(schedules.serialize(schedule))
    assert [again(s) for s in (0, 5, 30, 80)] == [schedule(s) for s in (0, 5, 30, 80)]


def test_layers_round_trip():
    dense = layers.Dense(4, activation="gelu", kernel_regularizer=regularizers.L2(0.3),
                         kernel_initializer=initializers.Orthogonal(gain=1.5), name="d")
    spec = layers.serialize(dense)
    assert spec["class_name"] == "Dense"
    again = layers.deserialize(spec)
    assert type(again) is layers.Dense and again.get_config() == dense.get_config()


def test_keras3_dicts_are_read():
    spec = {"module": "keras.losses", "class_name": "Huber", "registered_name": None,
            "config": {"name": "h", "delta": 0.5}}
    assert losses.deserialize(spec).delta == 0.5
    spec = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
            "registered_name": None,
            "config": {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}}
    assert schedules.deserialize(spec)(2) == pytest.approx(0.05)


# ---- custom objects ----------------------------------------------------------------------
class Doubling(initializers.Initializer):
    def __init__(self, value=1.0):
        self.value = float(value)

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, 2 * self.value, dtype)

    def get_config(self):
        return {"value": self.value}


def test_custom_objects_reach_what_a_layer_deserializes():
    spec = layers.serialize(layers.Dense(2, input_shape=(3,)))
    spec["config"]["kernel_initializer"] = {"class_name": "Doubling", "config": {"value": 3}}
    with pytest.raises(ValueError, match="unknown initializer class 'Doubling'"):
        layers.deserialize(spec)
    dense = layers.deserialize(spec, custom_objects={"Doubling": Doubling})
    assert isinstance(dense.kernel_initializer, Doubling) and dense.kernel_initializer.value == 3
    with pytest.raises(ValueError, match="unknown initializer class 'Doubling'"):
        initializers.get({"class_name": "Doubling", "config": {}})     # the scope ended


def test_custom_objects_in_scope_is_a_block():
    with registry.custom_objects_in_scope({"Doubling": Doubling}):
        assert isinstance(initializers.get({"class_name": "Doubling"}), Doubling)
        assert isinstance(initializers.get("Doubling"), Doubling)
    with pytest.raises(ValueError, match="unknown initializer 'Doubling'"):
        initializers.get("Doubling")


def test_registered_classes_and_functions_serve_every_lookup(tmp_path):
    @fastnn.saving.register_keras_serializable(package="RegistryTest")
    class Halving(initializers.Initializer):
        def __call__(self, shape, dtype="float32"):
            return np.full(shape, 0.5, dtype)

    @fastnn.saving.register_keras_serializable(package="RegistryTest", name="mean_cube")
    def cube(y_true, y_pred):
        return fastnn.ops.mean((y_pred - y_true) ** 3, axis=-1)

    assert initializers.serialize(Halving()) == {"class_name": "RegistryTest>Halving",
                                                 "config": {}}
    assert isinstance(initializers.get("RegistryTest>Halving"), Halving)
    wrapper = losses.get("RegistryTest>mean_cube")
    assert wrapper.fn is cube
    spec = losses.serialize(wrapper)
    assert spec["class_name"] == "LossFunctionWrapper"
    assert spec["config"]["fn"] == "RegistryTest>mean_cube"
    assert losses.deserialize(spec).fn is cube
    assert metrics.deserialize(metrics.serialize(metrics.get(cube))).fn is cube
    model = models.Sequential([layers.Input(shape=(3,)),
                               layers.Dense(2, kernel_initializer=Halving())])
    model.compile(optimizer="sgd", loss=cube)
    model.save(tmp_path / "m.fnn")
    loaded = models.load_model(tmp_path / "m.fnn")
    assert isinstance(loaded.layers[0].kernel_initializer, Halving)
    assert loaded.loss.fn is cube


def test_a_custom_object_must_be_of_the_kind_asked():
    with pytest.raises(ValueError, match="'Odd' names MeanAbsoluteError, which is not a Loss"):
        losses.deserialize({"class_name": "Odd", "config": {}},
                           custom_objects={"Odd": metrics.MeanAbsoluteError})
    with pytest.raises(ValueError, match="which is not a class"):
        losses.deserialize({"class_name": "f", "config": {}}, custom_objects={"f": len})


# ---- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("get,name,kind,close", [
    (losses.get, "msee", "loss", "'mse'"),
    (optimizers.get, "adan", "optimizer", "'adam'"),
    (activations.get, "rellu", "activation", "'relu'"),
    (initializers.get, "glorot_unifrom", "initializer", "'glorot_uniform'"),
    (regularizers.get, "l1_l3", "regularizer", "'l1_l2'"),
    (lambda n: metrics.get(n), "maee", "metric", "'mae'"),
])
def test_unknown_names_say_kind_name_and_close_matches(get, name, kind, close):
    with pytest.raises(ValueError, match=f"unknown {kind} '{name}' \\(did you mean {close}"):
        get(name)


def test_unknown_classes_say_kind_name_and_close_matches():
    with pytest.raises(ValueError, match="unknown learning-rate schedule class "
                                         "'ExponentialDeca' \\(did you mean 'ExponentialDecay'"):
        schedules.deserialize({"class_name": "ExponentialDeca", "config": {}})
    with pytest.raises(ValueError, match="unknown layer class 'Dense2D' \\(did you mean"):
        layers.deserialize({"class_name": "Dense2D", "config": {}})
    with pytest.raises(ValueError, match="must be described by an object"):
        optimizers.deserialize(["Adam"])
    with pytest.raises(ValueError, match="optimizer Adam cannot be built from"):
        optimizers.deserialize({"class_name": "Adam", "config": {"beta_3": 1}})


def test_losses_run_on_the_current_backend(monkeypatch):
    """losses.py says the backend's fused kernels compute the built-in losses."""
    import fastnn.backend as backend
    calls = []
    real = backend.current_ops

    class Spy:
        def __init__(self, ops):
            self.ops = ops

        def __getattr__(self, name):
            calls.append(name)
            return getattr(self.ops, name)
    monkeypatch.setattr(backend, "current_ops", lambda: Spy(real()))
    value = losses.MeanSquaredError()(np.ones((2, 1), np.float32), np.zeros((2, 1), np.float32))
    assert value == pytest.approx(1.0) and calls == ["loss"]
