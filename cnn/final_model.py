"""The final model: the chosen configuration trained once more on training + validation data, and
exported for use (no Ray here; cnn_ray/final_stage.py runs the training).

<experiment>/final_model/ holds
    model.keras        the Keras model (tf_keras; load with cnn.model_io or keras.models.load_model)
    saved_model/       a TensorFlow SavedModel for serving (signature "serve": images in, probabilities out)
    model_card.json    what the model is, what it was trained on and how well it does (MODEL_CARD_FIELDS)

The configuration is the first of the evidence stage (the confirm stage if it ran, else the
search) by mean validation accuracy; the epochs are the median of the epochs its replicates'
validation accuracy chose there. With the validation images folded into training there is no
validation accuracy left to choose an epoch by, so the confirm stage's choice stands in for it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnn.checkpoint_state import MODEL_FILE
from cnn.data import Dataset, DataSummary

FINAL_RUN_DIR = "final"              # <experiment>/final/train/: the final model's Ray Train run
FINAL_MODEL_DIR = "final_model"      # <experiment>/final_model/: what a person uses
KERAS_FILE = MODEL_FILE  # model.keras, named as in a checkpoint folder (cnn.model_io.load_model reads either)
SAVED_MODEL_DIR, MODEL_CARD = "saved_model", "model_card.json"
SCALING = "float32 pixels divided by 255 (uint8 0-255 to [0, 1]), shape (height, width, channels)"


def final_epochs(trials: pd.DataFrame, trial_ids: list[str]) -> int:
    """The median of the epochs at which these replicates' validation accuracy peaked (at least 1)."""
    chosen = pd.to_numeric(trials.loc[trials["trial_id"].isin(trial_ids), "best_epoch"], errors="coerce").dropna()
    if chosen.empty:
        raise ValueError("the chosen configuration's replicates record no best epoch")
    return max(1, int(round(float(np.median(chosen)))))


def folded_summary(data: DataSummary) -> DataSummary:
    """What the final model trains on, counted: the validation images moved into training."""
    return dataclasses.replace(data, train=data.train + data.validation, validation=0)


def training_plus_validation(data: Dataset) -> Dataset:
    """The dataset with its validation images moved into training (the test set untouched)."""
    return dataclasses.replace(data, x_train=np.concatenate([data.x_train, data.x_val]),
                               y_train=np.concatenate([data.y_train, data.y_val]),
                               x_val=data.x_val[:0], y_val=data.y_val[:0])


def model_card(*, config: dict[str, Any], data: DataSummary, folded_validation: int, dataset_sha256: str | None,
               chosen: dict[str, Any], ranking: str,
               final_test_accuracy: float, epochs_run: int, experiment: str, git_commit: str,
               packages: dict[str, str]) -> dict[str, Any]:
    """model_card.json: `data` as trained on (its training images include the validation images),
    `folded_validation` the validation images among them; `chosen` the configuration's configs.csv row;
    `ranking` one sentence (cnn_ray.final_stage.ranking): it won its stage, ranks first among
    configurations tied within their intervals, was the only one with a result, or was ranked by
    single runs."""
    return {
        "model": "the original study's CNN (cnn/model.py), tf_keras",
        "files": {"keras": KERAS_FILE, "saved_model": SAVED_MODEL_DIR},
        "input": {"shape": list(data.input_shape), "scaling": SCALING, "class_names": list(data.class_names)},
        "output": "softmax probabilities over class_names, in that order",
        "dataset": {"name": data.name, "source": data.source, "sha256": dataset_sha256,
                    "trained_on": f"{data.train} images: {data.train - folded_validation} training "
                                  f"+ {folded_validation} validation",
                    "test_images": data.test, "loader": data.loader},
        "config": config,
        "epochs_run": epochs_run,
        "chosen_configuration": {
            "config_id": chosen["config_id"], "stage": chosen["stage"], "replicates": int(chosen["n"]),
            "how": "first by mean validation accuracy in this stage (cnn/final_model.py)",
            "ranking": ranking,
            "val_accuracy_mean": _number(chosen["val_accuracy_mean"]),
            "test_accuracy_mean": _number(chosen["test_accuracy_mean"]),
            "test_accuracy_ci95": [_number(chosen["test_accuracy_ci_low"]), _number(chosen["test_accuracy_ci_high"])],
            "interval_method": "95% confidence interval, Student's t over seeds (null with one seed)",
        },
        "final_model_test_accuracy": _number(final_test_accuracy),
        "experiment": experiment,
        "git_commit": git_commit,
        "packages": packages,
    }


def export_model(model: Any, folder: Path, card: dict[str, Any]) -> Path:
    """model.keras, saved_model/ and model_card.json into `folder`, whole or not at all: written
    beside it first and moved into place (an earlier export there is replaced)."""
    from cnn.model_io import save_model

    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_model(model, partial / KERAS_FILE)
    _export_quietly(model, partial / SAVED_MODEL_DIR)
    (partial / MODEL_CARD).write_text(json.dumps(card, indent=2, default=str))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def _export_quietly(model: Any, path: Path) -> None:
    """`model.export(path)` (a SavedModel), without the 45 lines Keras prints on the console about it
    (the endpoint's signature and every captured variable): the model card describes the export."""
    from cnn.keras_compat import keras

    was_on = keras.utils.is_interactive_logging_enabled()
    keras.utils.disable_interactive_logging()  # Keras then logs the message at INFO instead of printing it
    try:
        model.export(str(path))
    finally:
        if was_on:
            keras.utils.enable_interactive_logging()


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
