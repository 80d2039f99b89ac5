"""Each model's own random generator (used by fastnn.models and fastnn.saving).

A model takes the stream of fastnn's generator when it is created
(``_runtime.take_generator``: under a lock, so models created in a fixed order
get the same streams whatever threads later use them), and takes a new one at
its first draw after each ``fastnn.set_seed``. While one of the model's calls
runs (fit, evaluate, predict, a training call, building its layers), fastnn's
random draws in that thread come from it: initial weights, fit's shuffles,
dropout masks. So what a model draws does not depend on what other models draw,
in this thread or another.

Saving stores the generator's state, so training resumed from a file continues
the stream; loading restores it without drawing from fastnn's generator.
"""
import re

import numpy as np

from fastnn import _runtime

# The state of numpy's PCG64 (default_rng's bit generator), as model.json holds it:
# the two 128-bit words as hexadecimal strings, so any JSON reader keeps them exact.
_KEYS = ("bit_generator", "state", "inc", "has_uint32", "uinteger")


class ModelGenerator:
    """A model's generator. Call it for the generator to draw from now."""

    __slots__ = ("_generator", "_seed_count")

    def __init__(self, take_now=True):
        # Not taken now (a model being loaded): at the first draw, or from the file.
        self._generator, self._seed_count = (_runtime.take_generator() if take_now
                                             else (None, None))

    def __call__(self):
        # taken again after a set_seed, so set_seed(s) then fit is reproducible
        if self._generator is None or self._seed_count != _runtime.seed_count():
            self._generator, self._seed_count = _runtime.take_generator()
        return self._generator

    def to_config(self):
        """The state to save (JSON-able), or None when there is none to carry on:
        never taken, taken before the last set_seed (the next draw takes a new one)
        or not a PCG64 generator (set_seed was given another kind)."""
        if self._generator is None or self._seed_count != _runtime.seed_count():
            return None
        state = self._generator.bit_generator.state
        if state.get("bit_generator") != "PCG64":
            return None
        return {"bit_generator": "PCG64", "state": hex(state["state"]["state"]),
                "inc": hex(state["state"]["inc"]), "has_uint32": int(state["has_uint32"]),
                "uinteger": int(state["uinteger"])}

    def restore(self, generator):
        """Draw from ``generator`` (from ``generator_from_config``) from now on."""
        self._generator, self._seed_count = generator, _runtime.seed_count()


class OneCall:
    """What one call of a model (a fit, a build, ...) draws from: the model's
    generator as it is at the call's first draw, kept to the call's end, so a
    set_seed in another thread meanwhile does not move a running fit to
    another stream (its next call takes the new one)."""

    __slots__ = ("_model_generator", "_generator")

    def __init__(self, model_generator):
        self._model_generator, self._generator = model_generator, None

    def __call__(self):
        if self._generator is None:
            self._generator = self._model_generator()
        return self._generator


def generator_from_config(config):
    """The generator ``ModelGenerator.to_config`` described, checked (a file may be
    tampered with): a ValueError naming ``random_state`` unless it is a PCG64
    state numpy accepts."""
    def bad(why):
        return ValueError(f"random_state {why}; got {config!r}")

    if not isinstance(config, dict) or sorted(config) != sorted(_KEYS):
        raise bad(f"must be an object with exactly the keys {list(_KEYS)}")
    if config["bit_generator"] != "PCG64":
        raise bad("bit_generator must be 'PCG64'")
    words = {name: _hex_word(config[name], 128, bad, name) for name in ("state", "inc")}
    if words["inc"] % 2 == 0:
        raise bad("inc must be odd (a PCG64 increment)")
    if config["has_uint32"] not in (0, 1) or type(config["has_uint32"]) is not int:
        raise bad("has_uint32 must be 0 or 1")
    uinteger = config["uinteger"]
    if type(uinteger) is not int or not 0 <= uinteger < 2**32:
        raise bad("uinteger must be an integer in [0, 2**32)")
    bit_generator = np.random.PCG64()
    bit_generator.state = {"bit_generator": "PCG64", "state": words,
                           "has_uint32": config["has_uint32"], "uinteger": uinteger}
    return np.random.Generator(bit_generator)


def _hex_word(text, bits, bad, name):
    if not isinstance(text, str) or not re.fullmatch(f"0x[0-9a-f]{{1,{bits // 4}}}", text):
        raise bad(f"{name} must be a hexadecimal string '0x...' of at most {bits} bits")
    return int(text, 16)
