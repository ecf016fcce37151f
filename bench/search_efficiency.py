"""Search efficiency (issue 15): random + FIFO, random + ASHA and TPE + ASHA at the same budget.

    python bench/search_efficiency.py                  # 3 search seeds per arm (about 11-12 h on 2 slow cores)
    python bench/search_efficiency.py --seeds 0 1 2 3  # more seeds; finished sweeps are reused

Every arm searches the same space (L2 on conv and dense kernels alike, both dropouts, the learning
rate, augmentation strength) with the same number of configurations and the same epoch budget on
the MNIST subset of bench/sweep_overhead.py (3,600 train / 400 validation / 2,000 test). Each sweep
is `jobs/sweep.py --config <generated sweep file>`, kept under --work-dir: a sweep that finished is
read back instead of run again, one that was interrupted is resumed (`--resume`). Each finished
sweep's summary is also kept in bench/results/search_efficiency/<arm>_seed<N>.json (committed, with
the settings it ran under), so a machine that loses --work-dir between sessions reruns only the
sweeps not recorded yet: `--arms tpe_asha --seeds 1` runs one sweep, and the table, curves and
record cover every recorded sweep of the arms and seeds asked for.

Per arm: the best validation accuracy reached against trial-epochs spent (the curve, from each
trial's epochs in the order they ended), the best validation accuracy at the end and the test
accuracy of the trial it picks, mean and spread over the search seeds.
Goal: TPE + ASHA reaches random + FIFO's mean best validation accuracy within 0.25 points with at
most 35% of its trial-epochs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from common import RESULTS, machine, print_table, write_record
from sweep_jobs import finished, run_or_resume

SWEEP_RECORDS = RESULTS / "search_efficiency"

ARMS = {"random_fifo": ("random", "fifo"), "random_asha": ("random", "asha"), "tpe_asha": ("tpe", "asha")}
LABELS = {"random_fifo": "random + FIFO", "random_asha": "random + ASHA", "tpe_asha": "TPE + ASHA"}
SPACE = """\
space:
  l2_conv: {loguniform: [1.0e-6, 1.0e-2]}
  l2_dense: {same_as: l2_conv}
  dropout_conv: {uniform: [0.0, 0.5]}
  dropout_dense: {uniform: [0.0, 0.6]}
  learning_rate: {loguniform: [3.0e-4, 3.0e-3]}
  augment_strength: {uniform: [0.0, 1.5]}
"""
GOAL_GAP_POINTS, GOAL_FRACTION = 0.25, 0.35


def sweep_file(algorithm: str, scheduler: str, seed: int, args: argparse.Namespace) -> str:
    return f"""\
train: {{dataset: mnist, limit: {args.limit}, test_limit: {args.test_limit}, epochs: {args.epochs},
        batch_size: 64, bn_momentum: 0.9, horizontal_flip: false}}
search: {{algorithm: {algorithm}, num_samples: {args.num_samples}, seed: {seed},
         startup_trials: {args.startup_trials}, max_concurrent_trials: 2}}
{SPACE}scheduler: {{name: {scheduler}, grace_period: {args.grace_period}, reduction_factor: {args.reduction_factor}}}
resources: {{workers_per_trial: 1, cpus_per_worker: 1}}
"""


def run_sweep(arm: str, seed: int, args: argparse.Namespace) -> Path:
    """The experiment folder of this arm and seed, run (or resumed) unless it finished before."""
    name = f"{arm}_seed{seed}"
    config = Path(args.work_dir) / f"{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    if not finished(Path(args.work_dir) / name):
        config.write_text(sweep_file(*ARMS[arm], seed, args))
    return run_or_resume(["--config", str(config)], args.work_dir, name, args.data_dir)


def sweep_result(arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """This sweep's summary: from its committed record if it ran under these settings, else run."""
    path = Path(args.records_dir) / f"{arm}_seed{seed}.json"
    settings = sweep_settings(args)
    if path.exists():
        record = json.loads(path.read_text())
        if record["settings"] == settings:
            return record["summary"]
        print(f"{path.name}: recorded under other settings, running again", flush=True)
    started = time.time()
    summary = summarise(run_sweep(arm, seed, args))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"arm": arm, "seed": seed, "settings": settings, "machine": machine(),
                               "seconds": round(time.time() - started), "summary": summary}, indent=1))
    return summary


def sweep_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a sweep's result depends on (not where it ran or which seeds the benchmark was asked for)."""
    keys = ("num_samples", "epochs", "limit", "test_limit", "grace_period", "reduction_factor", "startup_trials")
    return {**{key: getattr(args, key) for key in keys}, "space": SPACE}


def summarise(experiment: Path) -> dict[str, Any]:
    trials = pd.read_csv(experiment / "trials.csv")  # ranked by best validation accuracy
    epochs = pd.read_csv(experiment / "epochs.csv")
    best = trials.iloc[0]
    knobs = [knob for knob in yaml.safe_load(SPACE)["space"] if knob in trials.columns]
    return {"trial_epochs": int(trials["epochs_run"].sum()), "trials": len(trials),
            "best_val_accuracy": float(best["best_val_accuracy"]), "test_of_best": float(best["best_test_accuracy"]),
            "stopped_early": int((trials["status"] == "stopped_early").sum()), "curve": curve(epochs),
            "trial_table": trials[["trial_id", *knobs, "epochs_run", "best_val_accuracy",
                                   "best_test_accuracy"]].to_dict(orient="records")}


