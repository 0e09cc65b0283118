"""Convolution, max-pooling and batch-norm kernels, compiled or pure-Python.

Every kernel takes and returns arrays in channels-last layout:

- images: ndarray of shape (n_samples, height, width, n_channels)
- conv weights: ndarray of shape (kernel_size, kernel_size, n_channels, n_filters)
- conv bias: ndarray of shape (n_filters,)
- batch-norm input: ndarray of shape (n_rows, n_channels), one row per pixel

The compiled kernels (``csmile.kernels._conv``, ``_pool`` and ``_norm``,
built from ``src_c/``) are used when they import. Otherwise the pure NumPy
reference in :mod:`csmile.kernels.reference` takes over, with one warning.
The reference has the same signatures and is what the tests hold the compiled
kernels to.
"""

import logging
import warnings

from . import reference

logger = logging.getLogger(__name__)

try:
    from ._conv import conv2d_backward, conv2d_forward
    from ._norm import batchnorm_backward, batchnorm_forward
    from ._pool import maxpool2d_backward, maxpool2d_forward

    _BACKEND = "cython"
except ImportError as error:  # pragma: no cover - exercised only without a build
    warnings.warn(
        f"csmile: the compiled kernels failed to import ({error}); using the "
        "pure-Python reference, which is much slower. Reinstall csmile with "
        "'pip install .' to build them.",
        RuntimeWarning,
        stacklevel=2,
    )
    conv2d_forward = reference.conv2d_forward
    conv2d_backward = reference.conv2d_backward
    maxpool2d_forward = reference.maxpool2d_forward
    maxpool2d_backward = reference.maxpool2d_backward
    batchnorm_forward = reference.batchnorm_forward
    batchnorm_backward = reference.batchnorm_backward
    _BACKEND = "reference"


def backend():
    """Return the name of the active kernels: ``"cython"`` or ``"reference"``."""
    return _BACKEND


__all__ = [
    "backend",
    "batchnorm_forward",
    "batchnorm_backward",
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "reference",
]
