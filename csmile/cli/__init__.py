"""The ``csmile`` command: train, evaluate, predict, summarize and info.

Results go to standard output. Logs, progress bars and errors go to standard
error; progress bars appear only when standard error is a terminal. Every
error ends the command with one line ``csmile: error: ...`` and a non-zero
exit code (1 for a failure, 2 for invalid arguments, 130 when interrupted);
``--verbose`` adds the traceback.
"""

import os
import sys
import traceback

from .common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    CommandError,
    UsageError,
    _logging_configured,
    _one_line,
)
from .parser import build_parser

__all__ = ["build_parser", "main"]


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
