"""The streaming loader: Ray Data reads an image folder's training images and streams every Train
worker its shard, so that no process holds the training set and the driver never reads it.

- A `FolderReader` actor (no CPU; it lives as long as the job holds it) lists the folder, checks it,
  decodes the validation and test images (small, kept in the object store as the in-memory loader
  keeps them; for a folder that does not stream, all of it) and builds the training
  `ray.data.Dataset`: the in-memory loader's training files (the same list, in the same order) as
  rows of (path, label) in groups of SHUFFLE_GROUP_FILES, which each trial's Train run decodes a
  few hundred files per Ray Data task with the in-memory loader's own `decode`
  (cnn.image_folder), into one uint8 array: whole blocks, not a block per file as
  `ray.data.read_images` builds them, which cost several times the CPU a file's decoding does
  (bench/stream_decoding.py). The listing happens in the reader, not in the driver, whose memory
  does not grow with the folder; the file list stays in the object store, owned by the reader.
- Ray Train splits that dataset over the trial's workers (`streaming_split`, equal shares); each
  epoch takes the groups of files in a new order (seeded by the trial's seed and the epoch's number
  in this run: a resumed or restarted run starts that count again), so a decoding task's few
  hundred files differ from epoch to epoch, and each worker reads its shard through
  `ShardBatches`, shuffled in a local buffer seeded by the epoch; its tf.data pipeline scales and
  augments as for arrays (cnn.pipeline). What stays together: the files of one group.
- Ray Data's decoding tasks ask for no CPU: a trial's workers hold the CPUs Tune gave it, and Ray
  Data never runs inside a trial's placement group, so tasks that asked for a CPU would wait for
  ever on a full cluster. They share the workers' cores instead, at most READ_CONCURRENCY at a time
  per trial, decoding at a lower priority (Linux) so that they take the time the training leaves.

What is not replayed: Ray Data hands blocks to the workers in the order they are decoded, so which
images a worker sees in an epoch, and in what order, is not fixed by the seed. A resumed run
continues at the next epoch with that epoch's seeds for shuffling and augmentation.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from cnn.config import TrainConfig
from cnn.data import Dataset, DataSummary, folder_dataset, folder_evaluation_sets
from cnn.image_folder import ImageFiles, ImageFolderError, decode, list_image_files, training_and_validation
from cnn.npz_shards import check_streamable, read_rows

STREAMED = "train"  # the Ray Dataset's name for Ray Train (get_dataset_shard)
READ_CONCURRENCY = 2  # decoding tasks at a time, per trial
DECODE_NICENESS = 10  # how much lower than the training's the decoding threads' priority is (Linux)
BLOCK_MB = 32  # a decoding task's output, decoded (one byte a pixel)
BLOCK_FILES = (16, 512)  # the fewest and most files a decoding task decodes
SHUFFLE_GROUP_FILES = 64  # files that stay together when an epoch reorders them (see Stream.dataset)
SHUFFLE_BUFFER_IMAGES = 2048  # each worker's local shuffle buffer (images)
MB = 2**20
_ENDED = object()  # what next() gives at the end of a shard's batches


@dataclass(frozen=True)
class StreamSpec:
    """What a training worker needs to turn Ray Data's rows into batches."""

    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    train_images: int  # split over the workers in equal shares


