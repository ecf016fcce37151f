"""cnn_ray.local_ray.environment: settings for the processes Ray starts, and this process's back as it was."""

import os

import pytest

from cnn_ray.local_ray import environment, process_settings


def test_the_environment_is_restored_after_the_block_even_when_it_raises(monkeypatch):
    monkeypatch.setenv("CNN_TEST_KEPT", "before")
    monkeypatch.delenv("CNN_TEST_ADDED", raising=False)
    with pytest.raises(RuntimeError):
        with environment({"CNN_TEST_KEPT": "inside", "CNN_TEST_ADDED": "inside"}):
            assert os.environ["CNN_TEST_KEPT"] == os.environ["CNN_TEST_ADDED"] == "inside"
            raise RuntimeError("ray.init failed")
    assert os.environ["CNN_TEST_KEPT"] == "before" and "CNN_TEST_ADDED" not in os.environ


def test_a_setting_that_is_not_a_string_leaves_nothing_behind(monkeypatch):
    monkeypatch.delenv("CNN_TEST_ADDED", raising=False)
    with pytest.raises(TypeError):
        with environment({"CNN_TEST_ADDED": "inside", "CNN_TEST_BAD": 1}):  # type: ignore[dict-item]
            pass
    assert "CNN_TEST_ADDED" not in os.environ and "CNN_TEST_BAD" not in os.environ


def test_a_one_machine_ray_has_no_preemption_watcher_unless_the_person_asks_for_one(monkeypatch):
    monkeypatch.delenv("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", raising=False)
    settings = process_settings({"TF_CPP_MIN_LOG_LEVEL": "2"}, "10.0.0.1:6380", 6380)
    assert settings == {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "TF_CPP_MIN_LOG_LEVEL": "2",
                        "RAY_ADDRESS": "10.0.0.1:6380", "RAY_GCS_SERVER_PORT": "6380"}
    monkeypatch.setenv("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "1")  # theirs, inherited by Ray as it is
    assert "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER" not in process_settings({}, "10.0.0.1:6380", 6380)
