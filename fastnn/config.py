"""show_config(): what this fastnn is running on, and what it hands to NumPy."""
import numpy as np

from fastnn import _runtime
from fastnn._version import __version__


def show_config(mode="stdout"):
    """Print (mode="stdout") or return (mode="dicts") the configuration:
    version, backend, ISA kernel in use and its GEMM blocking (chosen per ISA and
    CPU vendor), OpenMP on/off, threads, whether the oversubscription guard
    may send kernels to one thread on a busy machine
    (``fastnn.set_oversubscription_guard``), and the operations the compiled
    backend hands to NumPy."""
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"show_config: mode must be 'stdout' or 'dicts', got {mode!r}")
    ext = _runtime.extension()
    fallbacks = []
    if ext is not None:
        from fastnn.backend import compiled_ops
        fallbacks = list(compiled_ops.FALLBACKS)
        if _runtime.get_backend() == "compiled":
            from fastnn.backend import get_ops
            get_ops("compiled")    # applies FASTNN_ISA, so the ISA below is the one in use
    config = {
        "version": __version__,
        "backend": _runtime.get_backend(),
        "isa": ext.isa_current() if ext is not None else None,
        "gemm_blocking": ext.gemm_blocking() if ext is not None else None,
        "openmp": bool(ext is not None and ext.openmp_enabled()),
        "threads": _runtime.get_num_threads(),
        "oversubscription_guard": _runtime.get_oversubscription_guard(),
        "fallbacks": fallbacks,
    }
    if mode == "dicts":
        return config
    print(f"fastnn {config['version']}")
    print(f"  backend:   {config['backend']}"
          + ("" if ext is not None else "  (compiled extension not available)"))
    print(f"  isa:       {config['isa'] or 'n/a'}")
    if config["gemm_blocking"] is not None:
        b = config["gemm_blocking"]
        print(f"  gemm:      {b['mr']}x{b['nr']} tiles, blocks MC {b['mc']} KC {b['kc']} "
              f"NC {b['nc']}")
    print(f"  openmp:    {'on' if config['openmp'] else 'off (kernels run single-threaded)'}")
    note = ""
    if ext is not None and not config["openmp"]:
        note = "  (the setting; built without OpenMP, kernels use one)"
    elif _runtime.settings.openmp_pool_lost:
        note = "  (forked after OpenMP started: one thread)"
    print(f"  threads:   {config['threads']}{note}")
    print("  oversubscription guard: "
          + ("on (one thread while other processes hold our cores)"
             if config["oversubscription_guard"] else "off"))
    print(f"  numpy:     {np.__version__}")
    print("  handed to NumPy by the compiled backend: "
          + (", ".join(fallbacks) if fallbacks else "nothing so far"))
    return None
