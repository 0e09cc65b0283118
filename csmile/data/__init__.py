"""Reading, checking and augmenting face images.

- :mod:`csmile.data.images`: read files and arrays as grayscale faces,
  normalise them.
- :mod:`csmile.data.datasets`: read labelled folders (SMILEsmileD or any
  two-class folder) and split lists.
- :mod:`csmile.data.summary`: class counts and exact duplicates.
- :mod:`csmile.data.augment`: random augmentation for training.
"""

from .augment import Augmenter
from .datasets import (
    IMAGE_EXTENSIONS,
    SMILESMILED_CLASS_NAMES,
    DatasetError,
    LabelledImages,
    class_order,
    default_data_paths,
    read_dataset,
)
from .images import NORMALIZE_METHODS, ImageError, load_image, normalize, to_faces
from .summary import DatasetSummary, summarize

__all__ = [
    "Augmenter",
    "DatasetError",
    "DatasetSummary",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "LabelledImages",
    "NORMALIZE_METHODS",
    "SMILESMILED_CLASS_NAMES",
    "class_order",
    "default_data_paths",
    "load_image",
    "normalize",
    "read_dataset",
    "summarize",
    "to_faces",
]
