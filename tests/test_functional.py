"""The functional API (decision 11): symbolic tensors, layer calls, Model(inputs,
outputs), shared layers, nested models, and the errors that name what is wrong."""
import numpy as np
import pytest

import fastnn
import fastnn as keras
from fastnn import layers, models, optimizers
from testing_utils import model_gradient, model_numeric_gradient


def test_input_is_a_symbolic_tensor_and_calls_record_nodes():
    inputs = keras.Input(shape=(32, 32, 3), name="img")
    assert isinstance(inputs, keras.KerasTensor)
    assert inputs.shape == (None, 32, 32, 3) and inputs.dtype == "float32"
    conv = layers.Conv2D(8, 3, activation="relu")
    x = conv(inputs)
    assert x.shape == (None, 30, 30, 8)
    assert conv.built and conv.input is inputs and conv.output is x
    history = x._keras_history
    assert history.operation is conv and history.node_index == 0 and history.tensor_index == 0
    with pytest.raises(TypeError, match="symbolic"):
        bool(x)
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(x)


def test_layer_called_on_arrays_computes_now(backend):
    dense = layers.Dense(3, kernel_initializer="ones", bias_initializer="zeros")
    out = dense(np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(out, np.full((2, 3), 4.0, np.float32))
    with pytest.raises(ValueError, match="last axis is 4"):
        dense(np.ones((2, 5), np.float32))


def toy_resnet(num_classes=10, size=16):
    """keras.io's functional-API guide toy ResNet (smaller images)."""
    inputs = keras.Input(shape=(size, size, 3), name="img")
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])
    x = layers.Conv2D(16, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes)(x)
    return keras.Model(inputs, outputs, name="toy_resnet")


def test_toy_resnet_from_the_guide_trains(backend):
    fastnn.set_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 192)
    x = rng.standard_normal((192, 16, 16, 3)).astype(np.float32) * 0.3
    x[np.arange(192), :, :, labels] += 1.0          # the class is the brightest channel
    y = keras.utils.to_categorical(labels, 3)
    model = toy_resnet(num_classes=3)
    assert [type(layer).__name__ for layer in model.layers][:2] == ["InputLayer", "Conv2D"]
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["acc"])
    history = model.fit(x, y, batch_size=32, epochs=6, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["acc"][-1] > 0.6
    lines = []
    model.summary(print_fn=lines.append)
    add_row = next(line for line in lines if line.startswith(model.layers[6].name))
    assert "Connected to" in lines[2]
    assert f"{model.layers[5].name}[0][0], {model.layers[3].name}[0][0]" in add_row


def residual_model(dtype="float64", width=1):
    """A residual block, a branch, add / concatenate / multiply merges; every
    layer ``width`` times its base size."""
    inputs = keras.Input(shape=(5,), dtype=dtype)
    h = layers.Dense(4 * width, activation="tanh", dtype=dtype)(inputs)
    r = layers.Dense(4 * width, activation="sigmoid", dtype=dtype)(h)
    s = layers.add([h, r], dtype=dtype)
    branch = layers.Dense(3 * width, activation="elu", dtype=dtype)(inputs)
    merged = layers.concatenate([s, branch], dtype=dtype)
    prod = layers.multiply([layers.Dense(7 * width, dtype=dtype)(merged), merged], dtype=dtype)
    outputs = layers.Dense(2, dtype=dtype)(prod)
    return keras.Model(inputs, outputs)


def test_residual_and_branch_gradients_match_finite_differences():
    previous = fastnn.get_backend()
    fastnn.set_backend("numpy")
    try:
        fastnn.set_seed(3)
        model = residual_model()
        model.compile(optimizer=optimizers.SGD(0.0), loss="mse")
        rng = np.random.default_rng(3)
        x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
        analytic = model_gradient(model, x, y)
        numeric = model_numeric_gradient(model, x, y)
    finally:
        fastnn.set_backend(previous)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_compiled_graph_gradients_equal_numpy_ones():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 5)).astype(np.float32)
    y = rng.standard_normal((9, 2)).astype(np.float32)
    grads = {}
    for name in ("numpy", "compiled"):
        previous = fastnn.get_backend()
        fastnn.set_backend(name)
        try:
            fastnn.set_seed(4)
            model = residual_model("float32")
            model.compile(optimizer=optimizers.SGD(0.0), loss="mse")
            grads[name] = model_gradient(model, x, y)
        finally:
            fastnn.set_backend(previous)
    np.testing.assert_allclose(grads["compiled"], grads["numpy"], rtol=2e-4, atol=1e-6)


