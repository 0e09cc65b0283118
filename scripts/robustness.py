"""Score models on validation faces altered in framing, lighting, sharpness and compression.

Usage::

    python scripts/robustness.py SMILESMILED_DIR TRAIN_LIST MODEL [MODEL ...] [--out CSV]

Faces from other cameras and collections differ from SMILEsmileD in framing,
lighting, sharpness and compression. This script rebuilds the validation part
of the training list that ``scripts/train_pretrained.py`` holds out: 10% of
each class, drawn with seed 0, after dropping faces whose pixels occur under
both labels. It applies one fixed change to every face and reports accuracy,
balanced accuracy and ROC AUC of each model under each change. Only the
training list is read.
"""

import argparse
import csv
import io
import logging
import os

import numpy as np
from PIL import Image, ImageFilter

from csmile import SmileNet, load
from csmile.data import read_dataset, summarize
from csmile.metrics import balanced_accuracy, roc_auc
from csmile.training import stratified_split

logger = logging.getLogger("robustness")

VALIDATION_FRACTION = 0.1
SEED = 0


def _affine(face, zoom=1.0, shift=(0.0, 0.0), angle=0.0):
    """Zoom (above 1 enlarges), shift (fractions of the side) and rotate one face, replicating edges."""
    size = face.shape[0]
    padded = np.pad(face, size, mode="edge")
    image = Image.fromarray(padded)
    image = image.rotate(angle, resample=Image.BILINEAR, center=(1.5 * size, 1.5 * size))
    half = size / (2 * zoom)
    centre_x = 1.5 * size - shift[0] * size
    centre_y = 1.5 * size - shift[1] * size
    box = (centre_x - half, centre_y - half, centre_x + half, centre_y + half)
    return np.asarray(image.resize((size, size), Image.BILINEAR, box=box))


def _gamma(face, gamma):
    return (255.0 * (face / 255.0) ** gamma).astype(np.uint8)


def _contrast(face, factor):
    mean = face.mean()
    return np.clip(mean + factor * (face.astype(np.float64) - mean), 0, 255).astype(np.uint8)


def _blur(face, radius):
    return np.asarray(Image.fromarray(face).filter(ImageFilter.GaussianBlur(radius)))


def _jpeg(face, quality):
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("L"))


def _low_resolution(face, side):
    size = face.shape[0]
    small = Image.fromarray(face).resize((side, side), Image.BILINEAR)
    return np.asarray(small.resize((size, size), Image.BILINEAR))


def _noise(face, std, rng):
    return np.clip(face + rng.normal(0.0, std, face.shape), 0, 255).astype(np.uint8)


CHANGES = {
    "none": lambda face, rng: face,
    "zoom out to 0.85": lambda face, rng: _affine(face, zoom=0.85),
    "zoom in to 1.15": lambda face, rng: _affine(face, zoom=1.15),
    "shift by 10%": lambda face, rng: _affine(face, shift=(0.1, 0.1)),
    "rotate by 15 degrees": lambda face, rng: _affine(face, angle=15.0),
    "darker (gamma 1.8)": lambda face, rng: _gamma(face, 1.8),
    "brighter (gamma 0.55)": lambda face, rng: _gamma(face, 0.55),
    "half contrast": lambda face, rng: _contrast(face, 0.5),
    "blur (radius 1.5)": lambda face, rng: _blur(face, 1.5),
    "noise (std 12)": lambda face, rng: _noise(face, 12.0, rng),
    "JPEG quality 15": lambda face, rng: _jpeg(face, 15),
    "from 24x24 pixels": lambda face, rng: _low_resolution(face, 24),
}


def validation_faces(data, train_list):
    """Return (faces, labels as 0/1) of the held-out part of the training list."""
    dataset = read_dataset(data, split=train_list)
    summary = summarize(dataset)
    keep = np.setdiff1d(np.arange(len(dataset)), summary.conflicting_indices)
    dataset = dataset.subset(keep)
    _, validation = stratified_split(dataset.labels, VALIDATION_FRACTION, np.random.default_rng(SEED))
    return dataset.images[validation], dataset.labels[validation]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Changes, applied one at a time: " + "; ".join(CHANGES) + ".",
    )
    parser.add_argument("data", help="the SMILEsmileD folder")
    parser.add_argument("train_list", help="list of training images, relative to the data folder")
    parser.add_argument("models", nargs="+", help="model files, or 'pretrained' for the shipped model")
    parser.add_argument(
        "--out", metavar="CSV", help="also write the table to this CSV file (default: log it only)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    missing = [name for name in args.models if name != "pretrained" and not os.path.isfile(name)]
    if missing:
        parser.error(f"model file not found: {', '.join(missing)}")

    faces, labels = validation_faces(args.data, args.train_list)
    logger.info("%d validation faces", len(faces))
    rows = []
    for change, function in CHANGES.items():
        rng = np.random.default_rng(SEED)
        changed = np.stack([function(face, rng) for face in faces])
        for name in args.models:
            model = SmileNet.pretrained() if name == "pretrained" else load(name)
            scores = model.predict_proba(changed)[:, 1]
            predicted = (scores >= model.threshold).astype(int)
            row = {
                "change": change,
                "model": name,
                "accuracy": float(np.mean(predicted == labels)),
                "balanced_accuracy": balanced_accuracy(labels, predicted),
                "roc_auc": roc_auc(labels, scores),
            }
            rows.append(row)
            logger.info(
                "%-24s %-40s accuracy %.4f, balanced %.4f, AUC %.4f", change, name,
                row["accuracy"], row["balanced_accuracy"], row["roc_auc"],
            )
    if args.out:
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({key: f"{value:.4f}" if isinstance(value, float) else value
                                 for key, value in row.items()})


if __name__ == "__main__":
    main()
