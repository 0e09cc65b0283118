"""Read images as grayscale faces and normalise them.

Every face in csmile is a grayscale image on the 0..255 scale. The functions
here turn files, PIL images and arrays into that form:

- :func:`load_image` reads one file as a ``uint8`` array of shape
  (height, width).
- :func:`to_faces` turns a batch of images of any supported kind into a
  ``float32`` array of shape (n_samples, size, size).
- :func:`normalize` rescales each face on its own, so that the brightness and
  contrast of the camera do not reach the network.

Colour is converted to gray with the ITU-R 601-2 luma weights
(0.299 R + 0.587 G + 0.114 B), the same weights that Pillow's ``convert("L")``
uses, so a file and the array of its pixels give the same face.
"""

import os

import numpy as np
from PIL import Image, ImageOps

__all__ = ["ImageError", "load_image", "to_faces", "normalize", "NORMALIZE_METHODS"]

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

NORMALIZE_METHODS = ("standardize", "minmax", "none")

# A standard deviation or value range below one gray level is treated as one
# gray level, so a flat image maps to values near 0 instead of amplified noise.
MIN_SPREAD = 1.0

_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_HIGH_DEPTH_MODES = {"I", "F"}


class ImageError(ValueError):
    """A file that exists but cannot be read as an image."""


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------


def load_image(path):
    """Read an image file as a grayscale ``uint8`` array.

    Parameters
    ----------
    path : str or os.PathLike
        Any format Pillow reads (JPEG, PNG, BMP, GIF, TIFF, WebP, PGM...).
        Only the first frame of an animated or multi-page file is read.

    Returns
    -------
    image : ndarray of shape (height, width), dtype uint8
        The EXIF orientation is applied. Colour is converted with the
        ITU-R 601-2 luma weights, transparent pixels are composited on white,
        and 16-bit or floating-point images are scaled to 0..255 (see Notes).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    ImageError
        If the file is not an image, is truncated or cannot be decoded.

    Notes
    -----
    Modes ``"I;16"`` and its byte-order variants are divided by 257, which maps
    0..65535 onto 0..255. Mode ``"I"`` (32-bit integers, also used by Pillow
    for some 16-bit PNG files) is kept as it is when its values fit 0..255,
    divided by 257 when they fit 0..65535, and stretched from its minimum to
    its maximum otherwise. Mode ``"F"`` is multiplied by 255 when its values
    fit 0..1, kept when they fit 0..255 and stretched otherwise.

    Examples
    --------
    >>> from csmile.data import load_image
    >>> image = load_image("face.jpg")  # doctest: +SKIP
    >>> image.shape, image.dtype  # doctest: +SKIP
    ((64, 64), dtype('uint8'))
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"expected an image file, got the folder '{path}'; pass a file inside it")
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file not found: '{path}'; check the path")
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_gray(image)
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageError(
            f"cannot read '{path}' as an image ({error}); check that the file is a "
            "complete image in a format Pillow reads, or remove it"
        ) from error


def pil_to_gray(image):
    """Convert a PIL image to a grayscale ``uint8`` array (see :func:`load_image`)."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode

    if mode.startswith("I;16"):
        pixels = np.asarray(image, dtype=np.float32) / 257.0
        return _round_to_uint8(pixels)
    if mode in _HIGH_DEPTH_MODES:
        return _round_to_uint8(_scale_high_depth(np.asarray(image, dtype=np.float64), mode))

    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("L"))
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"))
    if mode == "LAB":
        # The first band is the lightness L*, already scaled to 0..255.
        return np.asarray(image.getchannel(0))
    return np.asarray(image.convert("RGB").convert("L"))


def _scale_high_depth(pixels, mode):
    if pixels.size == 0:
        return pixels
    if not np.all(np.isfinite(pixels)):
        raise ValueError("the image contains NaN or infinite values")
    low, high = float(pixels.min()), float(pixels.max())
    if mode == "F" and low >= 0.0 and high <= 1.0:
        return pixels * 255.0
    if low >= 0.0 and high <= 255.0:
        return pixels
    if mode == "I" and low >= 0.0 and high <= 65535.0:
        return pixels / 257.0
    if high == low:
        return np.zeros_like(pixels)
    return (pixels - low) * (255.0 / (high - low))


def _round_to_uint8(pixels):
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Batches of faces
# ---------------------------------------------------------------------------


