"""Build the Ray Train `TensorflowTrainer` that runs `train_loop_per_worker` on N workers."""

from __future__ import annotations

from dataclasses import dataclass

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.tensorflow import TensorflowTrainer

from cnn.config import TrainConfig
from cnn.replicas import ReplicaLayout, gpu_request_problem
from cnn_ray.worker_loop import train_loop_per_worker


@dataclass(frozen=True)
class WorkerResources:
    """How one training run is spread: N workers, each with these CPUs and GPUs (a replica per whole GPU)."""

    num_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"workers={self.num_workers} is out of range; allowed: >= 1")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker={self.cpus_per_worker} is out of range; allowed: > 0")
        problem = gpu_request_problem(self.num_workers, self.gpus_per_worker)
        if problem:
            raise ValueError(problem)

    def scaling_config(self) -> ScalingConfig:
        resources = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            resources["GPU"] = self.gpus_per_worker
        return ScalingConfig(num_workers=self.num_workers, use_gpu=self.gpus_per_worker > 0,
                             resources_per_worker=resources)

    def layout(self) -> ReplicaLayout:
        return ReplicaLayout.for_resources(self.num_workers, self.gpus_per_worker)

    def total(self) -> dict[str, float]:
        return {"CPU": self.num_workers * self.cpus_per_worker,
                "GPU": self.num_workers * self.gpus_per_worker}


def make_trainer(config: TrainConfig, data_ref: ray.ObjectRef, resources: WorkerResources,
                 storage_path: str, name: str, max_failures: int = 2,
                 callbacks: list | None = None) -> TensorflowTrainer:
    """A trainer whose run lives at storage_path/name; an existing run there is resumed."""
    return TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config.to_dict(), "data": data_ref},
        scaling_config=resources.scaling_config(),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            # Keep the best epoch by validation accuracy; Ray also always keeps the latest,
            # which is what a restarted worker group resumes from.
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_accuracy",
                                               checkpoint_score_order="max"),
            failure_config=FailureConfig(max_failures=max_failures),
            callbacks=callbacks,
        ),
    )
