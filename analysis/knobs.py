"""Which knobs a sweep varied, and how to draw each, from the search space stored in sweep.json.

A log domain goes on a log axis (with 0, the usual baseline, behind a break: analysis/plots.py),
a `choice` on a categorical axis in the file's order, a numeric grid on a log axis when it spans
two decades or more (the study's L2 grid) and on a linear one otherwise. A knob tied to another
(`same_as`) is drawn once, under the knob it follows. Sweeps stored before spaces were data fall
back to the study's five knobs, L2 on a log axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cnn.config import is_number
from cnn.search_space import Domain

from analysis.results import Experiment, swept_hyperparameters

LABELS = {"l2_conv": "L2 on conv kernels", "l2_dense": "L2 on dense kernels", "dropout_conv": "dropout after conv blocks",
          "dropout_dense": "dropout before the output", "augment_strength": "augmentation strength (0 = off)",
          "learning_rate": "learning rate", "batch_size": "batch size", "dense_units": "dense layer width"}
LOG, LINEAR, CATEGORY = "log", "linear", "category"
LOG_GRID_DECADES = 2.0


@dataclass(frozen=True)
class Knob:
    """A swept knob as the report draws it: its trials.csv column, a label, an axis scale, and for a
    categorical axis its categories (the domain's values, then any other value a baseline tried)."""

    name: str
    label: str
    scale: str
    categories: tuple[Any, ...] = ()

    @property
    def is_numeric(self) -> bool:
        return self.scale != CATEGORY or all(is_number(c) for c in self.categories)

    def positions(self, values: pd.Series) -> np.ndarray:
        """x positions of the trials' values: the values themselves, or a category's index."""
        if self.scale != CATEGORY:
            return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        index = {_key(c): i for i, c in enumerate(self.categories)}
        return np.array([index.get(_key(v), np.nan) for v in values], dtype=float)

    def tick_labels(self) -> list[str]:
        return [f"{c:g}" if is_number(c) else str(c) for c in self.categories]


def swept_knobs(experiment: Experiment) -> list[Knob]:
    """The knobs that took more than one value in this sweep, in the sweep file's order."""
    trials, space = experiment.trials, experiment.space
    names = swept_hyperparameters(trials, space)
    if space is None:
        if {"l2_conv", "l2_dense"} <= set(names) and trials["l2_conv"].equals(trials["l2_dense"]):
            names.remove("l2_dense")
            return [Knob(n, "L2 on conv and dense kernels" if n == "l2_conv" else LABELS[n],
                         LOG if n.startswith("l2") else LINEAR) for n in names]
        return [Knob(n, LABELS.get(n, n), LOG if n.startswith("l2") else LINEAR) for n in names]
    knobs = []
    for name in names:
        if name in space.tied:
            continue  # drawn under the knob it follows
        followers = [k for k, source in space.tied.items() if source == name]
        label = _label(name, followers)
        knobs.append(_knob(name, label, space.domains.get(name), trials[name]))
    return knobs


def _label(name: str, followers: list[str]) -> str:
    if name == "l2_conv" and followers == ["l2_dense"]:
        return "L2 on conv and dense kernels"
    label = LABELS.get(name, name.replace("_", " "))
    return f"{label} (and {', '.join(followers)}, tied)" if followers else label


def _knob(name: str, label: str, domain: Domain | None, tried: pd.Series) -> Knob:
    if domain is None:
        return Knob(name, label, LINEAR)
    if domain.is_log:
        return Knob(name, label, LOG)
    values = tried.dropna().unique().tolist()  # Python values: is_number refuses numpy's int64
    if domain.kind == "choice" or not all(is_number(v) for v in [*domain.values, *values]):
        listed = list(domain.values) if domain.is_categorical else []
        extra = [v for v in values if _key(v) not in {_key(c) for c in listed}]
        return Knob(name, label, CATEGORY, tuple(listed + sorted(extra, key=str)))
    if domain.is_grid:
        positive = [float(v) for v in domain.values if float(v) > 0]
        spans = len(positive) > 1 and np.log10(max(positive) / min(positive)) >= LOG_GRID_DECADES
        return Knob(name, label, LOG if spans else LINEAR)
    return Knob(name, label, LINEAR)


def _key(value: Any) -> str:
    """Values as trials.csv gives them back (1 and 1.0 alike, True and 'True' alike)."""
    if is_number(value) or isinstance(value, (np.integer, np.floating)):
        return f"{float(value):g}"
    return str(value)
