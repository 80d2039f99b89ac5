"""Optional peer row: inference (``predict``) in ONNX Runtime, when it is installed.

The ONNX graph is built from the fastnn model's own weights with ``onnx.helper``
-- one Gemm per Dense layer, then one node for its activation -- so the same
samples can be checked against the NumPy reference before they are timed.
onnx and onnxruntime are imported only inside these functions, and only after
``available()`` has found that both import; fastnn never requires them
(``pip install onnxruntime onnx``).
"""
import numpy as np

from fastnn.bench.checks import compare

PEER = "onnxruntime"
# Opset 17: Softmax normalises over its last axis alone from opset 13 on (as
# Keras' softmax does), and ONNX Runtime has run opset 17 since 1.13.
OPSET = 17
# fastnn activation name -> the ONNX operator applied after the layer's Gemm.
ACTIVATIONS = {"linear": None, "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
               "softmax": "Softmax"}
DTYPES = (np.float32, np.float64)


class UnsupportedModel(ValueError):
    """The model has a layer (or a shape, or a dtype) this graph builder cannot express."""


def available():
    """Whether both onnxruntime and onnx import (importing them when they do)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception:   # a missing or broken install alike: no row, never a crash
        return False
    return True


def version():
    """onnxruntime's version string (for the machine line)."""
    import onnxruntime
    return onnxruntime.__version__


def runs(workload):
    """Whether ONNX Runtime has a row for ``workload``: it is an inference peer, so
    predict workloads only (no training, no token-by-token generation)."""
    return not workload.train and not workload.generate


def dense_layers(model):
    """The model's Dense layers in order, after checking that the ONNX graph can
    express the whole model; raises UnsupportedModel saying what it cannot."""
    if type(model).__name__ != "Sequential":
        raise UnsupportedModel(f"only Sequential models have an ONNX graph here, "
                               f"not {type(model).__name__}")
    shape = tuple(model.input_shape)
    if len(shape) != 2:
        raise UnsupportedModel(f"inputs must be (batch, features) for Gemm, got {shape}")
    dtype = np.dtype(model.dtype)
    if dtype not in DTYPES:
        raise UnsupportedModel(f"dtype {dtype} has no ONNX graph here (float32, float64 do)")
    dense = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind != "Dense":
            raise UnsupportedModel(f"layer {layer.name!r} ({kind}) has no ONNX graph here; "
                                   f"only Dense layers do")
        if layer.activation not in ACTIVATIONS:
            raise UnsupportedModel(f"layer {layer.name!r}: activation {layer.activation!r} "
                                   f"has no ONNX node here (one of {sorted(ACTIVATIONS)})")
        if layer.kernel.value.dtype != dtype:
            raise UnsupportedModel(f"layer {layer.name!r} is {layer.kernel.value.dtype}, "
                                   f"the model {dtype}")
        dense.append(layer)
    if not dense:
        raise UnsupportedModel("the model has no Dense layer")
    return dense


def onnx_model(model):
    """An ``onnx.ModelProto`` computing ``model.predict``: input "x" (batch, features),
    output "y", the current weights as initializers. Raises UnsupportedModel for a
    model it cannot express (see ``dense_layers``)."""
    dense = dense_layers(model)
    import onnx
    from onnx import helper, numpy_helper

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(model.dtype))
    nodes, weights, current = [], [], "x"
    for i, layer in enumerate(dense):
        kernel = numpy_helper.from_array(np.ascontiguousarray(layer.kernel.value), f"kernel_{i}")
        inputs = [current, kernel.name]
        weights.append(kernel)
        if layer.use_bias:
            bias = numpy_helper.from_array(np.ascontiguousarray(layer.bias.value), f"bias_{i}")
            inputs.append(bias.name)
            weights.append(bias)
        op = ACTIVATIONS[layer.activation]
        gemm_out = f"dense_{i}" if op else f"out_{i}"
        nodes.append(helper.make_node("Gemm", inputs, [gemm_out], name=f"{layer.name}_gemm"))
        if op:
            nodes.append(helper.make_node(op, [gemm_out], [f"out_{i}"],
                                          name=f"{layer.name}_{layer.activation}"))
        current = f"out_{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"], name="output"))
    graph = helper.make_graph(
        nodes, "fastnn_dense_stack",
        [helper.make_tensor_value_info("x", elem, ["batch", dense[0].kernel.shape[0]])],
        [helper.make_tensor_value_info("y", elem, ["batch", dense[-1].units])],
        initializer=weights)
    opsets = [helper.make_opsetid("", OPSET)]
    # The oldest IR version that opset needs, not onnx's newest: an older
    # onnxruntime refuses IR versions it does not know.
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="fastnn.bench",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto)
    return proto


def session(proto, threads):
    """An InferenceSession of ``proto`` on the CPU: ``threads`` intra-op threads, one
    inter-op thread (the graph is a chain: nothing runs beside anything)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3          # errors only: keep the table readable
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


class OnnxRunner:
    """``model`` in ONNX Runtime: ``predict()`` runs all of ``x`` in batches of
    ``batch_size``, ``outputs(xb)`` gives what fastnn's predict gives."""

    def __init__(self, model, x, batch_size, threads):
        self.session = session(onnx_model(model), threads)
        self.dtype = np.dtype(model.dtype)
        self.x = np.ascontiguousarray(x, dtype=self.dtype)   # cast once, as fastnn does
        self.batch_size = batch_size

    def outputs(self, xb):
        return self.session.run(["y"], {"x": np.ascontiguousarray(xb, dtype=self.dtype)})[0]

    def predict(self):
        n, b = self.x.shape[0], self.batch_size
        for start in range(0, n, b):
            self.session.run(["y"], {"x": self.x[start:start + b]})


def check_onnx(runner, fastnn_outputs, xb, label):
    """Do ONNX Runtime's outputs for xb match fastnn's NumPy reference (same weights)?"""
    return compare({"outputs": runner.outputs(xb)}, {"outputs": fastnn_outputs},
                   f"{label} {PEER} vs numpy")
