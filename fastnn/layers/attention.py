"""MultiHeadAttention (Keras'): projections to heads, fused scaled dot-product
attention, projection back.

``mha(query, value, key=None, attention_mask=None, return_attention_scores=False,
training=None, use_causal_mask=False)`` on (batch, T, features) tensors. The
projections are GEMMs on Keras' kernels ((features, heads, key_dim) viewed as a
matrix); the attention core is the backend's ``attention`` kernel: online
softmax over key blocks, recomputation in the backward, so no (T, S) array
exists unless the scores are asked for.
"""
import math

import numpy as np

from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.layers.base import Layer, shapes_compatible
from fastnn.layers.regularization import check_rate, check_seed, step_seed

# A call's tensor arguments, in the order a node keeps them (those given).
_TENSOR_ARGUMENTS = ("query", "value", "key", "query_mask", "value_mask", "key_mask",
                     "attention_mask")
_MASKS = ("query_mask", "value_mask", "key_mask", "attention_mask")
# The inputs MultiHeadAttention projects (the others are masks).
_PROJECTED = ("query", "value", "key")


class MultiHeadAttention(Layer):
    """Keras' MultiHeadAttention over the sequence axis of (batch, T, features) inputs.

    ``num_heads`` heads of size ``key_dim`` for queries and keys and ``value_dim``
    (default ``key_dim``) for values; the output has the query's features, or
    ``output_shape``. Scores are scaled by 1/sqrt(key_dim); ``dropout`` drops
    attention probabilities in training. Weights (Keras' shapes and order):
    query, key and value kernels (features, heads, dim) with biases (heads, dim),
    then the output kernel (heads, value_dim, out) and bias (out,).

    Masks, as Keras combines them: the query's and value's masks (from
    ``Embedding(mask_zero=True)``), ``attention_mask`` (batch, T, S) and the
    causal mask (``use_causal_mask``: query i sees keys j <= i). Masked scores get
    -1e9 added before the softmax. The output carries the query's mask.
    """

    supports_masking = True

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _positive(num_heads, "num_heads", self.name)
        self.key_dim = _positive(key_dim, "key_dim", self.name)
        self.value_dim = self.key_dim if value_dim is None else \
            _positive(value_dim, "value_dim", self.name)
        self.dropout = check_rate(dropout, self.name)
        self.use_bias = bool(use_bias)
        if output_shape is None or output_shape == ():
            self.partial_output_shape = None
        else:
            dims = (output_shape,) if isinstance(output_shape, (int, np.integer)) else \
                tuple(output_shape)
            self.partial_output_shape = tuple(_positive(d, "output_shape", self.name)
                                              for d in dims)
        axes = (attention_axes,) if isinstance(attention_axes, int) else attention_axes
        if axes is not None and tuple(axes) not in ((1,), (-2,)):
            raise ValueError(f"{self.name}: attention over axes {attention_axes!r} is not "
                             "supported; fastnn attends over the sequence axis (1) of "
                             "(batch, T, features) inputs (attention_axes=None)")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.seed = check_seed(seed, self.name)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    # ---- the call -------------------------------------------------------------------
    def bind_call(self, query, value, key=None, query_mask=None, value_mask=None,
                  key_mask=None, attention_mask=None, return_attention_scores=False,
                  use_causal_mask=False):
        """(tensor arguments in order, static arguments) of one call (see
        fastnn.graph.calls.call_bound): the node keeps which arguments were given."""
        given = dict(query=query, value=value, key=key, query_mask=query_mask,
                     value_mask=value_mask, key_mask=key_mask, attention_mask=attention_mask)
        names = [n for n in _TENSOR_ARGUMENTS if given[n] is not None]
        # Inputs passed as one tensor (self-attention: mha(x, x)): the backward
        # sums their projections' input gradients into the first one's.
        shares = {}
        for i, name in enumerate(names):
            same = [m for m in names[:i] if m in _PROJECTED and given[m] is given[name]]
            if name in _PROJECTED and same:
                shares[name] = same[0]
        static = {"inputs": names, "scores": bool(return_attention_scores),
                  "causal": bool(use_causal_mask), "shares": shares}
        return [given[n] for n in names], static

    def build(self, input_shape, static=None):
        shapes = self._named(input_shape, static)
        for name in ("query", "value", "key"):
            shape = shapes.get(name)
            if shape is not None and (len(shape) != 2 or shape[-1] is None):
                raise ValueError(f"{self.name}: {name} must be (batch, T, features) with known "
                                 f"features, got {(None,) + tuple(shape)}")
        query, value = shapes["query"], shapes["value"]
        key = shapes.get("key", value)
        heads, d, dv = self.num_heads, self.key_dim, self.value_dim
        out = self.partial_output_shape or (query[-1],)

        def kernel(name, fan_in, shape):
            fan_out = math.prod(shape) // fan_in
            return self.add_weight(name=f"{name}/kernel", shape=shape,
                                   initializer=_initializers.with_fans(self.kernel_initializer,
                                                                      fan_in, fan_out),
                                   regularizer=self.kernel_regularizer)

        def bias(name, shape):
            return self.add_weight(name=f"{name}/bias", shape=shape,
                                   initializer=self.bias_initializer,
                                   regularizer=self.bias_regularizer) if self.use_bias else None

        self.query_kernel = kernel("query", query[-1], (query[-1], heads, d))
        self.query_bias = bias("query", (heads, d))
        self.key_kernel = kernel("key", key[-1], (key[-1], heads, d))
        self.key_bias = bias("key", (heads, d))
        self.value_kernel = kernel("value", value[-1], (value[-1], heads, dv))
        self.value_bias = bias("value", (heads, dv))
        self.output_kernel = kernel("attention_output", heads * dv, (heads, dv) + out)
        self.output_bias = bias("attention_output", out)
        self.input_shape = [tuple(s) for s in input_shape]
        self.output_shape = self.compute_output_shape(input_shape, static)
        self.built = True

    def _named(self, shapes, static):
        names = (static or {}).get("inputs", ["query", "value"])
        if len(shapes) != len(names):
            raise ValueError(f"{self.name}: expected the tensors {names}, got {len(shapes)}")
        return dict(zip(names, [tuple(s) for s in shapes]))

    def check_input_shape(self, input_shape, static=None):
        shapes = self._named(input_shape, static)
        wanted = {"query": self.query_kernel.shape[0], "value": self.value_kernel.shape[0],
                  "key": self.key_kernel.shape[0]}
        for name, features in wanted.items():
            shape = shapes.get(name)
            if shape is not None and (len(shape) != 2 or shape[-1] != features):
                raise ValueError(f"layer {self.name!r} was built for {name} inputs of "
                                 f"(batch, T, {features}), called on {(None,) + shape}")
        self._check_lengths(shapes)

    def _check_lengths(self, shapes):
        t_q, t_v = shapes["query"][0], shapes["value"][0]
        key = shapes.get("key")
        if key is not None and not shapes_compatible(key[:1], (t_v,)):
            raise ValueError(f"{self.name}: key and value must have the same length, got "
                             f"{key[0]} and {t_v}")
        for name, want in (("query_mask", (t_q,)), ("value_mask", (t_v,)),
                           ("key_mask", (t_v,)), ("attention_mask", (t_q, t_v))):
            if name in shapes and not shapes_compatible(shapes[name], want):
                raise ValueError(f"{self.name}: {name} must have shape "
                                 f"{(None,) + want}, got {(None,) + shapes[name]}")

    def compute_output_shape(self, input_shape, static=None):
        shapes = self._named(input_shape, static)
        self._check_lengths(shapes)
        query = shapes["query"]
        out = (query[0],) + (self.partial_output_shape or (query[-1],))
        if (static or {}).get("scores"):
            return [out, (self.num_heads, query[0], shapes["value"][0])]
        return out

    def output_mask(self, ws):
        # the query's mask (from its Embedding), as Keras sets it on the output
        return ws.mask[0] if isinstance(ws.mask, list) else None

    # ---- forward / backward -------------------------------------------------------------
    def forward(self, ops, xs, training=False, ws=None):
        static = ws.static
        named = dict(zip(static["inputs"], xs))
        query, value = named["query"], named["value"]
        key = named.get("key", value)
        n, t_q, _ = query.shape
        t_k = value.shape[1]
        heads, d, dv = self.num_heads, self.key_dim, self.value_dim
        q = self._project(ops, query, self.query_kernel, self.query_bias, ws, "q")
        k = self._project(ops, key, self.key_kernel, self.key_bias, ws, "k")
        v = self._project(ops, value, self.value_kernel, self.value_bias, ws, "v")
        q, k, v = (a.reshape(n, t, heads, w) for a, t, w in ((q, t_q, d), (k, t_k, d),
                                                              (v, t_k, dv)))
        masks = self._masks(named, ws.mask, static["inputs"])
        rate = self.dropout if training else 0.0
        seed = step_seed(self._rng) if rate else 0
        probs = ws.buffer("probs", (n, heads, t_q, t_k), self.dtype) if static["scores"] \
            else None
        lse = ws.buffer("lse", (n, heads, t_q), self.dtype)
        o = ops.attention(q, k, v, scale=1.0 / math.sqrt(d), causal=static["causal"],
                          dropout_rate=rate, seed=seed,
                          out=ws.buffer("o", (n, t_q, heads, dv), self.dtype), lse_out=lse,
                          probs_out=probs, **masks)
        ws.saved = (named, q, k, v, o, lse, masks, rate, seed)
        y = self._output(ops, o, ws)
        return [y, probs] if static["scores"] else y

    def _output(self, ops, o, ws):
        """The output projection of the heads' results o (N, T, heads, value_dim)."""
        n, t, heads, dv = o.shape
        out_features = self.output_kernel.shape[2:]
        y = ops.dense_forward(o.reshape(n * t, heads * dv),
                              self.output_kernel.value.reshape(heads * dv, -1),
                              None if self.output_bias is None else
                              self.output_bias.value.reshape(-1), "linear",
                              ws.buffer("y", (n * t, math.prod(out_features)), self.dtype))
        return y.reshape((n, t) + out_features)

    def forward_incremental(self, ops, xs, ws, state, start):
        """Causal self-attention of new positions start.. (fastnn.decoding): their
        keys and values join the cache in ``state``; queries attend to all so far."""
        static = ws.static
        named = dict(zip(static["inputs"], xs))
        if static["inputs"] != ["query", "value"] or named["query"] is not named["value"] \
                or not static["causal"] or static["scores"]:
            raise ValueError(f"{self.name}: incremental decoding needs causal self-attention, "
                             "mha(x, x, use_causal_mask=True), without masks or returned "
                             "scores")
        x = named["query"]
        n, t, _ = x.shape
        heads, d, dv = self.num_heads, self.key_dim, self.value_dim
        if "keys" not in state:
            state["keys"] = np.empty((n, state["max_length"], heads, d), self.dtype)
            state["values"] = np.empty((n, state["max_length"], heads, dv), self.dtype)
        keys, values = state["keys"], state["values"]
        end = start + t
        q = self._project(ops, x, self.query_kernel, self.query_bias, ws, "q")
        keys[:, start:end] = self._project(ops, x, self.key_kernel, self.key_bias, ws,
                                           "k").reshape(n, t, heads, d)
        values[:, start:end] = self._project(ops, x, self.value_kernel, self.value_bias, ws,
                                             "v").reshape(n, t, heads, dv)
        # query i sits at position start + i and sees keys 0..start + i
        mask = None
        if t > 1 and start > 0:
            mask = np.arange(end)[None, :] <= start + np.arange(t)[:, None]
            mask = np.ascontiguousarray(np.broadcast_to(mask, (n, t, end)))
        o = ops.attention(q.reshape(n, t, heads, d), keys[:, :end], values[:, :end],
                          scale=1.0 / math.sqrt(d), causal=t > 1 and start == 0,
                          attention_mask=mask,
                          out=ws.buffer("o", (n, t, heads, dv), self.dtype))
        return self._output(ops, o, ws)

    def _project(self, ops, x, kernel, bias, ws, key):
        """x (N, T, C) @ kernel (C, heads, dim) + bias: (N * T, heads * dim)."""
        x2 = x.reshape(-1, x.shape[-1])
        width = kernel.shape[1] * kernel.shape[2]
        return ops.dense_forward(x2, kernel.value.reshape(-1, width),
                                 None if bias is None else bias.value.reshape(-1), "linear",
                                 ws.buffer(key, (x2.shape[0], width), self.dtype))

    def _masks(self, named, input_masks, names):
        """The kernel's mask arguments: explicit ones, else the inputs' own (Keras),
        the value's and key's combined into one key mask."""
        auto = dict(zip(names, input_masks)) if isinstance(input_masks, list) else {}
        query_mask = named.get("query_mask", auto.get("query"))
        value_mask = named.get("value_mask", auto.get("value"))
        key_mask = named.get("key_mask", auto.get("key") if "key" in named else None)
        if value_mask is not None and key_mask is not None:
            key_mask = np.logical_and(value_mask, key_mask)
        elif key_mask is None:
            key_mask = value_mask
        return {"query_mask": _as_mask(query_mask), "key_mask": _as_mask(key_mask),
                "attention_mask": _as_mask(named.get("attention_mask"))}

    def backward(self, ops, dy, ws, need_dx=True):
        named, q, k, v, o, lse, masks, rate, seed = ws.saved
        static = ws.static
        dprobs = None
        if static["scores"]:
            dy, dprobs = dy
        n, t_q, heads, dv = o.shape
        d = self.key_dim
        o2 = o.reshape(n * t_q, heads * dv)
        do = ops.dense_backward(
            dy.reshape(n * t_q, -1), o2, self.output_kernel.value.reshape(heads * dv, -1),
            None, None, "linear", self.grad_of(self.output_kernel, ws).reshape(heads * dv, -1),
            None if self.output_bias is None else
            self.grad_of(self.output_bias, ws).reshape(-1),
            ws.buffer("do", o2.shape, self.dtype)).reshape(o.shape)
        dq, dk, dv_ = ops.attention_backward(
            do, q, k, v, o, lse,
            scale=1.0 / math.sqrt(d), causal=static["causal"], dropout_rate=rate, seed=seed,
            dprobs=dprobs, dq_out=ws.buffer("dq", q.shape, self.dtype),
            dk_out=ws.buffer("dk", k.shape, self.dtype),
            dv_out=ws.buffer("dv", v.shape, self.dtype), **masks)
        # The input gradients, by input name. Projections of one input (the key
        # omitted: the value's; or inputs passed as one tensor, static "shares")
        # accumulate into one buffer by the GEMM (beta = 1) rather than by
        # separate additions; the input's other names get None.
        shares = static.get("shares", {})
        grads = {}
        for name, dproj, kernel, bias in (("query", dq, self.query_kernel, self.query_bias),
                                          ("key", dk, self.key_kernel, self.key_bias),
                                          ("value", dv_, self.value_kernel, self.value_bias)):
            owner = name if name in named else "value"
            owner = shares.get(owner, owner)
            x = named[owner]
            first = owner not in grads
            dx = self._project_back(ops, dproj, x, kernel, bias, ws, "d" + name,
                                    need_dx and first)
            if first:
                grads[owner] = dx
            elif need_dx:
                width = kernel.shape[1] * kernel.shape[2]
                ops.gemm(dproj.reshape(-1, width), kernel.value.reshape(-1, width),
                         transpose_b=True, beta=1.0, out=grads[owner].reshape(-1, x.shape[-1]))
        if not need_dx:
            return None
        return [grads.get(name) if name in _PROJECTED and name not in shares else None
                for name in static["inputs"]]

    def _project_back(self, ops, dproj, x, kernel, bias, ws, key, need_dx):
        """Weight gradients of one projection; the input's gradient when needed."""
        x2 = x.reshape(-1, x.shape[-1])
        width = kernel.shape[1] * kernel.shape[2]
        dx = ops.dense_backward(
            dproj.reshape(-1, width), x2, kernel.value.reshape(-1, width), None, None, "linear",
            self.grad_of(kernel, ws).reshape(-1, width),
            None if bias is None else self.grad_of(bias, ws).reshape(-1),
            ws.buffer(key, x2.shape, self.dtype) if need_dx else False)
        return None if dx is None else dx.reshape(x.shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": None if self.partial_output_shape is None
                else list(self.partial_output_shape),
                "attention_axes": None,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
                "seed": self.seed}


def _as_mask(mask):
    """A mask argument as the kernel reads it: C-contiguous bool, or None."""
    if mask is None:
        return None
    return np.ascontiguousarray(mask, dtype=bool)


def _positive(value, what, where):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {what} must be a positive integer, got {value!r}")
    return int(value)
