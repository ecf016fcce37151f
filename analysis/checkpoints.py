"""Trained models and test images for the model-based sections, each loaded once.

A checkpoint path in trials.csv is where the sweep wrote it. An experiment folder that was
copied or moved elsewhere still holds its checkpoints under train_runs/, so that copy is
preferred; the stored path is the fallback. A checkpoint that cannot be found or loaded is
recorded with the reason, for the report to show instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnn.config import TrainConfig
from cnn.data import Dataset, DataError, load_for
from cnn.model_io import MODEL_FILE
from cnn.sweep_results import TRAIN_RUNS_DIR

from analysis import storage
from analysis.results import Experiment



@dataclass
class LoadedModel:
    trial_id: str
    checkpoint: str          # where it was (or would have been) loaded from
    model: Any | None        # a tf_keras model, or None with `error` saying why
    error: str = ""


def resolve_checkpoint(experiment: str, stored: str) -> str | None:
    """The checkpoint folder to load: the experiment's own copy if there is one, else the stored path."""
    if not stored:
        return None
    marker = f"/{TRAIN_RUNS_DIR}/"
    candidates = []
    if marker in stored:
        candidates.append(f"{experiment}/{TRAIN_RUNS_DIR}/{stored.split(marker, 1)[1]}")
    candidates.append(stored)
    for candidate in candidates:
        if storage.exists(f"{candidate}/{MODEL_FILE}"):
            return candidate
    return None


def load_models(experiment: Experiment, trial_ids: list[str], scratch: Path) -> dict[str, LoadedModel]:
    """Each requested trial's best checkpoint, loaded once; failures are kept with their reason."""
    from cnn.model_io import load_model  # TensorFlow is imported only when a model is needed

    rows = experiment.trials.drop_duplicates("trial_id").set_index("trial_id", drop=False)
    loaded: dict[str, LoadedModel] = {}
    for trial_id in dict.fromkeys(trial_ids):
        stored = str(rows.loc[trial_id, "best_checkpoint"]) if trial_id in rows.index else ""
        folder = resolve_checkpoint(experiment.location, stored)
        if folder is None:
            reason = ("trials.csv records no checkpoint for this trial" if not stored
                      else f"no {MODEL_FILE} at {stored} or in this experiment's {TRAIN_RUNS_DIR}/")
            loaded[trial_id] = LoadedModel(trial_id, stored, None, reason)
            continue
        try:
            local = storage.local_file(f"{folder}/{MODEL_FILE}", scratch).parent
            loaded[trial_id] = LoadedModel(trial_id, folder, load_model(local))
        except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is reported, not fatal
            loaded[trial_id] = LoadedModel(trial_id, folder, None,
                                           f"could not load {folder}/{MODEL_FILE}: {type(error).__name__}: "
                                           f"{_first_line(error)}")
    return loaded


def kernel_weights(model: Any) -> dict[str, np.ndarray]:
    """The kernels L2 acts on (conv and dense), by layer name, in model order."""
    return {layer.name: np.asarray(layer.kernel.numpy()) for layer in model.layers
            if hasattr(layer, "kernel") and layer.kernel is not None}


def load_test_data(experiment: Experiment, data_dir: str | None) -> tuple[Dataset | None, str]:
    """The test images the sweep evaluated on, rebuilt from the stored settings; or None and why."""
    base = experiment.base
    if not base.get("dataset"):
        return None, "sweep.json records no dataset (settings.base.dataset), so the test images are unknown"
    try:
        data = load_for(stored_config(base), data_dir, evaluation_only=True)
    except (DataError, OSError, ValueError) as error:
        return None, f"could not load the test images: {_first_line(error)}"
    expected = (experiment.sweep.get("dataset") or {}).get("test")
    if expected is not None and int(expected) != len(data.x_test):
        return None, (f"the dataset found now has {len(data.x_test)} test images but the sweep used {expected}; "
                      "point --data-dir (or CNN_DATA_DIR) at the copy the sweep used")
    return data, ""


def stored_config(base: dict[str, Any]) -> TrainConfig:
    """The sweep's base config as sweep.json stores it; keys this version does not know (a sweep
    from another version) are left out, so that its data settings still apply."""
    known = set(TrainConfig.__dataclass_fields__)
    return TrainConfig.from_dict({key: value for key, value in base.items() if key in known})


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
