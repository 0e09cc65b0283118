"""Read labelled face folders: SMILEsmileD or any two-class folder.

Two layouts are recognised:

- SMILEsmileD as published (github.com/hromi/SMILEsmileD, version 0.5):
  ``SMILEs/positives/positives7/*.jpg`` are smiling faces (label 1) and
  ``SMILEs/negatives/negatives7/*.jpg`` are not (label 0). The root may be
  the SMILEsmileD folder or the ``SMILEs`` folder inside it.
- A generic folder with exactly two subfolders, one per class, searched
  recursively for image files. See :func:`class_order` for which folder
  gets label 1.

Files that fail to decode are skipped and listed in
:attr:`LabelledImages.bad_files`, so one broken file does not stop training.
"""

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import ImageError, load_image, resize_gray_uint8

__all__ = [
    "DatasetError",
    "LabelledImages",
    "read_dataset",
    "class_order",
    "default_data_paths",
    "IMAGE_EXTENSIONS",
    "SMILESMILED_CLASS_NAMES",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")

SMILESMILED_CLASS_NAMES = ("not smiling", "smiling")

# Class folders of SMILEsmileD relative to its inner ``SMILEs`` folder, by label.
_SMILESMILED_FOLDERS = ("negatives/negatives7", "positives/positives7")

PROGRESS_EVERY = 100

_NEGATIVE_NAME = re.compile(r"(^|[^a-z])(non|not|no|neg|false)|^0$|negative")
_POSITIVE_NAME = re.compile(r"smil|pos|^1$|^yes$|^true$")


class DatasetError(ValueError):
    """A data folder or split list whose layout or content is invalid."""


@dataclass
class LabelledImages:
    """Grayscale face images with binary labels.

    Attributes
    ----------
    paths : list of str
        Path of each image relative to ``root``, with ``/`` separators.
    images : ndarray of shape (n_samples, size, size), dtype uint8
        Grayscale pixels, resized to the requested size.
    labels : ndarray of shape (n_samples,), dtype int64
        0 or 1, where 1 is the positive class (smiling for SMILEsmileD).
    class_names : tuple of 2 str
        Name of each label, indexed by label.
    bad_files : list of (str, str)
        (path, reason) of each file that failed to load and was skipped.
    root : str
        Folder that ``paths`` are relative to.
    """

    paths: list
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple
    bad_files: list = field(default_factory=list)
    root: str = ""

    def __len__(self):
        return len(self.paths)

    def subset(self, indices):
        """Return a new :class:`LabelledImages` with the samples at ``indices``.

        ``indices`` may be integers or a boolean mask of length ``len(self)``.
        ``bad_files`` is copied unchanged because it describes the folder
        that was read, not the samples kept.
        """
        indices = np.asarray(indices)
        if indices.dtype == np.bool_:
            if indices.shape != (len(self),):
                raise ValueError(f"expected a boolean mask of length {len(self)}, got shape {indices.shape}")
            indices = np.flatnonzero(indices)
        elif indices.size == 0:
            indices = indices.astype(np.intp)
        elif not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"expected integer indices or a boolean mask, got dtype {indices.dtype}")
        indices = indices.ravel()
        return LabelledImages(
            paths=[self.paths[int(index)] for index in indices],
            images=self.images[indices],
            labels=self.labels[indices],
            class_names=self.class_names,
            bad_files=list(self.bad_files),
            root=self.root,
        )

    def absolute_paths(self):
        """Return the full path of each image (``root`` joined with ``paths``)."""
        return [os.path.join(self.root, *path.split("/")) for path in self.paths]


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


def default_data_paths():
    """Return the data folders named by the environment.

    Returns
    -------
    data_root : str or None
        Value of ``CSMILE_DATA`` (the SMILEsmileD folder), or None if unset.
    splits_dir : str or None
        Value of ``CSMILE_SPLITS`` (the folder holding
        ``smilesmiled-train.txt`` and ``smilesmiled-test.txt``), or None.
    """
    data_root = os.environ.get("CSMILE_DATA") or None
    splits_dir = os.environ.get("CSMILE_SPLITS") or None
    return data_root, splits_dir


# ---------------------------------------------------------------------------
# Layout detection
# ---------------------------------------------------------------------------


