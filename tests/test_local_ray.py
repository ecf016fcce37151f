"""cnn_ray.local_ray.environment: settings for the processes Ray starts, and this process's back as it was."""

import os

import pytest

from cnn_ray.local_ray import environment


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
