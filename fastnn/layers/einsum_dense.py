"""EinsumDense (Keras'): a dense layer whose product is an einsum equation.

``EinsumDense("abc,cde->abde", output_shape=(None, 4, 16), bias_axes="de")``
projects (batch, T, C) inputs to (batch, T, 4, 16): the kernel's shape follows
from the equation (here (C, 4, 16)), the bias spans the output axes named in
``bias_axes``. The product is fastnn.ops.einsum, lowered to one batched GEMM.
"""
import re

from fastnn import activations as _activations
from fastnn import initializers as _initializers
from fastnn import ops
from fastnn import regularizers as _regularizers
from fastnn.layers.base import Layer


class EinsumDense(Layer):
    """``activation(einsum(equation, inputs, kernel) + bias)``, Keras' EinsumDense.

    ``equation`` is ``"<input>,<kernel>-><output>"`` in letters, optionally with a
    leading (``"...ab,bc->...ac"``) or trailing ellipsis. ``output_shape``: the
    output's shape without the batch axis and the ellipsis axes (an int for one
    axis; None where it follows from the input). ``bias_axes``: the output
    letters the bias spans (None: no bias). Weights: ``kernel``, then ``bias``.
    Glorot / He style initializers take fan-in over the kernel's axes that meet
    the input and fan-out over those that reach the output, as Keras does.
    """

    def __init__(self, equation, output_shape, activation=None, bias_axes=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(equation, str):
            raise TypeError(f"{self.name}: equation must be a string, got {equation!r}")
        _split(equation)                              # checks its form now
        self.equation = equation
        self.partial_output_shape = ((output_shape,) if isinstance(output_shape, int)
                                     else tuple(output_shape))
        if bias_axes is not None and not isinstance(bias_axes, str):
            raise TypeError(f"{self.name}: bias_axes must be a string of output letters, got "
                            f"{bias_axes!r}")
        self.bias_axes = bias_axes
        self.activation = _activations.name_of(activation)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.kernel = self.bias = None

    def build(self, input_shape):
        kernel_shape, bias_shape, _, fans = analyze(self.equation, self.bias_axes,
                                                     tuple(input_shape),
                                                     self.partial_output_shape, self.name)
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape,
                                      initializer=_initializers.with_fans(
                                          self.kernel_initializer, *fans),
                                      regularizer=self.kernel_regularizer)
        if bias_shape is not None:
            self.bias = self.add_weight(name="bias", shape=bias_shape,
                                        initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer)
        self.built = True

    def compute_output_shape(self, input_shape):
        return analyze(self.equation, self.bias_axes, tuple(input_shape),
                       self.partial_output_shape, self.name)[2]

    def call(self, inputs):
        x = ops.einsum(self.equation, inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation != "linear":
            x = _activations.get(self.activation)(x)
        return x

    def get_config(self):
        return {**super().get_config(), "equation": self.equation,
                "output_shape": list(self.partial_output_shape), "bias_axes": self.bias_axes,
                "activation": self.activation,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "bias_initializer": _initializers.serialize(self.bias_initializer),
                "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": _regularizers.serialize(self.bias_regularizer)}


_FORMS = (("", r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)"),
          ("left", r"\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)"),
          ("right", r"([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\."))


def _split(equation):
    """(input letters, kernel letters, output letters, where the ellipsis is)."""
    text = equation.replace(" ", "")
    for where, pattern in _FORMS:
        match = re.fullmatch(pattern, text)
        if match:
            return match.group(1), match.group(2), match.group(3), where
    raise ValueError(f"EinsumDense: invalid equation {equation!r}; expected "
                     "'<input>,<kernel>-><output>' in letters, optionally with '...' at the "
                     "start or end of the input and output (e.g. 'abc,cd->abd', "
                     "'...b,bc->...c')")


def analyze(equation, bias_axes, input_shape, partial_output_shape, where="EinsumDense"):
    """(kernel shape, bias shape or None, output shape, (fan_in, fan_out)) for inputs
    of ``input_shape`` (Keras' shape, batch axis first). Raises ValueError when the
    equation, the shapes and the bias axes disagree."""
    in_spec, w_spec, out_spec, ellipsis = _split(equation)
    elided = len(input_shape) - len(in_spec)
    if elided < 0 or (elided and not ellipsis):
        raise ValueError(f"{where}: equation {equation!r} expects inputs of rank "
                         f"{len(in_spec)}, got {input_shape}")
    # the full output shape: batch, (left ellipsis), the given axes, (right ellipsis)
    output = [input_shape[0]]
    if ellipsis == "left":
        output += list(input_shape[1:elided])
    output += list(partial_output_shape)
    if ellipsis == "right":
        output += list(input_shape[len(input_shape) - elided:])
    first = elided if ellipsis == "left" else 0
    if len(output) - first - (elided if ellipsis == "right" else 0) != len(out_spec):
        raise ValueError(f"{where}: output_shape {partial_output_shape} does not match the "
                         f"output {out_spec!r} of {equation!r}")
    in_at = {c: input_shape[first + i] for i, c in enumerate(in_spec)}
    out_at = {c: first + i for i, c in enumerate(out_spec)}
    for c, i in out_at.items():
        if c in in_at:
            if output[i] is not None and in_at[c] is not None and output[i] != in_at[c]:
                raise ValueError(f"{where}: input and output sizes of axis {c!r} differ: "
                                 f"{in_at[c]} and {output[i]}")
            output[i] = in_at[c] if output[i] is None else output[i]
        elif c not in w_spec:
            raise ValueError(f"{where}: output axis {c!r} of {equation!r} is in neither the "
                             "input nor the kernel")
    kernel, fan_in, fan_out = [], 1, 1
    for c in w_spec:
        if c in out_at:
            size = output[out_at[c]]
            fan_out *= size if size is not None else 1
        elif c in in_at:
            size = in_at[c]
            fan_in *= size if size is not None else 1
        else:
            raise ValueError(f"{where}: kernel axis {c!r} of {equation!r} is in neither the "
                             "input nor the output")
        if size is None:
            raise ValueError(f"{where}: kernel axis {c!r} needs a known size; give it in "
                             "output_shape or the input's shape")
        kernel.append(int(size))
    bias = None
    if bias_axes is not None:
        unknown = [c for c in bias_axes if c not in out_spec]
        if unknown:
            raise ValueError(f"{where}: bias axis {unknown[0]!r} is not an output axis of "
                             f"{equation!r}")
        start = min(out_spec.index(c) for c in bias_axes)
        bias = [output[out_at[c]] if c in bias_axes else 1 for c in out_spec[start:]]
        if ellipsis == "right":
            bias += [1] * elided
        if any(size is None for size in bias):
            raise ValueError(f"{where}: the bias axes {bias_axes!r} need known sizes")
    return tuple(kernel), None if bias is None else tuple(bias), tuple(output), (fan_in, fan_out)
