"""Tests for csmile.faces: detection and cropping on synthetic photos.

No camera photos ship with csmile, so each test pastes an enlarged sample
face into a larger canvas of noise and checks that it is found there.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import csmile
from csmile import faces as faces_module

SAMPLES = Path(csmile.__file__).parent / "samples"


def opencv_has_cascades():
    try:
        faces_module._load_cascade()
    except ImportError:
        return False
    return True


needs_opencv = pytest.mark.skipif(
    not opencv_has_cascades(), reason="OpenCV 4.x with its Haar cascades is not installed"
)


def make_canvas(rng, face_side=160, left=150, top=80):
    """A 360x480 noise canvas with the smile_8926 sample enlarged to face_side and pasted at (left, top)."""
    face = Image.open(SAMPLES / "smile_8926.jpg").resize((face_side, face_side), Image.Resampling.BILINEAR)
    canvas = rng.normal(128, 30, (360, 480)).clip(0, 255).astype(np.uint8)
    canvas[top : top + face_side, left : left + face_side] = np.asarray(face)
    return canvas


@needs_opencv
def test_detect_faces_finds_pasted_face(rng):
    boxes = faces_module.detect_faces(make_canvas(rng))
    assert len(boxes) == 1
    x, y, width, height = boxes[0]
    centre_x, centre_y = x + width / 2, y + height / 2
    assert 150 < centre_x < 310
    assert 80 < centre_y < 240


@needs_opencv
def test_detect_faces_rgb_and_path(rng, tmp_path):
    canvas = make_canvas(rng)
    path = tmp_path / "photo.png"
    Image.fromarray(canvas).convert("RGB").save(path)
    assert len(faces_module.detect_faces(path)) == 1
    assert len(faces_module.detect_faces(np.stack([canvas] * 3, axis=-1))) == 1


@needs_opencv
def test_detect_faces_empty_noise(rng):
    canvas = rng.normal(128, 30, (240, 320)).clip(0, 255).astype(np.uint8)
    assert faces_module.detect_faces(canvas) == []


@needs_opencv
def test_crop_faces_resembles_sample(rng):
    canvas = make_canvas(rng)
    crops = faces_module.crop_faces(canvas)
    assert len(crops) == 1
    assert crops[0].shape == (64, 64)
    assert crops[0].dtype == np.uint8
    sample = np.asarray(Image.open(SAMPLES / "smile_8926.jpg"), dtype=np.float64)
    correlation = np.corrcoef(crops[0].ravel().astype(np.float64), sample.ravel())[0, 1]
    assert correlation > 0.5


@needs_opencv
def test_crop_faces_at_edge(rng):
    # With margin 0.5 the crop is twice the box, so it reaches past the top edge.
    canvas = make_canvas(rng, face_side=150, left=300, top=30)
    crops = faces_module.crop_faces(canvas, size=48, margin=0.5)
    assert len(crops) == 1
    assert crops[0].shape == (48, 48)


def test_detect_faces_bad_min_size():
    with pytest.raises(ValueError, match="min_size"):
        faces_module.detect_faces(np.zeros((10, 10), dtype=np.uint8), min_size=0)


def test_crop_faces_bad_type():
    with pytest.raises(TypeError, match="file path"):
        faces_module.crop_faces(42)


def test_crop_edges_replicated():
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4)
    crop = faces_module._crop_replicating_edges(gray, -1, -1, 3)
    np.testing.assert_array_equal(crop, [[0, 0, 1], [0, 0, 1], [4, 4, 5]])


def test_missing_opencv_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def import_without_cv2(name, *args, **kwargs):
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(faces_module, "_cascade", None)
    monkeypatch.setattr(builtins, "__import__", import_without_cv2)
    with pytest.raises(ImportError, match=r"csmile\[faces\]"):
        faces_module.detect_faces(np.zeros((32, 32), dtype=np.uint8))
