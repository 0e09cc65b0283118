"""Tests for csmile.data.datasets: layouts, split lists and bad files."""

import os

import numpy as np
import pytest
from PIL import Image

from csmile.data import DatasetError, LabelledImages, class_order, default_data_paths, read_dataset

POSITIVES = "SMILEs/positives/positives7"
NEGATIVES = "SMILEs/negatives/negatives7"


def write_jpeg(path, value, size=64):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path, quality=95)


@pytest.fixture
def fake_smilesmiled(tmp_path):
    """A SMILEsmileD tree with 3 smiling and 4 other faces of distinct gray levels."""
    root = tmp_path / "SMILEsmileD"
    for number in (1, 2, 10):
        write_jpeg(root / POSITIVES / f"{number}.jpg", 200 + number)
    for number in (3, 4, 5, 20):
        write_jpeg(root / NEGATIVES / f"{number}.jpg", 20 + number)
    (root / "SMILEs/positives/smiles_01_pos.idx").write_text("positives7/1.jpg 1 0 0 1 1\n")
    return root


def test_smilesmiled_counts(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    assert len(dataset) == 7
    assert int(dataset.labels.sum()) == 3


def test_smilesmiled_class_names(fake_smilesmiled):
    assert read_dataset(fake_smilesmiled).class_names == ("not smiling", "smiling")


def test_smilesmiled_labels_follow_folder(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    for path, label in zip(dataset.paths, dataset.labels):
        expected = 1 if path.startswith(POSITIVES) else 0
        assert label == expected, path


def test_smilesmiled_natural_order(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    assert dataset.paths[:4] == [f"{NEGATIVES}/{n}.jpg" for n in (3, 4, 5, 20)]


def test_smilesmiled_pixels_and_dtypes(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    assert dataset.images.dtype == np.uint8
    assert dataset.images.shape == (7, 64, 64)
    assert dataset.labels.dtype == np.int64
    first = dataset.paths.index(f"{POSITIVES}/10.jpg")
    assert abs(int(dataset.images[first].mean()) - 210) <= 1


def test_smilesmiled_inner_folder(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled / "SMILEs")
    assert len(dataset) == 7
    assert dataset.paths[0] == "negatives/negatives7/3.jpg"


def test_absolute_paths_exist(fake_smilesmiled):
    for path in read_dataset(fake_smilesmiled / "SMILEs").absolute_paths():
        assert os.path.isfile(path), path


def test_resize_to_size(fake_smilesmiled):
    assert read_dataset(fake_smilesmiled, size=32).images.shape == (7, 32, 32)


def test_progress_calls(fake_smilesmiled):
    calls = []
    read_dataset(fake_smilesmiled, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (7, 7)


# ---------------------------------------------------------------------------
# Split lists
# ---------------------------------------------------------------------------


def test_split_list_order_and_labels(fake_smilesmiled, tmp_path):
    split = tmp_path / "train.txt"
    split.write_text(f"# training files\n{POSITIVES}/2.jpg\n\n{NEGATIVES}/4.jpg\n")
    dataset = read_dataset(fake_smilesmiled, split=split)
    assert dataset.paths == [f"{POSITIVES}/2.jpg", f"{NEGATIVES}/4.jpg"]
    assert dataset.labels.tolist() == [1, 0]


def test_split_backslashes(fake_smilesmiled, tmp_path):
    split = tmp_path / "windows.txt"
    split.write_text(POSITIVES.replace("/", "\\") + "\\1.jpg\r\n")
    assert read_dataset(fake_smilesmiled, split=split).paths == [f"{POSITIVES}/1.jpg"]


def test_split_with_inner_folder(fake_smilesmiled, tmp_path):
    split = tmp_path / "list.txt"
    split.write_text(f"{NEGATIVES}/5.jpg\n")
    dataset = read_dataset(fake_smilesmiled / "SMILEs", split=split)
    assert dataset.paths == ["negatives/negatives7/5.jpg"]


def test_split_missing_entry_names_line(fake_smilesmiled, tmp_path):
    split = tmp_path / "list.txt"
    split.write_text(f"{NEGATIVES}/5.jpg\n{NEGATIVES}/99.jpg\n")
    with pytest.raises(FileNotFoundError, match=r"line 2 .*99\.jpg"):
        read_dataset(fake_smilesmiled, split=split)


def test_split_entry_outside_classes(fake_smilesmiled, tmp_path):
    split = tmp_path / "list.txt"
    split.write_text("SMILEs/positives/smiles_01_pos.idx\n")
    with pytest.raises(DatasetError, match="line 1"):
        read_dataset(fake_smilesmiled, split=split)


def test_split_duplicate_line(fake_smilesmiled, tmp_path):
    split = tmp_path / "list.txt"
    split.write_text(f"{NEGATIVES}/5.jpg\n{NEGATIVES}/5.jpg\n")
    with pytest.raises(DatasetError, match="lines 1 and 2"):
        read_dataset(fake_smilesmiled, split=split)


def test_split_parent_reference(fake_smilesmiled, tmp_path):
    split = tmp_path / "list.txt"
    split.write_text("../outside.jpg\n")
    with pytest.raises(DatasetError, match=r"\.\."):
        read_dataset(fake_smilesmiled, split=split)


def test_split_file_missing(fake_smilesmiled, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        read_dataset(fake_smilesmiled, split=tmp_path / "nowhere.txt")


def test_split_only_comments(fake_smilesmiled, tmp_path):
    split = tmp_path / "list.txt"
    split.write_text("# nothing\n\n")
    with pytest.raises(DatasetError, match="names no files"):
        read_dataset(fake_smilesmiled, split=split)


# ---------------------------------------------------------------------------
# Bad files and bad folders
# ---------------------------------------------------------------------------


def test_bad_files_skipped_and_reported(fake_smilesmiled):
    (fake_smilesmiled / NEGATIVES / "30.jpg").write_text("this is text")
    (fake_smilesmiled / NEGATIVES / "31.jpg").write_bytes(b"")
    good = (fake_smilesmiled / NEGATIVES / "3.jpg").read_bytes()
    (fake_smilesmiled / POSITIVES / "32.jpg").write_bytes(good[: len(good) // 2])
    dataset = read_dataset(fake_smilesmiled)
    assert len(dataset) == 7
    reported = sorted(path for path, _ in dataset.bad_files)
    assert reported == sorted([f"{NEGATIVES}/30.jpg", f"{NEGATIVES}/31.jpg", f"{POSITIVES}/32.jpg"])
    assert all(reason for _, reason in dataset.bad_files)


def test_non_image_files_ignored(fake_smilesmiled):
    (fake_smilesmiled / NEGATIVES / "README.txt").write_text("notes")
    (fake_smilesmiled / NEGATIVES / ".DS_Store.jpg").write_text("hidden")
    dataset = read_dataset(fake_smilesmiled)
    assert len(dataset) == 7
    assert dataset.bad_files == []


def test_all_files_bad(tmp_path):
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "x.jpg").write_text("text")
    with pytest.raises(DatasetError, match="none of the 2"):
        read_dataset(tmp_path)


def test_root_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="CSMILE_DATA"):
        read_dataset(tmp_path / "absent")


def test_root_is_file(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(NotADirectoryError):
        read_dataset(path)


def test_empty_root(tmp_path):
    with pytest.raises(DatasetError, match="found 0 subfolders"):
        read_dataset(tmp_path)


def test_three_classes(tmp_path):
    for name in ("a", "b", "c"):
        write_jpeg(tmp_path / name / "1.jpg", 50)
    with pytest.raises(DatasetError, match="found 3 subfolders"):
        read_dataset(tmp_path)


def test_one_class(tmp_path):
    write_jpeg(tmp_path / "only" / "1.jpg", 50)
    with pytest.raises(DatasetError, match="found 1 subfolders"):
        read_dataset(tmp_path)


def test_empty_class_folder(tmp_path):
    write_jpeg(tmp_path / "smile" / "1.jpg", 50)
    (tmp_path / "non_smile").mkdir()
    with pytest.raises(DatasetError, match="non_smile"):
        read_dataset(tmp_path)


def test_bad_size(fake_smilesmiled):
    with pytest.raises(ValueError, match="size"):
        read_dataset(fake_smilesmiled, size=-1)


# ---------------------------------------------------------------------------
# Generic two-class layout
# ---------------------------------------------------------------------------


def test_generic_layout_positive_label(tmp_path):
    write_jpeg(tmp_path / "smile" / "a.png", 200, size=80)
    write_jpeg(tmp_path / "smile" / "nested" / "b.jpg", 210)
    write_jpeg(tmp_path / "non_smile" / "c.jpg", 20)
    dataset = read_dataset(tmp_path)
    assert dataset.class_names == ("non_smile", "smile")
    assert dataset.labels.tolist() == [0, 1, 1]
    assert dataset.images.shape == (3, 64, 64)


def test_generic_layout_split(tmp_path):
    write_jpeg(tmp_path / "pos" / "a.jpg", 200)
    write_jpeg(tmp_path / "neg" / "b.jpg", 20)
    split = tmp_path / "list.txt"
    split.write_text("pos/a.jpg\n")
    dataset = read_dataset(tmp_path, split=split)
    assert dataset.labels.tolist() == [1]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["smile", "non_smile"], ("non_smile", "smile")),
        (["nosmile", "smile"], ("nosmile", "smile")),
        (["positives", "negatives"], ("negatives", "positives")),
        (["1", "0"], ("0", "1")),
        (["Smiling", "Not-Smiling"], ("Not-Smiling", "Smiling")),
        (["smiling", "neutral"], ("neutral", "smiling")),
        (["happy", "neutral"], ("happy", "neutral")),
        (["cats", "dogs"], ("cats", "dogs")),
    ],
    ids=["non-prefix", "no-prefix", "pos-neg", "digits", "case", "neutral", "unknown", "sorted"],
)
def test_class_order(names, expected):
    assert class_order(names) == expected


# ---------------------------------------------------------------------------
# LabelledImages and environment
# ---------------------------------------------------------------------------


def test_subset_indices(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    part = dataset.subset([6, 0])
    assert isinstance(part, LabelledImages)
    assert part.paths == [dataset.paths[6], dataset.paths[0]]
    np.testing.assert_array_equal(part.labels, dataset.labels[[6, 0]])
    np.testing.assert_array_equal(part.images, dataset.images[[6, 0]])


def test_subset_mask(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    part = dataset.subset(dataset.labels == 1)
    assert len(part) == 3


def test_subset_wrong_mask(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    with pytest.raises(ValueError, match="length 7"):
        dataset.subset(np.ones(3, dtype=bool))


def test_subset_float_indices(fake_smilesmiled):
    dataset = read_dataset(fake_smilesmiled)
    with pytest.raises(TypeError, match="integer"):
        dataset.subset([0.5])


def test_default_data_paths(monkeypatch):
    monkeypatch.setenv("CSMILE_DATA", "/data/smiles")
    monkeypatch.delenv("CSMILE_SPLITS", raising=False)
    assert default_data_paths() == ("/data/smiles", None)


# ---------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_real_full_counts(smilesmiled_paths):
    data_root, _ = smilesmiled_paths
    dataset = read_dataset(data_root)
    assert int(np.count_nonzero(dataset.labels == 1)) == 3690
    assert int(np.count_nonzero(dataset.labels == 0)) == 9475
    assert dataset.bad_files == []


@pytest.mark.data
@pytest.mark.slow
def test_real_train_list(smilesmiled_paths):
    data_root, splits_dir = smilesmiled_paths
    dataset = read_dataset(data_root, split=os.path.join(splits_dir, "smilesmiled-train.txt"))
    assert len(dataset) == 10532
    assert int(dataset.labels.sum()) == 2952
