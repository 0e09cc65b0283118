"""The ``csmile`` command: train, evaluate, predict, summarize and info.

Results go to standard output. Logs, progress bars and errors go to standard
error; progress bars appear only when standard error is a terminal. Every
error ends the command with one line ``csmile: error: ...`` and a non-zero
exit code (1 for a failure, 2 for invalid arguments, 130 when interrupted);
``--verbose`` adds the traceback.
"""

import argparse
import contextlib
import inspect
import json
import logging
import os
import platform
import sys
import traceback
from importlib import resources

import numpy as np

from . import __version__
from .metrics import evaluate_scores, roc_curve
from .progress import ProgressBar

PROG = "csmile"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Images are loaded and predicted in chunks of this many files, which bounds
# the memory of ``csmile predict`` on large folders.
PREDICT_CHUNK_SIZE = 256

DEFAULT_MAX_ERRORS = 100

logger = logging.getLogger(__name__)


class CommandError(Exception):
    """A failure to report as one line, without a traceback."""


class UsageError(Exception):
    """Invalid command-line arguments."""


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError in place of printing and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------


class _StderrHandler(logging.Handler):
    """Write records to the current ``sys.stderr``, looked up at each record.

    Looking the stream up late keeps the handler correct when ``sys.stderr``
    is replaced, as pytest's capture does.
    """

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must not raise; Handler reports it.
            self.handleError(record)


class _LevelFormatter(logging.Formatter):
    """Format INFO as the bare message and other levels with a ``csmile: level:`` prefix."""

    def __init__(self, show_names):
        super().__init__()
        self.show_names = show_names

    def format(self, record):
        message = record.getMessage()
        if record.exc_info and self.show_names:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return message
        prefix = f"{PROG}: {record.levelname.lower()}: "
        if self.show_names:
            prefix += f"[{record.name}] "
        return prefix + message


@contextlib.contextmanager
def _logging_configured(quiet, verbose):
    """Send the library's log records to stderr for the duration of one command.

    The previous handlers, level and propagation of the ``csmile`` logger are
    restored afterwards, so calling :func:`main` in-process leaves no trace.
    """
    package_logger = logging.getLogger("csmile")
    saved = (list(package_logger.handlers), package_logger.level, package_logger.propagate)

    handler = _StderrHandler()
    handler.setFormatter(_LevelFormatter(show_names=verbose))
    package_logger.handlers = [handler]
    package_logger.propagate = False
    if verbose:
        package_logger.setLevel(logging.DEBUG)
    elif quiet:
        package_logger.setLevel(logging.ERROR)
    else:
        package_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        package_logger.handlers, package_logger.level, package_logger.propagate = saved


# ---------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------


