"""What the seed replicates say: which configuration wins, and which differences exceed seed noise.

Reads configs.csv's rows (analysis.configs) and the replicates behind them (trials.csv). The
evidence comes from one stage: the confirm stage when it ran (every replicate trained its epochs
under FIFO, with seeds the search did not use), else the search stage when it repeated seeds.
With one seed per configuration there is no evidence to weigh, and the report says so.

- The winner is named as such only when its validation interval lies above the runner-up's;
  otherwise it is "tied with" every configuration whose interval overlaps its own.
- A knob's effect compares configurations that differ in that knob only, replicate by replicate:
  test accuracy at each replicate's validation-chosen epoch, Welch's t-test of the difference
  (analysis.intervals.DIFFERENCE_METHOD), and the sentence says whether it exceeds seed noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from cnn.sweep_results import STAGE_CONFIRM, STAGE_SEARCH

from analysis.configs import scored
from analysis.intervals import DIFFERENCE_METHOD, INTERVAL_METHOD, Difference, welch_difference

# Knobs that move with another: never a reason to keep two configurations apart. Beside these, a
# knob tied to another in the sweep's space (same_as) follows it: `ties` in knob_comparisons.
FOLLOWERS = {"augment_strength": ("config_augment",)}


def evidence_stage(configs: pd.DataFrame) -> str | None:
    """The stage whose replicates the report weighs: confirm if it has a configuration with two or
    more replicates, else search if it has; None when every configuration ran once."""
    for stage in (STAGE_CONFIRM, STAGE_SEARCH):
        if ((configs["stage"] == stage) & (configs["n"] >= 2)).any():
            return stage
    return None


def stage_rows(configs: pd.DataFrame, stage: str) -> pd.DataFrame:
    rows = configs[(configs["stage"] == stage) & (configs["n"] > 0)]
    return rows.sort_values("val_accuracy_mean", ascending=False, kind="stable").reset_index(drop=True)


def overlaps(a: pd.Series, b: pd.Series) -> bool:
    """Whether two configurations' validation intervals overlap (no interval counts as overlapping)."""
    bounds = [a["val_accuracy_ci_low"], a["val_accuracy_ci_high"], b["val_accuracy_ci_low"], b["val_accuracy_ci_high"]]
    if any(not math.isfinite(float(v)) for v in bounds):
        return True
    return not (bounds[0] > bounds[3] or bounds[2] > bounds[1])


def ranking_verdict(configs: pd.DataFrame, stage: str, describe: Callable[[pd.Series], str]) -> tuple[str, bool]:
    """(sentence, whether the top configuration is a winner) for one stage's ranking."""
    rows = stage_rows(configs, stage)
    if rows.empty:
        return "No configuration has a result in this stage.", False
    top = rows.iloc[0]
    if len(rows) == 1:
        return f"Only one configuration has a result: {describe(top)}.", False
    tied = [row for _, row in rows.iloc[1:].iterrows() if overlaps(top, row)]
    runner = rows.iloc[1]
    if not tied:
        return (f"{describe(top)} wins: its validation interval lies above the runner-up's "
                f"({describe(runner)}).", True)
    names = ", ".join(describe(row) for row in tied[:4]) + (f" and {len(tied) - 4} more" if len(tied) > 4 else "")
    return (f"No winner: {describe(top)} ranks first but is tied with {names}; their validation intervals "
            f"overlap, so seed-to-seed noise could reorder them.", False)


@dataclass(frozen=True)
class Comparison:
    knob: str
    reference: Any           # the knob's value compared against (L2 = 0, augmentation off)
    value: Any               # the other value
    held: dict[str, Any]     # the other knobs' values, equal on both sides
    test: Difference         # value minus reference: test accuracy at each replicate's chosen epoch
    gap: Difference | None   # the same for the train-validation gap


def knob_comparisons(configs: pd.DataFrame, trials: pd.DataFrame, stage: str, knob: str, knobs: Sequence[str],
                     reference: Callable[[pd.Series], Any], ties: Mapping[str, str] | None = None
                     ) -> list[Comparison]:
    """Every pair of configurations in `stage` that differ in `knob` only (and the knobs that follow
    it: FOLLOWERS, and those `ties` binds to it, follower -> knob as in SearchSpace.tied), the
    reference value (`reference(values)` picks it among a group's values) against each other value."""
    rows = configs[(configs["stage"] == stage) & (configs["n"] > 0) & configs[knob].notna()]
    followers = {*FOLLOWERS.get(knob, ()), *(k for k, source in (ties or {}).items() if source == knob)}
    held = [k for k in knobs if k in rows.columns and k != knob and k not in followers]
    found = []
    for _, group in (rows.groupby(held, dropna=False, sort=False) if held else [((), rows)]):
        if group[knob].nunique() < 2:
            continue
        base_value = reference(group[knob])
        base = group[group[knob] == base_value].iloc[0]
        for _, other in group[group[knob] != base_value].sort_values(knob, kind="stable").iterrows():
            try:
                test = _difference(trials, other, base, _test)
            except ValueError:  # no test accuracy on one side (failed replicates): nothing to compare
                continue
            found.append(Comparison(knob, base_value, other[knob], {k: base[k] for k in held}, test,
                                    _gap_difference(trials, other, base)))
    return found


