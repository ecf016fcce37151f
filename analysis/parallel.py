"""Parallel coordinates of a sweep: one vertical axis per swept knob and one for the best validation
accuracy, one line per trial, coloured by that accuracy (the better, the brighter and the later
drawn, so the best trials lie on top).

Each axis is scaled to its own range: log knobs in decades (0 one and a half decades below the
smallest positive value, as in the effect plots), categories evenly spaced in the sweep file's
order. Trials without an accuracy (failed) are left out, and the caption says how many.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import plots
from analysis.knobs import CATEGORY, LOG, Knob

TICKS_PER_AXIS = 5


def plot(trials: pd.DataFrame, knobs: list[Knob], out: Path) -> tuple[Path, int]:
    """The figure and the number of trials drawn on it."""
    accuracy = 100 * trials["best_val_accuracy"].to_numpy(dtype=float)
    drawn = np.isfinite(accuracy)
    columns = [_axis(knob, trials[knob.name]) for knob in knobs]
    columns.append(_linear("best validation accuracy (%)", accuracy))
    fig, axes = plots.new_figure(max(6.0, 1.6 * len(columns)), 4.4)
    ax = axes[0, 0]
    colours = plots.plt.get_cmap("viridis")
    low, high = (np.nanmin(accuracy[drawn]), np.nanmax(accuracy[drawn])) if drawn.any() else (0.0, 1.0)
    shade = (accuracy - low) / (high - low) if high > low else np.ones_like(accuracy)
    for row in np.argsort(np.where(drawn, accuracy, -np.inf)):
        if drawn[row]:
            ys = [column[1][row] for column in columns]
            ax.plot(range(len(columns)), ys, color=colours(shade[row]), linewidth=1.4, alpha=0.85)
    for i, (label, _, ticks) in enumerate(columns):
        ax.axvline(i, color="#444", linewidth=0.8)
        for y, text in ticks:
            ax.annotate(text, (i, y), xytext=(3, 0), textcoords="offset points", fontsize=7, va="center", color="#333")
    ax.set_xticks(range(len(columns)), [label for label, _, _ in columns], fontsize=8, rotation=15, ha="right")
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(-0.2, len(columns) - 0.5)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    mappable = plots.plt.cm.ScalarMappable(cmap=colours, norm=plots.plt.Normalize(low, high))
    fig.colorbar(mappable, ax=ax, label="best validation accuracy (%)", fraction=0.04)
    ax.set_title("Every trial across the swept knobs")
    return plots.save(fig, out, "parallel_coordinates"), int(drawn.sum())


def _axis(knob: Knob, values: pd.Series) -> tuple[str, np.ndarray, list[tuple[float, str]]]:
    """(label, each trial's height in [0, 1], ticks as (height, text))."""
    label = knob.label.split(" (")[0]
    if knob.scale == CATEGORY:
        positions = knob.positions(values)
        span = max(len(knob.categories) - 1, 1)
        return label, positions / span, [(i / span, text) for i, text in enumerate(knob.tick_labels())]
    numbers = knob.positions(values)
    if knob.scale == LOG:
        x, zero_at = plots.log_positions(numbers)
        if zero_at is not None:
            return _log(label, numbers, x)
    return _linear(label, numbers)


def _log(label: str, numbers: np.ndarray, x: np.ndarray) -> tuple[str, np.ndarray, list[tuple[float, str]]]:
    logs = np.log10(x)
    low, high = np.nanmin(logs), np.nanmax(logs)
    span = high - low or 1.0
    smallest = np.log10(np.nanmin(numbers[numbers > 0]))  # no ticks in the gap before 0
    inner = [d for d in np.arange(np.ceil(smallest), np.floor(high) + 1) if min(d - smallest, high - d) > 0.1 * span]
    ticks = [((d - low) / span, f"{10.0 ** d:.2g}") for d in (smallest, *inner, high)]
    if (numbers == 0).any():
        ticks.insert(0, (0.0, "0"))
    return f"{label} (log)", (logs - low) / span, ticks


def _linear(label: str, numbers: np.ndarray) -> tuple[str, np.ndarray, list[tuple[float, str]]]:
    finite = numbers[np.isfinite(numbers)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    span = high - low or 1.0
    ticks = [((v - low) / span, f"{v:.3g}") for v in np.linspace(low, high, TICKS_PER_AXIS)] if high > low \
        else [(0.5, f"{low:.3g}")]
    heights = (numbers - low) / span if high > low else np.full(len(numbers), 0.5)
    return label, heights, ticks
