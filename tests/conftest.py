"""Shared fixtures: the real datasets in ../shared/data, and a private local Ray instance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MNIST / CIFAR-10 copies (CNN_DATA_DIR, else ../shared/data beside the repo)."""
    folder = Path(os.environ.get("CNN_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (folder / "mnist.npz").is_file():
        pytest.fail(f"real datasets not found in {folder}; set CNN_DATA_DIR to the folder with mnist.npz")
    return folder


@pytest.fixture(scope="module")
def local_ray():
    """A fresh local Ray for this test module (address="local": never joins a stray cluster).

    It advertises one GPU that this machine does not have: Ray grants it (and sets
    CUDA_VISIBLE_DEVICES) to a worker that asks for it, and TensorFlow sees none, which is
    how a worker on a node with a broken CUDA set-up fails. Workers asking for no GPU are
    unaffected."""
    import os

    import ray

    from cnn_ray.local_ray import ONE_MACHINE_SETTINGS, init_local_ray

    # The cluster a person's sweep gets: their own overrides of the one-machine defaults left out.
    theirs = {key: os.environ.pop(key) for key in ONE_MACHINE_SETTINGS if key in os.environ}
    try:
        init_local_ray({"TF_CPP_MIN_LOG_LEVEL": "2"}, num_cpus=2, num_gpus=1, logging_level="WARNING")
    finally:
        os.environ.update(theirs)
    yield ray
    ray.shutdown()
