"""Section 2, the leaderboard: every trial ranked by validation accuracy, status marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cnn.search_space import SearchSpace
from cnn.sweep_results import SWEPT_KEYS

from analysis import page
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
    columns = ["trial_id", "status", *ACCURACIES, *hyper, "epochs_run", "max_epochs", "best_epoch",
               "final_val_accuracy", "wall_seconds", "stop_reason", "best_checkpoint"]
    frame = trials[[c for c in columns if c in trials.columns]].copy()
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame.to_csv(out / "leaderboard.csv", index=False)

    # The stop reason goes last: an error message can be long, and should not push the numbers out of view.
    header = ["#", "trial", "status", "val acc", "test acc", "train acc", *hyper, "epochs", "best epoch",
              "final val acc", "wall time", "stop reason"]
    rows = []
    for rank, row in enumerate(trials.to_dict("records"), start=1):
        rows.append([rank, row["trial_id"], page.badge(row["status"]), *(page.pct(row[a]) for a in ACCURACIES),
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
    parts = [notes, page.table(header, rows, table_id="leaderboard", row_classes=row_classes)]
    tie = tie_note(trials, (experiment.sweep.get("dataset") or {}).get("validation"))
    if tie:
        parts.append(page.paragraph(tie, css="warning"))
    return Section("leaderboard", "2. Leaderboard", page.join(parts))


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