def sentence(comparison: Comparison, label: Callable[[Any], str], where: str) -> str:
    """One plain sentence: the difference in test accuracy, its interval and test, and whether it is
    larger than seed-to-seed noise."""
    d = comparison.test
    if d.p_value is None:
        return (f"{label(comparison.value)} against {label(comparison.reference)} ({where}): test accuracy "
                f"{100 * d.difference:+.2f} points, from {d.n_a} and {d.n_b} replicates: too few for an interval, "
                "so it cannot be told from seed noise.")
    verdict = ("larger than seed-to-seed noise" if d.larger_than_noise()
               else "not larger than seed-to-seed noise")
    text = (f"{label(comparison.value)} against {label(comparison.reference)} ({where}; {d.n_a} and {d.n_b} seeds): "
            f"test accuracy {100 * d.difference:+.2f} points (95% CI {100 * d.low:+.2f} to {100 * d.high:+.2f}; "
            f"Welch's t-test p = {d.p_value:.2g}): {verdict}.")
    g = comparison.gap
    if g is not None and g.p_value is not None:
        text += (f" The train−validation gap moves {100 * g.difference:+.2f} points (p = {g.p_value:.2g}), "
                 f"{'larger' if g.larger_than_noise() else 'not larger'} than seed noise.")
    return text


def methods_note(stage: str) -> str:
    where = ("the confirm stage (the chosen configurations trained again with fresh seeds, every replicate its "
             "full epochs)" if stage == STAGE_CONFIRM else "the search stage's seed replicates")
    return (f"Evidence from {where}. Intervals: {INTERVAL_METHOD}. Differences: {DIFFERENCE_METHOD}, at the 5% "
            "level; 'larger than seed-to-seed noise' means the test rejects no difference.")


def _replicates(trials: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    """The replicates configs.csv counts in `n` (analysis.configs.scored): not failed, with a result."""
    ids = [t for t in str(row["trial_ids"]).split(";") if t]
    return scored(trials[trials["trial_id"].isin(ids)])


def _test(replicates: pd.DataFrame) -> list[float]:
    return replicates["best_test_accuracy"].tolist()


def _difference(trials: pd.DataFrame, a: pd.Series, b: pd.Series, measure: Callable[[pd.DataFrame], list[float]]
                ) -> Difference:
    return welch_difference(measure(_replicates(trials, a)), measure(_replicates(trials, b)))


def _gap_difference(trials: pd.DataFrame, a: pd.Series, b: pd.Series) -> Difference | None:
    if "best_train_accuracy" not in trials.columns:
        return None
    try:
        return _difference(trials, a, b, lambda r: (r["best_train_accuracy"] - r["best_val_accuracy"]).tolist())
    except ValueError:  # no train accuracy recorded on one side
        return None


def study_parts(configs: pd.DataFrame, trials: pd.DataFrame, knobs: Sequence[str], knob: str,
                label: Callable[[Any], str], ties: Mapping[str, str] | None = None) -> list[str]:
    """A study's paragraphs on `knob` from the seed replicates: each comparison against the
    smallest value (L2 = 0, augmentation off), or why there is none. `ties`: the space's tied
    knobs (follower -> knob)."""
    from analysis import page

    stage = evidence_stage(configs)
    if stage is None:
        return [page.warning("one seed per configuration: the differences below come from single trainings and "
                             "have no interval, so none of them can be told from seed-to-seed noise. Add seeds "
                             "or a confirm stage to the sweep file.")]
    # The confirm stage holds the best few and the baselines, often no two that differ in this knob only:
    # then the search's replicates, if it had any, are the evidence.
    stages = [s for s in (STAGE_CONFIRM, STAGE_SEARCH) if ((configs["stage"] == s) & (configs["n"] >= 2)).any()]
    for stage in stages:
        comparisons = knob_comparisons(configs, trials, stage, knob, knobs, lambda values: values.min(), ties)
        if comparisons:
            break
    if not comparisons:
        return [page.paragraph(f"The replicated configurations ({' and '.join(stages)} stage) do not include two "
                               f"that differ in {knob} only, so its effect has no interval here.", css="note")]
    following = {k for ks in FOLLOWERS.values() for k in ks} | set(ties or {})  # said by the knob they follow
    varying = [k for k in comparisons[0].held
               if k not in following and len({_key(c.held[k]) for c in comparisons}) > 1]
    parts = [page.heading(f"{knob}: what the seed replicates show"), page.paragraph(methods_note(stage), css="note")]
    for comparison in comparisons:
        where = ", ".join(f"{k} = {page.num(comparison.held[k])}" for k in varying) or "all else equal"
        parts.append(page.paragraph(sentence(comparison, label, where), css="conclusion"))
    return parts


def _key(value: Any) -> Any:
    return "nan" if isinstance(value, float) and math.isnan(value) else value
