"""tf.data input pipelines: a shuffled, sharded, augmented training stream and plain eval sets."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cnn.augment import augment_batch
from cnn.config import TrainConfig

AUTOTUNE = tf.data.AUTOTUNE


def epoch_seed(config: TrainConfig, epoch: int) -> int:
    """A seed per (run seed, epoch): a resumed run replays exactly the epochs it missed."""
    return config.seed * 1_000_003 + epoch


def steps_per_epoch(num_train: int, config: TrainConfig, num_shards: int) -> int:
    """Optimizer steps per epoch; every worker must run the same number (drop the remainder)."""
    per_shard_batch = per_worker_batch_size(config, num_shards)
    steps = (num_train // num_shards) // per_shard_batch
    if steps < 1:
        raise ValueError(f"batch_size={config.batch_size} is larger than the {num_train} training "
                         f"images split over {num_shards} worker(s); lower batch_size or raise limit")
    return steps


def per_worker_batch_size(config: TrainConfig, num_shards: int) -> int:
    if config.batch_size % num_shards:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the number of "
                         f"workers ({num_shards})")
    return config.batch_size // num_shards


def training_dataset(x: np.ndarray, y: np.ndarray, config: TrainConfig, epoch: int,
                     num_shards: int = 1, shard_index: int = 0) -> tf.data.Dataset:
    """One epoch of this worker's shard: shuffled globally, batched, augmented, prefetched.

    The permutation is the same on every worker (same seed), and each worker takes every
    num_shards-th image of it, so shards are disjoint and each image is augmented once.
    """
    seed = epoch_seed(config, epoch)
    order = np.random.default_rng(seed).permutation(len(x))[shard_index::num_shards]
    batch = per_worker_batch_size(config, num_shards)
    steps = steps_per_epoch(len(x), config, num_shards)
    order = order[: steps * batch]
    dataset = tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch, drop_remainder=True)
    if config.augment and not config.augment_on_device:  # otherwise the model's first layer augments
        batch_seeds = tf.data.Dataset.random(seed=seed * num_shards + shard_index).batch(2)
        dataset = tf.data.Dataset.zip(dataset, batch_seeds).map(
            lambda images_labels, pair: (augment_batch(images_labels[0], pair, config), images_labels[1]),
            num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def evaluation_dataset(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Unaugmented, in order. Under a distribution strategy Keras shards it by example."""
    # Cached: the same batches every epoch, built once (the arrays are already in memory).
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(AUTOTUNE)
