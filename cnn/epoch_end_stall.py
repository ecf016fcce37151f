"""No tf.data autotuning thread in the input pipelines, so that an epoch does not end in a wait.

What happened (TF 2.21, measured here on CPUs; bench/epoch_end_stall.py): every epoch is its own
`model.fit` call under MultiWorkerMirroredStrategy, so every epoch creates a new input iterator
and destroys it when fit returns. The strategy feeds the model through a MultiDeviceIterator: the
worker's pipeline (cnn.pipeline) on the host, and one small pipeline per device (a generator
that takes the host's batches, then a prefetch). Each of these is a tf.data "root" iterator, and
with autotuning on (tf.data's default) each runs a model thread that sleeps between
optimisations for a period that doubles from 10 ms up to 60 s. Destroying the iterator waits
for that thread to end (gdb: `RootDataset::Iterator::~Iterator` joining the thread parked in
`Model::OptimizeLoop`), with the CPU idle: up to the current period, at most 60 s, at the end of
a random share of epochs. Seen here: 8-22 s after the last step of 3,200- and 6,400-image
epochs; full CIFAR-10 epochs of about 155 s where others took 105 s fit the same cause (not
measured on that run).

Why the thread does not wake at once (read in TensorFlow's C++ source, a recent copy: the
installed wheel holds only the binary; not reproduced in isolation): the destructor cancels the
iterator's CancellationManager, whose callback notifies the autotuner's condition variable, but
`StartCancelWithStatus` runs its callbacks before it marks itself cancelled, so the woken thread
can find `IsCancelled()` still false and go back to sleep for the rest of its period, with no
second notification to come. (An older `_create_device_dataset` turned autotuning off for the
per-device pipelines itself; that line is gone.)

The fix: no autotuning in either kind of root. The host pipelines say so in their options
(cnn.pipeline.without_autotune, with fixed parallelism and prefetch instead of AUTOTUNE). The
per-device pipelines are built inside TensorFlow (`multi_device_iterator_ops.
_create_device_dataset`) from a fresh dataset that inherits no options, so `install()` wraps that
private function to add the same options. It is a workaround pinned to the TensorFlow version in
constraints.txt; tests/test_epoch_end_stall.py fails if the function moves or the options do not
reach the device pipelines.

On GPUs (read, not run: there is no GPU here): the per-device pipelines there are placed on the
GPU; `OptionsDataset` has a GPU kernel registered in this TensorFlow build (as `PrefetchDataset`
and `GeneratorDataset` do), so the wrapped pipeline places as before, and the per-device prefetch
(one batch, copied to the GPU ahead of the step) is unchanged: only its autotuning thread is gone.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from tensorflow.python.data.ops import multi_device_iterator_ops

_INSTALLED_MARK = "_cnn_sweep_without_autotune"


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning (and so its model thread) off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def install() -> None:
    """Make the strategy's per-device input pipelines run without autotuning (see the module
    docstring). Idempotent; call before the first distributed dataset is iterated."""
    build = multi_device_iterator_ops._create_device_dataset
    if getattr(build, _INSTALLED_MARK, False):
        return

    def device_dataset_without_autotune(*args: Any, **kwargs: Any) -> tf.data.Dataset:
        return without_autotune(build(*args, **kwargs))

    setattr(device_dataset_without_autotune, _INSTALLED_MARK, True)
    device_dataset_without_autotune.__wrapped__ = build  # type: ignore[attr-defined]
    multi_device_iterator_ops._create_device_dataset = device_dataset_without_autotune


def installed() -> bool:
    """Whether install() has wrapped TensorFlow's per-device pipelines in this process."""
    return bool(getattr(multi_device_iterator_ops._create_device_dataset, _INSTALLED_MARK, False))