def to_faces(X, size=64):
    """Convert a batch of images to grayscale faces of shape (size, size).

    Parameters
    ----------
    X : array-like or list
        One of:

        - ndarray of shape (n_samples, height, width): grayscale images.
        - ndarray of shape (n_samples, height, width, 3) or
          (n_samples, height, width, 4): RGB or RGBA images, converted with
          the ITU-R 601-2 luma weights. Transparent pixels are composited
          on white. A last axis of length 1 is dropped.
        - list or tuple whose items are file paths (str or os.PathLike),
          PIL images or 2-D/3-D arrays as above, mixed freely.

        Integer and boolean arrays must hold values in 0..255 (``True`` is
        255). A floating-point array whose maximum is at most 1.0 is taken to
        be on the 0..1 scale and multiplied by 255. This rule applies to the
        whole array at once, not per image. Otherwise floating-point values
        must lie in 0..255.
    size : int, default=64
        Side of the square output faces, in pixels.

    Returns
    -------
    faces : ndarray of shape (n_samples, size, size), dtype float32
        Values on the 0..255 scale, not normalised (see :func:`normalize`).
        A non-square image is cropped to its centred square before resizing.
        Resizing uses Pillow's bilinear filter, which widens to an area
        average when shrinking.

    Raises
    ------
    ValueError
        For an empty batch, a single 2-D image, a wrong number of
        dimensions, NaN or infinite values, or values outside 0..255.
    TypeError
        For an object or non-numeric array, or an item of an unknown type.
    ImageError, FileNotFoundError
        For a path that cannot be read.

    Examples
    --------
    >>> import numpy as np
    >>> from csmile.data import to_faces
    >>> to_faces(np.zeros((2, 100, 80), dtype=np.uint8), size=64).shape
    (2, 64, 64)
    """
    size = _check_size(size)
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("expected at least one image, got an empty list; pass one or more images")
        faces = np.empty((len(X), size, size), dtype=np.float32)
        for index, item in enumerate(X):
            faces[index] = _item_to_face(item, index, size)
        return faces

    if isinstance(X, (str, os.PathLike, Image.Image)):
        raise TypeError(
            f"expected a batch of images, got a single {type(X).__name__}; wrap it in a list: to_faces([image])"
        )
    gray = _array_to_gray(X, batch=True)
    return _resize_batch(gray, size)


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def _item_to_face(item, index, size):
    if isinstance(item, (str, os.PathLike)):
        gray = load_image(item).astype(np.float32)
    elif isinstance(item, Image.Image):
        gray = pil_to_gray(item).astype(np.float32)
    elif isinstance(item, np.ndarray):
        if item.ndim not in (2, 3):
            raise ValueError(
                f"item {index} of the list has shape {item.shape}; each array item must be one "
                "image of shape (height, width) or (height, width, 3 or 4)"
            )
        try:
            gray = _array_to_gray(item[None], batch=True)[0]
        except ValueError as error:
            raise ValueError(f"item {index} of the list: {error}") from error
    else:
        raise TypeError(
            f"item {index} of the list is a {type(item).__name__}; expected a file path, "
            "a PIL image or a numpy array"
        )
    return _resize_one(gray, size)


def _array_to_gray(X, batch):
    """Validate an image array and return float32 gray of shape (n, h, w) on 0..255."""
    array = np.asarray(X)
    if array.dtype == object:
        raise TypeError(
            "expected a numeric image array, got an array of Python objects (images of different "
            "shapes?); pass a list of images instead"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"expected a numeric image array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"expected real pixel values, got dtype {array.dtype}")
    if array.ndim == 2 and batch:
        raise ValueError(
            f"expected a batch of shape (n_samples, height, width), got a single image of shape "
            f"{array.shape}; use X[None] to make a batch of one"
        )
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 4 and array.shape[-1] not in (3, 4):
        raise ValueError(
            f"expected RGB or RGBA images of shape (n_samples, height, width, 3 or 4), got shape {array.shape}"
        )
    if array.ndim not in (3, 4):
        raise ValueError(
            f"expected images of shape (n_samples, height, width) or (n_samples, height, width, 3 or 4), "
            f"got {array.ndim} dimensions with shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"expected at least one non-empty image, got shape {array.shape}")

    pixels = _to_float_scale(array)
    if pixels.ndim == 3:
        return pixels
    gray = pixels[..., :3] @ LUMA_WEIGHTS
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3] / 255.0
        gray = gray * alpha + 255.0 * (1.0 - alpha)
    return gray.astype(np.float32, copy=False)


def _to_float_scale(array):
    """Return ``array`` as float32 on the 0..255 scale, checking its values."""
    if array.dtype == np.bool_:
        return array.astype(np.float32) * 255.0
    pixels = array.astype(np.float32)
    per_sample = pixels.reshape(len(pixels), -1)
    finite = np.isfinite(per_sample).all(axis=1)
    if not finite.all():
        bad_index = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"image {bad_index} of the batch contains NaN or infinite values; replace or drop it"
        )
    low, high = float(pixels.min()), float(pixels.max())
    scale = 255.0 if np.issubdtype(array.dtype, np.floating) and high <= 1.0 else 1.0
    if scale != 1.0:
        pixels *= scale
    if low * scale < 0.0 or high * scale > 255.0:
        raise ValueError(
            f"expected pixel values in 0..255 (or 0..1 for floats), got values from {low:g} to {high:g}; "
            "rescale the images first (16-bit images: divide by 257)"
        )
    return pixels


