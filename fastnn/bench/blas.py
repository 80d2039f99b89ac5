"""Limit NumPy's OpenBLAS threads without extra packages.

threadpoolctl does this for every BLAS; when it is not installed, this module
covers the common case of NumPy's wheels: an OpenBLAS already loaded in the
process, found in /proc/self/maps and driven through its own
``*openblas_set_num_threads*`` entry point with ctypes.
"""
import ctypes
import functools

import numpy  # noqa: F401  (loads NumPy's BLAS into the process)

# Entry-point prefixes of NumPy's OpenBLAS builds (scipy-openblas adds a prefix
# and, for 64-bit integer builds, a "64_" suffix).
_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "")


@functools.lru_cache(maxsize=1)
def _openblas():
    """(set, get) ctypes functions of the loaded OpenBLAS, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps
                     if "openblas" in line.lower() and ".so" in line.split()[-1]}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    return setter, getter
    return None


def available():
    """Whether NumPy's OpenBLAS was found and can be limited."""
    return _openblas() is not None


def get_threads():
    """OpenBLAS's current thread count (None when not found)."""
    found = _openblas()
    return None if found is None else found[1]()


def set_threads(n):
    """Set OpenBLAS's thread count; returns whether it was found."""
    found = _openblas()
    if found is None:
        return False
    found[0](int(n))
    return True
