"""A finished sweep's stored results as data: trials.csv, epochs.csv and sweep.json, read defensively.

Failed trials leave NaN metrics and empty checkpoint paths; hand-edited or truncated tables
may hold text where numbers belong. Everything numeric is coerced to float (bad cells become
NaN) so the sections can rely on column types.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from cnn.config import TrainConfig, is_number
from cnn.search_space import SearchSpace
from cnn.sweep_results import (STAGE_CONFIRM, EPOCH_COLUMNS, EPOCHS_CSV, METRICS, STATUS_FAILED, STATUS_FINISHED, STATUS_STOPPED,
                               SWEEP_JSON, SWEPT_KEYS, TRIALS_CSV, knob_columns, read_text)

from analysis import storage

STATUSES = (STATUS_FINISHED, STATUS_STOPPED, STATUS_FAILED)
TEXT_COLUMNS = ("trial_id", "stage", "config_id", "status", "stop_reason", "best_checkpoint", "latest_checkpoint", "tune_status",
                "worker_node_ids", "resumed_after_epochs")
CONFIG_NUMERIC = ("config_learning_rate", "config_batch_size", "config_seed")
TRIAL_NUMERIC = ("epochs_run", "max_epochs", "best_epoch", "wall_seconds", *SWEPT_KEYS, *CONFIG_NUMERIC,
                 *(f"{when}_{metric}" for when in ("final", "best") for metric in METRICS))
EPOCH_NUMERIC = tuple(c for c in EPOCH_COLUMNS if c not in ("trial_id", "node_id"))


@dataclass(frozen=True)
class Experiment:
    """One sweep's results. `trials` is ranked by best validation accuracy, trials without one last."""

    location: str
    trials: pd.DataFrame
    epochs: pd.DataFrame
    sweep: dict[str, Any]
    rebuilt: bool = False  # the sweep did not finish: its tables were rebuilt from its stored state
    trials_text: str = ""
    epochs_text: str = ""

    @property
    def base(self) -> dict[str, Any]:
        """The base training config every trial started from (sweep.json settings.base)."""
        return dict((self.sweep.get("settings") or {}).get("base") or {})

    @cached_property  # parsed and checked once, though every section asks for it
    def space(self) -> SearchSpace | None:
        """The search space the sweep ran (sweep.json settings.space); None for a sweep stored before
        spaces were data, or one whose space cannot be read back."""
        return stored_space(self.sweep)

    @cached_property
    def configs(self) -> pd.DataFrame:
        """configs.csv's rows (analysis.configs): every configuration and stage, its replicates summarised."""
        from analysis.configs import config_table

        swept = self.space.knobs if self.space is not None else ()
        return config_table(self.trials, knob_columns(swept))


def load_experiment(location: str) -> Experiment:
    """A sweep's results. A sweep that did not finish (no tables yet) has them rebuilt from what it
    stored: Tune's experiment state and every trial's checkpoints."""
    location = storage.normalise(location)
    if not storage.exists(f"{location}/{SWEEP_JSON}"):
        raise FileNotFoundError(f"{location} holds no {SWEEP_JSON}; is it a sweep's experiment folder?")
    sweep = json.loads(read_text(f"{location}/{SWEEP_JSON}"))
    sweep = sweep if isinstance(sweep, dict) else {}
    rebuilt = not (storage.exists(f"{location}/{TRIALS_CSV}") and storage.exists(f"{location}/{EPOCHS_CSV}"))
    if rebuilt:
        trials_text, epochs_text = rebuild_tables(location, sweep)
    else:
        trials_text, epochs_text = read_text(f"{location}/{TRIALS_CSV}"), read_text(f"{location}/{EPOCHS_CSV}")
    experiment = Experiment(location, parse_trials(trials_text), parse_epochs(epochs_text), sweep, rebuilt,
                            trials_text, epochs_text)
    numeric_knobs(experiment.trials, experiment.space)
    return experiment


def search_stage(experiment: Experiment) -> Experiment:
    """The experiment's search-stage trials only: the sections that compare trial with trial at the
    search's epochs (effects, the L2 and augmentation studies) leave the confirm stage's out."""
    confirm = experiment.trials["stage"] == STAGE_CONFIRM
    if not confirm.any():
        return experiment
    trials = experiment.trials[~confirm].reset_index(drop=True)
    epochs = experiment.epochs[experiment.epochs["trial_id"].isin(set(trials["trial_id"]))].reset_index(drop=True)
    return dataclasses.replace(experiment, trials=trials, epochs=epochs)


def stored_space(sweep: dict[str, Any]) -> SearchSpace | None:
    stored = (sweep.get("settings") or {}).get("space")
    if not isinstance(stored, dict) or "space" not in stored:
        return None
    try:
        base = TrainConfig.from_dict((sweep.get("settings") or {}).get("base") or {})
        return SearchSpace.from_dict(stored["space"], stored.get("baselines"), base)
    except (TypeError, ValueError):
        return None


def numeric_knobs(trials: pd.DataFrame, space: SearchSpace | None) -> pd.DataFrame:
    """Swept knobs beyond the study's five (learning rate, dense width …) as numbers when their
    domain is numeric: a hand-edited cell becomes NaN, as in every other numeric column."""
    for knob, domain in (space.domains.items() if space else ()):
        if knob in trials.columns and knob not in SWEPT_KEYS and all(is_number(v) for v in domain.values):
            trials[knob] = pd.to_numeric(trials[knob], errors="coerce")
    return trials


