"""The sweep's quiet console (cnn_ray.console) and the jobs' console settings, without a cluster:
Tune's callback hooks called as Tune calls them, with trials as Tune hands them over."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cnn.quiet_tensorflow import QUIET_SETTING, drop_start_up_lines
from cnn.sweep_settings import REPLICATE_KEY
from cnn_ray import console
from cnn_ray.console import ConsoleProgress, epoch_line

REPO = Path(__file__).resolve().parents[1]


@dataclass
class FakeTrial:
    """What the callback reads of Tune's Trial."""

    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "PENDING"
    last_result: dict[str, Any] = field(default_factory=dict)
    error_file: str | None = None
    path: str = "/results/sweep/trial"


def epoch(n: int, val: float, **more: Any) -> dict[str, Any]:
    return {"epoch": n, "train_accuracy": 0.9, "val_accuracy": val, "test_accuracy": 0.5,
            "images_per_second": 412.4, "best_val_accuracy": val, "stop_reason": "", **more}


@pytest.fixture
def clock(monkeypatch):
    """time.time() in the console module, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(console.time, "time", lambda: now[0])
    return now


def test_one_line_per_epoch_with_the_swept_values_and_no_test_accuracy(capsys, clock):
    progress = ConsoleProgress(planned=4, max_epochs=3, knobs=["l2_conv", "augment_strength"], scheduler="fifo")
    progress.setup()
    trial = FakeTrial("abc_00001", {"l2_conv": 0.001, "augment_strength": 1.0, REPLICATE_KEY: 2}, "RUNNING")
    clock[0] += 75
    progress.on_trial_result(0, [trial], trial, epoch(2, 0.9825))
    assert capsys.readouterr().out == ("[ 1m15s] trial abc_00001 (l2_conv=0.001, augment_strength=1, seed +2) "
                                      "epoch 2/3: train 90.00%, val 98.25%, 412 images/s\n")


def test_a_diverged_trial_and_one_stopped_by_asha_get_a_line_each(capsys, clock):
    progress = ConsoleProgress(planned=2, max_epochs=9, knobs=["l2_conv"], scheduler="asha")
    progress.setup()
    diverged = FakeTrial("abc_00000", {"l2_conv": 1e38}, "RUNNING")
    progress.on_trial_result(0, [diverged], diverged, epoch(1, 0.1, stop_reason="diverged"))
    stopped = FakeTrial("abc_00001", {"l2_conv": 0.0}, "TERMINATED", last_result=epoch(3, 0.95))
    progress.on_trial_complete(0, [diverged, stopped], stopped)
    finished = FakeTrial("abc_00002", {"l2_conv": 0.0}, "TERMINATED", last_result=epoch(9, 0.99))
    progress.on_trial_complete(0, [finished], finished)  # ended by itself: nothing to say
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "trial abc_00000 (l2_conv=1e+38) epoch 1/9" in lines[0] and "diverged" in lines[0]
    assert lines[1].endswith("trial abc_00001: stopped by ASHA after epoch 3 (val 95.00%), "
                             "behind the other trials at its rung")


def test_a_resumed_run_is_said_once(capsys, clock):
    progress = ConsoleProgress(planned=1, max_epochs=4, knobs=[], scheduler="fifo")
    progress.setup()
    trial = FakeTrial("abc_00000", status="RUNNING")
    progress.on_trial_result(0, [trial], trial, epoch(2, 0.9, resumes=1, resumed_after_epoch=1))
    progress.on_trial_result(0, [trial], trial, epoch(3, 0.9, resumes=1, resumed_after_epoch=1))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "resumed from its checkpoint after epoch 1" in lines[1]


def test_a_failed_trial_names_its_error_and_where_the_whole_of_it_is(capsys, clock, tmp_path):
    error = tmp_path / "error.txt"
    error.write_text("Traceback (most recent call last):\n  File ...\nRuntimeError: out of memory\n\n")
    progress = ConsoleProgress(planned=1, max_epochs=4, knobs=[], scheduler="fifo")
    trial = FakeTrial("abc_00000", status="ERROR", error_file=str(error))
    progress.on_trial_error(0, [trial], trial)
    progress.on_trial_recover(0, [trial], trial)
    error_line, retry_line = capsys.readouterr().out.splitlines()
    assert "error: trial abc_00000 failed: RuntimeError: out of memory (the whole error: " in error_line
    assert "warning: trial abc_00000 failed and is started again" in retry_line


def test_status_at_most_every_interval_with_the_best_trial_and_the_time_left(capsys, clock):
    progress = ConsoleProgress(planned=4, max_epochs=3, knobs=[], scheduler="asha", status_every=30)
    progress.setup()
    done = FakeTrial("abc_00000", status="TERMINATED", last_result=epoch(3, 0.97))
    running = FakeTrial("abc_00001", status="RUNNING", last_result=epoch(1, 0.98))
    created_early = FakeTrial("abc_00002")  # Tune creates some waiting trials before they can start
    trials = [done, running, created_early]
    progress.on_step_end(0, trials)
    assert capsys.readouterr().out == "", "no status before the interval has passed"
    for result in (epoch(1, 0.9), epoch(2, 0.95), epoch(3, 0.97), epoch(1, 0.98)):
        progress.on_trial_result(0, trials, done, result)
    capsys.readouterr()
    clock[0] += 40  # 4 trial-epochs in 40 s; left: 2 of the running trial, 3 each for 2 not started
    progress.on_step_end(0, trials)
    progress.on_step_end(0, trials)  # at once again: no second line
    (line,) = capsys.readouterr().out.splitlines()
    assert line == ("[   40s] status: 1 of 4 trials done, 1 running, 2 waiting; best validation accuracy so far "
                    "98.00% (trial abc_00001); at most about 1m20s left")


def test_epoch_line_of_a_single_run_shows_test_accuracy_and_a_missing_value_as_a_dash():
    line = epoch_line({"epoch": 1, "train_accuracy": 0.5, "val_accuracy": None, "test_accuracy": 0.25,
                       "images_per_second": float("nan")}, 2, test=True)
    assert line == "epoch 1/2: train 50.00%, val -, test 25.00%, - images/s"


def test_tensorflow_s_start_up_lines_are_dropped_and_everything_else_kept():
    caught = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
              "I0000 00:00:1796336575.189704    2946 port.cc:153] oneDNN custom operations are on.\n"
              "I0000 00:00:1796336575.190025    2946 cudart_stub.cc:31] Could not find cuda drivers\n"
              "E0000 00:00:1796336577.204507    2946 cuda_platform.cc:52] failed call to cuInit\n"
              "W1203 12:00:01.000001    2946 some.cc:1] a warning\n"
              "a line of our own\n")
    assert drop_start_up_lines(caught) == ("E0000 00:00:1796336577.204507    2946 cuda_platform.cc:52] failed call "
                                           "to cuInit\nW1203 12:00:01.000001    2946 some.cc:1] a warning\n"
                                           "a line of our own\n")


@pytest.mark.parametrize("quiet", [True, False])
def test_importing_tensorflow_quietly_leaves_out_its_start_up_lines_only(quiet):
    code = ("import sys; print('before', file=sys.stderr, flush=True)\n"
            "from cnn.quiet_tensorflow import import_tensorflow; import_tensorflow()\n"
            "print('after', file=sys.stderr)")
    env = {**os.environ, QUIET_SETTING: "1" if quiet else "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "before" and lines[-1] == "after"
    start_up = [line for line in lines if re.match(r"I\d{4} ", line)]
    assert not start_up if quiet else start_up, "TensorFlow 2.21 logs its start-up lines on import"


def test_without_verbose_ray_data_draws_no_bars_logs_errors_only_and_ray_deprecations_stay_quiet():
    """What a process of a quiet job gets from QUIET_RAY_SETTINGS (handed to every process through the
    job's runtime environment): the settings Ray Data and Ray read when they are imported."""
    from jobs.cli_common import QUIET_RAY_SETTINGS

    code = ("import logging, warnings\n"
            "import ray.data\n"
            "from ray.util.annotations import RayDeprecationWarning\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.warn_explicit('old', RayDeprecationWarning, 'ray/x.py', 1, module='ray.x')\n"
            "print(ray.data.DataContext.get_current().enable_progress_bars,\n"
            "      logging.getLevelName(logging.getLogger('ray.data').level), len(caught))")
    runs = {}
    for quiet in (True, False):
        env = {key: value for key, value in os.environ.items() if key not in QUIET_RAY_SETTINGS}
        env.update(QUIET_RAY_SETTINGS if quiet else {})
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        runs[quiet] = done.stdout.split()
    assert runs[True] == ["False", "ERROR", "0"]
    assert runs[False] == ["True", "DEBUG", "1"], "Ray's defaults: bars, everything logged, its warnings shown"
