"""Sweep efficiency: the same sampled configurations under ASHA and under FIFO.

    python bench/sweep_efficiency.py             # MNIST subset, 9 random configs, up to 9 epochs each

Both sweeps use the same random search seed, so Tune samples the same configurations (checked
below). FIFO runs every trial to the end; ASHA stops the worse ones at its rungs. Compared:
trial-epochs spent (the sum of epochs_run in trials.csv) and the best validation accuracy
reached, plus the test accuracy of each sweep's choice (selected on validation).
Goal (issue 7): ASHA within 0.5 points of FIFO's best with at most 40% of its trial-epochs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from common import REPO, print_table, write_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-samples", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    sweeps = {}
    for scheduler in ("fifo", "asha"):
        sweeps[scheduler] = _sweep(scheduler, args)
        print(f"{scheduler}: {sweeps[scheduler]['trial_epochs']} trial-epochs, best val "
              f"{sweeps[scheduler]['best_val_accuracy']:.4f}, {sweeps[scheduler]['wall_seconds']:.0f} s", flush=True)
    same = sweeps["fifo"]["configs"] == sweeps["asha"]["configs"]
    fraction = sweeps["asha"]["trial_epochs"] / sweeps["fifo"]["trial_epochs"]
    gap = 100 * (sweeps["fifo"]["best_val_accuracy"] - sweeps["asha"]["best_val_accuracy"])
    print_table(f"ASHA vs FIFO, MNIST {args.limit:,} images, {args.num_samples} configs (search seed "
                f"{args.search_seed}), up to {args.epochs} epochs, grace {args.grace_period}, "
                f"reduction factor {args.reduction_factor}",
                ["scheduler", "trial-epochs", "best val acc", "its test acc", "trials stopped early", "wall s"],
                [[s, r["trial_epochs"], r["best_val_accuracy"], r["test_of_best"], r["stopped_early"], r["wall_seconds"]]
                 for s, r in sweeps.items()])
    print_table("goals: within 0.5 points, at most 40% of the trial-epochs", ["figure", "value"],
                [["same configurations sampled", same], ["ASHA trial-epochs / FIFO", fraction],
                 ["FIFO best - ASHA best, points", gap]])
    for record in sweeps.values():
        record.pop("configs")
    write_record("sweep_efficiency", {
        "command": f"python bench/sweep_efficiency.py --num-samples {args.num_samples} --epochs {args.epochs} "
                   f"--limit {args.limit} --grace-period {args.grace_period} --reduction-factor {args.reduction_factor} "
                   f"--search-seed {args.search_seed}",
        "repeats": 1, "sweeps": sweeps, "same_configurations": same, "asha_fraction_of_trial_epochs": fraction,
        "gap_points": gap, "goals": {"gap_points": 0.5, "fraction": 0.4}}, args.out)


def _sweep(scheduler: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as storage:
        command = [sys.executable, "jobs/sweep.py", "--preset", "local", "--seeds", "1", "--search", "random",
                   "--num-samples", str(args.num_samples), "--search-seed", str(args.search_seed),
                   "--scheduler", scheduler, "--grace-period", str(args.grace_period),
                   "--reduction-factor", str(args.reduction_factor), "--epochs", str(args.epochs),
                   "--limit", str(args.limit), "--storage-path", storage, "--name", scheduler]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        started = time.time()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"error: the {scheduler} sweep failed:\n{done.stderr[-3000:]}")
        trials = pd.read_csv(Path(storage) / scheduler / "trials.csv")
    best = trials.iloc[0]  # ranked by best validation accuracy
    columns = ["l2_conv", "l2_dense", "dropout_conv", "dropout_dense", "augment_strength"]
    return {"trial_epochs": int(trials["epochs_run"].sum()),
            "epochs_run_per_trial": sorted(int(e) for e in trials["epochs_run"]), "best_val_accuracy": float(best["best_val_accuracy"]),
            "test_of_best": float(best["best_test_accuracy"]),
            "stopped_early": int((trials["status"] == "stopped_early").sum()), "trials": len(trials),
            "wall_seconds": round(time.time() - started, 1),
            "configs": sorted(tuple(round(float(v), 8) for v in row) for row in trials[columns].itertuples(index=False))}


if __name__ == "__main__":
    main()
