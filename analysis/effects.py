"""Section 3, hyperparameter effects: best validation accuracy against each swept hyperparameter.

A best trial on the edge of the searched range is flagged: the optimum may lie beyond it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import page, plots
from analysis.page import Html, Section
from analysis.results import Experiment, best_trial, swept_hyperparameters

LABELS = {"l2_conv": "L2 on conv kernels", "l2_dense": "L2 on dense kernels", "dropout_conv": "dropout after conv blocks",
          "dropout_dense": "dropout before the output", "augment_strength": "augmentation strength (0 = off)"}
MAX_GROUP_LINES = 4


def plotted_hyperparameters(trials: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, label) per swept hyperparameter; L2 conv and dense as one when always equal (grid sweeps)."""
    swept = swept_hyperparameters(trials)
    if {"l2_conv", "l2_dense"} <= set(swept) and trials["l2_conv"].equals(trials["l2_dense"]):
        swept.remove("l2_dense")
        return [(k, "L2 on conv and dense kernels" if k == "l2_conv" else LABELS[k]) for k in swept]
    return [(k, LABELS.get(k, k)) for k in swept]


def edge_position(values: pd.Series, best_value: float) -> str | None:
    """'smallest' or 'largest' if the best value is at that end of the values tried, else None."""
    tried = pd.to_numeric(values, errors="coerce").dropna().unique()
    if len(tried) < 2 or not math.isfinite(best_value):
        return None
    if best_value == tried.min():
        return "smallest"
    if best_value == tried.max():
        return "largest"
    return None


def edge_warning(name: str, label: str, values: pd.Series, best: pd.Series) -> Html | None:
    value = float(best[name])
    where = edge_position(values, value)
    if where is None:
        return None
    tried = sorted(pd.to_numeric(values, errors="coerce").dropna().unique())
    tried_text = ", ".join(f"{v:g}" for v in tried) if len(tried) <= 8 else f"{tried[0]:g} to {tried[-1]:g}"
    text = (f"edge of the search space: the best trial ({best['trial_id']}) has {label} = {value:g}, the {where} "
            f"value tried ({tried_text}). The best setting may lie beyond the searched range; widen it before "
            "trusting this value.")
    if where == "smallest" and value == 0:
        text += " (0 is the lowest possible value here, so the finding is that switching it off did best.)"
    return page.warning(text)


def section(experiment: Experiment, out: Path, context: str) -> Section:
    trials = experiment.trials
    best = best_trial(trials)
    parts: list[Any] = [page.paragraph(
        "Each point is one trial's best validation accuracy. Trials stopped early by the scheduler ran fewer "
        "epochs, so they sit lower partly for that reason; failed trials have no accuracy and are drawn at the "
        "bottom.", css="note")]
    plotted = plotted_hyperparameters(trials)
    if not plotted:
        parts.append(page.unavailable("No hyperparameter took more than one value in this sweep."))
    for name, label in plotted:
        if best is not None:
            parts.append(edge_warning(name, label, trials[name], best) or "")
        png = plot_effect(trials, name, label, best, out)
        parts.append(page.figure(png, f"best validation accuracy against {label}",
                                 f"Best validation accuracy of every trial against {label}; the star marks the "
                                 "best trial.", context))
    held = [k for k in LABELS if k in trials.columns and trials[k].nunique(dropna=True) == 1]
    if held:
        parts.append(page.paragraph("Held fixed: " + ", ".join(f"{k} = {trials[k].dropna().iloc[0]:g}" for k in held),
                                    css="note"))
    return Section("effects", "3. Hyperparameter effects", page.join(parts))


def plot_effect(trials: pd.DataFrame, name: str, label: str, best: pd.Series | None, out: Path) -> Path:
    fig, axes = plots.new_figure(7.0, 4.0)
    ax = axes[0, 0]
    values = trials[name].to_numpy(dtype=float)
    log = plots.is_log_scale(name)
    x, zero_at = plots.log_positions(values) if log else (values, None)
    accuracy = 100 * trials["best_val_accuracy"].to_numpy(dtype=float)
    finite = accuracy[np.isfinite(accuracy)]
    floor = (finite.min() - max(2.0, 0.1 * np.ptp(finite))) if len(finite) else 0.0

    _draw_groups(ax, trials, name, x, accuracy)
    for status, style in plots.STATUS_STYLE.items():
        mask = (trials["status"] == status).to_numpy()
        if status == "failed":
            mask |= ~np.isfinite(accuracy)
        if not mask.any():
            continue
        y = np.where(np.isfinite(accuracy[mask]), accuracy[mask], floor)
        hollow = status == "stopped_early"
        ax.scatter(x[mask], y, marker=style["marker"], s=55, zorder=3, label=style["label"],
                   facecolors="none" if hollow else style["color"], edgecolors=style["color"], linewidths=1.5)
    if best is not None:
        bx = x[trials.index.get_loc(best.name)]
        ax.scatter([bx], [100 * best["best_val_accuracy"]], marker="*", s=260, facecolors="none",
                   edgecolors="black", linewidths=1.2, zorder=4, label=f"best trial ({plots.plain(best['trial_id'])})")
    if log:
        plots.log_axis_with_zero(ax, values, zero_at, label)
    else:
        ax.set_xlabel(label)
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title(f"Validation accuracy against {label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return plots.save(fig, out, f"effect_{name}")


def _draw_groups(ax: Any, trials: pd.DataFrame, name: str, x: np.ndarray, accuracy: np.ndarray) -> None:
    """In a grid with one other swept hyperparameter, join the trials that share its value."""
    others = [k for k, _ in plotted_hyperparameters(trials) if k != name]
    if len(others) != 1 or trials[others[0]].nunique() > MAX_GROUP_LINES:
        return
    other = others[0]
    for value in sorted(trials[other].dropna().unique()):
        mask = (trials[other] == value).to_numpy() & np.isfinite(accuracy)
        order = np.argsort(x[mask])
        ax.plot(x[mask][order], accuracy[mask][order], linewidth=1, alpha=0.5,
                label=f"{LABELS.get(other, other).split(' (')[0]} = {value:g}")
