"""Faults a cluster throws at a sweep, injected for real: a killed training worker, a lost node,
storage that stops taking writes. (A killed driver and a diverging trial: tests/test_sweep.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ray_cluster import alive_actors, cluster_state, descendants, head_node, process_table, token_env, worker_node
from sweep_checks import (REPO, check_tables, finished_and_next_started, job_env, read_only, read_tables,
                          start_sweep, wait_for_exit, wait_until)

pytestmark = pytest.mark.slow
EXIT_STORAGE_FAILED = 3


def test_a_killed_training_worker_resumes_from_its_last_checkpoint(data_dir, tmp_path):
    experiment = tmp_path / "worker_kill"
    driver = start_sweep(["--preset", "smoke", "--storage-path", str(tmp_path), "--name", experiment.name,
                          "--grid-l2", "0", "--epochs", "4"], data_dir, tmp_path / "sweep.log")
    try:
        # Registered by Ray Train's controller, not only written: a checkpoint still being reported
        # when a worker dies is lost by design, and the run would restart from the one before.
        wait_until(lambda: _registered_epoch(experiment), driver, 300, "the first registered checkpoint")
        workers = _pids("ray::RayTrainWorker", below=driver.pid)
        assert len(workers) == 2, f"expected the trial's two training workers, found {workers}"
        os.kill(workers[0], signal.SIGKILL)
        assert wait_for_exit(driver, 480, tmp_path / "sweep.log") == 0, (tmp_path / "sweep.log").read_text()[-4000:]
    finally:
        _kill_group(driver)

    trials, epochs = check_tables(experiment, expected_trials=1, workers_per_trial=2)
    trial = trials.iloc[0]
    assert trial.status == "finished" and trial.epochs_run == 4
    assert epochs["epoch"].tolist() == [1, 2, 3, 4], "every epoch exactly once"
    resumed = [int(e) for e in str(trial.resumed_after_epochs).split(";")]
    assert resumed and 1 <= resumed[0] < 4, f"the worker group should have resumed from a checkpoint: {resumed}"


def test_a_sweep_stopped_with_ctrl_c_says_it_was_interrupted_and_how_to_resume(data_dir, tmp_path):
    """Ctrl-C: Tune stops its trials and returns normally. The tables and the report hold what ran,
    and sweep.json, the report and the exit status must say the sweep did not finish (they said
    "finished" before), so that nothing reading them takes a partial sweep for a whole one."""
    experiment = tmp_path / "stopped"
    log = tmp_path / "sweep.log"
    driver = start_sweep(["--preset", "smoke", "--storage-path", str(tmp_path), "--name", experiment.name,
                          "--epochs", "4"], data_dir, log)
    try:
        wait_until(lambda: _registered_epoch(experiment), driver, 300, "the first registered checkpoint")
        os.kill(driver.pid, signal.SIGINT)  # the driver only, as a terminal's Ctrl-C would reach it
        assert wait_for_exit(driver, 300, log) == 1, log.read_text()[-4000:]
    finally:
        _kill_group(driver)
    record = json.loads((experiment / "sweep.json").read_text())
    assert record["state"] == "interrupted" and record["interrupted"].startswith("the search: ")
    assert "--resume" in log.read_text() and "was interrupted" in log.read_text()
    assert (experiment / "trials.csv").exists()
    assert "This sweep did not finish" in (experiment / "analysis" / "summary.html").read_text()


@pytest.mark.timeout(1500)  # the waits below guard against a hang; a slow VM needs more than the default 900 s
def test_a_lost_node_costs_its_trial_a_restart_and_the_sweep_goes_on(data_dir, tmp_path):
    """Two nodes of 2 CPUs; two trials of two 1-CPU workers each, so one trial trains on the second
    node. That node is killed (raylet and all) once Ray Train has registered that trial's first checkpoint."""
    env = token_env(data_dir, tmp_path)
    storage = tmp_path / "shared-storage"
    with head_node(env, num_cpus=2) as addresses, worker_node(env, addresses["gcs"], num_cpus=2) as second:
        driver = start_sweep(["--preset", "smoke", "--storage-path", str(storage), "--name", "node_loss",
                              "--epochs", "3", "--workers-per-trial", "2", "--cpus-per-worker", "1"],
                             data_dir, tmp_path / "sweep.log", env={**env, "RAY_ADDRESS": addresses["gcs"]})
        try:
            on_second = wait_until(lambda: _trial_on_node(storage / "node_loss", second.node_id), driver, 600,
                                   "a registered checkpoint of the trial on the second node")
            # Trial drivers and their Train controllers stay on the head (cnn_ray/trial.py): one lost with
            # the node while its worker group started would leak that group's CPUs and hang the sweep.
            # And a trial driver takes no CPU a training worker could use.
            drivers = [a for a in alive_actors(env, addresses["gcs"])
                       if a["class_name"] in ("ImplicitFunc", "TrainController")]
            assert {a["class_name"] for a in drivers} == {"ImplicitFunc", "TrainController"}, drivers
            assert all(a["node_id"] != second.node_id for a in drivers), drivers
            assert all((a.get("required_resources") or {}).get("CPU", 0) == 0 for a in drivers
                       if a["class_name"] == "ImplicitFunc"), drivers
            second.kill()
            code = wait_for_exit(driver, 480, tmp_path / "sweep.log", lambda: cluster_state(env, addresses["gcs"]))
            assert code == 0, (tmp_path / "sweep.log").read_text()[-4000:]
        finally:
            _kill_group(driver)

    trials, epochs = read_tables(storage / "node_loss")
    assert len(trials) == 2 and not epochs.duplicated(["trial_id", "epoch"]).any()
    lost = trials[trials.trial_id == on_second].iloc[0]
    other = trials[trials.trial_id != on_second].iloc[0]
    assert other.status == "finished" and other.epochs_run == 3, "the trial on the surviving node finishes"
    # Its controller survived on the head: Ray Train restarted the worker group there, from the checkpoint.
    assert lost.status == "finished" and lost.epochs_run == 3, lost.to_dict()
    assert second.node_id not in lost.worker_node_ids
    resumed = [int(float(e)) for e in str(lost.resumed_after_epochs).split(";")]  # a float column: the other's is empty
    assert resumed and 1 <= resumed[0] < 3, f"the lost trial should have resumed from a checkpoint: {resumed}"


