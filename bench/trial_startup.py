"""Trial start-up: how long a sweep takes to reach its first epoch, and each trial to reach its own.

    python bench/trial_startup.py                                  # 2 runs of this checkout
    git worktree add ../before <rev>
    python bench/trial_startup.py --checkouts ../before . --runs 2   # alternating: before, now, before, now

Each run is a small real sweep with one trial at a time (so no trial's start-up overlaps another
trial's training): `jobs/sweep.py --preset local --search grid`, four L2 values, no augmentation,
one epoch of 360 MNIST images. The figures come from the sweep's own records (sweep.json's
timeline, trial_times.csv, the workers' start-up records, epochs.csv): Ray's start, launch to
the first epoch, and per trial (median of the four) its start-up from Tune starting it to its
first epoch, split into trial driver to the training worker's process, that process to Ray
Train's backend set-up, and TensorFlow's import; then its tear-down (last epoch's end to Tune's
end of the trial) and the gap until Tune starts the next trial. Another checkout runs with
PYTHONPATH set to it, which Ray's worker processes inherit, so its own code runs everywhere; it
must be 7451ae1 or later (trial_times.csv). The sweep always starts its own local Ray
(RAY_ADDRESS is removed from its environment). "Driver to worker process" is negative for a
trial whose training worker took one of the idle processes Ray starts with (the process is older
than the trial).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, print_table, write_record

SWEEP = ["--preset", "local", "--seeds", "1", "--search", "grid", "--grid-l2", "0", "1e-4", "1e-3", "1e-2",
         "--grid-augment-strength", "0", "--epochs", "1", "--grace-period", "1", "--limit", "400",
         "--test-limit", "200", "--max-concurrent-trials", "1"]
COLUMNS = ["checkout", "run", "Ray start s", "launch to first epoch s", "trial start-up s (median)",
           "driver to worker process s", "worker process to backend s", "TensorFlow import s",
           "tear-down s", "between trials s", "Tune's whole run s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkouts", nargs="+", default=[str(REPO)], help="checkouts to run, alternating")
    parser.add_argument("--runs", type=int, default=2, help="runs of each checkout")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = []
    for run in range(1, args.runs + 1):
        for checkout in args.checkouts:
            figures = {"checkout": _describe(Path(checkout)), "run": run, **_run(Path(checkout).resolve(), args.data_dir)}
            rows.append(figures)
            print(json.dumps(figures), flush=True)
    print_table("trial start-up, one trial at a time (seconds)", COLUMNS,
                [[row[column] for column in COLUMNS] for row in rows])
    write_record("trial_startup", {"command": " ".join(["python", "bench/trial_startup.py", *sys.argv[1:]]),
                                   "sweep": SWEEP, "runs": rows}, args.out)


def _describe(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "") if done.returncode == 0 else str(checkout)


def _run(checkout: Path, data_dir: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as storage:
        command = [sys.executable, "jobs/sweep.py", *SWEEP, "--storage-path", storage, "--name", "startup",
                   *(["--data-dir", data_dir] if data_dir else [])]
        done = subprocess.run(command, cwd=checkout, capture_output=True, text=True,
                              env={**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
                                   "PYTHONPATH": str(checkout)})
        if done.returncode:
            raise SystemExit(f"error: the sweep in {checkout} failed:\n{done.stderr[-3000:]}")
        return startup_figures(Path(storage) / "startup")


def startup_figures(experiment: Path) -> dict[str, float]:
    """The start-up figures of one finished sweep, from its stored records."""
    import pandas as pd

    from cnn_ray.trial_clock import read_trial_times
    from sweep_overhead import startup_record

    timeline = json.loads((experiment / "sweep.json").read_text())["timeline"]
    epochs = pd.read_csv(experiment / "epochs.csv")
    times = read_trial_times(str(experiment))
    trials = []
    for trial_id, group in epochs.groupby("trial_id"):
        marks, clock = startup_record(experiment, trial_id), times.get(trial_id)
        if not marks or not clock:
            raise SystemExit(f"error: trial {trial_id} of {experiment} has no start-up record or no trial times")
        start, end = min(clock["starts"]), max(clock["ends"])
        trials.append({"start": start, "end": end,
                       "startup": group["fit_started_at"].min() - start,
                       "to_process": marks["process_started_at"] - marks["trial_started_at"],
                       "to_backend": marks["backend_setup_at"] - marks["process_started_at"],
                       "tensorflow": marks["tensorflow_import_seconds"],
                       "teardown": end - (group["fit_started_at"] + group["epoch_seconds"]).max()})
    trials.sort(key=lambda trial: trial["start"])

    def median(key: str) -> float:
        return float(statistics.median(trial[key] for trial in trials))

    return {"Ray start s": timeline["ray_ready"] - timeline["ray_starting"],
            "launch to first epoch s": float(epochs["fit_started_at"].min()) - timeline["launched"],
            "trial start-up s (median)": median("startup"), "driver to worker process s": median("to_process"),
            "worker process to backend s": median("to_backend"), "TensorFlow import s": median("tensorflow"),
            "tear-down s": median("teardown"),
            "between trials s": float(statistics.median(b["start"] - a["end"] for a, b in zip(trials, trials[1:]))),
            "Tune's whole run s": timeline["tuner_ended"] - timeline["tuner_started"]}


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"({time.time() - started:.0f} s)")
