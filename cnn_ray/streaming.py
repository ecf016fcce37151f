"""The streaming loader: Ray Data reads an image folder's training images and streams every Train
worker its shard, so that no process holds the training set and the driver never reads it.

- A `FolderReader` actor (no CPU; it lives as long as the job holds it) lists the folder, checks it,
  decodes the validation and test images (small, kept in the object store as the in-memory loader
  keeps them; for a folder that does not stream, all of it) and builds the training `ray.data.Dataset`: `read_images` over the training folder
  with `TrainingFiles` as its filter, so that it trains on exactly the in-memory loader's files.
  The listing happens there, not in the driver, whose memory does not grow with the folder.
- Ray Train splits that dataset over the trial's workers (`streaming_split`, equal shares); each
  worker reads its shard every epoch through `ShardBatches`, shuffled in a local buffer seeded by
  the epoch, and its tf.data pipeline scales and augments as for arrays (cnn.pipeline).
- Ray Data's read tasks ask for no CPU: a trial's workers hold the CPUs Tune gave it, and Ray Data
  never runs inside a trial's placement group, so tasks that asked for a CPU would wait for ever on
  a full cluster. They share the workers' cores instead, at most READ_CONCURRENCY at a time per trial.

What is not replayed: Ray Data hands blocks to the workers in the order they are read, so which
images a worker sees in an epoch, and in what order, is not fixed by the seed. A resumed run
continues at the next epoch with that epoch's seeds for shuffling and augmentation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from cnn.config import TrainConfig
from cnn.data import Dataset, DataSummary, folder_dataset, folder_evaluation_sets
from cnn.image_folder import (IMAGE_EXTENSIONS, PIL_MODES, ImageFiles, TrainingFiles, list_image_files,
                              training_and_validation)

STREAMED = "train"  # the Ray Dataset's name for Ray Train (get_dataset_shard)
READ_CONCURRENCY = 2  # read tasks at a time, per trial
SHUFFLE_BUFFER_IMAGES = 2048  # each worker's local shuffle buffer (images)
MB = 2**20


@dataclass(frozen=True)
class StreamSpec:
    """What a training worker needs to turn Ray Data's rows into batches."""

    base: str  # the training folder as Ray Data names its files
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    train_images: int  # split over the workers in equal shares


@dataclass(frozen=True)
class Stream:
    """A streamed training set: the spec for the workers and the Ray Dataset to split among them."""

    spec: StreamSpec
    dataset: Any  # ray.data.Dataset


def decoded_mb(files: ImageFiles, config: TrainConfig, image_shape: tuple[int, int, int]) -> float:
    """The size the training images (the first `limit`) would take decoded, one byte a pixel."""
    return len(files.train[:config.limit]) * int(np.prod(image_shape)) / MB


def streams(config: TrainConfig, files: ImageFiles, image_shape: tuple[int, int, int]) -> bool:
    """Whether this image folder's training images stream (data_loader stream, or auto above the size)."""
    if config.data_loader == "auto":
        return decoded_mb(files, config, image_shape) > config.stream_above_mb
    return config.data_loader == "stream"


