"""Turn a finished (or interrupted) sweep into tidy tables: trials.csv and epochs.csv.

Per-epoch rows come from the history stored in each trial's latest checkpoint, which is
consistent with the weights it holds: after a worker restart an epoch appears exactly once.
The best checkpoint of a trial is the stored one with the highest validation accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from cnn.config import TrainConfig
from cnn.sweep_settings import REPLICATE_KEY
from cnn.checkpoint_state import STATE_FILE, STOP_DIVERGED, WORKERS_DIR, CheckpointState

# The hyperparameters a sweep varies: trials.csv has a column of each, named as the knob
# (cnn_ray.search_space samples them; augment_strength scales TrainConfig.AUGMENT_RANGES).
SWEPT_KEYS = ("l2_conv", "l2_dense", "dropout_conv", "dropout_dense", "augment_strength")
# Knobs a sweep holds fixed that trials.csv still records per trial, as config_<knob>.
CONFIG_KEYS = ("augment", "learning_rate", "lr_schedule", "batch_size", "seed")
TRAIN_RUNS_DIR = "train_runs"  # <experiment>/train_runs/<trial_id>/: each trial's Ray Train run
CONFIRM_DIR = "confirm"  # <experiment>/confirm/: the confirm stage's Tune experiment (its own train_runs/)
TRIALS_CSV, EPOCHS_CSV, SWEEP_JSON = "trials.csv", "epochs.csv", "sweep.json"
SWEEP_YAML = "sweep.yaml"  # the sweep file with every value resolved (cnn/sweep_file.py): rerun it with --config
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
# epochs.csv: one row per trial-epoch, from the history the worker stored (cnn.epoch.run_epoch's row).
EPOCH_COLUMNS = ("trial_id", "epoch", *METRICS, "train_seconds", "val_seconds", "test_seconds", "epoch_seconds",
                 "images_per_second", "learning_rate", "global_batch_size", "node_id",
                 "fit_started_at", "stream_wait_seconds")
STATUS_FINISHED, STATUS_STOPPED, STATUS_FAILED = "finished", "stopped_early", "failed"
# trials.csv's stage: the search, then (with a confirm stage) the chosen configurations trained again.
STAGE_SEARCH, STAGE_CONFIRM = "search", "confirm"


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri)


def read_text(uri: str) -> str:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def write_text(uri: str, text: str) -> None:
    """Write whole or not at all: a temporary file renamed into place where the store allows."""
    fs, path = filesystem(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    temporary = path + ".partial"
    with fs.open_output_stream(temporary) as stream:
        stream.write(text.encode())
    fs.move(temporary, path)


def list_folders(uri: str, prefix: str = "") -> list[str]:
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    base = uri.rstrip("/")
    return sorted(f"{base}/{info.base_name}" for info in infos
                  if info.type == pafs.FileType.Directory and info.base_name.startswith(prefix))


def checkpoint_states(run_uri: str) -> list[tuple[str, CheckpointState]]:
    """(checkpoint folder, its state) for every checkpoint a Train run kept."""
    states = []
    for folder in list_folders(run_uri, prefix="checkpoint_"):
        try:
            states.append((folder, CheckpointState.from_json(read_text(f"{folder}/{STATE_FILE}"))))
        except (OSError, FileNotFoundError, ValueError, TypeError):
            continue  # a checkpoint cut short by a crash: skip it, the others still count
    return states


def worker_node_ids(checkpoint_uri: str) -> list[str]:
    """The Ray node id of every training worker (by rank) that wrote into a checkpoint."""
    fs, path = filesystem(f"{checkpoint_uri}/{WORKERS_DIR}")
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    records = []
    for info in infos:
        if info.base_name.startswith("rank") and info.base_name.endswith(".json"):
            records.append(json.loads(read_text(f"{checkpoint_uri}/{WORKERS_DIR}/{info.base_name}")))
    return [r["node_id"] for r in sorted(records, key=lambda r: r["rank"])]


def trial_rows(trial_id: str, sample: dict[str, Any], requested: TrainConfig, run_uri: str,
               last_metrics: dict[str, Any], error: str | None, max_epochs: int, swept: tuple[str, ...] = (),
               stage: str = STAGE_SEARCH) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trials.csv row and its epochs.csv rows. The knobs are the ones the trial trained with, as its
    checkpoints store them (with --scale-with-workers, the scaled batch and learning rate); `requested`
    (the base config with the trial's sample applied) only for a trial that never reached a checkpoint.
    `swept`: the knobs the sweep varies, each a column of its own beside the study's five; `stage`: the
    search or the confirm stage."""
    states = checkpoint_states(run_uri)
    latest = max(states, key=lambda s: s[1].epochs_done, default=None)
    history = list(latest[1].history) if latest else []
    best = max(states, key=lambda s: _score(s[1].history[-1]) if s[1].history else -1.0, default=None)
    trained = TrainConfig.from_dict(latest[1].config) if latest and latest[1].config else requested
    epochs = [{"trial_id": trial_id, **{k: row.get(k) for k in EPOCH_COLUMNS[1:]}} for row in history]
    status, stop_reason = _status(history[-1]["stop_reason"] if history else "", error)
    row: dict[str, Any] = {"trial_id": trial_id, "stage": stage, "config_id": config_id(sample), "seed": trained.seed,
                           "status": status, "stop_reason": stop_reason,
                           "epochs_run": len(history), "max_epochs": max_epochs}
    row.update(knob_values(trained, sample, swept))
    final = history[-1] if history else {}
    best_row = best[1].history[-1] if best and best[1].history else {}
    row.update({f"final_{k}": final.get(k) for k in METRICS})
    row["best_epoch"] = best_row.get("epoch")
    row.update({f"best_{k}": best_row.get(k) for k in METRICS})
    row["wall_seconds"] = last_metrics.get("time_total_s")
    row["best_checkpoint"] = best[0] if best else ""
    row["latest_checkpoint"] = latest[0] if latest else ""
    row["worker_node_ids"] = ";".join(worker_node_ids(latest[0])) if latest else ""
    # Epochs after which a restarted worker group resumed from the checkpoint (Ray Train's FailureConfig).
    row["resumed_after_epochs"] = ";".join(str(e) for e in latest[1].resumed_after_epochs) if latest else ""
    return row, epochs


