"""MultiHeadAttention as Keras documents it: weights (shapes, order), the call's
arguments, masks (causal, attention_mask, Embedding(mask_zero=True)), returned
scores, dropout; every gradient by finite differences (float64, NumPy backend);
PyTorch's scaled_dot_product_attention as an oracle; saving."""
import numpy as np
import pytest

import fastnn as keras
from fastnn import layers

from testing_utils import model_gradient, model_numeric_gradient


def keras_reference(layer, query, value, key=None, mask=None):
    """Keras 3's MultiHeadAttention computation in float64 NumPy: the output and the
    scores. ``mask`` (N, Tq, Tk) bool, True where attention is allowed."""
    key = value if key is None else key
    wq, bq, wk, bk, wv, bv, wo, bo = (w.astype(np.float64) for w in layer.get_weights())
    q = np.einsum("btc,chd->bthd", query, wq) + bq
    k = np.einsum("btc,chd->bthd", key, wk) + bk
    v = np.einsum("btc,chd->bthd", value, wv) + bv
    q = q / np.sqrt(layer.key_dim)
    scores = np.einsum("bshd,bthd->bhts", k, q)
    if mask is not None:
        scores = scores + (1.0 - mask[:, None]) * -1e9
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    o = np.einsum("bhts,bshd->bthd", scores, v)
    return np.einsum("bthd,hdo->bto", o, wo) + bo, scores


def _random_weights(layer, rng, scale=0.5):
    layer.set_weights([rng.normal(scale=scale, size=w.shape) for w in layer.get_weights()])


def test_weights_follow_keras_shapes_and_order():
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, output_shape=7)
    out = mha(keras.Input((6, 8)), keras.Input((9, 10)), keras.Input((9, 11)))
    assert out.shape == (None, 6, 7)
    assert [(w.name, w.shape) for w in mha.weights] == [
        ("query/kernel", (8, 3, 4)), ("query/bias", (3, 4)),
        ("key/kernel", (11, 3, 4)), ("key/bias", (3, 4)),
        ("value/kernel", (10, 3, 5)), ("value/bias", (3, 5)),
        ("attention_output/kernel", (3, 5, 7)), ("attention_output/bias", (7,))]
    plain = layers.MultiHeadAttention(2, 4, use_bias=False)
    y, scores = plain(keras.Input((5, 6)), keras.Input((3, 6)), return_attention_scores=True)
    assert y.shape == (None, 5, 6) and scores.shape == (None, 2, 5, 3)
    assert [w.name for w in plain.weights] == ["query/kernel", "key/kernel", "value/kernel",
                                               "attention_output/kernel"]


@pytest.mark.parametrize("case", ["self", "cross", "key", "causal", "attention_mask",
                                  "causal_and_mask"])