@dataclass(frozen=True)
class Stream:
    """A streamed training set: the spec for the workers, and the files as a Ray Dataset of small
    groups of (path, label) rows, to be decoded in the order a trial's seed gives them."""

    spec: StreamSpec
    files: Any  # ray.data.Dataset of {"path", "label"} rows, SHUFFLE_GROUP_FILES a block
    decoder: DecodeFiles

    def dataset(self, seed: int) -> Any:
        """What a trial seeded `seed` trains on: every epoch (every execution of the plan), the
        groups of files in a new order, seeded by `seed` and the epoch's number in this run, decoded
        block_files at a time by Ray Data tasks asking for no CPU."""
        import ray.data

        order = ray.data.RandomSeedConfig(seed=int(seed), reseed_after_execution=True)
        return self.files.randomize_block_order(seed=order).map_batches(
            self.decoder, batch_size=block_files(self.decoder.image_shape), batch_format="numpy", num_cpus=0,
            compute=ray.data.TaskPoolStrategy(size=READ_CONCURRENCY))


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
        if stream:
            check_streamable(self.files)
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
        """The training files (and, for the final model, the validation files) to stream."""
        import ray.data

        config, shape = self.config, self.shape
        train, validation = training_and_validation(self.files.train, config.limit, config.validation_fraction)
        files = train + (validation if with_validation else [])
        listed = ray.data.from_items([{"path": path, "label": label} for path, label in files],
                                     override_num_blocks=max(1, -(-len(files) // SHUFFLE_GROUP_FILES)))
        decoder = DecodeFiles(self.files.filesystem, config.image_size, config.color_mode, shape,
                              shard_places=self.files.shard_places)
        return Stream(StreamSpec(tuple(self.files.class_names), shape, len(files)), listed, decoder)


def block_files(image_shape: tuple[int, int, int]) -> int:
    """How many files one decoding task decodes: about BLOCK_MB of pixels, within BLOCK_FILES."""
    low, high = BLOCK_FILES
    return int(np.clip(BLOCK_MB * MB // int(np.prod(image_shape)), low, high))


@dataclass(frozen=True)
class DecodeFiles:
    """A Ray Data task's work: a block of files ({"path", "label"}) as {"image": uint8 (N, H, W, C),
    "label": int64}, decoded as the in-memory loader decodes them; an image whose size differs from
    the folder's (without --image-size) is an ImageFolderError naming it."""

    filesystem: Any  # pyarrow.fs.FileSystem: the folder's (small to send: the file list is not in it)
    image_size: tuple[int, int] | None
    color_mode: str
    image_shape: tuple[int, int, int]
    shard_places: dict[str, Any] | None = None  # rows of .npz shards, "<shard>#<row>": ImageFiles.shard_places

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # In a thread of its own at a lower priority: the task asked for no CPU and shares the
        # trial's cores, so it takes what the training leaves idle (and the worker process, which
        # Ray reuses for other tasks, keeps its priority).
        with ThreadPoolExecutor(1, initializer=lower_this_threads_priority) as thread:
            return thread.submit(self.decode, block).result()

    def decode(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        labels = np.asarray(block["label"], np.int64)
        if self.shard_places is not None:  # each shard opened once, only the block's rows read
            paths = [str(path) for path in block["path"]]
            images = read_rows(self.filesystem, paths, self.image_shape, self.image_size, self.color_mode,
                               self.shard_places)
            return {"image": images, "label": labels}
        images = np.empty((len(block["path"]), *self.image_shape), np.uint8)
        for i, path in enumerate(block["path"]):
            image = decode(self.filesystem, str(path), self.image_size, self.color_mode)
            if image.shape != self.image_shape:
                height, width, _ = self.image_shape
                raise ImageFolderError(f"{path}: a {image.shape[1]}x{image.shape[0]} image among images of "
                                       f"{width}x{height} (width x height); pass --image-size HEIGHT WIDTH "
                                       "to resize them all")
            images[i] = image
        return {"image": images, "label": labels}


def lower_this_threads_priority() -> None:
    """The calling thread runs DECODE_NICENESS below its process (Linux: a thread's own niceness;
    elsewhere nothing changes)."""
    if sys.platform == "linux":
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + DECODE_NICENESS)


class ShardBatches:
    """A worker's shard of the streamed training set as batches (cnn.pipeline.BatchSource)."""

    def __init__(self, spec: StreamSpec) -> None:
        import ray.train

        self.image_shape = spec.image_shape
        self.num_classes = len(spec.class_names)
        self._shard = ray.train.get_dataset_shard(STREAMED)
        self.failure: BaseException | None = None  # what stopped the stream, seen before TensorFlow wraps it
        self.wait_seconds = 0.0  # the last epoch's time inside Ray Data's iterator (cnn.epoch's stream_wait_seconds)

    def batches(self, seed: int, batch_size: int, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        rows = self._shard.iter_batches(batch_size=batch_size, batch_format="numpy", drop_last=True,
                                        local_shuffle_buffer_size=max(SHUFFLE_BUFFER_IMAGES, batch_size),
                                        local_shuffle_seed=seed)
        return exactly(self._watched((batch["image"], batch["label"]) for batch in rows), count)

    def _watched(self, batches: Iterator[Any]) -> Iterator[Any]:
        """The batches, timing each wait for the next one (Ray Data's reading and decoding behind it,
        and its local shuffle) into wait_seconds."""
        self.wait_seconds = 0.0
        try:
            while True:
                asked = time.perf_counter()
                batch = next(batches, _ENDED)
                self.wait_seconds += time.perf_counter() - asked
                if batch is _ENDED:
                    return
                yield batch
        except Exception as error:
            self.failure = error
            raise

    def raise_bad_file(self) -> None:
        """After the epoch failed: if a file stopped the stream (an ImageFolderError in a decoding
        task), raise that one line, rather than the traceback TensorFlow and Ray Data wrap it in."""
        bad_file = folder_error(self.failure)
        if bad_file is not None:
            raise ImageFolderError(str(bad_file)) from None


def folder_error(error: BaseException | None) -> ImageFolderError | None:
    """The ImageFolderError that `error` reports: itself, one of its causes, or, from a Ray Data task,
    the last line of the task's traceback that Ray's error carries (Ray sends a task's exception
    without its causes, so the text is all that reaches the worker)."""
    prefix = f"{ImageFolderError.__module__}.{ImageFolderError.__qualname__}: "
    seen = set()
    while error is not None and id(error) not in seen:
        if type(error) is ImageFolderError:  # not Ray's RayTaskError(ImageFolderError): its text is a traceback
            return error
        named = [line.split(prefix, 1)[1] for line in str(error).splitlines() if prefix in line]
        if named:
            return ImageFolderError(named[-1].strip())
        seen.add(id(error))
        cause = getattr(error, "cause", None)  # a RayTaskError's
        error = cause if isinstance(cause, BaseException) else (error.__cause__ or error.__context__)
    return None


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
