"""Keras' activation, reshaping and noise layers: values against NumPy formulas,
gradients against float64 finite differences, masks, training-only noise,
configs, and saving."""
import numpy as np
import pytest

import fastnn
import fastnn as keras
from fastnn import layers
from fastnn.backend import current_ops
from fastnn.graph.workspace import Workspace
from testing_utils import model_gradient, model_numeric_gradient, numeric_grad


@pytest.fixture
def numpy64():
    previous = fastnn.get_backend()
    fastnn.set_backend("numpy")
    fastnn.set_floatx("float64")
    yield
    fastnn.set_floatx("float32")
    fastnn.set_backend(previous)


def run(layer, x, training=False):
    """Build ``layer`` for x and run forward with a workspace (as a model does)."""
    if not layer.built:
        layer.build(x.shape[1:])
    ws = Workspace(param_grads=False)
    return layer.forward(current_ops(), x, training, ws).copy(), ws


def check_input_gradient(layer, x, seed=0):
    y, ws = run(layer, x)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(current_ops(), dy, ws)
    numeric = numeric_grad(lambda: float(np.sum(run(layer, x)[0] * dy)), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


def away_from_kinks(shape, kinks, seed=1):
    """Random values at least 0.01 away from the points where a layer's slope jumps."""
    x = np.random.default_rng(seed).uniform(-2, 2, shape)
    for k in kinks:
        x = np.where(np.abs(x - k) < 0.01, x + 0.05, x)
    return x


# ---- activation layers -----------------------------------------------------------
def relu_reference(x, max_value=None, negative_slope=0.0, threshold=0.0):
    y = np.where(x >= threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else np.where(x >= max_value, max_value, y)


@pytest.mark.parametrize("options", [{}, {"max_value": 1.0}, {"negative_slope": 0.1},
                                     {"max_value": 1.5, "negative_slope": 0.2, "threshold": 0.5}])
def test_relu_values_and_gradient(numpy64, options):
    x = away_from_kinks((3, 7), [0.0, 0.5, 1.0, 1.5])
    layer = layers.ReLU(**options)
    np.testing.assert_allclose(run(layer, x)[0], relu_reference(x, **options))
    check_input_gradient(layer, x)


def test_leaky_relu_and_elu(numpy64):
    x = away_from_kinks((4, 5), [0.0])
    leaky = layers.LeakyReLU()
    assert leaky.negative_slope == 0.3
    np.testing.assert_allclose(run(leaky, x)[0], np.where(x >= 0, x, 0.3 * x))
    check_input_gradient(leaky, x)
    elu = layers.ELU(alpha=0.7)
    np.testing.assert_allclose(run(elu, x)[0], np.where(x > 0, x, 0.7 * (np.exp(x) - 1)))
    check_input_gradient(elu, x)


def test_prelu_values_and_gradients(numpy64):
    fastnn.set_seed(0)
    x = away_from_kinks((3, 4, 5, 2), [0.0])
    inputs = keras.Input(shape=(4, 5, 2))
    prelu = layers.PReLU(alpha_initializer="random_normal", shared_axes=[1, 2])
    model = keras.Model(inputs, prelu(inputs))
    assert prelu.alpha.shape == (1, 1, 2)
    alpha = prelu.get_weights()[0]
    np.testing.assert_allclose(model.predict(x, verbose=0), np.where(x > 0, x, alpha * x))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    y = np.random.default_rng(3).standard_normal(x.shape)
    np.testing.assert_allclose(model_gradient(model, x, y), model_numeric_gradient(model, x, y),
                               rtol=1e-6, atol=1e-8)
    check_input_gradient(layers.PReLU(alpha_initializer="random_normal"), x[:, :, :, 0])


@pytest.mark.torch_oracle
def test_prelu_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((3, 6, 4)).astype(np.float32)
    theirs = torch.nn.PReLU(num_parameters=4, init=0.1)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.1, -0.2, 0.3, 0.5]))
    ours = layers.PReLU(shared_axes=[1])
    ours.build(x.shape[1:])
    ours.set_weights([theirs.weight.detach().numpy().reshape(1, 4)])
    # torch's channels are axis 1: move ours' last axis there
    tx = torch.tensor(x.transpose(0, 2, 1).copy(), requires_grad=True)
    out = theirs(tx)
    np.testing.assert_allclose(np.asarray(ours(x)), out.detach().numpy().transpose(0, 2, 1),
                               rtol=1e-6)
    dy = np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    out.backward(torch.tensor(dy.transpose(0, 2, 1).copy()))
    y, ws = run(ours, x)
    ws.param_grads = True                      # gradients into scratch we can read
    ws.direct = False
    dx = ours.backward(current_ops(), dy, ws)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 1), rtol=1e-5, atol=1e-6)
    (weight, grad), = ws.pending
    np.testing.assert_allclose(grad.reshape(-1), theirs.weight.grad.numpy(), rtol=1e-4,
                               atol=1e-5)