def _centre_square(gray):
    height, width = gray.shape
    side = min(height, width)
    top = (height - side) // 2
    left = (width - side) // 2
    return gray[top : top + side, left : left + side]


def _resize_one(gray, size):
    """Crop a float32 (h, w) image to its centred square and resize it to (size, size)."""
    square = _centre_square(gray)
    if square.shape == (size, size):
        return square
    image = Image.fromarray(np.ascontiguousarray(square, dtype=np.float32), mode="F")
    resized = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)


def _resize_batch(gray, size):
    if gray.shape[1:] == (size, size):
        return np.ascontiguousarray(gray, dtype=np.float32)
    faces = np.empty((len(gray), size, size), dtype=np.float32)
    for index, image in enumerate(gray):
        faces[index] = _resize_one(image, size)
    return faces


def resize_gray_uint8(image, size):
    """Crop a ``uint8`` (h, w) image to its centred square and resize it to (size, size)."""
    square = _centre_square(image)
    if square.shape == (size, size):
        return np.ascontiguousarray(square)
    resized = Image.fromarray(np.ascontiguousarray(square)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized)


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------


def normalize(faces, method="standardize"):
    """Rescale each face on its own so the camera's exposure does not matter.

    Parameters
    ----------
    faces : array-like of shape (n_samples, height, width)
        Faces on the 0..255 scale, as returned by :func:`to_faces`. Each 2-D
        slice over the last two axes is normalised separately, so any number
        of leading axes works. The input is never modified.
    method : {"standardize", "minmax", "none"}, default="standardize"
        - ``"standardize"``: subtract each face's mean and divide by its
          standard deviation. The result does not change when the pixels are
          replaced by ``a * x + b`` with ``a > 0``.
        - ``"minmax"``: map each face's minimum to 0 and maximum to 1.
        - ``"none"``: divide by 255.

    Returns
    -------
    normalized : ndarray of the same shape, dtype float32

    Raises
    ------
    ValueError
        For an unknown method, fewer than 2 dimensions, or a face with NaN
        or infinite values.

    Notes
    -----
    A standard deviation (for ``"standardize"``) or range (for ``"minmax"``)
    smaller than one gray level is replaced by one gray level. A constant face
    therefore becomes all zeros instead of NaN, and a nearly flat face is not
    blown up into noise.

    Examples
    --------
    >>> import numpy as np
    >>> from csmile.data import normalize
    >>> faces = np.array([[[0.0, 100.0], [100.0, 200.0]]])
    >>> normalized = normalize(faces)
    >>> round(float(normalized.mean()), 3), round(float(normalized.std()), 3)
    (0.0, 1.0)
    """
    if method not in NORMALIZE_METHODS:
        valid = ", ".join(repr(name) for name in NORMALIZE_METHODS)
        raise ValueError(f"unknown normalisation method {method!r}; expected one of {valid}")
    pixels = np.asarray(faces, dtype=np.float32)
    if pixels.ndim < 2:
        raise ValueError(f"expected faces of shape (n_samples, height, width), got shape {pixels.shape}")

    if method == "none":
        return pixels * np.float32(1.0 / 255.0)

    axes = (-2, -1)
    if method == "standardize":
        mean = pixels.mean(axis=axes, keepdims=True)
        _check_finite(mean)
        centred = pixels - mean
        std = np.sqrt(np.mean(np.square(centred), axis=axes, keepdims=True))
        np.maximum(std, MIN_SPREAD, out=std)
        centred /= std
        return centred

    low = pixels.min(axis=axes, keepdims=True)
    high = pixels.max(axis=axes, keepdims=True)
    _check_finite(low + high)
    spread = np.maximum(high - low, MIN_SPREAD)
    shifted = pixels - low
    shifted /= spread
    return shifted


def _check_finite(per_face_statistic):
    finite = np.isfinite(per_face_statistic)
    if not finite.all():
        flat_index = int(np.flatnonzero(~finite.ravel())[0])
        raise ValueError(
            f"face {flat_index} contains NaN or infinite values; fix or drop it before normalising"
        )
