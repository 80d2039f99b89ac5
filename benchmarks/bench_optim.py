"""Optimizer steps over one flat float32 buffer (design decision 1), compiled vs NumPy.

Sizes: W1's parameter count, W2's, and 2^20 (~1M). extra_info gives millions of
parameters per second and the memory traffic it implies.
"""
import numpy as np
import pytest

SIZES = [2_817, 669_706, 1 << 20]
ADAM = dict(lr_t=1e-3 * np.sqrt(1 - 0.999 ** 10) / (1 - 0.9 ** 10), beta1=0.9, beta2=0.999,
            eps=1e-7)
# name -> (state arrays, keyword arguments, bytes read + written per parameter)
STEPS = {
    "adam": (("m", "v"), ADAM, 28),
    "sgd": ((), dict(lr=0.01), 12),
    "sgd_momentum": (("velocity",), dict(lr=0.01, momentum=0.9), 20),
    "sgd_nesterov": (("velocity",), dict(lr=0.01, momentum=0.9, nesterov=True), 20),
}


def _buffers(rng, size, state):
    arrays = {"p": rng.uniform(-1, 1, size).astype(np.float32),
              "g": rng.standard_normal(size).astype(np.float32) * np.float32(0.01)}
    for name in state:      # moments as after a few steps: not all zero
        arrays[name] = (np.abs(arrays["g"]) * np.float32(0.5)).astype(np.float32)
    return arrays


def _step(ops, name, arrays):
    state, kwargs, _ = STEPS[name]
    if name == "adam":
        return lambda: ops.adam_update(arrays["p"], arrays["g"], arrays["m"], arrays["v"],
                                       **kwargs)
    velocity = arrays.get("velocity")
    return lambda: ops.sgd_update(arrays["p"], arrays["g"], velocity, **kwargs)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(STEPS))
def test_optimizer_step(benchmark, ops, reference, threads, rng, assert_close, record_rate,
                        name, size):
    arrays = _buffers(rng, size, STEPS[name][0])
    want = {k: v.copy() for k, v in arrays.items()}
    _step(ops, name, arrays)()
    _step(reference, name, want)()
    for key in arrays:
        assert_close(arrays[key], want[key], f"{name} {key}")
    benchmark.group = f"{name} {size} {threads}t"
    benchmark(_step(ops, name, arrays))
    record_rate(size, "Mparams/s", 1e6)
    record_rate(size * STEPS[name][2], "GB/s", 1e9)
