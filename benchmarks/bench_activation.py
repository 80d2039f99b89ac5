"""Element-wise activations forward and backward (csrc/act.c, csrc/vact.h),
compiled vs NumPy vs PyTorch.

Run:  python -m pytest benchmarks/bench_activation.py --benchmark-only

x (4096, 512) float32 (a Dense(512) layer's pre-activations over 4096 tokens),
standard normal: relu, the memory-bound baseline, against the transcendental
activations gelu (Keras' exact erf form), tanh, sigmoid, swish and elu.
- forward: y = act(x) into a preallocated y;
- backward: dx = dy * act'(x or y) into a preallocated dx (gelu, swish and elu
  read x, the others y).
compiled and numpy call ``ops.activation_forward`` / ``ops.activation_backward``
(validation included; NumpyOps computes in NumPy's float32 ufuncs). torch (when
installed) calls ATen's out= kernels directly, with ``torch.set_num_threads``
at the row's thread count: ``gelu.out(approximate='none')`` /
``gelu_backward``, ``tanh`` / ``tanh_backward``, ``sigmoid`` /
``sigmoid_backward``, ``silu`` / ``silu_backward``, ``elu`` / ``elu_backward``
and ``clamp_min`` / ``threshold_backward`` for relu: the same work as ours,
no autograd. The three run back to back for each case at 1 and 2 threads, each
checked against NumpyOps before it is timed.

GB/s in ``extra_info``: bytes of the (4096, 512) arrays read and written per
call (forward x in, y out; backward dy and x or y in, dx out) / the median;
``Gelem/s`` elements per second.
"""
import numpy as np
import pytest

from fastnn.backend import get_ops
from fastnn.bench.peers import torch_available
from fastnn.bench.timing import compiled_available, compiled_import_error, using_backend

SHAPE = (4096, 512)
NAMES = ["relu", "gelu", "tanh", "sigmoid", "swish", "elu"]
READS_X = {"gelu", "swish", "elu"}


@pytest.fixture(params=["numpy", "compiled", "torch"])
def backend(request):
    """This module's backends: conftest's two and PyTorch's ATen kernels."""
    if request.param == "compiled" and not compiled_available():
        pytest.skip(f"compiled extension not built ({compiled_import_error()})")
    if request.param == "torch" and not torch_available():
        pytest.skip("torch is not installed")
    return request.param


@pytest.fixture
def ops(backend):
    """The Ops of ``backend`` (None for torch), made the current backend for the test."""
    if backend == "torch":
        yield None
        return
    with using_backend(backend):
        yield get_ops(backend)


@pytest.fixture
def torch_threads(backend, threads):
    """torch's intra-op threads set to the row's count (and restored) for torch rows."""
    if backend != "torch":
        yield
        return
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _torch_calls(name, x, y_ref, dy, y, dx):
    """(forward, backward) on ATen's out= kernels, writing into y and dx (NumPy
    arrays shared with the tensors). backward reads the reference y, as ours."""
    import torch
    aten = torch.ops.aten
    tx, ty, tdy, ty_ref, tdx = (torch.from_numpy(a) for a in (x, y, dy, y_ref, dx))
    forward = {
        "relu": lambda: torch.clamp_min(tx, 0.0, out=ty),
        "gelu": lambda: aten.gelu.out(tx, approximate="none", out=ty),
        "tanh": lambda: torch.tanh(tx, out=ty),
        "sigmoid": lambda: torch.sigmoid(tx, out=ty),
        "swish": lambda: aten.silu.out(tx, out=ty),
        "elu": lambda: aten.elu.out(tx, 1.0, 1, 1, out=ty),
    }[name]
    backward = {
        "relu": lambda: aten.threshold_backward.grad_input(tdy, ty_ref, 0.0, grad_input=tdx),
        "gelu": lambda: aten.gelu_backward.grad_input(tdy, tx, approximate="none",
                                                      grad_input=tdx),
        "tanh": lambda: aten.tanh_backward.grad_input(tdy, ty_ref, grad_input=tdx),
        "sigmoid": lambda: aten.sigmoid_backward.grad_input(tdy, ty_ref, grad_input=tdx),
        "swish": lambda: aten.silu_backward.grad_input(tdy, tx, grad_input=tdx),
        "elu": lambda: aten.elu_backward.grad_input(tdy, 1.0, 1, 1, False, tx, grad_input=tdx),
    }[name]

    def run_forward():
        with torch.no_grad():
            forward()

    def run_backward():
        with torch.no_grad():
            backward()

    return run_forward, run_backward


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_activation(benchmark, backend, ops, threads, torch_threads, rng, reference,
                    assert_close, record_rate, direction, name):
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    dy = rng.standard_normal(SHAPE, dtype=np.float32)
    y_ref = reference.activation_forward(name, x)
    dx_ref = reference.activation_backward(name, dy, x, y_ref)
    y, dx = np.empty_like(x), np.empty_like(x)
    if backend == "torch":
        forward, backward = _torch_calls(name, x, y_ref, dy, y, dx)
    else:
        def forward():
            ops.activation_forward(name, x, out=y)

        def backward():
            ops.activation_backward(name, dy, x, y_ref, out=dx)
    forward()
    backward()
    assert_close(y, y_ref, f"{name} forward")
    assert_close(dx, dx_ref, f"{name} backward")
    fn = forward if direction == "forward" else backward
    benchmark.group = f"activation {direction} {SHAPE[0]}x{SHAPE[1]} {threads}t"
    benchmark.extra_info.update(shape=list(SHAPE), activation=name, direction=direction)
    benchmark(fn)
    record_rate((2 if direction == "forward" else 3) * x.nbytes, "GB/s", 1e9)
    record_rate(x.size, "Gelem/s", 1e9)
