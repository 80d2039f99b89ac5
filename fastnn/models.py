"""Models: ``Model`` (a graph of layer calls -- Keras' functional API) and
``Sequential`` (a chain of layers, the graph's special case).

A model is a layer: it can be called on new symbolic inputs (nested models,
shared feature extractors) and is then inlined into the caller's graph, so
its layers keep one set of weights wherever they are used.

Design decision 1: ``compile`` packs every weight into one flat parameter
buffer and one flat gradient buffer (fastnn.packing); layers keep views into
them. The loops (fit, evaluate, predict) live in fastnn.trainer, the graph
executor in fastnn.graph.plan, saving in fastnn.saving.
"""
import functools
import itertools

import numpy as np

from fastnn import _runtime
from fastnn import compile_utils as _compile_utils
from fastnn import distributed as _distributed
from fastnn import losses as _losses
from fastnn import optimizers as _optimizers
from fastnn import registry as _registry
from fastnn import saving as _saving
from fastnn import trainer as _trainer
from fastnn.graph import calls as _calls
from fastnn.graph.graph import Graph, unique
from fastnn.graph.operation import as_symbolic, tracing
from fastnn.graph.node import Node
from fastnn.graph.plan import Plan
from fastnn.graph.tensor import KerasTensor, any_symbolic, flatten_structure
from fastnn.layers.base import (
    AUTO_CONFIG_METHODS, Layer, shapes_compatible, snake_case, unique_name, weight_budget,
)
from fastnn.layers.core import InputLayer
from fastnn.model_generator import ModelGenerator, OneCall
from fastnn.packing import FlatBuffers
from fastnn.saving import load_model  # noqa: F401  (Keras: models.load_model(path))

# Bumped whenever a Sequential model gains or loses a layer: models built on it
# (nested) rebuild their execution plan and notice the change at fit.
_structure_version = itertools.count()
_current_version = [next(_structure_version)]


def _structure_changed():
    _current_version[0] = next(_structure_version)


def _draws_from_own_generator(method):
    """Run ``method`` with the model's own generator as the one fastnn draws from in
    this thread (fastnn.model_generator): its layers' initial weights, fit's
    shuffles and dropout masks then never depend on other models' draws."""
    @functools.wraps(method)
    def with_own_generator(self, *args, **kwargs):
        token = _runtime.drawing_from(OneCall(self._random))
        try:
            return method(self, *args, **kwargs)
        finally:
            _runtime.stop_drawing(token)
    return with_own_generator