@ray.remote(num_cpus=0)
class FolderReader:
    """Reads an image folder for a job, on the cluster (see the module docstring). Its methods return
    objects the caller owns; the training Dataset's file lists stay with this actor, so the job keeps
    it alive while trials train."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def plan(self) -> tuple[DataSummary, bool]:
        """List and check the folder and decode what the workers will take from the object store:
        the validation and test images if the training images stream, else the whole dataset (so
        that a bad file is found now, as one ImageFolderError). (The dataset as the job describes
        it, whether its training images stream.) Called first."""
        config = self.config
        self.files = list_image_files(config.dataset, config.test_fraction)
        evaluation = folder_evaluation_sets(self.files, config)
        self.shape = evaluation.input_shape
        stream = streams(config, self.files, self.shape)
        self._arrays = evaluation if stream else folder_dataset(
            self.files, config.limit, config.test_limit, config.validation_fraction, config.image_size,
            config.color_mode)
        train, validation = training_and_validation(self.files.train, config.limit, config.validation_fraction)
        summary = DataSummary(evaluation.name, evaluation.source, list(self.files.class_names), self.shape,
                              len(train), len(validation), len(evaluation.x_test), "stream" if stream else "memory")
        return summary, stream

    def arrays(self) -> Dataset:
        """What plan() decoded, handed over once (the caller owns it in the object store; this actor
        keeps no copy)."""
        arrays, self._arrays = self._arrays, None
        return arrays

    def training_stream(self, with_validation: bool = False) -> Stream:
        """The training images (and, for the final model, the validation images) as a Ray Dataset."""
        import ray.data

        config, files, shape = self.config, self.files, self.shape
        picked = TrainingFiles(files.train_base, tuple(files.class_names),
                               None if files.test_folder else config.test_fraction, config.limit,
                               config.validation_fraction, with_validation)
        dataset = ray.data.read_images(
            files.train_base, filesystem=files.filesystem, size=config.image_size, mode=PIL_MODES[config.color_mode],
            include_paths=True, partition_filter=picked, file_extensions=list(IMAGE_EXTENSIONS),
            shuffle=ray.data.FileShuffleConfig(seed=config.seed), num_cpus=0, concurrency=READ_CONCURRENCY)
        train, validation = training_and_validation(files.train, config.limit, config.validation_fraction)
        count = len(train) + (len(validation) if with_validation else 0)
        return Stream(StreamSpec(files.train_base, tuple(files.class_names), shape, count), dataset)


class ShardBatches:
    """A worker's shard of the streamed training set as batches (cnn.pipeline.BatchSource)."""

    def __init__(self, spec: StreamSpec) -> None:
        import ray.train

        self.spec = spec
        self.image_shape = spec.image_shape
        self.num_classes = len(spec.class_names)
        self._index = {name: i for i, name in enumerate(spec.class_names)}
        self._shard = ray.train.get_dataset_shard(STREAMED)

    def batches(self, seed: int, batch_size: int, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        rows = self._shard.iter_batches(batch_size=batch_size, batch_format="numpy", drop_last=True,
                                        local_shuffle_buffer_size=max(SHUFFLE_BUFFER_IMAGES, batch_size),
                                        local_shuffle_seed=seed)
        return exactly(map(self._arrays, rows), count)

    def _arrays(self, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        images = rows["image"]
        for path, image in zip(rows["path"], images):  # without --image-size, Ray Data keeps each image's size
            if image.shape[:2] != self.image_shape[:2]:
                raise ValueError(f"{path}: a {image.shape[1]}x{image.shape[0]} image among images of "
                                 f"{self.image_shape[1]}x{self.image_shape[0]} (width x height); pass "
                                 "--image-size HEIGHT WIDTH to resize them all")
        images = np.stack(images) if images.dtype == object else images
        if images.ndim == 3:  # grayscale comes without a channel axis
            images = images[..., np.newaxis]
        labels = [self._index[class_folder(str(path), self.spec.base)] for path in rows["path"]]
        return images.astype(np.uint8, copy=False), np.asarray(labels, dtype=np.int64)


def class_folder(path: str, base: str) -> str:
    """The class folder a streamed file sits in: the first folder below the training folder."""
    return path[len(base):].lstrip("/").split("/", 1)[0]


def exactly(batches: Iterable[Any], count: int) -> Iterator[Any]:
    """The first `count` batches, reading the source to its end before the last of them is handed on:
    Ray Data's split iterator ends its epoch only when every worker has read all of its shard, and
    Keras stops pulling after its last step. Fewer than `count` batches is an error."""
    pending, seen = None, 0
    for batch in batches:
        if seen < count:
            if pending is not None:
                yield pending
            pending = batch
        seen += 1
    if seen < count:
        raise RuntimeError(f"the streamed shard gave {seen} batches for an epoch of {count}: the folder changed "
                           "while training, or its files could not all be read")
    if pending is not None:
        yield pending
