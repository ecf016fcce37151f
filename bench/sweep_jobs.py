"""Run `jobs/sweep.py` as a person would, resumably: what the sweep benchmarks share."""

from __future__ import annotations

import json
import shlex
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
    experiment = Path(work_dir).resolve() / name  # the sweep runs in the repository: the same folder for both
    _check_same_flags(experiment, flags)
    if finished(experiment):
        return experiment
    command = [sys.executable, "jobs/sweep.py", *flags, "--storage-path", str(experiment.parent), "--name", name,
               *(["--resume"] if experiment.exists() else []), *(["--data-dir", data_dir] if data_dir else [])]
    started = time.time()
    experiment.parent.mkdir(parents=True, exist_ok=True)
    with open(experiment.parent / f"{name}.log", "a") as log:
        done = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"error: the {name} sweep failed (exit {done.returncode}); see {log.name}")
    print(f"{name}: done in {time.time() - started:.0f} s", flush=True)
    return experiment


# The options run_or_resume adds itself (with their values), not part of what a sweep is.
OWN_OPTIONS = {"--storage-path": 1, "--name": 1, "--data-dir": 1, "--resume": 0}


def _check_same_flags(experiment: Path, flags: list[str]) -> None:
    """Refuse to read back or resume a sweep that ran with other flags: the benchmark would report
    it under its new command."""
    record = experiment / "sweep.json"
    if not record.exists():
        return
    stored = json.loads(record.read_text())
    command = shlex.split(stored.get("first_command") or stored.get("command") or "")
    ran = _without_own_options(command[next((i + 1 for i, t in enumerate(command) if t.endswith("sweep.py")), 0):])
    if ran != flags:
        raise SystemExit(f"error: {experiment} holds a sweep run with other flags ({' '.join(ran)}); "
                         f"use another --work-dir or delete it")


def _without_own_options(arguments: list[str]) -> list[str]:
    kept, skip = [], 0
    for token in arguments:
        if skip:
            skip -= 1
        elif token in OWN_OPTIONS:
            skip = OWN_OPTIONS[token]
        else:
            kept.append(token)
    return kept
