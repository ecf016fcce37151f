"""The streaming loader's pieces that need no cluster (tests/test_distributed.py trains through it)."""

from __future__ import annotations

import pytest

from cnn.config import TrainConfig
from cnn.image_folder import list_image_files
from cnn_ray.streaming import class_folder, decoded_mb, exactly, streams
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


def test_class_folder_is_the_first_folder_below_the_training_folder():
    assert class_folder("/data/photos/train/cat/2024/a.jpg", "/data/photos/train") == "cat"
    assert class_folder("bucket/photos/dog/b.png", "bucket/photos") == "dog"


def test_auto_streams_only_above_the_size_the_person_sets(tmp_path):
    files = list_image_files(str(write_class_folders(tmp_path / "f", per_class=10, size=(16, 16))), 0.2)
    shape = (16, 16, 3)
    assert decoded_mb(files, TrainConfig(), shape) == pytest.approx(24 * 16 * 16 * 3 / 2**20)
    assert not streams(TrainConfig(), files, shape)  # default: above 4096 MB
    assert streams(TrainConfig(stream_above_mb=0.001), files, shape)
    assert streams(TrainConfig(data_loader="stream"), files, shape)
    assert not streams(TrainConfig(data_loader="memory", stream_above_mb=0.0), files, shape)
