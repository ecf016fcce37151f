"""Section 4, training curves: the best trial's accuracy and loss per epoch, and the top trials overlaid.

Drawn as the original study drew them: train, validation and test on one plot per quantity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from analysis import page, plots
from analysis.page import Section
from analysis.results import Experiment, best_trial, trial_epochs

TOP_TRIALS = 5
SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))


def section(experiment: Experiment, out: Path, context: str) -> Section:
    best = best_trial(experiment.trials)
    if best is None:
        return Section("curves", "4. Training curves",
                       page.unavailable("No trial has a validation accuracy, so there is no best trial to draw."))
    history = trial_epochs(experiment.epochs, best["trial_id"])
    parts: list[Any] = [page.paragraph(
        f"Best trial: {best['trial_id']} ({best['status'].replace('_', ' ')}, {len(history)} epochs; best "
        f"validation accuracy {page.pct(best['best_val_accuracy'])} at epoch {page.integer(best['best_epoch'])}).")]
    if history.empty:
        parts.append(page.unavailable(f"epochs.csv has no rows for trial {best['trial_id']}."))
    else:
        for quantity, unit in (("accuracy", "%"), ("loss", "cross-entropy + L2 penalty")):
            png = plot_curves(history, quantity, unit, best, out)
            parts.append(page.figure(png, f"{quantity} per epoch of the best trial",
                                     f"{quantity.capitalize()} per epoch of the best trial ({best['trial_id']}) on "
                                     "the train, validation and test sets; the dotted line marks the best epoch.",
                                     context))
    top = experiment.trials[experiment.trials["best_val_accuracy"].notna()].head(TOP_TRIALS)
    png = plot_top_trials(experiment.epochs, top, out)
    parts.append(page.figure(png, "validation accuracy per epoch of the top trials",
                             f"Validation accuracy per epoch of the top {len(top)} trials by best validation "
                             "accuracy.", context))
    return Section("curves", "4. Training curves", page.join(parts))


def plot_curves(history: pd.DataFrame, quantity: str, unit: str, best: pd.Series, out: Path) -> Path:
    fig, axes = plots.new_figure(6.5, 3.8)
    ax = axes[0, 0]
    scale = 100.0 if quantity == "accuracy" else 1.0
    for split, label in SPLITS:
        ax.plot(history["epoch"], scale * history[f"{split}_{quantity}"], marker="o", label=label,
                color=plots.SERIES_COLORS[split])
    if pd.notna(best["best_epoch"]):
        ax.axvline(best["best_epoch"], color="#666", linestyle=":", label=f"best epoch ({int(best['best_epoch'])})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{quantity} ({unit})")
    ax.set_title(f"{quantity.capitalize()} per epoch, trial {plots.plain(best['trial_id'])}")
    plots.whole_epochs(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return plots.save(fig, out, f"best_{quantity}")


def plot_top_trials(epochs: pd.DataFrame, top: pd.DataFrame, out: Path) -> Path:
    fig, axes = plots.new_figure(6.5, 3.8)
    ax = axes[0, 0]
    for rank, trial in enumerate(top.to_dict("records"), start=1):
        history = trial_epochs(epochs, trial["trial_id"])
        style = plots.STATUS_STYLE.get(trial["status"], plots.STATUS_STYLE["finished"])
        ax.plot(history["epoch"], 100 * history["val_accuracy"], marker=style["marker"],
                linestyle="--" if trial["status"] == "stopped_early" else "-",
                label=f"#{rank} {plots.plain(trial['trial_id'])} ({trial['status'].replace('_', ' ')})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    plots.whole_epochs(ax)
    ax.set_title("Validation accuracy per epoch, top trials (dashed: stopped early)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return plots.save(fig, out, "top_trials_val_accuracy")
