"""The model file format: weights and JSON metadata in one ``.npz`` archive.

Layout of format version 1:

- ``metadata``: uint8 array holding UTF-8 JSON with the keys ``format``
  (always ``"csmile-model"``), ``format_version``, ``csmile_version``,
  ``params`` (the estimator's constructor parameters), ``architecture``
  (one entry per layer), ``classes``, ``classes_kind`` (``"int"``,
  ``"bool"`` or ``"str"``), ``threshold``, ``history`` and ``best_epoch``.
- ``weights/<layer index>/<name>``: one float array per parameter.

Loading uses ``numpy.load(allow_pickle=False)``, so a model file can hold
only arrays and text and runs no code when loaded. Files are written to a
temporary file in the target folder and renamed over the target, so an
interrupted save leaves the previous file, or none, but never half a file.
"""

import json
import os
import zipfile

import numpy as np

from .atomic import atomic_output_path

FORMAT_NAME = "csmile-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is not a csmile model, is damaged or is of an unknown version."""


def write_model_file(path, metadata, weights):
    """Write ``metadata`` (JSON-serialisable dict) and ``weights`` (dict of arrays) to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save the model to {path}: folder {folder} does not exist")
    document = dict(metadata, format=FORMAT_NAME, format_version=FORMAT_VERSION)
    arrays = {"metadata": np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)}
    arrays.update({f"weights/{key}": np.ascontiguousarray(value) for key, value in weights.items()})

    with atomic_output_path(path) as temp_path:
        with open(temp_path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())


def read_model_file(path):
    """Return (metadata, weights) read from a file written by ``write_model_file``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"model path is a folder, not a model file: {path}")
    with open(path, "rb") as handle:
        signature = handle.read(4)
    if signature != b"PK\x03\x04":
        raise ModelFileError(
            f"{path} is not a csmile model file (not an .npz archive); "
            "give a file saved by model.save() or 'csmile train'"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "metadata" not in archive.files:
                raise ModelFileError(
                    f"{path} is not a csmile model file (no metadata); save models with model.save()"
                )
            metadata = json.loads(archive["metadata"].tobytes().decode("utf-8"))
            weights = {
                name[len("weights/"):]: archive[name]
                for name in archive.files
                if name.startswith("weights/")
            }
    except ModelFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, UnicodeDecodeError, KeyError) as error:
        raise ModelFileError(
            f"cannot read model file {path}: it is damaged or not a csmile model ({error}); "
            "save it again with model.save() or 'csmile train'"
        ) from None

    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a csmile model file; save models with model.save()")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses model format version {version}, but this csmile reads only up to "
            f"version {FORMAT_VERSION}; upgrade csmile (pip install -U csmile)"
        )
    for name, array in weights.items():
        if array.dtype.kind != "f" or not np.all(np.isfinite(array)):
            raise ModelFileError(
                f"{path} has invalid weights {name!r} (not finite floating-point numbers); "
                "train the model again"
            )
    return metadata, weights
