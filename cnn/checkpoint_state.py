"""The checkpoint format: which files a checkpoint folder holds, and its state.json.

One definition, used by the training workers (which write it), the sweep's tables, the report,
the test fixtures and the benchmarks (which read it). No TensorFlow and no Ray here: the model
files themselves are written and read by `cnn.model_io`.

    checkpoint_<n>/
        model.keras         the model alone, for analysis and inference (rank 0's)
        resume/state.*      tf.train.Checkpoint of model + optimizer, for resuming
        state.json          a CheckpointState: epochs done, stop reason, history, config
        workers/rank<r>.json  one record per worker: node, host, devices, weight fingerprint
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnn.config import is_number

MODEL_FILE = "model.keras"
RESUME_PREFIX = "resume/state"
STATE_FILE = "state.json"
WORKERS_DIR = "workers"

# Why a training run stopped (cnn.epoch.stop_reason decides; stored here and in trials.csv).
STOP_TARGET, STOP_DIVERGED, STOP_MAX_EPOCHS = "target_accuracy", "diverged", "max_epochs"


@dataclass(frozen=True)
class CheckpointState:
    """What a run has done when a checkpoint is taken: consistent with the weights beside it, so
    after a worker restart every epoch appears in `history` exactly once."""

    epochs_done: int = 0
    stop_reason: str = ""                  # "" while the run goes on
    history: tuple[dict[str, Any], ...] = ()   # one row per epoch (cnn.epoch.run_epoch), oldest first
    config: dict[str, Any] | None = None   # the TrainConfig the run trained with, as a dict
    resumed_after_epochs: tuple[int, ...] = ()  # epochs after which a restarted worker group resumed

    @property
    def ended_for_good(self) -> bool:
        """Reached the target or diverged: a restarted run has nothing left to do."""
        return self.stop_reason in (STOP_TARGET, STOP_DIVERGED)

    @property
    def best_val_accuracy(self) -> float | None:
        """The highest validation accuracy of any epoch so far (None without a validation set)."""
        scores = [row["val_accuracy"] for row in self.history if is_number(row.get("val_accuracy"))]
        return max(scores, default=None)

    def resumed(self) -> "CheckpointState":
        """This state as a restarted worker group continues from it."""
        if not self.epochs_done:
            return self
        return dataclasses.replace(self, resumed_after_epochs=(*self.resumed_after_epochs, self.epochs_done))

    def after_epoch(self, row: dict[str, Any], config: dict[str, Any]) -> "CheckpointState":
        """The state once epoch `row` (with its stop_reason) is done, trained with `config`."""
        return dataclasses.replace(self, epochs_done=int(row["epoch"]), stop_reason=row["stop_reason"],
                                   history=(*self.history, row), config=config)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "CheckpointState":
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        return cls(**{**values, "history": tuple(values.get("history", ())),
                      "resumed_after_epochs": tuple(values.get("resumed_after_epochs", ()))})

    def write(self, checkpoint_dir: str | Path) -> None:
        (Path(checkpoint_dir) / STATE_FILE).write_text(self.to_json())

    @classmethod
    def read(cls, checkpoint_dir: str | Path) -> "CheckpointState":
        return cls.from_json((Path(checkpoint_dir) / STATE_FILE).read_text())


def read_worker_records(checkpoint_dir: str | Path) -> list[dict[str, Any]]:
    """One record per training worker, ordered by rank."""
    files = sorted((Path(checkpoint_dir) / WORKERS_DIR).glob("rank*.json"),
                   key=lambda p: int(p.stem.removeprefix("rank")))
    return [json.loads(p.read_text()) for p in files]
