"""The TPE searcher (Optuna through Ray Tune), driven as Tune's trial loop drives it, without a
cluster: baselines first, seeded proposals inside the space, and a save/restore in the middle (what
`--resume` does) that continues exactly where an uninterrupted search would have gone."""

from __future__ import annotations

import pytest

from cnn.sweep_file import PRESETS, load_sweep_text
from cnn.sweep_results import config_id
from cnn.sweep_settings import REPLICATE_KEY
from cnn_ray.tuner import METRIC, scheduler
from search_driver import drive, generator, score

TPE_SWEEP = """
train: {dataset: mnist, limit: 1200, epochs: 3}
search: {algorithm: tpe, num_samples: 14, seed: 3, startup_trials: 4, max_concurrent_trials: 2}
space:
  l2_conv: {loguniform: [1.0e-6, 1.0e-2]}
  l2_dense: {same_as: l2_conv}
  dropout_conv: {uniform: [0.0, 0.5]}
  dense_units: {choice: [128, 256, 512]}
baselines:
  - {l2_conv: 0.0}                         # outside the log domain: run, never told to Optuna
  - {l2_conv: 1.0e-4, dropout_conv: 0.25}  # inside: told to Optuna as an evaluated point
"""


def test_tpe_runs_the_baselines_first_then_seeded_proposals_inside_the_space():
    settings = load_sweep_text(TPE_SWEEP, "tpe.yaml")
    assert settings.num_trials() == 14
    configs = drive(generator(settings), 14)
    assert len(configs) == 14, "the planned number of trials, the baselines among them"
    assert configs[0] == {"l2_conv": 0.0, "dropout_conv": settings.base.dropout_conv, "dense_units": settings.base.dense_units}
    assert configs[1]["l2_conv"] == 1e-4 and configs[1]["dropout_conv"] == 0.25
    for config in configs[2:]:
        assert settings.space.contains(config), f"TPE proposed a point outside the space: {config}"
    assert len({tuple(sorted(c.items())) for c in configs}) == 14, "no configuration twice"
    again = drive(generator(settings), 14)
    assert again == configs, "the same seed and results give the same proposals"
    other = drive(generator(settings.replace(search_seed=4)), 14)
    assert other[2:] != configs[2:], "another seed proposes other points"


def test_a_restored_tpe_search_continues_where_the_interrupted_one_would_have(tmp_path):
    settings = load_sweep_text(TPE_SWEEP, "tpe.yaml")
    uninterrupted = drive(generator(settings), 14)

    # Killed with two trials running (the state saved while they run, as Tune saves it): both
    # baselines done and 2 proposals, then 2 more proposals running.
    interrupted = generator(settings)
    before = drive(interrupted, 4)
    running = [interrupted.next_trial(), interrupted.next_trial()]
    interrupted.save_to_dir(str(tmp_path), session_str="test")
    assert drive(generator(settings), 6) == uninterrupted[:6], "a fresh searcher would repeat these"

    resumed = generator(settings)
    resumed.restore_from_dir(str(tmp_path))
    for trial in running:  # the resumed sweep finishes the trials that were running
        resumed.on_trial_complete(trial.trial_id, {METRIC: score(trial.config), "training_iteration": 2})
    after = drive(resumed, 14)
    assert before + [t.config for t in running] + after == uninterrupted, \
        "a resumed search proposes what an uninterrupted one would"
    assert resumed.is_finished() and len(before) + len(running) + len(after) == 14


def test_switching_between_random_and_tpe_keeps_the_file_s_space():
    from jobs.sweep import parse_args, settings_from_args

    settings = settings_from_args(parse_args(["--preset", "full", "--search", "tpe"]))
    assert settings.search == "tpe" and settings.space == PRESETS["full"].space
    from_grid = settings_from_args(parse_args(["--preset", "local", "--search", "tpe"]))
    assert from_grid.space == PRESETS["full"].space, "a grid's space is no sampler's: the standard one"


REPLICATED_SWEEP = """
train: {dataset: mnist, limit: 1200, epochs: 3, seed: 7}
search: {algorithm: ALGORITHM, num_samples: 4, seed: 3, startup_trials: 2, max_concurrent_trials: 2}
seeds: 3
space:
  l2_conv: {loguniform: [1.0e-6, 1.0e-2]}
  l2_dense: {same_as: l2_conv}
  dropout_conv: {uniform: [0.0, 0.5]}
baselines:
  - {l2_conv: 0.0}
"""


def _groups(settings, configs):
    """(configuration without the replicate index, the seeds its replicates train with), in order."""
    groups: dict = {}
    for config in configs:
        key = tuple(sorted((k, v) for k, v in config.items() if k != REPLICATE_KEY))
        groups.setdefault(key, []).append(settings.trial_config(config).seed)
    return groups


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_seeds_train_every_configuration_with_each_seed_and_the_baseline_too(algorithm):
    settings = load_sweep_text(REPLICATED_SWEEP.replace("ALGORITHM", algorithm), "seeds.yaml")
    assert settings.num_trials() == 12
    configs = drive(generator(settings), 12)
    assert len(configs) == 12
    groups = _groups(settings, configs)
    assert len(groups) == 4 and all(seeds == [7, 8, 9] for seeds in groups.values()), groups
    assert dict(next(iter(groups)))["l2_conv"] == 0.0, "the baseline first, replicated like the rest"
    assert [c[REPLICATE_KEY] for c in configs] == [0, 1, 2] * 4, "a configuration's replicates one after another"
    ids = {config_id(c) for c in configs}
    assert len(ids) == 4, "replicates share a config_id, configurations do not"


