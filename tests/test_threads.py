"""Thread count resolution: n_jobs, then OMP_NUM_THREADS, then all cores."""

import os

import pytest

from csmile.threads import resolve_n_threads


def test_n_jobs_wins_over_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_n_threads(1) == 1


def test_environment_used_without_n_jobs(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_n_threads(None) == 3


def test_nested_environment_value_takes_first(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")
    assert resolve_n_threads(None) == 2


@pytest.mark.parametrize("value", ["", "zero", "0", "-2"])
def test_unusable_environment_means_all_cores(monkeypatch, value):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert resolve_n_threads(None) == (os.cpu_count() or 1)


def test_fitted_model_records_threads(monkeypatch, synthetic_faces):
    from csmile import SmileNet

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    faces, labels = synthetic_faces
    model = SmileNet(filters=(2,), dense=(), epochs=1, validation_fraction=0, augment=False,
                     random_state=0).fit(faces[:16], labels[:16])
    assert model.n_threads_ == 1
