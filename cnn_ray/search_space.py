"""The hyperparameters a sweep varies, as Ray Tune domains (how a sample becomes a config:
cnn.sweep_settings.SweepSettings.trial_config)."""

from __future__ import annotations

from typing import Any

from ray import tune

from cnn.sweep_settings import SweepSettings


def param_space(settings: SweepSettings) -> dict[str, Any]:
    if settings.search == "grid":
        # The original study's L2 experiment: one strength on conv and dense kernels alike; l2_dense
        # follows l2_conv (SweepSettings.tied_knobs). Not a tune.sample_from: Tune cannot resolve
        # those in the trials it had not started when a sweep is resumed.
        return {"l2_conv": tune.grid_search(list(settings.grid_l2)),
                "augment_strength": tune.grid_search(list(settings.grid_augment_strength))}
    return {
        "l2_conv": tune.loguniform(1e-6, 1e-2),
        "l2_dense": tune.loguniform(1e-6, 1e-2),
        "dropout_conv": tune.uniform(0.0, 0.5),
        "dropout_dense": tune.uniform(0.0, 0.6),
        "augment_strength": tune.choice([0.0, 0.5, 1.0, 1.5]),
    }


def baseline_points(settings: SweepSettings) -> list[dict[str, Any]]:
    """Random search starts with the base config without L2: the baseline the others beat or not."""
    if settings.search == "grid":
        return []
    base = settings.base
    return [{"l2_conv": 0.0, "l2_dense": 0.0, "dropout_conv": base.dropout_conv,
             "dropout_dense": base.dropout_dense, "augment_strength": base.augment_strength}]
