"""tf.data input pipelines: a shuffled, sharded, augmented training stream and plain eval sets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import tensorflow as tf

from cnn.augment import SEED_STRIDE, augment_batch
from cnn.config import TrainConfig
from cnn.epoch_end_stall import without_autotune
from cnn.replicas import ReplicaLayout

# Fixed, not tf.data.AUTOTUNE: autotuning's thread made epochs end in a wait of up to 60 s
# (cnn/epoch_end_stall.py). Batches scaled and augmented at once (each call is a whole batch; the
# cap bounds the memory in flight on many-core nodes), and batches made ready ahead of the step.
PARALLEL_BATCHES = max(1, min(4, os.cpu_count() or 1))
PREFETCH_BATCHES = 2


def unit_float(images: tf.Tensor) -> tf.Tensor:
    """A batch as the model takes it: float32 in [0, 1]. The dataset keeps uint8 (cnn.data.Dataset),
    so the scaling happens here, batch by batch, and never holds a float32 copy of the whole set."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def epoch_seed(config: TrainConfig, epoch: int) -> int:
    """A seed per (run seed, epoch): a resumed run replays exactly the epochs it missed."""
    return config.seed * SEED_STRIDE + epoch


def training_dataset(x: np.ndarray, y: np.ndarray, config: TrainConfig, epoch: int,
                     layout: ReplicaLayout = ReplicaLayout(), worker_index: int = 0) -> tf.data.Dataset:
    """One epoch of this worker's shard: shuffled globally, batched per replica, augmented, prefetched.

    The permutation is the same on every worker (same seed), and each worker takes every
    `layout.workers`-th image of it, so shards are disjoint and each image is augmented once.
    The stream yields per-replica batches, `replicas_per_worker` of them per step (the strategy
    hands consecutive batches to this worker's GPUs), for exactly `steps_per_epoch` steps.
    """
    seed = epoch_seed(config, epoch)
    order = np.random.default_rng(seed).permutation(len(x))[worker_index::layout.workers]
    batch = layout.per_replica_batch_size(config.batch_size)
    steps = layout.steps_per_epoch(len(x), config.batch_size)
    order = order[: steps * layout.replicas_per_worker * batch]
    dataset = tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch, drop_remainder=True)
    return _scaled_and_augmented(dataset, seed * layout.workers + worker_index, config)


class BatchSource(Protocol):
    """A worker's stream of training batches read by something else (cnn_ray/streaming.py: Ray Data)."""

    image_shape: tuple[int, int, int]
    num_classes: int

    def batches(self, seed: int, batch_size: int, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """`count` batches of (uint8 images (batch_size, H, W, C), int64 class indices), shuffled by `seed`."""
        ...


def streamed_training_dataset(source: BatchSource, config: TrainConfig, epoch: int, steps: int,
                              layout: ReplicaLayout = ReplicaLayout(), worker_index: int = 0) -> tf.data.Dataset:
    """One epoch of this worker's streamed shard, as training_dataset gives it from arrays: per-replica
    batches, `steps` steps, scaled and augmented with the same seeds. The batches come from `source`
    in its own order (shuffled with this epoch's seed, but not the arrays' permutation)."""
    seed = epoch_seed(config, epoch)
    batch = layout.per_replica_batch_size(config.batch_size)
    count = steps * layout.replicas_per_worker
    stream_seed = seed * layout.workers + worker_index
    signature = (tf.TensorSpec((batch, *source.image_shape), tf.uint8), tf.TensorSpec((batch,), tf.int64))
    dataset = tf.data.Dataset.from_generator(lambda: source.batches(stream_seed, batch, count),
                                             output_signature=signature)
    dataset = dataset.map(lambda images, labels: (images, tf.one_hot(labels, source.num_classes)))
    return _scaled_and_augmented(dataset, stream_seed, config)


def _scaled_and_augmented(dataset: tf.data.Dataset, seed: int, config: TrainConfig) -> tf.data.Dataset:
    """Batches scaled to [0, 1] and, unless the model augments (augment_on_device), augmented with
    one stateless seed pair per batch drawn from `seed`; prefetched."""
    if config.augment and not config.augment_on_device:  # otherwise the model's first layer augments
        batch_seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip(dataset, batch_seeds).map(
            lambda images_labels, pair: (augment_batch(unit_float(images_labels[0]), pair, config),
                                         images_labels[1]),
            num_parallel_calls=PARALLEL_BATCHES)
    else:
        dataset = dataset.map(lambda images, labels: (unit_float(images), labels), num_parallel_calls=PARALLEL_BATCHES)
    return without_autotune(dataset.prefetch(PREFETCH_BATCHES))


# Evaluation batches: evaluation keeps no activations for a gradient, so bigger batches cost the
# same per image and far less per step (fewer steps for Keras to dispatch); the metrics are the
# same, whatever the batch (BatchNorm uses its moving statistics in inference).
EVALUATION_BATCH_SIZE = 256


def evaluation_batch_size(training_batch: int, images: int, workers: int = 1) -> int:
    """The batch for evaluating `images` on `workers`: at least the training batch, at most
    EVALUATION_BATCH_SIZE, and at most images // workers, so that however the strategy splits
    the set over the workers none is left without images."""
    return max(training_batch, min(EVALUATION_BATCH_SIZE, images // max(1, workers)))


def evaluation_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, workers: int = 1) -> tf.data.Dataset:
    """Unaugmented, in order, in evaluation batches (`batch_size` is the training batch). Under a
    distribution strategy Keras splits it over the `workers` and their replicas."""
    # Cached: the same batches every epoch, built once (the arrays are already in memory), kept
    # as compact as the arrays and scaled after the cache.
    batch = evaluation_batch_size(batch_size, len(x), workers)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().map(
        lambda images, labels: (unit_float(images), labels), num_parallel_calls=PARALLEL_BATCHES)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return without_autotune(dataset.with_options(options).prefetch(PREFETCH_BATCHES))
