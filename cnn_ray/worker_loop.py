"""What every Ray Train worker runs, under MultiWorkerMirroredStrategy (its entry point, free of
TensorFlow, is cnn_ray.trainer.train_loop_per_worker).

Each epoch: fit on this worker's shard, evaluate validation and test (sharded across
workers, aggregated by Keras), save a checkpoint, report. A restarted worker group resumes
from the latest checkpoint at the next epoch. Training stops early when training accuracy
reaches the target (the original study's callback) or the loss stops being finite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.train
import tensorflow as tf

from cnn.config import TrainConfig
from cnn.data import Dataset
from cnn.devices import (communication_options, op_determinism_enabled, resolved_steps_per_execution,
                         use_granted_gpus)
from cnn.epoch import run_epoch, stop_reason
from cnn.keras_compat import keras
from cnn.model import build_model
from cnn.checkpoint_state import MODEL_FILE, RESUME_PREFIX, WORKERS_DIR, CheckpointState
from cnn.model_io import save_model
from cnn.quiet_tensorflow import QUIET_SETTING
from cnn.pipeline import evaluation_dataset
from cnn.replicas import ReplicaLayout
from cnn_ray.streaming import ShardBatches, StreamSpec


def run_worker(requested: TrainConfig, data_ref: ray.ObjectRef, startup: dict[str, float] | None = None,
               stream: StreamSpec | None = None) -> None:
    """Train `requested` on this worker's shard of the dataset in `data_ref`, reporting every epoch.
    `startup` (the caller's start-up timings) is completed here and stored in every worker record.
    With `stream`, the training images come from Ray Data (cnn_ray/streaming.py) and `data_ref`
    holds the validation and test images."""
    startup = dict(startup or {})
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    # First, before any TensorFlow op: which GPUs this worker uses, with memory growth (cnn/devices.py).
    gpus = use_granted_gpus([str(i) for i in ray.get_gpu_ids()], where=_where(rank))
    phase = time.perf_counter()
    data: Dataset = ray.get(data_ref)  # read once by the driver, shared via the object store
    startup["data_fetch_seconds"], phase = time.perf_counter() - phase, time.perf_counter()
    if requested.deterministic:
        tf.config.experimental.enable_op_determinism()
    if requested.precision == "mixed_float16" and not gpus:
        logging.getLogger(__name__).warning("precision=mixed_float16 without a GPU: float16 on a CPU is "
                                            "many times slower than float32; use mixed_bfloat16 or float32")

    tf.get_logger().setLevel(logging.WARNING)  # one INFO line per all-reduce otherwise
    if os.environ.get(QUIET_SETTING) == "1":
        # Python's INFO lines, among them Ray Train's line per report: Ray 2.60 logs it under its
        # file's path, outside the "ray.train" logger that LoggingConfig sets (cnn_ray/trainer.py).
        logging.getLogger().setLevel(logging.WARNING)
    # Reads TF_CONFIG, which Ray sets; one replica per GPU this worker sees, or one on its CPU.
    communication = communication_options(gpus, requested.communication)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
    layout = ReplicaLayout(world_size, strategy.num_replicas_in_sync // world_size)
    startup["strategy_seconds"], phase = time.perf_counter() - phase, time.perf_counter()
    config = requested.for_replicas(layout.replicas_in_sync).replace(
        steps_per_execution=resolved_steps_per_execution(requested.steps_per_execution, on_gpu=bool(gpus)))
    devices = {"gpus": [gpu.name for gpu in gpus], "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "communication": communication.implementation.name, "replicas_in_sync": layout.replicas_in_sync,
               "steps_per_execution": config.steps_per_execution,
               "op_determinism": op_determinism_enabled()}
    keras.utils.set_random_seed(config.seed)
    train_images = stream.train_images if stream else len(data.x_train)
    steps = layout.steps_per_epoch(train_images, config.batch_size)
    batches = ShardBatches(stream) if stream else None
    with strategy.scope():
        model = build_model(config, data.input_shape, data.num_classes, steps)
        model.optimizer.build(model.trainable_variables)  # slots exist now, so a restore fills them
    resume = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    startup["model_build_seconds"], phase = time.perf_counter() - phase, time.perf_counter()
    state = _restore(resume)
    startup["restore_seconds"] = time.perf_counter() - phase
    if state.epochs_done and (state.ended_for_good or state.epochs_done >= config.epochs):
        # A run that had already ended, started again (a resumed sweep whose driver was killed before
        # Tune saved the trial as finished): nothing left to train, but Tune still needs the trial's
        # result, so its last epoch is reported again, without a new checkpoint.
        ray.train.report(_reported(state, state.history[-1]))
        return
    state = state.resumed()

    val_set = evaluation_dataset(data.x_val, data.y_val, config.batch_size, layout.workers) if len(data.x_val) else None
    test_set = evaluation_dataset(data.x_test, data.y_test, config.batch_size, layout.workers)

    for epoch in range(state.epochs_done, config.epochs):
        try:
            metrics = {**run_epoch(model, strategy, data, config, epoch, steps, val_set, test_set, batches),
                       "node_id": ray.get_runtime_context().get_node_id()}
        except tf.errors.OpError:
            if batches is not None:
                batches.raise_bad_file()  # a streamed file that cannot be read: one line naming it
            raise
        metrics["stop_reason"] = stop_reason(metrics, config)
        state = state.after_epoch(metrics, config.to_dict())
        _save_and_report(model, resume, state, metrics, rank, {"devices": devices, "startup": startup})
        if metrics["stop_reason"]:
            break


def _restore(resume: tf.train.Checkpoint) -> CheckpointState:
    """Load the latest reported checkpoint into the model and optimizer, if there is one."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return CheckpointState()
    with checkpoint.as_directory() as folder:
        resume.read(str(Path(folder) / RESUME_PREFIX)).assert_consumed()
        return CheckpointState.read(folder)


def _save_and_report(model: keras.Model, resume: tf.train.Checkpoint, state: CheckpointState,
                     metrics: dict[str, Any], rank: int, run_record: dict[str, Any]) -> None:
    """Every worker saves (reading synced BatchNorm statistics is a collective op, so all
    must take part); only rank 0's model files go into the checkpoint, beside one small
    JSON per worker, which Ray merges into one checkpoint folder."""
    folder = Path(tempfile.mkdtemp(prefix="cnn-ckpt-"))
    scratch = Path(tempfile.mkdtemp(prefix="cnn-scratch-"))
    try:
        model_dir = folder if rank == 0 else scratch
        writing = time.perf_counter()
        resume.write(str(model_dir / RESUME_PREFIX))
        save_model(model, model_dir / MODEL_FILE)
        if rank == 0:
            state.write(folder)
        (folder / WORKERS_DIR).mkdir()
        record = {**_worker_record(model, rank), **run_record,
                  "checkpoint_write_seconds": time.perf_counter() - writing}  # before Ray uploads it
        (folder / WORKERS_DIR / f"rank{rank}.json").write_text(json.dumps(record))
        ray.train.report(_reported(state, metrics), checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _reported(state: CheckpointState, metrics: dict[str, Any]) -> dict[str, Any]:
    """An epoch's metrics as reported to Ray Train (and through it to Tune). The best validation
    accuracy so far rides along, so that the last report of a trial carries it (TensorBoard's
    HParams view shows a trial's last metrics; the leaderboard ranks by best); first, so that it is
    the first metric column there. How often the run resumed from a checkpoint, and after which
    epoch last, come last: the sweep's console says so (cnn_ray.console)."""
    resumed = state.resumed_after_epochs
    return {"best_val_accuracy": state.best_val_accuracy, **metrics,
            "resumes": len(resumed), "resumed_after_epoch": resumed[-1] if resumed else 0}


def _where(rank: int) -> str:
    return f"training worker rank {rank} on node {ray.get_runtime_context().get_node_id()} ({socket.gethostname()})"


def _worker_record(model: keras.Model, rank: int) -> dict[str, Any]:
    """Where this worker ran, and a fingerprint of its weights (workers must agree); the caller adds
    the devices it trained on and its timings."""
    weights = [np.asarray(w) for w in model.trainable_weights]
    digest = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()
    return {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(), "pid": os.getpid(), "weights_sha256": digest,
            "weight_norms": [float(np.linalg.norm(w)) for w in weights]}
