"""Sweep efficiency: the same sampled configurations under ASHA and under FIFO.

    python bench/sweep_efficiency.py             # MNIST subset, 9 random configs, up to 9 epochs each
    python bench/sweep_efficiency.py --confirm-seeds 3 --work-dir DIR   # then each sweep's choice, 3 seeds

Both sweeps use the same random search seed, so Tune samples the same configurations (checked
below). FIFO runs every trial to the end; ASHA stops the worse ones at its rungs. Compared:
trial-epochs spent (the sum of epochs_run in trials.csv) and the best validation accuracy
reached, plus the test accuracy of each sweep's choice (selected on validation).
Goal (issue 7): ASHA within 0.5 points of FIFO's best with at most 40% of its trial-epochs.

With --confirm-seeds N each sweep ends with its confirm stage (issue 16): its best configuration by
validation trained N more times with fresh seeds for the full epochs, FIFO. Compared then: the test
accuracy of ASHA's choice against FIFO's, mean over those seeds with a 95% interval (Student's t),
and, when the two chose different configurations, their difference with Welch's test
(analysis/intervals.py, as the report does; the same configuration runs the same seeds twice). With
--work-dir the sweeps are kept there and an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from common import print_table, write_record  # first: it puts the repository on sys.path
from sweep_jobs import run_or_resume

from analysis.intervals import DIFFERENCE_METHOD, INTERVAL_METHOD, mean_interval, welch_difference


STAGE_SEARCH, STAGE_CONFIRM = "search", "confirm"  # trials.csv's stage (cnn/sweep_results.py, which imports TensorFlow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-samples", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--confirm-seeds", type=int, default=0,
                        help="then train each sweep's best configuration this many times (0: no confirm stage)")
    parser.add_argument("--work-dir", default=None, help="keep the sweeps here and resume them (default: a temp dir)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as temporary:
        sweeps = {scheduler: _sweep(scheduler, args, args.work_dir or temporary) for scheduler in ("fifo", "asha")}
    for scheduler, record in sweeps.items():
        print(f"{scheduler}: {record['trial_epochs']} trial-epochs, best val {record['best_val_accuracy']:.4f}, "
              f"{record['wall_seconds']:.0f} s", flush=True)
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
    confirmed = _compare_confirmed(sweeps) if args.confirm_seeds else None
    for record in sweeps.values():
        record.pop("configs")
    write_record("sweep_efficiency", {
        "command": f"python bench/sweep_efficiency.py --num-samples {args.num_samples} --epochs {args.epochs} "
                   f"--limit {args.limit} --grace-period {args.grace_period} --reduction-factor {args.reduction_factor} "
                   f"--search-seed {args.search_seed} --confirm-seeds {args.confirm_seeds}",
        "repeats": 1, "sweeps": sweeps, "same_configurations": same, "asha_fraction_of_trial_epochs": fraction,
        "gap_points": gap, "confirmed": confirmed, "goals": {"gap_points": 0.5, "fraction": 0.4}}, args.out)


def _compare_confirmed(sweeps: dict[str, dict]) -> dict:
    """Each sweep's choice retrained by its confirm stage: test accuracy with intervals, ASHA - FIFO
    tested. The same choice is not tested: both confirm stages train it with the same seeds, so no
    difference is the design's, not evidence."""
    intervals = {s: mean_interval(r["confirmed"]["test_accuracies"]) for s, r in sweeps.items()}
    same_choice = sweeps["asha"]["confirmed"]["config_id"] == sweeps["fifo"]["confirmed"]["config_id"]
    print_table(f"confirm stage: each sweep's choice trained again ({INTERVAL_METHOD})",
                ["scheduler", "configuration", "seeds", "test acc mean", "95% interval", "val acc mean"],
                [[s, r["confirmed"]["config_id"], r["confirmed"]["seeds"], intervals[s].mean,
                  f"[{intervals[s].low:.4f}, {intervals[s].high:.4f}]" if intervals[s].low is not None else "none",
                  r["confirmed"]["val_mean"]] for s, r in sweeps.items()])
    if same_choice:
        print("\nASHA and FIFO chose the same configuration: its confirm stages ran the same seeds, so no test.")
        return {"same_configuration": True, "method": INTERVAL_METHOD,
                "test_intervals": {s: vars(i) for s, i in intervals.items()}}
    difference = welch_difference(sweeps["asha"]["confirmed"]["test_accuracies"],
                                  sweeps["fifo"]["confirmed"]["test_accuracies"])
    low_high = ("none" if difference.low is None else
                f"[{100 * difference.low:+.2f}, {100 * difference.high:+.2f}] points")
    print_table(f"ASHA's choice - FIFO's, test accuracy ({DIFFERENCE_METHOD})", ["figure", "value"],
                [["difference, points", 100 * difference.difference], ["95% interval", low_high],
                 ["p", difference.p_value], ["larger than seed noise", difference.larger_than_noise()]])
    return {"same_configuration": False, "difference_points": 100 * difference.difference,
            "interval_points": None if difference.low is None else [100 * difference.low, 100 * difference.high],
            "p_value": difference.p_value, "larger_than_noise": difference.larger_than_noise(),
            "method": f"{INTERVAL_METHOD}; {DIFFERENCE_METHOD}",
            "test_intervals": {s: vars(i) for s, i in intervals.items()}}


