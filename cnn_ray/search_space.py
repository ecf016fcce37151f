"""The search space (cnn.search_space.SearchSpace) as Ray Tune domains (how a sample becomes a
config: cnn.sweep_settings.SweepSettings.trial_config)."""

from __future__ import annotations

from typing import Any

from ray import tune

from cnn.search_space import Domain
from cnn.sweep_settings import REPLICATE_KEY, SweepSettings

# Tied knobs are not tune.sample_from: Tune cannot resolve those in the trials it had not started
# when a sweep is resumed. They stay out of the samples; SearchSpace.apply sets them.
TUNE_DOMAINS = {
    "uniform": tune.uniform, "loguniform": tune.loguniform, "quniform": tune.quniform,
    "qloguniform": tune.qloguniform, "randint": tune.randint,
}


def tune_domain(domain: Domain) -> Any:
    if domain.kind == "grid":
        return tune.grid_search(list(domain.values))
    if domain.kind == "choice":
        return tune.choice(list(domain.values))
    return TUNE_DOMAINS[domain.kind](*domain.values)


def param_space(settings: SweepSettings) -> dict[str, Any]:
    """Tune's domains of the space; a grid search with seeds > 1 crosses the replicate index as one
    more grid dimension (the other searches repeat through Tune's Repeater: cnn_ray.tuner)."""
    space = {knob: tune_domain(domain) for knob, domain in settings.space.domains.items()}
    if settings.search == "grid" and settings.seeds > 1:
        space[REPLICATE_KEY] = tune.grid_search(list(range(settings.seeds)))
    return space


def baseline_points(settings: SweepSettings) -> list[dict[str, Any]]:
    """The space's baseline points, run first (random search: the base config without L2)."""
    return settings.space.baseline_samples(settings.base)
