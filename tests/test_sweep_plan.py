"""The sweep's planning, without a cluster: presets, search space, trial configs, resource sizing."""

import pytest

from cnn.config import TrainConfig
from cnn_ray.tuner import TRIAL_DRIVER_RESOURCES, concurrent_trials, worker_resources
from cnn.sweep_settings import PRESETS
from cnn_ray.search_space import baseline_points, num_trials, trial_config
from cnn_ray.trainer import WorkerResources


def test_presets_are_valid_and_sized_as_documented():
    assert PRESETS["smoke"].base.epochs == 2 and num_trials(PRESETS["smoke"]) == 2
    local = PRESETS["local"]
    assert local.base.dataset == "mnist" and local.search == "grid" and num_trials(local) == 8
    assert not local.base.horizontal_flip, "digits are not mirror-symmetric"
    assert PRESETS["full"].base.horizontal_flip
    assert PRESETS["full"].base.dataset == "cifar10" and PRESETS["full"].base.limit is None


def test_trial_drivers_ask_for_the_head_node_and_no_cpu():
    """Trial drivers (and so their Train controllers) must stay on the head (docs/RELIABILITY.md,
    fault 4), and must not take a CPU a training worker could use."""
    assert TRIAL_DRIVER_RESOURCES.get("node:__internal_head__", 0) > 0
    assert TRIAL_DRIVER_RESOURCES["CPU"] == 0


def test_grid_l2_sets_conv_and_dense_alike_and_strength_scales_augmentation():
    config = trial_config(TrainConfig(), {"l2": 1e-3, "augment_strength": 0.5})
    assert config.l2_conv == config.l2_dense == 1e-3
    assert config.augment and config.rotation_degrees == 7.5 and config.zoom == 0.1
    off = trial_config(TrainConfig(), {"l2": 0.0, "augment_strength": 0.0})
    assert not off.augment and off.l2_conv == 0.0


def test_random_search_starts_from_an_l2_free_baseline():
    settings = PRESETS["full"]
    assert baseline_points(settings) == [{"l2_conv": 0.0, "l2_dense": 0.0, "dropout_conv": 0.25,
                                          "dropout_dense": 0.5, "augment_strength": 1.0}]
    assert baseline_points(PRESETS["local"]) == []


@pytest.mark.parametrize("cluster, per_trial, requested, expected", [
    ({"CPU": 2}, WorkerResources(1, 1.0), None, 2),
    ({"CPU": 2}, WorkerResources(2, 1.0), None, 1),
    ({"CPU": 2}, WorkerResources(2, 0.5), None, 2),
    ({"CPU": 64, "GPU": 4}, WorkerResources(2, 4.0, 1.0), None, 2),   # GPUs are the limit
    ({"CPU": 8}, WorkerResources(1, 1.0, 1.0), None, 1),              # no GPUs yet: autoscaler adds them
    ({"CPU": 2}, WorkerResources(1, 1.0), 5, 5),
])
def test_never_more_concurrent_trials_than_fit(cluster, per_trial, requested, expected):
    assert concurrent_trials(per_trial, cluster, requested) == expected


def test_gpus_per_worker_auto_follows_the_cluster():
    settings = PRESETS["full"]
    assert worker_resources(settings, {"CPU": 16, "GPU": 2}).gpus_per_worker == 1.0
    assert worker_resources(settings, {"CPU": 16}).gpus_per_worker == 0.0


@pytest.mark.parametrize("changes, words", [
    ({"search": "bayes"}, "search='bayes'"),
    ({"scheduler": "pbt"}, "scheduler='pbt'"),
    ({"grace_period": 99}, "grace_period=99"),
    ({"workers_per_trial": 3}, "divisible"),
    ({"grid_l2": (-1.0,)}, "grid_l2"),
    ({"gpus_per_worker": "some"}, "gpus_per_worker"),
])
def test_bad_sweep_settings_name_the_key(changes, words):
    with pytest.raises(ValueError, match=words):
        PRESETS["local"].replace(**changes)


def test_scheduler_flags_reach_the_settings():
    from tests.test_cluster_configs import parse_sweep_command

    settings, _ = parse_sweep_command("python jobs/sweep.py --preset local --scheduler asha --grace-period 1 "
                                      "--reduction-factor 4 --lr-schedule cosine")
    assert (settings.scheduler, settings.grace_period, settings.reduction_factor) == ("asha", 1, 4)
    assert settings.base.lr_schedule == "cosine" and settings.base.dataset == "mnist"
    assert parse_sweep_command("python jobs/sweep.py --preset local")[0].reduction_factor == 2
