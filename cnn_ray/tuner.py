"""The Ray Tune layer: a Tuner over the search space whose every trial (cnn_ray.trial) is a Ray Train run.

Layout of an experiment folder (<storage>/<name>):
    <trial folders>/        Tune's per-trial results, params and TensorBoard events
    train_runs/<trial_id>/  the Train run of each trial, with its checkpoints
    sweep.json              written when the sweep starts ("state": "running"), completed when it ends
    trials.csv, epochs.csv  written when the sweep ends (cnn_ray.run_record, cnn.sweep_results)
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Repeater, Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator

from cnn.replicas import WorkerResources
from cnn.sweep_settings import SweepSettings
from cnn_ray.baselines_first import BaselinesFirst
from cnn_ray.console import ConsoleProgress
from cnn_ray.search_space import baseline_points, param_space
from cnn_ray.storage_watch import StorageWatch
from cnn_ray.trial_clock import TrialClock
from cnn_ray.trial import TrialData, TrialPlan, trainable

METRIC, MODE = "val_accuracy", "max"   # trials are ranked on validation, never on test


def cluster_capacity() -> dict[str, float]:
    """CPUs and GPUs the sweep may size itself by: what the cluster has now, or, on an
    autoscaling cluster, the most its config lets it grow to (GPU workers often start at 0)."""
    now = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    try:
        # Private, but it is what Ray Train V2 itself uses to check a request against the
        # autoscaler's limits; None on a cluster without an autoscaler config.
        from ray._private.state import state

        most = state.get_max_resources_from_cluster_config() or {}
    except Exception:  # noqa: BLE001 - sizing falls back to the resources present now
        most = {}
    for key in ("CPU", "GPU"):
        value = most.get(key)
        if value and value < sys.maxsize:
            now[key] = max(now.get(key, 0.0), float(value))
    return now


def concurrent_trials(resources: WorkerResources, cluster: dict[str, float],
                      requested: int | None) -> int:
    """How many trials fit in the cluster at once (at least 1: an autoscaler may add nodes)."""
    if requested:
        return requested
    need = resources.total()
    fits = [math.floor((cluster.get("CPU", 0) + 1e-9) / need["CPU"])]
    if need["GPU"]:
        fits.append(math.floor((cluster.get("GPU", 0) + 1e-9) / need["GPU"]))
    return max(1, min(fits))


def scheduler(settings: SweepSettings):
    if settings.scheduler == "fifo":
        return FIFOScheduler()
    return LastEpochEndsItself(time_attr="epoch", max_t=settings.base.epochs, grace_period=settings.grace_period,
                               reduction_factor=settings.reduction_factor)


class LastEpochEndsItself(ASHAScheduler):
    """Ray's ASHA, except at a trial's last epoch: ASHA stops every trial there (max_t, or a rung at
    the last epoch), which kills the trial while Ray Train is still tearing down its run (Train's
    placement-group cleaner then warns on the console that it found the controller dead). Here the
    trial carries on, and having no epoch left, ends by itself. Every other decision is ASHA's."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        return TrialScheduler.CONTINUE if result.get(self._time_attr, 0) >= self._max_t else decision


