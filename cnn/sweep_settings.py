"""What a sweep runs: its presets, search mode, scheduler and resources per trial (no Ray here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cnn.config import TrainConfig
from cnn.replicas import WorkerResources

SEARCH_MODES = ("random", "grid")
SCHEDULERS = ("asha", "fifo")
AUTO = "auto"


@dataclass(frozen=True)
class SweepSettings:
    """One sweep: the base training config, what varies, how trials are stopped and sized."""

    preset: str
    base: TrainConfig
    search: str = "random"          # random: sample num_samples configs; grid: every grid point
    num_samples: int = 16           # random search: trials, the L2 = 0 baseline included
    grid_l2: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2)  # grid: L2 on conv and dense kernels alike
    grid_augment_strength: tuple[float, ...] = (1.0,)    # grid: 0 = off, 1 = the original study's
    scheduler: str = "asha"
    grace_period: int = 2           # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 3       # ASHA: keep the top 1/reduction_factor at each rung
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | str = AUTO   # auto: 1 if the cluster has GPUs, else 0
    max_concurrent_trials: int | None = None  # None: as many as fit in the cluster at once
    search_seed: int = 0
    trial_max_failures: int = 1     # Tune retries of a whole trial
    worker_max_failures: int = 2    # Ray Train restarts of a trial's worker group

    def __post_init__(self) -> None:
        _check(self.search in SEARCH_MODES, "search", self.search, f"one of {', '.join(SEARCH_MODES)}")
        _check(self.scheduler in SCHEDULERS, "scheduler", self.scheduler, f"one of {', '.join(SCHEDULERS)}")
        _check(self.num_samples >= 1, "num_samples", self.num_samples, ">= 1")
        _check(self.gpus_per_worker == AUTO or isinstance(self.gpus_per_worker, (int, float)),
               "gpus_per_worker", self.gpus_per_worker, f">= 0 or {AUTO!r}")
        _check(1 <= self.grace_period <= self.base.epochs, "grace_period", self.grace_period,
               f"[1, epochs={self.base.epochs}]")
        _check(self.reduction_factor >= 2, "reduction_factor", self.reduction_factor, ">= 2")
        _check(self.max_concurrent_trials is None or self.max_concurrent_trials >= 1,
               "max_concurrent_trials", self.max_concurrent_trials, ">= 1")
        _check(all(v >= 0 for v in self.grid_l2) and len(self.grid_l2) > 0, "grid_l2", self.grid_l2,
               "one or more values >= 0")
        _check(all(0 <= v <= 2 for v in self.grid_augment_strength) and len(self.grid_augment_strength) > 0,
               "grid_augment_strength", self.grid_augment_strength, "one or more values in [0, 2]")
        self.resources_for(cluster_gpus=0.0).check_batch(self.base)  # the resource rules: cnn.replicas

    def resources_for(self, cluster_gpus: float) -> WorkerResources:
        """Each trial's workers on a cluster with this many GPUs: auto is 1 GPU per worker if it has
        any (so one replica per worker, as on CPUs), else none."""
        gpus = self.gpus_per_worker
        if gpus == AUTO:
            gpus = 1.0 if cluster_gpus >= 1 else 0.0
        return WorkerResources(self.workers_per_trial, self.cpus_per_worker, float(gpus))

    @property
    def tied_knobs(self) -> dict[str, str]:
        """Knobs that take another knob's sampled value: the grid is the original study's L2
        experiment, one strength on conv and dense kernels alike."""
        return {"l2_dense": "l2_conv"} if self.search == "grid" else {}

    def trial_config(self, sample: dict[str, Any]) -> TrainConfig:
        """The base config with one trial's sampled values applied (augment_strength scales the
        original study's augmentation ranges; every other key is a TrainConfig knob; tied knobs
        follow theirs)."""
        changes = {k: v for k, v in sample.items() if k != "augment_strength"}
        changes.update({knob: changes[source] for knob, source in self.tied_knobs.items() if source in changes})
        config = self.base.replace(**changes)
        return config.with_augment_strength(float(sample["augment_strength"])) if "augment_strength" in sample \
            else config

    def num_trials(self) -> int:
        return len(self.grid_l2) * len(self.grid_augment_strength) if self.search == "grid" else self.num_samples

    def describe_search(self) -> dict[str, str]:
        """The search space in words, for the printed plan and sweep.json."""
        if self.search == "grid":
            return {"l2_conv": f"grid {list(self.grid_l2)}", "l2_dense": "tied: the same value as l2_conv",
                    "augment_strength": f"grid {list(self.grid_augment_strength)}"}
        return {"l2_conv": "log-uniform [1e-6, 1e-2], plus a 0 baseline",
                "l2_dense": "log-uniform [1e-6, 1e-2], plus a 0 baseline",
                "dropout_conv": "uniform [0, 0.5]", "dropout_dense": "uniform [0, 0.6]",
                "augment_strength": "choice 0 (off), 0.5, 1 (original study), 1.5"}

    def replace(self, **changes: Any) -> "SweepSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "base": self.base.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SweepSettings":
        """The inverse of to_dict (as stored in sweep.json)."""
        values = dict(values)
        values["base"] = TrainConfig.from_dict(values["base"])
        for key in ("grid_l2", "grid_augment_strength"):
            values[key] = tuple(values[key])
        return cls(**values)


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is out of range; allowed: {allowed}")


PRESETS: dict[str, SweepSettings] = {
    # Short presets run only tens of steps per epoch, too few for BatchNorm's default momentum
    # (0.99) to move its moving statistics off their initial values: they use 0.9.
    # They train on MNIST, whose digits are not mirror-symmetric (a flipped 2 is no digit), so
    # augmentation there keeps rotation, shift, shear and zoom but not the horizontal flip.
    # The whole path in about a minute on 2 CPUs: two tiny trials, each on two workers.
    "smoke": SweepSettings(
        preset="smoke",
        base=TrainConfig(dataset="mnist", limit=1200, test_limit=500, epochs=2, batch_size=64, bn_momentum=0.9,
                         horizontal_flip=False),
        search="grid", grid_l2=(0.0, 1e-3), grid_augment_strength=(1.0,), grace_period=1,
        workers_per_trial=2, cpus_per_worker=0.5),
    # What `make sweep` runs on a 2-core laptop in under 15 minutes: the original study's L2
    # experiment (L2 alone at four strengths) crossed with augmentation off/on, MNIST subset.
    # FIFO, not ASHA: a study compares every grid point at equal epochs, and ASHA stopped all
    # the augmented trials at its first rung because augmentation converges more slowly.
    "local": SweepSettings(
        preset="local",
        base=TrainConfig(dataset="mnist", limit=4000, test_limit=2000, epochs=5, batch_size=64, bn_momentum=0.9,
                         horizontal_flip=False),
        search="grid", grid_l2=(0.0, 1e-4, 1e-3, 1e-2), grid_augment_strength=(0.0, 1.0),
        scheduler="fifo", grace_period=2, reduction_factor=2, workers_per_trial=1, cpus_per_worker=1.0),
    # The real sweep: full CIFAR-10, random search, ASHA, sized to the cluster. One worker per
    # trial, with one GPU when the cluster has GPUs: a 1.85M-parameter model fills a GPU at a batch
    # of 128 on its own, a second worker would halve each GPU's batch and add a 7.4 MB all-reduce
    # per step, and a sweep has many trials to run side by side (bench/README.md, "What a GPU
    # would give"). 2 CPUs feed the input pipeline (about 17,000 augmented images/s per core).
    # --workers-per-trial 2 (or more) makes each trial faster when trials must finish sooner.
    "full": SweepSettings(
        preset="full",
        base=TrainConfig(dataset="cifar10", epochs=30, batch_size=128),
        search="random", num_samples=32, grace_period=4, reduction_factor=3,
        workers_per_trial=1, cpus_per_worker=2.0),
}
