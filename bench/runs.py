"""Run `jobs/train.py` as a person would and read back the epoch history its checkpoints store."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO


def train(flags: list[str], storage: Path, name: str, log: Path | None = None) -> tuple[list[dict[str, Any]], float]:
    """(the epoch history of the run's latest checkpoint, wall seconds of the whole job)."""
    command = [sys.executable, "jobs/train.py", "--storage-path", str(storage), "--name", name, *flags]
    started = time.time()
    storage.mkdir(parents=True, exist_ok=True)
    with open(log or Path("/dev/null"), "a") as sink:  # appended: a resumed run keeps the log of the first
        done = subprocess.run(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(command)} failed (exit {done.returncode}); see {log}")
    return latest_history(storage / name), time.time() - started


def latest_history(run: Path) -> list[dict[str, Any]]:
    """The epoch history in the newest checkpoint of a Train run folder (cnn.sweep_results reads them)."""
    from cnn.sweep_results import checkpoint_states

    states = [state for _, state in checkpoint_states(str(run))]
    if not states:
        raise SystemExit(f"error: no checkpoint with a state.json under {run}")
    return list(max(states, key=lambda s: s.epochs_done).history)
