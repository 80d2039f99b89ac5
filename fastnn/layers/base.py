"""The layer lifecycle (Keras'): ``__init__`` validates and stores the config,
``build(input_shape)`` creates the weights, ``forward`` computes, ``backward``
fills the weight gradients and returns the input gradient.

Shapes exclude the batch axis unless they say otherwise. A layer's math goes
through the ``ops`` it is given, never through NumPy directly, so the
backend decides where every hot loop runs.
"""
import contextvars
import inspect
import math

import numpy as np

from fastnn import _runtime
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.graph import calls as _calls
from fastnn.graph.graph import unique
from fastnn.graph.workspace import Workspace  # noqa: F401  (layers take one per call)
from fastnn.naming import snake_case, unique_name  # noqa: F401  (re-exported)
from fastnn.variables import Weight

# While fastnn.saving builds a model described by a file, this holds how many
# weight values the file stores (a one-item list, charged as weights are
# created). add_weight refuses to go past it, so a tampered architecture cannot
# make fastnn allocate memory the file never held, and skips the initializers
# (the file's values replace them), so loading leaves fastnn's random generator
# where it was. None (the default): not loading.
weight_budget = contextvars.ContextVar("fastnn_weight_budget", default=None)


class Layer:
    """Base class of every layer.

    fastnn's own layers implement ``forward`` / ``backward`` on the backend's
    kernels. A layer of your own, as in Keras, implements ``call`` (and
    optionally ``build(input_shape)``, with the batch axis first, and
    ``get_config``) with fastnn.ops and other layers: calling it traces ``call``
    once per input signature into primitive operations the executor runs
    (fastnn.graph.calls). Layers assigned as attributes are tracked: their
    weights are this layer's too.
    """

    def __new__(cls, *args, **kwargs):
        # Keras' auto-config: the constructor's arguments, so that a layer of your
        # own with plain arguments saves and loads without a get_config.
        instance = super().__new__(cls)
        object.__setattr__(instance, "_init_args", (args, kwargs))
        return instance

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, input_dim=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{sorted(kwargs)[0]!r}")
        self._tracked = []         # sub-layers assigned as attributes, in order
        self.name = name if name is not None else unique_name(snake_case(type(self).__name__))
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"layer name must be a non-empty string, got {name!r}")
        self.dtype = np.dtype(dtype if dtype is not None else _runtime.floatx())
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"{self.name}: dtype must be float32 or float64, got {self.dtype}")
        self._trainable = bool(trainable)
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if input_dim is not None:
            input_shape = (input_dim,)
        self.input_shape_hint = (None if input_shape is None
                                 else _as_shape(input_shape, self.name, "input_shape"))
        self._weights = []
        self._inbound_nodes = []   # one Node per call on symbolic tensors
        self.built = False
        self.input_shape = None    # excluding the batch axis, set by build
        self.output_shape = None

    def __setattr__(self, name, value):
        # Keras' tracking: a layer (or a list of layers) kept as an attribute is a
        # sub-layer -- its weights belong to this layer and freeze with it.
        if not name.startswith("_"):
            items = value if isinstance(value, (list, tuple)) else (value,)
            tracked = self.__dict__.get("_tracked")
            for k, item in enumerate(items):
                if isinstance(item, Layer) and tracked is not None and \
                        all(item is not t for t in tracked):
                    tracked.append(item)
                    # the attribute names it (saving's path in a subclassed model)
                    self.__dict__.setdefault("_tracked_names", {})[id(item)] = \
                        name if len(items) == 1 and items[0] is value else f"{name}.{k}"
        object.__setattr__(self, name, value)

    def tracked_name(self, layer):
        """The attribute a tracked sub-layer was assigned to (its stable name)."""
        return self.__dict__.get("_tracked_names", {}).get(id(layer), layer.name)

    # ---- calling (Keras'): symbolic tensors record a node, arrays compute now --
    # Merge layers take a list of inputs; every other layer takes one tensor.
    takes_list = False

    def __call__(self, *args, **kwargs):
        """On symbolic tensors (``keras.Input``, another layer's output): build the
        layer for their shapes, record the call and return symbolic outputs. On
        arrays: the outputs for that batch, now (inference unless ``training``)."""
        if self.is_call_based:
            return _calls.call_custom(self, args, kwargs)
        if hasattr(self, "bind_call"):
            return _calls.call_bound(self, args, kwargs)
        if len(args) != 1 or set(kwargs) - {"training"}:
            extra = sorted(set(kwargs) - {"training"}) or [f"{len(args)} positional"]
            raise TypeError(f"{self.name}: unexpected call arguments {extra}; a "
                            f"{type(self).__name__} layer is called on its inputs, with an "
                            "optional training=")
        return _calls.call_layer(self, args[0], kwargs.get("training"))

    def call(self, *args, **kwargs):
        """Keras' computation of a layer of your own, written with fastnn.ops and other
        layers (see the class docstring); fastnn's own layers use forward/backward."""
        raise NotImplementedError(f"{type(self).__name__} defines neither call() nor forward()")

    @property
    def is_call_based(self):
        """Whether the layer computes with a traced ``call`` (a layer of your own)."""
        return type(self).call is not Layer.call

    @property
    def input(self):
        """The input tensor(s) of this layer's first call on symbolic tensors."""
        return self._first_node("input").inputs_as_called()

    @property
    def output(self):
        """The output tensor(s) of this layer's first call on symbolic tensors."""
        outputs = self._first_node("output").outputs
        return outputs[0] if len(outputs) == 1 else list(outputs)

    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"layer {self.name!r} has never been called on symbolic "
                                 f"tensors and thus has no defined {what}")
        return self._inbound_nodes[0]

    def check_input_shape(self, input_shape):
        """Raise ValueError (naming the layer and the shapes) unless this built layer
        can take inputs of ``input_shape`` (batch axis excluded): the default is the
        built shape, where both sizes are known. Layers with free axes override it."""
        if not shapes_compatible(self.input_shape, input_shape):
            raise ValueError(f"layer {self.name!r} was built for inputs "
                             f"{(None,) + tuple(self.input_shape)} but is called on inputs "
                             f"{(None,) + tuple(input_shape)}")

    # ---- lifecycle -----------------------------------------------------------
    def build(self, input_shape):
        """Create the weights for inputs of ``input_shape`` (fastnn's layers: batch axis
        excluded; a layer with ``call``: Keras' shape, batch axis first)."""
        if self.is_call_based:
            self.built = True
            return
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, ops, x, training=False, ws=None):
        """Return the output for a batch ``x``. With ``ws`` (a Workspace), outputs go
        into its buffers and what backward needs is kept in ``ws.saved``."""
        raise NotImplementedError

    def backward(self, ops, dy, ws, need_dx=True):
        """Write this layer's weight gradients (overwriting them) and return dL/dx
        (None when ``need_dx`` is False)."""
        raise NotImplementedError

    # ---- masking (Keras': a mask over time steps, from Embedding(mask_zero=True)) --
    # Whether this layer's output may carry a mask when its input carries none.
    makes_mask = False
    # Whether an input mask passes through this layer unchanged (element-wise
    # and per-step layers); other layers consume or drop it.
    supports_masking = False
    # Whether each time step of the output depends only on the same step of the input
    # (Dense, LayerNormalization, element-wise layers): incremental decoding
    # (fastnn.decoding) then runs the layer on the new tokens alone.
    positionwise = False

    def output_mask(self, ws):
        """The (N, T) mask leaving this layer after ``forward`` with ``ws`` (whose
        ``mask`` holds the input's), or None."""
        return ws.mask if self.supports_masking else None

    def get_config(self):
        """The layer's arguments as JSON-able data. A layer of your own that does not
        override get_config gets its constructor's arguments when they are plain
        data (numbers, strings, lists, dicts), as in Keras; override it when they
        are not (an override's ``super().get_config()`` gives the base keys only)."""
        config = {"name": self.name, "trainable": self._trainable, "dtype": self.dtype.name}
        if self.input_shape_hint is not None:
            config["input_shape"] = list(self.input_shape_hint)
        if self.is_call_based and type(self).get_config in AUTO_CONFIG_METHODS:
            config.update(_constructor_arguments(self))     # Keras' auto-config
        return config

    @classmethod
    def from_config(cls, config):
        """A new layer from ``get_config()``'s data (base arguments the constructor of
        a layer of your own does not take are set afterwards)."""
        config = dict(config)
        late = {}
        if not _accepts_keyword(cls.__init__, "name"):
            late = {k: config.pop(k) for k in ("name", "trainable", "dtype") if k in config}
        layer = cls(**config)
        if "name" in late:
            layer.name = late["name"]
        if "trainable" in late:
            layer.trainable = late["trainable"]
        return layer

    # ---- weights -------------------------------------------------------------
    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None, **keras_options):
        """Create a weight (Keras' arguments). Trainable ones are packed into the
        model's flat buffers at compile; non-trainable ones (state, e.g. moving
        statistics) are not. ``initializer`` defaults to glorot_uniform for floats
        and zeros otherwise; ``regularizer`` adds a penalty on this weight to the
        loss. Keras' ``autocast``, ``aggregation`` and ``overwrite_with_gradient``
        are accepted and have no effect; ``constraint`` is not supported."""
        unknown = set(keras_options) - {"autocast", "aggregation", "overwrite_with_gradient"}
        if unknown:
            raise TypeError(f"{self.name}: add_weight got unexpected arguments {sorted(unknown)}")
        if constraint is not None:
            raise ValueError(f"{self.name}: weight constraints are not supported")
        shape = () if shape is None else _weight_shape(shape, self.name)
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if trainable and dtype not in (np.float32, np.float64):
            raise ValueError(f"{self.name}: a trainable weight must be float32 or float64, got "
                             f"{dtype}")
        if name is None:
            name = "variable" if not self._weights else f"variable_{len(self._weights)}"
        if initializer is None:
            initializer = "glorot_uniform" if dtype.kind == "f" else "zeros"
        init = _initializers.get(initializer)
        if _charge_weight_budget(self.name, name, shape):
            value = np.zeros(shape, dtype=dtype)
        else:
            value = np.asarray(init(shape, dtype=dtype), order="C")
        weight = Weight(name, value, bool(trainable), _regularizers.get(regularizer), owner=self)
        self._weights.append(weight)
        return weight

    def grad_of(self, weight, ws, optional=False):
        """Where backward writes ``weight``'s gradient: the model's gradient buffer;
        scratch when ``ws`` asks for no parameter gradients (None instead when
        ``optional``: the layer may then skip computing it); scratch that is
        added to the buffer afterwards when ``ws`` accumulates (a shared layer)."""
        if ws.direct:
            return weight.grad
        if not ws.param_grads:
            return None if optional else ws.buffer("grad:" + weight.name, weight.shape,
                                                   self.dtype)
        grad = ws.buffer("acc:" + weight.name, weight.shape, self.dtype)
        ws.pending.append((weight, grad))
        return grad

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        # Frozen ranges are recomputed at the start of every fit: no recompile needed.
        # Keras 3: sub-layers freeze (and unfreeze) with their layer.
        self._trainable = bool(value)
        for layer in self._tracked:
            layer.trainable = value

    @property
    def weights(self):
        """This layer's weights, then its sub-layers' (each once)."""
        if not self._tracked:
            return list(self._weights)
        return unique(self._weights + [w for layer in self._tracked for w in layer.weights])

    @property
    def trainable_weights(self):
        if not self._trainable:
            return []
        own = [w for w in self._weights if w.trainable]
        if not self._tracked:
            return own
        return unique(own + [w for layer in self._tracked for w in layer.trainable_weights])

    # The rest derive from ``weights`` and ``trainable_weights`` (a model overrides those).
    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    def count_params(self):
        return sum(w.size for w in self.weights)

    def get_weights(self):
        """Copies of the weights, in Keras' order and shapes."""
        return [w.value.copy() for w in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` (Keras' order and shapes) into this layer."""
        assign_weights(self.name, self.weights, weights)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


# The get_config methods that give a layer of your own its constructor's arguments:
# the base ones (Layer's, and Model's, added by fastnn.models). A class that
# overrides get_config says what its config is.
AUTO_CONFIG_METHODS = {Layer.get_config}


def _accepts_keyword(fn, name):
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _is_plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _constructor_arguments(layer):
    """The arguments ``layer`` was constructed with, by parameter name (not the base
    ones); NotImplementedError naming the first that is not plain data."""
    args, kwargs = layer.__dict__.get("_init_args", ((), {}))
    try:
        bound = inspect.signature(type(layer).__init__).bind(layer, *args, **kwargs)
    except TypeError:
        return {}
    config = {}
    for name, value in bound.arguments.items():
        if name == "self":
            continue
        kind = inspect.signature(type(layer).__init__).parameters[name].kind
        items = value.items() if kind is inspect.Parameter.VAR_KEYWORD else [(name, value)]
        for key, item in items:
            if key in ("name", "trainable", "dtype"):
                continue
            if not _is_plain(item):
                raise NotImplementedError(
                    f"{type(layer).__name__} {layer.name!r}: its argument {key}={item!r} is not "
                    "plain data, so it cannot be saved automatically; give the class a "
                    "get_config() that returns its arguments as data")
            config[key] = list(item) if isinstance(item, tuple) else item
    return config


def assign_weights(owner, targets, weights):
    """Copy the arrays ``weights`` into the Weight objects ``targets`` (of layer or
    model ``owner``): every one checked (count, shapes, finite numbers) before any
    is written, so a bad list changes nothing."""
    weights = list(weights)
    if len(weights) != len(targets):
        raise ValueError(f"{owner}: expected {len(targets)} weight arrays "
                         f"({[w.shape for w in targets]}), got {len(weights)}")
    arrays = []
    for weight, new in zip(targets, weights):
        new = np.asarray(new)
        if new.shape != weight.shape:
            raise ValueError(f"{owner}: weight {weight.name!r} has shape {weight.shape}, "
                             f"got {new.shape}")
        if new.dtype.kind not in "fiu" or not np.all(np.isfinite(new)):
            raise ValueError(f"{owner}: weight {weight.name!r} must be finite numbers")
        arrays.append(new)
    for weight, new in zip(targets, arrays):
        np.copyto(weight.value, new, casting="unsafe")


def _weight_shape(shape, where):
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a weight's shape must be a tuple of integers, got "
                         f"{shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{where}: a weight's shape must not be negative, got {shape}")
    return shape


def _charge_weight_budget(layer_name, weight_name, shape):
    """Count a new weight against ``weight_budget`` before it is allocated; True
    when a budget is set (the weight is being loaded from a file)."""
    budget = weight_budget.get()
    if budget is None:
        return False
    size = math.prod(int(d) for d in shape)
    if size > budget[0]:
        raise ValueError(f"{layer_name}: weight {weight_name!r} of shape {shape} needs more "
                         f"values than the file holds ({budget[0]} left): the architecture "
                         "and the stored weights disagree")
    budget[0] -= size
    return True


def _as_shape(shape, where, what="shape"):
    """A shape (batch axis excluded) as a tuple of positive ints, None where a size
    is left free (a variable-length time axis)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        raise TypeError(f"{where}: {what} must be a tuple, got the integer {shape!r} "
                        f"(write ({shape},))")
    try:
        shape = tuple(None if d is None else _positive_int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: {what} must be a tuple of positive integers (or None "
                        f"for a free size), got {shape!r}") from None
    if not shape or any(d is not None and d < 1 for d in shape):
        raise ValueError(f"{where}: {what} must be a non-empty tuple of positive "
                         f"integers (or None for a free size), got {shape}")
    return shape


def _positive_int(d):
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise TypeError(d)
    return int(d)


def shapes_compatible(a, b):
    """Whether two shapes (batch axis excluded) agree wherever both sizes are known."""
    a, b = tuple(a), tuple(b)
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


class KernelBiasLayer(Layer):
    """A layer with a ``kernel`` and an optional ``bias`` (Dense, Conv): Keras'
    initializer / regularizer options for both, their weights and config."""

    def _set_kernel_bias_options(self, use_bias, kernel_initializer, bias_initializer,
                                 kernel_regularizer, bias_regularizer):
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.kernel = self.bias = None

    def _add_kernel_bias(self, kernel_shape, units):
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape,
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(units,),
                                        initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def _kernel_bias_config(self):
        return {"use_bias": self.use_bias,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer)}
