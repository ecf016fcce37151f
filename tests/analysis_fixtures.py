"""Inputs and a browser for the report tests: a tiny real experiment folder, trained without Ray,
messier copies of it, and headless Chromium to open the page.

The experiment is real: three tf_keras models trained on an MNIST subset with the project's
own model and input pipeline, checkpoints saved with `save_model`, and the tables written by
the sweep's own `trial_rows` / `write_tables`, so the columns are exactly what a sweep writes.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

import tensorflow as tf

from cnn.config import TrainConfig
from cnn.data import Dataset, load_dataset
from cnn.epoch import run_epoch, stop_reason
from cnn.keras_compat import keras
from cnn.model import build_model
from cnn.checkpoint_state import MODEL_FILE, CheckpointState
from cnn.model_io import save_model
from cnn.pipeline import evaluation_dataset
from cnn.replicas import ReplicaLayout
from cnn.sweep_results import SWEEP_JSON, trial_rows, write_tables
from cnn.sweep_settings import SweepSettings, l2_grid

# 17 steps per epoch: BatchNorm momentum 0.5 lets the moving statistics catch up in so few steps
# (at 0.9 validation accuracy stays at chance), so the models really classify (~75-80% here).
BASE = TrainConfig(dataset="mnist", limit=600, test_limit=200, epochs=2, batch_size=32, bn_momentum=0.5)
SETTINGS = SweepSettings(preset="tiny", base=BASE, search="grid", space=l2_grid((0.0, 1e-3), (0.0, 1.0)),
                         grace_period=1)
# (trial id, L2 on conv and dense, augmentation strength, epochs run). The augmented trial runs
# one epoch of two, as if ASHA had stopped it: the report must say the comparison is unfair.
TRIALS = (("tiny_00000", 0.0, 0.0, 2), ("tiny_00001", 1e-3, 0.0, 2), ("tiny_00002", 0.0, 1.0, 1))
SCRIPT = "<script>alert(1)</script>"
SCRIPT_ID = "tiny_00004<script>alert(2)</script>"


def build_tiny_experiment(folder: Path, data_dir: Path) -> Path:
    """Train the TRIALS for real and write trials.csv, epochs.csv, sweep.json and checkpoints into `folder`."""
    started = time.time()
    data = load_dataset(BASE.dataset, data_dir=str(data_dir), limit=BASE.limit, test_limit=BASE.test_limit,
                        validation_fraction=BASE.validation_fraction)
    trials, epochs = [], []
    for trial_id, l2, strength, epochs_run in TRIALS:
        sample = {"l2_conv": l2, "augment_strength": strength}  # as the grid samples them (l2_dense tied)
        config = SETTINGS.trial_config(sample)
        run = folder / "train_runs" / trial_id
        seconds = train_trial(config, data, run, epochs_run)
        row, rows = trial_rows(trial_id, sample, config, str(run), {"time_total_s": seconds}, None, BASE.epochs)
        row["tune_status"] = "TERMINATED"
        trials.append(row)
        epochs.extend(rows)
    write_tables(str(folder), trials, epochs)
    write_sweep_json(folder, data, len(trials), started)
    return folder


def train_trial(config: TrainConfig, data: Dataset, run: Path, epochs_run: int) -> float:
    """What one sweep trial does on one worker: the workers' own epoch (cnn.epoch), a checkpoint; repeat."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    strategy = tf.distribute.get_strategy()  # the default: one replica, no Ray
    steps = ReplicaLayout().steps_per_epoch(len(data.x_train), config.batch_size)
    model = build_model(config, data.input_shape, data.num_classes, steps)
    val_set = evaluation_dataset(data.x_val, data.y_val, config.batch_size)
    test_set = evaluation_dataset(data.x_test, data.y_test, config.batch_size)
    state = CheckpointState()
    for epoch in range(epochs_run):
        row = {**run_epoch(model, strategy, data, config, epoch, steps, val_set, test_set), "node_id": "test-node"}
        # "" = not finished, so a trial cut short reads as stopped by the scheduler, as in a sweep
        state = state.after_epoch({**row, "stop_reason": stop_reason(row, config)}, config.to_dict())
        checkpoint = run / f"checkpoint_{epoch:06d}"
        checkpoint.mkdir(parents=True)
        save_model(model, checkpoint / MODEL_FILE)
        state.write(checkpoint)
    return time.perf_counter() - started


