"""Measure what each ingredient of the default recipe adds, on held-out training faces.

Usage::

    python scripts/ablation.py SMILESMILED_DIR TRAIN_LIST [--epochs 8] [--out docs/ablation.csv]

The training list is split once (stratified, seed 0) into 85% for training
and 15% for validation. Every variant trains on the same 85% for the same
number of epochs and is scored on the same 15%. The test list is not read.
Each variant changes one setting of ``BASE``.
"""

import argparse
import csv
import logging
import time

import numpy as np

from csmile import SmileNet
from csmile.data import read_dataset, summarize
from csmile.metrics import balanced_accuracy, roc_auc
from csmile.training import stratified_split

logger = logging.getLogger("ablation")

BASE = dict(
    filters=(16, 32, 64), dense=(128,), dropout=0.5, batch_size=32, learning_rate=2e-3,
    weight_decay=1e-4, class_weight="balanced", augment=True, normalization="standardize",
    validation_fraction=0.0, early_stopping=False, lr_schedule="cosine", random_state=0,
)

VARIANTS = {
    "full recipe": {},
    "no augmentation": {"augment": False},
    "no class weights": {"class_weight": None},
    "normalisation: divide by 255 only": {"normalization": "none"},
    "depth: 2 conv blocks (16, 32)": {"filters": (16, 32)},
    "depth: 1 conv block (16)": {"filters": (16,)},
    "two convolutions per block": {"convs_per_block": 2},
    "batch normalisation": {"batch_norm": True},
    "weight averaging (decay 0.998)": {"weight_averaging": 0.998},
    "label smoothing (0.1)": {"label_smoothing": 0.1},
    "two convolutions per block": {"convs_per_block": 2},
    "batch normalisation": {"batch_norm": True},
    "weight averaging (decay 0.998)": {"weight_averaging": 0.998},
    "label smoothing (0.1)": {"label_smoothing": 0.1},
    "2019 study net (8 filters, per-image SGD)": {
        "filters": (8,), "padding": "valid", "dense": (), "dropout": 0.0, "optimizer": "sgd",
        "momentum": 0.0, "learning_rate": 0.005, "batch_size": 1, "class_weight": None,
        "augment": False, "weight_decay": 0.0, "lr_schedule": "constant",
    },
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the SMILEsmileD folder")
    parser.add_argument("train_list", help="list of training images, relative to the data folder")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per variant")
    parser.add_argument("--out", default="docs/ablation.csv", help="CSV file of the results")
    parser.add_argument("--only", nargs="*", help="names of the variants to run (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    dataset = read_dataset(args.data, split=args.train_list)
    keep = np.setdiff1d(np.arange(len(dataset)), summarize(dataset).conflicting_indices)
    dataset = dataset.subset(keep)
    train_idx, validation_idx = stratified_split(dataset.labels, 0.15, np.random.default_rng(0))

    rows = []
    for name, change in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        settings = dict(BASE, epochs=args.epochs, **change)
        started = time.perf_counter()
        model = SmileNet(**settings).fit(dataset.images[train_idx], dataset.labels[train_idx])
        minutes = (time.perf_counter() - started) / 60
        scores = model.predict_proba(dataset.images[validation_idx])[:, 1]
        truth = dataset.labels[validation_idx]
        predictions = (scores >= 0.5).astype(int)
        row = {
            "variant": name,
            "accuracy": float(np.mean(predictions == truth)),
            "balanced_accuracy": balanced_accuracy(truth, predictions),
            "roc_auc": roc_auc(truth, scores),
            "minutes": minutes,
        }
        logger.info("%s", row)
        rows.append(row)

    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()})
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