def rebuild_tables(location: str, sweep: dict[str, Any]) -> tuple[str, str]:
    """trials.csv and epochs.csv (as text) of an interrupted sweep, from its stored state and checkpoints."""
    from cnn_ray.run_record import collect_trials
    from cnn.sweep_results import tables_text
    from cnn.sweep_settings import SweepSettings

    try:
        settings = SweepSettings.from_dict((sweep.get("settings") or {}))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{location}/{SWEEP_JSON} holds no usable settings ({error}); cannot rebuild its tables")
    try:
        trials, epochs = collect_trials(location, settings)
    except Exception as error:  # noqa: BLE001 - Tune raises several types for a missing or broken state
        raise FileNotFoundError(f"{location} holds no tables and no readable Tune experiment state "
                                f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})")
    if sweep.get("state") != "finished":
        for row in trials:
            if row["status"] == STATUS_STOPPED:
                row["stop_reason"] = "stopped early, or cut short when the sweep was interrupted"
    return tables_text(trials, epochs)


def parse_trials(text: str) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(text), dtype={c: str for c in TEXT_COLUMNS})
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].fillna("") if column in frame.columns else ""
    for column in TRIAL_NUMERIC:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        elif column not in SWEPT_KEYS:  # which swept columns exist tells the search type: keep absent
            frame[column] = np.nan
    if "config_augment" in frame.columns:
        frame["config_augment"] = frame["config_augment"].map(_as_bool)
    # Stable: trials tied on validation accuracy keep the order trials.csv gave them.
    frame = frame.sort_values("best_val_accuracy", ascending=False, na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def parse_epochs(text: str) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(text), dtype={"trial_id": str, "node_id": str})
    for column in EPOCH_NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame.columns else np.nan
    frame["trial_id"] = frame["trial_id"].fillna("") if "trial_id" in frame.columns else ""
    return frame.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)


def _as_bool(value: Any) -> float:
    """True/False from a CSV cell (bool, 'True', 1.0); NaN when unknown."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    text = str(value).strip().lower()
    return {"true": 1.0, "1": 1.0, "1.0": 1.0, "false": 0.0, "0": 0.0, "0.0": 0.0}.get(text, math.nan)


def best_trial(trials: pd.DataFrame) -> pd.Series | None:
    """The top of the leaderboard: the highest best validation accuracy (test accuracy is never used)."""
    ranked = trials[np.isfinite(trials["best_val_accuracy"])]
    return ranked.iloc[0] if len(ranked) else None


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    counts = {status: int((trials["status"] == status).sum()) for status in STATUSES}
    counts["other"] = len(trials) - sum(counts.values())
    return counts


def swept_hyperparameters(trials: pd.DataFrame, space: SearchSpace | None = None) -> list[str]:
    """The knobs of the search space (the study's five for a sweep stored before spaces were data)
    that took more than one value in this sweep."""
    candidates = space.knobs if space is not None else SWEPT_KEYS
    return [k for k in candidates if k in trials.columns and trials[k].nunique(dropna=True) > 1]


def augment_strength(trials: pd.DataFrame) -> pd.Series:
    """Augmentation strength per trial (0 = off; NaN if the table does not say)."""
    if "augment_strength" not in trials.columns:
        return pd.Series(np.nan, index=trials.index)
    return trials["augment_strength"].astype(float)


def augmentation_label(strength: float) -> str:
    if not math.isfinite(strength):
        return "augmentation unknown"
    return "augmentation off" if strength == 0 else f"augmentation strength {strength:g}"


def seeds(trials: pd.DataFrame) -> list[int]:
    if "config_seed" not in trials.columns:
        return []
    return sorted(int(s) for s in trials["config_seed"].dropna().unique())


def seed_text(trials: pd.DataFrame) -> str:
    found = seeds(trials)
    if not found:
        return "seed not recorded"
    if len(found) == 1:
        return f"single seed ({found[0]})"
    return f"seeds {', '.join(map(str, found))}"


def single_trials_note(trials: pd.DataFrame) -> str:
    """The sentence that ends a trial-by-trial comparison: its figures are single trials (the best
    seed of a setting when configurations were replicated), so it says nothing about seed noise
    (the seed replicates' comparison, when the sweep has one, opens the section)."""
    replicated = "config_id" in trials.columns and bool(trials["config_id"].dropna().duplicated().any())
    which = "the best of each setting, its seeds included" if replicated else "the best of each setting"
    return (f" The figures of best trials here are single trials ({which}), not means over seeds: their "
            "differences are not tested against seed-to-seed noise.")


def context_line(experiment: Experiment) -> str:
    """What every figure rests on: dataset, epochs, trials and seeds."""
    dataset = experiment.sweep.get("dataset") or {}
    name = dataset.get("name") or experiment.base.get("dataset") or "unknown dataset"
    sizes = ""
    if all(k in dataset for k in ("train", "validation", "test")):
        sizes = (f" ({count(dataset['train'])} train / {count(dataset['validation'])} validation / "
                 f"{count(dataset['test'])} test images)")
    epochs = experiment.base.get("epochs")
    epochs_text = f"up to {epochs} epochs" if epochs else "epochs not recorded"
    return f"{name}{sizes} · {epochs_text} · {len(experiment.trials)} trials · {seed_text(experiment.trials)}"


def count(value: Any) -> str:
    """1,234 for a number; the text as stored otherwise (a hand-edited sweep.json must not stop the report)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def trial_epochs(epochs: pd.DataFrame, trial_id: str) -> pd.DataFrame:
    return epochs[epochs["trial_id"] == trial_id].sort_values("epoch")
