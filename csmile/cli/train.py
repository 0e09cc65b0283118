"""The ``csmile train`` command: fit a SmileNet on labelled faces and save it."""

import logging
import os

import numpy as np

from .common import (
    EXIT_OK,
    UsageError,
    _check_figure_format,
    _check_matplotlib,
    _check_output_path,
    _read_data,
)

logger = logging.getLogger(__name__)


_TRAIN_OPTIONS = {
    # command-line dest -> SmileNet parameter
    "filters": "filters",
    "kernel_size": "kernel_size",
    "convs_per_block": "convs_per_block",
    "batch_norm": "batch_norm",
    "dense": "dense",
    "dropout": "dropout",
    "image_size": "image_size",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "optimizer": "optimizer",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "weight_averaging": "weight_averaging",
    "label_smoothing": "label_smoothing",
    "lr_schedule": "lr_schedule",
    "validation_fraction": "validation_fraction",
    "patience": "patience",
    "n_jobs": "n_jobs",
    "seed": "random_state",
}


def _build_model(args):
    """Return an unfitted SmileNet from the train options; validate them early."""
    from ..estimator import SmileNet

    params = {
        parameter: getattr(args, dest)
        for dest, parameter in _TRAIN_OPTIONS.items()
        if getattr(args, dest) is not None
    }
    if args.no_augment:
        params["augment"] = False
    if args.no_early_stopping:
        params["early_stopping"] = False
    if args.class_weight is not None:
        params["class_weight"] = None if args.class_weight == "none" else args.class_weight
    if args.quiet:
        params["verbose"] = 0
    elif args.verbose:
        params["verbose"] = 2
    else:
        params["verbose"] = 1

    if args.paper is not None:
        if "filters" in params:
            raise UsageError("--paper and --filters both set the filters; give only one (see 'csmile train --help')")
        model = SmileNet.paper(filters=args.paper, **params)
    else:
        model = SmileNet(**params)

    # The estimator validates its parameters in fit; doing it now reports a
    # bad option before the data set is read.
    model._validate_params()
    return model


def _training_labels(dataset):
    """Return the labels to fit: class names when they sort in label order, else 0/1.

    SmileNet sorts its labels to build ``classes_`` and treats ``classes_[1]``
    as the positive class, so names are usable only when sorting keeps label 1
    second.
    """
    names = list(dataset.class_names)
    if names == sorted(names):
        return np.asarray(names, dtype=object)[dataset.labels].astype(str)
    logger.warning(
        "class names %r sort in the opposite order of their labels; the model stores the labels "
        "0 (%s) and 1 (%s) instead of the names",
        tuple(names), names[0], names[1],
    )
    return dataset.labels


def _default_history_path(model_path):
    root, extension = os.path.splitext(model_path)
    return (root if extension else model_path) + ".history.csv"


def _command_train(args):
    from ..data import summarize
    from ..plots import plot_history, write_history_csv

    model = _build_model(args)
    # Reject invalid options before spending time on reading the data.
    model._validate_params()
    history_path = args.history or _default_history_path(args.out)
    _check_output_path(args.out, "--out")
    _check_output_path(history_path, "--history")
    if args.plot:
        _check_output_path(args.plot, "--plot")
        _check_matplotlib("--plot")
        _check_figure_format(args.plot, "--plot")

    dataset = _read_data(args, size=model.image_size)
    summary = summarize(dataset)
    logger.info("%s", summary.to_text())
    if len(summary.conflicting_indices) and not args.keep_conflicts:
        keep = np.ones(len(dataset), dtype=bool)
        keep[summary.conflicting_indices] = False
        dataset = dataset.subset(keep)
        logger.info(
            "dropped %d images with conflicting labels (use --keep-conflicts to keep them); "
            "training on %d images",
            len(summary.conflicting_indices), len(dataset),
        )

    model.fit(dataset.images, _training_labels(dataset))
    model.save(args.out)
    write_history_csv(model.history_, history_path)
    if args.plot:
        plot_history(model.history_, args.plot, best_epoch=model.best_epoch_)

    _log_training_result(model)
    logger.info("saved the model to %s and the history to %s", args.out, history_path)
    if args.plot:
        logger.info("saved the training curves to %s", args.plot)
    return EXIT_OK


def _log_training_result(model):
    best = next((record for record in model.history_ if record.get("epoch") == model.best_epoch_), None)
    if best is None:
        return
    if best.get("val_balanced_accuracy") is not None:
        logger.info(
            "best epoch %s: validation accuracy %.4f, balanced accuracy %.4f",
            model.best_epoch_, best["val_accuracy"], best["val_balanced_accuracy"],
        )
    else:
        logger.info(
            "last epoch %s: training accuracy %.4f, balanced accuracy %.4f (no validation data)",
            model.best_epoch_, best["accuracy"], best["balanced_accuracy"],
        )
