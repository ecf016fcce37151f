"""analysis/configs.py: configs.csv from trials.csv rows, worked by hand."""

import math

import pandas as pd
import pytest

from analysis.configs import COLUMNS, choose_for_confirm, config_table


def trial(trial_id, config_id, seed, val, test, train=None, stage="search", status="finished", l2=0.0):
    return {"trial_id": trial_id, "config_id": config_id, "stage": stage, "seed": seed, "status": status,
            "best_val_accuracy": val, "best_test_accuracy": test,
            "best_train_accuracy": val + 0.01 if train is None else train, "epochs_run": 5, "l2_conv": l2}


def test_replicates_of_a_configuration_become_one_row_with_students_t_intervals():
    trials = pd.DataFrame([
        trial("a0", "cfgA", 0, 0.97, 0.96, l2=1e-3), trial("a1", "cfgA", 1, 0.98, 0.97, l2=1e-3),
        trial("a2", "cfgA", 2, 0.99, 0.98, l2=1e-3),
        trial("b0", "cfgB", 0, 0.99, 0.95, train=0.995), trial("b1", "cfgB", 1, 0.99, 0.97, train=1.0),
    ])
    table = config_table(trials, ["l2_conv", "not_a_column"])
    assert list(table.columns) == [*COLUMNS, "l2_conv"]
    assert list(table["config_id"]) == ["cfgB", "cfgA"]  # ranked by mean validation accuracy
    a = table.set_index("config_id").loc["cfgA"]
    # mean 0.98, sd 0.01, t(0.975, 2 df) = 4.302653: half-width 4.302653 * 0.01 / sqrt(3) = 0.024841
    assert (a["n"], a["n_failed"], a["l2_conv"], a["seeds"], a["trial_ids"]) == (3, 0, 1e-3, "0;1;2", "a0;a1;a2")
    assert a["val_accuracy_mean"] == pytest.approx(0.98)
    assert a["val_accuracy_sd"] == pytest.approx(0.01)
    assert (a["val_accuracy_ci_low"], a["val_accuracy_ci_high"]) == pytest.approx((0.98 - 0.024841, 0.98 + 0.024841),
                                                                                  abs=1e-6)
    assert a["test_accuracy_mean"] == pytest.approx(0.97)
    b = table.set_index("config_id").loc["cfgB"]
    assert b["gap_mean"] == pytest.approx((0.005 + 0.01) / 2)
    assert b["val_accuracy_sd"] == 0 and b["val_accuracy_ci_low"] == b["val_accuracy_ci_high"] == pytest.approx(0.99)


def test_failed_trials_are_counted_apart_and_one_replicate_has_no_interval():
    trials = pd.DataFrame([trial("a0", "cfgA", 0, 0.9, 0.8),
                           trial("a1", "cfgA", 1, float("nan"), float("nan"), status="failed")])
    row = config_table(trials).iloc[0]
    assert (row["n"], row["n_failed"]) == (1, 1)
    assert row["val_accuracy_mean"] == pytest.approx(0.9) and math.isnan(row["val_accuracy_sd"])
    assert math.isnan(row["val_accuracy_ci_low"]) and math.isnan(row["val_accuracy_ci_high"])


def test_each_stage_is_its_own_row_search_first():
    trials = pd.DataFrame([trial("c0", "cfgA", 5, 0.95, 0.94, stage="confirm"),
                           trial("c1", "cfgA", 6, 0.96, 0.95, stage="confirm"),
                           trial("s0", "cfgA", 0, 0.99, 0.98)])
    table = config_table(trials)
    assert list(zip(table["config_id"], table["stage"], table["n"])) == [("cfgA", "search", 1), ("cfgA", "confirm", 2)]


def test_a_trials_table_from_before_configurations_makes_every_trial_its_own():
    trials = pd.DataFrame([trial("t1", "", 0, 0.9, 0.9, stage=""), trial("t2", "", 0, 0.8, 0.8, stage="")])
    trials = trials.drop(columns=["seed"])
    table = config_table(trials)
    assert list(table["config_id"]) == ["t1", "t2"] and set(table["stage"]) == {"search"}
    assert list(table["n"]) == [1, 1]


def test_the_confirm_stage_takes_the_best_by_mean_then_the_baselines_it_ran():
    trials = pd.DataFrame([trial("a0", "cfgA", 0, 0.97, 0.9), trial("a1", "cfgA", 1, 0.99, 0.9),  # mean 0.98
                           trial("b0", "cfgB", 0, 0.985, 0.9), trial("b1", "cfgB", 1, 0.985, 0.9),  # mean 0.985
                           trial("c0", "cfgC", 0, float("nan"), float("nan"), status="failed"),
                           trial("z0", "base", 0, 0.5, 0.5), trial("x0", "cfgA", 9, 1.0, 1.0, stage="confirm")])
    table = config_table(trials)
    assert choose_for_confirm(table, 1, ["base", "never_ran"]) == ["cfgB", "base"]
    assert choose_for_confirm(table, 5, ["cfgA"]) == ["cfgB", "cfgA", "base"]  # a failed configuration is no candidate
