"""W1 and W2 training steps and W1 predict (workloads.md), compiled vs NumPy.

Each model is built from the same seed on every backend; before timing, the
backend's first step is checked against NumPy's (outputs, loss, gradients and
weights after one step) with fastnn.bench's own check.
"""
import numpy as np
import pytest

import fastnn
from fastnn.bench.checks import check_model, first_batch
from fastnn.bench.workloads import WORKLOADS

SEED = 1234
N_PREDICT = 8192


def _model_and_data(name, backend, n):
    workload = WORKLOADS[name]
    x, y = workload.make_data(n, np.random.default_rng(SEED))
    if backend != "numpy":
        result = check_model(workload, backend, x, y, SEED)
        assert result.ok, result.message
    fastnn.set_seed(SEED)
    return workload, workload.build(), x, y


@pytest.mark.parametrize("name", ["W1", "W2"])
def test_train_step(benchmark, backend, ops, threads, record_rate, name):
    workload, model, x, y = _model_and_data(name, backend, WORKLOADS[name].batch_size)
    xb, yb = first_batch(workload, x, y)
    benchmark.group = f"{name} train_on_batch {threads}t"
    benchmark(model.train_on_batch, xb, yb)
    record_rate(xb.shape[0], "samples/s")


def test_w1_predict(benchmark, backend, ops, threads, record_rate):
    workload, model, x, _ = _model_and_data("W1-infer", backend, N_PREDICT)
    benchmark.group = f"W1 predict {threads}t"
    benchmark(model.predict, x, batch_size=workload.batch_size, verbose=0)
    record_rate(x.shape[0], "samples/s")
