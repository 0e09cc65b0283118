"""Build the compiled kernels of csmile.

The Cython sources in ``src_c/`` become extension modules inside
``csmile.kernels``. OpenMP is used when a small test program compiles and
links with it. Otherwise the kernels are built single-threaded, with a
warning. Set ``CSMILE_BOUNDSCHECK=1`` to build with bounds and wraparound
checks turned back on, which helps to hunt a crash.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_MODULES = ["_conv", "_pool", "_norm"]

OPENMP_TEST_PROGRAM = """
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
}
"""


def compiler_supports_openmp(compiler_command):
    """Return True when ``compiler_command -fopenmp`` builds a test program."""
    if not compiler_command or shutil.which(compiler_command[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp_dir:
        source = os.path.join(tmp_dir, "test_openmp.c")
        binary = os.path.join(tmp_dir, "test_openmp")
        with open(source, "w") as handle:
            handle.write(OPENMP_TEST_PROGRAM)
        command = [*compiler_command, "-fopenmp", source, "-o", binary]
        try:
            result = subprocess.run(command, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0


class BuildExtWithOpenMP(build_ext):
    """Add OpenMP flags to every extension when the compiler supports them."""

    def build_extensions(self):
        use_openmp = False
        if os.environ.get("CSMILE_NO_OPENMP", "") != "1" and self.compiler.compiler_type == "unix":
            use_openmp = compiler_supports_openmp(self.compiler.compiler_so[:1])
        if not use_openmp:
            warnings.warn(
                "csmile: the C compiler has no OpenMP support, so the kernels are "
                "built single-threaded (n_threads has no effect).",
                stacklevel=1,
            )
        for extension in self.extensions:
            if use_openmp:
                extension.extra_compile_args.append("-fopenmp")
                extension.extra_link_args.append("-fopenmp")
        super().build_extensions()


def make_extensions():
    boundscheck = os.environ.get("CSMILE_BOUNDSCHECK", "") == "1"
    directives = {
        "language_level": 3,
        "boundscheck": boundscheck,
        "wraparound": boundscheck,
        "initializedcheck": boundscheck,
        "cdivision": True,
        "nonecheck": False,
    }
    compile_args = ["-O3"] if sys.platform != "win32" else ["/O2"]
    extensions = [
        Extension(
            f"csmile.kernels.{name}",
            [f"src_c/{name}.pyx"],
            include_dirs=[np.get_include(), "src_c"],
            depends=["src_c/_checks.pxd", "src_c/_conv_simd.h", "src_c/_pool_simd.h"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=list(compile_args),
            extra_link_args=[],
        )
        for name in KERNEL_MODULES
    ]
    return cythonize(extensions, compiler_directives=directives, include_path=["src_c"])


setup(ext_modules=make_extensions(), cmdclass={"build_ext": BuildExtWithOpenMP})
