"""Argument parser of the ``csmile`` command and its option types."""

import argparse
import inspect

from .. import __version__
from .common import PROG, UsageError
from .evaluate import _command_evaluate
from .info import _command_info, _command_summarize
from .predict import _command_predict
from .train import _command_train

DEFAULT_MAX_ERRORS = 100


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError in place of printing and exiting."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


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
    from ..estimator import SmileNet

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
        "--convs-per-block", type=_positive_int, metavar="N",
        help=f"convolutions in each conv block, 1 to 8 (default: {defaults['convs_per_block']})",
    )
    architecture.add_argument(
        "--batch-norm", action=argparse.BooleanOptionalAction,
        help="batch-normalise the output of every convolution "
        f"(default: {'on' if defaults['batch_norm'] else 'off'})",
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
        "--label-smoothing", type=float, metavar="AMOUNT",
        help="share of each training target spread over both classes, 0 to <1 "
        f"(default: {defaults['label_smoothing']})",
    )
    training.add_argument(
        "--weight-averaging", type=float, metavar="DECAY",
        help="decay of the moving average of the weights that validation and the saved model use, "
        f"0 to <1; 0 turns it off (default: {defaults['weight_averaging']})",
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
        help="threads for training, 1 to 256 (default: OMP_NUM_THREADS if set, else all cores)",
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
    parser.add_argument("inputs", nargs="*", metavar="IMAGE|DIR", help="image files or folders of images")
    parser.add_argument(
        "--samples", action="store_true",
        help="also predict the sample faces shipped with csmile (8 SMILEsmileD faces)",
    )
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
    from ..estimator import SmileNet

    return SmileNet.paper
