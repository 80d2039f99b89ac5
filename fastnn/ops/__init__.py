"""``fastnn.ops``: Keras 3's ``keras.ops``, and the backend's kernels.

Every Keras-named function works on arrays (it computes now, on the current
backend's kernels) and on symbolic tensors (it records a graph node), so the
same code serves eager use, the functional API and layers of your own, whose
``call`` is traced into these operations once and then runs compiled::

    from fastnn import ops
    def rmse(y_true, y_pred):
        return ops.sqrt(ops.mean(ops.square(y_true - y_pred), axis=-1))

Python operators on symbolic tensors and weights (``+ - * / ** @``, unary
``-``, comparisons, basic slicing) call these functions.

The backend's kernels keep their names and signatures beside them, resolved
against the backend in force when looked up, e.g.
``fastnn.ops.gemm(a, b, transpose_b=True, bias=b0, activation="relu")`` (see
fastnn.backend.ops.Ops); where a Keras name and a kernel name meet
(``concatenate``, ``split``, ``where``, ``softmax``, ``cumsum``), the Keras
function is the one here.
"""
from fastnn.backend import current_ops as _current_ops
from fastnn.backend.ops import Ops as _Ops
from fastnn.graph import tensor as _tensor
from fastnn.ops.array import (
    arange, concatenate, convert_to_tensor, expand_dims, full, full_like, getitem, one_hot,
    ones, ones_like, reshape, shape, split, squeeze, stack, swapaxes, take, take_along_axis,
    transpose, zeros, zeros_like,
)
from fastnn.ops.elementwise import (
    abs, absolute, add, cast, clip, divide, equal, exp, greater, greater_equal, less,  # noqa: A004
    less_equal, log, log1p, maximum, minimum, multiply, negative, not_equal, power,
    reciprocal, sign, sqrt, square, stop_gradient, subtract, true_divide, where,
)
from fastnn.ops.linalg import dot, einsum, inner, matmul, tensordot
from fastnn.ops.nn import elu, gelu, leaky_relu, log_softmax, relu, sigmoid, silu, softmax, \
    swish, tanh
from fastnn.ops.reduction import (
    amax, amin, argmax, argmin, cumsum, max, mean, min, std, sum, var,  # noqa: A004
)

_KERAS = [
    "abs", "absolute", "add", "amax", "amin", "arange", "argmax", "argmin", "cast", "clip",
    "concatenate", "convert_to_tensor", "cumsum", "divide", "dot", "einsum", "elu", "equal",
    "exp", "expand_dims", "full", "full_like", "gelu", "getitem", "greater", "greater_equal",
    "inner", "leaky_relu", "less", "less_equal", "log", "log1p", "log_softmax", "matmul", "max",
    "maximum", "mean", "min", "minimum", "multiply", "negative", "not_equal", "one_hot",
    "ones", "ones_like", "power", "reciprocal", "relu", "reshape", "shape", "sigmoid", "sign",
    "silu", "softmax", "split", "sqrt", "square", "squeeze", "stack", "std", "stop_gradient",
    "subtract", "sum", "swapaxes", "swish", "take", "take_along_axis", "tanh", "tensordot",
    "transpose", "true_divide", "var", "where", "zeros", "zeros_like",
]

# Python operators on KerasTensors and weights (fastnn.graph.tensor) call these.
_tensor.OPERATORS.update(
    add=add, subtract=subtract, multiply=multiply, divide=divide, power=power, matmul=matmul,
    less=less, less_equal=less_equal, greater=greater, greater_equal=greater_equal,
    equal=equal, not_equal=not_equal, negative=negative, abs=abs, getitem=getitem)

_KERNELS = [name for name in vars(_Ops) if not name.startswith("_")
            and callable(getattr(_Ops, name)) and name not in _KERAS]


def _kernel(name):
    """fastnn.ops.<name>: the kernel of the backend in force at each call (a
    module-level function, not a module __getattr__: that lookup alone cost
    more than a small GEMM)."""
    def kernel(*args, **kwargs):
        return getattr(_current_ops(), name)(*args, **kwargs)
    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = getattr(_Ops, name).__doc__
    return kernel


globals().update({name: _kernel(name) for name in _KERNELS})


def __dir__():
    return sorted(set(_KERAS) | set(_KERNELS))