def _int_tuple(text):
    """Parse "16,32,64" as (16, 32, 64); "" or "none" give ()."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid list {text!r}; expected positive integers separated by commas, such as 16,32,64"
        ) from None
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"invalid list {text!r}; every entry must be 1 or more")
    return values


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value}; expected 1 or more")
    return value


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {value}; expected a number from 0 to 1")
    return value


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


def _estimator_defaults():
    from .estimator import SmileNet

    return {name: parameter.default for name, parameter in inspect.signature(SmileNet).parameters.items()}


def _add_global_options(parser, suppress_defaults):
    """Add --quiet and --verbose; subcommands accept them after their name too."""
    default = argparse.SUPPRESS if suppress_defaults else False
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default,
        help="print only results and errors: no progress bars, no log messages",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default,
        help="print debug log messages, and the traceback of an error",
    )


def _add_data_arguments(parser):
    parser.add_argument(
        "data", nargs="?", metavar="DATA",
        help="SMILEsmileD folder, or a folder with one subfolder per class "
        "(default: the CSMILE_DATA environment variable)",
    )
    parser.add_argument(
        "--split", metavar="LIST",
        help="text file listing the images to use, one path relative to DATA per line; a name "
        "such as 'train' that is not a file is looked up in the CSMILE_SPLITS folder, also as "
        "smilesmiled-NAME.txt (default: every image under DATA)",
    )


def _add_model_argument(parser):
    parser.add_argument(
        "--model", metavar="MODEL",
        help="model file written by 'csmile train' or SmileNet.save (default: the pretrained model)",
    )


def _add_train_parser(subparsers, global_options):
    defaults = _estimator_defaults()
    paper_defaults = inspect.signature(_paper_constructor()).parameters
    parser = subparsers.add_parser(
        "train", parents=[global_options], help="train a model on a labelled folder",
        description="Train a SmileNet on labelled faces and save it. Options left out keep the "
        "SmileNet defaults shown, or the settings of the 2019 study network with --paper.",
    )
    _add_data_arguments(parser)
    parser.add_argument(
        "--out", required=True, metavar="MODEL", help="model file to write (.npz); replaced if it exists",
    )

    architecture = parser.add_argument_group("network")
    architecture.add_argument(
        "--paper", type=_positive_int, metavar="N_FILTERS",
        help="use the single-layer network of the 2019 study with N_FILTERS 3x3 filters, trained "
        f"by per-image SGD (learning rate {paper_defaults['learning_rate'].default} unless "
        "--learning-rate is given); other options override its settings",
    )
    architecture.add_argument(
        "--filters", type=_int_tuple, metavar="LIST",
        help="filters of each conv block, comma-separated "
        f"(default: {','.join(map(str, defaults['filters']))})",
    )
    architecture.add_argument(
        "--kernel-size", type=_positive_int, metavar="PIXELS",
        help=f"height and width of the convolution kernels (default: {defaults['kernel_size']})",
    )
    architecture.add_argument(
        "--dense", type=_int_tuple, metavar="LIST",
        help="units of each hidden fully connected layer, comma-separated, or 'none' "
        f"(default: {','.join(map(str, defaults['dense'])) or 'none'})",
    )
    architecture.add_argument(
        "--dropout", type=float, metavar="RATE",
        help=f"dropout rate after each hidden fully connected layer, 0 to <1 (default: {defaults['dropout']})",
    )
    architecture.add_argument(
        "--image-size", type=_positive_int, metavar="PIXELS",
        help=f"side of the square input the faces are resized to (default: {defaults['image_size']})",
    )

    training = parser.add_argument_group("training")
    training.add_argument(
        "--epochs", type=_positive_int, help=f"maximum number of epochs (default: {defaults['epochs']})",
    )
    training.add_argument(
        "--batch-size", type=_positive_int, metavar="N",
        help=f"faces per gradient step (default: {defaults['batch_size']})",
    )
    training.add_argument(
        "--learning-rate", type=float, metavar="RATE",
        help=f"peak learning rate (default: {defaults['learning_rate']})",
    )
    training.add_argument(
        "--optimizer", choices=("adam", "sgd"), help=f"optimizer (default: {defaults['optimizer']})",
    )
    training.add_argument(
        "--momentum", type=float, help=f"SGD momentum, 0 to <1; unused by Adam (default: {defaults['momentum']})",
    )
    training.add_argument(
        "--weight-decay", type=float, metavar="RATE",
        help=f"decoupled weight decay of weights and kernels (default: {defaults['weight_decay']})",
    )
    training.add_argument(
        "--lr-schedule", choices=("cosine", "constant"),
        help=f"learning rate schedule (default: {defaults['lr_schedule']})",
    )
    training.add_argument(
        "--no-augment", action="store_true",
        help="train without random augmentation (default: augmentation on)",
    )
    training.add_argument(
        "--validation-fraction", type=float, metavar="FRACTION",
        help="fraction of each class held out for validation and early stopping, 0 to <1; "
        f"0 turns early stopping off (default: {defaults['validation_fraction']})",
    )
    training.add_argument(
        "--patience", type=_positive_int, metavar="EPOCHS",
        help=f"epochs without a lower validation loss before training stops (default: {defaults['patience']})",
    )
    training.add_argument(
        "--no-early-stopping", action="store_true",
        help="train for all epochs and keep the last weights (default: stop early, keep the best epoch)",
    )
    training.add_argument(
        "--class-weight", choices=("balanced", "none"),
        help="'balanced' weighs each face by the inverse frequency of its class "
        f"(default: {defaults['class_weight'] or 'none'})",
    )
    training.add_argument(
        "--keep-conflicts", action="store_true",
        help="keep images whose identical pixels appear with both labels (default: drop them)",
    )
    training.add_argument(
        "--n-jobs", type=_positive_int, metavar="N",
        help="threads for training (default: OMP_NUM_THREADS if set, else all cores)",
    )
    training.add_argument("--seed", type=int, help="random seed, for a reproducible model (default: none)")

    outputs = parser.add_argument_group("outputs")
    outputs.add_argument(
        "--history", metavar="CSV",
        help="CSV file of the per-epoch metrics (default: MODEL with the suffix .history.csv)",
    )
    outputs.add_argument(
        "--plot", metavar="PNG", help="write the loss and accuracy curves to this image (needs matplotlib)",
    )
    parser.set_defaults(handler=_command_train)


def _add_evaluate_parser(subparsers, global_options):
    parser = subparsers.add_parser(
        "evaluate", parents=[global_options], help="measure a model on a labelled folder",
        description="Report accuracy, balanced accuracy, ROC AUC and a per-class table of a model "
        "on labelled faces.",
    )
    _add_data_arguments(parser)
    _add_model_argument(parser)
    parser.add_argument(
        "--threshold", type=_probability, metavar="T",
        help="smile probability from which a face counts as smiling, 0 to 1 (default: the model's threshold)",
    )
    parser.add_argument("--roc", metavar="PNG", help="write the ROC curve to this image (needs matplotlib)")
    parser.add_argument(
        "--errors", metavar="PNG",
        help="write a contact sheet of the misclassified faces to this image, most confident errors first",
    )
    parser.add_argument(
        "--max-errors", type=_positive_int, default=DEFAULT_MAX_ERRORS, metavar="N",
        help=f"maximum number of faces on the --errors sheet (default: {DEFAULT_MAX_ERRORS})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=_command_evaluate)


def _add_predict_parser(subparsers, global_options):
    parser = subparsers.add_parser(
        "predict", parents=[global_options], help="tell whether faces in image files are smiling",
        description="Print one line per image: path, label and smile probability, separated by tabs. "
        "A folder is scanned (not recursively) for image files. Files that fail get one error line "
        "on stderr each and make the exit code 1.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE|DIR", help="image files or folders of images")
    _add_model_argument(parser)
    parser.add_argument(
        "--threshold", type=_probability, metavar="T",
        help="smile probability from which a face counts as smiling, 0 to 1 (default: the model's threshold)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument(
        "--detect-faces", action="store_true",
        help="crop the largest face of each image before predicting (needs OpenCV: "
        'pip install "csmile[faces]")',
    )
    parser.set_defaults(handler=_command_predict)


def build_parser():
    """Return the argument parser of the ``csmile`` command."""
    global_options = _ArgumentParser(add_help=False)
    _add_global_options(global_options, suppress_defaults=True)

    parser = _ArgumentParser(
        prog=PROG,
        description="Smile detection with a small convolutional network.",
        epilog="Run 'csmile COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_global_options(parser, suppress_defaults=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_train_parser(subparsers, global_options)
    _add_evaluate_parser(subparsers, global_options)
    _add_predict_parser(subparsers, global_options)

    summarize = subparsers.add_parser(
        "summarize", parents=[global_options], help="count classes, unreadable files and duplicates",
        description="Print the class counts, the unreadable files and the exact duplicates of a data set.",
    )
    _add_data_arguments(summarize)
    summarize.set_defaults(handler=_command_summarize)

    info = subparsers.add_parser(
        "info", parents=[global_options], help="print the version, kernels and threads in use",
        description="Print the csmile version, the active kernels, the default model and the thread count.",
    )
    info.set_defaults(handler=_command_info)
    return parser


def _paper_constructor():
    from .estimator import SmileNet

    return SmileNet.paper


# ---------------------------------------------------------------------------
# Shared steps
# ---------------------------------------------------------------------------


def _check_output_path(path, option):
    """Raise before long work when ``path`` cannot be written later."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"{option} {path}: folder {folder} does not exist; create it first")
    if os.path.isdir(path):
        raise CommandError(f"{option} {path}: is a folder; give a file name")


