"""Workspaces: the scratch arrays one caller (a fit, one predict call) gives a
layer call, reused step after step, and where its weight gradients go."""
import numpy as np


class Workspace:
    """Scratch arrays a layer reuses across steps, sized for the largest batch.

    ``buffer(key, shape)`` returns a C-contiguous array of ``shape``: a prefix
    of a buffer allocated for the largest leading size seen so far. One
    workspace serves one caller at a time (training, or one predict call).
    """

    __slots__ = ("_buffers", "saved", "param_grads", "mask", "direct", "_accumulate", "pending",
                 "static")

    def __init__(self, param_grads=True):
        self._buffers = {}
        self.saved = None     # what forward keeps for backward
        # The (N, T) time-step mask reaching this layer's input (set by the model
        # before each forward; None: no masking, the common case).
        self.mask = None
        # False: backward writes weight gradients into scratch, not the model's
        # gradient buffer (inspection, which needs only input gradients).
        self.param_grads = param_grads
        self._accumulate = False
        self.pending = []
        # the static arguments of the call this workspace serves (see Node.static)
        self.static = None
        # Whether weight gradients go straight to the model's buffer (the hot case,
        # one attribute test in grad_of): param_grads and not accumulate.
        self.direct = param_grads

    @property
    def accumulate(self):
        """True for a second (third...) call of a layer in one backward pass: its
        weight gradients go to scratch (``pending``) and are then added to the
        first call's by ``flush_accumulated`` (a shared layer's gradient is the
        sum over its calls)."""
        return self._accumulate

    @accumulate.setter
    def accumulate(self, value):
        self._accumulate = bool(value)
        self.direct = self.param_grads and not self._accumulate

    def buffer(self, key, shape, dtype):
        buf = self._buffers.get(key)
        if not shape:                                   # a scalar (0-d) buffer
            if buf is None or buf.shape != () or buf.dtype != dtype:
                buf = self._buffers[key] = np.empty((), dtype=dtype)
            return buf
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf[:shape[0]] if buf.shape[0] != shape[0] else buf

    def child(self, key):
        """A nested Workspace kept under ``key``, for a layer that runs layers of its
        own (Bidirectional); it shares this one's caller, ``param_grads`` and
        gradient accumulation."""
        ws = self._buffers.get(("child", key))
        if ws is None:
            ws = self._buffers[("child", key)] = Workspace(self.param_grads)
        ws.accumulate, ws.pending = self.accumulate, self.pending
        return ws

    def flush_accumulated(self, ops):
        """Add the weight gradients kept in ``pending`` to the model's buffer."""
        for weight, grad in self.pending:
            ops.binary("add", weight.grad, grad, out=weight.grad)
        self.pending.clear()
