"""The sweep job for real: smoke preset, ASHA stopping with resources given back, kill and resume."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib import metadata

import numpy as np
import pandas as pd
import pytest

from cnn.model_io import load_model
from cnn.quiet_tensorflow import QUIET_SETTING
from cnn.sweep_file import load_sweep_file
from cnn.sweep_results import CONFIRM_DIR
from cnn_ray.trial_clock import read_trial_times
from image_folders import DIGIT_NAMES, write_mnist_folders
from ray_cluster import head_node as start_head, token_env
from search_driver import drive, generator
from sweep_checks import (REPO, check_tables, finished_and_next_started, hparams_sessions, job_env, run_sweep,
                          start_sweep, wait_until)

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1500)  # two trials and the final model: about 10 min on this slow CPU when it is shared
def test_smoke_preset_runs_the_whole_path_and_a_diverging_trial_is_recorded(data_dir, tmp_path):
    """The smoke preset end to end (2 trials on 2 workers each, tables, TensorBoard logs, report),
    with its second grid point made to diverge: L2 = 1e38 overflows float32, so that trial's loss
    is infinite from its first step. It must be recorded as failed, the other trial must finish.
    Its data is a person's own: a folder of MNIST digits as PNG and JPEG files, one subfolder per
    class named after the digit, in train/ and test/ (the other sweeps of this module read .npz files)."""
    digits = write_mnist_folders(data_dir / "mnist.npz", tmp_path / "digits", train=1200, test=500)
    done = run_sweep(["--preset", "smoke", "--storage-path", str(tmp_path), "--name", "smoke",
                      "--dataset", str(digits), "--color-mode", "grayscale",
                      "--grid-l2", "0", "1e38", "--final",
                      # FIFO, not the preset's ASHA: the diverged trial reports chance accuracy (0.10) at
                      # epoch 1, and a healthy trial that reports after it with less (its first epoch is
                      # 17 steps) would be stopped by ASHA's rung, which this test is not about.
                      "--scheduler", "fifo"], data_dir, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trials x up to 2 epochs" in done.stdout and "== leaderboard" in done.stdout
    trials, epochs = check_tables(tmp_path / "smoke", expected_trials=2, load_checkpoints=False, workers_per_trial=2)
    diverged, healthy = trials[trials.l2_conv > 1].iloc[0], trials[trials.l2_conv == 0].iloc[0]
    check_quiet_console(done.stdout + done.stderr, epochs, diverged.trial_id)
    assert diverged.status == "failed" and diverged.stop_reason.startswith("diverged") and diverged.epochs_run == 1
    assert healthy.status == "finished" and healthy.epochs_run == 2 and len(epochs) == 3
    load_model(healthy.best_checkpoint)
    # TensorBoard's HParams view: every trial with its swept values and its best validation accuracy.
    sessions = hparams_sessions(tmp_path / "smoke")
    assert set(sessions) == set(trials["trial_id"])
    hparams, metrics = sessions[healthy.trial_id]
    assert hparams["l2_conv"] == 0 and hparams["augment_strength"] == 1
    assert metrics["ray/tune/best_val_accuracy"] == pytest.approx(healthy.best_val_accuracy, abs=1e-6)
    assert sessions[diverged.trial_id][0]["l2_conv"] == pytest.approx(1e38)
    report = tmp_path / "smoke" / "analysis" / "summary.html"
    assert f"report: {report}" in done.stdout and report.stat().st_size > 10_000
    html = report.read_text()
    assert "diverged" in html and diverged.trial_id in html
    assert all(f"<td>{name}</td>" in html for name in DIGIT_NAMES), "the per-class table names the folders' classes"
    # The final model: the healthy configuration (the only one with a result), trained on training +
    # validation data for the epochs its validation accuracy chose, exported, and usable by cnn-predict.
    final = tmp_path / "smoke" / "final_model"
    assert f"final model: {final}" in done.stdout
    card = json.loads((final / "model_card.json").read_text())
    assert card["chosen_configuration"]["config_id"] == healthy.config_id and card["config"]["l2_conv"] == 0
    assert card["chosen_configuration"]["ranking"] == f"Only one configuration has a result: configuration {healthy.config_id}."
    assert card["epochs_run"] == healthy.best_epoch and card["dataset"]["trained_on"] == "1200 images: 1080 training + 120 validation"
    assert 0 <= card["final_model_test_accuracy"] <= 1 and card["dataset"]["source"].startswith(str(digits))
    assert card["input"]["class_names"] == sorted(DIGIT_NAMES) and card["input"]["shape"] == [28, 28, 1]
    images = tmp_path / "images.npz"
    np.savez(images, x=np.zeros((3, 28, 28), dtype=np.uint8))
    predicted = subprocess.run([sys.executable, "jobs/predict.py", str(final), str(images), "--out",
                                str(tmp_path / "p.csv")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3


@pytest.mark.timeout(1200)  # the failure this guards against is a hang (a slow VM took 7 min for the first trial)
def test_asha_stops_clearly_worse_trials_and_gives_back_their_cpus_beside_another_ray(data_dir, tmp_path, capfd,
                                                                                     monkeypatch):
    """One good trial (no L2) first, then three with absurd L2 that cannot learn: ASHA must stop them
    and their CPUs must come back, while another Ray instance runs on the same machine. (Without
    RAY_ADDRESS in the workers, Ray Train's placement-group cleaner cannot tell the two apart, dies,
    and the stopped trials' CPUs stay reserved: the last trial waits forever. cnn_ray/local_ray.py.)
    The training images stream through Ray Data from a folder of MNIST PNGs and JPEGs (the streaming
    loader), so trials stopped mid-stream must give back what Ray Data held too; the final model
    streams the training and validation files together. Run with --verbose: Tune's table and the
    workers' log lines are back on the console."""
    import ray
    from ray.util.state import list_placement_groups

    from jobs import sweep as sweep_job

    digits = write_mnist_folders(data_dir / "mnist.npz", tmp_path / "digits", train=3000, test=500)
    for setting in ("RAY_AIR_NEW_OUTPUT", "TF_CPP_MIN_LOG_LEVEL", QUIET_SETTING):  # set by the job, in this process
        monkeypatch.setenv(setting, "")
        monkeypatch.delenv(setting)
    with start_head(token_env(data_dir, tmp_path), num_cpus=1):  # the other Ray instance
        sweep_job.main(["--preset", "local", "--seeds", "1", "--storage-path", str(tmp_path), "--name", "asha",
                        "--dataset", str(digits), "--color-mode", "grayscale", "--data-loader", "stream",
                        "--limit", "3000", "--test-limit", "500", "--epochs", "3",
                        "--grid-l2", "0", "5", "10", "20", "--grid-augment-strength", "0",
                        "--scheduler", "asha", "--grace-period", "1", "--max-concurrent-trials", "1", "--final",
                        "--verbose"])
    address = ray.get_runtime_context().gcs_address
    console = "".join(capfd.readouterr())
    assert "Trial status:" in console and "RayTrainWorker pid=" in console, console[-3000:]
    try:
        trials, _ = check_tables(tmp_path / "asha", expected_trials=4, load_checkpoints=False)
        good = trials[trials.l2_conv == 0].iloc[0]
        assert good.status == "finished" and good.epochs_run == 3
        stopped = trials[trials.status == "stopped_early"]
        assert len(stopped) >= 2 and (stopped.epochs_run < 3).all()
        assert (stopped.best_val_accuracy < good.best_val_accuracy).all()
        record = json.loads((tmp_path / "asha" / "sweep.json").read_text())["dataset"]
        assert record["loader"] == "stream" and (record["train"], record["validation"]) == (2700, 300)
        html = (tmp_path / "asha" / "analysis" / "summary.html").read_text()
        assert all(f"<td>{name}</td>" in html for name in DIGIT_NAMES), "the report names the folders' classes"
        # The final model trains on a stream of the training and validation files together.
        card = json.loads((tmp_path / "asha" / "final_model" / "model_card.json").read_text())
        assert card["dataset"]["trained_on"] == "3000 images: 2700 training + 300 validation"
        assert card["dataset"]["loader"] == "stream" and card["input"]["class_names"] == sorted(DIGIT_NAMES)
        assert card["chosen_configuration"]["config_id"] == good.config_id

        deadline = time.time() + 60
        while time.time() < deadline:
            groups = [g for g in list_placement_groups(address=address) if g.state != "REMOVED"]
            if not groups and ray.available_resources().get("CPU") == ray.cluster_resources()["CPU"]:
                break
            time.sleep(2)
        assert not groups, f"placement groups not freed: {groups}"
        assert ray.available_resources().get("CPU") == ray.cluster_resources()["CPU"]
    finally:
        ray.shutdown()


def check_quiet_console(console: str, epochs: pd.DataFrame, diverged_trial: str) -> None:
    """What the smoke sweep printed without --verbose: the plan, one line per trial-epoch, a line for
    the diverged trial, the tables and paths; none of the machinery (workers' and controllers' log
    lines, TensorFlow's start-up and C++ lines, Tune's table). Its size: the 2-trial sweep with a
    final model printed 54 lines when this test was written (`make sweep` printed 1,029 before)."""
    lines = console.splitlines()
    machinery = [line for line in lines if re.search(r"^\x1b\[36m\(|^\((RayTrainWorker|TrainController|"
                                                     r"run_trial|ImplicitFunc|PlacementGroupCleaner|raylet)|"
                                                     r"^[IWE]\d{4} |absl::InitializeLog|Trial status|"
                                                     r"Configuration for experiment|Reporting training result", line)]
    assert not machinery, machinery[:5]
    per_epoch = [line for line in lines if re.search(r"\] trial \S+ \(.*\) epoch \d+/2: train", line)]
    assert len(per_epoch) == len(epochs), per_epoch
    assert any(diverged_trial in line and "diverged" in line for line in per_epoch)
    assert len(lines) <= 60, f"{len(lines)} lines:\n{console}"


# A TPE sweep with the L2 = 0 baseline outside its log domain: the searcher's saved state (Optuna's
# study and sampler, the baselines wrapper, the concurrency limiter) is what --resume must restore.
# Then a confirm stage: the best configuration and the baseline, each twice with fresh seeds; then
# the final model of the confirm stage's first, from the .npz (so its card has the file's checksum).
RESUMABLE_TPE = """\
train: {dataset: mnist, limit: 1200, test_limit: 500, epochs: 2, batch_size: 64, bn_momentum: 0.9,
        horizontal_flip: false}
search: {algorithm: tpe, num_samples: 3, seed: 0, max_concurrent_trials: 1}
space:
  l2_conv: {loguniform: [1.0e-6, 1.0e-2]}
  l2_dense: {same_as: l2_conv}
baselines:
  - {l2_conv: 0.0}
scheduler: {name: fifo}
resources: {workers_per_trial: 1, cpus_per_worker: 1}
confirm: {top: 1, seeds: 2, epochs: 1}
final: true
"""


@pytest.mark.timeout(2400)  # three runs of the job, two of them killed; a hang is what this limit guards against
def test_killed_driver_then_resume_does_not_rerun_finished_trials(data_dir, tmp_path):
    experiment = tmp_path / "resumable"
    sweep_file = tmp_path / "resumable_tpe.yaml"
    sweep_file.write_text(RESUMABLE_TPE)
    args = ["--config", str(sweep_file), "--storage-path", str(tmp_path), "--name", "resumable"]
    driver = subprocess.Popen([sys.executable, "jobs/sweep.py", *args], cwd=REPO, env=job_env(data_dir),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Killed once Tune's saved state holds the second trial: the searcher's state saved with it
        # then knows the baseline and the first proposal, which a resume must not propose again.
        finished = wait_until(lambda: _trials_in_saved_state(experiment) >= 2 and finished_and_next_started(experiment),
                              driver, 600, "a finished trial, the next one started and saved in Tune's state")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    before = {trial: sorted(p.name for p in (experiment / "train_runs" / trial).glob("checkpoint_*"))
              for trial in finished}
    assert not (experiment / "trials.csv").exists()

    resumed_at = time.time()
    # Resumed, and killed again once the confirm stage has finished a trial and started the next.
    log = tmp_path / "resumed.log"
    driver = start_sweep([*args, "--resume"], data_dir, log)
    try:
        confirmed = wait_until(lambda: finished_and_next_started(experiment / CONFIRM_DIR), driver, 900,
                               "a finished confirm trial, the next one started")
    except AssertionError as error:
        raise AssertionError(f"{error}; the resumed driver's log ends: {log.read_text()[-3000:]}") from None
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before.update({trial: sorted(p.name for p in (experiment / CONFIRM_DIR / "train_runs" / trial).glob("checkpoint_*"))
                   for trial in confirmed})

    resumed = run_sweep([*args, "--resume"], data_dir, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    configs = pd.read_csv(experiment / "configs.csv")
    search = configs[configs.stage == "search"]
    chosen = {search.iloc[0]["config_id"], search.loc[search.l2_conv == 0, "config_id"].iloc[0]}  # best, baseline
    trials, _ = check_tables(experiment, expected_trials=3 + 2 * len(chosen))  # the trials planned, no more
    searched, confirm = trials[trials.stage == "search"], trials[trials.stage == "confirm"]
    assert set(trials["status"]) == {"finished"} and (searched["epochs_run"] == 2).all()
    # The confirm stage: each chosen configuration twice, 1 epoch, with seeds the search did not use.
    assert set(confirm["config_id"]) == chosen and (confirm["epochs_run"] == 1).all()
    assert all(sorted(group["seed"]) == [1, 2] for _, group in confirm.groupby("config_id"))
    assert list(configs.loc[configs.stage == "confirm", "n"]) == [2] * len(chosen)
    # TPE's first proposals are its seeded random start-up draws, whatever the results: a clean run
    # proposes these. A searcher restarted without its saved state would propose the first of them
    # again, and rerun the baseline.
    planned = [config["l2_conv"] for config in drive(generator(load_sweep_file(sweep_file), 1), 3, at_once=1)]
    assert planned[0] == 0.0
    assert sorted(searched["l2_conv"]) == pytest.approx(sorted(planned), rel=1e-12), "the trials a clean run has"
    for trial, checkpoints in before.items():
        folder = experiment / ("train_runs" if trial in finished else f"{CONFIRM_DIR}/train_runs")
        after = sorted(p.name for p in (folder / trial).glob("checkpoint_*"))
        assert after == checkpoints, f"finished trial {trial} was trained again"
    times = read_trial_times(str(experiment))  # the resumed sweep kept the first run's trial times
    assert all(min(times[trial]["starts"]) < resumed_at and times[trial]["ends"] for trial in finished)
    # The final model: the confirm stage's first configuration, its interval and ranking on the card.
    card = json.loads((experiment / "final_model" / "model_card.json").read_text())
    first = configs[configs.stage == "confirm"].iloc[0]
    chosen_card = card["chosen_configuration"]
    assert (chosen_card["config_id"], chosen_card["stage"], chosen_card["replicates"]) == (first.config_id, "confirm", 2)
    assert chosen_card["test_accuracy_ci95"] == pytest.approx([first.test_accuracy_ci_low, first.test_accuracy_ci_high])
    if len(chosen) == 1:  # the best search trial was the baseline: the confirm stage trained it alone
        assert chosen_card["ranking"] == f"Only one configuration has a result: configuration {first.config_id}."
    else:
        assert chosen_card["ranking"].startswith((f"Configuration {first.config_id} wins",
                                                  f"No winner: configuration {first.config_id} ranks first"))
    assert card["epochs_run"] == 1 and card["dataset"]["trained_on"] == "1200 images: 1080 training + 120 validation"
    assert card["dataset"]["sha256"] == hashlib.sha256((data_dir / "mnist.npz").read_bytes()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{40}( \(with uncommitted changes\))?", card["git_commit"]), card["git_commit"]
    assert (card["packages"]["tensorflow"], card["packages"]["ray"]) == (metadata.version("tensorflow"),
                                                                         metadata.version("ray"))


def _trials_in_saved_state(experiment) -> int:
    """Trials in Tune's latest saved experiment state (0 while there is none, or it is being written)."""
    import json

    try:
        newest = max(experiment.glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
        return len(json.loads(newest.read_text())["trial_data"])
    except (ValueError, OSError, KeyError):
        return 0

