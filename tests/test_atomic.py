"""Atomic output: regular files are replaced whole; links and devices survive."""

import os

import pytest

from csmile.atomic import atomic_output_path


def write_text(path, text):
    with atomic_output_path(path) as temp_path:
        with open(temp_path, "w") as handle:
            handle.write(text)


def test_regular_file_replaced(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output_path(target) as temp_path:
            with open(temp_path, "w") as handle:
                handle.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_symlink_kept_and_target_written(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_device_written_in_place():
    write_text(os.devnull, "discarded")
    assert not os.path.isfile(os.devnull)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_not_replaced(tmp_path):
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []

    def read_pipe():
        with open(pipe) as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read_pipe)
    reader.start()
    write_text(pipe, "through the pipe")
    reader.join(timeout=10)
    assert received == ["through the pipe"]
    assert not os.path.isfile(pipe)