def curve(epochs: pd.DataFrame) -> list[tuple[int, float]]:
    """(trial-epochs spent, best validation accuracy so far) after each trial-epoch, in the order the
    epochs ended (each trial's fit start plus its epochs' durations)."""
    epochs = epochs.sort_values(["trial_id", "epoch"]).copy()
    epochs["ended"] = epochs["fit_started_at"] + epochs.groupby("trial_id")["epoch_seconds"].cumsum()
    best, points = 0.0, []
    for spent, accuracy in enumerate(epochs.sort_values("ended")["val_accuracy"], start=1):
        best = max(best, float(accuracy))
        points.append((spent, best))
    return points


def best_within(points: list[tuple[int, float]], budget: int) -> float:
    return max((accuracy for spent, accuracy in points if spent <= budget), default=float("nan"))


FOLDER_FLAGS = ("--work-dir", "--records-dir", "--data-dir", "--out")  # where this machine keeps things


def _without_folders(argv: list[str]) -> list[str]:
    """The command's arguments with this machine's folders left out (the record is committed)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in FOLDER_FLAGS:
            skip = True
        elif not arg.startswith(tuple(f + "=" for f in FOLDER_FLAGS)):
            kept.append(arg)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--num-samples", type=int, default=12, help="configurations per sweep, every arm")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--startup-trials", type=int, default=5, help="TPE: random trials before it models")
    parser.add_argument("--work-dir", default=str(RESULTS / "runs" / "search_efficiency"),
                        help="where the sweeps are kept (not committed); rerun to continue")
    parser.add_argument("--records-dir", default=str(SWEEP_RECORDS),
                        help="where each finished sweep's summary is kept (committed)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    found: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in args.arms}
    for seed in args.seeds:  # seed by seed, so that a stopped run leaves every arm with as many seeds
        for arm in args.arms:
            found[arm][seed] = sweep_result(arm, seed, args)
    report(found, args)


def report(found: dict[str, dict[int, dict[str, Any]]], args: argparse.Namespace) -> None:
    rows, summary = [], {}
    for arm, by_seed in found.items():
        values = list(by_seed.values())
        stats = {key: _mean_sd([v[key] for v in values]) for key in ("best_val_accuracy", "test_of_best", "trial_epochs")}
        summary[arm] = {"seeds": sorted(by_seed), **stats}
        rows.append([arm, len(values), _text(stats["trial_epochs"], 1), _text(stats["best_val_accuracy"], 100),
                     _text(stats["test_of_best"], 100)])
    print_table(f"search efficiency, MNIST {args.limit:,} images, {args.num_samples} configurations, up to "
                f"{args.epochs} epochs (mean ± sd over search seeds)",
                ["arm", "seeds", "trial-epochs", "best val acc %", "its test acc %"], rows)
    goal: dict[str, Any] = {}
    if {"random_fifo", "tpe_asha"} <= set(summary):
        fifo, tpe = summary["random_fifo"], summary["tpe_asha"]
        budget = int(GOAL_FRACTION * fifo["trial_epochs"][0])
        within = [best_within(r["curve"], budget) for r in found["tpe_asha"].values()]
        goal = {"gap_points": 100 * (fifo["best_val_accuracy"][0] - tpe["best_val_accuracy"][0]),
                "fraction_of_trial_epochs": tpe["trial_epochs"][0] / fifo["trial_epochs"][0],
                "tpe_asha_best_within_35_percent_budget": _mean_sd(within), "budget_trial_epochs": budget}
        print_table(f"goal: within {GOAL_GAP_POINTS} points of random + FIFO's mean best, at most "
                    f"{GOAL_FRACTION:.0%} of its trial-epochs", ["figure", "value"],
                    [["random+FIFO mean best - TPE+ASHA mean best, points", goal["gap_points"]],
                     ["TPE+ASHA trial-epochs / random+FIFO's", goal["fraction_of_trial_epochs"]],
                     [f"TPE+ASHA best within {budget} trial-epochs, mean %",
                      100 * goal["tpe_asha_best_within_35_percent_budget"][0]]])
    _plot(found, args)
    write_record("search_efficiency", {
        "command": " ".join(["python bench/search_efficiency.py", *_without_folders(sys.argv[1:])]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "data_dir", "records_dir", "work_dir")},
        "space": SPACE, "summary": summary, "goal": goal,
        "sweeps": {arm: by_seed for arm, by_seed in found.items()}}, args.out)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan"))


def _text(stat: tuple[float, float], scale: float) -> str:
    mean, sd = stat
    return f"{scale * mean:.2f} ± {scale * sd:.2f}" if sd == sd else f"{scale * mean:.2f} (one seed)"


def _plot(found: dict[str, dict[int, dict[str, Any]]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for (arm, by_seed), colour in zip(found.items(), ("#2458a6", "#d08c00", "#2e8b57")):
        for i, (seed, record) in enumerate(sorted(by_seed.items())):
            spent, best = zip(*record["curve"])
            ax.step(spent, [100 * b for b in best], where="post", color=colour, alpha=0.8,
                    label=LABELS[arm] if i == 0 else None)
    ax.set_xlabel("trial-epochs spent")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_title(f"MNIST {args.limit:,}, {args.num_samples} configurations, up to {args.epochs} epochs; "
                 "one line per search seed", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(args.out).with_suffix(".png") if args.out else RESULTS / "search_efficiency.png"
    fig.savefig(path, dpi=90)
    print(f"curves: {path}")


if __name__ == "__main__":
    main()
