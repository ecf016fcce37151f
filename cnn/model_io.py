"""What a checkpoint folder holds, and loading a trained model back from one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnn import device_augment  # noqa: F401  registers RandomAffine, which saved models may contain
from cnn.keras_compat import keras

MODEL_FILE = "model.keras"        # the model alone, for analysis and inference
RESUME_PREFIX = "resume/state"    # tf.train.Checkpoint of model + optimizer, for resuming
STATE_FILE = "state.json"         # epochs done, stop reason, metric history, config
WORKERS_DIR = "workers"           # one JSON per worker: node, host, weight fingerprint


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save in the native .keras (zip) format, from any thread.

    tf_keras 2.21 bug: saving_lib restores a thread-local "v3 saving enabled" flag to False
    after the first save in a thread other than the main one (Ray Train runs the training
    function in such a thread), so every later `model.save("x.keras")` silently writes HDF5.
    Setting the flag before each save keeps the format what the file name says.
    """
    from tf_keras.src.saving import saving_lib  # private, but the flag lives nowhere else

    saving_lib._SAVING_V3_ENABLED.value = True
    model.save(str(path))


def load_model(checkpoint_dir: str | Path) -> keras.Model:
    """The model saved in a checkpoint folder (compiled, with its optimizer)."""
    path = Path(checkpoint_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in checkpoint folder {checkpoint_dir}")
    return keras.models.load_model(path)


def load_state(checkpoint_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(checkpoint_dir) / STATE_FILE).read_text())


def load_worker_records(checkpoint_dir: str | Path) -> list[dict[str, Any]]:
    """One record per training worker, ordered by rank."""
    files = sorted((Path(checkpoint_dir) / WORKERS_DIR).glob("rank*.json"),
                   key=lambda p: int(p.stem.removeprefix("rank")))
    return [json.loads(p.read_text()) for p in files]
