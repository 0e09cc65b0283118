"""Tests for csmile.data.summary: class counts and exact duplicates."""

import os

import numpy as np
import pytest

from csmile.data import LabelledImages, read_dataset, summarize


def make_dataset(pixel_values, labels):
    """A LabelledImages whose image i is constant with gray level pixel_values[i]."""
    images = np.stack([np.full((8, 8), value, dtype=np.uint8) for value in pixel_values])
    return LabelledImages(
        paths=[f"img{index}.jpg" for index in range(len(labels))],
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        class_names=("no", "yes"),
        bad_files=[("broken.jpg", "truncated")],
        root="/data",
    )


@pytest.fixture
def dataset():
    # Images 1, 4 and 6 are identical with label 0: two redundant copies.
    # Images 2 and 5 are identical with labels 1 and 0: a conflict.
    return make_dataset([10, 20, 30, 40, 20, 30, 20, 50], [0, 0, 1, 1, 0, 0, 0, 1])


def test_summary_counts(dataset):
    assert summarize(dataset).counts == {"no": 5, "yes": 3}


def test_summary_duplicate_groups(dataset):
    assert summarize(dataset).duplicate_groups == [[1, 4, 6], [2, 5]]


def test_summary_conflicting_groups(dataset):
    assert summarize(dataset).conflicting_groups == [[2, 5]]


def test_summary_conflicting_indices(dataset):
    np.testing.assert_array_equal(summarize(dataset).conflicting_indices, [2, 5])


def test_summary_redundant_indices(dataset):
    np.testing.assert_array_equal(summarize(dataset).redundant_indices, [4, 6])


def test_summary_bad_files(dataset):
    assert summarize(dataset).bad_files == [("broken.jpg", "truncated")]


def test_summary_one_pixel_differs():
    data = make_dataset([10, 10], [0, 1])
    data.images[1, 3, 3] = 11
    assert summarize(data).duplicate_groups == []


def test_summary_no_duplicates():
    summary = summarize(make_dataset([1, 2, 3], [0, 1, 0]))
    assert summary.duplicate_groups == []
    assert summary.conflicting_indices.shape == (0,)
    assert summary.redundant_indices.shape == (0,)


def test_summary_text_names_conflicts(dataset):
    text = summarize(dataset).to_text()
    assert "img2.jpg (yes) = img5.jpg (no)" in text
    assert "broken.jpg" in text
    assert "8 images" in text


def test_summary_text_truncates_long_lists():
    n_pairs = 25
    values = [value for value in range(n_pairs) for _ in range(2)]
    labels = [0, 1] * n_pairs
    text = summarize(make_dataset(values, labels)).to_text()
    assert "... and 5 more" in text


@pytest.mark.data
@pytest.mark.slow
def test_summary_real_train(smilesmiled_paths):
    data_root, splits_dir = smilesmiled_paths
    train = read_dataset(data_root, split=os.path.join(splits_dir, "smilesmiled-train.txt"))
    summary = summarize(train)
    assert summary.counts == {"not smiling": 7580, "smiling": 2952}
    for group in summary.conflicting_groups:
        names = {os.path.basename(train.paths[index]) for index in group}
        # Published conflicts are the same file number in both class folders.
        assert len(names) == 1, names
