"""Which swept knobs mattered: Optuna's PED-ANOVA importance, computed from trials.csv.

PED-ANOVA (Watanabe et al., 2023) asks how much each knob's distribution among the best trials
differs from its distribution among all of them; Optuna normalises the importances to sum to 1.
It needs no scikit-learn (Optuna's fANOVA does). Following Optuna's advice, at least 5 trials
form the "best" group: the target quantile is 10%, or 5 trials when 10% is fewer. Below
MIN_TRIALS trials with an accuracy there is no table, and the table always says how many trials
it rests on. The direction of each effect is a Spearman rank correlation with the accuracy.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pandas as pd

from cnn.search_space import Domain, SearchSpace

from analysis import page
from analysis.knobs import Knob

MIN_TRIALS = 10
TOP_TRIALS = 5
OBJECTIVE = "best_val_accuracy"


def section_part(trials: pd.DataFrame, knobs: list[Knob], space: SearchSpace | None) -> str:
    """The importance table with its note, or a line saying why there is none."""
    if space is None or not knobs:
        return page.unavailable("No parameter importance: the sweep's space is not recorded in sweep.json "
                                "(a sweep from before sweep files) or no knob took two values.")
    usable, left_out = usable_trials(trials, knobs, space)
    if len(usable) < MIN_TRIALS:
        return page.unavailable(f"No parameter importance: it needs at least {MIN_TRIALS} trials with a validation "
                                f"accuracy inside the searched space, and this sweep has {len(usable)}.")
    if usable[OBJECTIVE].nunique() == 1:
        return page.unavailable(f"No parameter importance: all {len(usable)} trials reached the same validation "
                                "accuracy, so no knob can have made a difference here.")
    importances = importance(usable, knobs, space)
    rows = [[knob.label, f"{importances[knob.name]:.2f}", _direction(usable, knob)]
            for knob in sorted(knobs, key=lambda k: -importances[k.name])]
    quantile = target_quantile(len(usable))
    note = (f"Rests on {len(usable)} trials (best validation accuracy; trials stopped early count with the "
            f"accuracy they reached){_left_out_text(left_out)}. Optuna's PED-ANOVA: how differently each knob is "
            f"distributed among the top {quantile:.0%} of trials ({math.ceil(quantile * len(usable))}) than among "
            "all; importances sum to 1. Rank correlation: Spearman's, between the knob and the accuracy (+ means "
            f"higher values did better). With tens of trials these are rough indications, not measurements.")
    return page.join([page.table(["knob", "importance", "rank correlation with accuracy"], rows,
                                 table_id="importance"), page.paragraph(note, css="note")])


def usable_trials(trials: pd.DataFrame, knobs: list[Knob], space: SearchSpace) -> tuple[pd.DataFrame, int]:
    """Trials with an accuracy whose knob values lie in their domains (a baseline outside, such as
    L2 = 0 beside a log domain, cannot be placed in Optuna's distributions), and how many were left out."""
    scored = trials[pd.to_numeric(trials[OBJECTIVE], errors="coerce").notna()]
    inside = scored.apply(lambda row: all(space.domains[k.name].contains(_plain(row[k.name])) for k in knobs), axis=1)
    inside = inside.astype(bool) if len(scored) else pd.Series(dtype=bool)
    return scored[inside], int((~inside).sum())


def importance(trials: pd.DataFrame, knobs: list[Knob], space: SearchSpace) -> dict[str, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {k.name: distribution(space.domains[k.name]) for k in knobs}
    study = optuna.create_study(direction="maximize")
    for row in trials.to_dict("records"):
        study.add_trial(optuna.trial.create_trial(
            params={k: _plain(row[k]) for k in distributions}, distributions=distributions, value=float(row[OBJECTIVE])))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=target_quantile(len(trials)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning: the evaluator is new in Optuna 3.6
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {name: float(found.get(name, 0.0)) for name in distributions}


def target_quantile(trials: int) -> float:
    return min(0.5, max(0.1, TOP_TRIALS / trials))


def distribution(domain: Domain) -> Any:
    """The Optuna distribution that holds the values a domain's samples take."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if domain.is_categorical:
        return CategoricalDistribution(list(domain.values))
    low, high, *q = domain.values
    if domain.kind == "randint":
        return IntDistribution(low, high - 1)
    if domain.kind == "quniform":
        return FloatDistribution(low, high, step=q[0])
    return FloatDistribution(low, high, log=domain.is_log)


def _direction(trials: pd.DataFrame, knob: Knob) -> str:
    if not knob.is_numeric:
        return "– (categories)"
    x = pd.Series(knob.positions(trials[knob.name]), index=trials.index)
    rho = x.rank().corr(trials[OBJECTIVE].rank())
    return "–" if pd.isna(rho) else f"{rho:+.2f}"


def _left_out_text(left_out: int) -> str:
    if not left_out:
        return ""
    return (f"; {left_out} trial(s) left out because a value lies outside its searched domain (a baseline such as "
            "L2 = 0)")


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (Optuna's distributions compare them as such)."""
    return value.item() if hasattr(value, "item") else value
