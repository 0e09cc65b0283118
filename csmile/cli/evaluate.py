"""The ``csmile evaluate`` command: metrics, ROC curve and error sheet of a model."""

import json
import logging

import numpy as np

from ..metrics import evaluate_scores, roc_curve
from .common import (
    EXIT_OK,
    CommandError,
    _check_figure_format,
    _check_matplotlib,
    _check_output_path,
    _load_model,
    _positive_probabilities,
    _read_data,
    _resolve_split,
    _threshold_of,
)

logger = logging.getLogger(__name__)


def _command_evaluate(args):
    if args.roc:
        _check_output_path(args.roc, "--roc")
        _check_matplotlib("--roc")
        _check_figure_format(args.roc, "--roc")
    if args.errors:
        _check_output_path(args.errors, "--errors")

    model = _load_model(args.model)
    dataset = _read_data(args, size=model.image_size)
    if dataset.bad_files:
        logger.warning("%d unreadable files were skipped", len(dataset.bad_files))

    scores = _positive_probabilities(model, dataset.images)
    threshold = _threshold_of(model, args.threshold)
    report = evaluate_scores(dataset.labels, scores, threshold=threshold, class_names=dataset.class_names)

    if args.json:
        document = report.to_dict()
        document.update(
            model=args.model or "pretrained",
            data=dataset.root,
            split=_resolve_split(args.split),
            n_unreadable_files=len(dataset.bad_files),
        )
        print(json.dumps(document))
    else:
        print(report.to_text())

    if args.roc:
        _write_roc(dataset.labels, scores, report.roc_auc, args.roc)
    if args.errors:
        _write_errors(dataset, scores, threshold, args.errors, args.max_errors)
    return EXIT_OK


def _write_roc(labels, scores, auc, path):
    from ..plots import plot_roc

    if auc is None:
        raise CommandError(f"--roc {path}: a ROC curve needs images of both classes; these data have one")
    fpr, tpr, _ = roc_curve(labels, scores)
    plot_roc(fpr, tpr, auc, path)
    logger.info("saved the ROC curve to %s", path)


def _write_errors(dataset, scores, threshold, path, max_errors):
    from ..plots import contact_sheet

    predictions = (scores >= threshold).astype(np.int64)
    wrong = np.flatnonzero(predictions != dataset.labels)
    if wrong.size == 0:
        logger.info("no misclassified faces, so %s was not written", path)
        return
    # Most confident mistakes first: the farthest from the threshold.
    wrong = wrong[np.argsort(-np.abs(scores[wrong] - threshold), kind="stable")]
    shown_indices = wrong[:max_errors]
    captions = [
        f"{dataset.class_names[dataset.labels[index]]}\np(smile)={scores[index]:.2f}" for index in shown_indices
    ]
    contact_sheet([dataset.images[index] for index in shown_indices], captions, path)
    logger.info(
        "saved %d of %d misclassified faces to %s (caption: true class and smile probability)",
        len(shown_indices), len(wrong), path,
    )
