"""A single-line progress bar for terminals, silent everywhere else.

The bar is drawn only when its stream is a terminal, so logs, pipes and CI
output stay free of carriage returns. It has no dependency beyond the
standard library.
"""

import shutil
import sys
import time

DEFAULT_MIN_INTERVAL = 0.1


def _stream_is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):
        # A closed or detached stream raises here; it cannot show a bar either.
        return False


def progress_enabled(verbose):
    """Return True when a progress bar should be drawn for this verbosity.

    Parameters
    ----------
    verbose : int or None
        Verbosity level of an estimator or command; bars need 1 or more.

    Returns
    -------
    bool
        True when ``verbose >= 1`` and standard error is a terminal.
    """
    return bool(verbose) and verbose > 0 and _stream_is_terminal(sys.stderr)


def _format_duration(seconds):
    seconds = int(round(seconds))
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if hours:
        return f"{hours:d}:{minutes:02d}:{seconds:02d}"
    return f"{minutes:02d}:{seconds:02d}"


def _format_rate(rate):
    if rate >= 100:
        return f"{rate:.0f}/s"
    if rate >= 1:
        return f"{rate:.1f}/s"
    if rate > 0:
        return f"{1.0 / rate:.1f}s/it"
    return "?/s"


class ProgressBar:
    """A progress bar with count, rate and estimated time left.

    Parameters
    ----------
    total : int or None
        Number of steps expected. With None the bar shows only the count,
        the elapsed time and the rate.
    description : str, default=""
        Text shown before the bar.
    stream : file-like, default=None
        Where the bar is drawn; None means ``sys.stderr`` at construction.
    enabled : bool or None, default=None
        False never draws. True or None draw only when ``stream`` is a
        terminal (``stream.isatty()`` is true).
    min_interval : float, default=0.1
        Minimum time in seconds between two redraws. The last step and
        :meth:`close` always redraw.

    Examples
    --------
    >>> import io
    >>> with ProgressBar(3, "demo", stream=io.StringIO()) as bar:
    ...     for _ in range(3):
    ...         bar.update()
    >>> bar.n
    3
    """

    def __init__(self, total, description="", stream=None, enabled=None, min_interval=DEFAULT_MIN_INTERVAL):
        if total is not None:
            total = int(total)
            if total < 0:
                raise ValueError(f"total must be 0 or more, or None when unknown; got {total}.")
        self.total = total
        self.description = str(description)
        self.stream = sys.stderr if stream is None else stream
        self.min_interval = float(min_interval)
        self.visible = enabled is not False and _stream_is_terminal(self.stream)
        self.n = 0
        self.postfix = ""
        self.closed = False
        self._start_time = time.monotonic()
        self._last_draw_time = None
        self._last_drawn_state = None
        self._last_line_width = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()
        return False

    def update(self, n=1):
        """Advance the bar by ``n`` steps and redraw it if due."""
        self.n += n
        self._draw_if_due()

    def set_postfix(self, text):
        """Set the text shown after the bar, such as the current loss."""
        self.postfix = str(text)
        self._draw_if_due()

    def close(self):
        """Draw the final state unless it is shown already, then end the line.

        Later calls do nothing.
        """
        if self.closed:
            return
        self.closed = True
        if self.visible:
            if self._last_drawn_state != (self.n, self.postfix):
                self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw_if_due(self):
        if not self.visible or self.closed:
            return
        now = time.monotonic()
        finished = self.total is not None and self.n >= self.total
        if (
            finished
            or self._last_draw_time is None
            or now - self._last_draw_time >= self.min_interval
        ):
            self._draw(now)

    def _draw(self, now=None):
        now = time.monotonic() if now is None else now
        self._last_draw_time = now
        self._last_drawn_state = (self.n, self.postfix)
        line = self.format_line(now - self._start_time)
        # Trailing spaces erase what remains of a longer previous line.
        padding = max(0, self._last_line_width - len(line))
        self._last_line_width = len(line)
        self.stream.write("\r" + line + " " * padding)
        self.stream.flush()

    def format_line(self, elapsed):
        """Return the bar as text after ``elapsed`` seconds, without drawing it."""
        rate = self.n / elapsed if elapsed > 0 else 0.0
        prefix = f"{self.description}: " if self.description else ""
        suffix = f" {self.postfix}" if self.postfix else ""

        if self.total is None:
            return (
                f"{prefix}{self.n} [{_format_duration(elapsed)}, {_format_rate(rate)}]{suffix}"
            )

        fraction = min(1.0, self.n / self.total) if self.total else 1.0
        if rate > 0 and self.n < self.total:
            remaining = _format_duration((self.total - self.n) / rate)
        elif self.n >= self.total:
            remaining = "00:00"
        else:
            remaining = "?"
        counts = f" {self.n}/{self.total} [{_format_duration(elapsed)}<{remaining}, {_format_rate(rate)}]"
        percent = f"{100 * fraction:3.0f}%"

        terminal_width = shutil.get_terminal_size((80, 24)).columns
        bar_width = terminal_width - len(prefix) - len(percent) - len(counts) - len(suffix) - 3
        bar_width = max(10, min(40, bar_width))
        n_filled = int(fraction * bar_width)
        bar = "#" * n_filled + "-" * (bar_width - n_filled)
        return f"{prefix}{percent} |{bar}|{counts}{suffix}"


__all__ = ["ProgressBar", "progress_enabled"]
