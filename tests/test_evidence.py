"""analysis/evidence.py: the winner only when intervals separate, and knob effects tested against seed noise."""

import pandas as pd
import pytest

from analysis.configs import config_table
from analysis.evidence import evidence_stage, knob_comparisons, ranking_verdict, sentence, study_parts

KNOBS = ["l2_conv", "l2_dense", "augment_strength"]


def replicates(config_id, l2, augment, vals, tests, stage="confirm"):
    return [{"trial_id": f"{config_id}-{stage}-{i}", "config_id": config_id, "stage": stage, "seed": i,
             "status": "finished", "best_val_accuracy": v, "best_test_accuracy": t, "best_train_accuracy": v,
             "epochs_run": 5, "l2_conv": l2, "l2_dense": l2, "augment_strength": augment}
            for i, (v, t) in enumerate(zip(vals, tests))]


def frame(*groups):
    return pd.DataFrame([row for group in groups for row in group])


def describe(row):
    return row["config_id"]


def test_the_first_configuration_wins_only_when_its_interval_lies_above_the_runner_up_s():
    clear = frame(replicates("good", 1e-3, 1, [0.990, 0.991, 0.992], [0.98, 0.98, 0.98]),
                  replicates("poor", 0.0, 1, [0.950, 0.951, 0.952], [0.94, 0.94, 0.94]))
    text, wins = ranking_verdict(config_table(clear, KNOBS), "confirm", describe)
    assert wins and text.startswith("good wins")
    noisy = frame(replicates("good", 1e-3, 1, [0.99, 0.95, 0.97], [0.98, 0.94, 0.96]),
                  replicates("poor", 0.0, 1, [0.96, 0.97, 0.965], [0.95, 0.96, 0.955]))
    text, wins = ranking_verdict(config_table(noisy, KNOBS), "confirm", describe)
    assert not wins and "good ranks first but is tied with poor" in text


def test_the_confirm_stage_is_the_evidence_when_it_ran_and_one_seed_is_none():
    search_only = frame(replicates("a", 0.0, 1, [0.9], [0.9], stage="search"),
                        replicates("b", 1e-3, 1, [0.8], [0.8], stage="search"))
    assert evidence_stage(config_table(search_only, KNOBS)) is None
    parts = study_parts(config_table(search_only, KNOBS), search_only, KNOBS, "l2_conv", lambda v: f"L2 = {v:g}")
    assert "one seed per configuration" in "".join(parts)
    both = pd.concat([search_only, frame(replicates("a", 0.0, 1, [0.9, 0.91], [0.9, 0.9]))])
    assert evidence_stage(config_table(both, KNOBS)) == "confirm"


def test_a_knob_s_effect_is_compared_within_equal_other_knobs_and_tested_against_seed_noise():
    trials = frame(replicates("off0", 0.0, 0, [0.95] * 3, [0.950, 0.952, 0.948]),
                   replicates("off3", 1e-3, 0, [0.96] * 3, [0.980, 0.982, 0.978]),  # +3 points, tight: real
                   replicates("on0", 0.0, 1, [0.97] * 3, [0.97, 0.95, 0.99]),
                   replicates("on3", 1e-3, 1, [0.97] * 3, [0.975, 0.955, 0.985]))  # +0.17 points, noisy: not
    configs = config_table(trials, KNOBS)
    ties = {"l2_dense": "l2_conv"}
    comparisons = knob_comparisons(configs, trials, "confirm", "l2_conv", KNOBS, lambda values: values.min(), ties)
    assert [(c.held["augment_strength"], c.reference, c.value) for c in sorted(
        comparisons, key=lambda c: c.held["augment_strength"])] == [(0, 0.0, 1e-3), (1, 0.0, 1e-3)]
    by_augment = {c.held["augment_strength"]: c for c in comparisons}
    assert by_augment[0].test.larger_than_noise() and by_augment[0].test.difference == pytest.approx(0.03, abs=1e-9)
    assert not by_augment[1].test.larger_than_noise()
    text = sentence(by_augment[0], lambda v: f"L2 = {v:g}", "augmentation off")
    assert text.startswith("L2 = 0.001 against L2 = 0 (augmentation off; 3 and 3 seeds): test accuracy +3.00 points")
    assert "Welch's t-test p = " in text and "): larger than seed-to-seed noise." in text
    assert "not larger than seed-to-seed noise" in sentence(by_augment[1], str, "on")
    # The augmentation study alike: on against off within each L2 strength.
    augment = knob_comparisons(configs, trials, "confirm", "augment_strength", KNOBS, lambda values: values.min(), ties)
    assert sorted((c.held["l2_conv"], c.reference, c.value) for c in augment) == [(0.0, 0, 1), (1e-3, 0, 1)]
    # Untied, l2_dense is a knob of its own: configurations that differ in it too are no L2 comparison.
    assert knob_comparisons(configs, trials, "confirm", "l2_conv", KNOBS, lambda values: values.min()) == []


