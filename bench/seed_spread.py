"""Seed-to-seed spread of the `local` study (issue 16): how far apart runs of one configuration land.

    python bench/seed_spread.py               # the local preset's 4 configurations x 5 seeds (about 13 min, fast CPU)
    python bench/seed_spread.py --seeds 8

Runs `jobs/sweep.py --preset local --seeds N` (MNIST 3,600 train / 400 validation / 2,000 test, 3
epochs, L2 off/on x augmentation off/on) under --work-dir, resumably, and reads its configs.csv:
per configuration, the mean and standard deviation over seeds of the best validation accuracy
and of the test accuracy at the validation-chosen epoch, and the pooled standard deviation (the
root mean square of the four), against which other benchmarks' differences can be read.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from common import RESULTS, print_table, write_record
from sweep_jobs import run_or_resume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--work-dir", default=str(RESULTS / "runs" / "seed_spread"),
                        help="where the sweep is kept (not committed); rerun to continue")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    name = f"local_seeds{args.seeds}"
    experiment = run_or_resume(["--preset", "local", "--seeds", str(args.seeds)], args.work_dir, name, args.data_dir)
    configs = pd.read_csv(experiment / "configs.csv")
    configs = configs[configs.stage == "search"]
    rows = [{"l2": row.l2_conv, "augment_strength": row.augment_strength, "n": int(row.n),
             "val_mean": row.val_accuracy_mean, "val_sd": row.val_accuracy_sd,
             "test_mean": row.test_accuracy_mean, "test_sd": row.test_accuracy_sd} for row in configs.itertuples()]
    pooled = {key: math.sqrt(sum(row[key] ** 2 for row in rows) / len(rows)) for key in ("val_sd", "test_sd")}
    title = (f"seed-to-seed spread, local preset (MNIST 3,600 / 400 / 2,000, 3 epochs), {args.seeds} seeds per "
             f"configuration, accuracy in points")
    print_table(title, ["L2", "augment", "n", "val mean", "val sd", "test mean", "test sd"],
                [[row["l2"], row["augment_strength"], row["n"], 100 * row["val_mean"], 100 * row["val_sd"],
                  100 * row["test_mean"], 100 * row["test_sd"]] for row in rows]
                + [["pooled", "", sum(row["n"] for row in rows), "", 100 * pooled["val_sd"], "", 100 * pooled["test_sd"]]])
    write_record("seed_spread", {
        "command": f"python bench/seed_spread.py --seeds {args.seeds}",
        "seeds": args.seeds, "configurations": rows, "pooled_sd": pooled,
        "wall_seconds": _wall_seconds(experiment)}, args.out)


def _wall_seconds(experiment: Path) -> float | None:
    record = json.loads((experiment / "sweep.json").read_text())
    return record.get("wall_seconds")


if __name__ == "__main__":
    main()
