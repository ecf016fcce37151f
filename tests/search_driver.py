"""Drive a sweep's search algorithm as Tune's trial loop does, without a cluster or training: what
a search proposes, for tests that check the real sweep's trials against it."""

from __future__ import annotations

import math

from ray.tune.experiment import Experiment
from ray.tune.search import SearchAlgorithm, SearchGenerator, Searcher

from cnn.sweep_settings import SweepSettings
from cnn_ray.search_space import param_space
from cnn_ray.tuner import METRIC, MODE, search_algorithm, tune_num_samples


def score(config: dict) -> float:
    """A made-up validation accuracy, best at dropout 0.4 and L2 1e-3, so TPE has something to model."""
    dropout = config.get("dropout_conv", 0.4)
    return 1.0 - (dropout - 0.4) ** 2 - 0.01 * (math.log10(max(config.get("l2_conv", 1e-3), 1e-9)) + 3) ** 2


def generator(settings: SweepSettings, max_concurrent: int = 2) -> SearchAlgorithm:
    """The sweep's search algorithm (a Searcher in Tune's SearchGenerator), set up as Tuner.fit sets it up."""
    algorithm = search_algorithm(settings, max_concurrent=max_concurrent)
    found = SearchGenerator(algorithm) if isinstance(algorithm, Searcher) else algorithm
    found.set_search_properties(METRIC, MODE, param_space(settings))
    found.add_configurations(Experiment("search", lambda config: None, config=param_space(settings),
                                        num_samples=tune_num_samples(settings)))
    return found


def drive(search: SearchAlgorithm, trials: int, at_once: int = 2) -> list[dict]:
    """Suggest, run `at_once` at a time and complete `trials` trials, as Tune's controller does, with
    made-up results."""
    configs: list[dict] = []
    while len(configs) < trials and not search.is_finished():
        running = [trial for trial in (search.next_trial() for _ in range(at_once)) if trial is not None]
        assert running, "the searcher proposed nothing although no trial is running"
        for trial in running:
            search.on_trial_result(trial.trial_id, {METRIC: score(trial.config) - 0.05, "training_iteration": 1})
            search.on_trial_complete(trial.trial_id, {METRIC: score(trial.config), "training_iteration": 2})
            configs.append(trial.config)
    return configs
