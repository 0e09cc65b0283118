"""Tests of the csmile command line, run in-process through cli.main.

A session fixture writes 40 synthetic 64x64 faces as PNG files in a
two-folder layout: a curved mouth is smiling, a straight one is not. It adds
one corrupted JPEG file and one image copied into both classes, and trains a
tiny model on the faces.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

import csmile
from csmile import cli
from csmile.cli import parser as cli_parser
from csmile.data import load_image, read_dataset

N_PER_CLASS = 20
CLASS_FOLDERS = ("not_smiling", "smiling")


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


def synthetic_face(rng, smiling):
    """Draw a 64x64 grayscale cartoon face with a random shift, brightness and noise."""
    image = Image.new("L", (64, 64), int(rng.integers(60, 120)))
    draw = ImageDraw.Draw(image)
    dx, dy = (int(value) for value in rng.integers(-3, 4, size=2))
    draw.ellipse((12 + dx, 6 + dy, 52 + dx, 58 + dy), fill=int(rng.integers(150, 200)))
    draw.ellipse((21 + dx, 22 + dy, 27 + dx, 27 + dy), fill=30)
    draw.ellipse((37 + dx, 22 + dy, 43 + dx, 27 + dy), fill=30)
    if smiling:
        draw.arc((20 + dx, 30 + dy, 44 + dx, 48 + dy), 20, 160, fill=20, width=3)
    else:
        draw.line((22 + dx, 43 + dy, 42 + dx, 43 + dy), fill=20, width=3)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0.0, 8.0, size=(64, 64))
    return np.clip(pixels, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(2019)
    for label, folder in enumerate(CLASS_FOLDERS):
        (root / folder).mkdir()
        for index in range(N_PER_CLASS):
            Image.fromarray(synthetic_face(rng, smiling=bool(label))).save(root / folder / f"{index}.png")
    # PNG keeps the pixels exact, so the copy is an exact duplicate with the other label.
    (root / "smiling" / "copy_of_0.png").write_bytes((root / "not_smiling" / "0.png").read_bytes())
    (root / "smiling" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


@pytest.fixture(scope="session")
def model_path(data_dir, tmp_path_factory):
    dataset = read_dataset(data_dir)
    labels = np.asarray(dataset.class_names)[dataset.labels]
    model = csmile.SmileNet(
        filters=(4,), dense=(), epochs=2, augment=False, validation_fraction=0.0,
        learning_rate=0.01, random_state=0,
    ).fit(dataset.images, labels)
    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def model(model_path):
    return csmile.load(model_path)


@pytest.fixture
def image_dir(data_dir, tmp_path):
    """A folder of four good images and one text file that is not an image."""
    folder = tmp_path / "images"
    folder.mkdir()
    for folder_name in CLASS_FOLDERS:
        for index in (1, 2):
            source = data_dir / folder_name / f"{index}.png"
            (folder / f"{folder_name}_{index}.png").write_bytes(source.read_bytes())
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def run(capsys, *argv):
    """Run csmile in-process; return (exit code, stdout, stderr)."""
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("csmile: error:")]


# ---------------------------------------------------------------------------
# Arguments and errors
# ---------------------------------------------------------------------------


def test_no_command(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("csmile: error:")


def test_unknown_option(capsys):
    code, _, err = run(capsys, "info", "--bogus")
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "--bogus" in err


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "evaluate", "--help")
    assert code == 0
    assert "--threshold" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert csmile.__version__ in out


def test_interrupt_one_line(capsys, monkeypatch, data_dir):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_parser, "_command_summarize", interrupted)
    code, _, err = run(capsys, "summarize", data_dir)
    assert code == 130
    assert err.strip() == "csmile: error: interrupted"


def test_unexpected_error_one_line(capsys, monkeypatch, data_dir):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_parser, "_command_summarize", broken)
    code, _, err = run(capsys, "summarize", data_dir)
    assert code == 1
    assert err.splitlines() == ["csmile: error: unexpected RuntimeError: boom (run with --verbose for the traceback)"]


def test_verbose_shows_traceback(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "evaluate", data_dir, "--model", tmp_path / "missing.npz", "--verbose")
    assert code == 1
    assert "Traceback" in err
    assert error_lines(err)


def test_logging_restored_after_main(capsys, data_dir):
    package_logger = __import__("logging").getLogger("csmile")
    handlers = list(package_logger.handlers)
    run(capsys, "summarize", data_dir)
    assert package_logger.handlers == handlers


# ---------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------


def test_info(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert csmile.__version__ in out
    assert csmile.backend() in out


def test_info_module_entry_point():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "csmile", "info"],
        capture_output=True, text=True, timeout=120, env=environment, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("csmile")
    assert csmile.__version__ in result.stdout


# ---------------------------------------------------------------------------
# summarize
# ---------------------------------------------------------------------------


def test_summarize(capsys, data_dir):
    code, out, _ = run(capsys, "summarize", data_dir)
    assert code == 0
    assert f"{2 * N_PER_CLASS + 1} images" in out
    assert "unreadable files skipped: 1" in out
    assert "conflicting labels: 1 groups" in out


def test_summarize_data_from_environment(capsys, data_dir, monkeypatch):
    monkeypatch.setenv("CSMILE_DATA", str(data_dir))
    code, out, _ = run(capsys, "summarize")
    assert code == 0
    assert f"{2 * N_PER_CLASS + 1} images" in out


def test_summarize_no_data(capsys, monkeypatch):
    monkeypatch.delenv("CSMILE_DATA", raising=False)
    code, _, err = run(capsys, "summarize")
    assert code == 1
    assert error_lines(err) == [
        "csmile: error: no data folder given; pass DATA or set the CSMILE_DATA environment variable"
    ]


def test_summarize_missing_folder(capsys, tmp_path):
    code, out, err = run(capsys, "summarize", tmp_path / "missing")
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "missing" in err


def test_split_name_from_environment(capsys, data_dir, tmp_path, monkeypatch):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "smilesmiled-mini.txt").write_text("smiling/3.png\nnot_smiling/4.png\nsmiling/5.png\n")
    monkeypatch.setenv("CSMILE_SPLITS", str(splits))
    code, out, _ = run(capsys, "summarize", data_dir, "--split", "mini")
    assert code == 0
    assert out.startswith("3 images: 1 not_smiling, 2 smiling")


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


TINY_TRAINING = ["--filters", "4", "--dense", "none", "--epochs", "2", "--no-augment", "--seed", "0"]


def test_train_writes_outputs(capsys, data_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "model.npz"
    plot = tmp_path / "curves.png"
    code, _, err = run(
        capsys, "train", data_dir, "--out", out, *TINY_TRAINING, "--validation-fraction", "0.25", "--plot", plot
    )
    assert code == 0, err
    trained = csmile.load(out)
    assert list(trained.classes_) == list(CLASS_FOLDERS)
    assert trained.filters == (4,)
    history_lines = (tmp_path / "model.history.csv").read_text().splitlines()
    assert len(history_lines) == 1 + len(trained.history_)
    with Image.open(plot) as image:
        assert image.format == "PNG"


def test_train_drops_conflicts(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", data_dir, "--out", tmp_path / "model.npz", *TINY_TRAINING)
    assert code == 0, err
    assert "dropped 2 images with conflicting labels" in err
    assert "training on 39 images" in err


def test_train_keep_conflicts(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", data_dir, "--out", tmp_path / "model.npz", *TINY_TRAINING, "--keep-conflicts")
    assert code == 0, err
    assert "dropped" not in err


def test_train_paper(capsys, data_dir, tmp_path):
    out = tmp_path / "paper.npz"
    history = tmp_path / "paper.csv"
    code, _, err = run(capsys, "train", data_dir, "--out", out, "--paper", "2", "--epochs", "1", "--history", history)
    assert code == 0, err
    trained = csmile.load(out)
    assert trained.filters == (2,)
    assert trained.padding == "valid"
    assert trained.batch_size == 1
    assert history.exists()


def test_train_quiet(capsys, data_dir, tmp_path):
    code, out, err = run(capsys, "train", data_dir, "--out", tmp_path / "model.npz", *TINY_TRAINING, "--quiet")
    assert code == 0
    assert out == ""
    assert err == ""


def test_train_paper_with_filters(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", data_dir, "--out", tmp_path / "m.npz", "--paper", "2", "--filters", "4")
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "--paper" in err


def test_train_invalid_dropout(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", data_dir, "--out", tmp_path / "m.npz", "--dropout", "1.5")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "dropout" in err
    assert not (tmp_path / "m.npz").exists()


def test_train_unknown_plot_format_fails_first(capsys, data_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "m.npz"
    code, _, err = run(capsys, "train", data_dir, "--out", out, *TINY_TRAINING, "--plot", tmp_path / "c.xyz")
    assert code == 1
    assert error_lines(err)[0].startswith("csmile: error: --plot")
    assert "unsupported file type" in err
    assert "epoch" not in err
    assert not out.exists()


def test_train_deep_options(capsys, data_dir, tmp_path):
    out = tmp_path / "deep.npz"
    code, _, err = run(
        capsys, "train", data_dir, "--out", out, *TINY_TRAINING, "--convs-per-block", "2", "--batch-norm",
        "--label-smoothing", "0.1", "--weight-averaging", "0.9",
    )
    assert code == 0, err
    trained = csmile.load(out)
    assert trained.convs_per_block == 2
    assert trained.batch_norm is True
    assert trained.label_smoothing == 0.1
    assert trained.weight_averaging == 0.9


def test_train_missing_out_folder(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "train", data_dir, "--out", tmp_path / "missing" / "m.npz", *TINY_TRAINING)
    assert code == 1
    assert error_lines(err)[0].startswith("csmile: error: --out")
    assert "epoch" not in err


def test_train_failure_keeps_old_model(capsys, tmp_path):
    out = tmp_path / "model.npz"
    out.write_bytes(b"previous model")
    code, _, _ = run(capsys, "train", tmp_path / "no-data", "--out", out, *TINY_TRAINING)
    assert code == 1
    assert out.read_bytes() == b"previous model"
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------


def test_evaluate_json_matches_model(capsys, data_dir, model_path, model):
    code, out, err = run(capsys, "evaluate", data_dir, "--model", model_path, "--json")
    assert code == 0, err
    report = json.loads(out)

    dataset = read_dataset(data_dir)
    expected_labels = np.asarray(dataset.class_names)[dataset.labels]
    expected_accuracy = float(np.mean(model.predict(dataset.images) == expected_labels))
    assert report["n_samples"] == 2 * N_PER_CLASS + 1
    assert report["accuracy"] == pytest.approx(expected_accuracy)
    assert report["n_unreadable_files"] == 1
    assert report["class_names"] == list(CLASS_FOLDERS)


def test_evaluate_text(capsys, data_dir, model_path):
    code, out, _ = run(capsys, "evaluate", data_dir, "--model", model_path)
    assert code == 0
    assert "balanced accuracy" in out
    assert "ROC AUC" in out
    smiling_row = next(line for line in out.splitlines() if line.startswith("smiling"))
    assert smiling_row.split()[3] == str(N_PER_CLASS + 1)


def test_evaluate_threshold_zero(capsys, data_dir, model_path):
    code, out, _ = run(capsys, "evaluate", data_dir, "--model", model_path, "--threshold", "0", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["threshold"] == 0.0
    assert report["confusion"] == [[0, N_PER_CLASS], [0, N_PER_CLASS + 1]]


def test_evaluate_threshold_out_of_range(capsys, data_dir, model_path):
    code, _, err = run(capsys, "evaluate", data_dir, "--model", model_path, "--threshold", "1.5")
    assert code == 2
    assert "from 0 to 1" in err


def test_evaluate_plots(capsys, data_dir, model_path, tmp_path):
    pytest.importorskip("matplotlib")
    roc = tmp_path / "roc.png"
    errors = tmp_path / "errors.png"
    code, _, err = run(
        capsys, "evaluate", data_dir, "--model", model_path, "--threshold", "0", "--roc", roc, "--errors", errors,
        "--max-errors", "7",
    )
    assert code == 0, err
    with Image.open(roc) as image:
        assert image.format == "PNG"
    with Image.open(errors) as image:
        assert image.format == "PNG"
    assert f"saved 7 of {N_PER_CLASS} misclassified faces" in err


def test_evaluate_quiet(capsys, data_dir, model_path):
    code, out, err = run(capsys, "evaluate", data_dir, "--model", model_path, "--quiet")
    assert code == 0
    assert "accuracy" in out
    assert err == ""


def test_evaluate_corrupted_model(capsys, data_dir, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 truncated archive")
    code, out, err = run(capsys, "evaluate", data_dir, "--model", broken)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "broken.npz" in err
    assert "Traceback" not in err


def test_evaluate_missing_model(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, "evaluate", data_dir, "--model", tmp_path / "missing.npz")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "missing.npz" in err


def test_evaluate_roc_missing_folder(capsys, data_dir, model_path, tmp_path):
    code, out, err = run(capsys, "evaluate", data_dir, "--model", model_path, "--roc", tmp_path / "no" / "roc.png")
    assert code == 1
    assert out == ""
    assert error_lines(err)[0].startswith("csmile: error: --roc")


@pytest.mark.slow
@pytest.mark.data
def test_evaluate_pretrained_smilesmiled(capsys, smilesmiled_paths):
    from importlib import resources

    from csmile.estimator import PRETRAINED_RESOURCE

    if not (resources.files("csmile") / "pretrained" / PRETRAINED_RESOURCE).is_file():
        pytest.skip(f"the pretrained model csmile/pretrained/{PRETRAINED_RESOURCE} is not in this checkout")
    data_root, splits_dir = smilesmiled_paths
    split = os.path.join(splits_dir, "smilesmiled-test.txt")
    code, out, err = run(capsys, "evaluate", data_root, "--split", split, "--json", "--quiet")
    assert code == 0, err
    report = json.loads(out)
    assert report["n_samples"] == 2633
    assert report["accuracy"] >= 0.92
    assert report["balanced_accuracy"] >= 0.92


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------


def parse_prediction_lines(out):
    rows = []
    for line in out.splitlines():
        path, label, probability = line.split("\t")
        rows.append((path, label, float(probability)))
    return rows


def test_predict_folder(capsys, image_dir, model_path, model):
    code, out, err = run(capsys, "predict", image_dir, "--model", model_path)
    assert code == 0, err
    rows = parse_prediction_lines(out)
    paths = [row[0] for row in rows]
    expected_names = sorted(name for name in os.listdir(image_dir) if name.endswith(".png"))
    assert [os.path.basename(path) for path in paths] == expected_names

    faces = np.stack([load_image(path) for path in paths])
    expected = model.predict_proba(faces)[:, 1]
    np.testing.assert_allclose([row[2] for row in rows], expected, atol=5e-5)
    assert [row[1] for row in rows] == list(model.predict(faces))


def test_predict_json(capsys, image_dir, model_path):
    code, out, _ = run(capsys, "predict", image_dir / "smiling_1.png", "--model", model_path, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["path"].endswith("smiling_1.png")
    assert record["label"] in CLASS_FOLDERS
    assert 0.0 <= record["probability"] <= 1.0


def test_predict_threshold_labels(capsys, image_dir, model_path):
    _, out_low, _ = run(capsys, "predict", image_dir, "--model", model_path, "--threshold", "0")
    _, out_high, _ = run(capsys, "predict", image_dir, "--model", model_path, "--threshold", "1")
    assert {row[1] for row in parse_prediction_lines(out_low)} == {"smiling"}
    assert {row[1] for row in parse_prediction_lines(out_high)} == {"not_smiling"}


def test_predict_bad_files(capsys, image_dir, model_path, tmp_path):
    corrupted = tmp_path / "corrupted.png"
    corrupted.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    missing = tmp_path / "missing.jpg"
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()

    code, out, err = run(
        capsys, "predict", corrupted, image_dir / "smiling_2.png", missing, empty_folder, "--model", model_path
    )
    assert code == 1
    rows = parse_prediction_lines(out)
    assert [os.path.basename(row[0]) for row in rows] == ["smiling_2.png"]
    errors = error_lines(err)
    assert len(errors) == 3
    assert any("corrupted.png" in line for line in errors)
    assert any("missing.jpg" in line and "not found" in line for line in errors)
    assert any("empty" in line and "no image files" in line for line in errors)


def test_predict_detect_faces(capsys, image_dir, model_path, monkeypatch):
    faces = pytest.importorskip("csmile.faces")
    crops = {"count": 0}

    def fake_crop_faces(image, size=64):
        crops["count"] += 1
        if crops["count"] == 1:
            return []
        return [np.full((size, size), 128, dtype=np.uint8), np.zeros((size, size), dtype=np.uint8)]

    monkeypatch.setattr(faces, "crop_faces", fake_crop_faces)
    code, out, err = run(capsys, "predict", image_dir / "smiling_1.png", image_dir / "smiling_2.png",
                         "--model", model_path, "--detect-faces")
    assert code == 1
    assert error_lines(err) == [f"csmile: error: {image_dir / 'smiling_1.png'}: no face found"]
    assert len(out.splitlines()) == 1


def test_predict_detect_faces_without_opencv(capsys, image_dir, model_path, monkeypatch):
    faces = pytest.importorskip("csmile.faces")

    def no_opencv(image, size=64):
        raise ImportError('face detection needs OpenCV; pip install "csmile[faces]"')

    monkeypatch.setattr(faces, "crop_faces", no_opencv)
    code, out, err = run(capsys, "predict", image_dir, "--model", model_path, "--detect-faces")
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "OpenCV" in err


def test_predict_samples(capsys, model_path):
    code, out, err = run(capsys, "predict", "--samples", "--model", model_path)
    assert code == 0, err
    rows = parse_prediction_lines(out)
    assert len(rows) == 8
    for path, label, probability in rows:
        assert path.endswith(".jpg")
        assert label in CLASS_FOLDERS
        assert 0.0 <= probability <= 1.0


def test_predict_no_inputs(capsys, model_path):
    code, out, err = run(capsys, "predict", "--model", model_path)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert error_lines(err) == ["csmile: error: no images given; name image files or folders, or add --samples"]