def write_sweep_json(folder: Path, data: Dataset, trials: int, started: float) -> None:
    record = {
        "command": "python -m pytest tests/test_analysis.py  # tiny trainings without Ray",
        "settings": SETTINGS.to_dict(), "search_space": SETTINGS.describe_search(),
        "selection": "trials ranked by best val_accuracy (max); test accuracy is reported, never used to choose",
        "dataset": {"name": data.name, "source": data.source, "class_names": data.class_names,
                    "train": len(data.x_train), "validation": len(data.x_val), "test": len(data.x_test),
                    "input_shape": list(data.input_shape)},
        "resources_per_trial": {"workers": 1, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0},
        "concurrent_trials": 1, "cluster_resources": {"CPU": 2.0},
        "driver_host": {"hostname": "test-host", "platform": "test", "python": "3"},
        "git_commit": "test fixture", "packages": {"tensorflow": "test"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": round(time.time() - started, 1),
        "trials": trials,
    }
    (folder / SWEEP_JSON).write_text(json.dumps(record, indent=2))


def messy_copy(source: Path, folder: Path) -> Path:
    """The tiny experiment's tables plus a failed trial and a trial without a checkpoint, with
    `<script>` in a stop reason and a trial id. Checkpoints stay where `source` keeps them."""
    folder.mkdir(parents=True)
    shutil.copy(source / SWEEP_JSON, folder / SWEEP_JSON)
    trials = pd.read_csv(source / "trials.csv", dtype={"trial_id": str})
    epochs = pd.read_csv(source / "epochs.csv", dtype={"trial_id": str})
    template = {**trials.iloc[0].to_dict(), "augment_strength": 0.0, "config_augment": False}
    low = float(trials["best_val_accuracy"].min()) / 2  # ranked last of the trials with an accuracy
    metrics = [c for c in trials.columns if c.startswith(("final_", "best_")) and c != "best_checkpoint"]
    failed = {**template, **{m: np.nan for m in metrics}, "trial_id": "tiny_00003", "config_id": "failedcf",
              "status": "failed",
              "stop_reason": f"error: ValueError: {SCRIPT}", "epochs_run": 0, "l2_conv": 1e-2, "l2_dense": 1e-2,
              "wall_seconds": np.nan, "best_checkpoint": "",
              "latest_checkpoint": "", "tune_status": "ERROR"}
    no_checkpoint = {**template, "trial_id": SCRIPT_ID, "config_id": "nocheckp", "status": "stopped_early",
                     "stop_reason": "stopped by scheduler", "epochs_run": 1, "l2_conv": 1e-4, "l2_dense": 1e-4,
                     "best_epoch": 1, "best_val_accuracy": low,
                     "final_val_accuracy": low, "best_train_accuracy": low, "final_train_accuracy": low,
                     "best_test_accuracy": low, "final_test_accuracy": low, "best_checkpoint": "",
                     "latest_checkpoint": ""}
    epoch = {**epochs.iloc[0].to_dict(), "trial_id": SCRIPT_ID, "epoch": 1, "train_accuracy": low,
             "val_accuracy": low, "test_accuracy": low}
    trials = pd.concat([trials, pd.DataFrame([no_checkpoint, failed])], ignore_index=True)
    trials = trials.sort_values("best_val_accuracy", ascending=False, na_position="last", kind="stable")
    trials.to_csv(folder / "trials.csv", index=False)
    pd.concat([epochs, pd.DataFrame([epoch])], ignore_index=True).to_csv(folder / "epochs.csv", index=False)
    return folder


def broken_best_copy(source: Path, folder: Path) -> Path:
    """The tiny experiment with the best trial's model.keras replaced by bytes no loader accepts."""
    folder.mkdir(parents=True)
    for name in ("trials.csv", "epochs.csv", SWEEP_JSON):
        shutil.copy(source / name, folder / name)
    trials = pd.read_csv(source / "trials.csv", dtype={"trial_id": str})
    stored = Path(trials.loc[0, "best_checkpoint"])
    broken = folder / "train_runs" / stored.parent.name / stored.name  # found before the stored path
    broken.mkdir(parents=True)
    (broken / MODEL_FILE).write_bytes(b"not a keras zip")
    return folder


# --- the browser -------------------------------------------------------------------------------

# Injected into a copy of the report, never the report itself: records errors, console errors and
# alert() calls from the start, and on load writes what the page holds into the DOM as JSON.
PROBE_HEAD = """<script>
window.__errors = []; window.__alerts = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && (e.target.src || e.target.tagName)) || "error"));
}, true);
window.alert = function (m) { window.__alerts.push(String(m)); };
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, " ")); };
</script>"""
PROBE_TAIL = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({
    images: images.length,
    decoded: images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    leaderboard_rows: document.querySelectorAll("#leaderboard tbody tr").length,
    sections: document.querySelectorAll("main > section").length,
    page_width: document.documentElement.scrollWidth,
    // tables wider than their place in the page (cut off, to be scrolled to), by id or class
    overflowing_tables: Array.prototype.filter.call(document.querySelectorAll("table"), function (t) {
      var wrap = t.parentElement, right = t.getBoundingClientRect().right;
      return wrap.scrollWidth > wrap.clientWidth + 1 || right > document.documentElement.clientWidth;
    }).map(function (t) { return t.id || t.className || "table"; }),
    folded: Array.prototype.map.call(document.querySelectorAll("details.figure"), function (d) { return d.open; }),
    errors: window.__errors, alerts: window.__alerts});
  document.body.appendChild(out);
});
</script>"""
WINDOW = (1280, 2000)


def chromium_command(chromium: str, profile: Path) -> list[str]:
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"]


def browser_check(chromium: str, report: Path, scratch: Path) -> dict:
    """Open a probed copy of the report in headless Chromium; what the page reported on load."""
    text = report.read_text()
    probed = text.replace("<head>", "<head>" + PROBE_HEAD, 1)
    cut = probed.rindex("</body>")
    copy = scratch / "probed.html"
    copy.write_text(probed[:cut] + PROBE_TAIL + probed[cut:])
    done = subprocess.run([*chromium_command(chromium, scratch / "profile"), "--virtual-time-budget=10000",
                           "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not run; chromium said: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(chromium: str, report: Path, target: Path, scratch: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    done = subprocess.run([*chromium_command(chromium, scratch / "profile-shot"), f"--screenshot={target}",
                           report.as_uri()], capture_output=True, text=True, timeout=120)
    assert target.is_file(), f"no screenshot written; chromium said: {done.stderr[-2000:]}"
    return target


def install_chromium() -> str | None:
    """Debian's chromium, installed quietly with apt-get if missing and we are root; None if impossible."""
    found = shutil.which("chromium")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=900)
    return shutil.which("chromium")


