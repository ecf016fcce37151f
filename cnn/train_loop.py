"""`train_loop_per_worker`: what every Ray Train worker runs, under MultiWorkerMirroredStrategy.

Each epoch: fit on this worker's shard, evaluate validation and test (sharded across
workers, aggregated by Keras), save a checkpoint, report. A restarted worker group resumes
from the latest checkpoint at the next epoch. Training stops early when training accuracy
reaches the target (the original study's callback) or the loss stops being finite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
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
from cnn.keras_compat import keras, layers
from cnn.model import build_model, learning_rate_at
from cnn.model_io import save_model, MODEL_FILE, RESUME_PREFIX, STATE_FILE, WORKERS_DIR
from cnn.pipeline import evaluation_dataset, training_dataset
from cnn.replicas import ReplicaLayout

STOP_TARGET = "target_accuracy"
STOP_DIVERGED = "diverged"
STOP_MAX_EPOCHS = "max_epochs"


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Entry point for `TensorflowTrainer`: loop_config holds "config" (a dict) and "data" (an ObjectRef)."""
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    # First, before any TensorFlow op: which GPUs this worker uses, with memory growth (cnn/devices.py).
    gpus = use_granted_gpus([str(i) for i in ray.get_gpu_ids()], where=_where(rank))
    data: Dataset = ray.get(loop_config["data"])  # read once by the driver, shared via the object store
    requested = TrainConfig.from_dict(loop_config["config"])
    if requested.deterministic:
        tf.config.experimental.enable_op_determinism()
    if requested.precision == "mixed_float16" and not gpus:
        logging.getLogger(__name__).warning("precision=mixed_float16 without a GPU: float16 on a CPU is "
                                            "many times slower than float32; use mixed_bfloat16 or float32")

    tf.get_logger().setLevel(logging.WARNING)  # one INFO line per all-reduce otherwise
    # Reads TF_CONFIG, which Ray sets; one replica per GPU this worker sees, or one on its CPU.
    communication = communication_options(gpus, requested.communication)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
    layout = ReplicaLayout(world_size, strategy.num_replicas_in_sync // world_size)
    config = requested.for_replicas(layout.replicas_in_sync).replace(
        steps_per_execution=resolved_steps_per_execution(requested.steps_per_execution, on_gpu=bool(gpus)))
    devices = {"gpus": [gpu.name for gpu in gpus], "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "communication": communication.implementation.name, "replicas_in_sync": layout.replicas_in_sync,
               "steps_per_execution": config.steps_per_execution,
               "op_determinism": op_determinism_enabled()}
    keras.utils.set_random_seed(config.seed)
    steps = layout.steps_per_epoch(len(data.x_train), config.batch_size)
    with strategy.scope():
        model = build_model(config, data.input_shape, data.num_classes, steps)
        model.optimizer.build(model.trainable_variables)  # slots exist now, so a restore fills them
    resume = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    state = _restore(resume)
    if state["stop_reason"] in (STOP_TARGET, STOP_DIVERGED):
        return  # a run that already ended for good, restarted by Ray: nothing left to do
    resumed = state.get("resumed_after_epochs", []) + ([state["epochs_done"]] if state["epochs_done"] else [])

    val_set = evaluation_dataset(data.x_val, data.y_val, config.batch_size) if len(data.x_val) else None
    test_set = evaluation_dataset(data.x_test, data.y_test, config.batch_size)

    for epoch in range(state["epochs_done"], config.epochs):
        metrics = _run_epoch(model, strategy, data, config, epoch, steps, val_set, test_set)
        metrics["stop_reason"] = _stop_reason(metrics, config)
        state = {"epochs_done": epoch + 1, "stop_reason": metrics["stop_reason"],
                 "history": state["history"] + [metrics], "config": config.to_dict(),
                 "resumed_after_epochs": resumed}
        _save_and_report(model, resume, state, metrics, rank, devices)
        if metrics["stop_reason"]:
            break


def _run_epoch(model: keras.Model, strategy: tf.distribute.Strategy, data: Dataset,
               config: TrainConfig, epoch: int, steps: int,
               val_set: tf.data.Dataset | None, test_set: tf.data.Dataset) -> dict[str, Any]:
    def shard(context: tf.distribute.InputContext) -> tf.data.Dataset:
        layout = ReplicaLayout(context.num_input_pipelines,
                               context.num_replicas_in_sync // context.num_input_pipelines)
        return training_dataset(data.x_train, data.y_train, config, epoch, layout, context.input_pipeline_id)

    rate = learning_rate_at(config, steps, epoch * steps)  # the rate this epoch starts with
    fit_started_at, started = time.time(), time.perf_counter()
    history = model.fit(strategy.distribute_datasets_from_function(shard), epochs=epoch + 1,
                        initial_epoch=epoch, steps_per_epoch=steps, verbose=0)
    train_seconds = time.perf_counter() - started
    average_batch_norm_statistics(model)
    nan = float("nan")
    val = model.evaluate(val_set, return_dict=True, verbose=0) if val_set else {"loss": nan, "accuracy": nan}
    test = model.evaluate(test_set, return_dict=True, verbose=0)
    return {
        "epoch": epoch + 1,
        "train_loss": float(history.history["loss"][-1]),
        "train_accuracy": float(history.history["accuracy"][-1]),
        "val_loss": float(val["loss"]), "val_accuracy": float(val["accuracy"]),
        "test_loss": float(test["loss"]), "test_accuracy": float(test["accuracy"]),
        "train_seconds": train_seconds,
        "epoch_seconds": time.perf_counter() - started,
        "images_per_second": steps * config.batch_size / train_seconds,
        "global_batch_size": config.batch_size, "learning_rate": rate,
        "fit_started_at": fit_started_at,  # wall clock, for launch-to-first-step figures
        "node_id": ray.get_runtime_context().get_node_id(),
    }


def average_batch_norm_statistics(model: keras.Model) -> None:
    """Give every worker the mean of the workers' BatchNorm moving statistics.

    BatchNorm here is not synchronised: each worker updates its moving mean and variance from
    its own shard. The saved model holds their mean (reading these ON_READ variables averages
    them), so without this each worker would evaluate its shard with different statistics than
    the model that is saved and reported. One small all-reduce per BN variable per epoch.
    """
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            for variable in (layer.moving_mean, layer.moving_variance):
                variable.assign(variable.read_value())


def _stop_reason(metrics: dict[str, Any], config: TrainConfig) -> str:
    if not math.isfinite(metrics["train_loss"]):
        return STOP_DIVERGED
    if metrics["train_accuracy"] >= config.target_accuracy:
        return STOP_TARGET
    if metrics["epoch"] >= config.epochs:
        return STOP_MAX_EPOCHS
    return ""


def _restore(resume: tf.train.Checkpoint) -> dict[str, Any]:
    """Load the latest reported checkpoint into the model and optimizer, if there is one."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return {"epochs_done": 0, "stop_reason": "", "history": []}
    with checkpoint.as_directory() as folder:
        resume.read(str(Path(folder) / RESUME_PREFIX)).assert_consumed()
        return json.loads((Path(folder) / STATE_FILE).read_text())


def _save_and_report(model: keras.Model, resume: tf.train.Checkpoint, state: dict[str, Any],
                     metrics: dict[str, Any], rank: int, devices: dict[str, Any]) -> None:
    """Every worker saves (reading synced BatchNorm statistics is a collective op, so all
    must take part); only rank 0's model files go into the checkpoint, beside one small
    JSON per worker, which Ray merges into one checkpoint folder."""
    folder = Path(tempfile.mkdtemp(prefix="cnn-ckpt-"))
    scratch = Path(tempfile.mkdtemp(prefix="cnn-scratch-"))
    try:
        model_dir = folder if rank == 0 else scratch
        resume.write(str(model_dir / RESUME_PREFIX))
        save_model(model, model_dir / MODEL_FILE)
        if rank == 0:
            (folder / STATE_FILE).write_text(json.dumps(state, indent=1))
        (folder / WORKERS_DIR).mkdir()
        record = {**_worker_record(model, rank), "devices": devices}
        (folder / WORKERS_DIR / f"rank{rank}.json").write_text(json.dumps(record))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(folder)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _where(rank: int) -> str:
    return f"training worker rank {rank} on node {ray.get_runtime_context().get_node_id()} ({socket.gethostname()})"


def _worker_record(model: keras.Model, rank: int) -> dict[str, Any]:
    """Where this worker ran, and a fingerprint of its weights (workers must agree); the caller adds
    the devices it trained on."""
    weights = [np.asarray(w) for w in model.trainable_weights]
    digest = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()
    return {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(), "pid": os.getpid(), "weights_sha256": digest,
            "weight_norms": [float(np.linalg.norm(w)) for w in weights]}