def _sweep(scheduler: str, args: argparse.Namespace, work_dir: str) -> dict:
    flags = ["--preset", "local", "--seeds", "1", "--search", "random", "--num-samples", str(args.num_samples),
             "--search-seed", str(args.search_seed), "--scheduler", scheduler, "--grace-period", str(args.grace_period),
             "--reduction-factor", str(args.reduction_factor), "--epochs", str(args.epochs), "--limit", str(args.limit)]
    if args.confirm_seeds:
        flags += ["--confirm-top", "1", "--confirm-seeds", str(args.confirm_seeds), "--confirm-epochs", str(args.epochs)]
    experiment = run_or_resume(flags, work_dir, scheduler, args.data_dir)
    sweep_record = json.loads((experiment / "sweep.json").read_text())
    all_trials = pd.read_csv(experiment / "trials.csv", dtype={"config_id": str})  # hex ids, not numbers
    trials = all_trials[all_trials["stage"] == STAGE_SEARCH]
    chosen = _chosen_config(experiment)
    best = trials[trials["config_id"] == chosen].iloc[0]  # one seed: the configuration's one search trial
    columns = ["l2_conv", "l2_dense", "dropout_conv", "dropout_dense", "augment_strength"]
    record = {"trial_epochs": int(trials["epochs_run"].sum()),
              "epochs_run_per_trial": sorted(int(e) for e in trials["epochs_run"]),
              "best_val_accuracy": float(best["best_val_accuracy"]), "test_of_best": float(best["best_test_accuracy"]),
              "stopped_early": int((trials["status"] == "stopped_early").sum()), "trials": len(trials),
              "wall_seconds": round(float(sweep_record["wall_seconds"]), 1),  # sweep.json: search + confirm (a resumed sweep: since its resume)
              "configs": sorted(tuple(round(float(v), 8) for v in row) for row in trials[columns].itertuples(index=False))}
    if args.confirm_seeds:
        record["confirmed"] = _confirmed(experiment, chosen, all_trials[all_trials["stage"] == STAGE_CONFIRM])
    return record


def _chosen_config(experiment: Path) -> str:
    """The sweep's choice: the search stage's first row of configs.csv (ranked by validation, as the
    confirm stage chooses, analysis.configs.choose_for_confirm)."""
    configs = pd.read_csv(experiment / "configs.csv", dtype={"config_id": str})
    search = configs[(configs["stage"] == STAGE_SEARCH) & (configs["n"] > 0)]
    if search.empty:
        raise SystemExit(f"error: no configuration of {experiment} has a result")
    return str(search["config_id"].iloc[0])


def _confirmed(experiment: Path, chosen: str, confirm_trials: pd.DataFrame) -> dict:
    """The confirm stage's replicates of the sweep's choice (--confirm-top 1 retrained it beside the baselines)."""
    trials = confirm_trials[(confirm_trials["config_id"] == chosen) & confirm_trials["best_test_accuracy"].notna()]
    if trials.empty:
        raise SystemExit(f"error: {experiment}'s confirm stage has no result for its choice {chosen}")
    return {"config_id": chosen, "seeds": sorted(int(s) for s in trials["seed"]),
            "test_accuracies": [float(v) for v in trials["best_test_accuracy"]],
            "val_mean": float(trials["best_val_accuracy"].mean()),
            "trial_epochs": int(trials["epochs_run"].sum())}


if __name__ == "__main__":
    main()
