"""How one training run is laid out over replicas, and what that means for its batches and steps.

MultiWorkerMirroredStrategy makes one replica per GPU a worker sees (one per worker on
CPUs), so a run of W workers with G GPUs each trains W x G replicas in sync. The global
batch is split over the replicas, not the workers: with 2 GPUs per worker and the batch
split by worker count, each step would take twice the requested batch, every epoch would
run out of data half-way and a learning-rate schedule would end early. Everything here is
arithmetic on counts (no TensorFlow, no Ray), so the driver checks a request before
anything starts and the workers compute their shapes from the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnn.config import TrainConfig


@dataclass(frozen=True)
class ReplicaLayout:
    """`workers` processes, each driving `replicas_per_worker` replicas (its GPUs, or 1 on CPUs)."""

    workers: int = 1
    replicas_per_worker: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1 or self.replicas_per_worker < 1:
            raise ValueError(f"a run needs at least one worker and one replica per worker, got "
                             f"workers={self.workers}, replicas_per_worker={self.replicas_per_worker}")

    @property
    def replicas_in_sync(self) -> int:
        return self.workers * self.replicas_per_worker

    @classmethod
    def for_resources(cls, workers: int, gpus_per_worker: float) -> "ReplicaLayout":
        """The layout Ray's grant gives: each worker sees the GPUs it was granted (Ray sets
        CUDA_VISIBLE_DEVICES), so whole GPUs make that many replicas; a fraction or none, one."""
        return cls(workers, replicas_per_worker(gpus_per_worker))

    def per_replica_batch_size(self, global_batch_size: int) -> int:
        if global_batch_size % self.replicas_in_sync:
            raise ValueError(f"batch_size={global_batch_size} must be divisible by the {self.replicas_in_sync} "
                             f"replicas in sync ({self.describe()})")
        return global_batch_size // self.replicas_in_sync

    def steps_per_epoch(self, num_train: int, global_batch_size: int) -> int:
        """Optimizer steps per epoch. Every worker gets num_train // workers images and must run
        the same number of steps, each taking one per-replica batch for each of its replicas."""
        per_worker_step = self.per_replica_batch_size(global_batch_size) * self.replicas_per_worker
        steps = (num_train // self.workers) // per_worker_step
        if steps < 1:
            raise ValueError(f"batch_size={global_batch_size} is larger than the {num_train} training images "
                             f"split over {self.describe()}; lower batch_size or raise limit")
        return steps

    def describe(self) -> str:
        return (f"{self.workers} worker(s) x {self.replicas_per_worker} replica(s) each = "
                f"{self.replicas_in_sync} replica(s)")


@dataclass(frozen=True)
class WorkerResources:
    """How one training run is spread: N workers, each with these CPUs and GPUs (a replica per whole
    GPU). Checked here, once, wherever the values come from (jobs/train.py's flags, a sweep's settings)."""

    num_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"workers={self.num_workers} is out of range; allowed: >= 1")
        if not self.cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker={self.cpus_per_worker} is out of range; allowed: > 0")
        problem = gpu_request_problem(self.num_workers, self.gpus_per_worker)
        if problem:
            raise ValueError(problem)

    def layout(self) -> ReplicaLayout:
        return ReplicaLayout.for_resources(self.num_workers, self.gpus_per_worker)

    def per_worker(self) -> dict[str, float]:
        """Ray resources of one worker (no GPU key without GPUs)."""
        return {"CPU": self.cpus_per_worker, **({"GPU": self.gpus_per_worker} if self.gpus_per_worker else {})}

    def total(self) -> dict[str, float]:
        return {"CPU": self.num_workers * self.cpus_per_worker, "GPU": self.num_workers * self.gpus_per_worker}

    def check_batch(self, config: TrainConfig) -> None:
        """Raise ValueError if config's global batch does not split evenly over these replicas."""
        if not config.scale_with_workers:
            self.layout().per_replica_batch_size(config.batch_size)


def replicas_per_worker(gpus_per_worker: float) -> int:
    return int(gpus_per_worker) if gpus_per_worker >= 1 else 1


def gpu_request_problem(workers: int, gpus_per_worker: float) -> str | None:
    """Why a request for GPUs per worker cannot train correctly, or None if it can.

    A fraction of a GPU is allowed for one-worker trials: then several trials share a GPU,
    each in its own process with memory growth on, and nothing communicates across them.
    Two workers of one trial on a fraction each could be given the same GPU, where they gain
    nothing from time-slicing it and NCCL refuses two ranks on one device.
    """
    if gpus_per_worker < 0 or not math.isfinite(gpus_per_worker):
        return f"gpus_per_worker={gpus_per_worker!r} is out of range; allowed: >= 0"
    if gpus_per_worker > 1 and not float(gpus_per_worker).is_integer():
        return (f"gpus_per_worker={gpus_per_worker!r}: above 1 it must be a whole number (each worker "
                f"trains one replica per whole GPU it sees)")
    if 0 < gpus_per_worker < 1 and workers > 1:
        return (f"gpus_per_worker={gpus_per_worker!r} with {workers} workers per trial: two workers of one trial "
                f"could share a GPU, which gains nothing and which NCCL cannot run; use whole GPUs per worker, "
                f"or 1 worker per trial to let trials share a GPU")
    return None