def _check_matplotlib(option):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandError(
            f"{option} needs matplotlib, which is not installed; "
            'install it with: pip install "csmile[plot]"'
        ) from None


def _resolve_data_root(data):
    if data:
        return data
    from .data import default_data_paths

    data_root, _ = default_data_paths()
    if data_root is None:
        raise CommandError("no data folder given; pass DATA or set the CSMILE_DATA environment variable")
    return data_root


def _resolve_split(split):
    """Return the split list path: ``split`` itself, or a match in CSMILE_SPLITS."""
    if split is None or os.path.exists(split):
        return split
    from .data import default_data_paths

    _, splits_dir = default_data_paths()
    if splits_dir is None or os.path.dirname(split):
        return split
    for name in (split, f"{split}.txt", f"smilesmiled-{split}.txt"):
        candidate = os.path.join(splits_dir, name)
        if os.path.isfile(candidate):
            logger.debug("split %r found as %s", split, candidate)
            return candidate
    return split


def _read_data(args, size):
    """Read the data set named by ``args.data`` and ``args.split``, with a progress bar."""
    from .data import read_dataset

    root = _resolve_data_root(args.data)
    split = _resolve_split(args.split)
    logger.debug("reading %s (split: %s)", root, split or "all images")
    with ProgressBar(None, "reading images", enabled=not args.quiet) as bar:

        def report(n_done, n_total):
            bar.total = n_total
            bar.update(n_done - bar.n)

        return read_dataset(root, split=split, size=size, progress=report)


