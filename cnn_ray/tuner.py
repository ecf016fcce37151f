"""The Ray Tune layer: every trial builds and fits a Ray Train `TensorflowTrainer`.

Layout of an experiment folder (<storage>/<name>):
    <trial folders>/        Tune's per-trial results, params and TensorBoard events
    train_runs/<trial_id>/  the Train run of each trial, with its checkpoints
    sweep.json              written when the sweep starts ("state": "running"), completed when it ends
    trials.csv, epochs.csv  written when the sweep ends (cnn_ray.run_record, cnn.sweep_results)
"""

from __future__ import annotations

import math
import sys
from typing import Any

import ray
from ray import tune
# Private, but it is how Ray Train itself pins its placement-group cleaner to the head node.
from ray._common.constants import HEAD_NODE_RESOURCE_NAME
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from cnn.config import TrainConfig
from cnn.sweep_results import TRAIN_RUNS_DIR
from cnn.sweep_settings import AUTO, SweepSettings
from cnn_ray.search_space import baseline_points, param_space, trial_config
from cnn_ray.storage_watch import StorageWatch
from cnn_ray.trainer import WorkerResources, make_trainer

METRIC, MODE = "val_accuracy", "max"   # trials are ranked on validation, never on test
# The Tune function only drives its Train workers: it needs no CPU of its own, but Tune refuses
# an empty request, so it reserves the memory its process really uses instead. It runs on the
# head node, and so does the Train controller it starts (Ray Train puts a controller on its
# driver's node): a lost worker node then takes only training workers, which Ray Train restarts.
# A controller lost while its worker group was starting would leak that group's placement group
# (Ray Train hands it to its cleaner only once the group has started) with its CPUs, and the
# trials waiting for them would wait forever (docs/RELIABILITY.md, fault 4).
TRIAL_DRIVER_RESOURCES = {"CPU": 0, "memory": 512 * 2**20, HEAD_NODE_RESOURCE_NAME: 0.001}


def run_trial(sample: dict[str, Any], data: dict[str, ray.ObjectRef], plan: dict[str, Any]) -> None:
    """One Tune trial: a distributed Train run of the sampled config, reporting to Tune per epoch."""
    config = trial_config(TrainConfig.from_dict(plan["base"]), sample)
    resources = WorkerResources(**plan["resources"])
    trial_id = tune.get_context().get_trial_id()
    trainer = make_trainer(config, data["ref"], resources,
                           storage_path=f"{plan['experiment_path']}/{TRAIN_RUNS_DIR}",
                           name=trial_id,  # by trial id: a restarted trial resumes its own run
                           max_failures=plan["worker_max_failures"],
                           callbacks=[TuneReportCallback()])
    result = trainer.fit()
    if result.error is not None:
        raise result.error


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


def worker_resources(settings: SweepSettings, cluster: dict[str, float]) -> WorkerResources:
    gpus = settings.gpus_per_worker
    if gpus == AUTO:
        gpus = 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    return WorkerResources(settings.workers_per_trial, settings.cpus_per_worker, float(gpus))


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


def trainable(data_ref: ray.ObjectRef, plan: dict[str, Any]):
    # The ObjectRef travels inside a dict so that with_parameters hands trials the reference,
    # not a copy of the arrays; Train workers then read the arrays from the object store.
    return tune.with_resources(tune.with_parameters(run_trial, data={"ref": data_ref}, plan=plan),
                               TRIAL_DRIVER_RESOURCES)


def scheduler(settings: SweepSettings):
    if settings.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="epoch", max_t=settings.base.epochs, grace_period=settings.grace_period,
                         reduction_factor=settings.reduction_factor)


def build_tuner(settings: SweepSettings, plan: dict[str, Any], data_ref: ray.ObjectRef,
                storage_path: str, name: str, max_concurrent: int) -> tune.Tuner:
    # The generator enforces the concurrency limit itself: Tune ignores TuneConfig's
    # max_concurrent_trials when a search algorithm instance is passed.
    searcher = BasicVariantGenerator(points_to_evaluate=baseline_points(settings) or None,
                                     max_concurrent=max_concurrent, random_state=settings.search_seed)
    num_samples = 1 if settings.search == "grid" else settings.num_samples
    return tune.Tuner(
        trainable(data_ref, plan),
        param_space=param_space(settings),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, scheduler=scheduler(settings),
                                    search_alg=searcher, num_samples=num_samples),
        run_config=tune.RunConfig(name=name, storage_path=storage_path,
                                  stop=StorageWatch(f"{storage_path.rstrip('/')}/{name}"),
                                  failure_config=tune.FailureConfig(max_failures=settings.trial_max_failures)),
    )


def restore_tuner(experiment_path: str, plan: dict[str, Any], data_ref: ray.ObjectRef) -> tune.Tuner:
    """Continue an interrupted sweep. Unpickles the experiment state: only folders you wrote."""
    return tune.Tuner.restore(experiment_path, trainable=trainable(data_ref, plan),
                              resume_unfinished=True, resume_errored=True)
