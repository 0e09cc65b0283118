"""Train the default model that ``SmileNet.pretrained()`` loads.

Usage::

    python scripts/train_pretrained.py SMILESMILED_DIR TRAIN_LIST [--out PATH]

It reads only the training list, leaves out faces whose exact pixels occur
under both labels, trains with the settings below on all cores, and writes
the model (default ``csmile/pretrained/smilenet.npz``) and its per-epoch
history next to it as CSV. After training it turns on test-time mirroring
and picks the decision threshold from ``THRESHOLDS`` that maximises the
mean of accuracy and balanced accuracy on the validation part of the
training list. The settings were chosen on that validation part; the test
list plays no part here.
"""

import argparse
import logging
import time

import numpy as np

from csmile import SmileNet
from csmile.data import read_dataset, summarize

logger = logging.getLogger("train_pretrained")

SETTINGS = dict(
    filters=(16, 32, 64, 64),
    kernel_size=3,
    convs_per_block=2,
    batch_norm=False,
    dense=(128,),
    dropout=0.5,
    epochs=30,
    batch_size=32,
    learning_rate=2e-3,
    optimizer="adam",
    weight_decay=1e-4,
    class_weight=None,
    augment=True,
    normalization="standardize",
    validation_fraction=0.1,
    early_stopping=True,
    patience=10,
    label_smoothing=0.1,
    weight_averaging=0.998,
    lr_schedule="cosine",
    random_state=0,
    verbose=1,
)

THRESHOLDS = (0.30, 0.35, 0.40, 0.45, 0.50)


def choose_threshold(model, faces, labels):
    """Return the threshold of THRESHOLDS with the best mean of accuracy and balanced accuracy."""
    scores = model.predict_proba(faces)[:, 1]
    positive = labels == model.classes_[1]
    best_threshold, best_score = None, -1.0
    for threshold in THRESHOLDS:
        predicted = scores >= threshold
        accuracy = np.mean(predicted == positive)
        balanced = 0.5 * (np.mean(predicted[positive]) + np.mean(~predicted[~positive]))
        score = 0.5 * (accuracy + balanced)
        logger.info("threshold %.2f: accuracy %.4f, balanced accuracy %.4f", threshold, accuracy, balanced)
        if score > best_score:
            best_threshold, best_score = threshold, score
    return best_threshold


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the SMILEsmileD folder")
    parser.add_argument("train_list", help="list of training images, relative to the data folder")
    parser.add_argument("--out", default="csmile/pretrained/smilenet.npz", help="model file to write")
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"], help="maximum epochs")
    parser.add_argument(
        "--filters", default=",".join(map(str, SETTINGS["filters"])),
        help="filters of each conv block, comma-separated",
    )
    parser.add_argument(
        "--class-weight", choices=["balanced", "none"], default=SETTINGS["class_weight"],
        help="weighting of the two classes in the loss",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    dataset = read_dataset(args.data, split=args.train_list)
    summary = summarize(dataset)
    logger.info("%s", summary.to_text())
    keep = np.setdiff1d(np.arange(len(dataset)), summary.conflicting_indices)
    dataset = dataset.subset(keep)
    labels = np.array(dataset.class_names)[dataset.labels]

    filters = tuple(int(value) for value in args.filters.split(","))
    class_weight = None if args.class_weight == "none" else args.class_weight
    settings = dict(SETTINGS, epochs=args.epochs, filters=filters, class_weight=class_weight)
    started = time.perf_counter()
    model = SmileNet(**settings).fit(dataset.images, labels)
    minutes = (time.perf_counter() - started) / 60
    logger.info("trained in %.1f minutes; best epoch %d of %d", minutes, model.best_epoch_, len(model.history_))

    model.set_params(test_time_mirror=True, verbose=0)
    validation = model.validation_indices_
    threshold = choose_threshold(model, dataset.images[validation], labels[validation])
    model.set_params(threshold=threshold)
    logger.info("chose threshold %.2f on %d validation faces", threshold, len(validation))

    model.save(args.out)
    csv_path = args.out.rsplit(".", 1)[0] + "-history.csv"
    columns = list(model.history_[0])
    with open(csv_path, "w") as handle:
        handle.write(",".join(columns) + "\n")
        for record in model.history_:
            handle.write(",".join(f"{record[column]:.6g}" for column in columns) + "\n")
    logger.info("wrote %s and %s", args.out, csv_path)


if __name__ == "__main__":
    main()
