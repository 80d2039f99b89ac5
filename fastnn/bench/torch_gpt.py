"""W6's PyTorch twin: the same GPT in torch.nn, attention by
``scaled_dot_product_attention``, weights copied from the fastnn model, and the
same greedy generation with a KV cache. torch is imported only when a twin is
built (fastnn never requires it)."""
import numpy as np


def torch_gpt(model):
    """The torch module mirroring fastnn.bench.gpt.build_w6's ``model``."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    def linear(kernel, bias):
        """nn.Linear computing x @ kernel + bias, kernel an (inputs, outputs) array."""
        module = nn.Linear(*kernel.shape)
        with torch.no_grad():
            module.weight.copy_(tensor(kernel.T))
            module.bias.copy_(tensor(bias.reshape(-1)))
        return module

    def dense(layer):
        return linear(layer.kernel.value, layer.bias.value)

    def layer_norm(layer):
        module = nn.LayerNorm(layer.gamma.shape[-1], eps=layer.epsilon)
        with torch.no_grad():
            module.weight.copy_(tensor(layer.gamma.value))
            module.bias.copy_(tensor(layer.beta.value))
        return module

    class Attention(nn.Module):
        def __init__(self, mha):
            super().__init__()
            self.heads, self.dim = mha.num_heads, mha.key_dim
            features = mha.query_kernel.shape[0]
            self.q, self.k, self.v = (linear(kernel.value.reshape(features, -1), bias.value)
                                      for kernel, bias in ((mha.query_kernel, mha.query_bias),
                                                           (mha.key_kernel, mha.key_bias),
                                                           (mha.value_kernel, mha.value_bias)))
            self.o = linear(mha.output_kernel.value.reshape(self.heads * mha.value_dim, -1),
                            mha.output_bias.value)

        def forward(self, x, cache=None, start=0):
            n, t, _ = x.shape
            q, k, v = (f(x).view(n, t, self.heads, self.dim).transpose(1, 2)
                       for f in (self.q, self.k, self.v))
            causal = True
            if cache is not None:                  # decoding: keys so far + the new ones
                cache[0][:, :, start:start + t] = k
                cache[1][:, :, start:start + t] = v
                k, v = cache[0][:, :, :start + t], cache[1][:, :, :start + t]
                causal = t > 1
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                               scale=1.0 / self.dim ** 0.5)
            return self.o(o.transpose(1, 2).reshape(n, t, -1))

    class Block(nn.Module):
        def __init__(self, ln1, mha, ln2, up, down):
            super().__init__()
            self.ln1, self.attention, self.ln2 = layer_norm(ln1), Attention(mha), layer_norm(ln2)
            self.up, self.down = dense(up), dense(down)

        def forward(self, x, cache=None, start=0):
            x = x + self.attention(self.ln1(x), cache, start)
            return x + self.down(F.gelu(self.up(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            get = model.get_layer
            self.embedding = nn.Embedding(*get("token_embedding").embeddings.shape)
            with torch.no_grad():
                self.embedding.weight.copy_(tensor(get("token_embedding").embeddings.value))
            count = sum(1 for layer in model.layers if layer.name.endswith("_attention"))
            self.blocks = nn.ModuleList(
                Block(*(get(f"block{b}_{part}") for part in
                        ("ln1", "attention", "ln2", "ffn_up", "ffn_down")))
                for b in range(count))
            self.final_ln = layer_norm(get("final_ln"))
            self.logits = dense(get("logits"))

        def forward(self, tokens, caches=None, start=0):
            x = self.embedding(tokens.long())
            for b, block in enumerate(self.blocks):
                x = block(x, None if caches is None else caches[b], start)
            return self.logits(self.final_ln(x))

        # TorchRunner's hooks: per-token cross-entropy on logits, integer targets
        def prepare_targets(self, y):
            return torch.from_numpy(np.ascontiguousarray(y)).long()

        def loss(self, out, y):
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

        @torch.inference_mode()
        def generate(self, prompts, steps):
            """Greedy: the prompt at once, then one token per step, as fastnn.decoding."""
            n, t = prompts.shape
            attention = self.blocks[0].attention
            caches = [tuple(torch.empty(n, attention.heads, t + steps, attention.dim)
                            for _ in range(2)) for _ in self.blocks]
            out = self.forward(prompts, caches, 0)[:, -1]
            tokens = [prompts]
            for step in range(steps):
                chosen = out.argmax(dim=-1, keepdim=True)
                tokens.append(chosen)
                if step + 1 < steps:
                    out = self.forward(chosen, caches, t + step)[:, -1]
            return torch.cat(tokens, dim=1)

    return GPT()

