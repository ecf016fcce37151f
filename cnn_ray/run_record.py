"""Everything stored beside a sweep's results: the tables, the resolved settings, code and package versions."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from ray import tune

from cnn.data import DataSummary
from cnn.sweep_results import (CONFIRM_DIR, STAGE_CONFIRM, STAGE_SEARCH, SWEEP_JSON, SWEEP_YAML, TRAIN_RUNS_DIR,
                               knob_columns, trial_rows, write_tables, write_text)
from cnn.sweep_settings import SweepSettings
from cnn.replicas import WorkerResources
from cnn_ray.tuner import METRIC, MODE

PACKAGES = ("ray", "tensorflow", "tf_keras", "numpy", "pandas", "matplotlib")


def collect_trials(experiment: str, settings: SweepSettings) -> tuple[list[dict], list[dict]]:
    """Rows for trials.csv and epochs.csv from Tune's stored experiment state and the checkpoints:
    the search's trials, then the confirm stage's (<experiment>/confirm) if it started."""
    trials, epochs, _ = stage_trials(experiment, settings, STAGE_SEARCH)
    confirm = f"{experiment}/{CONFIRM_DIR}"
    if settings.confirm_top and tune.Tuner.can_restore(confirm):
        confirm_trials, confirm_epochs, _ = stage_trials(confirm, settings.confirm_stage(), STAGE_CONFIRM)
        trials, epochs = trials + confirm_trials, epochs + confirm_epochs
    return trials, epochs


def stage_trials(tune_experiment: str, settings: SweepSettings, stage: str
                 ) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """One stage's trials.csv and epochs.csv rows, and the sample of each trial by trial id."""
    analysis = tune.ExperimentAnalysis(tune_experiment, default_metric=METRIC, default_mode=MODE)
    trials, epochs, samples = [], [], {}
    for trial in analysis.trials:
        sample = dict(trial.config or {})
        error = _first_line(trial.error_file) if trial.status == "ERROR" else None
        row, rows = trial_rows(trial.trial_id, sample, settings.trial_config(sample),
                               f"{tune_experiment}/{TRAIN_RUNS_DIR}/{trial.trial_id}",
                               trial.last_result or {}, error, settings.base.epochs, swept=settings.space.knobs,
                               stage=stage)
        row["tune_status"] = trial.status
        trials.append(row)
        epochs.extend(rows)
        samples[trial.trial_id] = sample
    return trials, epochs, samples


def describe_run(settings: SweepSettings, data: DataSummary, cluster: dict[str, float], resources: WorkerResources,
                 concurrent: int, started: float, argv: list[str]) -> dict[str, Any]:
    """What sweep.json says about a sweep whatever becomes of it: command, settings, data, resources, versions."""
    return {
        "state": "running",
        "command": " ".join(["python", *argv]),
        "settings": settings.to_dict(),
        "search_space": settings.describe_search(),
        "selection": f"trials ranked by best {METRIC} ({MODE}); test accuracy is reported, never used to choose",
        "dataset": {"name": data.name, "source": data.source, "class_names": data.class_names,
                    "train": data.train, "validation": data.validation, "test": data.test,
                    "input_shape": list(data.input_shape), "loader": data.loader},
        "resources_per_trial": {"workers": resources.num_workers, "cpus_per_worker": resources.cpus_per_worker,
                                "gpus_per_worker": resources.gpus_per_worker},
        "concurrent_trials": concurrent,
        "cluster_resources": cluster,
        "driver_host": {"hostname": socket.gethostname(), "platform": platform.platform(),
                        "python": platform.python_version()},
        "git_commit": git_commit(),
        "packages": package_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    }


def write_started_record(experiment: str, run: dict[str, Any], sweep_file: str) -> None:
    """sweep.json before the first trial starts, so an interrupted sweep can still be reported, and
    sweep.yaml, the sweep file with every value resolved (flags included), to run it again."""
    write_text(f"{experiment}/{SWEEP_YAML}", sweep_file)
    write_text(f"{experiment}/{SWEEP_JSON}", json.dumps(run, indent=2, default=str))


def write_sweep_record(experiment: str, run: dict[str, Any], settings: SweepSettings, started: float,
                       interrupted: str | None = None) -> dict[str, Any]:
    """The tables and the final sweep.json, once Tune has returned: state "finished", or
    "interrupted" (with why) when a stage returned before all its trials ended (Ctrl-C)."""
    trials, epochs = collect_trials(experiment, settings)
    trials_csv, epochs_csv = write_tables(experiment, trials, epochs)
    configs_csv = write_configs(experiment, trials, settings)
    state = {"state": "interrupted", "interrupted": interrupted} if interrupted else {"state": "finished"}
    record = {**run, **state,
              "timeline": {**run.get("timeline", {}), "tables_written": time.time()},
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "wall_seconds": round(time.time() - started, 1),
              "trials": len(trials),
              "trials_csv": trials_csv, "epochs_csv": epochs_csv, "configs_csv": configs_csv}
    write_text(f"{experiment}/{SWEEP_JSON}", json.dumps(record, indent=2, default=str))
    return record


def write_configs(experiment: str, trials: list[dict], settings: SweepSettings) -> str:
    """configs.csv (analysis.configs): every configuration and stage, its replicates summarised."""
    import pandas as pd

    from analysis.configs import CONFIGS_CSV, config_table

    uri = f"{experiment}/{CONFIGS_CSV}"
    write_text(uri, config_table(pd.DataFrame(trials), knob_columns(settings.space.knobs)).to_csv(index=False))
    return uri


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode:
        return "unknown (not a git checkout)"
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    return {name: _version(name) for name in PACKAGES}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _first_line(error_file: str | None) -> str:
    if not error_file:
        return "unknown error"
    try:
        lines = [line for line in Path(error_file).read_text().splitlines() if line.strip()]
    except OSError:
        return "unknown error"
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors[-1] if errors else lines[-1] if lines else "unknown error")[:300]
