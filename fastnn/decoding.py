"""Incremental decoding: a causal sequence model run a few new tokens at a time,
each causal self-attention keeping the keys and values of earlier positions
(a KV cache), so a new token costs O(T), not a forward pass over all T.

It works on any model whose layers either act on each time step alone (Dense,
LayerNormalization, Embedding, residual adds, element-wise ops: their
``positionwise`` is True) or know how to continue a sequence
(``forward_incremental``: causal self-attention, PositionEmbedding).

    decoder = IncrementalDecoder(model, max_length=64)
    decoder.reset(batch_size=4)
    logits = decoder(prompt)           # (4, len(prompt), vocab)
    logits = decoder(next_tokens)      # (4, 1, vocab): one more step

``generate`` samples with a temperature on top of it.
"""
import numpy as np

from fastnn import _runtime
from fastnn.backend import current_ops


class IncrementalDecoder:
    """Runs ``model`` (one input of token ids (batch, T), one output (batch, T, ...))
    on successive chunks of a sequence of at most ``max_length`` tokens."""

    def __init__(self, model, max_length):
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"{model.name}: incremental decoding takes a model with one input "
                             "(token ids) and one output")
        self.model = model
        self.max_length = int(max_length)
        self.plan = plan = model.plan()
        for st in plan.steps:
            layer = st.layer
            if not (getattr(layer, "positionwise", False) or
                    hasattr(layer, "forward_incremental")):
                raise ValueError(
                    f"{model.name}: layer {layer.name!r} ({type(layer).__name__}) mixes time "
                    "steps, so the model cannot be decoded incrementally; the layers must "
                    "act on each step alone or be causal self-attention / PositionEmbedding")
        self.scratch = plan.scratch(param_grads=False)
        self.states = None
        self.length = 0

    def reset(self, batch_size):
        """Start new sequences (``batch_size`` of them): the caches are emptied."""
        self.batch_size = int(batch_size)
        self.states = [{"max_length": self.max_length} for _ in self.plan.steps]
        self.length = 0

    def __call__(self, tokens):
        """The model's outputs at the positions of ``tokens`` (batch, t), which continue
        the sequences so far."""
        if self.states is None:
            raise RuntimeError("call reset(batch_size) before decoding")
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[0] != self.batch_size or tokens.shape[1] < 1:
            raise ValueError(f"tokens must be (batch={self.batch_size}, t >= 1), got "
                             f"{tokens.shape}")
        if self.length + tokens.shape[1] > self.max_length:
            raise ValueError(f"the sequences would grow to {self.length + tokens.shape[1]} "
                             f"tokens, beyond max_length={self.max_length}")
        plan, ops = self.plan, current_ops()
        values = [None] * plan.n_slots
        values[plan.input_slots[0]] = np.ascontiguousarray(tokens)
        for st, ws, state in zip(plan.steps, self.scratch.steps, self.states):
            args = [values[i] for i in st.ins]
            x = args if st.list_in else args[0]
            layer = st.layer
            if hasattr(layer, "forward_incremental"):
                ws.static = st.static
                y = layer.forward_incremental(ops, x, ws, state, self.length)
            else:
                y = layer.forward(ops, x, False, ws)
            if len(st.outs) == 1:
                values[st.outs[0]] = y
            else:
                for slot, value in zip(st.outs, y):
                    values[slot] = value
        self.length += tokens.shape[1]
        return np.array(values[plan.output_slots[0]])     # the workspace is reused


def generate(model, prompt, steps, *, temperature=1.0, max_length=None, seed=None,
             logits=True):
    """Continue each sequence of ``prompt`` (batch, t) token ids by ``steps`` tokens
    sampled from the model's last-position output (``logits``: scores, softmaxed
    here; otherwise probabilities). ``temperature`` 0 takes the most likely token.
    Returns (batch, t + steps) token ids."""
    prompt = np.asarray(prompt)
    if prompt.ndim == 1:
        prompt = prompt[None]
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    decoder = IncrementalDecoder(model, max_length or prompt.shape[1] + steps)
    decoder.reset(prompt.shape[0])
    rng = _runtime.rng() if seed is None else np.random.default_rng(seed)
    out = decoder(prompt)[:, -1]
    tokens = [prompt]
    for step in range(steps):
        scores = np.asarray(out, dtype=np.float64)
        if not logits:
            scores = np.log(np.maximum(scores, 1e-30))
        if temperature == 0:
            chosen = scores.argmax(axis=-1)
        else:
            z = scores / temperature
            p = np.exp(z - z.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            chosen = np.array([rng.choice(p.shape[-1], p=row) for row in p])
        chosen = chosen[:, None].astype(prompt.dtype)
        tokens.append(chosen)
        if step + 1 < steps:
            out = decoder(chosen)[:, -1]
    return np.concatenate(tokens, axis=1)
