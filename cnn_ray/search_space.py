"""The hyperparameters a sweep varies, as Ray Tune domains, and how a sample becomes a TrainConfig."""

from __future__ import annotations

from typing import Any

from ray import tune

from cnn.config import TrainConfig
from cnn.sweep_settings import SweepSettings

# augment_strength scales the original study's augmentation; 0 switches it off.
AUGMENT_RANGES = ("rotation_degrees", "width_shift", "height_shift", "shear_degrees", "zoom")


def param_space(settings: SweepSettings) -> dict[str, Any]:
    if settings.search == "grid":
        return {"l2": tune.grid_search(list(settings.grid_l2)),
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
             "dropout_dense": base.dropout_dense, "augment_strength": 1.0 if base.augment else 0.0}]


def trial_config(base: TrainConfig, sample: dict[str, Any]) -> TrainConfig:
    """The base config with one trial's sampled values applied."""
    changes = {k: v for k, v in sample.items() if k not in ("l2", "augment_strength")}
    if "l2" in sample:
        changes["l2_conv"] = changes["l2_dense"] = float(sample["l2"])
    if "augment_strength" in sample:
        strength = float(sample["augment_strength"])
        defaults = TrainConfig()
        changes["augment"] = strength > 0
        for key in AUGMENT_RANGES:
            changes[key] = getattr(defaults, key) * strength
    return base.replace(**changes)


def describe(settings: SweepSettings) -> dict[str, str]:
    """The search space in words, for the printed plan and the stored sweep config."""
    if settings.search == "grid":
        return {"l2 (conv and dense)": f"grid {list(settings.grid_l2)}",
                "augment_strength": f"grid {list(settings.grid_augment_strength)}"}
    return {"l2_conv": "log-uniform [1e-6, 1e-2], plus a 0 baseline",
            "l2_dense": "log-uniform [1e-6, 1e-2], plus a 0 baseline",
            "dropout_conv": "uniform [0, 0.5]", "dropout_dense": "uniform [0, 0.6]",
            "augment_strength": "choice 0 (off), 0.5, 1 (original study), 1.5"}


def num_trials(settings: SweepSettings) -> int:
    if settings.search == "grid":
        return len(settings.grid_l2) * len(settings.grid_augment_strength)
    return settings.num_samples
