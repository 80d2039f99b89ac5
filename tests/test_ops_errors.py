"""Bad arguments to the layer ops get the same clear error on both backends.

The argument checks and the convolution / pooling geometry belong to the Ops
contract (fastnn.backend.ops), so the NumPy reference no longer answers a
mistake with NumPy's internals (an IndexError, "shape-mismatch for sum") nor
the compiled backend with a KeyError or a kernel status ("invalid size,
stride or option").
"""
import numpy as np
import pytest

from fastnn.backend.compiled_ops import CompiledOps
from fastnn.backend.numpy_ops import NumpyOps

BACKENDS = [CompiledOps(), NumpyOps()]

x = np.ones((4, 3), np.float32)
w = np.ones((3, 2), np.float32)
b = np.zeros(2, np.float32)
images = np.ones((1, 4, 4, 2), np.float32)
probs = np.full((2, 3), 1 / 3, np.float32)

# (case, call, exception type, words the message must contain)
CASES = [
    ("dense, unknown activation", lambda o: o.dense_forward(x, w, b, "os.system"),
     ValueError, "dense_forward: unknown activation 'os.system'; expected one of"),
    ("dense, float16", lambda o: o.dense_forward(x.astype(np.float16), w.astype(np.float16),
                                                 None, "relu"),
     TypeError, "dense_forward: x must be float32 or float64, got float16"),
    ("dense, w of another dtype", lambda o: o.dense_forward(x, w.astype(np.float64), b, None),
     TypeError, "dense_forward: w must have dtype float32"),
    ("dense, inner sizes differ", lambda o: o.dense_forward(x, np.ones((4, 2), np.float32), b,
                                                            "relu"),
     ValueError, "dense_forward: x (4, 3) has 3 features but w (4, 2) expects 4"),
    ("dense, bias", lambda o: o.dense_forward(x, w, np.zeros(3, np.float32), "relu"),
     ValueError, "dense_forward: b must be a float32 array of shape (2,)"),
    ("dense, out shape", lambda o: o.dense_forward(x, w, b, "relu",
                                                   out=np.empty((4, 3), np.float32)),
     ValueError, "dense_forward: out must have shape (4, 2)"),
    ("loss, unknown name", lambda o: o.loss("os.system", x, x),
     ValueError, "loss: unknown loss 'os.system'; expected one of"),
    ("loss, float sparse labels", lambda o: o.loss("sparse_categorical_crossentropy", probs,
                                                   np.array([1.7, 0.0], np.float32)),
     ValueError, "labels (y_true) must be an integer array of shape (2,), got float32"),
    ("loss, label out of range", lambda o: o.loss("sparse_categorical_crossentropy", probs,
                                                  np.array([3, 0])),
     ValueError, "a class index in labels is out of range [0, 3)"),
    ("loss, targets of another shape", lambda o: o.loss("mse", x, np.ones((4, 2), np.float32)),
     ValueError, "loss 'mse': y_true must have y_pred's shape (4, 3), got (4, 2)"),
    ("loss, sample weights", lambda o: o.loss("mse", x, x, sample_weight=np.ones(3, np.float32)),
     ValueError, "sample_weight must be 4 numbers"),
    ("loss, empty batch", lambda o: o.loss("mse", x[:0], x[:0]),
     ValueError, "empty batch"),
    ("metric, unknown name", lambda o: o.metric_sum("os.system", x, x),
     ValueError, "metric_sum: unknown metric 'os.system'; expected one of"),
    ("embedding, 1-D table", lambda o: o.embedding_forward(np.array([0, 1]),
                                                           np.ones(5, np.float32)),
     ValueError, "embedding_forward: table must be 2-D, got shape (5,)"),
    ("embedding, float indices", lambda o: o.embedding_forward(np.array([0.0]),
                                                               np.ones((5, 2), np.float32)),
     ValueError, "embedding_forward: indices must be an integer array"),
    ("conv, unknown padding", lambda o: o.conv2d_forward(
        images, np.ones((2, 2, 2, 3), np.float32), None, strides=(1, 1), padding="full",
        dilation=(1, 1), activation=None),
     ValueError, 'padding must be "valid" or "same", got \'full\''),
    ("conv, channels differ", lambda o: o.conv2d_forward(
        images, np.ones((2, 2, 3, 3), np.float32), None, strides=(1, 1), padding="valid",
        dilation=(1, 1), activation=None),
     ValueError, "conv2d_forward: x (1, 4, 4, 2) has 2 channels but w (2, 2, 3, 3) expects 3"),
    ("conv, kernel larger than the input", lambda o: o.conv2d_forward(
        images, np.ones((5, 5, 2, 3), np.float32), None, strides=(1, 1), padding="valid",
        dilation=(1, 1), activation=None),
     ValueError, "window (5, 5) (dilation (1, 1)) does not fit the input (4, 4)"),
    ("conv, bad strides", lambda o: o.conv2d_forward(
        images, np.ones((2, 2, 2, 3), np.float32), None, strides=(0, 1), padding="valid",
        dilation=(1, 1), activation=None),
     ValueError, "strides and dilation must be >= 1"),
    ("max pool, 3-D input", lambda o: o.max_pool2d_forward(
        np.ones((4, 4, 2), np.float32), pool_size=(2, 2), strides=(2, 2), padding="valid"),
     ValueError, "max_pool2d_forward: x must be 4-D, got shape (4, 4, 2)"),
    ("avg pool, window larger than the input", lambda o: o.avg_pool2d_forward(
        np.ones((1, 2, 2, 2), np.float32), pool_size=(3, 3), strides=(1, 1), padding="valid"),
     ValueError, "window (3, 3) (dilation (1, 1)) does not fit the input (2, 2)"),
    ("batchnorm, vector length", lambda o: o.batchnorm_forward(
        x, np.zeros(2, np.float32), np.ones(3, np.float32), None, None, epsilon=1e-3),
     ValueError, "batchnorm_forward: mean must be a float32 array of shape (3,)"),
]


@pytest.mark.parametrize("case, call, kind, words", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("ops", BACKENDS, ids=lambda o: o.name)
def test_bad_arguments_get_the_contract_error(ops, case, call, kind, words):
    with pytest.raises(kind) as caught:
        call(ops)
    assert words in str(caught.value)
    assert type(caught.value) is kind


@pytest.mark.parametrize("case, call, kind, words", CASES, ids=[c[0] for c in CASES])
def test_both_backends_word_it_alike(case, call, kind, words):
    messages = []
    for ops in BACKENDS:
        with pytest.raises(kind) as caught:
            call(ops)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_softmax_without_preact_out(dtype):
    """The GEMM's epilogue has no row softmax: the compiled backend applies it after."""
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    bs = rng.standard_normal(4).astype(dtype)
    got = CompiledOps().dense_forward(xs, ws, bs, "softmax")
    want = NumpyOps().dense_forward(xs, ws, bs, "softmax")
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)


def test_an_integer_input_shape_is_refused():
    import fastnn
    with pytest.raises(TypeError, match=r"input_shape must be a tuple, got the integer 10 "
                                        r"\(write \(10,\)\)"):
        fastnn.Sequential([fastnn.layers.Dense(2, input_shape=10)])


def test_a_batch_without_features_is_refused():
    """Dense built on zero features would predict zeros: a (0, 2) kernel."""
    import fastnn
    model = fastnn.Sequential([fastnn.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"shape must be a non-empty tuple of positive integers"):
        model.predict(np.zeros((4, 0)), verbose=0)
