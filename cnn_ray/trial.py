"""One Tune trial: a Ray Train run of the sampled config, reporting to Tune every epoch.

The trial function runs in a trial driver on the head node, one per running trial, and starts a
Train controller beside it. Neither imports TensorFlow (tests/test_layout.py checks this module
and bench/trial_memory.py measures both): only the training workers do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray
from ray import tune
# Private, but it is how Ray Train itself pins its placement-group cleaner to the head node.
from ray._common.constants import HEAD_NODE_RESOURCE_NAME
from ray.tune.integration.ray_train import TuneReportCallback

from cnn.replicas import WorkerResources
from cnn.sweep_results import TRAIN_RUNS_DIR
from cnn.sweep_settings import SweepSettings
from cnn_ray.streaming import Stream
from cnn_ray.trainer import make_trainer

# The Tune function only drives its Train workers: it needs no CPU of its own, but Tune refuses
# an empty request, so it reserves memory instead: 512 MiB, what it and its Train controller
# really use (418 MB resident together, measured by bench/trial_memory.py). It runs on the head node, and so does the
# Train controller it starts (Ray Train puts a controller on its driver's node): a lost worker
# node then takes only training workers, which Ray Train restarts. A controller lost while its
# worker group was starting would leak that group's placement group (Ray Train hands it to its
# cleaner only once the group has started) with its CPUs, and the trials waiting for them would
# wait forever (docs/RELIABILITY.md, fault 4).
TRIAL_DRIVER_RESOURCES = {"CPU": 0, "memory": 512 * 2**20, HEAD_NODE_RESOURCE_NAME: 0.001}


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of a sweep shares, handed to each trial as itself (Ray pickles it)."""

    settings: SweepSettings
    resources: WorkerResources   # resolved for this cluster (settings may say "auto" GPUs)
    experiment_path: str         # <storage>/<name>: Tune's experiment folder
    verbose: bool = False        # the workers' Ray Train log lines on the console (--verbose)

    @property
    def train_runs_path(self) -> str:
        return f"{self.experiment_path}/{TRAIN_RUNS_DIR}"


@dataclass(frozen=True)
class TrialData:
    """What every trial trains on: the ObjectRef of the dataset's arrays in the object store (the
    validation and test images only when the training images stream) and the stream, if any."""

    ref: ray.ObjectRef
    stream: Stream | None = None


def run_trial(sample: dict[str, Any], data: TrialData, plan: TrialPlan) -> None:
    """One Tune trial: a distributed Train run of the sampled config, reporting to Tune per epoch."""
    started_at = time.time()
    trainer = make_trainer(plan.settings.trial_config(sample), data.ref, plan.resources,
                           storage_path=plan.train_runs_path,
                           name=tune.get_context().get_trial_id(),  # by trial id: a restarted trial resumes its run
                           max_failures=plan.settings.worker_max_failures,
                           callbacks=[TuneReportCallback()], trial_started_at=started_at, stream=data.stream,
                           verbose=plan.verbose)
    result = trainer.fit()
    if result.error is not None:
        raise result.error


def trainable(data: TrialData, plan: TrialPlan):
    # The ObjectRef travels inside TrialData so that with_parameters hands trials the reference,
    # not a copy of the arrays; Train workers then read the arrays from the object store. A
    # stream's Ray Dataset is a plan, not data: each trial's Train run executes it anew.
    return tune.with_resources(tune.with_parameters(run_trial, data=data, plan=plan), TRIAL_DRIVER_RESOURCES)
