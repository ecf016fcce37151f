"""Ray Train's TensorFlow backend, importable without TensorFlow.

`ray.train.tensorflow.TensorflowConfig` lives in a package whose `__init__` imports TensorFlow,
and a trainer's backend config is unpickled by its Train controller: with Ray's own class every
trial driver and every controller (all on the head node) would map TensorFlow's libraries, about
750 MB each (README, "Layout"; bench/trial_memory.py measures it). This is the same backend: the controller
gathers the workers' addresses and each worker sets TF_CONFIG with Ray's own function, imported
there, in the worker, which imports TensorFlow anyway.
"""

from __future__ import annotations

import time

import ray
from ray._common.network_utils import build_address
from ray.train._internal.utils import get_address_and_port
from ray.train.backend import Backend, BackendConfig
# Private, but it is how Ray Train labels a run's framework in its state and dashboard.
from ray.train.v2._internal.util import TrainingFramework


class TensorflowBackendConfig(BackendConfig):
    """What `ray.train.tensorflow.TensorflowConfig()` configures, without importing TensorFlow."""

    @property
    def backend_cls(self):
        return _TensorflowBackend

    @property
    def framework(self):
        return TrainingFramework.TENSORFLOW


class _TensorflowBackend(Backend):
    def on_start(self, worker_group, backend_config: BackendConfig) -> None:
        addresses = worker_group.execute(_worker_address)
        ray.get([worker_group.execute_single_async(rank, _set_tf_config, worker_addresses=addresses, index=rank)
                 for rank in range(len(worker_group))])


def _worker_address() -> str:
    return build_address(*get_address_and_port())


# Filled in each training worker by _set_tf_config: when it ran and how long importing TensorFlow
# took there (Ray's module imports it), for the worker's start-up record (cnn_ray.trainer).
SETUP_TIMES: dict[str, float] = {}


def _set_tf_config(worker_addresses: list[str], index: int) -> None:
    """Runs in a training worker: Ray's own TF_CONFIG set-up (and TF_USE_LEGACY_KERAS=1)."""
    SETUP_TIMES["backend_setup_at"], started = time.time(), time.perf_counter()
    from cnn.quiet_tensorflow import import_tensorflow

    import_tensorflow()  # first here, without its start-up lines unless the job is --verbose
    from ray.train.tensorflow.config import _setup_tensorflow_environment

    SETUP_TIMES["tensorflow_import_seconds"] = time.perf_counter() - started
    _setup_tensorflow_environment(worker_addresses, index)
