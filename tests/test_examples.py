"""The examples run, as a newcomer would run them, and say what they did."""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="needs the source tree")


def run_example(name, *args):
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=EXAMPLES,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart():
    out = run_example("quickstart.py")
    assert "Epoch 10/10" in out and "test mse" in out


def test_cnn_digits():
    out = run_example("cnn_digits.py")
    assert "Conv2D" in out and "test accuracy" in out
    if importlib.util.find_spec("sklearn") is not None:
        accuracy = float(out.split("test accuracy")[1].split()[0])
        assert accuracy >= 0.97, out[-2000:]


def test_keras_convnet_runs_with_import_fastnn_as_keras():
    out = run_example("keras_convnet.py")
    accuracy = float(out.split("Test accuracy:")[1].split()[0])
    assert "MaxPooling2D" in out and accuracy > 0.8


def test_sequence_sine():
    out = run_example("sequence_sine.py")
    assert "Epoch 8/8" in out and "repeating the last reading" in out
    found = re.search(r"test mse ([0-9.]+) .* gives mse ([0-9.]+)", out)
    assert found, out[-2000:]
    assert float(found.group(1)) < 0.5 * float(found.group(2))     # beats the naive guess


def test_transfer_learning():
    out = run_example("transfer_learning.py")
    assert "Non-trainable params" in out and "after fine-tuning all layers" in out


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_saliency_writes_png(tmp_path):
    target = tmp_path / "saliency.png"
    run_example("saliency.py", str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_functional_api_guide_models_train():
    out = run_example("functional_api.py")
    assert "Connected to" in out and "add_1 (Add)" in out
    assert float(out.split("toy ResNet test accuracy")[1].split()[0]) > 0.8
    found = re.search(r"ticket model loss ([0-9.]+) -> ([0-9.]+)", out)
    assert found and float(found.group(2)) < float(found.group(1)), out[-2000:]


def _epoch_losses(out):
    return [float(v) for v in re.findall(r"Epoch \d+/\d+ .* loss: ([0-9.e+-]+)", out)]


def test_mini_gpt_learns_and_generates_with_a_kv_cache():
    out = run_example("mini_gpt.py", "--quick")
    losses = _epoch_losses(out)
    assert len(losses) >= 2 and losses[-1] < losses[0], out[-2000:]
    assert "held-out problems answered exactly" in out and "characters/s generated" in out


def test_keras_io_transformer_text_classifier_runs_with_import_fastnn_as_keras():
    out = run_example("text_classifier_transformer.py", "--quick")
    assert "transformer_block (TransformerBlock)" in out
    losses = _epoch_losses(out)
    assert len(losses) == 2 and losses[-1] < losses[0], out[-2000:]
    assert "validation accuracy" in out
