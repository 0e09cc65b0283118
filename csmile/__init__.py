"""csmile: tell whether a face is smiling, with a small CNN on compiled kernels.

>>> from csmile import SmileNet
>>> model = SmileNet.pretrained()
>>> model.predict_proba(faces)  # doctest: +SKIP
"""

from ._version import __version__
from .estimator import NotFittedError, SmileNet, load
from .kernels import backend
from .serialization import ModelFileError

__all__ = ["ModelFileError", "NotFittedError", "SmileNet", "__version__", "backend", "load"]
