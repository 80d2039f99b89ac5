"""The executor: a model's graph flattened into steps, run forward in order and
backward in reverse (design decision 11).

A ``Plan`` numbers every tensor of the graph (its *slot*) and lists one
``Step`` per layer call; a model called inside another is inlined, so the
steps are always plain layers and a layer shared between the two is one set
of weights. Forward fills the slots; backward hands each step the gradient
of its outputs, sums the gradients of a tensor used twice, and, for a layer
called more than once, sums its weight gradients over the calls.

Each step has its own ``Workspace`` (training reuses one set every step;
predict takes a fresh set per call), so scratch is planned once per input
signature and nothing is allocated per step once shapes repeat.
"""
from fastnn.graph.graph import unique
from fastnn.graph.workspace import Workspace

class Step:
    """One call of ``layer``: input slots ``ins``, output slots ``outs``; ``list_in``:
    the layer takes a list; ``training``: a mode fixed at call time, or None."""

    __slots__ = ("layer", "ins", "outs", "list_in", "training", "static")

    def __init__(self, layer, ins, outs, list_in, training, static=None):
        self.layer, self.ins, self.outs = layer, ins, outs
        self.list_in, self.training, self.static = list_in, training, static


class Scratch:
    """A caller's workspaces: one per step, and one for summed gradients."""

    __slots__ = ("steps", "own", "values", "masks")

    def __init__(self, n_steps, param_grads):
        self.steps = [Workspace(param_grads) for _ in range(n_steps)]
        self.own = Workspace(param_grads)
        self.values = None     # the last forward_all's slot values
        self.masks = None      # and each slot's time-step mask (None: the plan has none)


class Schedule:
    """What one backward pass runs, fixed for a fit: ``entries`` in reverse step
    order as (step index, need_dx, accumulate weight gradients, from logits);
    ``unreached``: layers with weights no gradient reaches (their gradients are
    zeroed once, so the optimizer sees zeros, not stale values)."""

    __slots__ = ("entries", "unreached", "grad_slots", "chain")

    def __init__(self, entries, unreached, grad_slots, chain):
        self.entries, self.unreached, self.grad_slots = entries, unreached, grad_slots
        # a chain plan's entries with their layers looked up once (the hot loop)
        self.chain = chain


