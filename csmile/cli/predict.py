"""The ``csmile predict`` command: label and smile probability of each image file."""

import json
import logging
import os
import sys
from importlib import resources

import numpy as np

from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    PROG,
    CommandError,
    _load_model,
    _one_line,
    _positive_probabilities,
    _threshold_of,
)

# Images are loaded and predicted in chunks of this many files, which bounds
# the memory of ``csmile predict`` on large folders.
PREDICT_CHUNK_SIZE = 256

logger = logging.getLogger(__name__)


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else value


def _list_folder_images(folder):
    from ..data import IMAGE_EXTENSIONS

    names = sorted(
        name
        for name in os.listdir(folder)
        if not name.startswith(".")
        and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        and os.path.isfile(os.path.join(folder, name))
    )
    return [os.path.join(folder, name) for name in names]


def _expand_inputs(inputs):
    """Return (image paths, failures) where each failure is (input, reason)."""
    paths, failures = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = _list_folder_images(item)
            if not found:
                failures.append((item, "no image files in this folder"))
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(item)
        else:
            failures.append((item, "file not found"))
    return paths, failures


def _load_face(path, size, detect_faces):
    """Return the face of one file as a (size, size) uint8 array; raise on failure."""
    from ..data.images import load_image, resize_gray_uint8

    image = load_image(path)
    if detect_faces:
        from ..faces import crop_faces

        faces = crop_faces(image, size=size)
        if not faces:
            raise CommandError("no face found")
        # crop_faces returns the faces largest first.
        return np.asarray(faces[0], dtype=np.uint8)
    return resize_gray_uint8(image, size)


def _report_file_error(path, reason):
    message = _one_line(reason) if isinstance(reason, BaseException) else str(reason)
    if str(path) not in message:
        message = f"{path}: {message}"
    sys.stderr.write(f"{PROG}: error: {message}\n")


def _command_predict(args):
    inputs = list(args.inputs)
    if args.samples:
        inputs.append(str(resources.files("csmile") / "samples"))
    if not inputs:
        raise CommandError("no images given; name image files or folders, or add --samples")
    model = _load_model(args.model)
    threshold = _threshold_of(model, args.threshold)
    paths, failures = _expand_inputs(inputs)
    for item, reason in failures:
        _report_file_error(item, reason)
    n_failed = len(failures)

    for start in range(0, len(paths), PREDICT_CHUNK_SIZE):
        loaded_paths, faces = [], []
        for path in paths[start:start + PREDICT_CHUNK_SIZE]:
            try:
                faces.append(_load_face(path, model.image_size, args.detect_faces))
            # ImageError is a ValueError. An ImportError (OpenCV missing for
            # --detect-faces) is not caught here, so it ends the command.
            except (ValueError, OSError, CommandError) as error:
                _report_file_error(path, error)
                n_failed += 1
                continue
            loaded_paths.append(path)
        if not faces:
            continue

        probabilities = _positive_probabilities(model, np.stack(faces))
        for path, probability in zip(loaded_paths, probabilities):
            label = _json_value(model.classes_[int(probability >= threshold)])
            if args.json:
                print(json.dumps({"path": path, "label": label, "probability": float(probability)}))
            else:
                print(f"{path}\t{label}\t{probability:.4f}")
        sys.stdout.flush()

    if n_failed:
        logger.info("%d of %d inputs failed", n_failed, len(paths) + len(failures))
    return EXIT_FAILURE if n_failed else EXIT_OK
