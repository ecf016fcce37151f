"""When a run stops: target training accuracy (the original study's callback), divergence, max epochs."""

import pytest

from cnn.config import NO_TARGET, TrainConfig
from cnn.epoch import stop_reason
from cnn.checkpoint_state import STOP_DIVERGED, STOP_MAX_EPOCHS, STOP_TARGET

CONFIG = TrainConfig(epochs=10, target_accuracy=0.995)


@pytest.mark.parametrize("epoch, loss, accuracy, expected", [
    (3, 0.5, 0.90, ""),
    (3, 0.01, 0.995, STOP_TARGET),
    (3, float("nan"), 0.10, STOP_DIVERGED),
    (3, float("inf"), 0.10, STOP_DIVERGED),
    (10, 0.5, 0.90, STOP_MAX_EPOCHS),
    (10, 0.01, 0.999, STOP_TARGET),
])
def test_stop_reason(epoch, loss, accuracy, expected):
    assert stop_reason({"epoch": epoch, "train_loss": loss, "train_accuracy": accuracy}, CONFIG) == expected


def test_a_target_of_1_never_stops_a_run_early():
    """NO_TARGET (the confirm stage, the final model): a perfect epoch goes on to the last epoch."""
    config = CONFIG.replace(target_accuracy=NO_TARGET)
    assert stop_reason({"epoch": 3, "train_loss": 0.001, "train_accuracy": 1.0}, config) == ""
    assert stop_reason({"epoch": 10, "train_loss": 0.001, "train_accuracy": 1.0}, config) == STOP_MAX_EPOCHS
