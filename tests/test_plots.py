"""Tests of csmile.plots: valid files, atomic writes, clear errors."""

import csv
import os
import sys

import numpy as np
import pytest
from PIL import Image

from csmile import plots


@pytest.fixture
def history():
    return [
        {
            "epoch": epoch,
            "loss": 1.0 / epoch,
            "accuracy": 0.5 + 0.05 * epoch,
            "balanced_accuracy": 0.5 + 0.04 * epoch,
            "val_loss": 1.2 / epoch,
            "val_accuracy": 0.5 + 0.045 * epoch,
            "val_balanced_accuracy": 0.5 + 0.035 * epoch,
            "learning_rate": 1e-3,
            "seconds": 0.5,
        }
        for epoch in range(1, 6)
    ]


def leftover_temp_files(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


# ---------------------------------------------------------------------------
# Atomic output
# ---------------------------------------------------------------------------


def test_atomic_output_replaces_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with plots.atomic_output_path(target) as temp_path:
        with open(temp_path, "w") as handle:
            handle.write("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert leftover_temp_files(tmp_path) == []


def test_atomic_output_keeps_old_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with plots.atomic_output_path(target) as temp_path:
            with open(temp_path, "w") as handle:
                handle.write("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert leftover_temp_files(tmp_path) == []


def test_atomic_output_no_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with plots.atomic_output_path(target):
            raise RuntimeError("crash while writing")
    assert not target.exists()


def test_atomic_output_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with plots.atomic_output_path(tmp_path / "missing" / "out.txt"):
            pass


def test_atomic_output_folder_target(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        with plots.atomic_output_path(tmp_path):
            pass


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_atomic_output_follows_umask(tmp_path):
    target = tmp_path / "out.txt"
    old_umask = os.umask(0o022)
    try:
        with plots.atomic_output_path(target) as temp_path:
            with open(temp_path, "w") as handle:
                handle.write("x")
    finally:
        os.umask(old_umask)
    assert target.stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------
# History CSV
# ---------------------------------------------------------------------------


def test_history_csv_rows(tmp_path, history):
    path = tmp_path / "history.csv"
    plots.write_history_csv(history, path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    assert float(rows[2]["val_loss"]) == pytest.approx(1.2 / 3)
    assert int(rows[4]["epoch"]) == 5


def test_history_csv_epoch_first(tmp_path):
    path = tmp_path / "history.csv"
    plots.write_history_csv([{"loss": 0.5, "epoch": 1}], path)
    assert path.read_text().splitlines()[0] == "epoch,loss"


def test_history_csv_missing_values(tmp_path):
    path = tmp_path / "history.csv"
    plots.write_history_csv([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "val_loss": None}], path)
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss"
    assert lines[1] == "1,0.5,"
    assert lines[2] == "2,0.4,"


def test_history_csv_empty(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plots.write_history_csv([], tmp_path / "history.csv")


def test_history_csv_not_dicts(tmp_path):
    with pytest.raises(TypeError, match="list of dicts"):
        plots.write_history_csv([0.5, 0.4], tmp_path / "history.csv")


# ---------------------------------------------------------------------------
# Matplotlib plots
# ---------------------------------------------------------------------------


def test_plot_history_png(tmp_path, history):
    pytest.importorskip("matplotlib")
    path = tmp_path / "history.png"
    plots.plot_history(history, path, best_epoch=4)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > image.height


def test_plot_history_without_validation(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "history.png"
    plots.plot_history([{"epoch": 1, "loss": 0.7, "accuracy": 0.6}, {"epoch": 2, "loss": 0.5, "accuracy": 0.7}], path)
    assert path.stat().st_size > 0


def test_plot_history_leaves_pyplot_backend(tmp_path, history):
    matplotlib = pytest.importorskip("matplotlib")
    backend = matplotlib.get_backend()
    plots.plot_history(history, tmp_path / "history.png")
    assert matplotlib.get_backend() == backend


def test_plot_history_svg(tmp_path, history):
    pytest.importorskip("matplotlib")
    path = tmp_path / "history.svg"
    plots.plot_history(history, path)
    assert "<svg" in path.read_text()[:1000]


def test_plot_history_bad_suffix(tmp_path, history):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        plots.plot_history(history, tmp_path / "history.txt")
    assert leftover_temp_files(tmp_path) == []


def test_plot_roc_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "roc.png"
    plots.plot_roc([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0], 0.875, path)
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_plot_roc_shape_mismatch(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        plots.plot_roc([0.0, 1.0], [0.0, 0.5, 1.0], 0.5, tmp_path / "roc.png")


def test_plots_without_matplotlib(tmp_path, history, monkeypatch):
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"csmile\[plot\]"):
        plots.plot_history(history, tmp_path / "history.png")
    with pytest.raises(ImportError, match=r"csmile\[plot\]"):
        plots.plot_roc([0, 1], [0, 1], 0.5, tmp_path / "roc.png")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Contact sheet
# ---------------------------------------------------------------------------


def test_contact_sheet_layout(tmp_path, rng):
    images = [rng.integers(0, 256, size=(64, 64), dtype=np.uint8) for _ in range(13)]
    path = tmp_path / "sheet.png"
    plots.contact_sheet(images, [f"smiling\np={i / 13:.2f}" for i in range(13)], path, columns=5, scale=2)
    with Image.open(path) as sheet:
        width, height = sheet.size
        assert sheet.format == "PNG"
    # 5 columns of 128-pixel tiles and 3 rows, each with room for two caption lines.
    assert width == 5 * (128 + 8)
    assert height > 3 * 128
    assert height % 3 == 0


def test_contact_sheet_pixels_scaled(tmp_path):
    image = np.zeros((4, 6), dtype=np.uint8)
    image[1, 2] = 200
    path = tmp_path / "sheet.png"
    plots.contact_sheet([image], [""], path, columns=1, scale=3)
    with Image.open(path) as sheet:
        pixels = np.asarray(sheet)
    margin = 4
    block = pixels[margin + 3:margin + 6, margin + 6:margin + 9]
    assert (block == 200).all()
    assert pixels[margin, margin] == 0


def test_contact_sheet_mixed_sizes(tmp_path, rng):
    images = [rng.integers(0, 256, size=shape, dtype=np.uint8) for shape in [(64, 64), (32, 48)]]
    path = tmp_path / "sheet.png"
    plots.contact_sheet(images, ["a", "b"], path, scale=1)
    with Image.open(path) as sheet:
        assert sheet.size[0] == 2 * (64 + 8)


def test_contact_sheet_long_caption(tmp_path, rng):
    images = [rng.integers(0, 256, size=(16, 16), dtype=np.uint8)]
    path = tmp_path / "sheet.png"
    plots.contact_sheet(images, ["x" * 200], path, scale=1)
    with Image.open(path) as sheet:
        assert sheet.size[0] == 16 + 8


def test_contact_sheet_jpeg(tmp_path, rng):
    images = [rng.integers(0, 256, size=(64, 64), dtype=np.uint8)]
    path = tmp_path / "sheet.jpg"
    plots.contact_sheet(images, ["not smiling"], path)
    with Image.open(path) as sheet:
        assert sheet.format == "JPEG"


@pytest.mark.parametrize(
    "images, captions, message",
    [
        ([], [], "at least one image"),
        ([np.zeros((8, 8), np.uint8)], [], "one caption per image"),
        ([np.zeros((8, 8), np.float32)], ["a"], "uint8"),
        ([np.zeros((8, 8, 3), np.uint8)], ["a"], "2-D"),
    ],
    ids=["empty", "captions", "float", "rgb"],
)
def test_contact_sheet_invalid(tmp_path, images, captions, message):
    with pytest.raises(ValueError, match=message):
        plots.contact_sheet(images, captions, tmp_path / "sheet.png")
    assert os.listdir(tmp_path) == []


def test_contact_sheet_bad_suffix(tmp_path):
    with pytest.raises(ValueError, match="unknown image file type"):
        plots.contact_sheet([np.zeros((8, 8), np.uint8)], ["a"], tmp_path / "sheet.xyz")