def softmax_reference(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 1])
def test_softmax_values_and_gradient(numpy64, axis):
    x = np.random.default_rng(6).standard_normal((2, 3, 4))
    layer = layers.Softmax(axis=axis)
    np.testing.assert_allclose(np.asarray(layer(x)), softmax_reference(x, axis))
    layer.build([x.shape[1:]])
    ws = Workspace(param_grads=False)
    y = layer.forward(current_ops(), [x], False, ws).copy()
    dy = np.random.default_rng(7).standard_normal(y.shape)
    dx, = layer.backward(current_ops(), dy, ws)

    def f():
        return float(np.sum(layer.forward(current_ops(), [x], False,
                                          Workspace(param_grads=False)) * dy))
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)


def test_softmax_mask_gives_masked_positions_zero_probability(numpy64):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 5))
    mask = rng.random((2, 3, 5)) > 0.4
    mask[0, 1] = False                                  # a row masked entirely
    y = np.asarray(layers.Softmax()(x, mask=mask))
    expected = np.where(mask, np.exp(x), 0.0)
    sums = expected.sum(-1, keepdims=True)
    expected = np.divide(expected, sums, out=np.zeros_like(expected), where=sums > 0)
    np.testing.assert_allclose(y, expected, atol=1e-12)
    assert np.all(y[~mask] == 0) and np.all(y[0, 1] == 0)
    # in a graph, with a broadcast (N, 1, T) mask: gradients flow only to kept logits
    inputs, keep = keras.Input(shape=(3, 5)), keras.Input(shape=(1, 5))
    model = keras.Model([inputs, keep], layers.Softmax()(inputs, mask=keep))
    keep_values = (rng.random((2, 1, 5)) > 0.3).astype(np.float64)
    out = model.predict([x, keep_values], verbose=0)
    assert np.all(out[np.broadcast_to(keep_values == 0, out.shape)] == 0)
    np.testing.assert_allclose(out.sum(-1), np.ones((2, 3)) * (keep_values.sum(-1) > 0))
    with pytest.raises(ValueError, match="mask"):
        layers.Softmax()(keras.Input(shape=(3, 5)), mask=keras.Input(shape=(5,)))


def test_activation_and_noise_layers_pass_a_time_step_mask():
    fastnn.set_seed(0)
    tokens = keras.Input(shape=(None,), dtype="int32")
    h = layers.Embedding(10, 3, mask_zero=True)(tokens)
    for layer in (layers.ReLU(), layers.LeakyReLU(), layers.PReLU(alpha_initializer="ones", shared_axes=[1]),
                  layers.ELU(), layers.Softmax(), layers.GaussianNoise(0.1),
                  layers.GaussianDropout(0.1), layers.SpatialDropout1D(0.1)):
        h = layer(h)
    model = keras.Model(tokens, layers.SimpleRNN(2)(h))
    # the RNN skips the masked (zero) steps: padding changes nothing
    padded = model.predict(np.array([[1, 2, 0, 0], [3, 0, 0, 0]]), verbose=0)
    np.testing.assert_allclose(padded[:1], model.predict(np.array([[1, 2]]), verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(padded[1:], model.predict(np.array([[3]]), verbose=0),
                               rtol=1e-6)


# ---- reshaping layers ------------------------------------------------------------
RESHAPING_CASES = [
    (lambda: layers.RepeatVector(3), (2, 5), lambda x: np.repeat(x[:, None], 3, axis=1)),
    (lambda: layers.Permute((2, 1)), (2, 3, 4), lambda x: x.transpose(0, 2, 1)),
    (lambda: layers.Permute((3, 1, 2)), (2, 3, 4, 5), lambda x: x.transpose(0, 3, 1, 2)),
    (lambda: layers.Rescaling(0.5, offset=-1.0), (2, 3), lambda x: x * 0.5 - 1.0),
    (lambda: layers.Rescaling([1.0, 2.0, 3.0], offset=[0.0, 1.0, 0.0]), (2, 4, 3),
     lambda x: x * np.array([1.0, 2.0, 3.0]) + np.array([0.0, 1.0, 0.0])),
    (lambda: layers.ZeroPadding1D(), (2, 3, 2), lambda x: np.pad(x, ((0, 0), (1, 1), (0, 0)))),
    (lambda: layers.ZeroPadding1D((2, 0)), (2, 3, 2),
     lambda x: np.pad(x, ((0, 0), (2, 0), (0, 0)))),
    (lambda: layers.ZeroPadding2D(((1, 0), (2, 3))), (2, 3, 2, 2),
     lambda x: np.pad(x, ((0, 0), (1, 0), (2, 3), (0, 0)))),
    (lambda: layers.ZeroPadding2D(), (1, 2, 3, 1),
     lambda x: np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))),
    (lambda: layers.Cropping1D(), (2, 5, 2), lambda x: x[:, 1:-1]),
    (lambda: layers.Cropping1D((0, 2)), (2, 5, 2), lambda x: x[:, :3]),
    (lambda: layers.Cropping2D(((1, 0), (0, 2))), (2, 4, 5, 3), lambda x: x[:, 1:, :3]),
    (lambda: layers.Cropping2D(1), (2, 4, 5, 3), lambda x: x[:, 1:-1, 1:-1]),
]


