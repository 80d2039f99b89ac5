"""Inference through a stack of dense layers in one call (csrc/dense_stack.c).

ops.dense_stack must give bitwise what dense_forward gives layer after layer
on the same backend (the same micro-kernel, K blocking and activation
loops), for any thread count; predict uses it for runs of Dense layers in a
chain and must therefore predict exactly what the layer-by-layer forward
does."""
import numpy as np
import pytest

import fastnn
from fastnn.backend.ops import ACTIVATIONS
from testing_utils import on_threads


def _stack(rng, dims, dtype=np.float32, with_bias=True):
    kernels = [(rng.standard_normal((dims[i], dims[i + 1])) / np.sqrt(dims[i])).astype(dtype)
               for i in range(len(dims) - 1)]
    biases = [rng.standard_normal(dims[i + 1]).astype(dtype) if with_bias else None
              for i in range(len(dims) - 1)]
    return kernels, biases


def _layer_by_layer(ops, x, kernels, biases, activations):
    for w, b, act in zip(kernels, biases, activations):
        x = ops.dense_forward(x, w, b, act)
    return x


# Odd sizes: rows not a multiple of the tile or block, layers wider than four
# micro-panels (A packed), K past the Intel KC (256) and AMD's (1024).
SHAPES = [((10, 64, 32, 1), 1001), ((7, 33, 5), 1), ((3, 200, 17, 9), 97),
          ((300, 70, 130), 50), ((1100, 40, 3), 13)]


@pytest.mark.parametrize("dims, rows", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_bitwise_equal_to_layer_by_layer(compiled_ops, dims, rows, threads):
    rng = np.random.default_rng(len(dims) * rows)
    kernels, biases = _stack(rng, dims)
    x = rng.standard_normal((rows, dims[0])).astype(np.float32)
    activations = ["relu", "gelu", None, "tanh"][:len(kernels) - 1] + ["softmax"]
    with on_threads(threads, check=False):
        got = compiled_ops.dense_stack(x, kernels, biases, activations)
    want = _layer_by_layer(compiled_ops, x, kernels, biases, activations)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation(compiled_ops, numpy_ops, activation):
    rng = np.random.default_rng(3)
    kernels, biases = _stack(rng, (9, 40, 6), with_bias=activation != "relu")
    x = rng.standard_normal((37, 9)).astype(np.float32)
    activations = [activation, activation]
    got = compiled_ops.dense_stack(x, kernels, biases, activations)
    np.testing.assert_array_equal(got, _layer_by_layer(compiled_ops, x, kernels, biases,
                                                       activations))
    # the NumPy twin: the same layers in float64 reference arithmetic
    twin = numpy_ops.dense_stack(x.astype(np.float64), [w.astype(np.float64) for w in kernels],
                                 [None if b is None else b.astype(np.float64) for b in biases],
                                 activations)
    np.testing.assert_allclose(got, twin, rtol=2e-5, atol=2e-5)


def test_threads_really_split_the_rows(compiled_ops):
    rng = np.random.default_rng(5)
    kernels, biases = _stack(rng, (64, 256, 256, 10))
    x = rng.standard_normal((2000, 64)).astype(np.float32)
    activations = ["relu", "relu", None]
    with on_threads(1):
        one = compiled_ops.dense_stack(x, kernels, biases, activations)
    with on_threads(2):
        two = compiled_ops.dense_stack(x, kernels, biases, activations)
    np.testing.assert_array_equal(one, two)


def test_float64_and_bad_arguments_go_layer_by_layer(compiled_ops):
    rng = np.random.default_rng(6)
    kernels, biases = _stack(rng, (5, 8, 2), dtype=np.float64)
    x = rng.standard_normal((4, 5))
    got = compiled_ops.dense_stack(x, kernels, biases, ["relu", None])
    np.testing.assert_array_equal(got, _layer_by_layer(compiled_ops, x, kernels, biases,
                                                       ["relu", None]))
    kernels32 = [w.astype(np.float32) for w in kernels]
    with pytest.raises(ValueError, match="dense_forward: x .* has 8 features but w"):
        compiled_ops.dense_stack(x.astype(np.float32), [kernels32[0], kernels32[0]],
                                 [None, None], [None, None])
    with pytest.raises(ValueError, match="one kernel, bias and activation per layer"):
        compiled_ops.dense_stack(x.astype(np.float32), kernels32, [None], [None, None])
    with pytest.raises(ValueError, match="unknown activation 'bogus'"):
        compiled_ops.dense_stack(x.astype(np.float32), kernels32, [None, None], ["bogus", None])


def _mlp(units=(64, 32, 1), input_dim=10, extra=()):
    fastnn.set_seed(11)
    model = fastnn.Sequential([fastnn.layers.Input((input_dim,))]
                              + [fastnn.layers.Dense(u, activation="relu") for u in units[:-1]]
                              + [fastnn.layers.Dense(units[-1])] + list(extra))
    model.compile("adam", "mse")
    return model


def test_predict_runs_the_dense_layers_as_one_stack(monkeypatch):
    compiled_ops = fastnn.backend.get_ops("compiled")
    model = _mlp()
    calls = []
    original = compiled_ops.dense_stack
    monkeypatch.setattr(compiled_ops, "dense_stack",
                        lambda *args: calls.append(len(args[1])) or original(*args))
    x = np.random.default_rng(0).standard_normal((1000, 10)).astype(np.float32)
    fastnn.set_backend("compiled")
    got = model.predict(x, batch_size=256, verbose=0)
    assert calls == [3, 3, 3, 3]
    plan = model.plan()
    want = plan.forward(compiled_ops, [x], False, plan.scratch(param_grads=False))[0]
    np.testing.assert_array_equal(got, want)


def test_layers_between_runs_and_subclasses_are_not_fused():
    class Shifted(fastnn.layers.Dense):
        def forward(self, ops, x, training=False, ws=None):
            return super().forward(ops, x, training, ws) + 1.0

    fastnn.set_seed(2)
    model = fastnn.Sequential([fastnn.layers.Input((6,)), fastnn.layers.Dense(8),
                               fastnn.layers.Dense(8, activation="tanh"),
                               fastnn.layers.Dropout(0.5), fastnn.layers.Dense(4),
                               Shifted(3)])
    model.compile("sgd", "mse")
    plan = model.plan()
    assert plan.predict_forwards[1] is None              # the first run: two layers, one step
    assert plan.predict_forwards[2:] == plan.chain_forwards[2:]
    x = np.random.default_rng(1).standard_normal((50, 6)).astype(np.float32)
    want = plan.forward(fastnn.backend.current_ops(), [x], False,
                        plan.scratch(param_grads=False))[0]
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)


def test_sequence_input_keeps_its_shape():
    fastnn.set_seed(4)
    model = fastnn.Sequential([fastnn.layers.Input((5, 3)), fastnn.layers.Dense(7, "relu"),
                               fastnn.layers.Dense(2)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(2).standard_normal((4, 5, 3)).astype(np.float32)
    plan = model.plan()
    want = plan.forward(fastnn.backend.current_ops(), [x], False,
                        plan.scratch(param_grads=False))[0]
    got = model.predict(x, verbose=0)
    assert got.shape == (4, 5, 2)
    np.testing.assert_array_equal(got, want)
