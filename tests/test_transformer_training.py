"""What a transformer's training leans on, at transformer shapes, against PyTorch:
Dense on (batch, T, d), per-token sparse cross-entropy from logits with per-token
sample weights, AdamW with a warmup + cosine schedule and global_clipnorm --
a small GPT trained a few steps in both, weights copied at the start."""
import math

import numpy as np
import pytest

import fastnn as keras
from fastnn.bench.gpt import build_w6, token_data

VOCAB, T = 17, 10


def _schedule_value(step, warmup, target, decay):
    """Keras' CosineDecay(0, decay, warmup_target=target, warmup_steps=warmup) at step."""
    if step < warmup:
        return target * step / warmup
    done = min(step - warmup, decay) / decay
    return target * 0.5 * (1 + math.cos(math.pi * done))


@pytest.mark.torch_oracle
def test_small_gpt_trains_like_pytorch(rng):
    torch = pytest.importorskip("torch")
    from fastnn.bench.torch_gpt import torch_gpt
    keras.utils.set_random_seed(0)
    model = build_w6(vocab=VOCAB, length=T, d_model=16, heads=2, ffn=32, blocks=2)
    warmup, target, decay, clip, decay_rate = 2, 3e-3, 6, 0.5, 0.01
    model.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(0.0, decay, warmup_target=target,
                                                   warmup_steps=warmup),
            weight_decay=decay_rate, global_clipnorm=clip, epsilon=1e-12),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    twin = torch_gpt(model).double()
    # epsilon: Keras adds it to sqrt(v), PyTorch to the bias-corrected sqrt(v); a
    # tiny one takes that documented difference out of the comparison
    opt = torch.optim.AdamW(twin.parameters(), lr=1.0, betas=(0.9, 0.999), eps=1e-12,
                            weight_decay=decay_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: _schedule_value(step, warmup, target, decay))
    x, y = token_data(8, rng, vocab=VOCAB, length=T)
    weights = rng.uniform(0.0, 2.0, size=y.shape).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    for _ in range(5):
        loss = model.train_on_batch(x, y, sample_weight=weights)
        opt.zero_grad()
        out = twin(torch.from_numpy(x))
        per_token = torch.nn.functional.cross_entropy(
            out.reshape(-1, VOCAB), torch.from_numpy(y).long().reshape(-1), reduction="none")
        torch_loss = (per_token * torch.from_numpy(weights).double().reshape(-1)).mean()
        torch_loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), clip)
        opt.step()
        scheduler.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-4)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-3,
                               atol=1e-4)