class _BaselineOutsideDomain(logging.Filter):
    """Drops Tune's "Pre-set value `0.0` is not within valid values of parameter `l2_conv`" line:
    a baseline outside a sampled domain is the point of a baseline (L2 = 0 beside a log-uniform L2),
    and cnn.search_space checked it against the knob's own range before Ray started."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is not within valid values of parameter" not in record.getMessage()


def _accept_baselines_outside_domains() -> None:
    variant_logger = logging.getLogger("ray.tune.search.variant_generator")
    if not any(isinstance(f, _BaselineOutsideDomain) for f in variant_logger.filters):
        variant_logger.addFilter(_BaselineOutsideDomain())


def search_algorithm(settings: SweepSettings, max_concurrent: int) -> BasicVariantGenerator | Searcher:
    """Random and grid: Tune's BasicVariantGenerator. TPE: Optuna's TPESampler through Ray's
    OptunaSearch, the baselines run first (cnn_ray.baselines_first), at most max_concurrent at once.
    Both enforce the concurrency limit themselves: Tune ignores TuneConfig's max_concurrent_trials
    when a search algorithm instance is passed.

    With seeds > 1, Tune's Repeater hands every configuration out `seeds` times (the replicate index
    in the sample, cnn.sweep_settings.REPLICATE_KEY) and tells the searcher the mean of its
    replicates. A random search then samples through Optuna's RandomSampler: the BasicVariantGenerator
    draws new random values for every grid point, so it cannot repeat a configuration. A grid
    search crosses the replicate index as one more grid dimension (cnn_ray.search_space)."""
    baselines = baseline_points(settings)
    if settings.search == "grid" or (settings.search == "random" and settings.seeds == 1):
        _accept_baselines_outside_domains()
        return BasicVariantGenerator(points_to_evaluate=baselines or None, max_concurrent=max_concurrent,
                                     random_state=settings.search_seed)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per trial on the console
    if settings.search == "tpe":
        # constant_liar: a trial still running counts as a poor result, so concurrent trials are not
        # proposed at the same spot (Optuna's advice for parallel workers).
        sampler = optuna.samplers.TPESampler(seed=settings.search_seed, n_startup_trials=settings.startup_trials,
                                             constant_liar=True)
    else:
        sampler = optuna.samplers.RandomSampler(seed=settings.search_seed)
    optuna_search = OptunaSearch(sampler=sampler, metric=METRIC, mode=MODE)
    searcher: Searcher = BaselinesFirst(optuna_search, baselines, [settings.space.contains(point) for point in baselines])
    if settings.seeds > 1:
        searcher = Repeater(searcher, repeat=settings.seeds, set_index=True)
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def tune_num_samples(settings: SweepSettings) -> int:
    """TuneConfig's num_samples: a grid runs its points (the seeds among them) once; the others
    sample num_samples configurations, each `seeds` times (Tune counts every replicate)."""
    return 1 if settings.search == "grid" else settings.num_samples * settings.seeds


def build_tuner(plan: TrialPlan, data: TrialData, storage_path: str, name: str,
                max_concurrent: int) -> tune.Tuner:
    settings = plan.settings
    return tune.Tuner(
        trainable(data, plan),
        param_space=param_space(settings),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, scheduler=scheduler(settings),
                                    search_alg=search_algorithm(settings, max_concurrent),
                                    num_samples=tune_num_samples(settings)),
        run_config=stage_run_config(plan, storage_path, name, settings.num_trials()),
    )


def stage_run_config(plan: TrialPlan, storage_path: str, name: str, planned_trials: int) -> tune.RunConfig:
    """The RunConfig of a stage's Tuner (the search, or the confirm stage) at <storage_path>/<name>:
    stopped if storage stops taking writes, its trials' times recorded, and the console of
    cnn_ray.console unless `plan.verbose` (then Tune's own table, at its default verbosity)."""
    settings = plan.settings
    callbacks: list[tune.Callback] = [TrialClock(plan.experiment_path)]
    if not plan.verbose:
        callbacks.append(ConsoleProgress(planned_trials, settings.base.epochs, settings.space.knobs, settings.scheduler))
    return tune.RunConfig(name=name, storage_path=storage_path, stop=StorageWatch(plan.experiment_path),
                          callbacks=callbacks, verbose=None if plan.verbose else 0,
                          failure_config=tune.FailureConfig(max_failures=settings.trial_max_failures))


def unfinished(tune_experiment: str, planned: int) -> str | None:
    """Why a stage has not ended (an interrupted run: Tune returns from fit() on Ctrl-C), or None
    when all `planned` trials ended (finished, stopped or errored)."""
    statuses = [trial.status for trial in tune.ExperimentAnalysis(tune_experiment).trials]
    ended = sum(status in ("TERMINATED", "ERROR") for status in statuses)
    return None if ended >= planned else f"{ended} of its {planned} trials ended"


def restore_tuner(experiment_path: str, plan: TrialPlan, data: TrialData) -> tune.Tuner:
    """Continue an interrupted sweep. Unpickles the experiment state: only folders you wrote."""
    return tune.Tuner.restore(experiment_path, trainable=trainable(data, plan),
                              resume_unfinished=True, resume_errored=True)
