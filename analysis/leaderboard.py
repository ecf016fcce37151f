"""Section 2, the leaderboard: every trial ranked by validation accuracy, status marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cnn.search_space import SearchSpace
from cnn.sweep_results import SWEPT_KEYS

from analysis import page
from analysis.configs import CONFIGS_CSV
from analysis.evidence import evidence_stage, methods_note, ranking_verdict, stage_rows
from analysis.page import Section
from analysis.results import Experiment, swept_hyperparameters

# Validation first (it ranks), then test and train, so they stay in view on a laptop screen.
ACCURACIES = ("best_val_accuracy", "best_test_accuracy", "best_train_accuracy")


def hyperparameter_columns(trials: pd.DataFrame, space: SearchSpace | None = None) -> list[str]:
    """The knobs the sweep varied; every knob of its space the table has when none varied (a one-trial sweep)."""
    candidates = space.knobs if space is not None else SWEPT_KEYS
    return swept_hyperparameters(trials, space) or [k for k in candidates if k in trials.columns]


def section(experiment: Experiment, out: Path) -> Section:
    trials = experiment.trials
    hyper = hyperparameter_columns(trials, experiment.space)
    columns = ["trial_id", "stage", "config_id", "seed", "status", *ACCURACIES, *hyper, "epochs_run", "max_epochs", "best_epoch",
               "final_val_accuracy", "wall_seconds", "stop_reason", "best_checkpoint"]
    frame = trials[[c for c in columns if c in trials.columns]].copy()
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame.to_csv(out / "leaderboard.csv", index=False)

    # The stop reason goes last: an error message can be long, and should not push the numbers out of view.
    staged = "stage" in trials.columns and trials["stage"].nunique() > 1  # a confirm stage ran
    header = ["#", "trial", *(["stage"] if staged else []), "status", "val acc", "test acc", "train acc", *hyper,
              "epochs", "best epoch", "final val acc", "wall time", "stop reason"]
    rows = []
    for rank, row in enumerate(trials.to_dict("records"), start=1):
        rows.append([rank, row["trial_id"], *([row["stage"]] if staged else []), page.badge(row["status"]),
                     *(page.pct(row[a]) for a in ACCURACIES),
                     *(page.num(row[h]) for h in hyper),
                     f"{page.integer(row['epochs_run'])} / {page.integer(row['max_epochs'])}",
                     page.integer(row["best_epoch"]), page.pct(row["final_val_accuracy"]),
                     _seconds(row["wall_seconds"]), row["stop_reason"]])
    row_classes = [page.STATUS_CLASSES.get(s, "other") for s in trials["status"]]
    notes = page.paragraph(
        "Ranked by best validation accuracy over a trial's epochs; train, validation and test accuracy "
        "are from that same best epoch. Test accuracy is reported, never used to rank. "
        "Train accuracy is the running mean over the epoch with dropout and augmentation on, so it can sit "
        "below validation accuracy.", css="note")
    parts = configuration_parts(experiment, hyper, out)
    parts += [page.heading("Every trial") if parts else "", notes,
              page.table(header, rows, table_id="leaderboard", row_classes=row_classes)]
    tie = tie_note(trials, (experiment.sweep.get("dataset") or {}).get("validation"))
    if tie:
        parts.append(page.paragraph(tie, css="warning"))
    return Section("leaderboard", "2. Leaderboard", page.join(parts))


def configuration_parts(experiment: Experiment, hyper: list[str], out: Path) -> list[str]:
    """The configurations ranked by mean validation accuracy with their intervals, and whether the
    first one wins (analysis.evidence); nothing when every configuration ran once."""
    configs = experiment.configs
    configs.to_csv(out / CONFIGS_CSV, index=False)
    stage = evidence_stage(configs)
    if stage is None:
        return []
    rows = stage_rows(configs, stage)
    knobs = [k for k in hyper if k in rows.columns]
    verdict, _ = ranking_verdict(configs, stage, lambda row: describe_configuration(row, knobs))
    table_rows = [[rank, row["config_id"], page.integer(row["n"]) + (f" ({page.integer(row['n_failed'])} failed)"
                                                                      if row["n_failed"] else ""),
                   interval_text(row, "val_accuracy"), interval_text(row, "test_accuracy"),
                   page.points(row["gap_mean"]), *(page.num(row[k]) for k in knobs), page.num(row["epochs_run_mean"], 3)]
                  for rank, (_, row) in enumerate(rows.iterrows(), start=1)]
    return [page.heading(f"Configurations, {stage} stage: mean of the seed replicates"),
            page.paragraph(methods_note(stage), css="note"),
            page.table(["#", "configuration", "seeds", "val acc: mean [95% CI]", "test acc: mean [95% CI]",
                        "mean gap", *knobs, "epochs"], table_rows, table_id="configurations"),
            page.paragraph(verdict, css="conclusion")]


def interval_text(row: pd.Series, name: str) -> str:
    mean, low, high = row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"]
    if not np.isfinite(low) or not np.isfinite(high):
        return f"{page.pct(mean)} (no interval: one seed)"
    return f"{page.pct(mean)} [{page.pct(low)},\u00a0{page.pct(high)}]"  # the interval wraps as one


def describe_configuration(row: pd.Series, knobs: list[str]) -> str:
    values = ", ".join(f"{k} = {page.num(row[k])}" for k in knobs)
    return f"{row['config_id']} ({values})" if values else str(row["config_id"])


def tie_note(trials: pd.DataFrame, validation_images: int | None) -> str:
    """Say so when the top is shared: then 'the best trial' is the first of equals, not a finding."""
    scores = trials["best_val_accuracy"].dropna()
    if len(scores) < 2:
        return ""
    tied = trials.loc[np.isclose(trials["best_val_accuracy"], scores.iloc[0], rtol=0, atol=1e-6), "trial_id"]
    if len(tied) < 2:
        return ""
    step = f" (one validation image is {100 / validation_images:.2g} points)" if validation_images else ""
    return (f"{len(tied)} trials tie at the top validation accuracy of {page.pct(scores.iloc[0])}: "
            f"{', '.join(tied)}. The report's best trial is the first of them in trials.csv order; the validation "
            f"set cannot tell them apart{step}.")


def _seconds(value: float) -> str:
    text = page.num(value, 3)
    return text if text == "–" else f"{float(value):.0f} s"
