"""The source distribution ships everything a build needs."""
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source tree")
def test_sdist_ships_c_sources_headers_and_cython(tmp_path):
    pytest.importorskip("Cython")
    result = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (archive,) = tmp_path.glob("fastnn-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in tar.getnames()}
    expected = {p.relative_to(ROOT).as_posix()
                for pattern in ("csrc/*.c", "csrc/*.h", "csrc/kernels/*.c",
                                "fastnn/_ext/*.pyx", "fastnn/_ext/*.pxd", "fastnn/_ext/*.pxi")
                for p in ROOT.glob(pattern)}
    assert expected and expected <= names, sorted(expected - names)
    assert {"pyproject.toml", "setup.py", "README.md"} <= names


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_every_subpackage_is_installed():
    """A package folder missing from pyproject's list installs nowhere but an editable checkout."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"fastnn"} | {"fastnn." + init.parent.name for init in (ROOT / "fastnn").glob("*/__init__.py")}
    assert found == listed, {"unlisted": sorted(found - listed), "missing": sorted(listed - found)}