def _load_model(path):
    from .estimator import SmileNet, load

    if path is None:
        logger.debug("loading the pretrained model")
        try:
            return SmileNet.pretrained()
        except FileNotFoundError:
            raise CommandError(
                "the pretrained model file is missing from this installation; "
                "reinstall csmile or pass --model MODEL"
            ) from None
    return load(path)


def _positive_probabilities(model, faces):
    """Return the probability of ``model.classes_[1]`` (smiling) for each face."""
    return model.predict_proba(faces)[:, 1]


def _threshold_of(model, threshold):
    return float(model.threshold if threshold is None else threshold)


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


_TRAIN_OPTIONS = {
    # command-line dest -> SmileNet parameter
    "filters": "filters",
    "kernel_size": "kernel_size",
    "dense": "dense",
    "dropout": "dropout",
    "image_size": "image_size",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "optimizer": "optimizer",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "lr_schedule": "lr_schedule",
    "validation_fraction": "validation_fraction",
    "patience": "patience",
    "n_jobs": "n_jobs",
    "seed": "random_state",
}


def _build_model(args):
    """Return an unfitted SmileNet from the train options; validate them early."""
    from .estimator import SmileNet

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
    from .data import summarize
    from .plots import plot_history, write_history_csv

    model = _build_model(args)
    history_path = args.history or _default_history_path(args.out)
    _check_output_path(args.out, "--out")
    _check_output_path(history_path, "--history")
    if args.plot:
        _check_output_path(args.plot, "--plot")
        _check_matplotlib("--plot")

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


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------


def _command_evaluate(args):
    if args.roc:
        _check_output_path(args.roc, "--roc")
        _check_matplotlib("--roc")
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
    from .plots import plot_roc

    if auc is None:
        raise CommandError(f"--roc {path}: a ROC curve needs images of both classes; these data have one")
    fpr, tpr, _ = roc_curve(labels, scores)
    plot_roc(fpr, tpr, auc, path)
    logger.info("saved the ROC curve to %s", path)