def knob_columns(swept: tuple[str, ...] = ()) -> list[str]:
    """trials.csv's columns of knobs (knob_values), the seed left out: what every replicate of one
    configuration shares."""
    return [*SWEPT_KEYS, *(key for key in swept if key not in SWEPT_KEYS),
            *(f"config_{key}" for key in CONFIG_KEYS if key != "seed")]


def config_id(sample: dict[str, Any]) -> str:
    """The same for every replicate (seed) of one configuration: a digest of its sampled values."""
    values = {key: value for key, value in sample.items() if key != REPLICATE_KEY}
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def samples_by_config(samples: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each configuration's sample without its replicate index, by config_id (the first seen)."""
    by_config: dict[str, dict[str, Any]] = {}
    for sample in samples:
        plain = {key: value for key, value in sample.items() if key != REPLICATE_KEY}
        by_config.setdefault(config_id(plain), plain)
    return by_config


def knob_values(config: TrainConfig, sample: dict[str, Any], swept: tuple[str, ...] = ()) -> dict[str, Any]:
    """A trial's columns for its knobs: the study's five and every other knob the sweep varies under
    its own name, the rest as config_<name>. augment_strength is the searched value when the search
    chose one (it is not a config field)."""
    names = [*SWEPT_KEYS, *(key for key in swept if key not in SWEPT_KEYS)]
    values: dict[str, Any] = {key: getattr(config, key) for key in names if key != "augment_strength"}
    values["augment_strength"] = sample.get("augment_strength", config.augment_strength)
    values.update({f"config_{key}": getattr(config, key) for key in CONFIG_KEYS})
    return values


def _status(stop_reason: str, error: str | None) -> tuple[str, str]:
    if error:
        return STATUS_FAILED, f"error: {error}"
    if stop_reason == STOP_DIVERGED:
        return STATUS_FAILED, "diverged: training loss became NaN or infinite"
    if stop_reason:
        return STATUS_FINISHED, stop_reason
    return STATUS_STOPPED, "stopped by scheduler"


def _score(row: dict[str, Any]) -> float:
    value = row.get("val_accuracy")
    return value if isinstance(value, (int, float)) and math.isfinite(value) else -1.0


def tables_text(trials: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> tuple[str, str]:
    """trials.csv (ranked by best validation accuracy) and epochs.csv, as CSV text."""
    trials_frame = pd.DataFrame(trials)
    if len(trials_frame):
        trials_frame = trials_frame.sort_values("best_val_accuracy", ascending=False, na_position="last")
    epochs_frame = pd.DataFrame(epochs, columns=list(EPOCH_COLUMNS))
    return trials_frame.to_csv(index=False), epochs_frame.to_csv(index=False)


def write_tables(experiment_uri: str, trials: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> tuple[str, str]:
    trials_text, epochs_text = tables_text(trials, epochs)
    trials_uri, epochs_uri = f"{experiment_uri}/{TRIALS_CSV}", f"{experiment_uri}/{EPOCHS_CSV}"
    write_text(trials_uri, trials_text)
    write_text(epochs_uri, epochs_text)
    return trials_uri, epochs_uri
