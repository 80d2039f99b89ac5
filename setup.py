"""Build fastnn's compiled backend.

csrc/ is plain C11. Each file is compiled once, with its own flags: ISA flags
(AVX2+FMA, AVX-512) go only on the micro-kernel files named *_avx2.c and
*_avx512.c, whose functions are called only after a run-time CPU check. The
objects are linked into the one extension module, fastnn._ext._core, so there
is one kernel table and one copy of every piece of C state.

OpenMP is detected by compiling, linking and running a probe. Without it the
build still succeeds, serial, with a warning; fastnn.show_config() reports it.
The serial build keeps `-fopenmp-simd`, so `#pragma omp simd` loops still
vectorise. FASTNN_DISABLE_OPENMP=1 builds serial on purpose (CI tests that
build). FASTNN_SANITIZE=1 builds for AddressSanitizer and UndefinedBehavior-
Sanitizer (-O1 -g, every report fatal); .ci/sanitize shows how to run it.

The built module is also copied into the source tree, so that the checkout's
own `fastnn/` (which `python -m ...` run from the checkout imports first) is
as complete as the installed package.
"""
import os
import platform
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"

# -ffp-contract=off on every file: no FMA is formed from a * b + c (GCC's ISO
# C mode does that already; clang's default contracts). The code relies on it
# wherever one expression must give the same bits wherever it is compiled:
# the activation, exp and layer-norm loops built once per ISA (act_loops*.h,
# vact.h, vexp.*, layernorm_rows*.h and their twins kernels/act_*, vexp_*,
# layernorm_*: every ISA's build gives the same bits), and the element-wise,
# loss and RNN-gate code (elementwise.c, loss.c, rnn.c with act_scalar.h),
# where one value is computed by more than one loop (a cached and an uncached
# path; a gate and the activation kernel; NumPy, where a test compares bit for
# bit) and every loop must round alike. GEMM's and attention's micro-kernels
# use FMA intrinsics, whatever this flag says: their results may differ
# between ISA paths (GEMM's also between blockings), never between thread
# counts, because threads split the outputs, never a sum.
BASE_FLAGS = ["-std=c11", "-ffp-contract=off", "-fPIC", "-fno-math-errno", "-Wall",
              "-Wno-unused-function"]
OPTIMIZE_FLAGS = ["-O3"]
# FASTNN_SANITIZE=1: ASan + UBSan, every report fatal (-fno-sanitize-recover),
# -O1 -g so a report's stack names the lines. Cython's module gets them too.
SANITIZE = bool(os.environ.get("FASTNN_SANITIZE"))
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer"]
if SANITIZE:
    OPTIMIZE_FLAGS = ["-O1", "-g"] + SANITIZE_FLAGS
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
ISA_FLAGS = {
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
}

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel num_threads(2) reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n == 2 ? 0 : 1;
}
"""


def openmp_flags(compiler_cmd):
    """Return the compile/link flags that give working OpenMP, or [] if none do."""
    if os.environ.get("FASTNN_DISABLE_OPENMP"):
        return []
    candidates = [["-fopenmp"], ["-Xpreprocessor", "-fopenmp", "-lomp"]]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        exe = Path(tmp) / "probe"
        src.write_text(OPENMP_PROBE)
        for flags in candidates:
            cmd = [*compiler_cmd, str(src), "-o", str(exe), *flags]
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=120)
                subprocess.run([str(exe)], check=True, capture_output=True, timeout=60)
            except (OSError, subprocess.SubprocessError):
                continue
            return flags
    return []


def serial_simd_flags(compiler_cmd):
    """The serial build's flags: -fopenmp-simd if the compiler takes it (then
    `omp simd` loops still vectorise without OpenMP), and no warning for the
    other `omp` pragmas, which a serial build ignores on purpose."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "simd.c"
        src.write_text("int main(void) { return 0; }\n")
        cmd = [*compiler_cmd, "-fopenmp-simd", "-c", str(src), "-o", str(Path(tmp) / "simd.o")]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return ["-Wno-unknown-pragmas"]
    return ["-fopenmp-simd", "-Wno-unknown-pragmas"]


def isa_of(path):
    """The ISA a csrc file is written for, from its name (gemm_avx512.c -> avx512)."""
    stem = Path(path).stem
    for isa in ISA_FLAGS:
        if stem.endswith("_" + isa):
            return isa
    return None


class BuildExt(build_ext):
    """Compile csrc/ once with per-file flags, then link it into the extension."""

    def build_extensions(self):
        cc = self.compiler.compiler_so[:1]
        omp = openmp_flags(cc)
        if not omp:
            warnings.warn(
                "fastnn: building a serial extension (FASTNN_DISABLE_OPENMP is set)"
                if os.environ.get("FASTNN_DISABLE_OPENMP") else
                "fastnn: the C compiler has no working OpenMP; building a serial "
                "extension (fastnn.show_config() will say so)."
            )
        compile_omp = [f for f in omp if f != "-lomp"] or serial_simd_flags(cc)
        link_omp = [f for f in omp if f != "-Xpreprocessor"]
        link_sanitize = SANITIZE_FLAGS[:1] if SANITIZE else []

        sources = sorted(CSRC.glob("*.c")) + sorted(CSRC.glob("kernels/*.c"))
        if not IS_X86_64:  # x86 micro-kernels are not built elsewhere; the table keeps generic
            sources = [src for src in sources if not isa_of(src)]
        macros = [("FNN_HAVE_X86_KERNELS", "1")] if IS_X86_64 else []

        def compile_one(src):
            isa = isa_of(src)
            return self.compiler.compile(
                [str(src.relative_to(ROOT))],
                output_dir=self.build_temp,
                include_dirs=[str(CSRC)],
                extra_postargs=OPTIMIZE_FLAGS + BASE_FLAGS + compile_omp
                + (ISA_FLAGS[isa] if isa else []),
                macros=macros,
            )

        # One compiler process per core: the files are independent.
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        with ThreadPoolExecutor(max_workers=max(1, jobs or 1)) as pool:
            objects = [obj for objs in pool.map(compile_one, sources) for obj in objs]
        headers = sorted(str(p.relative_to(ROOT)) for p in CSRC.glob("*.h"))
        for ext in self.extensions:
            # relink whenever a C source or header changed, not only a .pyx/.pxi
            ext.depends = list(ext.depends or []) + [str(src.relative_to(ROOT)) for src in sources] \
                + headers + [str(p.relative_to(ROOT)) for p in (ROOT / "fastnn" / "_ext").glob("*.p*")]
            ext.extra_objects = objects + list(ext.extra_objects or [])
            ext.extra_compile_args = list(ext.extra_compile_args or []) + compile_omp \
                + (SANITIZE_FLAGS + ["-O1", "-g"] if SANITIZE else [])
            ext.extra_link_args = list(ext.extra_link_args or []) + link_omp + link_sanitize
        super().build_extensions()
        if not self.inplace:
            # `python -m fastnn.bench` run from the checkout imports this source
            # tree before the installed copy: give it the same compiled module.
            self.copy_extensions_to_source()


extensions = [
    Extension(
        "fastnn._ext._core",
        sources=["fastnn/_ext/_core.pyx"],
        include_dirs=[str(CSRC.relative_to(ROOT)), numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O2"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
