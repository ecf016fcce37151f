"""The streaming loader's pieces that need no cluster (tests/test_distributed.py trains through it)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import numpy as np
from PIL import Image

from cnn.config import TrainConfig
from cnn.image_folder import ImageFolderError, list_image_files, read_images, training_and_validation
from cnn_ray.streaming import (BLOCK_FILES, DECODE_NICENESS, DecodeFiles, block_files, decoded_mb, exactly, folder_error,
                              ShardBatches, streams)
from image_folders import write_class_folders


def test_exactly_hands_on_count_batches_and_the_last_only_after_the_source_ended():
    events = []

    def source(n):
        for i in range(n):
            events.append(f"read {i}")
            yield i
        events.append("ended")

    taken = []
    for batch in exactly(source(5), 3):
        taken.append(batch)
        events.append(f"handed {batch}")
    assert taken == [0, 1, 2]
    assert events.index("ended") < events.index("handed 2"), "the epoch must be read to its end first"
    assert list(exactly(source(3), 3)) == [0, 1, 2]


def test_exactly_refuses_a_short_shard():
    with pytest.raises(RuntimeError, match="gave 2 batches for an epoch of 3"):
        list(exactly(iter([0, 1]), 3))


def test_a_decoding_task_gives_the_in_memory_loaders_pixels_and_labels(tmp_path):
    folder = write_class_folders(tmp_path / "f", per_class=6, size=(16, 16))
    files = list_image_files(str(folder), 0.2)
    train, _ = training_and_validation(files.train, None, 0.25)
    block = {"path": np.array([path for path, _ in train]), "label": np.array([label for _, label in train])}
    for color_mode, image_size, shape in (("rgb", None, (16, 16, 3)), ("grayscale", (8, 12), (8, 12, 1))):
        decoded = DecodeFiles(files.filesystem, image_size, color_mode, shape)(block)
        images, labels = read_images(files, train, image_size, color_mode)
        assert decoded["image"].dtype == np.uint8 and decoded["image"].shape == (len(train), *shape)
        assert np.array_equal(decoded["image"], images) and np.array_equal(decoded["label"], labels)


def test_a_streamed_image_of_another_size_is_named(tmp_path):
    folder = write_class_folders(tmp_path / "f", per_class=2, size=(16, 16))
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(folder / "cross" / "big.png")
    paths = sorted(str(path) for path in folder.rglob("*.png"))
    files = list_image_files(str(folder), 0.2)
    with pytest.raises(ImageFolderError, match=r"big.png: a 12x20 image among images of 16x16 .*--image-size"):
        DecodeFiles(files.filesystem, None, "rgb", (16, 16, 3))({"path": np.array(paths), "label": np.zeros(len(paths))})


def test_a_decoding_task_takes_about_its_share_of_megabytes_in_whole_files():
    low, high = BLOCK_FILES
    assert block_files((32, 32, 3)) == high  # small images: as many as a task takes
    assert block_files((224, 224, 3)) == 32 * 2**20 // (224 * 224 * 3)
    assert block_files((4000, 3000, 3)) == low  # photos: never fewer than this


def test_auto_streams_only_above_the_size_the_person_sets(tmp_path):
    files = list_image_files(str(write_class_folders(tmp_path / "f", per_class=10, size=(16, 16))), 0.2)
    shape = (16, 16, 3)
    assert decoded_mb(files, TrainConfig(), shape) == pytest.approx(24 * 16 * 16 * 3 / 2**20)
    assert not streams(TrainConfig(), files, shape)  # default: above 4096 MB
    assert streams(TrainConfig(stream_above_mb=0.001), files, shape)
    assert streams(TrainConfig(data_loader="stream"), files, shape)
    assert not streams(TrainConfig(data_loader="memory", stream_above_mb=0.0), files, shape)


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own priority is Linux's")
def test_decoding_runs_in_a_lower_priority_thread_and_leaves_the_process_as_it_was(tmp_path):
    folder = write_class_folders(tmp_path / "f", per_class=2, size=(16, 16))
    files = list_image_files(str(folder), 0.2)
    seen = []

    class Watched(DecodeFiles):
        def decode(self, block):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().decode(block)

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    paths = [path for path, _ in files.train]
    decoded = Watched(files.filesystem, None, "rgb", (16, 16, 3))({"path": np.array(paths), "label": np.zeros(len(paths))})
    assert len(decoded["image"]) == len(paths)
    assert seen == [min(19, before + DECODE_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_a_bad_file_is_found_among_the_errors_ray_wraps_it_in():
    bad = ImageFolderError("/data/cat/a.png: not a JPEG or PNG image that can be read (OSError)")

    class TaskError(Exception):  # as ray.exceptions.RayTaskError keeps its cause
        def __init__(self, cause):
            super().__init__("task failed")
            self.cause = cause

    try:
        try:
            raise TaskError(bad)
        except TaskError as task_error:
            raise RuntimeError("UDF failed to process a data block") from task_error
    except RuntimeError as wrapped:
        assert folder_error(wrapped) is bad
    # What reaches a worker from a Ray Data task: the task's traceback as text, the cause not kept
    task_text = ("ray::SplitCoordinator.get() (pid=1)\nTraceback (most recent call last):\n  File \"x.py\"\n"
                 f"cnn.image_folder.ImageFolderError: {bad}\n\nThe above exception was the direct cause of "
                 "the following exception:\nray.exceptions.UserCodeException: UDF failed to process a data block.")
    assert str(folder_error(TaskError(RuntimeError(task_text)))) == str(bad)
    assert folder_error(RuntimeError("the network")) is None and folder_error(None) is None


def test_a_shard_times_each_wait_for_its_next_batch_and_starts_again_each_epoch():
    shard = ShardBatches.__new__(ShardBatches)  # without Ray Train's shard: only the timing is tested
    shard.failure, shard.wait_seconds = None, 7.0

    def slow_source():
        for i in range(3):
            time.sleep(0.05)
            yield i

    assert list(shard._watched(slow_source())) == [0, 1, 2]
    assert 0.15 <= shard.wait_seconds < 0.15 + 5.0  # the three sleeps, not the 7 s of an earlier epoch
