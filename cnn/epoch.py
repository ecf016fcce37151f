"""One epoch of training, as every worker runs it: fit, evaluate, and the epoch's history row.

Ray-free: the training workers (cnn_ray/worker_loop.py), the tests and the benchmarks call the
same function, under whatever distribution strategy they built the model in.
"""

from __future__ import annotations

import math
import time
from typing import Any

import tensorflow as tf

from cnn.config import NO_TARGET, TrainConfig
from cnn.data import Dataset
from cnn.keras_compat import keras, layers
from cnn import epoch_end_stall
from cnn.model import learning_rate_at
from cnn.pipeline import BatchSource, streamed_training_dataset, training_dataset
from cnn.replicas import ReplicaLayout
from cnn.checkpoint_state import STOP_DIVERGED, STOP_MAX_EPOCHS, STOP_TARGET


def run_epoch(model: keras.Model, strategy: tf.distribute.Strategy, data: Dataset,
              config: TrainConfig, epoch: int, steps: int,
              val_set: tf.data.Dataset | None, test_set: tf.data.Dataset,
              stream: BatchSource | None = None) -> dict[str, Any]:
    """Train epoch `epoch` (0-based) on this worker's shard, then evaluate validation and test
    (sharded by the strategy); the epoch's history row. The model was built in `strategy`'s scope.
    The shard comes from `data`'s arrays, or from `stream` (the streaming loader) when given."""
    epoch_end_stall.install()  # the strategy's per-device pipelines without autotuning's wait

    def shard(context: tf.distribute.InputContext) -> tf.data.Dataset:
        layout = ReplicaLayout(context.num_input_pipelines,
                               context.num_replicas_in_sync // context.num_input_pipelines)
        if stream is not None:
            return streamed_training_dataset(stream, config, epoch, steps, layout, context.input_pipeline_id)
        return training_dataset(data.x_train, data.y_train, config, epoch, layout, context.input_pipeline_id)

    rate = learning_rate_at(config, steps, epoch * steps)  # the rate this epoch starts with
    fit_started_at, started = time.time(), time.perf_counter()
    history = model.fit(strategy.distribute_datasets_from_function(shard), epochs=epoch + 1,
                        initial_epoch=epoch, steps_per_epoch=steps, verbose=0)
    train_seconds = time.perf_counter() - started
    average_batch_norm_statistics(model)
    nan = float("nan")
    evaluated = time.perf_counter()
    val = model.evaluate(val_set, return_dict=True, verbose=0) if val_set else {"loss": nan, "accuracy": nan}
    val_seconds, evaluated = time.perf_counter() - evaluated, time.perf_counter()
    test = model.evaluate(test_set, return_dict=True, verbose=0)
    test_seconds = time.perf_counter() - evaluated
    return {
        "epoch": epoch + 1,
        "train_loss": float(history.history["loss"][-1]),
        "train_accuracy": float(history.history["accuracy"][-1]),
        "val_loss": float(val["loss"]), "val_accuracy": float(val["accuracy"]),
        "test_loss": float(test["loss"]), "test_accuracy": float(test["accuracy"]),
        "train_seconds": train_seconds,
        "epoch_seconds": time.perf_counter() - started,
        "val_seconds": val_seconds, "test_seconds": test_seconds,
        "images_per_second": steps * config.batch_size / train_seconds,
        "global_batch_size": config.batch_size, "learning_rate": rate,
        "fit_started_at": fit_started_at,  # wall clock, for launch-to-first-step figures
        # A stream's time inside Ray Data's iterator in this epoch (None from arrays): near
        # train_seconds, the training waited for its images; near 0, the stream kept ahead.
        "stream_wait_seconds": getattr(stream, "wait_seconds", None),
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


def stop_reason(metrics: dict[str, Any], config: TrainConfig) -> str:
    """Why training stops after this epoch's row, or "" to go on."""
    if not math.isfinite(metrics["train_loss"]):
        return STOP_DIVERGED
    if config.target_accuracy < NO_TARGET and metrics["train_accuracy"] >= config.target_accuracy:
        return STOP_TARGET
    if metrics["epoch"] >= config.epochs:
        return STOP_MAX_EPOCHS
    return ""