@pytest.mark.parametrize("make, shape, reference", RESHAPING_CASES)
def test_reshaping_values_shapes_and_gradients(numpy64, make, shape, reference):
    x = np.random.default_rng(9).standard_normal(shape)
    layer = make()
    y = run(layer, x)[0]
    np.testing.assert_allclose(y, reference(x))
    assert layer.compute_output_shape(shape[1:]) == y.shape[1:]
    assert make()(keras.Input(shape=shape[1:])).shape == (None,) + y.shape[1:]
    check_input_gradient(make(), x)


def test_reshaping_errors():
    with pytest.raises(ValueError, match="channels_last"):
        layers.ZeroPadding2D(data_format="channels_first")
    with pytest.raises(ValueError, match="channels_last"):
        layers.Cropping2D(data_format="channels_first")
    with pytest.raises(ValueError, match="channels_last"):
        layers.SpatialDropout2D(0.2, data_format="channels_first")
    with pytest.raises(ValueError, match="permutation"):
        layers.Permute((1, 3))
    with pytest.raises(ValueError, match="leaves nothing"):
        layers.Cropping1D((2, 2))(keras.Input(shape=(4, 1)))
    with pytest.raises(ValueError, match="batch, features"):
        layers.RepeatVector(2)(keras.Input(shape=(3, 4)))
    with pytest.raises(ValueError, match="n must be"):
        layers.RepeatVector(0)


# ---- noise layers ------------------------------------------------------------------
def test_noise_layers_are_identity_in_inference():
    x = np.random.default_rng(10).standard_normal((4, 3, 5)).astype(np.float32)
    for layer in (layers.GaussianNoise(1.0), layers.GaussianDropout(0.5),
                  layers.SpatialDropout1D(0.5)):
        np.testing.assert_array_equal(np.asarray(layer(x)), x)
    images = np.ones((2, 3, 3, 4), np.float32)
    np.testing.assert_array_equal(np.asarray(layers.SpatialDropout2D(0.5)(images)), images)


def test_gaussian_noise_and_dropout_in_training(numpy64):
    x = np.full((200, 50), 2.0)
    fastnn.set_seed(1)
    noisy = np.asarray(layers.GaussianNoise(0.5)(x, training=True))
    assert abs((noisy - x).std() - 0.5) < 0.02 and abs((noisy - x).mean()) < 0.02
    dropped = np.asarray(layers.GaussianDropout(0.2)(x, training=True))
    assert abs(dropped.mean() - 2.0) < 0.02
    assert abs((dropped / 2.0).std() - np.sqrt(0.2 / 0.8)) < 0.02
    # the gradient is the noise the step drew
    layer = layers.GaussianDropout(0.3, seed=5)
    y, ws = run(layer, np.ones((3, 4)), training=True)
    dy = np.random.default_rng(11).standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(current_ops(), dy, ws), dy * y)
    noise_layer = layers.GaussianNoise(0.3)
    y, ws = run(noise_layer, np.ones((3, 4)), training=True)
    np.testing.assert_array_equal(noise_layer.backward(current_ops(), dy, ws), dy)


