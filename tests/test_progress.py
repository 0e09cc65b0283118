"""Tests of csmile.progress: drawn on terminals only, throttled, never on pipes."""

import io
import sys

import pytest

from csmile import progress
from csmile.progress import ProgressBar


class TerminalStream(io.StringIO):
    """A text stream that claims to be a terminal."""

    def isatty(self):
        return True


def drawn_lines(stream):
    """Return the states drawn so far, one per carriage return."""
    return [part.rstrip() for part in stream.getvalue().replace("\n", "").split("\r") if part]


def test_bar_silent_on_pipe():
    stream = io.StringIO()
    with ProgressBar(10, "reading", stream=stream) as bar:
        for _ in range(10):
            bar.update()
        bar.set_postfix("loss 0.5")
    assert stream.getvalue() == ""


def test_bar_disabled_on_terminal():
    stream = TerminalStream()
    with ProgressBar(10, stream=stream, enabled=False) as bar:
        bar.update(10)
    assert stream.getvalue() == ""


def test_bar_enabled_true_still_needs_terminal():
    stream = io.StringIO()
    with ProgressBar(3, stream=stream, enabled=True) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


def test_bar_draws_on_terminal():
    stream = TerminalStream()
    with ProgressBar(4, "epoch 1", stream=stream, min_interval=0) as bar:
        for _ in range(4):
            bar.update()
    lines = drawn_lines(stream)
    assert lines[0].startswith("epoch 1:")
    assert "1/4" in lines[0]
    assert "4/4" in lines[-1]
    assert "100%" in lines[-1]
    assert stream.getvalue().endswith("\n")


def test_bar_single_line():
    stream = TerminalStream()
    with ProgressBar(50, stream=stream, min_interval=0) as bar:
        for _ in range(50):
            bar.update()
    assert stream.getvalue().count("\n") == 1


def test_bar_throttles_redraws():
    stream = TerminalStream()
    with ProgressBar(1000, stream=stream, min_interval=3600) as bar:
        for _ in range(1000):
            bar.update()
    # Only the first update and the last step draw. Close finds the final state
    # drawn already, and every other update is throttled.
    assert len(drawn_lines(stream)) == 2


def test_bar_close_draws_pending_state():
    stream = TerminalStream()
    bar = ProgressBar(10, stream=stream, min_interval=3600)
    bar.update(3)
    bar.update(4)
    bar.close()
    lines = drawn_lines(stream)
    assert len(lines) == 2
    assert "7/10" in lines[-1]


def test_bar_postfix_shown():
    stream = TerminalStream()
    with ProgressBar(2, stream=stream, min_interval=0) as bar:
        bar.update()
        bar.set_postfix("loss 0.4213")
    assert drawn_lines(stream)[-1].endswith("loss 0.4213")


def test_bar_unknown_total():
    stream = TerminalStream()
    with ProgressBar(None, "files", stream=stream, min_interval=0) as bar:
        bar.update(7)
    line = drawn_lines(stream)[-1]
    assert line.startswith("files: 7 [")
    assert "%" not in line


def test_bar_pads_shorter_line():
    stream = TerminalStream()
    bar = ProgressBar(2, stream=stream, min_interval=0)
    bar.set_postfix("a long postfix text")
    bar.set_postfix("")
    parts = stream.getvalue().split("\r")
    assert len(parts[-1]) >= len(parts[-2])
    bar.close()


def test_bar_close_twice():
    stream = TerminalStream()
    bar = ProgressBar(1, stream=stream)
    bar.update()
    bar.close()
    bar.close()
    assert stream.getvalue().count("\n") == 1


def test_bar_closed_on_exception():
    stream = TerminalStream()
    with pytest.raises(RuntimeError):
        with ProgressBar(5, stream=stream) as bar:
            bar.update()
            raise RuntimeError("stop")
    assert bar.closed
    assert stream.getvalue().endswith("\n")


def test_bar_closed_stream_is_silent():
    # isatty() of a closed StringIO raises ValueError, which must not escape.
    stream = io.StringIO()
    stream.close()
    bar = ProgressBar(3, stream=stream)
    assert not bar.visible


def test_bar_negative_total():
    with pytest.raises(ValueError, match="total"):
        ProgressBar(-1)


@pytest.mark.parametrize(
    "n_done, elapsed, expected",
    [(5, 10.0, "00:10<00:10"), (1, 11.0, "00:11<01:39"), (100, 4000.0, "1:06:40<00:00")],
    ids=["half", "one-step", "hours"],
)
def test_bar_format_eta(n_done, elapsed, expected):
    bar = ProgressBar(10 if n_done <= 10 else n_done, stream=io.StringIO())
    bar.n = n_done
    assert expected in bar.format_line(elapsed)


def test_bar_format_rate():
    bar = ProgressBar(100, stream=io.StringIO())
    bar.n = 50
    assert "25.0/s" in bar.format_line(2.0)


def test_bar_format_slow_rate():
    bar = ProgressBar(100, stream=io.StringIO())
    bar.n = 1
    assert "4.0s/it" in bar.format_line(4.0)


def test_progress_enabled_levels(monkeypatch):
    monkeypatch.setattr(sys, "stderr", TerminalStream())
    assert progress.progress_enabled(1)
    assert progress.progress_enabled(2)
    assert not progress.progress_enabled(0)
    assert not progress.progress_enabled(None)


def test_progress_enabled_pipe(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.progress_enabled(1)
