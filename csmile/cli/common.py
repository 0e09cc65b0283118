"""Errors, exit codes, logging setup and the steps shared by the ``csmile`` commands."""

import contextlib
import logging
import os
import sys

from ..progress import ProgressBar

PROG = "csmile"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

logger = logging.getLogger(__name__)


class CommandError(Exception):
    """A failure to report as one line, without a traceback."""


class UsageError(Exception):
    """Invalid command-line arguments."""


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
# Shared steps
# ---------------------------------------------------------------------------


def _check_output_path(path, option):
    """Raise before long work when ``path`` cannot be written later."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"{option} {path}: folder {folder} does not exist; create it first")
    if os.path.isdir(path):
        raise CommandError(f"{option} {path}: is a folder; give a file name")


def _check_figure_format(path, option):
    """Raise before long work when matplotlib cannot write ``path``'s file type."""
    from ..plots import _figure_format

    try:
        _figure_format(path)
    except ValueError as error:
        raise CommandError(f"{option}: {error}") from None


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
    from ..data import default_data_paths

    data_root, _ = default_data_paths()
    if data_root is None:
        raise CommandError("no data folder given; pass DATA or set the CSMILE_DATA environment variable")
    return data_root


def _resolve_split(split):
    """Return the split list path: ``split`` itself, or a match in CSMILE_SPLITS."""
    if split is None or os.path.exists(split):
        return split
    from ..data import default_data_paths

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
    from ..data import read_dataset

    root = _resolve_data_root(args.data)
    split = _resolve_split(args.split)
    logger.debug("reading %s (split: %s)", root, split or "all images")
    with ProgressBar(None, "reading images", enabled=not args.quiet) as bar:

        def report(n_done, n_total):
            bar.total = n_total
            bar.update(n_done - bar.n)

        return read_dataset(root, split=split, size=size, progress=report)


def _load_model(path):
    from ..estimator import SmileNet, load

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


def _one_line(error):
    text = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    return " ".join(text.split())
