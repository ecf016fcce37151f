"""The input pipelines run without tf.data's autotuning thread, whose wait ended epochs late
(cnn/epoch_end_stall.py; the wait itself is measured by bench/epoch_end_stall.py, not here)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.data.ops import multi_device_iterator_ops

from cnn import epoch_end_stall
from cnn.config import TrainConfig
from cnn.pipeline import evaluation_dataset, streamed_training_dataset, training_dataset


class ZeroBatches:
    """A stream of `count` all-zero batches (cnn.pipeline.BatchSource)."""

    image_shape = (8, 8, 3)
    num_classes = 3

    def batches(self, seed: int, batch_size: int, count: int):
        for _ in range(count):
            yield np.zeros((batch_size, *self.image_shape), np.uint8), np.zeros(batch_size, np.int64)


def arrays(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
            np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)])


@pytest.mark.parametrize("augment", [True, False])
def test_every_host_pipeline_turns_autotuning_off(augment: bool) -> None:
    x, y = arrays()
    config = TrainConfig(batch_size=16, augment=augment)
    pipelines = [training_dataset(x, y, config, epoch=0),
                 streamed_training_dataset(ZeroBatches(), config, epoch=0, steps=2),
                 evaluation_dataset(x, y, 16)]
    for dataset in pipelines:
        assert dataset.options().autotune.enabled is False
    # The evaluation set keeps its sharding policy beside the new option.
    assert (pipelines[2].options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)


def per_device_pipelines(monkeypatch: pytest.MonkeyPatch, build) -> list[tf.data.Dataset]:
    """The per-device pipelines a one-device MirroredStrategy builds (through `build`) to feed
    training_dataset's first batch, checked to arrive whole."""
    built: list[tf.data.Dataset] = []

    def recording(*args, **kwargs):
        dataset = build(*args, **kwargs)
        built.append(dataset)
        return dataset

    monkeypatch.setattr(multi_device_iterator_ops, "_create_device_dataset", recording)
    x, y = arrays()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    distributed = strategy.distribute_datasets_from_function(
        lambda context: training_dataset(x, y, TrainConfig(batch_size=16), epoch=0))
    images, labels = next(iter(distributed))
    assert tuple(images.shape) == (16, 8, 8, 3) and tuple(labels.shape) == (16, 3)
    assert built, "the strategy built no per-device pipeline through _create_device_dataset"
    return built


def test_the_strategys_per_device_pipelines_run_without_autotuning(monkeypatch: pytest.MonkeyPatch) -> None:
    epoch_end_stall.install()
    epoch_end_stall.install()  # twice: wrapped once
    assert epoch_end_stall.installed()
    wrapped = multi_device_iterator_ops._create_device_dataset
    assert not getattr(wrapped.__wrapped__, epoch_end_stall._INSTALLED_MARK, False)
    built = per_device_pipelines(monkeypatch, wrapped)
    assert all(dataset.options().autotune.enabled is False for dataset in built)


def test_tensorflows_own_per_device_pipelines_inherit_no_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why install() is needed: the host pipeline's options do not reach the per-device ones."""
    epoch_end_stall.install()
    tensorflows = multi_device_iterator_ops._create_device_dataset.__wrapped__
    built = per_device_pipelines(monkeypatch, tensorflows)
    assert all(dataset.options().autotune.enabled is not False for dataset in built)
