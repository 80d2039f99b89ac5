"""What the benchmark ran on: fastnn's build, the CPU, NumPy and its BLAS."""
import importlib.util
import os
import platform
import warnings

import numpy as np

from fastnn._version import __version__
from fastnn.bench.timing import can_limit_blas, compiled_import_error, machine_cores

# Environment variables that change what the rows measure, reported when set
# (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, for one, can slow a current NumPy down).
ENV_PREFIXES = ("OPENBLAS_", "FASTNN_")
ENV_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")


def machine_info(peers=False):
    """A dict describing fastnn, the CPU, NumPy and its BLAS (and, with ``peers``,
    the installed peer frameworks' versions: this imports them), for the report."""
    return {
        "fastnn": __version__,
        "compiled": _compiled_info(),
        "cpu": _cpu_name(),
        "cores": machine_cores(),
        "caches": cache_sizes(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas_info(),
        "blas_limited": can_limit_blas(),
        "env": {name: value for name, value in sorted(os.environ.items())
                if name in ENV_VARS or name.startswith(ENV_PREFIXES)},
        "peers": _peer_versions() if peers else {},
        "fma_peak_gflops": _fma_peak(),
    }


def machine_line(info):
    """``machine_info()`` as the one line printed above the table."""
    compiled = info["compiled"]
    if compiled["available"]:
        blocking = compiled.get("gemm_blocking")
        gemm = (f"gemm {blocking['mr']}x{blocking['nr']} MC {blocking['mc']} KC "
                f"{blocking['kc']} NC {blocking['nc']}, " if blocking else "")
        fastnn_part = (f"fastnn {info['fastnn']} (compiled: isa {compiled['isa']}, {gemm}"
                       f"OpenMP {'on' if compiled['openmp'] else 'OFF'}"
                       + (f"; {compiled['error']})" if compiled["error"] else ")"))
    else:
        fastnn_part = (f"fastnn {info['fastnn']} "
                       f"(compiled backend NOT available: {compiled['error']})")
    blas = info["blas"]
    blas_part = f"BLAS {blas['name']} {blas['version'] or ''}".rstrip()
    if blas.get("detail"):
        blas_part += f" [{blas['detail']}]"
    if not info["blas_limited"]:
        blas_part += " (NumPy's BLAS threads could NOT be limited: install threadpoolctl)"
    cpu = f"{info['cpu']}, {info['cores']} cores"
    if info.get("caches"):
        cpu += ", " + " / ".join(f"{name} {_kib(size)}" for name, size in info["caches"].items())
    if info.get("fma_peak_gflops"):
        cpu += f" (float32 FMA peak {info['fma_peak_gflops']:.0f} GFLOP/s a core, measured)"
    parts = [fastnn_part, cpu,
             f"Python {info['python']}", f"numpy {info['numpy']}", blas_part]
    parts += [f"{name} {version}" for name, version in info["peers"].items()]
    parts += [f"{k}={v}" for k, v in info["env"].items()]
    return " | ".join(parts)


def _fma_peak():
    """One core's float32 FMA peak in GFLOP/s (a register-only FMA loop on the ISA
    in force, csrc/peak.c), or None without the compiled extension."""
    if compiled_import_error() is not None:
        return None
    from fastnn._ext import _core
    return round(_core.fma_peak_gflops(1, 0.25), 1)


def _compiled_info():
    error = compiled_import_error()
    if error is not None:
        return {"available": False, "error": error, "isa": None, "openmp": False}
    try:
        from fastnn.config import show_config
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = show_config(mode="dicts")
    except Exception as exc:   # report, don't hide the rest of the machine line
        return {"available": True, "error": f"show_config failed: {exc}", "isa": None,
                "openmp": False}
    return {"available": True, "error": None, "isa": config["isa"],
            "gemm_blocking": config["gemm_blocking"], "openmp": bool(config["openmp"])}


def _peer_versions():
    from fastnn.bench import onnx_peer
    from fastnn.bench.peers import torch_available
    versions = {}
    if torch_available():
        import torch
        versions["torch"] = torch.__version__
    if onnx_peer.available():
        versions[onnx_peer.PEER] = onnx_peer.version()
    return versions


def cache_sizes(root="/sys/devices/system/cpu/cpu0/cache"):
    """{"L1d": bytes, "L2": bytes, "L3": bytes} of the first CPU as Linux's sysfs
    reports them (data and unified caches; L3 is shared); {} where it does not."""
    sizes = {}
    try:
        entries = sorted(e for e in os.listdir(root) if e.startswith("index"))
    except OSError:
        return sizes
    for entry in entries:
        try:
            level = _read(root, entry, "level")
            kind = _read(root, entry, "type")
            size = _read(root, entry, "size")
        except OSError:
            continue
        if kind == "Instruction" or not size[:-1].isdigit():
            continue
        scale = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size[-1])
        if scale is None:
            continue
        sizes[f"L{level}d" if level == "1" else f"L{level}"] = int(size[:-1]) * scale
    return sizes


def _read(root, entry, name):
    with open(os.path.join(root, entry, name), encoding="ascii") as f:
        return f.read().strip()


def _kib(size):
    return f"{size // 1024 ** 2} MiB" if size >= 4 * 1024 ** 2 else f"{size // 1024} KiB"


def _cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_info():
    """NumPy's BLAS: from threadpoolctl when installed (what is loaded), else from
    numpy.show_config(mode="dicts") (what NumPy was built against)."""
    if importlib.util.find_spec("threadpoolctl") is not None:
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                detail = ", ".join(f"{k} {lib[k]}" for k in ("architecture", "threading_layer",
                                                              "num_threads") if lib.get(k))
                return {"name": lib.get("internal_api", "?"), "version": lib.get("version"),
                        "detail": detail, "source": "threadpoolctl"}
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:   # very old NumPy, or a build without the dict
        return {"name": "unknown", "version": None, "detail": "", "source": None}
    return {"name": deps.get("name", "?"), "version": deps.get("version"), "detail": "",
            "source": "numpy.show_config"}
