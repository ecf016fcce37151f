"""Run a sweep's baseline points first, then what a model-based searcher (Optuna's TPE) proposes.

Ray's OptunaSearch takes `points_to_evaluate`, but it enqueues them in the Optuna study, which
refuses a point outside its distributions: the L2 = 0 baseline beside a log-uniform L2 domain
fails at the first suggestion. This wrapper hands the baselines to Tune itself and tells the study
only about those that lie inside its space (so TPE learns from them); the rest are run and
recorded like any trial, and the searcher never sees them.

It follows Ray's own wrapper pattern (ConcurrencyLimiter): the wrapped searcher is `searcher`,
and Tune's SearchGenerator saves this wrapper's state (get_state) beside the wrapped searcher's
checkpoint, so `--resume` neither reruns a baseline nor forgets one that is running.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.util import _set_search_properties_backwards_compatible


class BaselinesFirst(Searcher):
    """`baselines` are full samples over the space's knobs; `inside[i]` says whether baseline i lies
    in the searcher's space (only those are told to it as evaluated points)."""

    def __init__(self, searcher: Searcher, baselines: list[dict[str, Any]], inside: list[bool]) -> None:
        if len(baselines) != len(inside):
            raise ValueError("one `inside` flag per baseline")
        self.searcher = searcher
        self.baselines = [dict(point) for point in baselines]
        self.inside = list(inside)
        self.baseline_of_trial: dict[str, int] = {}  # trial id -> index of the baseline it runs
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return _set_search_properties_backwards_compatible(self.searcher.set_search_properties, metric, mode,
                                                           config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        started = len(self.baseline_of_trial)
        if started < len(self.baselines):
            self.baseline_of_trial[trial_id] = started
            return dict(self.baselines[started])
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.baseline_of_trial:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        index = self.baseline_of_trial.get(trial_id)
        if index is None:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        value = (result or {}).get(self.metric)
        if self.inside[index] and isinstance(value, (int, float)) and math.isfinite(value) and not error:
            self.searcher.add_evaluated_point(self.baselines[index], value)

    def get_state(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["searcher"]
        return copy.deepcopy(state)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
