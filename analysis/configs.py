"""configs.csv: one row per configuration and stage, its seed replicates summarised with intervals.

A configuration is what a sweep sampled (trials.csv's config_id); its replicates are the trials that
trained it with different seeds. For each configuration and stage (search, confirm) the table gives:

- n: replicates with a result (failed trials are counted apart, in n_failed);
- val_accuracy_*: each replicate's best validation accuracy over its epochs: mean, standard deviation
  (n - 1 in the denominator) and a 95% confidence interval (analysis.intervals.INTERVAL_METHOD);
- test_accuracy_*: each replicate's test accuracy at the epoch its validation accuracy chose, alike;
- gap_mean: the mean train-validation gap at that epoch (train accuracy is the running mean over
  the epoch with dropout and augmentation on, so the gap can be negative);
- epochs_run_mean, and the knobs, the same for every replicate (the seed excepted).

Rows are ranked within a stage by mean validation accuracy: selection on validation, test reported.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cnn.sweep_results import STAGE_SEARCH, STATUS_FAILED

from analysis.intervals import mean_interval

CONFIGS_CSV = "configs.csv"
SUMMARISED = {"val_accuracy": "best_val_accuracy", "test_accuracy": "best_test_accuracy"}
STATISTICS = ("mean", "sd", "ci_low", "ci_high")
COLUMNS = ("config_id", "stage", "n", "n_failed",
           *(f"{name}_{statistic}" for name in SUMMARISED for statistic in STATISTICS),
           "gap_mean", "epochs_run_mean", "seeds", "trial_ids")


def config_table(trials: pd.DataFrame, knobs: Sequence[str] = ()) -> pd.DataFrame:
    """configs.csv from trials.csv's rows. A trials.csv written before configurations had ids (no
    config_id column) makes every trial a configuration of its own; one without a stage column is
    all search."""
    knob_columns = [k for k in dict.fromkeys(knobs) if k in trials.columns]
    if trials.empty:
        return pd.DataFrame(columns=[*COLUMNS, *knob_columns])
    trials = trials.copy()
    ids = trials["config_id"] if "config_id" in trials.columns else pd.Series("", index=trials.index)
    trials["config_id"] = ids.fillna("").astype(str).where(ids.fillna("") != "", trials["trial_id"])
    if "stage" not in trials.columns:
        trials["stage"] = STAGE_SEARCH
    trials["stage"] = trials["stage"].fillna(STAGE_SEARCH).replace("", STAGE_SEARCH)
    rows = [_row(config_id, stage, group, knob_columns)
            for (config_id, stage), group in trials.groupby(["config_id", "stage"], sort=False)]
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *knob_columns])
    if frame.empty:
        return frame
    frame["stage_order"] = frame["stage"].map(lambda s: 0 if s == STAGE_SEARCH else 1)
    frame = frame.sort_values(["stage_order", "val_accuracy_mean"], ascending=[True, False],
                              na_position="last", kind="stable")
    return frame.drop(columns="stage_order").reset_index(drop=True)


def choose_for_confirm(table: pd.DataFrame, top: int, always: Sequence[str] = ()) -> list[str]:
    """The configurations the confirm stage trains again: the `top` best of the search stage by mean
    validation accuracy (configurations with no result left out), then those of `always` (the
    baselines) that the search ran, each once."""
    search = table[(table["stage"] == STAGE_SEARCH) & (table["n"] > 0)]
    chosen = list(search["config_id"][:top])
    ran = set(table.loc[table["stage"] == STAGE_SEARCH, "config_id"])
    return chosen + [c for c in dict.fromkeys(always) if c in ran and c not in chosen]


def scored(trials: pd.DataFrame) -> pd.DataFrame:
    """The replicates that count (`n`): not failed, with a best validation accuracy."""
    failed = trials["status"] == STATUS_FAILED if "status" in trials.columns else False
    return trials[~failed & trials["best_val_accuracy"].notna()]


def _row(config_id: str, stage: str, group: pd.DataFrame, knobs: list[str]) -> dict[str, Any]:
    failed = group["status"] == STATUS_FAILED if "status" in group.columns else pd.Series(False, index=group.index)
    scored_ = scored(group)
    row: dict[str, Any] = {"config_id": config_id, "stage": stage, "n": len(scored_), "n_failed": int(failed.sum())}
    for name, column in SUMMARISED.items():
        row.update(_statistics(name, scored_[column] if column in scored_.columns else pd.Series(dtype=float)))
    if "best_train_accuracy" in scored_.columns:
        row["gap_mean"] = _mean(scored_["best_train_accuracy"] - scored_["best_val_accuracy"])
    row["epochs_run_mean"] = _mean(scored_["epochs_run"]) if "epochs_run" in scored_.columns else math.nan
    row["seeds"] = ";".join(_seeds(group))
    row["trial_ids"] = ";".join(str(t) for t in group["trial_id"])
    first = group.iloc[0]
    row.update({knob: first[knob] for knob in knobs})
    return row


def _statistics(name: str, values: pd.Series) -> dict[str, float]:
    present = [float(v) for v in pd.to_numeric(values, errors="coerce") if math.isfinite(v)]
    if not present:
        return {f"{name}_{s}": math.nan for s in STATISTICS}
    interval = mean_interval(present)
    return {f"{name}_mean": interval.mean, f"{name}_sd": _nan(interval.sd),
            f"{name}_ci_low": _nan(interval.low), f"{name}_ci_high": _nan(interval.high)}


def _seeds(group: pd.DataFrame) -> list[str]:
    column = "seed" if "seed" in group.columns else "config_seed"
    if column not in group.columns:
        return []
    return [str(int(s)) for s in sorted(pd.to_numeric(group[column], errors="coerce").dropna())]


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(np.mean(values)) if len(values) else math.nan


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