def test_a_shared_layer_is_one_set_of_weights_with_summed_gradients():
    previous = fastnn.get_backend()
    fastnn.set_backend("numpy")
    try:
        fastnn.set_seed(5)
        shared = layers.Dense(3, activation="tanh", dtype="float64")
        a = keras.Input(shape=(4,), dtype="float64")
        b = keras.Input(shape=(4,), dtype="float64")
        merged = layers.subtract([shared(a), shared(b)], dtype="float64")
        model = keras.Model([a, b], layers.Dense(1, dtype="float64")(merged))
        model.compile(optimizer=optimizers.SGD(0.0), loss="mse")
        assert model.count_params() == 4 * 3 + 3 + 3 + 1        # the shared layer once
        assert model.buffers.size == model.count_params()
        assert len(shared._inbound_nodes) == 2
        rng = np.random.default_rng(5)
        xa, xb, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 4)), \
            rng.standard_normal((5, 1))
        analytic = model_gradient(model, [xa, xb], y)
        numeric = model_numeric_gradient(model, [xa, xb], y)
    finally:
        fastnn.set_backend(previous)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_feature_extractor_shares_weights_with_its_model(backend):
    fastnn.set_seed(6)
    inputs = keras.Input(shape=(6,))
    h = layers.Dense(5, activation="relu", name="hidden")(inputs)
    outputs = layers.Dense(2, name="head")(h)
    full = keras.Model(inputs, outputs)
    extractor = keras.Model(inputs=full.input, outputs=full.get_layer("hidden").output)
    x = np.random.default_rng(6).standard_normal((8, 6)).astype(np.float32)
    before = extractor.predict(x, verbose=0)
    full.compile(optimizer="adam", loss="mse")
    full.fit(x, np.ones((8, 2), np.float32), epochs=3, verbose=0)
    after = extractor.predict(x, verbose=0)
    assert not np.array_equal(before, after)              # the extractor sees the training
    np.testing.assert_allclose(after, full.get_layer("hidden")(x), rtol=1e-6)
    # a model built from an intermediate tensor gets an Input of its own
    head_only = keras.Model(h, outputs)
    assert type(head_only.layers[0]).__name__ == "InputLayer"
    np.testing.assert_allclose(head_only.predict(after, verbose=0), full.predict(x, verbose=0),
                               rtol=1e-6)


def test_nested_models_share_weights_and_freeze_as_keras(backend):
    fastnn.set_seed(7)
    base_in = keras.Input(shape=(6,))
    base = keras.Model(base_in, layers.Dense(4, activation="relu")(base_in), name="base")
    head = models.Sequential([layers.Dense(2)], name="head")
    inputs = keras.Input(shape=(6,))
    outputs = head(base(inputs, training=False))
    model = keras.Model(inputs, outputs)
    assert [layer.name for layer in model.layers][1:] == ["base", "head"]
    assert model.count_params() == base.count_params() + head.count_params()
    x = np.random.default_rng(7).standard_normal((16, 6)).astype(np.float32)
    y = np.random.default_rng(8).standard_normal((16, 2)).astype(np.float32)
    base.trainable = False                      # Keras 3: freezes every layer inside
    assert all(not layer.trainable for layer in base.layers)
    frozen = base.get_weights()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, base.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(model.trainable_weights) == 2
    base.trainable = True                       # no recompile needed
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(frozen[0], base.get_weights()[0])
    np.testing.assert_allclose(model.predict(x, verbose=0), head.predict(base.predict(x)),
                               rtol=1e-5, atol=1e-6)


