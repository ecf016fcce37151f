"""The write probe that stops a sweep when its storage stops taking writes."""

from __future__ import annotations

import pickle

from cnn_ray.storage_watch import StorageWatch, probe_write
from cnn.sweep_file import PRESETS
from cnn.sweep_settings import SweepSettings
from sweep_checks import read_only


def test_probe_passes_on_a_writable_folder_and_leaves_nothing(tmp_path):
    assert probe_write(str(tmp_path / "experiment")) is None
    assert list((tmp_path / "experiment").iterdir()) == []


def test_probe_names_the_problem_on_a_read_only_folder(tmp_path):
    with read_only(tmp_path):
        problem = probe_write(str(tmp_path / "experiment"))
    assert problem and "\n" not in problem and ("Read-only" in problem or "ermission" in problem)


def test_watch_stops_everything_once_storage_refuses_writes(tmp_path):
    watch = StorageWatch(str(tmp_path), interval=0)
    assert watch.stop_all() is False and watch("trial", {}) is False
    with read_only(tmp_path):
        assert watch.stop_all() is True
    assert watch.stop_all() is True, "once stopped, the sweep stays stopped"


def test_watch_probes_at_most_once_per_interval(tmp_path):
    watch = StorageWatch(str(tmp_path), interval=3600)
    assert watch.stop_all() is False
    with read_only(tmp_path):
        assert watch.stop_all() is False, "the next probe is not due yet"


def test_a_resumed_sweep_starts_watching_afresh(tmp_path):
    watch = StorageWatch(str(tmp_path), interval=0)
    watch.problem = "Read-only file system"
    restored = pickle.loads(pickle.dumps(watch))
    assert restored.problem is None and restored.experiment_uri == str(tmp_path) and not restored.stop_all()


def test_sweep_settings_round_trip_through_sweep_json():
    for settings in PRESETS.values():
        assert SweepSettings.from_dict(settings.to_dict()) == settings
