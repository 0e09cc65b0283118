"""SmileNet: fitting, prediction, parameters, pickling and the model file."""

import copy
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

import csmile
from csmile import ModelFileError, NotFittedError, SmileNet, load

FAST = dict(filters=(4, 8), dense=(16,), epochs=6, batch_size=16, learning_rate=3e-3,
            augment=False, validation_fraction=0.2, random_state=0)


@pytest.fixture(scope="module")
def fitted(synthetic_faces):
    faces, labels = synthetic_faces
    return SmileNet(**FAST).fit(faces[:300], labels[:300])


def test_fit_learns_synthetic_mouths(fitted, synthetic_faces):
    faces, labels = synthetic_faces
    assert fitted.score(faces[300:], labels[300:]) >= 0.9


def test_fit_records_history(fitted):
    assert len(fitted.history_) >= 1
    first = fitted.history_[0]
    for key in ("loss", "accuracy", "balanced_accuracy", "val_loss", "val_accuracy",
                "val_balanced_accuracy", "learning_rate", "seconds"):
        assert key in first
    assert 1 <= fitted.best_epoch_ <= len(fitted.history_)


def test_predict_proba_rows_sum_to_one(fitted, synthetic_faces):
    probabilities = fitted.predict_proba(synthetic_faces[0][:10])
    assert probabilities.shape == (10, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_same_seed_same_model(synthetic_faces):
    faces, labels = synthetic_faces
    params = dict(FAST, epochs=2, augment=True)
    first = SmileNet(**params).fit(faces[:100], labels[:100]).predict_proba(faces[300:])
    second = SmileNet(**params).fit(faces[:100], labels[:100]).predict_proba(faces[300:])
    np.testing.assert_array_equal(first, second)


def test_different_seed_different_model(synthetic_faces):
    faces, labels = synthetic_faces
    first = SmileNet(**dict(FAST, epochs=1)).fit(faces[:100], labels[:100])
    second = SmileNet(**dict(FAST, epochs=1, random_state=1)).fit(faces[:100], labels[:100])
    assert not np.array_equal(first.predict_proba(faces[300:]), second.predict_proba(faces[300:]))


@pytest.mark.parametrize(
    "labels",
    [["no", "yes"], [False, True], [3, 8]],
    ids=["strings", "booleans", "integers"],
)
def test_labels_of_any_two_values(labels, synthetic_faces):
    faces, encoded = synthetic_faces
    y = np.array(labels)[encoded[:60]]
    model = SmileNet(**dict(FAST, epochs=1, validation_fraction=0)).fit(faces[:60], y)
    assert list(model.classes_) == sorted(labels)
    assert set(model.predict(faces[:5])) <= set(labels)


def test_labels_not_two_classes_rejected(synthetic_faces):
    faces, _ = synthetic_faces
    with pytest.raises(ValueError, match="exactly two classes"):
        SmileNet(**FAST).fit(faces[:9], np.arange(9) % 3)


def test_labels_length_mismatch_rejected(synthetic_faces):
    faces, labels = synthetic_faces
    with pytest.raises(ValueError, match="10 faces but y has 9"):
        SmileNet(**FAST).fit(faces[:10], labels[:9])


def test_nan_faces_rejected(synthetic_faces):
    faces = synthetic_faces[0][:10].astype(np.float32)
    faces[3, 5, 5] = np.nan
    with pytest.raises(ValueError):
        SmileNet(**FAST).fit(faces, synthetic_faces[1][:10])


@pytest.mark.parametrize(
    "params",
    [{"filters": 16}, {"epochs": 0}, {"optimizer": "rmsprop"}, {"dropout": 1.0},
     {"learning_rate": -1.0}, {"padding": "full"}, {"class_weight": "auto"}, {"n_jobs": 0},
     {"threshold": 1.5}, {"augment": "yes"}, {"convs_per_block": 0}, {"batch_norm": "on"},
     {"weight_averaging": 1.0}, {"weight_averaging": -0.1}, {"n_jobs": 100000}],
    ids=lambda params: next(iter(params)),
)
def test_invalid_params_rejected_in_fit(params, synthetic_faces):
    faces, labels = synthetic_faces
    model = SmileNet(**params)  # __init__ stores only
    with pytest.raises((ValueError, TypeError), match=next(iter(params))):
        model.fit(faces[:20], labels[:20])


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError, match="not fitted"):
        SmileNet().predict(np.zeros((1, 64, 64)))


def test_threshold_moves_decisions(fitted, synthetic_faces):
    faces = synthetic_faces[0][:50]
    probabilities = fitted.predict_proba(faces)[:, 1]
    threshold = float(np.median(probabilities))
    model = copy.deepcopy(fitted).set_params(threshold=threshold)
    expected = np.where(probabilities >= threshold, fitted.classes_[1], fitted.classes_[0])
    np.testing.assert_array_equal(model.predict(faces), expected)


