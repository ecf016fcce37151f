"""The GPU rules a CPU can show (cnn/devices.py): memory growth before the first op, exactly
the GPUs Ray granted, NCCL on GPUs and the ring on CPUs.

There is no GPU here. Where a rule needs a GPU to be visible, the test makes TensorFlow's
device listing report a fake one and records what the code asks of TensorFlow, in a fresh
process, so the order of calls is the one a real worker or report would make.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from cnn import devices
from sweep_checks import REPO

FAKE_GPU = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")

# Run in a fresh process: TensorFlow is imported but has run no op yet. Every GPU listing
# reports one fake GPU; the calls that configure GPUs are recorded with whether TensorFlow's
# devices were already initialised at that moment (after which they cannot change).
FAKE_GPU_PRELUDE = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    from cnn import devices

    GPU = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    calls = []
    real_list = tf.config.list_physical_devices

    def fake_list(device_type=None):
        return [GPU] if device_type == "GPU" else real_list(device_type)

    def record(name):
        def call(*args):
            calls.append({"call": name, "initialised": devices.devices_initialised()})
        return call

    tf.config.list_physical_devices = fake_list
    tf.config.experimental.set_memory_growth = record("set_memory_growth")
    tf.config.experimental.get_memory_growth = lambda device: False
    tf.config.set_visible_devices = record("set_visible_devices")

    def report(outcome):
        print("RESULT " + json.dumps({"calls": calls, "outcome": outcome,
                                      "growth_setting": os.environ.get(devices.MEMORY_GROWTH_SETTING)}))
""")


def run_with_fake_gpu(body: str, env: dict[str, str] | None = None) -> dict:
    script = FAKE_GPU_PRELUDE + textwrap.dedent(body)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    environment.pop(devices.MEMORY_GROWTH_SETTING, None)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_a_training_worker_enables_memory_growth_before_its_first_tensorflow_op():
    """The worker's real entry point, up to the moment it fetches the dataset (stopped there)."""
    result = run_with_fake_gpu("""
        import ray, ray.train
        from unittest import mock
        from cnn.config import TrainConfig
        from cnn_ray.trainer import train_loop_per_worker

        class Fetched(Exception):
            pass

        context = mock.Mock(get_world_rank=lambda: 0, get_world_size=lambda: 1)
        with mock.patch.object(ray.train, "get_context", return_value=context), \\
             mock.patch.object(ray, "get_gpu_ids", return_value=[0]), \\
             mock.patch.object(ray, "get_runtime_context"), \\
             mock.patch.object(ray, "get", side_effect=Fetched):
            try:
                train_loop_per_worker({"config": TrainConfig(), "data": None})
            except Fetched:
                report("stopped at the dataset fetch")
    """)
    assert result["outcome"] == "stopped at the dataset fetch"
    assert result["calls"] == [{"call": "set_memory_growth", "initialised": False}]
    assert result["growth_setting"] == "true"


def test_the_report_enables_memory_growth_before_it_loads_anything():
    result = run_with_fake_gpu("""
        from analysis import build_report
        try:
            build_report("/nonexistent/experiment")
        except (FileNotFoundError, ValueError) as error:
            report(type(error).__name__)
    """)
    assert result["calls"] == [{"call": "set_memory_growth", "initialised": False}]
    assert result["outcome"] in ("FileNotFoundError", "ValueError")


def test_memory_growth_asked_for_too_late_is_an_error_naming_the_fix():
    result = run_with_fake_gpu("""
        tf.constant(1.0) + 1.0  # an op: TensorFlow initialises its devices
        try:
            devices.enable_memory_growth()
        except RuntimeError as error:
            report(str(error))
    """)
    assert "before any TensorFlow op" in result["outcome"] and result["calls"] == []


def test_a_worker_granted_no_gpu_hides_the_gpus_of_its_node():
    """Ray leaves CUDA_VISIBLE_DEVICES alone for a worker granted no GPU, so a CPU trial on a
    GPU node would otherwise see, and make a replica on, every GPU of the node."""
    result = run_with_fake_gpu("""
        gpus = devices.use_granted_gpus([], where="rank 0")
        report(len(gpus))
    """)
    assert result["outcome"] == 0
    assert result["calls"] == [{"call": "set_visible_devices", "initialised": False}]


def test_a_worker_granted_a_gpu_it_cannot_see_fails_with_one_line():
    script = textwrap.dedent("""
        from cnn.devices import GpuNotVisibleError, use_granted_gpus
        try:
            use_granted_gpus(["7"], where="training worker rank 1 on node abc123 (host-a)")
        except GpuNotVisibleError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "7", "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 1, done.stdout + done.stderr[-2000:]
    assert "rank 1 on node abc123" in lines[0] and "CUDA_VISIBLE_DEVICES='7'" in lines[0]
    assert "sees 0 GPU(s)" in lines[0]


def test_replicas_talk_over_nccl_on_gpus_and_over_the_ring_on_cpus():
    implementation = tf.distribute.experimental.CommunicationImplementation
    assert devices.communication_options([FAKE_GPU]).implementation == implementation.NCCL
    assert devices.communication_options([FAKE_GPU, FAKE_GPU]).implementation == implementation.NCCL
    assert devices.communication_options([]).implementation == implementation.RING
    assert devices.communication_options([FAKE_GPU], "ring").implementation == implementation.RING
    assert devices.communication_options([FAKE_GPU], "nccl").implementation == implementation.NCCL
    assert devices.communication_options([], "nccl").implementation == implementation.RING, "NCCL needs GPUs"


@pytest.mark.parametrize("requested, on_gpu, expected", [(0, False, 1), (0, True, devices.GPU_STEPS_PER_EXECUTION),
                                                         (4, False, 4), (4, True, 4)])
def test_steps_per_execution_auto_is_one_on_cpus_and_more_on_gpus(requested, on_gpu, expected):
    assert devices.resolved_steps_per_execution(requested, on_gpu) == expected


def test_deterministic_training_repeats_bit_for_bit():
    """Two runs from one seed with op determinism on (process-wide, hence a fresh process)."""
    script = textwrap.dedent("""
        import hashlib, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np, tensorflow as tf
        from cnn.config import TrainConfig
        from cnn.devices import op_determinism_enabled
        from cnn.keras_compat import keras
        from cnn.model import build_model
        from cnn.pipeline import training_dataset

        tf.config.experimental.enable_op_determinism()
        rng = np.random.default_rng(0)
        x, y = rng.random((256, 28, 28, 1), dtype=np.float32), np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]
        config = TrainConfig(batch_size=64, deterministic=True, horizontal_flip=False)

        def weights_digest():
            keras.utils.set_random_seed(0)
            model = build_model(config, (28, 28, 1), 10)
            model.fit(training_dataset(x, y, config, 0), epochs=1, verbose=0)
            return hashlib.sha256(b"".join(w.numpy().tobytes() for w in model.trainable_weights)).hexdigest()

        print("RESULT", op_determinism_enabled(), weights_digest() == weights_digest())
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "RESULT True True" in done.stdout, done.stdout + done.stderr[-2000:]
