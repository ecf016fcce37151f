"""Which devices a process lets TensorFlow use, and how its replicas talk (no Ray here).

Rules a GPU run needs from its first line, since none of them can be changed once
TensorFlow has run an op and initialised its devices:

- **Memory growth.** By default TensorFlow maps nearly all of a GPU's memory the moment it
  initialises it, so a second process on the same GPU (two trials sharing it, or a report
  built on a GPU head node) fails with out-of-memory. Every process that may touch a GPU
  calls `enable_memory_growth` (or, in a training worker, `use_granted_gpus`) first.
- **Exactly the GPUs Ray granted.** Ray sets CUDA_VISIBLE_DEVICES for a worker that was
  granted GPUs, but since Ray 2.4x it leaves the variable alone for a worker granted none,
  which then sees every GPU of its node: MultiWorkerMirroredStrategy would make a replica on
  each of them. A worker granted none hides the GPUs; a worker granted some and seeing
  another number fails with one line instead of training on its CPU in silence.
- **NCCL on GPUs.** MultiWorkerMirroredStrategy's default (AUTO) resolves to TensorFlow's
  ring all-reduce over gRPC on the host in eager mode; only an explicit NCCL hint puts
  gradients on NCCL (NVLink, PCIe peer-to-peer, or the network without host copies).
"""

from __future__ import annotations

import os

import tensorflow as tf

MEMORY_GROWTH_SETTING = "TF_FORCE_GPU_ALLOW_GROWTH"  # read by TensorFlow when it initialises a GPU
GPU_STEPS_PER_EXECUTION = 16  # auto steps_per_execution on GPUs; on CPUs it is 1


class GpuNotVisibleError(RuntimeError):
    """Ray granted this worker GPUs that TensorFlow cannot see (or sees a different number)."""


def devices_initialised() -> bool:
    """Whether TensorFlow has initialised its devices in this process (after which they are fixed)."""
    from tensorflow.python.eager import context  # private, but the only place this state lives

    return context.context()._context_handle is not None


def enable_memory_growth() -> list[tf.config.PhysicalDevice]:
    """Let every visible GPU's memory grow as needed instead of mapping it all at start.

    Call before the first TensorFlow op. Returns the visible GPUs (none on a CPU machine).
    """
    os.environ.setdefault(MEMORY_GROWTH_SETTING, "true")  # also for child processes
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and devices_initialised() and not all(tf.config.experimental.get_memory_growth(g) for g in gpus):
        raise RuntimeError("TensorFlow initialised its GPUs before memory growth was enabled: call "
                           "cnn.devices.enable_memory_growth() before any TensorFlow op in this process")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return gpus


def use_granted_gpus(granted_ids: list[str], where: str) -> list[tf.config.PhysicalDevice]:
    """Make a training worker use exactly the GPUs Ray granted it, with memory growth.

    granted_ids: `ray.get_gpu_ids()` of this worker; where: which worker and node, for the error.
    Call before the first TensorFlow op. Returns the GPUs this worker trains on.
    """
    visible = tf.config.list_physical_devices("GPU")
    if not granted_ids:
        if visible:
            tf.config.set_visible_devices([], "GPU")  # a CPU worker on a GPU node trains on its CPUs only
        return []
    if len(visible) != len(granted_ids):
        cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise GpuNotVisibleError(
            f"{where} was granted GPU(s) {', '.join(map(str, granted_ids))} by Ray but TensorFlow sees "
            f"{len(visible)} GPU(s) (CUDA_VISIBLE_DEVICES={cuda!r}); check the node's NVIDIA driver and that "
            f"TensorFlow was installed with CUDA (pip install -c constraints.txt -e '.[gpu]')")
    return enable_memory_growth()


def communication_options(gpus: list[tf.config.PhysicalDevice],
                          requested: str = "auto") -> tf.distribute.experimental.CommunicationOptions:
    """requested "auto": NCCL all-reduce when the replicas are GPUs, TensorFlow's ring over gRPC
    when they are CPUs. "nccl" or "ring" force one; NCCL needs GPUs, so without them it is the ring."""
    implementation = tf.distribute.experimental.CommunicationImplementation
    nccl = bool(gpus) and requested in ("auto", "nccl")
    return tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.NCCL if nccl else implementation.RING)


def resolved_steps_per_execution(requested: int, on_gpu: bool) -> int:
    """`steps_per_execution` as trained: the requested value, or for 0 (auto) 1 on CPUs, where a
    step of this model takes a tenth of a second and per-step dispatch is noise, and
    GPU_STEPS_PER_EXECUTION on GPUs, where a step takes milliseconds and dispatch is a real share."""
    if requested:
        return requested
    return GPU_STEPS_PER_EXECUTION if on_gpu else 1


def op_determinism_enabled() -> bool:
    """Whether `tf.config.experimental.enable_op_determinism()` is in force in this process."""
    from tensorflow.python.framework import config  # the public API has no getter

    return config.is_op_determinism_enabled()
