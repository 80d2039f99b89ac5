"""How the compiled backend hands a call to NumPy: declared once per method, recorded once.

CompiledOps runs float32 on C kernels; some methods have no kernel for other
dtypes (or none at all) and give such calls to the NumPy reference. Each of
them says so with one line::

    @compiled_for_float32("x")             # float32 x: this body; else NumpyOps
    def activation_forward(self, name, x, out=None): ...

    cumsum = numpy_for_every_dtype(NumpyOps.cumsum, "x")   # always NumpyOps

A hand-off passes the whole call, argument for argument, to the same method of
the instance's ``_reference`` (a NumpyOps: the interface test keeps the two
signatures identical), and records ``"<method> <dtype>"`` once in
``FALLBACKS``, which ``fastnn.show_config()`` reports.

Why the dispatchers are generated: these methods run many times per training
step on small arrays, so the float32 test must cost next to nothing. A
``wrapper(self, *args, **kwargs)`` that reads the argument at a position
worked out once added 0.15 us to a 0.58 us ``activation_forward`` on a
(32, 64) float32 array (timeit, Python 3.11); a dispatcher compiled with the
method's own signature (as ``dataclasses`` builds ``__init__``) adds no
measurable time, so that is what the decorators build.
"""
import functools
import inspect
import threading

import numpy as np

# Operations handed to NumPy so far, each once: "<method> <dtype>".
FALLBACKS = []

_FLOAT32 = np.dtype(np.float32)
_record_lock = threading.Lock()   # predict may run on several threads: record each once


def record_fallback(method, dtype):
    """Note in FALLBACKS (once) that ``method`` on ``dtype`` ran on NumPy."""
    try:
        label = f"{method} {np.dtype(dtype).name}"
    except TypeError:
        label = f"{method} {dtype}"
    if label not in FALLBACKS:
        with _record_lock:
            if label not in FALLBACKS:
                FALLBACKS.append(label)


def compiled_for_float32(dtype_of, *, adapt=None):
    """Decorate an Ops method whose body is the float32 kernel path.

    When the argument named ``dtype_of`` is an array of another dtype, the call
    goes to the NumPy reference instead (recorded in FALLBACKS). An argument
    without a dtype (a list, None) runs the body, whose checks name the mistake.
    ``adapt(ops, arguments)``, if given, may rewrite the arguments dict (by
    parameter name) before the hand-off, for a buffer whose layout differs.
    """
    def decorate(method):
        return _dispatcher(method, dtype_of, compiled=method,
                           hand_off=_hand_off(method.__name__, adapt))
    return decorate


def numpy_for_every_dtype(reference_method, dtype_of):
    """An Ops method that always runs ``reference_method`` (a NumpyOps method) on
    the instance's ``_reference``, recorded under the dtype of ``dtype_of``."""
    return _dispatcher(reference_method, dtype_of, compiled=None,
                       hand_off=_hand_off(reference_method.__name__, None))


def _hand_off(name, adapt):
    def hand_off(ops, dtype, arguments):
        record_fallback(name, dtype)
        if adapt is not None:
            adapt(ops, arguments)
        return getattr(ops._reference, name)(**arguments)
    return hand_off


def _dispatcher(function, dtype_of, compiled, hand_off):
    """A method with ``function``'s signature: ``compiled`` for float32 (or a
    ``dtype_of`` without a dtype), ``hand_off(self, dtype, arguments)`` otherwise
    (always, when ``compiled`` is None)."""
    params = list(inspect.signature(function).parameters.values())
    if not params or params[0].name != "self":
        raise TypeError(f"{function.__qualname__}: an Ops method must take self first")
    names = [p.name for p in params]
    if dtype_of not in names[1:]:
        raise TypeError(f"{function.__qualname__} has no argument {dtype_of!r}")
    namespace = {"_compiled": compiled, "_hand_off": hand_off, "_FLOAT32": _FLOAT32}
    header, call = [], []
    for i, p in enumerate(params):
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or p.name.startswith("_"):
            raise TypeError(f"{function.__qualname__}: argument {p.name!r} cannot be "
                            "dispatched (plain named arguments only)")
        if p.kind is p.KEYWORD_ONLY and "*" not in header:
            header.append("*")
        text = p.name
        if p.default is not p.empty:
            namespace[f"_default{i}"] = p.default
            text += f"=_default{i}"
        header.append(text)
        call.append(p.name if p.kind is p.POSITIONAL_OR_KEYWORD else f"{p.name}={p.name}")
    arguments = "{" + ", ".join(f"{n!r}: {n}" for n in names[1:]) + "}"
    if compiled is None:
        body = (f"    return _hand_off(self, getattr({dtype_of}, 'dtype', _FLOAT32), "
                f"{arguments})\n")
    else:
        body = (f"    try:\n"
                f"        _dtype = {dtype_of}.dtype\n"
                f"    except AttributeError:\n"
                f"        return _compiled({', '.join(call)})\n"
                f"    if _dtype is _FLOAT32 or _dtype == _FLOAT32:\n"
                f"        return _compiled({', '.join(call)})\n"
                f"    return _hand_off(self, _dtype, {arguments})\n")
    source = f"def {function.__name__}({', '.join(header)}):\n{body}"
    exec(compile(source, f"<dispatch of {function.__qualname__}>", "exec"), namespace)
    return functools.wraps(function)(namespace[function.__name__])