def test_resized_and_listed_inputs(fitted, synthetic_faces, tmp_path):
    face = synthetic_faces[0][0]
    path = tmp_path / "face.png"
    Image.fromarray(face).resize((96, 96)).save(path)
    from_path = fitted.predict_proba([str(path)])
    from_pil = fitted.predict_proba([Image.open(path)])
    from_array = fitted.predict_proba(np.asarray(Image.open(path))[None])
    np.testing.assert_allclose(from_path, from_pil)
    np.testing.assert_allclose(from_path, from_array)


def test_get_params_round_trip():
    model = SmileNet(filters=(8,), epochs=3)
    assert model.get_params()["filters"] == (8,)
    clone = SmileNet(**model.get_params())
    assert clone.get_params() == model.get_params()


def test_set_params_unknown_name_rejected():
    with pytest.raises(ValueError, match="invalid parameter 'epoch'"):
        SmileNet().set_params(epoch=3)


def test_paper_network_shape():
    model = SmileNet.paper(filters=8)
    assert model.filters == (8,)
    assert model.padding == "valid"
    assert model.batch_size == 1
    assert model.dense == ()


def test_paper_network_trains_per_image(synthetic_faces):
    faces, labels = synthetic_faces
    model = SmileNet.paper(filters=2, epochs=1, random_state=0).fit(faces[:40], labels[:40])
    assert len(model.history_) == 1
    assert [type(layer).__name__ for layer in model.network_.layers] == [
        "Conv2D", "MaxPool2D", "ReLU", "Flatten", "Dense"]


def test_pickle_round_trip(fitted, synthetic_faces):
    faces = synthetic_faces[0][:20]
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(faces), fitted.predict_proba(faces))


def test_save_load_round_trip(fitted, synthetic_faces, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    restored = load(path)
    faces = synthetic_faces[0][:20]
    np.testing.assert_array_equal(restored.predict_proba(faces), fitted.predict_proba(faces))
    assert restored.get_params() == fitted.get_params()
    assert restored.history_ == fitted.history_


@pytest.fixture(scope="module")
def fitted_deep(synthetic_faces):
    faces, labels = synthetic_faces
    params = dict(FAST, convs_per_block=2, batch_norm=True, weight_averaging=0.9, epochs=4)
    return SmileNet(**params).fit(faces[:300], labels[:300])


def test_deep_batch_norm_network_learns(fitted_deep, synthetic_faces):
    faces, labels = synthetic_faces
    assert fitted_deep.score(faces[300:], labels[300:]) >= 0.9
    layer_types = [type(layer).__name__ for layer in fitted_deep.network_.layers]
    assert layer_types.count("Conv2D") == 4
    assert layer_types.count("BatchNorm") == 4


def test_deep_batch_norm_save_load_and_pickle(fitted_deep, synthetic_faces, tmp_path):
    path = tmp_path / "deep.npz"
    fitted_deep.save(path)
    faces = synthetic_faces[0][:20]
    expected = fitted_deep.predict_proba(faces)
    np.testing.assert_array_equal(load(path).predict_proba(faces), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted_deep)).predict_proba(faces), expected)


def test_batch_norm_prediction_batch_independent(fitted_deep, synthetic_faces):
    faces = synthetic_faces[0][:8]
    together = fitted_deep.predict_proba(faces)
    alone = np.concatenate([fitted_deep.predict_proba(face[None]) for face in faces])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)


def test_numpy_bool_parameters_accepted(synthetic_faces):
    faces, labels = synthetic_faces
    params = dict(FAST, epochs=1, batch_norm=np.True_, test_time_mirror=np.False_)
    model = SmileNet(**params).fit(faces[:40], labels[:40])
    assert model.predict(faces[:2]).shape == (2,)


def test_trailing_single_face_joins_last_batch(synthetic_faces):
    # 33 faces in batches of 16 leave one face over. Batch normalisation of a
    # 1x1 output cannot train on one face, so the trainer merges it.
    faces, labels = synthetic_faces
    params = dict(FAST, filters=(4, 4, 4, 4, 4, 4), epochs=1, batch_norm=True,
                  validation_fraction=0.0, image_size=64)
    model = SmileNet(**params).fit(faces[:33], labels[:33])
    assert model.history_[0]["loss"] > 0


