"""Thread counts of the kernels and of the BLAS library behind NumPy."""

import contextlib
import os

_controller = None


def resolve_n_threads(n_jobs):
    """Return the thread count for ``n_jobs``: itself, else ``OMP_NUM_THREADS``, else all cores."""
    if n_jobs is not None:
        return int(n_jobs)
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_env:
        try:
            value = int(from_env.split(",")[0])
        except ValueError:
            value = 0
        if value >= 1:
            return value
    return os.cpu_count() or 1


@contextlib.contextmanager
def blas_thread_limit(n_threads):
    """Limit NumPy's BLAS to ``n_threads`` threads inside the ``with`` block."""
    global _controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # threadpoolctl is a dependency; tolerate a broken install
        yield
        return
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=n_threads, user_api="blas"):
        yield
