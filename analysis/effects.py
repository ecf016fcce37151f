"""Section 3, hyperparameter effects: best validation accuracy against each knob the sweep varied
(its axis from the knob's domain: analysis/knobs.py), every trial across all of them (parallel
coordinates), and which knobs mattered (analysis/importance.py).

A best trial on the edge of the searched range is flagged: the optimum may lie beyond it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnn.sweep_results import STAGE_SEARCH

from analysis import importance, page, parallel, plots
from analysis.knobs import CATEGORY, LABELS, LOG, Knob, swept_knobs
from analysis.page import Html, Section
from analysis.results import Experiment, best_trial

MAX_GROUP_LINES = 4


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


def section(experiment: Experiment, out: Path, context: str, confirm_replicated: bool = False) -> Section:
    """`experiment`: the search stage's trials; `confirm_replicated`: a confirm stage replicated some
    configurations (its intervals are elsewhere; the captions say so when the search has none)."""
    trials = experiment.trials
    best = best_trial(trials)
    parts: list[Any] = [page.paragraph(
        "Each point is one trial's best validation accuracy. Trials stopped early by the scheduler ran fewer "
        "epochs, so they sit lower partly for that reason; failed trials have no accuracy and are drawn at the "
        "bottom.", css="note")]
    knobs = swept_knobs(experiment)
    configs = experiment.configs
    replicated = configs[(configs["n"] >= 2) & (configs["stage"] == STAGE_SEARCH)]
    if not knobs:
        parts.append(page.unavailable("No hyperparameter took more than one value in this sweep."))
    for knob in knobs:
        if best is not None and knob.is_numeric:
            parts.append(edge_warning(knob.name, knob.label, trials[knob.name], best) or "")
        png = plot_effect(trials, knob, best, out, knobs, replicated)
        means = (" Black bars: each configuration's mean over its seeds with its 95% confidence interval "
                 "(Student's t)." if len(replicated) else
                 " The search trained one seed per configuration, so there are no error bars here; the confirm "
                 "stage's means and intervals are in the leaderboard (section 2, \"Configurations, confirm stage\")."
                 if confirm_replicated else "")
        parts.append(page.figure(png, f"best validation accuracy against {knob.label}",
                                 f"Best validation accuracy of every trial against {knob.label}; the star marks the "
                                 f"best trial.{means}", context))
    if len(knobs) >= 2:
        png, drawn = parallel.plot(trials, knobs, out)
        left_out = len(trials) - drawn
        parts.append(page.figure(png, "parallel coordinates of every trial",
                                 f"Every trial ({drawn} drawn{f'; {left_out} without an accuracy left out' if left_out else ''}) "
                                 "as a line through its value of each swept knob and its best validation accuracy, "
                                 "coloured by that accuracy.", context))
    if knobs:
        parts += [page.heading("Which knobs mattered"), importance.section_part(trials, knobs, experiment.space)]
    swept = {k.name for k in knobs}
    held = [k for k in LABELS if k in trials.columns and k not in swept and trials[k].nunique(dropna=True) == 1
            and pd.api.types.is_numeric_dtype(trials[k])]
    if held:
        parts.append(page.paragraph("Held fixed: " + ", ".join(f"{k} = {trials[k].dropna().iloc[0]:g}" for k in held),
                                    css="note"))
    return Section("effects", "3. Hyperparameter effects", page.join(parts))


def plot_effect(trials: pd.DataFrame, knob: Knob, best: pd.Series | None, out: Path, knobs: list[Knob],
                replicated: pd.DataFrame | None = None) -> Path:
    """One knob's plot; `replicated`: configs.csv rows of configurations with two or more seeds, drawn
    as means with error bars over the trials."""
    fig, axes = plots.new_figure(7.0, 4.0)
    ax = axes[0, 0]
    values = knob.positions(trials[knob.name])
    x, zero_at = plots.log_positions(values) if knob.scale == LOG else (values, None)
    accuracy = 100 * trials["best_val_accuracy"].to_numpy(dtype=float)
    finite = accuracy[np.isfinite(accuracy)]
    floor = (finite.min() - max(2.0, 0.1 * np.ptp(finite))) if len(finite) else 0.0

    if replicated is None or not len(replicated):  # with replicates, lines join the means instead (_draw_means)
        _draw_groups(ax, trials, knob, knobs, x, accuracy)
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
    if replicated is not None and len(replicated):
        _draw_means(ax, replicated, knob, knobs, zero_at)
    if best is not None:
        bx = x[trials.index.get_loc(best.name)]
        ax.scatter([bx], [100 * best["best_val_accuracy"]], marker="*", s=260, facecolors="none",
                   edgecolors="black", linewidths=1.2, zorder=4, label=f"best trial ({plots.plain(best['trial_id'])})")
    if knob.scale == LOG:
        plots.log_axis_with_zero(ax, values, zero_at, knob.label)
    elif knob.scale == CATEGORY:
        ax.set_xticks(range(len(knob.categories)), [plots.plain(t) for t in knob.tick_labels()])
        ax.set_xlim(-0.5, len(knob.categories) - 0.5)
        ax.set_xlabel(f"{knob.label} (the sweep's choices)")
    else:
        ax.set_xlabel(knob.label)
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title(f"Validation accuracy against {knob.label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return plots.save(fig, out, f"effect_{knob.name}")


def _draw_means(ax: Any, configs: pd.DataFrame, knob: Knob, knobs: list[Knob], zero_at: float | None) -> None:
    """Each configuration's mean best validation accuracy over its seeds, with its 95% interval. With
    one other swept knob of few values, each of its values in a colour of its own, its means joined
    by a line and nudged sideways so that bars at the same x stay apart."""
    others = [k.name for k in knobs if k.name != knob.name and k.name in configs.columns]
    grouped = len(others) == 1 and configs[others[0]].nunique() <= MAX_GROUP_LINES
    groups = list(configs.groupby(others[0], sort=True)) if grouped else [(None, configs)]
    for index, (value, members) in enumerate(groups):
        x = knob.positions(members[knob.name])
        if knob.scale == LOG and zero_at is not None:
            x = np.where(x == 0, zero_at, x)
        x = _nudge(ax, x, index - (len(groups) - 1) / 2, knob.scale == LOG)
        mean = 100 * members["val_accuracy_mean"].to_numpy(dtype=float)
        low = np.nan_to_num(mean - 100 * members["val_accuracy_ci_low"].to_numpy(dtype=float), nan=0.0)
        high = np.nan_to_num(100 * members["val_accuracy_ci_high"].to_numpy(dtype=float) - mean, nan=0.0)
        order = np.argsort(x)
        label = ("mean of the seeds, 95% CI" if value is None else
                 f"{LABELS.get(others[0], others[0]).split(' (')[0]} = {value:g}: mean of the seeds, 95% CI")
        ax.errorbar(x[order], mean[order], yerr=[low[order], high[order]], fmt="_-" if grouped else "_",
                    markersize=16, capsize=4, linewidth=1.2, zorder=5, label=label,
                    color=None if grouped else "black")


def _nudge(ax: Any, x: np.ndarray, step: float, log: bool) -> np.ndarray:
    """x moved sideways by `step` small steps (2% of the data's span; a factor on a log axis)."""
    if not step or not len(x) or not np.isfinite(x).any():
        return x
    if log:
        return x * 10 ** (0.04 * step)
    span = float(np.nanmax(x) - np.nanmin(x)) or 1.0
    return x + 0.02 * span * step


def _draw_groups(ax: Any, trials: pd.DataFrame, knob: Knob, knobs: list[Knob], x: np.ndarray,
                 accuracy: np.ndarray) -> None:
    """In a grid with one other swept hyperparameter, join the trials that share its value."""
    others = [k.name for k in knobs if k.name != knob.name]
    if len(others) != 1 or trials[others[0]].nunique() > MAX_GROUP_LINES:
        return
    other = others[0]
    if trials[other].value_counts().min() < 2:
        return  # sampled values, each its own: no groups to join
    for value in sorted(trials[other].dropna().unique()):
        mask = (trials[other] == value).to_numpy() & np.isfinite(accuracy)
        order = np.argsort(x[mask])
        ax.plot(x[mask][order], accuracy[mask][order], linewidth=1, alpha=0.5,
                label=f"{LABELS.get(other, other).split(' (')[0]} = {value:g}")
