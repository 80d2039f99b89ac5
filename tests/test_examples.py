"""The examples run, as a newcomer would run them, and say what they did."""
import importlib.util
import os
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


def test_transfer_learning():
    out = run_example("transfer_learning.py")
    assert "Non-trainable params" in out and "after fine-tuning all layers" in out


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_saliency_writes_png(tmp_path):
    target = tmp_path / "saliency.png"
    run_example("saliency.py", str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
