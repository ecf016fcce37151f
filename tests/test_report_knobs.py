"""The report's hyperparameter-effects section over any swept knob (issue 15), on a made-up sweep of a
person's space: each knob drawn on the axis its domain calls for, a parallel-coordinates plot, and a
parameter-importance table that says how many trials it rests on. No training: the tables are data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from analysis import effects, importance
from analysis.knobs import CATEGORY, LINEAR, LOG, swept_knobs
from analysis.results import Experiment, numeric_knobs, stored_space
from cnn.sweep_file import load_sweep_text

MY_SWEEP = """\
train: {dataset: mnist, epochs: 4}
search: {algorithm: tpe, num_samples: 24}
space:
  learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
  dense_units: {choice: [128, 256, 512]}
  dropout_conv: {uniform: [0.0, 0.5]}
  l2_conv: {loguniform: [1.0e-6, 1.0e-2]}
  l2_dense: {same_as: l2_conv}
  batch_size: {randint: [32, 129]}
baselines:
  - {l2_conv: 0.0}
"""


def made_up_sweep(trials: int = 24, seed: int = 0) -> Experiment:
    """A sweep's tables as trials.csv holds them: the learning rate decides the accuracy, dropout a
    little, the dense width not at all; the first trial is the L2 = 0 baseline; one trial failed."""
    settings = load_sweep_text(MY_SWEEP, "my_sweep.yaml")
    rng = np.random.default_rng(seed)
    rate = 10 ** rng.uniform(-4, -2, trials)
    dropout = rng.uniform(0, 0.5, trials)
    l2 = 10 ** rng.uniform(-6, -2, trials)
    l2[0] = 0.0
    accuracy = 0.99 - 0.04 * (np.log10(rate) + 3) ** 2 - 0.01 * dropout + rng.normal(0, 0.001, trials)
    accuracy[-1] = np.nan
    frame = pd.DataFrame({
        "trial_id": [f"t{i:02d}" for i in range(trials)], "status": ["finished"] * (trials - 1) + ["failed"],
        "learning_rate": rate, "dense_units": rng.choice([128, 256, 512], trials).astype(float),
        "batch_size": rng.integers(32, 129, trials),  # int64, as pandas reads a whole-number column
        "dropout_conv": dropout, "l2_conv": l2, "l2_dense": l2, "dropout_dense": 0.5, "augment_strength": 1.0,
        "best_val_accuracy": accuracy, "epochs_run": 4})
    frame = frame.sort_values("best_val_accuracy", ascending=False, na_position="last").reset_index(drop=True)
    sweep = {"settings": settings.to_dict()}
    return Experiment("made-up", numeric_knobs(frame, stored_space(sweep)), pd.DataFrame(), sweep)


def test_each_swept_knob_gets_the_axis_its_domain_calls_for():
    knobs = {knob.name: knob for knob in swept_knobs(made_up_sweep())}
    assert set(knobs) == {"learning_rate", "dense_units", "dropout_conv", "l2_conv", "batch_size"}, \
        "tied l2_dense under l2_conv"
    assert (knobs["learning_rate"].scale, knobs["l2_conv"].scale, knobs["dropout_conv"].scale) == (LOG, LOG, LINEAR)
    assert knobs["batch_size"].scale == LINEAR, "a randint knob read back as int64 is a number, not a category"
    assert knobs["dense_units"].scale == CATEGORY and knobs["dense_units"].categories == (128, 256, 512)
    assert knobs["l2_conv"].label == "L2 on conv and dense kernels"
    assert knobs["dense_units"].positions(pd.Series([512.0, 128.0])).tolist() == [2.0, 0.0]


def test_the_effects_section_draws_every_knob_the_trials_across_them_and_which_mattered(tmp_path):
    experiment = made_up_sweep()
    html = effects.section(experiment, tmp_path, "made up · 24 trials").body
    for name in ("learning_rate", "dense_units", "dropout_conv", "l2_conv", "batch_size"):
        assert (tmp_path / f"effect_{name}.png").stat().st_size > 5_000, name
    assert (tmp_path / "parallel_coordinates.png").stat().st_size > 5_000
    assert "Every trial (23 drawn; 1 without an accuracy left out)" in html
    # 24 trials, one failed (no accuracy), one the L2 = 0 baseline outside the log domain.
    assert "Rests on 22 trials" in html and "1 trial(s) left out because a value lies outside" in html
    rows = html.split('<table id="importance"')[1].split("</table>")[0].split("<tr")[2:]
    assert len(rows) == 5 and "learning rate" in rows[0], "the knob that decides the made-up accuracy ranks first"
    dense = next(row for row in rows if "dense layer width" in row)
    assert re.search(r"<td>[+-]\d\.\d\d</td></tr>", dense), "numeric choices get a rank correlation too"


def replicated(experiment: Experiment, seeds: int, stage: str = "search") -> Experiment:
    """The finished trials of `experiment` as configurations of `seeds` replicates each, in `stage`,
    the replicates' accuracies spread by +-0.2 points around the made-up one."""
    finished = experiment.trials[experiment.trials["best_val_accuracy"].notna()]
    rows = [{**row, "trial_id": f"{row['trial_id']}_s{seed}", "config_id": row["trial_id"], "config_seed": seed,
             "stage": stage, "best_val_accuracy": row["best_val_accuracy"] + 0.002 * (seed - 1)}
            for row in finished.to_dict("records") for seed in range(seeds)]
    return Experiment("made-up", pd.DataFrame(rows), pd.DataFrame(), experiment.sweep)