def class_order(folder_names):
    """Order two class folder names so that index 1 is the positive class.

    A name is negative when it contains ``negative``, equals ``0``, or a word
    in it starts with ``non``, ``not``, ``no``, ``neg`` or ``false`` (so
    ``nosmile``, ``non_smile`` and ``negatives`` are negative). A name is
    positive when it is not negative and contains ``smil`` or ``pos``, or
    equals ``1``, ``yes`` or ``true`` (matching ignores case). When exactly
    one name is positive and the other negative, the positive one gets
    label 1. Otherwise the names are sorted and the second gets label 1.

    Parameters
    ----------
    folder_names : sequence of 2 str

    Returns
    -------
    class_names : tuple of 2 str
        ``(label 0 name, label 1 name)``.

    Examples
    --------
    >>> from csmile.data import class_order
    >>> class_order(["smile", "non_smile"])
    ('non_smile', 'smile')
    >>> class_order(["cats", "dogs"])
    ('cats', 'dogs')
    """
    first, second = sorted(folder_names)
    if _is_positive_name(first) and _is_negative_name(second):
        return second, first
    if not (_is_positive_name(second) and _is_negative_name(first)):
        logger.info(
            "class folders %r and %r do not look like a positive/negative pair; "
            "label 1 goes to %r (the later name in sorted order)",
            first,
            second,
            second,
        )
    return first, second


def _is_negative_name(name):
    return _NEGATIVE_NAME.search(name.lower()) is not None


def _is_positive_name(name):
    lowered = name.lower()
    return not _is_negative_name(lowered) and _POSITIVE_NAME.search(lowered) is not None


def _smilesmiled_prefix(root):
    """Return "SMILEs/" or "" if ``root`` is a SMILEsmileD folder or its inner folder, else None."""
    for prefix in ("SMILEs/", ""):
        if all((root / prefix / folder).is_dir() for folder in _SMILESMILED_FOLDERS):
            return prefix
    return None