def test_a_grid_crosses_its_points_with_the_seeds():
    settings = load_sweep_text("""
train: {dataset: mnist, limit: 1200, epochs: 3}
search: {algorithm: grid}
seeds: 2
space: {l2_conv: {grid: [0.0, 1.0e-4, 1.0e-3]}}
""", "grid.yaml")
    search = generator(settings)
    configs = drive(search, 6)
    assert settings.num_trials() == 6 and len(configs) == 6
    assert search.next_trial() is None and search.is_finished(), "no trial beyond the grid"
    assert sorted(_groups(settings, configs).values()) == [[0, 1]] * 3


def test_a_restored_replicated_search_finishes_the_half_run_configuration(tmp_path):
    settings = load_sweep_text(REPLICATED_SWEEP.replace("ALGORITHM", "tpe"), "seeds.yaml")
    uninterrupted = drive(generator(settings), 12)

    interrupted = generator(settings)
    before = drive(interrupted, 4)  # the baseline's 3 seeds and the first seed of the next configuration
    running = [interrupted.next_trial(), interrupted.next_trial()]
    interrupted.save_to_dir(str(tmp_path), session_str="test")

    resumed = generator(settings)
    resumed.restore_from_dir(str(tmp_path))
    for trial in running:
        resumed.on_trial_complete(trial.trial_id, {METRIC: score(trial.config), "training_iteration": 2})
    after = drive(resumed, 12)
    assert before + [t.config for t in running] + after == uninterrupted, \
        "the half-run configuration keeps its remaining seed, then the search goes on as it would have"
    assert resumed.is_finished()


def test_the_confirm_stage_runs_exactly_its_points_each_seed_once():
    from ray.tune.experiment import Experiment
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from cnn_ray.confirm import confirm_points, points_space

    settings = load_sweep_text(REPLICATED_SWEEP.replace("ALGORITHM", "tpe") + "confirm: {top: 2, seeds: 2}\n",
                               "seeds.yaml")
    chosen = [{"l2_conv": 1e-3, "dropout_conv": 0.3}, {"l2_conv": 0.0, "dropout_conv": 0.25}]
    points = confirm_points(settings, chosen)
    search = BasicVariantGenerator(points_to_evaluate=points, max_concurrent=2)
    search.add_configurations(Experiment("confirm", lambda config: None, config=points_space(points),
                                         num_samples=len(points)))
    configs = drive(search, len(points))
    assert configs == points
    assert search.next_trial() is None and search.is_finished(), "no trial beyond the points"
    # seeds 3: the search trained 7, 8, 9 (train.seed 7); the confirm stage 10 and 11.
    stage = settings.confirm_stage()
    assert [stage.trial_config(c).seed for c in configs] == [10, 11, 10, 11]
    assert len({config_id(c) for c in configs}) == 2


@pytest.mark.parametrize("epochs, grace_period, reduction_factor", [(2, 1, 3), (9, 1, 3), (8, 1, 2), (20, 2, 3)])
def test_asha_keeps_its_rungs_and_never_stops_a_trial_at_its_last_epoch(epochs, grace_period, reduction_factor):
    """cnn_ray.tuner's ASHA lets a trial at its last epoch end by itself (Ray's stops it there, killing
    it while Ray Train tears down); its rungs are the textbook schedule's, and below the last epoch
    it stops what Ray's ASHA stops."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    settings = PRESETS["full"].replace(base=PRESETS["full"].base.replace(epochs=epochs), scheduler="asha",
                                       grace_period=grace_period, reduction_factor=reduction_factor)
    ours, textbook = scheduler(settings), ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=grace_period,
                                                        reduction_factor=reduction_factor)
    for asha in (ours, textbook):
        asha.set_search_properties("val_accuracy", "max")
    assert ours._brackets[0]._rungs == textbook._brackets[0]._rungs

    class Trial:  # what ASHA reads of a trial
        def __init__(self, trial_id):
            self.trial_id = trial_id

    def decisions(asha, results):
        out = []
        for index, result in enumerate(results):
            trial = Trial(f"t{index}")
            asha.on_trial_add(None, trial)
            out.append(asha.on_trial_result(None, trial, result))
        return out

    # At the first rung, a good trial then a clearly worse one: both schedulers stop the worse.
    rung = [{"epoch": grace_period, "val_accuracy": 0.9}, {"epoch": grace_period, "val_accuracy": 0.1}]
    assert decisions(ours, rung) == decisions(textbook, rung) == [TrialScheduler.CONTINUE, TrialScheduler.STOP]
    last = [{"epoch": epochs, "val_accuracy": 0.5}]
    assert decisions(ours, last) == [TrialScheduler.CONTINUE] and decisions(textbook, last) == [TrialScheduler.STOP]