def test_storage_turning_read_only_stops_the_sweep_and_what_was_written_stays_usable(data_dir, tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    experiment = storage / "read_only"
    driver = start_sweep(["--preset", "smoke", "--storage-path", str(storage), "--name", experiment.name,
                          "--grid-l2", "0", "1e-4", "1e-3", "--workers-per-trial", "1", "--cpus-per-worker", "1",
                          "--max-concurrent-trials", "1", "--scheduler", "fifo"], data_dir, tmp_path / "sweep.log")
    try:
        finished = wait_until(lambda: finished_and_next_started(experiment), driver, 300,
                              "a finished trial and the next one started")
        with read_only(storage):
            code = wait_for_exit(driver, 480, tmp_path / "sweep.log")
            log = (tmp_path / "sweep.log").read_text()
            assert code == EXIT_STORAGE_FAILED, log[-4000:]
            last = log.strip().splitlines()[-1]
            assert last.startswith("error: storage stopped taking writes") and "--out" in last and "--resume" in last

            report_dir = tmp_path / "report"
            built = subprocess.run([sys.executable, "-m", "analysis", str(experiment), "--out", str(report_dir)],
                                   cwd=REPO, env=job_env(data_dir), capture_output=True, text=True, timeout=600)
            assert built.returncode == 0, built.stderr[-3000:]
            in_place = subprocess.run([sys.executable, "-m", "analysis", str(experiment)], cwd=REPO,
                                      env=job_env(data_dir), capture_output=True, text=True, timeout=600)
            assert in_place.returncode == 2 and "--out" in in_place.stderr.strip().splitlines()[-1]
    finally:
        _kill_group(driver)

    trials, epochs = read_tables(report_dir)
    done = trials[trials.trial_id.isin(finished)]
    assert len(done) == len(finished) and set(done.status) == {"finished"} and (done.epochs_run == 2).all()
    assert len(epochs[epochs.trial_id.isin(finished)]) == 2 * len(finished)
    html = (report_dir / "summary.html").read_text()
    assert "did not finish" in html and all(trial in html for trial in finished)
    assert json.loads((experiment / "sweep.json").read_text())["state"] == "running"


def _registered_epoch(experiment: Path, trial_id: str = "*") -> int:
    for snapshot in experiment.glob(f"train_runs/{trial_id}/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result") or {}
        except (json.JSONDecodeError, OSError):
            continue  # being written
        return int((latest.get("metrics") or {}).get("epoch", 0))
    return 0


def _trial_on_node(experiment: Path, node_id: str) -> str | None:
    """A trial training on this node whose checkpoint Ray Train has registered (so a restart resumes from it)."""
    for records in sorted(experiment.glob("train_runs/*/checkpoint_*/workers/rank*.json")):
        trial_id = records.parents[2].name
        try:
            on_node = json.loads(records.read_text())["node_id"] == node_id
        except (json.JSONDecodeError, OSError):
            continue  # being written
        if on_node and _registered_epoch(experiment, trial_id):
            return trial_id
    return None


def _pids(title: str, below: int) -> list[int]:
    """Processes with this title started by the driver `below` (its local Ray's), none of another Ray's."""
    table = process_table()
    return sorted(pid for pid in descendants({below}, table) if title in table[pid][1])


def _kill_group(driver: subprocess.Popen) -> None:
    if driver.poll() is None:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