def test_failed_replicates_are_left_out_of_the_test_as_out_of_n():
    trials = frame(replicates("zero", 0.0, 0, [0.95] * 3, [0.95, 0.951, 0.949]),
                   replicates("some", 1e-3, 0, [0.96] * 3, [0.97, 0.971, 0.969]))
    trials.loc[trials["trial_id"] == "some-confirm-2", ["status", "best_test_accuracy"]] = ["failed", 0.1]
    configs = config_table(trials, KNOBS)
    (comparison,) = knob_comparisons(configs, trials, "confirm", "l2_conv", KNOBS, lambda values: values.min(),
                                     {"l2_dense": "l2_conv"})
    assert (comparison.test.n_a, comparison.test.n_b) == (2, 3)
    assert comparison.test.difference == pytest.approx(0.0205, abs=1e-9)


def test_a_study_falls_back_to_the_search_replicates_when_the_confirm_stage_has_no_pair():
    search = frame(replicates("zero", 0.0, 0, [0.95] * 3, [0.95, 0.951, 0.949], stage="search"),
                   replicates("some", 1e-3, 0, [0.96] * 3, [0.97, 0.971, 0.969], stage="search"))
    confirm = frame(replicates("some", 1e-3, 0, [0.96] * 3, [0.97, 0.971, 0.969]))
    trials = pd.concat([search, confirm], ignore_index=True)
    parts = "".join(study_parts(config_table(trials, KNOBS), trials, KNOBS, "l2_conv", lambda v: f"L2 = {v:g}",
                                {"l2_dense": "l2_conv"}))
    assert "L2 = 0.001 against L2 = 0 (all else equal; 3 and 3 seeds)" in parts
    assert "the search stage&#x27;s seed replicates" in parts  # the apostrophe as html.escape writes it


def test_the_model_card_says_whether_its_configuration_won_tied_or_was_never_tested():
    from cnn_ray.final_stage import ranking

    clear = frame(replicates("good", 1e-3, 1, [0.990, 0.991, 0.992], [0.98, 0.98, 0.98]),
                  replicates("poor", 0.0, 1, [0.950, 0.951, 0.952], [0.94, 0.94, 0.94]))
    assert ranking(config_table(clear, KNOBS), "confirm").startswith("Configuration good wins")
    noisy = frame(replicates("good", 1e-3, 1, [0.99, 0.95, 0.97], [0.98, 0.94, 0.96]),
                  replicates("poor", 0.0, 1, [0.96, 0.97, 0.965], [0.95, 0.96, 0.955]))
    assert ranking(config_table(noisy, KNOBS), "confirm").startswith("No winner: configuration good ranks first")
    one_seed = frame(replicates("a", 0.0, 1, [0.9], [0.9], stage="search"),
                     replicates("b", 1e-3, 1, [0.8], [0.8], stage="search"))
    assert ranking(config_table(one_seed, KNOBS), "search").startswith("One seed per configuration: first by a single")
    alone = frame(replicates("a", 0.0, 1, [0.9], [0.9], stage="search"))
    assert ranking(config_table(alone, KNOBS), "search") == "Only one configuration has a result: configuration a."