class Model(Layer):
    """A model: ``Model(inputs, outputs, name=None)`` with ``inputs`` / ``outputs``
    symbolic tensors (one, a list or a dict), trained as one.

    ``inputs`` come from ``keras.Input`` (or are intermediate tensors of another
    model: a feature extractor sharing its weights); ``outputs`` are layers'
    outputs computed from them. The graph between them is sorted once, here;
    an input no output uses, or an output that needs a tensor that is not an
    input, is a ValueError naming the tensors.
    """

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        unknown = set(kwargs) - {"dtype"}        # a model's dtype is its layers'
        if unknown:
            raise TypeError(f"Model() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        if inputs is None and outputs is None and self.is_call_based:
            # Keras' subclassing: call() is traced when the model first sees its inputs
            self._init_model(name, trainable, snake_case(type(self).__name__))
            return
        self._init_model(name, trainable, "functional")
        if inputs is None or outputs is None:
            raise TypeError("Model(inputs, outputs) takes the model's input tensors "
                            "(keras.Input) and the output tensors computed from them; "
                            "for a chain of layers use Sequential; or subclass Model "
                            "and define call()")
        self._set_graph(inputs, outputs)

    def _init_model(self, name, trainable, default_name):
        self.name = name if name is not None else unique_name(default_name)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a model's name must be a non-empty string, got {name!r}")
        self._tracked = []            # sub-layers of a subclassed model
        # The model's own random generator, taken now (in program order) from
        # fastnn's; a model being loaded gets the file's instead, so loading
        # leaves fastnn's generator where it was.
        self._random = ModelGenerator(take_now=weight_budget.get() is None)
        self._trainable = bool(trainable)
        self._inbound_nodes = []
        self._weights = []            # a model's weights are its layers'
        self.input_shape_hint = None
        self.optimizer = None
        self.loss = None
        self._compile_args = None     # (loss, loss_weights, metrics) as compile got them
        self._weighted_metrics = None  # compile's weighted_metrics
        self._objectives = None       # (plan, their resolution per output)
        self._build_inputs = None     # a subclassed model's input specs, once traced
        self._metric_ids = []
        self._buffers = None          # FlatBuffers once packed
        self._compiled_layers = None  # the leaf layers compile() packed
        self._train_scratch = None    # training workspaces, reused every step
        self._in_fit = False
        self.stop_training = False
        self.history = None
        self._graph = None
        self._plan = None
        self._plan_version = None
        self._input_keys = self._output_keys = None
        self._single_input = self._single_output = True

    # ---- the graph -------------------------------------------------------------------
    def _set_graph(self, inputs, outputs):
        where = f"Model {self.name!r}"
        self._single_input = isinstance(inputs, KerasTensor)
        self._single_output = isinstance(outputs, KerasTensor)
        self._input_keys = list(inputs) if isinstance(inputs, dict) else None
        self._output_keys = list(outputs) if isinstance(outputs, dict) else None
        flat_in, flat_out = flatten_structure(inputs), flatten_structure(outputs)
        flat_in, flat_out = _with_input_layers(flat_in, flat_out, where)
        graph = Graph(flat_in, flat_out, where)
        names = {}
        for layer in graph.layers():
            if names.setdefault(layer.name, layer) is not layer:
                raise ValueError(f"{where}: two different layers are named {layer.name!r}; "
                                 "layer names must be unique within a model")
        self._graph = graph

    def _graph_for_plan(self):
        """The graph the executor inlines where this model is called (fastnn.graph.plan)."""
        if self._graph is None:
            raise ValueError(f"{self.name}: the model is not built yet (give its first "
                             "layer an input shape, or start it with keras.Input)")
        return self._graph

    @property
    def graph(self):
        """The model's graph (fastnn.graph.Graph): its input and output tensors and
        the layer calls between them, sorted."""
        return self._graph_for_plan()

    def plan(self):
        """The executor of the model's graph (fastnn.graph.plan.Plan), built once per
        structure (again only after a Sequential model inside changes)."""
        if self._plan is None or self._plan_version != _current_version[0]:
            self._plan = Plan(self._graph_for_plan())
            self._plan_version = _current_version[0]
        return self._plan

    @property
    def built(self):
        return self._graph is not None or getattr(self, "_chain_out", None) is not None

    @property
    def layers(self):
        """The model's layers: its Input layers first, then each layer once, in the
        order of its first call (a subclassed model: the layers it keeps as
        attributes, in order)."""
        if self.is_call_based:
            return list(self._tracked)
        return self._graph_for_plan().layers() if self.built else []

    @property
    def inputs(self):
        return list(self._graph_for_plan().inputs)

    @property
    def outputs(self):
        return list(self._graph_for_plan().outputs)

    @property
    def input(self):
        inputs = self.inputs
        return inputs[0] if self._single_input else inputs

    @property
    def output(self):
        outputs = self.outputs
        return outputs[0] if self._single_output else outputs

    @property
    def input_names(self):
        """Names that key ``x`` when it is a dict: the dict's keys when the model was
        built from a dict of inputs, else the Input layers' names."""
        if self._input_keys is not None:
            return list(self._input_keys)
        return [t.node.operation.name if t.node is not None else t.name for t in self.inputs]

    @property
    def output_names(self):
        """Names of the outputs (Keras'): the dict's keys when the model was built
        from a dict of outputs, else the names of the layers that make them."""
        if self._output_keys is not None:
            return list(self._output_keys)
        return [t.node.operation.name if t.node is not None else t.name for t in self.outputs]

    @property
    def input_shape(self):
        if not self.built:
            return None
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        if not self.built:
            return None
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def dtype(self):
        """The float dtype of the model's weights (of its layers when it has none;
        float32 unless set otherwise)."""
        leaves = self._leaf_layers()
        for layer in leaves:
            if layer.weights:
                return layer.dtype
        for layer in leaves:
            if isinstance(layer, Layer):
                return layer.dtype
        return np.dtype(_runtime.floatx())

    def _leaf_layers(self):
        return self.plan().layers if self.built else []

    def get_layer(self, name=None, index=None):
        """A layer by name or by index (in ``model.layers``)."""
        layers = self.layers
        if index is not None:
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers are "
                         f"{[layer.name for layer in layers]}")

    @_draws_from_own_generator
    def build(self, input_shape):
        """A functional model is built by construction. A subclassed one traces its
        call() for inputs of ``input_shape`` (Keras' form, batch axis first; a list
        or dict of shapes for several inputs)."""
        if self.built:
            return
        if not self.is_call_based:
            raise ValueError(f"{self.name}: cannot build a model without a graph")
        self._trace_call(_inputs_for(input_shape, self.dtype))

    @_draws_from_own_generator
    def build_for_data(self, x):
        """Build the model for data ``x`` (an array, a list or a dict of arrays or
        symbolic tensors) when it is not built yet."""
        if self.built:
            return
        if not self.is_call_based:
            self.build(_first_leaf(x).shape[1:])
            return
        self._trace_call(_inputs_for(_shapes_of(x), None, _dtypes_of(x)))

    def _trace_call(self, inputs):
        """Trace call() on ``inputs`` (Input tensors) into the model's graph."""
        kwargs = {"training": _calls.TRAINING_IN_TRACE} \
            if _calls.accepts(self.call, "training") else {}
        with tracing():
            outputs = self.call(inputs, **kwargs)
        outputs = _symbolic_structure(outputs)
        self._set_graph(inputs, outputs)
        self._build_inputs = _input_specs(inputs)

    # ---- calling the model as a layer ------------------------------------------------
    @_draws_from_own_generator
    def __call__(self, inputs, training=None, **kwargs):
        """On symbolic tensors: a node of an enclosing graph (the model is inlined
        there, its weights shared). On arrays: the outputs for that batch
        (inference unless ``training=True``), as ``predict_on_batch``."""
        if kwargs:
            raise TypeError(f"{self.name}: unexpected call arguments {sorted(kwargs)}")
        if training is not None and not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"{self.name}: training must be True, False or None, got "
                            f"{training!r}")
        if any_symbolic(inputs):
            return self._symbolic_call(inputs, None if training is None else bool(training))
        return _trainer.call_on_arrays(self, inputs, bool(training))

    def _symbolic_call(self, inputs, training):
        tensors = self.match_inputs(inputs, "call")
        for t in tensors:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"{self.name}: called on a mix of symbolic tensors and "
                                f"{type(t).__name__}")
        if not self.built:
            self.build_for_data(inputs)
            tensors = self.match_inputs(inputs, "call")
        for mine, given in zip(self.inputs, tensors):
            if not shapes_compatible(mine.shape[1:], given.shape[1:]):
                raise ValueError(f"model {self.name!r} takes inputs {mine.shape} but is called "
                                 f"on {given.shape}")
        batches = {t.shape[0] for t in tensors}
        batch = batches.pop() if len(batches) == 1 else None
        outputs = [KerasTensor((batch,) + t.shape[1:], t.dtype, name=self.name)
                   for t in self.outputs]
        Node(self, tensors, outputs, list_input=len(tensors) > 1, training=training)
        return self.pack_outputs(outputs)

    def match_inputs(self, inputs, where):
        """``inputs`` (one value, a list, or a dict by input name) as a list in input order."""
        names = self.input_names if self.built else None
        count = len(names) if names is not None else 1
        if isinstance(inputs, dict):
            if names is None:
                raise ValueError(f"{where}: {self.name} is not built; pass an array, not a dict")
            unknown = [k for k in inputs if k not in names]
            missing = [k for k in names if k not in inputs]
            if unknown or missing:
                raise ValueError(f"{where}: inputs are keyed by the model's input names "
                                 f"{names}; got keys {list(inputs)}"
                                 + (f" (missing {missing})" if missing else ""))
            return [inputs[k] for k in names]
        if count > 1:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != count:
                got = (f"a list of {len(inputs)}" if isinstance(inputs, (list, tuple))
                       else type(inputs).__name__)
                raise ValueError(f"{where}: model {self.name!r} has {count} inputs {names}: "
                                 f"pass a list in that order or a dict keyed by those names, "
                                 f"got {got}")
            return list(inputs)
        # One input: a one-item list of an array is that array (a plain nested list of
        # numbers is data, not a structure).
        if isinstance(inputs, (list, tuple)) and inputs and all(
                isinstance(item, (np.ndarray, KerasTensor)) for item in inputs):
            if len(inputs) != 1:
                raise ValueError(f"{where}: model {self.name!r} has one input, got a list of "
                                 f"{len(inputs)}")
            return [inputs[0]]
        return [inputs]

    def io_structure(self):
        """How the model was built from its tensors: the dict keys of its inputs and
        outputs (or None) and whether each was a single tensor (for saving)."""
        return {"input_keys": self._input_keys, "output_keys": self._output_keys,
                "single_input": self._single_input, "single_output": self._single_output}

    def pack_outputs(self, values):
        """Output values in the structure the model was built with (one, list, dict)."""
        if self._output_keys is not None:
            return dict(zip(self._output_keys, values))
        if self._single_output:
            return values[0]
        return list(values)

    def compute_output_shape(self, input_shape):
        shapes = [t.shape[1:] for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    # ---- weights ----------------------------------------------------------------------
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        # Keras 3: freezing a model freezes every layer in it (no recompile needed)
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = value

    @property
    def weights(self):
        """Every weight of the model, each once, layer by layer (Keras' order)."""
        return unique(w for layer in self.layers for w in layer.weights)

    @property
    def trainable_weights(self):
        if not self._trainable:
            return []
        return unique(w for layer in self.layers for w in layer.trainable_weights)

    def state_weights(self, changing_only=False):
        """Weights created non-trainable (BatchNormalization's moving statistics);
        ``changing_only``: those of trainable layers only (a frozen layer's never move)."""
        return [w for layer in self._leaf_layers() if layer.trainable or not changing_only
                for w in layer.weights if not w.trainable]

    # ---- compile and packing -----------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, run_eagerly=None, steps_per_execution=1,
                jit_compile=None):
        """Set the optimizer, the loss (one for every output, a list, or a dict by
        output name), ``loss_weights``, ``metrics`` and ``weighted_metrics`` (likewise
        per output; weighted ones are weighed by fit / evaluate's sample_weight or
        class_weight), and pack the weights into flat buffers. ``run_eagerly``,
        ``steps_per_execution`` and ``jit_compile`` are accepted for Keras
        compatibility: fastnn always runs its compiled graph one step at a time."""
        if steps_per_execution != 1 and not isinstance(steps_per_execution, (int, np.integer)):
            raise ValueError(f"compile: steps_per_execution must be an integer, got "
                             f"{steps_per_execution!r}")
        self.optimizer = _optimizers.get(optimizer)
        _compile_utils.check_compile_args(loss, loss_weights, metrics, weighted_metrics)
        # one loss for every output: resolved now (model.loss is that Loss object)
        if loss is not None and not isinstance(loss, (list, tuple, dict)):
            loss = _losses.get(loss)
        self.loss = loss
        self._compile_args = (loss, loss_weights, metrics)
        self._weighted_metrics = weighted_metrics
        self._objectives = None
        self._metric_ids = ([] if metrics is None else [metrics]
                            if isinstance(metrics, str) else metrics)
        self._buffers = None
        self._compiled_layers = None
        if self.built:
            self._pack()

    def get_compile_config(self):
        """What compile was given: (optimizer, loss, loss_weights, metrics), or None."""
        if self.optimizer is None:
            return None
        loss, loss_weights, metrics = self._compile_args
        return {"optimizer": self.optimizer, "loss": loss, "loss_weights": loss_weights,
                "metrics": metrics,
                "weighted_metrics": self._weighted_metrics}

    def objectives(self):
        """One compile_utils.Objective per output (loss, weight, metrics), resolved
        once per compile and structure."""
        plan = self.plan()
        if self._objectives is None or self._objectives[0] is not plan:
            loss, loss_weights, metrics = self._compile_args or (None, None, None)
            self._objectives = (plan, _compile_utils.resolve(
                loss, loss_weights, metrics, self.output_names,
                self._weighted_metrics))
        return self._objectives[1]

    @property
    def buffers(self):
        """The packed parameter and gradient buffers (fastnn.packing.FlatBuffers), or
        None before compile."""
        return self._buffers

    def _pack(self):
        leaves = self._leaf_layers()
        if not leaves:
            raise ValueError(f"{self.name}: the model has no layers")
        dtype = self.dtype
        for layer in leaves:
            if layer.weights and layer.dtype != dtype:
                raise ValueError(f"{self.name}: layer {layer.name!r} is {layer.dtype} but the "
                                 f"model is {dtype}; every layer must share one dtype")
        # Only variables created trainable live in the flat buffers; state such as
        # BatchNorm's moving statistics stays beside them (design decision 1).
        self._buffers = FlatBuffers([w for w in self.weights if w.trainable], dtype)
        for layer in leaves:
            layer._packed_into = self
        self._compiled_layers = tuple(leaves)
        self._train_scratch = None
        self.optimizer._slots = {}
        self.optimizer.build(self._buffers.size, dtype)

    def is_packed(self):
        """Whether the flat buffers still hold exactly this model's layers (no layer
        added or removed since compile, none packed into another model since)."""
        if self._buffers is None or tuple(self._leaf_layers()) != self._compiled_layers:
            return False
        return all(getattr(layer, "_packed_into", None) is self for layer in self._compiled_layers)

    def check_ready_to_train(self):
        """Raise the error that says what to do when the model cannot train now."""
        if self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile() before training")
        if self._compile_args is None or all(o.loss is None for o in self.objectives()):
            raise ValueError(f"{self.name}: compile() was called without a loss; pass "
                             "loss=... to compile() before training or evaluating")
        if self._compiled_layers is not None and \
                tuple(self._leaf_layers()) != self._compiled_layers:
            raise RuntimeError(f"{self.name}: layers were added or removed after compile(); "
                               "call compile() again")
        if self._buffers is None:
            self._pack()
        for layer in self._compiled_layers:
            if getattr(layer, "_packed_into", None) is not self:
                raise RuntimeError(f"{self.name}: layer {layer.name!r} now belongs to another "
                                   "compiled model; call compile() on this model again")

    # ---- the loops (fastnn.trainer) -------------------------------------------------
    @_distributed.ends_job_on_failure
    @_draws_from_own_generator
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            stop_on_nan=True, *, distributed=None):
        """Train for ``epochs`` epochs over (x, y) in shuffled batches; return a History.

        ``x``: an array (one input), a list of arrays (in input order) or a dict
        keyed by input name; ``y`` likewise per output. Or ``x`` streams its
        batches (``y`` and ``sample_weight`` None): a ``fastnn.utils.PyDataset``,
        or a generator / iterable (a PyTorch DataLoader, ...) yielding ``(x, y)``
        or ``(x, y, sample_weight)``; the next batches load in a background
        thread while the model computes. An epoch is then ``steps_per_epoch``
        batches (a generator is consumed across epochs; data that runs out
        first ends the epoch with a warning), else the PyDataset's ``len`` or
        the iterable until exhausted; ``shuffle`` permutes a PyDataset's batch
        order each pass and does not apply to generators. ``validation_data``
        may stream too (``validation_steps`` batches, else all). The last partial batch
        is trained, not dropped. ``validation_split`` holds out the last
        fraction of the data (before shuffling); ``validation_data`` is an (x, y)
        or (x, y, sample_weight) tuple; both add ``val_*`` entries to the
        history. ``sample_weight`` (one weight >= 0 per sample; a list or dict
        per output) or ``class_weight`` ({class index: weight}; one output only;
        not both, as Keras 3) weights each sample's loss, still divided by the
        batch size; metrics stay unweighted (Keras' ``metrics=``). Weight
        regularizers' penalties are added to the reported loss and trained on.
        A NaN or inf loss raises FloatingPointError before that step's update
        unless ``stop_on_nan=False`` (then ``callbacks.TerminateOnNaN`` can stop
        training). ``verbose``: 0 silent; 1 (or "auto") a progress bar redrawn
        in place on a terminal or in a notebook, one line per epoch in a log
        file; 2 one line per epoch. ``callbacks``: ``fastnn.callbacks.Callback``
        instances; validation runs their ``on_test_*`` hooks, as in Keras.
        ``distributed``: a ``fastnn.distributed.MPI()`` strategy for data-parallel
        training: every rank passes the same x and y and trains on its slice of
        each global batch of ``size * batch_size`` (see fastnn.distributed).
        """
        return _trainer.fit(self, x, y, batch_size, epochs, verbose, callbacks,
                            validation_split, validation_data, shuffle, class_weight,
                            sample_weight, initial_epoch, stop_on_nan, distributed,
                            steps_per_epoch, validation_steps)

    @_draws_from_own_generator
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 return_dict=False, callbacks=None, steps=None):
        """Return the mean loss over (x, y), or ``[loss, *per-output losses, *metrics]``
        when there are several (the history's keys, in order).

        ``x`` may stream its batches as in ``fit`` (a PyDataset or a generator of
        ``(x, y)`` / ``(x, y, sample_weight)``; ``y`` None). ``steps``: evaluate
        that many batches (default: all of them; a generator until exhausted).

        ``callbacks`` get ``on_test_begin``, ``on_test_batch_begin/end`` and ``on_test_end``.
        ``sample_weight`` (one weight >= 0 per sample) weights each sample's loss
        (still divided by the number of samples, as Keras); metrics stay unweighted.
        The loss includes the trainable weights' regularization penalties (Keras).
        """
        return _trainer.evaluate(self, x, y, batch_size, verbose, sample_weight, return_dict,
                                 callbacks, steps)

    @_draws_from_own_generator
    def predict(self, x, batch_size=None, verbose="auto", callbacks=None, steps=None):
        """Return the model's outputs for x, computed in batches (inference mode): an
        array, or the outputs' structure (a list or dict) for several outputs.

        ``x`` may stream its batches as in ``fit``: a PyDataset or a generator of
        ``x`` or ``(x,)`` (a ``(x, y)`` batch's targets are ignored); the outputs
        of its batches are concatenated. ``steps``: predict that many batches
        (default: all; a generator until exhausted).

        Safe to call from several threads at once: each call has its own scratch.
        ``callbacks`` get ``on_predict_begin``, ``on_predict_batch_begin/end``
        (logs ``{"outputs": batch outputs}``) and ``on_predict_end``.
        """
        return _trainer.predict(self, x, batch_size, verbose, callbacks, steps)

    @_draws_from_own_generator
    def predict_on_batch(self, x):
        """The outputs for one batch x (all of it at once)."""
        return _trainer.predict_on_batch(self, x)

    @_draws_from_own_generator
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One training step on (x, y); returns the loss, or [loss, ...] as evaluate."""
        return _trainer.train_on_batch(self, x, y, sample_weight, class_weight)

    @_draws_from_own_generator
    def test_on_batch(self, x, y, sample_weight=None):
        """The loss (or [loss, ...]) on one batch, without training."""
        return _trainer.test_on_batch(self, x, y, sample_weight)

    # ---- description and saving ----------------------------------------------------
    def summary(self, print_fn=None):
        """Print each layer's type, output shape, parameter count and (for a graph)
        what it is connected to, then the totals."""
        print_fn = print_fn or print
        graph = self._graph_for_plan() if self.built else None
        connected = graph is not None and not isinstance(self, Sequential) \
            and not self.is_call_based
        rows = [("Layer (type)", "Output Shape", "Param #")
                + (("Connected to",) if connected else ())]
        for layer in self.layers:
            nodes = graph.nodes_of(layer) if graph is not None else []
            if isinstance(layer, InputLayer):
                shape = layer.shape
            elif len(nodes) == 1:
                outs = nodes[0].outputs
                shape = outs[0].shape if len(outs) == 1 else [t.shape for t in outs]
            else:
                shape = "multiple" if nodes else "?"
            row = (f"{layer.name} ({type(layer).__name__})", str(shape),
                   f"{layer.count_params():,}")
            if connected:
                row += (", ".join(_inbound_names(node) for node in nodes) or "-",)
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        for i, row in enumerate(rows):
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)))
            print_fn("=" * sum(widths) if i == 0 else line)
        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    def save(self, filepath, overwrite=True):
        """Write the model to one file (any extension; ``.fnn`` recommended): architecture
        (the graph as data), weights, compile config and optimizer state. Read it with
        ``models.load_model``."""
        _saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Write only the weights (read them with ``load_weights``)."""
        _saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Copy the weights of a file from ``save_weights`` (or ``save``) into this model.

        Weights are matched by layer name (then in order); on any mismatch nothing
        is changed (ValueError).
        """
        _saving.load_weights(self, filepath)

    def get_config(self):
        """The architecture as JSON-able data: the layers and the graph of their calls
        (a subclassed model: its constructor's arguments, as a layer of your own)."""
        if self.is_call_based:
            return Layer.get_config(self)
        return _saving.model_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new, uncompiled model from ``get_config()``'s dict (fastnn's own layer
        types, plus ``custom_objects``: class name -> class)."""
        if cls.call is not Layer.call:
            return Layer.from_config.__func__(cls, config)
        return _saving.model_from_config(config, custom_objects, model_class=cls)

    def get_build_config(self):
        """What a subclassed model was built for (its inputs' shapes and dtypes), or
        None: saving records it so that loading can build the model again."""
        return self._build_inputs

    def build_from_config(self, build_config):
        """Build a subclassed model for the inputs ``get_build_config`` described."""
        self._trace_call(_inputs_from_specs(build_config))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"



AUTO_CONFIG_METHODS.add(Model.get_config)     # a subclassed model's constructor arguments

class Sequential(Model):
    """A linear stack of layers: ``Sequential([Dense(...), ...])`` or ``.add(layer)``.

    Its graph is a chain; it is built as soon as the input shape is known (an
    ``Input`` first, ``input_shape=`` on the first layer, ``build``, or the
    first data it sees).
    """

    def __init__(self, layers=None, name=None, trainable=True):
        self._init_model(name, trainable, "sequential")
        self._layers = []
        self._input = None          # the Input tensor the chain starts from
        self._chain_out = None      # the last layer's output tensor (when built)
        self._extend(list(layers or ()))

    @property
    def layers(self):
        return list(self._layers)

    def _graph_for_plan(self):
        if self._graph is None:
            if self._chain_out is None:
                raise ValueError(f"{self.name}: the model is not built yet (give its first "
                                 "layer input_shape=, start it with keras.Input, or call "
                                 "build)")
            self._graph = Graph([self._input], [self._chain_out], f"Sequential {self.name!r}")
        return self._graph

    def add(self, layer):
        """Append a layer (a ``keras.Input`` may only come first)."""
        self._extend([layer])

    @_draws_from_own_generator
    def _extend(self, new_layers):
        """add() each of ``new_layers``. The names already taken are gathered once, so
        building from a list (or a saved file) of n layers takes time linear in n."""
        names = {existing.name for existing in self._layers}
        members = {id(existing) for existing in self._layers}
        try:
            for layer in new_layers:
                self._append(layer, names, members)
        finally:
            self._changed()

    def _append(self, layer, names, members):
        if isinstance(layer, KerasTensor):
            if layer.node is None or not layer.node.is_input:
                raise TypeError(f"{self.name}: add() takes a layer or a keras.Input tensor, "
                                "got another layer's output")
            layer = layer.node.operation
        if isinstance(layer, InputLayer):
            if self._layers or self._input is not None:
                raise ValueError(f"{self.name}: an Input must be the first thing added")
            self._input = self._chain_out = layer.output
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: add() takes a fastnn layer, got "
                            f"{type(layer).__name__}")
        if layer.name in names:
            raise ValueError(f"{self.name}: a layer named {layer.name!r} is already in the "
                             "model; layer names must be unique")
        if id(layer) in members:
            raise ValueError(f"{self.name}: layer {layer.name!r} is already in the model")
        if not self._layers and self._input is None and layer.input_shape_hint is not None:
            self._start_chain(layer.input_shape_hint, layer.dtype)
        self._layers.append(layer)
        if self._chain_out is not None:
            try:
                self._chain_out = layer(self._chain_out)
            except Exception:
                self._layers.pop()
                raise
        names.add(layer.name)
        members.add(id(layer))

    def pop(self):
        """Remove and return the last layer (compile again before training)."""
        if not self._layers:
            raise ValueError(f"{self.name}: pop() on a model with no layers")
        layer = self._layers.pop()
        out = self._chain_out
        if out is not None and out.node is not None and out.node.operation is layer:
            out.node.detach()
            self._chain_out = out.node.inputs[0]
        self._changed()
        return layer

    @_draws_from_own_generator
    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape``: the shape of one sample,
        or Keras' form with the batch axis first as None."""
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        if self._chain_out is not None:
            if not shapes_compatible(self._input.shape[1:], shape):
                raise ValueError(f"{self.name}: was built for inputs {self._input.shape}, "
                                 f"cannot build it for {(None,) + shape}")
            return
        self._start_chain(shape, self._layers[0].dtype if self._layers else None)
        out = self._chain_out
        for layer in self._layers:
            try:
                out = layer(out)
            except Exception:
                self._input = self._chain_out = None
                raise
        self._chain_out = out
        self._changed()

    def _start_chain(self, shape, dtype):
        self._input = self._chain_out = InputLayer(shape=shape, dtype=dtype).output

    def _changed(self):
        self._graph = None
        _structure_changed()


def _first_leaf(x):
    if isinstance(x, dict):
        return _first_leaf(next(iter(x.values())))
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (np.ndarray, KerasTensor, list,
                                                                tuple, dict)):
        return _first_leaf(x[0])
    return np.asarray(x) if not isinstance(x, KerasTensor) else x