def test_noise_follows_the_seed():
    x = np.zeros((3, 8), np.float32)
    fastnn.set_seed(3)
    a = np.asarray(layers.GaussianNoise(1.0)(x, training=True))
    fastnn.set_seed(3)
    b = np.asarray(layers.GaussianNoise(1.0)(x, training=True))
    np.testing.assert_array_equal(a, b)
    seeded = layers.GaussianNoise(1.0, seed=7)
    c, d = (np.asarray(seeded(x, training=True)) for _ in range(2))
    assert not np.array_equal(c, d)                 # fresh noise every step
    np.testing.assert_array_equal(c, np.asarray(layers.GaussianNoise(1.0, seed=7)(
        x, training=True)))


@pytest.mark.parametrize("layer_class, shape", [(layers.SpatialDropout1D, (6, 7, 20)),
                                                (layers.SpatialDropout2D, (6, 3, 4, 20))])
def test_spatial_dropout_drops_whole_channels(layer_class, shape):
    fastnn.set_seed(2)
    x = np.ones(shape, np.float32)
    y = np.asarray(layer_class(0.5)(x, training=True))
    per_channel = y.reshape(shape[0], -1, shape[-1])
    # every channel of a sample is all dropped or all kept (and scaled by 2)
    assert np.all(per_channel == per_channel[:, :1])
    assert set(np.unique(per_channel)) == {0.0, 2.0}
    with pytest.raises(ValueError, match="expects inputs"):
        layer_class(0.5)(keras.Input(shape=(3,)))


# ---- configs and saving --------------------------------------------------------------
CONFIG_CASES = [
    layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5), layers.LeakyReLU(0.2),
    layers.PReLU(alpha_initializer="ones", shared_axes=[1]), layers.ELU(alpha=0.5),
    layers.Softmax(axis=1), layers.RepeatVector(4), layers.Permute((2, 1)),
    layers.Rescaling(1 / 255), layers.Rescaling([1.0, 2.0], offset=[0.5, 0.0]),
    layers.ZeroPadding1D((1, 2)), layers.ZeroPadding2D(((1, 2), (3, 4))),
    layers.Cropping1D(2), layers.Cropping2D((1, 2)), layers.GaussianNoise(0.3, seed=4),
    layers.GaussianDropout(0.25), layers.SpatialDropout1D(0.3, seed=1),
    layers.SpatialDropout2D(0.4),
]


@pytest.mark.parametrize("layer", CONFIG_CASES, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    again = layers.deserialize(layers.serialize(layer))
    assert type(again) is type(layer)
    assert again.get_config() == config
    import json
    json.dumps(config)


def test_keras_defaults():
    assert layers.ZeroPadding2D().padding == ((1, 1), (1, 1))
    assert layers.ZeroPadding1D().padding == (1, 1)
    assert layers.Cropping1D().cropping == (1, 1)
    assert layers.Cropping2D().cropping == ((0, 0), (0, 0))
    assert layers.ReLU().get_config()["max_value"] is None
    assert layers.ELU().alpha == 1.0 and layers.Softmax().axis == -1
    assert float(layers.Rescaling(2.0).offset) == 0.0


def test_a_model_of_these_layers_trains_saves_and_loads(backend, tmp_path):
    fastnn.set_seed(0)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((32, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((32, 3)).astype(np.float32)
    model = keras.Sequential([
        keras.Input(shape=(6, 6, 2)), layers.Rescaling(0.5, offset=0.1),
        layers.GaussianNoise(0.1), layers.ZeroPadding2D(1), layers.Cropping2D(((0, 1), (1, 0))),
        layers.SpatialDropout2D(0.2), layers.PReLU(shared_axes=[1, 2]),
        layers.Reshape((7 * 7, 2)), layers.Permute((2, 1)), layers.GaussianDropout(0.1),
        layers.Cropping1D((1, 0)), layers.ZeroPadding1D((0, 1)), layers.Flatten(),
        layers.Dense(4), layers.LeakyReLU(), layers.ELU(), layers.ReLU(max_value=3.0),
        layers.RepeatVector(2), layers.Flatten(), layers.Dense(3), layers.Softmax()])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.all(model.layers[5].get_weights()[0] == 0)     # PReLU's alpha trained
    model.save(tmp_path / "m.fnn")
    loaded = keras.models.load_model(tmp_path / "m.fnn")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in model.layers]
