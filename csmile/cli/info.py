"""The ``csmile summarize`` and ``csmile info`` commands."""

import platform
from importlib import resources

import numpy as np

from .. import __version__
from .common import EXIT_OK, _read_data


def _command_summarize(args):
    from ..data import summarize

    dataset = _read_data(args, size=64)
    print(summarize(dataset).to_text())
    return EXIT_OK


def _openmp_status():
    """Describe the OpenMP support of the kernels: an explicit flag, else the runtime loaded."""
    from .. import kernels

    for name in ("openmp_enabled", "has_openmp"):
        flag = getattr(kernels, name, None)
        if flag is not None:
            enabled = flag() if callable(flag) else flag
            return "yes" if enabled else "no (kernels built single-threaded)"
    if kernels.backend() != "cython":
        return "no (pure-Python kernels)"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    # NOTE: a runtime loaded by another extension would also be listed here, so
    # this shows that OpenMP is present in the process, not that the kernels use it.
    runtimes = sorted({pool["prefix"] for pool in threadpool_info() if pool.get("user_api") == "openmp"})
    if runtimes:
        return f"runtime loaded ({', '.join(runtimes)})"
    return "no runtime loaded (kernels probably built single-threaded)"


def _optional_package_version(name):
    try:
        module = __import__(name)
    except ImportError:
        return "not installed"
    return getattr(module, "__version__", "installed")


def _command_info(args):
    from .. import kernels
    from ..estimator import PRETRAINED_RESOURCE
    from ..threads import resolve_n_threads

    model_path = resources.files("csmile") / "pretrained" / PRETRAINED_RESOURCE
    model_state = "" if model_path.is_file() else " (missing)"
    backend = kernels.backend()
    if backend == "reference":
        backend += " (compiled kernels not built; slow)"
    lines = [
        f"csmile      {__version__}",
        f"kernels     {backend}",
        f"OpenMP      {_openmp_status()}",
        f"threads     {resolve_n_threads(None)} (OMP_NUM_THREADS if set, else all cores)",
        f"model       {model_path}{model_state}",
        f"python      {platform.python_version()}",
        f"numpy       {np.__version__}",
        f"matplotlib  {_optional_package_version('matplotlib')}",
        f"opencv      {_optional_package_version('cv2')}",
    ]
    print("\n".join(lines))
    return EXIT_OK