def _shapes_of(x):
    """The structure of ``x`` (one value, list or dict) with each leaf's shape."""
    if isinstance(x, dict):
        return {k: _shapes_of(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, (np.ndarray, KerasTensor))
                                                  for v in x):
        return [_shapes_of(v) for v in x]
    return tuple(x.shape) if isinstance(x, KerasTensor) else np.shape(x)


def _dtypes_of(x):
    if isinstance(x, dict):
        return {k: _dtypes_of(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, (np.ndarray, KerasTensor))
                                                  for v in x):
        return [_dtypes_of(v) for v in x]
    return np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype


def _inputs_for(shapes, dtype, dtypes=None):
    """Input tensors for ``shapes`` (batch axis first; one, a list or a dict): integer
    data gets integer inputs (indices for Embedding), the rest float."""
    if isinstance(shapes, dict):
        return {k: _one_input(v, dtype, None if dtypes is None else dtypes[k], k)
                for k, v in shapes.items()}
    if isinstance(shapes, list) and shapes and isinstance(shapes[0], (list, tuple)):
        return [_one_input(v, dtype, None if dtypes is None else dtypes[i])
                for i, v in enumerate(shapes)]
    return _one_input(shapes, dtype, dtypes)


def _one_input(shape, dtype, data_dtype, name=None):
    shape = tuple(shape)
    if not shape:
        raise ValueError("a model's inputs need a batch axis")
    if data_dtype is not None and np.dtype(data_dtype).kind in "iu":
        dtype = "int64"
    return InputLayer(batch_shape=(None,) + shape[1:], dtype=dtype, name=name).output


