"""Run `jobs/sweep.py` as a person would, resumably: what the sweep benchmarks share."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from common import REPO


def finished(experiment: Path) -> bool:
    """A sweep that ran all its trials (an interrupted one also writes its tables, and says so in sweep.json)."""
    record = experiment / "sweep.json"
    return record.exists() and json.loads(record.read_text()).get("state") == "finished"


def run_or_resume(flags: list[str], work_dir: str, name: str, data_dir: str | None = None) -> Path:
    """The experiment folder <work_dir>/<name>: read back if that sweep finished before, resumed if it
    was interrupted, else run. Its console goes to <work_dir>/<name>.log."""
    experiment = Path(work_dir) / name
    if finished(experiment):
        return experiment
    command = [sys.executable, "jobs/sweep.py", *flags, "--storage-path", work_dir, "--name", name,
               *(["--resume"] if experiment.exists() else []), *(["--data-dir", data_dir] if data_dir else [])]
    started = time.time()
    experiment.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(work_dir) / f"{name}.log", "a") as log:
        done = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"error: the {name} sweep failed (exit {done.returncode}); see {log.name}")
    print(f"{name}: done in {time.time() - started:.0f} s", flush=True)
    return experiment
