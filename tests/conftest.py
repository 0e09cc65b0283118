"""Shared fixtures: a seeded random generator and the paths of SMILEsmileD."""

import os

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A random generator with a fixed seed, new for each test."""
    return np.random.default_rng(20190601)


@pytest.fixture(scope="session")
def smilesmiled_paths():
    """(data_root, splits_dir) from CSMILE_DATA and CSMILE_SPLITS; skip when unset."""
    data_root = os.environ.get("CSMILE_DATA")
    splits_dir = os.environ.get("CSMILE_SPLITS")
    if not data_root or not os.path.isdir(data_root):
        pytest.skip("SMILEsmileD not available: set CSMILE_DATA to its folder")
    if not splits_dir or not os.path.isdir(splits_dir):
        pytest.skip("split lists not available: set CSMILE_SPLITS to their folder")
    return data_root, splits_dir


def make_synthetic_faces(n_samples, seed=0, size=64):
    """Return (faces uint8 (n, size, size), labels 0/1): a dark bar that curves up for label 1.

    The classes differ only in the shape of a "mouth" drawn in the lower
    half, so a small CNN separates them, but no single pixel does.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % 2
    rng.shuffle(labels)
    faces = np.empty((n_samples, size, size), dtype=np.uint8)
    for index, label in enumerate(labels):
        face = rng.normal(150, 20, (size, size))
        centre_x = size // 2 + rng.integers(-4, 5)
        centre_y = int(size * 0.7) + rng.integers(-3, 4)
        half_width = size // 4
        for x in range(centre_x - half_width, centre_x + half_width):
            offset = (x - centre_x) / half_width
            curve = offset**2 * size * 0.12
            y = int(round(centre_y - curve if label else centre_y))
            face[max(y - 1, 0):y + 2, x] = rng.normal(40, 10)
        faces[index] = np.clip(face + rng.normal(0, 8), 0, 255)
    return faces, labels


@pytest.fixture(scope="session")
def synthetic_faces():
    """400 synthetic faces and labels, shared by the estimator tests."""
    return make_synthetic_faces(400, seed=7)
