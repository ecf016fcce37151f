"""Section 2, the leaderboard: every trial ranked by validation accuracy, status marked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cnn.sweep_space import SWEPT_KEYS

from analysis import page
from analysis.page import Section
from analysis.results import Experiment

ACCURACIES = ("best_train_accuracy", "best_val_accuracy", "best_test_accuracy", "final_val_accuracy")


def hyperparameter_columns(trials: pd.DataFrame) -> list[str]:
    """The sampled hyperparameters if the table has them, else the resolved config values."""
    sampled = [k for k in SWEPT_KEYS if k in trials.columns]
    return sampled or [c for c in ("config_l2_conv", "config_l2_dense", "config_dropout_conv",
                                   "config_dropout_dense", "config_augment") if c in trials.columns]


def section(experiment: Experiment, out: Path) -> Section:
    trials = experiment.trials
    hyper = hyperparameter_columns(trials)
    columns = ["trial_id", "status", "stop_reason", "epochs_run", "max_epochs", *hyper, "best_epoch",
               *ACCURACIES, "wall_seconds", "best_checkpoint"]
    frame = trials[[c for c in columns if c in trials.columns]].copy()
    frame.insert(0, "rank", range(1, len(frame) + 1))
    frame.to_csv(out / "leaderboard.csv", index=False)

    header = ["#", "trial", "status", "stop reason", "epochs", *hyper, "best epoch", "train acc",
              "val acc", "test acc", "final val acc", "wall time"]
    rows = []
    for rank, row in enumerate(trials.to_dict("records"), start=1):
        rows.append([rank, row["trial_id"], page.badge(row["status"]), row["stop_reason"],
                     f"{page.integer(row['epochs_run'])} / {page.integer(row['max_epochs'])}",
                     *(page.num(row[h]) for h in hyper), page.integer(row["best_epoch"]),
                     *(page.pct(row[a]) for a in ACCURACIES), _seconds(row["wall_seconds"])])
    row_classes = [page.STATUS_CLASSES.get(s, "other") for s in trials["status"]]
    notes = page.paragraph(
        "Ranked by best validation accuracy over a trial's epochs; train, validation and test accuracy "
        "are from that same best epoch. Test accuracy is reported, never used to rank. "
        "Train accuracy is the running mean over the epoch with dropout and augmentation on, so it can sit "
        "below validation accuracy.", css="note")
    return Section("leaderboard", "2. Leaderboard",
                   page.join([notes, page.table(header, rows, table_id="leaderboard", row_classes=row_classes)]))


def _seconds(value: float) -> str:
    text = page.num(value, 3)
    return text if text == "–" else f"{float(value):.0f} s"