def test_weight_averaging_keeps_the_averaged_weights(synthetic_faces):
    from csmile.training import WeightAverage

    faces, labels = synthetic_faces
    params = dict(FAST, epochs=2, validation_fraction=0.0)
    averaged = SmileNet(**params, weight_averaging=0.99).fit(faces[:100], labels[:100])
    plain = SmileNet(**params).fit(faces[:100], labels[:100])
    # The same seed gives the same raw trajectory; only the kept weights differ.
    assert not np.array_equal(averaged.predict_proba(faces[300:]), plain.predict_proba(faces[300:]))

    network = plain.network_
    average = WeightAverage(network, decay=0.5)
    start = network.get_weights()
    for layer in network.layers:
        for param in layer.params.values():
            param += 1.0
    average.update()  # the first update moves by 1 - min(0.5, 1 / 10) = 0.9
    average.swap()
    for key, value in network.get_weights().items():
        np.testing.assert_allclose(value, start[key] + 0.9, rtol=1e-5, err_msg=key)
    average.swap()
    for key, value in network.get_weights().items():
        np.testing.assert_allclose(value, start[key] + 1.0, rtol=1e-5, err_msg=key)


def test_save_leaves_no_temporary_files(fitted, tmp_path):
    fitted.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_into_missing_folder_rejected(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fitted.save(tmp_path / "missing" / "model.npz")


def test_load_missing_file():
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load("no-such-model.npz")


def test_load_truncated_file(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="damaged"):
        load(path)


def test_load_not_a_model(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a csmile model"):
        load(path)


def test_load_future_format_version(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    with zipfile.ZipFile(path) as archive:
        arrays = {name[:-4]: np.load(archive.open(name)) for name in archive.namelist()}
    metadata = json.loads(arrays["metadata"].tobytes())
    metadata["format_version"] = 99
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="version 99"):
        load(path)


def test_backend_is_named():
    assert csmile.backend() in ("cython", "reference")


def test_sklearn_clone_and_grid_search(synthetic_faces):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    faces, labels = synthetic_faces
    model = SmileNet(**dict(FAST, epochs=2, validation_fraction=0))
    assert clone(model).get_params() == model.get_params()
    search = GridSearchCV(model, {"learning_rate": [1e-3, 3e-3]}, cv=2)
    search.fit(faces[:80], labels[:80])
    assert search.best_params_["learning_rate"] in (1e-3, 3e-3)
    assert sklearn.base.is_classifier(model)


def test_test_time_mirror_averages_both_views(fitted, synthetic_faces):
    faces = synthetic_faces[0][:8]
    mirrored = faces[:, :, ::-1]
    expected = 0.5 * (fitted.predict_proba(faces) + fitted.predict_proba(mirrored))
    model = copy.deepcopy(fitted).set_params(test_time_mirror=True)
    np.testing.assert_allclose(model.predict_proba(faces), expected, rtol=1e-6)


def test_saved_model_follows_umask(fitted, tmp_path):
    previous = os.umask(0o022)
    try:
        fitted.save(tmp_path / "model.npz")
    finally:
        os.umask(previous)
    assert (tmp_path / "model.npz").stat().st_mode & 0o777 == 0o644


def rewrite_model_file(path, change_metadata=None, change_weights=None):
    """Rewrite a saved model file with edited metadata or weights."""
    with zipfile.ZipFile(path) as archive:
        arrays = {name[:-4]: np.load(archive.open(name)) for name in archive.namelist()}
    metadata = json.loads(arrays["metadata"].tobytes())
    if change_metadata:
        change_metadata(metadata)
    if change_weights:
        change_weights(arrays)
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_load_text_file_rejected(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("not a model")
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        load(path)


def test_load_nan_weights_rejected(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)

    def poison(arrays):
        name = next(name for name in arrays if name.startswith("weights/"))
        arrays[name] = np.full_like(arrays[name], np.nan)

    rewrite_model_file(path, change_weights=poison)
    with pytest.raises(ModelFileError, match="invalid weights"):
        load(path)


@pytest.mark.parametrize(
    "field, value",
    [("image_size", 100000), ("threshold", "x"), ("image_size", 0)],
    ids=["huge-image-size", "text-threshold", "zero-image-size"],
)
def test_load_invalid_params_rejected(fitted, tmp_path, field, value):
    path = tmp_path / "model.npz"
    fitted.save(path)
    rewrite_model_file(path, change_metadata=lambda metadata: metadata["params"].update({field: value}))
    with pytest.raises(ModelFileError, match=field):
        load(path)


def test_unsortable_labels_rejected(synthetic_faces):
    faces, _ = synthetic_faces
    with pytest.raises(ValueError, match="cannot be sorted"):
        SmileNet(**FAST).fit(faces[:4], np.array([None, "a", None, "a"], dtype=object))


def test_negative_seed_rejected(synthetic_faces):
    faces, labels = synthetic_faces
    with pytest.raises(ValueError, match="random_state"):
        SmileNet(**dict(FAST, random_state=-1)).fit(faces[:10], labels[:10])