def test_forward_matches_kerass_computation(backend, rng, case):
    n, tq, tk, c = 2, 5, 7 if case in ("cross", "key", "attention_mask") else 5, 6
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4)
    query = rng.normal(size=(n, tq, c)).astype(np.float32)
    value = query if tk == tq else rng.normal(size=(n, tk, c)).astype(np.float32)
    key = rng.normal(size=(n, tk, c)).astype(np.float32) if case == "key" else None
    mask = None
    kwargs = {}
    if case in ("attention_mask", "causal_and_mask"):
        mask = rng.random((n, tq, tk)) < 0.7
        mask[:, :, 0] = True
        kwargs["attention_mask"] = mask
    if case.startswith("causal"):
        causal = np.tril(np.ones((tq, tk), bool))[None]
        mask = causal if mask is None else mask & causal
        kwargs["use_causal_mask"] = True
    mha(query, value, key) if key is not None else mha(query, value)   # build
    _random_weights(mha, rng)
    args = (query, value) if key is None else (query, value, key)
    y, scores = mha(*args, return_attention_scores=True, **kwargs)
    want, want_scores = keras_reference(mha, query.astype(np.float64), value.astype(np.float64),
                                        None if key is None else key.astype(np.float64),
                                        None if mask is None else mask.astype(np.float64))
    np.testing.assert_allclose(y, want, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(scores, want_scores, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(mha(*args, **kwargs), y, rtol=1e-6, atol=1e-6)


def test_masks_from_embeddings_are_combined_as_keras_does(backend, rng):
    tokens_q, tokens_v = keras.Input((4,), dtype="int32"), keras.Input((6,), dtype="int32")
    embed = layers.Embedding(10, 6, mask_zero=True)
    mha = layers.MultiHeadAttention(2, 3)
    out = mha(embed(tokens_q), embed(tokens_v))
    pooled = layers.GlobalAveragePooling1D()(out)     # uses the output's (= query's) mask
    model = keras.Model([tokens_q, tokens_v], [out, pooled])
    q = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    v = np.array([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 1]])
    out, pooled = model.predict([q, v], verbose=0)
    table = embed.get_weights()[0].astype(np.float64)
    mask = (q != 0)[:, :, None] & (v != 0)[:, None, :]
    want, _ = keras_reference(mha, table[q], table[v], mask=mask.astype(np.float64))
    np.testing.assert_allclose(out, want, rtol=2e-4, atol=2e-4)
    kept = (q != 0)[..., None]
    np.testing.assert_allclose(pooled, (want * kept).sum(1) / kept.sum(1), rtol=2e-4, atol=2e-4)


def _float64_model(case):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((5, 4), dtype="float64")
    mha = layers.MultiHeadAttention(2, 3, value_dim=2, dtype="float64")
    if case == "causal":
        return keras.Model(inputs, mha(inputs, inputs, use_causal_mask=True))
    other = keras.Input((6, 4), dtype="float64")
    # Dense layers in front of the attention's inputs: their weight gradients
    # carry the gradients of the query, value and key inputs.
    if case == "cross":                      # key omitted: the value's projection too
        out = mha(layers.Dense(4, dtype="float64")(inputs),
                  layers.Dense(4, dtype="float64")(other))
    elif case == "key_is_query":             # query and key one tensor, value another
        query = layers.Dense(4, dtype="float64")(inputs)
        return keras.Model(inputs, mha(query, layers.Dense(4, dtype="float64")(inputs), query))
    else:
        out = mha(inputs, other, layers.Dense(4, dtype="float64")(other))
    return keras.Model([inputs, other], out)


@pytest.mark.parametrize("case", ["causal", "cross_key", "cross", "key_is_query"])
def test_gradients_match_finite_differences(rng, case):
    keras.set_backend("numpy")
    try:
        model = _float64_model(case)
        model.compile(optimizer="sgd", loss="mse")
        x = rng.normal(size=(3, 5, 4))
        inputs = x if len(model.inputs) == 1 else [x, rng.normal(size=(3, 6, 4))]
        y = rng.normal(size=(3, 5, 4))
        np.testing.assert_allclose(model_gradient(model, inputs, y),
                                   model_numeric_gradient(model, inputs, y),
                                   rtol=1e-5, atol=1e-8)
    finally:
        keras.set_backend("compiled")


def test_an_input_under_stop_gradient_gets_no_gradient(rng):
    """mha(q, stop_gradient(q)): at run time the value is the query's very array,
    yet only the query's projection may pass a gradient back (the graph, not
    array identity, says which inputs are one tensor)."""
    from fastnn import ops

    def model(copy):
        keras.utils.set_random_seed(5)
        inputs = keras.Input((5, 4), dtype="float64")
        q = layers.Dense(4, dtype="float64")(inputs)
        v = ops.stop_gradient(q * 1.0 if copy else q)
        m = keras.Model(inputs, layers.MultiHeadAttention(2, 3, dtype="float64")(q, v))
        m.compile(optimizer="sgd", loss="mse")
        return m

    keras.set_backend("numpy")
    try:
        x, y = rng.normal(size=(3, 5, 4)), rng.normal(size=(3, 5, 4))
        np.testing.assert_allclose(model_gradient(model(False), x, y),
                                   model_gradient(model(True), x, y), rtol=1e-12, atol=1e-14)
    finally:
        keras.set_backend("compiled")


def test_gradient_through_the_returned_scores(rng):
    keras.set_backend("numpy")
    try:
        keras.utils.set_random_seed(3)
        query, value = keras.Input((3, 4), dtype="float64"), keras.Input((5, 4), dtype="float64")
        mha = layers.MultiHeadAttention(2, 2, dtype="float64")
        out, scores = mha(query, value, return_attention_scores=True)
        model = keras.Model([query, value], [out, scores])
        model.compile(optimizer="sgd", loss=["mse", "mse"])
        x = [rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))]
        y = [rng.normal(size=(2, 3, 4)), rng.uniform(size=(2, 2, 3, 5))]
        np.testing.assert_allclose(model_gradient(model, x, y),
                                   model_numeric_gradient(model, x, y), rtol=1e-5, atol=1e-8)
    finally:
        keras.set_backend("compiled")


