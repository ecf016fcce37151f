"""Checks shared by the sweep tests: run the job, read its tables, validate them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from cnn.checkpoint_state import STATE_FILE, CheckpointState
from cnn.model_io import load_model
from cnn.sweep_file import load_sweep_file
from cnn.sweep_results import CONFIRM_DIR
from cnn.sweep_settings import SweepSettings
from cnn_ray.trial_clock import read_trial_times

REPO = Path(__file__).resolve().parents[1]


def job_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a person's shell would have: the venv first on PATH, no stray cluster."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CNN_DATA_DIR"] = str(data_dir)
    for setting in ("TF_CPP_MIN_LOG_LEVEL", "RAY_AIR_NEW_OUTPUT"):  # the jobs' own console defaults
        env.pop(setting, None)
    env.update(extra)
    return env


def run_sweep(args: list[str], data_dir: Path, timeout: float = 600, env: dict[str, str] | None = None,
              **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "jobs/sweep.py", *args], cwd=REPO, env={**job_env(data_dir), **(env or {})},
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def read_tables(experiment: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(experiment / "trials.csv"), pd.read_csv(experiment / "epochs.csv")


def check_tables(experiment: Path, expected_trials: int, load_checkpoints: bool = True,
                 workers_per_trial: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every trial once, every epoch of every trial exactly once, accuracies in [0, 1], checkpoints load."""
    trials, epochs = read_tables(experiment)
    assert len(trials) == expected_trials and trials["trial_id"].is_unique
    assert not epochs.duplicated(["trial_id", "epoch"]).any(), "an epoch appears twice"
    for trial in trials.itertuples():
        mine = epochs[epochs.trial_id == trial.trial_id].sort_values("epoch")
        assert mine["epoch"].tolist() == list(range(1, trial.epochs_run + 1))
    assert epochs[["learning_rate", "global_batch_size", "val_seconds", "test_seconds"]].notna().all().all()
    assert set(trials["config_batch_size"]) <= set(epochs["global_batch_size"]), "trials.csv: the trained batch"
    accuracy_columns = [c for c in epochs.columns if c.endswith("accuracy")]
    assert epochs[accuracy_columns].apply(lambda col: col.between(0, 1)).all().all()
    assert trials["best_val_accuracy"].is_monotonic_decreasing, "leaderboard is ranked by validation accuracy"
    if load_checkpoints:
        for path in trials["best_checkpoint"]:
            model = load_model(path)
            assert model.output_shape[-1] == 10
            assert CheckpointState.read(path).epochs_done >= 1
    if workers_per_trial:
        for ids in trials["worker_node_ids"]:
            assert len(str(ids).split(";")) == workers_per_trial, "one node id per training worker"
    record = json.loads((experiment / "sweep.json").read_text())
    assert record["trials"] == expected_trials and record["packages"]["ray"].startswith("2.60")
    # The stored sweep file, every value resolved, is the sweep that ran (--config it to run it again).
    assert load_sweep_file(experiment / "sweep.yaml") == SweepSettings.from_dict(record["settings"])
    check_timing_records(experiment, record, trials, epochs)
    return trials, epochs


def check_timing_records(experiment: Path, record: dict, trials: pd.DataFrame, epochs: pd.DataFrame) -> None:
    """What bench/sweep_overhead.py reads: the driver's timeline in order, and each trial's time on its
    CPUs (trial_times.csv) holding all of its epochs."""
    timeline = record["timeline"]
    steps = ["launched", "ray_starting", "ray_ready", "tuner_started", "tuner_ended", "tables_written"]
    assert [timeline[k] for k in steps] == sorted(timeline[k] for k in steps)
    times = read_trial_times(str(experiment))
    confirm_times = read_trial_times(str(experiment / CONFIRM_DIR))  # the confirm stage's own experiment
    assert set(times) | set(confirm_times) == set(trials["trial_id"]), f"a start and an end for every trial: {times}"
    since = 0.0 if "resumed" in record else timeline["tuner_started"]  # a resumed sweep's timeline is its own
    stage_end = {**{t: timeline["tuner_ended"] for t in times},
                 **{t: timeline.get("confirm_ended", 0.0) for t in confirm_times}}
    times = {**times, **confirm_times}
    stopped = set(trials.loc[trials["status"] == "stopped_early", "trial_id"])
    for trial_id, mine in epochs[epochs["trial_id"].isin([t for t, v in times.items() if v.get("ends")])].groupby("trial_id"):
        started, ended = min(times[trial_id]["starts"]), max(times[trial_id]["ends"])
        assert since <= started <= mine["fit_started_at"].min() and ended <= stage_end[trial_id]
        if trial_id not in stopped:  # a stopped trial's workers may finish one more epoch after Tune's end
            assert (mine["fit_started_at"] + mine["epoch_seconds"]).max() <= ended


