"""Find faces in photos and crop them like the SMILEsmileD training faces.

Detection uses the frontal-face Haar cascade that OpenCV 4 ships with its
Python wheels (``cv2.data.haarcascades``). OpenCV is optional: install it with
``pip install "csmile[faces]"``. OpenCV 5 removed ``CascadeClassifier`` and
the cascade files from its main module, so these functions need OpenCV 4.x
(tested with opencv-python-headless 4.14).
"""

import logging
import os

import numpy as np
from PIL import Image

from .data.images import _array_to_gray, load_image, pil_to_gray, resize_gray_uint8

__all__ = ["detect_faces", "crop_faces", "DEFAULT_MARGIN", "DEFAULT_SHIFT_DOWN"]

logger = logging.getLogger(__name__)

CASCADE_FILE = "haarcascade_frontalface_default.xml"

INSTALL_HINT = 'pip install "csmile[faces]" (OpenCV 4.x, for example "opencv-python-headless>=4.5,<5")'

# SMILEsmileD faces (LFWcrop) run from the eyebrows to the chin. Pasted into a
# larger canvas at 128 and 192 pixels, 129 of 160 sample faces were found,
# with a cascade box 1.27 times the side of the face sample (std 0.17) and
# centred 0.09 sample sides above it. A crop of 0.8 box widths moved down by
# 0.07 box widths matches the training framing. NOTE: measured on synthetic
# canvases, not on camera photos, where the cascade box may differ.
DEFAULT_MARGIN = -0.1
DEFAULT_SHIFT_DOWN = 0.07

_cascade = None


def _load_cascade():
    """Return the cached OpenCV cascade, loading it on the first call."""
    global _cascade
    if _cascade is not None:
        return _cascade
    try:
        import cv2
    except ImportError as error:
        raise ImportError(f"face detection needs OpenCV, which failed to import ({error}); {INSTALL_HINT}") from error
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise ImportError(
            f"face detection needs OpenCV 4.x with its Haar cascades, but OpenCV {cv2.__version__} "
            f"has no CascadeClassifier; {INSTALL_HINT}"
        )
    cascade_path = os.path.join(cv2.data.haarcascades, CASCADE_FILE)
    cascade = cv2.CascadeClassifier(cascade_path)
    if cascade.empty():
        raise ImportError(f"OpenCV failed to load its face cascade '{cascade_path}'; reinstall it: {INSTALL_HINT}")
    _cascade = cascade
    return cascade


def _to_gray_uint8(image):
    """Return a photo given as a path, PIL image or array as a uint8 (height, width) array."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return pil_to_gray(image)
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(
                f"expected one image of shape (height, width) or (height, width, 3 or 4), got shape {image.shape}"
            )
        gray = _array_to_gray(image[None], batch=True)[0]
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    raise TypeError(f"expected a file path, a PIL image or a numpy array, got {type(image).__name__}")


def detect_faces(image, min_size=24, scale_factor=1.1, min_neighbors=5):
    """Find frontal faces in a photo.

    Parameters
    ----------
    image : str, os.PathLike, PIL.Image.Image or ndarray
        The photo: a file path, a PIL image, or an array of shape
        (height, width) or (height, width, 3 or 4) with RGB(A) channels.
    min_size : int, default=24
        Smallest face side to report, in pixels.
    scale_factor : float, default=1.1
        Ratio between successive scales of the cascade search. Values closer
        to 1 find more faces and run slower.
    min_neighbors : int, default=5
        Overlapping detections needed to keep a face. Larger values report
        fewer false faces.

    Returns
    -------
    boxes : list of (x, y, w, h) tuples of int
        Face boxes in pixels, largest first.

    Raises
    ------
    ImportError
        If OpenCV 4.x is not installed.

    Examples
    --------
    >>> from csmile.faces import detect_faces
    >>> detect_faces("group_photo.jpg")  # doctest: +SKIP
    [(412, 120, 96, 96), (130, 140, 80, 80)]
    """
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size must be a positive integer number of pixels, got {min_size!r}")
    if not scale_factor > 1.0:
        raise ValueError(f"scale_factor must be greater than 1, got {scale_factor!r}")
    if isinstance(min_neighbors, bool) or not isinstance(min_neighbors, (int, np.integer)) or min_neighbors < 0:
        raise ValueError(f"min_neighbors must be a non-negative integer, got {min_neighbors!r}")
    cascade = _load_cascade()
    gray = _to_gray_uint8(image)
    found = cascade.detectMultiScale(
        np.ascontiguousarray(gray),
        scaleFactor=float(scale_factor),
        minNeighbors=int(min_neighbors),
        minSize=(int(min_size), int(min_size)),
    )
    boxes = [tuple(int(value) for value in box) for box in np.reshape(found, (-1, 4))]
    boxes.sort(key=lambda box: box[2] * box[3], reverse=True)
    logger.debug("found %d faces", len(boxes))
    return boxes


def crop_faces(image, size=64, margin=DEFAULT_MARGIN, shift_down=DEFAULT_SHIFT_DOWN, **detect_options):
    """Detect faces in a photo and crop them like SMILEsmileD faces.

    Parameters
    ----------
    image : str, os.PathLike, PIL.Image.Image or ndarray
        The photo, as for :func:`detect_faces`.
    size : int, default=64
        Side of each returned crop, in pixels.
    margin : float, default=-0.1
        Fraction of the detected box width added on each side; a negative
        value crops inside the box. The default gives a crop of 0.8 box
        widths, which frames the face from the eyebrows to the chin.
    shift_down : float, default=0.07
        Downward move of the crop centre, as a fraction of the box width.
    **detect_options
        Passed to :func:`detect_faces` (``min_size``, ``scale_factor``,
        ``min_neighbors``).

    Returns
    -------
    faces : list of ndarray of shape (size, size), dtype uint8
        Grayscale crops, largest face first. Parts of a crop outside the
        photo repeat its edge pixels.

    Examples
    --------
    >>> from csmile.faces import crop_faces
    >>> faces = crop_faces("group_photo.jpg")  # doctest: +SKIP
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if not -0.5 < margin:
        raise ValueError(f"margin must be greater than -0.5 (a crop of zero width), got {margin!r}")
    gray = _to_gray_uint8(image)
    crops = []
    for x, y, width, height in detect_faces(gray, **detect_options):
        side = max(1, int(round(width * (1.0 + 2.0 * margin))))
        centre_x = x + width / 2.0
        centre_y = y + height / 2.0 + shift_down * width
        left = int(round(centre_x - side / 2.0))
        top = int(round(centre_y - side / 2.0))
        crops.append(resize_gray_uint8(_crop_replicating_edges(gray, left, top, side), int(size)))
    return crops


def _crop_replicating_edges(gray, left, top, side):
    """Return gray[top:top+side, left:left+side], repeating edge pixels outside the image."""
    height, width = gray.shape
    rows = np.clip(np.arange(top, top + side), 0, height - 1)
    columns = np.clip(np.arange(left, left + side), 0, width - 1)
    return gray[np.ix_(rows, columns)]