@pytest.fixture
def error_bars(monkeypatch):
    """Every errorbar drawn: (the means, the lower and upper bar lengths)."""
    from matplotlib.axes import Axes

    drawn, draw = [], Axes.errorbar

    def spy(self, x, y, yerr=None, **kwargs):
        drawn.append((np.asarray(y), np.asarray(yerr)))
        return draw(self, x, y, yerr=yerr, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", spy)
    return drawn


def test_replicated_configurations_are_drawn_as_means_with_their_intervals(tmp_path, error_bars):
    experiment = replicated(made_up_sweep(trials=5), seeds=3)  # 4 configurations x 3 seeds
    html = effects.section(experiment, tmp_path, "made up · 12 trials").body
    assert html.count("Black bars: each configuration&#x27;s mean over its seeds with its 95% confidence") == 5
    assert len(error_bars) == 5, "one set of bars per knob's plot"
    means, bars = error_bars[0]
    expected = sorted(100 * experiment.configs["val_accuracy_mean"])
    assert sorted(means) == pytest.approx(expected) and (bars > 0).all() and bars.shape == (2, 4)


def test_without_replicates_in_the_search_no_bars_and_the_caption_says_where_the_intervals_are(tmp_path, error_bars):
    html = effects.section(made_up_sweep(), tmp_path, "made up").body
    assert not error_bars and "Black bars" not in html and "one seed per configuration" not in html
    html = effects.section(made_up_sweep(), tmp_path, "made up", confirm_replicated=True).body
    assert not error_bars and "The search trained one seed per configuration, so there are no error bars" in html


def test_importance_needs_enough_trials_and_says_so(tmp_path):
    experiment = made_up_sweep(trials=8)
    html = effects.section(experiment, tmp_path, "made up · 8 trials").body
    assert "No parameter importance: it needs at least 10 trials" in html and "this sweep has 6" in html


def test_importance_says_so_when_every_trial_scored_the_same(tmp_path):
    experiment = made_up_sweep()
    experiment.trials["best_val_accuracy"] = experiment.trials["best_val_accuracy"].where(
        experiment.trials["best_val_accuracy"].isna(), 0.9)
    html = effects.section(experiment, tmp_path, "made up").body
    assert "all 22 trials reached the same validation accuracy" in html


def test_importance_finds_the_knob_that_decides_the_accuracy():
    experiment = made_up_sweep(trials=40, seed=1)
    knobs = swept_knobs(experiment)
    usable, left_out = importance.usable_trials(experiment.trials, knobs, experiment.space)
    found = importance.importance(usable, knobs, experiment.space)
    assert left_out == 1 and len(usable) == 38
    assert sum(found.values()) == pytest.approx(1.0)
    assert max(found, key=found.get) == "learning_rate"


def test_an_augmentation_pair_differs_in_augmentation_only_among_every_swept_knob():
    from analysis.augmentation import pairs

    frame = pd.DataFrame({"trial_id": ["off", "on_same", "on_wider"], "augmented": [False, True, True],
                          "dense_units": [256.0, 256.0, 512.0], "l2_conv": 1e-4, "config_seed": 0})
    found = pairs(frame, ("dense_units", "augment_strength"))
    assert [(off.trial_id, on.trial_id) for off, on in found] == [("off", "on_same")]
    assert len(pairs(frame)) == 2, "without the space, dense width is not compared"
