"""A model's flat parameter and gradient buffers (design decision 1).

``compile`` packs every weight created trainable into one parameter buffer
and gives it a range of one gradient buffer; each Weight's ``value`` and
``grad`` become views into them. The optimizer then updates the whole model
in one fused call per contiguous trainable range, and distributed training
all-reduces the gradients in one call. Which ranges are trainable (frozen
layers) and regularized is recomputed at the start of every fit.
"""
import copy

import numpy as np


class FlatBuffers:
    """``params`` and ``grads`` (1-D, the model's dtype) and each packed weight's
    (start, stop, weight) in ``ranges``, in packing order."""

    def __init__(self, weights, dtype):
        total = sum(w.size for w in weights)
        self.params = np.empty(total, dtype=dtype)
        self.grads = np.zeros(total, dtype=dtype)
        self.ranges = []
        offset = 0
        for w in weights:
            stop = offset + w.size
            self.params[offset:stop] = w.value.reshape(-1)
            w.value = self.params[offset:stop].reshape(w.shape)
            w.grad = self.grads[offset:stop].reshape(w.shape)
            self.ranges.append((offset, stop, w))
            offset = stop

    def __deepcopy__(self, memo):
        # numpy copies a view as an independent array: the copied weights must be
        # pointed back into the copied buffers, or the copy's optimizer would
        # update a buffer its layers no longer read.
        twin = FlatBuffers.__new__(FlatBuffers)
        memo[id(self)] = twin
        twin.params = self.params.copy()
        twin.grads = self.grads.copy()
        twin.ranges = []
        for start, stop, weight in self.ranges:
            copied = copy.deepcopy(weight, memo)
            copied.value = twin.params[start:stop].reshape(weight.shape)
            copied.grad = twin.grads[start:stop].reshape(weight.shape)
            twin.ranges.append((start, stop, copied))
        return twin

    @property
    def size(self):
        return self.params.size

    def trainable_ranges(self, trainable):
        """Merged (start, stop) ranges of the weights in ``trainable`` (a set of
        ids), and each such weight's own range (for per-weight clipping)."""
        per_weight = [(s, e) for s, e, w in self.ranges if id(w) in trainable and e > s]
        merged = []
        for s, e in per_weight:
            if merged and merged[-1][1] == s:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        return merged, per_weight

    def regularized_ranges(self, trainable):
        """(start, stop, l1, l2) of each weight in ``trainable`` with a nonzero
        regularizer, neighbours with equal factors merged: empty when nothing is
        regularized, so an unregularized model pays nothing (Keras counts only
        trainable weights' penalties)."""
        regs = []
        for start, stop, w in self.ranges:
            reg = getattr(w, "regularizer", None)
            if reg is None or reg.is_zero or id(w) not in trainable or stop == start:
                continue
            if regs and regs[-1][1] == start and regs[-1][2:] == (reg.l1, reg.l2):
                regs[-1] = (regs[-1][0], stop, reg.l1, reg.l2)
            else:
                regs.append((start, stop, reg.l1, reg.l2))
        return tuple(regs)

    def regularize(self, ops, regs, with_grad):
        """The summed penalty over ``regs``; ``with_grad`` adds its gradient to the
        gradient buffer (after backward, before clipping and the update)."""
        penalty = 0.0
        for start, stop, l1, l2 in regs:
            penalty += ops.regularize_(self.grads[start:stop] if with_grad else None,
                                       self.params[start:stop], l1, l2)
        return penalty