def replicated_copy(source: Path, folder: Path) -> Path:
    """The tiny experiment plus a confirm stage: each of its configurations trained three more times
    (seeds 1, 2, 3), with made-up accuracies: L2 = 0.001 adds 3 points to the test accuracy of
    the unaugmented configuration with little spread, so the report must call that larger than seed
    noise. Their checkpoints are the tiny trials' own."""
    folder.mkdir(parents=True)
    shutil.copy(source / SWEEP_JSON, folder / SWEEP_JSON)
    trials = pd.read_csv(source / "trials.csv", dtype={"trial_id": str})
    epochs = pd.read_csv(source / "epochs.csv", dtype={"trial_id": str})
    added, added_epochs = [], []
    for _, trial in trials.iterrows():
        shift = 0.03 if trial["l2_conv"] > 0 else 0.0
        for seed, wobble in zip((1, 2, 3), (-0.002, 0.0, 0.002)):
            copy_id = f"{trial['trial_id']}_confirm{seed}"
            accuracy = 0.9 + shift + wobble
            added.append({**trial.to_dict(), "trial_id": copy_id, "stage": "confirm", "seed": seed,
                          "config_seed": seed, "best_val_accuracy": accuracy, "best_test_accuracy": accuracy,
                          "best_train_accuracy": accuracy + 0.01})
            added_epochs += [{**row.to_dict(), "trial_id": copy_id}
                             for _, row in epochs[epochs["trial_id"] == trial["trial_id"]].iterrows()]
    pd.concat([trials, pd.DataFrame(added)], ignore_index=True).to_csv(folder / "trials.csv", index=False)
    pd.concat([epochs, pd.DataFrame(added_epochs)], ignore_index=True).to_csv(folder / "epochs.csv", index=False)
    return folder