def _input_specs(inputs):
    """JSON-able (shape, dtype) of each input, in its structure (to rebuild it)."""
    if isinstance(inputs, dict):
        return {"dict": {k: _input_specs(v) for k, v in inputs.items()}}
    if isinstance(inputs, (list, tuple)):
        return {"list": [_input_specs(v) for v in inputs]}
    return {"shape": list(inputs.shape), "dtype": inputs.dtype.name}


def _inputs_from_specs(specs):
    """Input tensors from ``_input_specs`` data (checked: it may come from a file)."""
    if not isinstance(specs, dict):
        raise ValueError(f"a build config must be an object, got {specs!r}")
    if "dict" in specs and isinstance(specs["dict"], dict):
        return {str(k): _inputs_from_specs(v) for k, v in specs["dict"].items()}
    if "list" in specs and isinstance(specs["list"], list):
        return [_inputs_from_specs(v) for v in specs["list"]]
    shape, dtype = specs.get("shape"), specs.get("dtype")
    if not isinstance(shape, list) or not shape or not isinstance(dtype, str):
        raise ValueError(f"a build config's input needs a shape and a dtype, got {specs!r}")
    return InputLayer(batch_shape=tuple(shape), dtype=dtype).output


def _symbolic_structure(value):
    if isinstance(value, dict):
        return {k: _symbolic_structure(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_symbolic_structure(v) for v in value]
    return value if isinstance(value, KerasTensor) else as_symbolic(value)


def _with_input_layers(inputs, outputs, where):
    """Inputs that are not ``keras.Input`` tensors (a model built on another's
    intermediate tensors: a feature extractor) get Input layers of their own, and
    the nodes between them and the outputs are recorded again on those (the same
    layers, so the same weights), as Keras does. Returns (inputs, outputs)."""
    if all(t.node is not None and t.node.is_input for t in inputs
           if isinstance(t, KerasTensor)):
        return inputs, outputs
    graph = Graph(inputs, outputs, where)
    mapping = {}
    new_inputs = []
    for t in inputs:
        if t.node is not None and t.node.is_input:
            new_inputs.append(t)
            continue
        new = InputLayer(batch_shape=t.shape, dtype=t.dtype,
                         name=unique_name(f"{t.name or 'tensor'}_input")).output
        mapping[id(t)] = new
        new_inputs.append(new)
    for node in graph.nodes:
        new_in = [mapping.get(id(t), t) for t in node.inputs]
        if all(a is b for a, b in zip(new_in, node.inputs)):
            continue
        new_out = [KerasTensor(t.shape, t.dtype, name=t.name) for t in node.outputs]
        Node(node.operation, new_in, new_out, node.list_input, node.training)
        for old, new in zip(node.outputs, new_out):
            mapping[id(old)] = new
    return new_inputs, [mapping.get(id(t), t) for t in outputs]


def _inbound_names(node):
    """'dense[0][0], input_layer[0][0]' -- what a node reads, as Keras' summary shows it."""
    parts = []
    for t in node.inputs:
        history = t._keras_history
        if history is None:
            parts.append(str(t.shape))
        else:
            parts.append(f"{history.operation.name}[{history.node_index}][{history.tensor_index}]")
    return ", ".join(parts)



# What a saved file may name (a functional Model is "Functional", as in Keras).
for _name, _cls in (("Sequential", Sequential), ("Functional", Model), ("Model", Model)):
    _registry.register("model", _name, _cls)
