"""bench/accuracy.py: which epoch's test accuracy a full-data run reports."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def accuracy(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the benchmarks import their neighbours as `common`, `runs`
    return importlib.import_module("accuracy")


def test_the_epoch_of_best_validation_accuracy_is_reported(accuracy):
    history = [{"epoch": 1, "val_accuracy": 0.80, "test_accuracy": 0.79},
               {"epoch": 2, "val_accuracy": 0.85, "test_accuracy": 0.83},
               {"epoch": 3, "val_accuracy": 0.84, "test_accuracy": 0.86}]
    assert accuracy.has_validation(history)
    assert accuracy.chosen_epoch(history)["epoch"] == 2  # not epoch 3, the best on test


@pytest.mark.parametrize("missing", [math.nan, None])
def test_without_validation_images_the_last_epoch_is_reported(accuracy, missing):
    """`-- --validation-fraction 0` (training + validation, as the final model): nothing to choose by."""
    history = [{"epoch": 1, "val_accuracy": missing, "test_accuracy": 0.87},
               {"epoch": 2, "val_accuracy": missing, "test_accuracy": 0.85}]
    assert not accuracy.has_validation(history)
    assert accuracy.chosen_epoch(history)["epoch"] == 2
