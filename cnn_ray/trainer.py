"""Build the Ray Train trainer that runs the training loop (cnn_ray.worker_loop) on N workers.

This module and everything it imports stay free of TensorFlow: the trial drivers and Train
controllers that use it sit on the head node, one per running trial. Only the training
workers import TensorFlow, when `train_loop_per_worker` first runs in them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import ray
from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
# Private: the callback Ray Train always adds, whose helper actor only Ray Datasets need.
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from cnn.config import TrainConfig
from cnn.replicas import WorkerResources
from cnn_ray import tf_backend
from cnn_ray.streaming import STREAMED, Stream
from cnn_ray.tf_backend import TensorflowBackendConfig


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """What every Train worker runs: loop_config holds "config" (a TrainConfig), "data" (an ObjectRef),
    "stream" (a StreamSpec when the training images stream, else None) and, from a sweep,
    "trial_started_at" (when its trial driver started, for the start-up record)."""
    started_at, started = time.time(), time.perf_counter()
    from cnn_ray.worker_loop import run_worker  # TensorFlow: in the workers only (already imported by the backend)

    startup = {"trial_started_at": loop_config.get("trial_started_at"), "process_started_at": process_started_at(),
               **tf_backend.SETUP_TIMES, "started_at": started_at,
               "worker_loop_import_seconds": time.perf_counter() - started}
    run_worker(loop_config["config"], loop_config["data"], startup=startup, stream=loop_config.get("stream"))


def process_started_at() -> float | None:
    """When this process started (wall clock), from /proc; None where there is no /proc."""
    try:
        since_boot = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + since_boot / os.sysconf("SC_CLK_TCK")


def scaling_config(resources: WorkerResources) -> ScalingConfig:
    return ScalingConfig(num_workers=resources.num_workers, use_gpu=resources.gpus_per_worker > 0,
                         resources_per_worker=resources.per_worker())


class Trainer(DataParallelTrainer):
    """Ray's DataParallelTrainer, without the Ray Data helper actor when the run has no Ray Datasets.

    Ray Train 2.60 adds a DatasetsCallback to every run, and that callback starts a DatasetManager
    actor (a process of its own, which imports Ray Data) as each worker group starts, datasets or
    not. This project's runs take their arrays from the object store, so that process does
    nothing but cost about 3.5 CPU-seconds per trial, about 1 in 10 of what a trial's helper
    processes use (bench/README.md, "Third stop on issue 19"). A run given `datasets` keeps it.
    """

    def _create_default_callbacks(self) -> list:
        callbacks = super()._create_default_callbacks()
        if self.datasets:
            return callbacks
        return [callback for callback in callbacks if not isinstance(callback, DatasetsCallback)]


def make_trainer(config: TrainConfig, data_ref: ray.ObjectRef, resources: WorkerResources,
                 storage_path: str, name: str, max_failures: int = 2,
                 callbacks: list | None = None, trial_started_at: float | None = None,
                 stream: Stream | None = None, verbose: bool = True) -> Trainer:
    """A trainer whose run lives at storage_path/name; an existing run there is resumed.
    Ray's `TensorflowTrainer` is this trainer with Ray's TensorFlow backend (cnn_ray/tf_backend.py).
    With `stream`, the training images come from its Ray Dataset, split over the workers; `data_ref`
    then holds the validation and test images only. Without `verbose`, Ray Train's lines stay in its
    log files (`train/ray-train-sys-*.log` in Ray's log folder keeps them all): on the console, a
    worker's failure would print its whole traceback, and a restarted worker group or a trial that
    fails for good gets one line from the sweep's console (cnn_ray.console) instead."""
    return Trainer(
        train_loop_per_worker,
        train_loop_config={"config": config, "data": data_ref, "trial_started_at": trial_started_at,
                           "stream": stream.spec if stream else None},
        datasets={STREAMED: stream.dataset(config.seed)} if stream else None,
        dataset_config=DataConfig(datasets_to_split=[STREAMED]) if stream else None,
        backend_config=TensorflowBackendConfig(),
        scaling_config=scaling_config(resources),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            # Keep the best epoch by validation accuracy; Ray also always keeps the latest,
            # which is what a restarted worker group resumes from.
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_accuracy",
                                               checkpoint_score_order="max"),
            failure_config=FailureConfig(max_failures=max_failures),
            callbacks=callbacks,
            logging_config=LoggingConfig(log_level="INFO" if verbose else "CRITICAL"),
        ),
    )
