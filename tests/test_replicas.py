"""Batch split, steps per epoch and the learning-rate schedule follow the replicas in sync
(workers x GPUs per worker), not the worker count (cnn/replicas.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnn.config import TrainConfig
from cnn.replicas import ReplicaLayout, gpu_request_problem
from sweep_checks import REPO


@pytest.mark.parametrize("workers, gpus, replicas_per_worker", [(1, 0.0, 1), (2, 0.0, 1), (1, 0.5, 1), (2, 1.0, 1),
                                                                (2, 2.0, 2), (1, 8.0, 8)])
def test_the_layout_follows_the_gpus_ray_grants_each_worker(workers, gpus, replicas_per_worker):
    layout = ReplicaLayout.for_resources(workers, gpus)
    assert (layout.workers, layout.replicas_per_worker) == (workers, replicas_per_worker)
    assert layout.replicas_in_sync == workers * replicas_per_worker


def test_two_gpus_per_worker_split_the_global_batch_four_ways_and_keep_the_steps_of_one_gpu_each():
    one_gpu_each, two_gpus_each = ReplicaLayout(2, 1), ReplicaLayout(2, 2)
    assert one_gpu_each.per_replica_batch_size(128) == 64
    assert two_gpus_each.per_replica_batch_size(128) == 32, "the global batch stays 128 with 4 replicas"
    # Full CIFAR-10's 45,000 training images at a global batch of 128: the same steps per epoch
    # however the replicas are laid out (splitting by worker count instead would have fed each
    # 2-GPU worker 2 x 64 images a step and run out of data after 175 of 351 steps).
    assert {layout.steps_per_epoch(45_000, 128) for layout in
            (ReplicaLayout(), ReplicaLayout(2, 1), ReplicaLayout(2, 2), ReplicaLayout(1, 4))} == {351}


def test_a_worker_yields_one_per_replica_batch_per_replica_and_step():
    from cnn.pipeline import training_dataset

    x, y = np.zeros((1000, 8, 8, 1), np.float32), np.eye(10, dtype=np.float32)[np.arange(1000) % 10]
    config = TrainConfig(batch_size=64, augment=False)
    layout = ReplicaLayout(2, 2)
    steps = layout.steps_per_epoch(len(x), config.batch_size)
    for worker in range(2):
        sizes = [len(images) for images, _ in training_dataset(x, y, config, 0, layout, worker_index=worker)]
        assert sizes == [16] * (steps * 2), "2 replicas x 16 images per step on each of 2 workers = 64"


def test_the_schedule_spans_the_epochs_of_the_replica_layout():
    from cnn.model import COSINE_FLOOR, learning_rate_at

    config = TrainConfig(epochs=3, lr_schedule="cosine", learning_rate=1e-3)
    steps = ReplicaLayout(2, 2).steps_per_epoch(45_000, 128)
    assert learning_rate_at(config, steps, 0) == pytest.approx(1e-3)
    assert learning_rate_at(config, steps, 3 * steps) == pytest.approx(1e-3 * COSINE_FLOOR)
    assert learning_rate_at(config, steps, 3 * steps // 2) > 2 * learning_rate_at(config, steps, 3 * steps)


def test_scaling_with_workers_scales_with_replicas():
    per_replica = TrainConfig(batch_size=64, learning_rate=1e-3, scale_with_workers=True)
    trained = per_replica.for_replicas(ReplicaLayout(2, 2).replicas_in_sync)
    assert (trained.batch_size, trained.learning_rate) == (256, 4e-3)


def test_a_batch_that_does_not_split_over_the_replicas_names_both():
    with pytest.raises(ValueError, match="batch_size=100 must be divisible by the 8 replicas"):
        ReplicaLayout(2, 4).per_replica_batch_size(100)


@pytest.mark.parametrize("workers, gpus, words", [
    (2, 0.5, "two workers of one trial could share a GPU"),
    (4, 0.25, "two workers of one trial could share a GPU"),
    (1, 1.5, "whole number"),
    (1, -1.0, "out of range"),
])
def test_gpu_requests_that_cannot_train_correctly_are_refused(workers, gpus, words):
    assert words in gpu_request_problem(workers, gpus)


@pytest.mark.parametrize("workers, gpus", [(1, 0.0), (1, 0.5), (1, 1.0), (2, 1.0), (2, 2.0), (4, 0.0)])
def test_gpu_requests_that_train_correctly_pass(workers, gpus):
    assert gpu_request_problem(workers, gpus) is None


@pytest.mark.slow
def test_a_worker_with_two_replicas_trains_every_step_of_the_epoch_at_the_global_batch(data_dir):
    """A real MultiWorkerMirroredStrategy with two local replicas, as a worker with two GPUs has,
    here on two logical CPUs; the workers' own epoch function (cnn.epoch) trains it. Every step must take
    one per-replica batch per replica: all steps run and the schedule ends where it should."""
    script = textwrap.dedent(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MultiWorkerMirroredStrategy._from_local_devices(["/device:CPU:0", "/device:CPU:1"])
        from cnn.config import TrainConfig
        from cnn.data import load_dataset
        from cnn.epoch import run_epoch
        from cnn.model import build_model
        from cnn.pipeline import evaluation_dataset
        from cnn.replicas import ReplicaLayout

        data = load_dataset("mnist", data_dir={str(data_dir)!r}, limit=1100, test_limit=200)
        config = TrainConfig(dataset="mnist", limit=1100, epochs=2, batch_size=64, lr_schedule="cosine")
        layout = ReplicaLayout(1, strategy.num_replicas_in_sync)
        steps = layout.steps_per_epoch(len(data.x_train), config.batch_size)
        with strategy.scope():
            model = build_model(config, data.input_shape, data.num_classes, steps)
        val, test = (evaluation_dataset(x, y, 64) for x, y in ((data.x_val, data.y_val), (data.x_test, data.y_test)))
        rows = []
        for epoch in range(config.epochs):
            row = run_epoch(model, strategy, data, config, epoch, steps, val, test)
            rows.append({{"iterations": int(model.optimizer.iterations.numpy()), "rate": row["learning_rate"],
                          "train_accuracy": row["train_accuracy"]}})
        final_rate = float(model.optimizer.learning_rate.numpy())  # the rate of the last step taken
        print("RESULT " + json.dumps({{"replicas": strategy.num_replicas_in_sync, "steps": steps, "rows": rows,
                                       "final_rate": final_rate}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["replicas"] == 2
    assert result["steps"] == 990 // 64  # 990 training images after the validation split
    assert [row["iterations"] for row in result["rows"]] == [result["steps"], 2 * result["steps"]]
    assert result["rows"][0]["rate"] == pytest.approx(1e-3)
    from cnn.model import learning_rate_at

    last_step = 2 * result["steps"] - 1
    schedule = TrainConfig(epochs=2, lr_schedule="cosine", learning_rate=1e-3)
    assert result["final_rate"] == pytest.approx(learning_rate_at(schedule, result["steps"], last_step), rel=1e-4), \
        "the last step taken is the schedule's last step: it was not cut short"
    assert result["final_rate"] < 2e-5
    assert "ran out of data" not in done.stderr