class Plan:
    """The steps of ``graph`` (a fastnn.graph.Graph), nested models inlined."""

    def __init__(self, graph):
        self.steps = []
        self.slot_dtypes = []
        self.node_slots = {}          # each top-level node -> its output slots
        slot_of = {}
        self.input_slots = [self._new_slot(t, slot_of) for t in graph.inputs]
        self._expand(graph, slot_of, None, top=True)
        self.output_slots = [slot_of[id(t)] for t in graph.outputs]
        self.n_slots = len(self.slot_dtypes)
        self.layers = unique(st.layer for st in self.steps)
        self.has_masks = any(st.layer.makes_mask for st in self.steps)
        self.is_chain = self._is_chain()
        # a chain's forward methods, looked up once (the hot loop of Sequential models)
        self.chain_forwards = [st.layer.forward for st in self.steps] if self.is_chain else None
        # predict's version of them, runs of dense layers fused (None: nothing to fuse)
        self.predict_forwards = self._predict_forwards() if self.is_chain else None

    # ---- building ----------------------------------------------------------------
    def _new_slot(self, tensor, slot_of):
        slot_of[id(tensor)] = len(self.slot_dtypes)
        self.slot_dtypes.append(tensor.dtype)
        return slot_of[id(tensor)]

    def _expand(self, graph, slot_of, training, top=False):
        for node in graph.nodes:
            fixed = training if training is not None else node.training
            inner = node.subgraph
            if inner is None and hasattr(node.operation, "_graph_for_plan"):
                inner = node.operation._graph_for_plan()
            if inner is not None:
                inner_slots = {id(t_in): slot_of[id(t_out)]
                               for t_in, t_out in zip(inner.inputs, node.inputs)}
                self._expand(inner, inner_slots, fixed)
                for outer, t in zip(node.outputs, inner.outputs):
                    slot_of[id(outer)] = inner_slots[id(t)]
            else:
                ins = tuple(slot_of[id(t)] for t in node.inputs)
                outs = tuple(self._new_slot(t, slot_of) for t in node.outputs)
                self.steps.append(Step(node.operation, ins, outs, node.list_input, fixed,
                                       node.static))
            if top:
                self.node_slots[node] = tuple(slot_of[id(t)] for t in node.outputs)

    def _is_chain(self):
        """A chain (Sequential): each step takes the previous one's only output."""
        if len(self.input_slots) != 1 or self.has_masks or len(self.layers) != len(self.steps):
            return False
        previous = self.input_slots[0]
        for st in self.steps:
            if st.list_in or st.training is not None or st.ins != (previous,) or len(st.outs) != 1:
                return False
            previous = st.outs[0]
        return self.output_slots == [previous]

    def _predict_forwards(self):
        """chain_forwards with each run of two or more layers whose inference is a
        plain dense layer (Dense.dense_stack_parts) replaced by one _DenseRun, or
        None when the chain has no such run."""
        forwards, run = [], []
        for st in self.steps + [None]:
            parts = getattr(st.layer, "dense_stack_parts", None) if st is not None else None
            if parts is not None and parts() is not None:
                run.append(st.layer)
                continue
            if len(run) >= 2:
                forwards.append(_DenseRun(run).forward)
                forwards.extend([None] * (len(run) - 1))     # keeps steps and workspaces aligned
            else:
                forwards.extend(layer.forward for layer in run)
            run = []
            if st is not None:
                forwards.append(st.layer.forward)
        return forwards if None in forwards else None

    def consumers(self, slot):
        """The layers that read ``slot``, in step order."""
        return [st.layer for st in self.steps if slot in st.ins]

    def producer(self, slot):
        """The index of the step that makes ``slot`` (None for an input)."""
        for k, st in enumerate(self.steps):
            if slot in st.outs:
                return k
        return None

    def scratch(self, param_grads=True):
        """Fresh workspaces for one caller (a fit, one predict call)."""
        scratch = Scratch(len(self.steps), param_grads)
        for st, ws in zip(self.steps, scratch.steps):
            ws.static = st.static
        return scratch

    # ---- forward -----------------------------------------------------------------
    def forward(self, ops, inputs, training, scratch):
        """The output arrays for ``inputs`` (arrays, in input order)."""
        if self.is_chain:
            x = inputs[0]
            for forward, ws in zip(self.chain_forwards, scratch.steps):
                x = forward(ops, x, training, ws)
            return [x]
        values = self.forward_all(ops, inputs, training, scratch)
        return [values[s] for s in self.output_slots]

    def predict(self, ops, inputs, scratch):
        """forward(training=False) for predict, whose callers read only the outputs
        (evaluate reads a layer's kept logits: it uses forward): a chain's runs of
        dense layers are one ops.dense_stack call each, a block of rows going
        through every layer of the run while it is in cache."""
        if self.predict_forwards is None:
            return self.forward(ops, inputs, False, scratch)
        x = inputs[0]
        for forward, ws in zip(self.predict_forwards, scratch.steps):
            if forward is not None:
                x = forward(ops, x, False, ws)
        return [x]

    def forward_all(self, ops, inputs, training, scratch):
        """Every slot's value (inputs, each step's outputs) for ``inputs``."""
        values = [None] * self.n_slots
        for slot, x in zip(self.input_slots, inputs):
            values[slot] = x
        masks = [None] * self.n_slots if self.has_masks else None
        for st, ws in zip(self.steps, scratch.steps):
            x = [values[i] for i in st.ins] if st.list_in else values[st.ins[0]]
            if masks is not None:
                ws.mask = _input_mask(st, masks)
            y = st.layer.forward(ops, x, training if st.training is None else st.training, ws)
            if len(st.outs) == 1:
                values[st.outs[0]] = y
            else:
                for slot, value in zip(st.outs, y):
                    values[slot] = value
            if masks is not None and (ws.mask is not None or st.layer.makes_mask):
                masks[st.outs[0]] = st.layer.output_mask(ws)
        scratch.values, scratch.masks = values, masks
        return values

    # ---- backward ----------------------------------------------------------------
    def schedule(self, grad_slots, fused_slots=(), inputs_need_grad=False):
        """The backward pass for gradients arriving at ``grad_slots``; ``fused_slots``:
        outputs whose gradient is taken with respect to their layer's logits;
        ``inputs_need_grad``: also carry gradients to the model's inputs (saliency)."""
        # requires: a float slot downstream of a trainable weight (or of an input, for
        # saliency) -- its gradient is wanted; depends: downstream of one at all
        requires, depends = [False] * self.n_slots, [False] * self.n_slots
        if inputs_need_grad:
            for slot in self.input_slots:
                requires[slot] = depends[slot] = self.slot_dtypes[slot].kind == "f"
        for st in self.steps:
            blocked = getattr(st.layer, "blocks_gradient", False)
            weights = bool(st.layer.trainable_weights)
            wants = not blocked and (weights or any(requires[i] for i in st.ins))
            upstream = not blocked and (weights or any(depends[i] for i in st.ins))
            for slot in st.outs:
                requires[slot] = wants and self.slot_dtypes[slot].kind == "f"
                depends[slot] = upstream
        live = [False] * self.n_slots
        for slot in grad_slots:
            live[slot] = True
        entries, seen = [], set()
        for k in range(len(self.steps) - 1, -1, -1):
            st = self.steps[k]
            if not any(live[o] for o in st.outs):
                continue
            self._check_differentiable(st, depends, requires)
            need_dx = any(requires[i] for i in st.ins)
            for i in st.ins:
                live[i] = live[i] or requires[i]
            entries.append((k, need_dx, id(st.layer) in seen, st.outs[0] in fused_slots))
            seen.add(id(st.layer))
        unreached = [layer for layer in self.layers
                     if id(layer) not in seen and layer.trainable_weights]
        chain = None
        if self.is_chain and list(grad_slots) == self.output_slots:
            # (backward method, step, need_dx, from logits) with the methods looked up once
            chain = [(self.steps[k].layer.backward, k, need_dx, from_logits)
                     for k, need_dx, _, from_logits in entries]
        return Schedule(entries, unreached, tuple(grad_slots), chain)

    def _check_differentiable(self, st, depends, requires):
        """A step on the gradient's path that reads a tensor which depends on the
        weights but cannot carry their gradient (an index from argmax, a mask from a
        comparison) would silently cut the path: an error, unless the reading is
        one that has no gradient by definition (where's condition, take's indices)
        or the tensor went through stop_gradient."""
        free = getattr(st.layer, "gradient_free_inputs", ())
        for position, slot in enumerate(st.ins):
            if position in free or not depends[slot] or requires[slot]:
                continue
            producer = self.producer(slot)
            what = self.steps[producer].layer.name if producer is not None else "an input"
            raise ValueError(f"{st.layer.name} reads {what}'s output, which depends on trainable "
                             f"weights but has no gradient ({self.slot_dtypes[slot].name} values "
                             "from a non-differentiable op): the loss's gradient cannot pass "
                             "there. Wrap it in ops.stop_gradient(...) if that is intended")

    def backward(self, ops, schedule, out_grads, scratch):
        """Run ``schedule`` from ``out_grads`` (one array per grad slot, in order);
        weight gradients go to the model's gradient buffer (or scratch when the
        workspaces were made with param_grads=False). Returns the gradient of each
        model input (None for one no gradient reaches)."""
        wss = scratch.steps
        if schedule.chain is not None:
            # each step's input gradient is the previous step's output gradient
            d = out_grads[0]
            for backward, k, need_dx, from_logits in schedule.chain:
                if from_logits:
                    d = backward(ops, d, wss[k], need_dx, from_preact=True)
                else:
                    d = backward(ops, d, wss[k], need_dx)
            entries = schedule.entries
            return [d if entries and entries[-1][0] == 0 and entries[-1][1] else None]
        grads = [None] * self.n_slots
        steps = self.steps
        for slot, g in zip(schedule.grad_slots, out_grads):
            self._add(ops, grads, slot, g, scratch.own)
        for k, need_dx, accumulate, from_logits in schedule.entries:
            st, ws = steps[k], wss[k]
            if len(st.outs) == 1:
                dy = grads[st.outs[0]]
            else:
                dy = [_grad_or_zeros(grads, slot, scratch) for slot in st.outs]
            ws.accumulate = accumulate
            if from_logits:
                dx = st.layer.backward(ops, dy, ws, need_dx, from_preact=True)
            else:
                dx = st.layer.backward(ops, dy, ws, need_dx)
            if accumulate:
                ws.flush_accumulated(ops)
            if need_dx:
                if st.list_in:
                    for slot, d in zip(st.ins, dx):
                        if d is not None:
                            self._add(ops, grads, slot, d, scratch.own)
                elif dx is not None:
                    self._add(ops, grads, st.ins[0], dx, scratch.own)
        return [grads[s] for s in self.input_slots]

    def _add(self, ops, grads, slot, g, own):
        """grads[slot] += g, into a buffer of the plan's own (never into a layer's)."""
        current = grads[slot]
        if current is None:
            grads[slot] = g
            return
        acc = own.buffer(("grad", slot), g.shape, g.dtype)
        if current.shape != g.shape:
            raise ValueError(f"gradients of one tensor disagree in shape: {current.shape} and "
                             f"{g.shape}")
        ops.binary("add", current, g, out=acc)
        grads[slot] = acc



class _DenseRun:
    """Consecutive dense layers of a chain, as one step of predict."""

    __slots__ = ("layers",)

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, ops, x, training, ws):
        # the weights are read per call: compile repoints them into the flat buffer
        kernels, biases, activations = zip(*(layer.dense_stack_parts() for layer in self.layers))
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        y = ops.dense_stack(x2, kernels, biases, activations)
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (y.shape[-1],))


def _grad_or_zeros(grads, slot, scratch):
    """The gradient of a layer's output that nothing downstream used: zeros."""
    g = grads[slot]
    if g is not None:
        return g
    value = scratch.values[slot]
    zeros = scratch.own.buffer(("zeros", slot), value.shape, value.dtype)
    zeros.fill(0)
    return zeros


def _input_mask(st, masks):
    if not st.list_in:
        return masks[st.ins[0]]
    chosen = [masks[i] for i in st.ins]
    return None if all(m is None for m in chosen) else chosen