def start_sweep(args: list[str], data_dir: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The sweep job in the background, in its own process group (so a test can kill it and its Ray)."""
    with open(log, "w") as sink:
        return subprocess.Popen([sys.executable, "jobs/sweep.py", *args], cwd=REPO,
                                env={**job_env(data_dir), **(env or {})}, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)


def checkpoint_states(experiment: Path) -> dict[str, list[CheckpointState]]:
    """trial id -> the state of each checkpoint its Train run has stored so far."""
    found: dict[str, list[CheckpointState]] = {}
    for state in sorted(experiment.glob(f"train_runs/*/checkpoint_*/{STATE_FILE}")):
        try:
            found.setdefault(state.parents[1].name, []).append(CheckpointState.from_json(state.read_text()))
        except (ValueError, OSError):
            pass  # being written
    return found


def finished_and_next_started(experiment: Path) -> list[str]:
    """The trials that finished, once a trial after them has started its run, else [] (for sweeps
    that run one trial at a time, `--max-concurrent-trials 1`, as both callers do).

    Only then has a finished trial's Train run returned with everything it stores stored: its
    last checkpoint's state.json appears while the checkpoint's other files are still being
    copied in (Ray Train copies them with parallel threads), so killing the driver or taking the
    storage away at that moment would cut that checkpoint short."""
    finished = [trial for trial, states in checkpoint_states(experiment).items()
                if any(state.stop_reason for state in states)]
    started = len(list(experiment.glob("train_runs/*/")))
    return finished if finished and started > len(finished) else []


def wait_until(condition, driver: subprocess.Popen, timeout: float, what: str):
    """Poll `condition()` until it returns something truthy; fail if the driver ends or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        assert driver.poll() is None, f"the sweep ended (exit {driver.returncode}) before {what}"
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_exit(driver: subprocess.Popen, timeout: float, log: Path, context: Callable[[], str] = lambda: "") -> int:
    """The driver's exit code; if it is still running after `timeout`, fail with its log's tail and
    `context()` (the cluster's state, say), in time to be read before pytest's own timeout fires."""
    try:
        return driver.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the sweep did not end within {timeout:.0f} s\n{context()}\n"
                             f"--- sweep log (tail) ---\n{log.read_text()[-6000:]}") from None


def hparams_sessions(experiment: Path) -> dict[str, tuple[dict, dict]]:
    """trial id -> (its hyperparameters, the last value of each metric the HParams view names), read
    from the experiment's event files with TensorBoard's own reader, as `tensorboard --logdir` does."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    sessions = {}
    for folder in sorted(experiment.glob("run_trial_*")):
        events = EventAccumulator(str(folder))
        events.Reload()
        plugin = {tag: plugin_data_pb2.HParamsPluginData.FromString(content)
                  for tag, content in events.PluginTagToContent("hparams").items()}
        started = [p.session_start_info for p in plugin.values() if p.HasField("session_start_info")]
        described = [p.experiment for p in plugin.values() if p.HasField("experiment")]
        assert started and described, f"{folder.name}: no HParams session in its event files"
        hparams = {name: getattr(value, value.WhichOneof("kind")) for name, value in started[0].hparams.items()}
        names = [info.name.tag for info in described[0].metric_infos]
        metrics = {name: events.Scalars(name)[-1].value for name in names if name in events.Tags()["scalars"]}
        trial_id = json.loads((folder / "result.json").read_text().splitlines()[0])["trial_id"]
        sessions[trial_id] = (hparams, metrics)
    return sessions


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` refuse writes, for real: a read-only bind mount as root (root ignores file
    modes), otherwise the write permission bits taken away."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")] if path.is_dir()}
        try:
            for path, mode in modes.items():
                path.chmod(mode & ~0o222)
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