def _natural_key(path):
    """Sort key that puts ``2.jpg`` before ``10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def _is_image_file(path):
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _list_images(folder, root):
    """Return image paths under ``folder`` relative to ``root``, naturally sorted."""
    relative = [
        path.relative_to(root).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and _is_image_file(path)
    ]
    return sorted(relative, key=_natural_key)


def _find_classes(root):
    """Return (class_names, class_folders, folder_prefix) for the layout found under ``root``.

    ``class_folders[label]`` is the folder of that label relative to ``root``.
    ``folder_prefix`` is the part of a SMILEsmileD split-list path to remove
    when ``root`` is the inner ``SMILEs`` folder ("" otherwise).
    """
    prefix = _smilesmiled_prefix(root)
    if prefix is not None:
        folders = tuple(prefix + folder for folder in _SMILESMILED_FOLDERS)
        return SMILESMILED_CLASS_NAMES, folders, "SMILEs/" if prefix == "" else ""

    subfolders = sorted(
        entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )
    if len(subfolders) != 2:
        found = ", ".join(repr(name) for name in subfolders) or "none"
        raise DatasetError(
            f"expected a SMILEsmileD folder or a folder with exactly 2 class subfolders in '{root}', "
            f"found {len(subfolders)} subfolders ({found}); put the images of each class in its own subfolder"
        )
    class_names = class_order(subfolders)
    return class_names, class_names, ""


# ---------------------------------------------------------------------------
# Split lists
# ---------------------------------------------------------------------------


def _read_split(split_path, root, class_folders, folder_prefix):
    """Return (relative paths, labels) listed in ``split_path``."""
    split_path = Path(split_path)
    if split_path.is_dir():
        raise IsADirectoryError(f"expected a split list file, got the folder '{split_path}'")
    if not split_path.is_file():
        raise FileNotFoundError(f"split list not found: '{split_path}'; check the path")

    paths, labels, first_line = [], [], {}
    with open(split_path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            relative = _normalise_entry(entry, root, split_path, line_number, folder_prefix)
            if relative in first_line:
                raise DatasetError(
                    f"'{entry}' is listed twice in '{split_path}' (lines {first_line[relative]} and "
                    f"{line_number}); remove one of them"
                )
            first_line[relative] = line_number
            label = _label_of(relative, class_folders)
            if label is None:
                folders = " or ".join(f"'{folder}/'" for folder in class_folders)
                raise DatasetError(
                    f"line {line_number} of '{split_path}': '{entry}' is not inside a class folder "
                    f"({folders} under '{root}')"
                )
            if not (root / relative).is_file():
                raise FileNotFoundError(
                    f"line {line_number} of '{split_path}': '{entry}' not found under '{root}'; "
                    "check that the list belongs to this data folder"
                )
            paths.append(relative)
            labels.append(label)
    if not paths:
        raise DatasetError(f"the split list '{split_path}' names no files; add one path per line")
    return paths, labels


def _normalise_entry(entry, root, split_path, line_number, folder_prefix):
    entry_path = entry.replace("\\", "/")
    if os.path.isabs(entry_path):
        try:
            entry_path = Path(entry_path).resolve().relative_to(root).as_posix()
        except ValueError:
            raise DatasetError(
                f"line {line_number} of '{split_path}': the absolute path '{entry}' is outside "
                f"'{root}'; use paths relative to the data folder"
            ) from None
    parts = [part for part in entry_path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise DatasetError(
            f"line {line_number} of '{split_path}': '{entry}' goes up with '..'; "
            "use paths inside the data folder"
        )
    relative = "/".join(parts)
    if folder_prefix and relative.startswith(folder_prefix):
        relative = relative[len(folder_prefix) :]
    return relative


def _label_of(relative, class_folders):
    for label, folder in enumerate(class_folders):
        if relative.startswith(folder + "/"):
            return label
    return None


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def read_dataset(root, split=None, size=64, progress=None):
    """Read a folder of labelled faces.

    Parameters
    ----------
    root : str or os.PathLike
        A SMILEsmileD folder (or the ``SMILEs`` folder inside it), or a folder
        with exactly two class subfolders.
    split : str or os.PathLike, optional
        A text file listing the images to read, one path relative to
        ``root`` per line. Blank lines and lines starting with ``#`` are
        ignored, and ``\\`` separators are accepted. The label of an entry is
        the class folder it is in. By default every image under the class
        folders is read.
    size : int, default=64
        Side of the square images returned. Other sizes are cropped to their
        centred square and resized.
    progress : callable, optional
        Called as ``progress(n_done, n_total)`` every 100 images and once at
        the end, for example to drive a progress bar.

    Returns
    -------
    dataset : LabelledImages
        In the order of the split list, or sorted by class then by natural
        file name order. Unreadable files are left out and listed in
        ``bad_files``.

    Raises
    ------
    FileNotFoundError
        If ``root``, ``split`` or a file named in ``split`` does not exist.
    DatasetError
        If the layout is not recognised, a class has no images, or the split
        list is invalid.

    Examples
    --------
    >>> from csmile.data import read_dataset
    >>> train = read_dataset("SMILEsmileD", split="splits/smilesmiled-train.txt")  # doctest: +SKIP
    >>> len(train), train.class_names  # doctest: +SKIP
    (10532, ('not smiling', 'smiling'))
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data folder not found: '{root}'; check the path or set CSMILE_DATA")
    if not root.is_dir():
        raise NotADirectoryError(f"expected a data folder, got the file '{root}'")
    root = root.resolve()

    class_names, class_folders, folder_prefix = _find_classes(root)
    if split is not None:
        paths, labels = _read_split(split, root, class_folders, folder_prefix)
    else:
        paths, labels = [], []
        for label, folder in enumerate(class_folders):
            found = _list_images(root / folder, root)
            if not found:
                raise DatasetError(
                    f"no image files found in the class folder '{root / folder}'; "
                    f"expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
                )
            paths.extend(found)
            labels.extend([label] * len(found))

    return _load_images(root, paths, labels, class_names, int(size), progress)


def _load_images(root, paths, labels, class_names, size, progress):
    n_total = len(paths)
    images = np.empty((n_total, size, size), dtype=np.uint8)
    keep = np.ones(n_total, dtype=bool)
    bad_files = []
    for index, relative in enumerate(paths):
        try:
            image = load_image(root / relative)
        except (ImageError, OSError) as error:
            keep[index] = False
            bad_files.append((relative, str(error)))
            logger.warning("skipped %s: %s", relative, error)
        else:
            images[index] = resize_gray_uint8(image, size)
        if progress is not None and ((index + 1) % PROGRESS_EVERY == 0 or index + 1 == n_total):
            progress(index + 1, n_total)

    if not keep.any():
        raise DatasetError(f"none of the {n_total} image files under '{root}' could be read; see the log")
    kept_indices = np.flatnonzero(keep)
    return LabelledImages(
        paths=[paths[index] for index in kept_indices],
        images=images[kept_indices] if len(kept_indices) < n_total else images,
        labels=np.asarray(labels, dtype=np.int64)[kept_indices],
        class_names=tuple(class_names),
        bad_files=bad_files,
        root=str(root),
    )