def _write_errors(dataset, scores, threshold, path, max_errors):
    from .plots import contact_sheet

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


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------


def _list_folder_images(folder):
    from .data import IMAGE_EXTENSIONS

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
    from .data.images import load_image, resize_gray_uint8

    image = load_image(path)
    if detect_faces:
        from .faces import crop_faces

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
    model = _load_model(args.model)
    threshold = _threshold_of(model, args.threshold)
    paths, failures = _expand_inputs(args.inputs)
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


# ---------------------------------------------------------------------------
# summarize and info
# ---------------------------------------------------------------------------


def _command_summarize(args):
    from .data import summarize

    dataset = _read_data(args, size=64)
    print(summarize(dataset).to_text())
    return EXIT_OK


def _openmp_status():
    """Describe the OpenMP support of the kernels: an explicit flag, else the runtime loaded."""
    from . import kernels

    for name in ("openmp_enabled", "has_openmp"):
        flag = getattr(kernels, name, None)
        if flag is not None:
            enabled = flag() if callable(flag) else flag
            return "yes" if enabled else "no (kernels built single-threaded)"
    if kernels.backend() != "cython":
        return "no (pure-Python kernels)"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    # NOTE: a runtime loaded by another extension would also be listed here, so
    # this shows that OpenMP is present in the process, not that the kernels use it.
    runtimes = sorted({pool["prefix"] for pool in threadpool_info() if pool.get("user_api") == "openmp"})
    if runtimes:
        return f"runtime loaded ({', '.join(runtimes)})"
    return "no runtime loaded (kernels probably built single-threaded)"


def _optional_package_version(name):
    try:
        module = __import__(name)
    except ImportError:
        return "not installed"
    return getattr(module, "__version__", "installed")


def _command_info(args):
    from . import kernels
    from .estimator import PRETRAINED_RESOURCE
    from .threads import resolve_n_threads

    model_path = resources.files("csmile") / "pretrained" / PRETRAINED_RESOURCE
    model_state = "" if model_path.is_file() else " (missing)"
    backend = kernels.backend()
    if backend == "reference":
        backend += " (compiled kernels not built; slow)"
    lines = [
        f"csmile      {__version__}",
        f"kernels     {backend}",
        f"OpenMP      {_openmp_status()}",
        f"threads     {resolve_n_threads(None)} (OMP_NUM_THREADS if set, else all cores)",
        f"model       {model_path}{model_state}",
        f"python      {platform.python_version()}",
        f"numpy       {np.__version__}",
        f"matplotlib  {_optional_package_version('matplotlib')}",
        f"opencv      {_optional_package_version('cv2')}",
    ]
    print("\n".join(lines))
    return EXIT_OK


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def _one_line(error):
    text = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    return " ".join(text.split())


def main(argv=None):
    """Run the ``csmile`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 on success, 1 on failure, 2 for invalid arguments, 130
        when interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return EXIT_USAGE
    except SystemExit as exit_request:
        # --help and --version print, then exit with code 0.
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE

    with _logging_configured(args.quiet, args.verbose):
        try:
            return args.handler(args)
        except KeyboardInterrupt:
            sys.stderr.write(f"{PROG}: error: interrupted\n")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_FAILURE
        except UsageError as error:
            sys.stderr.write(f"{PROG}: error: {error}\n")
            return EXIT_USAGE
        except Exception as error:  # noqa: BLE001 - every error becomes one line, see the module docstring.
            if args.verbose:
                traceback.print_exc(file=sys.stderr)
            expected = isinstance(error, (CommandError, OSError, ValueError, TypeError, ImportError, MemoryError))
            message = _one_line(error)
            if not expected:
                message = f"unexpected {type(error).__name__}: {message} (run with --verbose for the traceback)"
            sys.stderr.write(f"{PROG}: error: {message}\n")
            return EXIT_FAILURE


def _silence_stdout():
    """Point stdout at /dev/null after the reader of a pipe went away, so exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