def test_training_false_at_call_time_keeps_batchnorm_in_inference(backend):
    fastnn.set_seed(9)
    base = models.Sequential([layers.Input(shape=(3,)), layers.BatchNormalization()])
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, layers.Dense(1)(base(inputs, training=False)))
    model.compile(optimizer="sgd", loss="mse")
    bn = base.layers[0]
    moving = bn.get_weights()[2:]
    x = np.random.default_rng(9).standard_normal((32, 3)).astype(np.float32) * 5 + 2
    model.fit(x, np.zeros((32, 1), np.float32), epochs=1, verbose=0)
    for a, b in zip(moving, bn.get_weights()[2:]):
        np.testing.assert_array_equal(a, b)    # inference mode: the statistics never moved


def test_sequential_is_a_chain_graph():
    model = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    assert model.built and [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense"]
    assert model.plan().is_chain
    assert len(model.graph.nodes) == 2
    popped = model.pop()
    assert len(popped._inbound_nodes) == 0 and len(model.graph.nodes) == 1
    model.add(layers.Dense(5))
    assert model.output_shape == (None, 5)


def _shared_dense_on_two_widths():
    dense = layers.Dense(2)
    dense(keras.Input(shape=(4,)))
    dense(keras.Input(shape=(5,)))


GRAPH_ERRORS = {
    "incompatible layer call": (_shared_dense_on_two_widths, ValueError,
                                r"expects inputs whose last axis is 4.*\(None, 5\)"),
    "merge shapes": (
        lambda: layers.add([keras.Input(shape=(3,)), keras.Input(shape=(4,))]),
        ValueError, r"add.*\(None, 3\).*\(None, 4\).*cannot be merged"),
    "concatenate shapes": (
        lambda: layers.concatenate([keras.Input(shape=(3, 2)), keras.Input(shape=(4, 2))]),
        ValueError, r"concatenat.*\(None, 3, 2\).*\(None, 4, 2\)"),
    "subtract arity": (
        lambda: layers.subtract([keras.Input(shape=(3,))] * 3),
        ValueError, "exactly 2 inputs"),
    "merge on one tensor": (
        lambda: layers.Add()(keras.Input(shape=(3,))),
        ValueError, "list of inputs"),
    "disconnected": (
        lambda: (lambda a, b: keras.Model(a, layers.add([layers.Dense(2)(a),
                                                         layers.Dense(2)(b)])))(
            keras.Input(shape=(3,), name="a_in"), keras.Input(shape=(3,), name="b_in")),
        ValueError, r"disconnected.*'b_in' input"),
    "unused input": (
        lambda: (lambda a, b: keras.Model([a, b], layers.Dense(2)(a)))(
            keras.Input(shape=(3,)), keras.Input(shape=(3,), name="spare")),
        ValueError, r"'spare' input \(None, 3\) is not connected"),
    "not a tensor": (
        lambda: keras.Model(keras.Input(shape=(3,)), np.zeros(3)),
        TypeError, "symbolic tensors"),
    "duplicate names": (
        lambda: (lambda a: keras.Model(a, layers.Dense(2, name="twin")(
            layers.Dense(2, name="twin")(a))))(keras.Input(shape=(3,))),
        ValueError, "two different layers are named 'twin'"),
    "dot axes": (
        lambda: layers.dot([keras.Input(shape=(3,)), keras.Input(shape=(4,))], axes=1),
        ValueError, r"contracted axes.*differ in size \(3 and 4\)"),
}


@pytest.mark.parametrize("build,error,match", GRAPH_ERRORS.values(), ids=GRAPH_ERRORS.keys())
def test_graph_errors_name_layers_and_shapes(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_bad_call_arguments():
    x = keras.Input(shape=(3,))
    with pytest.raises(TypeError, match="unexpected call arguments"):
        layers.Dense(2)(x, mask=None)
    with pytest.raises(TypeError, match="training must be"):
        layers.Dense(2)(x, training="yes")
    with pytest.raises(TypeError, match="mix of symbolic"):
        layers.add([x, np.zeros((1, 3))])
    with pytest.raises(TypeError, match="integer"):
        keras.Input(shape=10)
    with pytest.raises(TypeError, match=r"Model\(inputs, outputs\) takes"):
        keras.Model()


def test_predict_from_several_threads_on_a_graph(backend):
    import threading
    fastnn.set_seed(10)
    model = residual_model("float32")
    x = np.random.default_rng(10).standard_normal((300, 5)).astype(np.float32)
    expected = model.predict(x, batch_size=50, verbose=0)
    results, errors = [None] * 4, []

    def work(i):
        try:
            results[i] = model.predict(x, batch_size=17 + i, verbose=0)
        except Exception as exc:      # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in results:
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_graph_training_is_bitwise_deterministic_across_thread_counts(backend):
    from testing_utils import on_threads
    rng = np.random.default_rng(11)
    x = rng.standard_normal((600, 5)).astype(np.float32)
    y = rng.standard_normal((600, 2)).astype(np.float32)
    results = []
    for threads in (1, 2):
        with on_threads(threads, check=backend == "compiled"):
            fastnn.set_seed(11)
            # wide enough (200 x 384 and more per merge) for the merges and
            # GEMMs to share their work between two threads
            model = residual_model("float32", width=96)
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, y, epochs=2, batch_size=200, verbose=0)
            results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- PyTorch (optional): the same graph, weights copied, forward and gradients -------
def branchy_model():
    """A residual block, two branches, every merge kind; float64."""
    f64 = {"dtype": "float64"}
    inputs = keras.Input(shape=(5,), dtype="float64")
    h = layers.Dense(4, activation="tanh", name="h", **f64)(inputs)
    r = layers.Dense(4, activation="sigmoid", name="r", **f64)(h)
    s = layers.add([h, r], **f64)                                  # residual
    branch = layers.Dense(4, activation="elu", name="branch", **f64)(inputs)
    merged = layers.concatenate([s, layers.subtract([branch, s], **f64),
                                 layers.maximum([branch, h], **f64),
                                 layers.multiply([s, branch], **f64),
                                 layers.average([h, r, branch], **f64)], **f64)
    sim = layers.dot([s, branch], axes=1, **f64)
    out = layers.Dense(2, name="out", **f64)(layers.concatenate([merged, sim], **f64))
    return keras.Model(inputs, out)


def torch_branchy(model, x):
    """The same computation in PyTorch from the model's weights (Keras' kernel is
    the transpose of torch's Linear weight)."""
    import torch
    params = {layer.name: [torch.tensor(w, requires_grad=True) for w in layer.get_weights()]
              for layer in model.layers if layer.get_weights()}

    def dense(name, v, act=None):
        kernel, bias = params[name]
        z = v @ kernel + bias
        return act(z) if act else z

    xt = torch.tensor(x)
    h = dense("h", xt, torch.tanh)
    r = dense("r", h, torch.sigmoid)
    s = h + r
    branch = dense("branch", xt, torch.nn.functional.elu)
    merged = torch.cat([s, branch - s, torch.maximum(branch, h), s * branch,
                        (h + r + branch) / 3], dim=1)
    sim = (s * branch).sum(dim=1, keepdim=True)
    return dense("out", torch.cat([merged, sim], dim=1)), params


@pytest.mark.torch_oracle
def test_graph_forward_and_gradients_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    previous = fastnn.get_backend()
    fastnn.set_backend("numpy")
    try:
        fastnn.set_seed(12)
        model = branchy_model()
        model.compile(optimizer=optimizers.SGD(0.0), loss="mse")
        x, y = rng.standard_normal((7, 5)), rng.standard_normal((7, 2))
        ours = model.predict(x, verbose=0)
        grads = model_gradient(model, x, y)
    finally:
        fastnn.set_backend(previous)
    theirs, params = torch_branchy(model, x)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    torch.nn.functional.mse_loss(theirs, torch.tensor(y)).backward()
    # the flat gradient buffer packs the weights in model.weights order
    expected = np.concatenate([p.grad.numpy().reshape(-1) for layer in model.layers
                               if layer.get_weights() for p in params[layer.name]])
    np.testing.assert_allclose(grads, expected, rtol=1e-9, atol=1e-12)