def test_dropout_drops_attention_probabilities_in_training_only(rng):
    mha = layers.MultiHeadAttention(2, 4, dropout=0.5, seed=1)
    x = rng.normal(size=(2, 6, 8)).astype(np.float32)
    plain = mha(x, x)
    np.testing.assert_array_equal(mha(x, x, training=False), plain)
    dropped = mha(x, x, training=True)
    assert not np.allclose(dropped, plain)
    # with the same seed the layer draws the same masks
    again = layers.MultiHeadAttention(2, 4, dropout=0.5, seed=1)
    again(x, x)
    again.set_weights(mha.get_weights())
    np.testing.assert_array_equal(again(x, x, training=True), dropped)


def test_saves_and_loads_with_its_call_arguments(tmp_path, rng):
    tokens = keras.Input((8,), dtype="int32")
    h = layers.Embedding(20, 8)(tokens)
    h = layers.MultiHeadAttention(2, 4, name="attention")(h, h, use_causal_mask=True)
    model = keras.Model(tokens, layers.Dense(20)(h))
    x = rng.integers(0, 20, size=(3, 8))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_layer("attention").get_config() == model.get_layer("attention").get_config()


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="num_heads"):
        layers.MultiHeadAttention(0, 4)
    with pytest.raises(ValueError, match="attention"):
        layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))
    mha = layers.MultiHeadAttention(2, 4)
    with pytest.raises(ValueError, match="same length"):
        mha(keras.Input((3, 4)), keras.Input((5, 4)), keras.Input((6, 4)))
    with pytest.raises(ValueError, match="attention_mask"):
        layers.MultiHeadAttention(2, 4)(keras.Input((3, 4)), keras.Input((5, 4)),
                                        attention_mask=keras.Input((3, 4)))


@pytest.mark.torch_oracle
def test_pytorch_scaled_dot_product_attention_agrees(rng):
    torch = pytest.importorskip("torch")
    n, tq, tk, c, heads, dim = 2, 5, 6, 8, 2, 3
    query, value = rng.normal(size=(n, tq, c)), rng.normal(size=(n, tk, c))
    mask = rng.random((n, tq, tk)) < 0.8
    mask[:, :, 0] = True
    keras.set_backend("numpy")
    try:
        keras.utils.set_random_seed(5)
        q_in, v_in = keras.Input((tq, c), dtype="float64"), keras.Input((tk, c), dtype="float64")
        m_in = keras.Input((tq, tk), dtype="bool")
        mha = layers.MultiHeadAttention(heads, dim, dtype="float64")
        model = keras.Model([q_in, v_in, m_in], mha(q_in, v_in, attention_mask=m_in))
        model.compile(optimizer="sgd", loss="mse")
        y = rng.normal(size=(n, tq, c))
        out = model.predict([query, value, mask], verbose=0)
        grads = model_gradient(model, [query, value, mask], y)
    finally:
        keras.set_backend("compiled")
    weights = [torch.tensor(w, requires_grad=True) for w in mha.get_weights()]
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    tq_, tv_ = torch.tensor(query), torch.tensor(value)
    q = torch.einsum("btc,chd->bhtd", tq_, wq) + bq[None, :, None, :]
    k = torch.einsum("btc,chd->bhtd", tv_, wk) + bk[None, :, None, :]
    v = torch.einsum("btc,chd->bhtd", tv_, wv) + bv[None, :, None, :]
    o = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.tensor(mask)[:, None], scale=dim ** -0.5)
    result = torch.einsum("bhtd,hdo->bto", o, wo) + bo
    np.testing.assert_allclose(out, result.detach().numpy(), rtol=1e-10, atol=1e-12)
    ((result - torch.tensor(y)) ** 2).mean().backward()
    np.testing.assert_allclose(grads, np.concatenate([w.grad.numpy().ravel() for w in weights]),
                               rtol=1e-8, atol=1e-12)
