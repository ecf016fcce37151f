"""Sweep overhead: the same search through KerasTuner's Hyperband and through jobs/sweep.py, and
where the sweep's time goes.

    pip install -c constraints.txt -e '.[bench]'    # KerasTuner, pinned
    python bench/sweep_overhead.py                   # 2 repetitions, alternating; about 50 min on 2 cores
    python bench/sweep_overhead.py --repeats 1 --tools sweep --out bench/results/sweep_overhead_x.json

Both sides: MNIST 3,600 train / 400 validation / 2,000 test (the `local` preset's subset), the
model of `cnn.model.build_model`, the input pipeline and augmentation of `cnn.pipeline`, the
random search space of `cnn_ray.search_space` (L2 conv and dense, both dropouts, augmentation
strength) and a 9-epoch budget with successive halving by 3. KerasTuner runs Hyperband in one
process that uses both cores (validation each epoch); the sweep runs
`jobs/sweep.py --preset local --search random --scheduler asha` (validation and test each epoch).

"Trained images/s, whole run" is every image trained in every trial-epoch divided by the wall
time from launch to the search's results (the sweep's tables written; KerasTuner's search
returned); the sweep's report, built afterwards, is timed apart. The breakdown splits the run's
CPU-seconds (wall time x the machine's CPUs) into phases, from the runs' own records: sweep.json's
timeline, trial_times.csv (when each trial took and let go of its CPUs), the workers' start-up
records in the checkpoints, and epochs.csv.
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
from process_cpu import SWEEP_DRIVER, ProcessCpu

TOOLS = ("kerastuner", "sweep")


def main() -> None:
    args = parse_args()
    if args.kerastuner_child:
        return _kerastuner_child(args)
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for tool in args.tools:
            run = _run_kerastuner(args) if tool == "kerastuner" else _run_sweep(args)
            runs.append({"tool": tool, "repeat": repeat + 1, **run})
            print(f"{tool} #{repeat + 1}: {run['trial_epochs']} trial-epochs in {run['wall_seconds']:.0f} s, "
                  f"{run['images_per_second_whole_run']:.1f} images/s, best val {run['best_val_accuracy']:.4f}",
                  flush=True)
    _print_runs(args, runs)
    summary = _summary(runs)
    write_record("sweep_overhead", {"command": " ".join(["python", "bench/sweep_overhead.py", *sys.argv[1:]]),
                                    "settings": _settings_text(args), "runs": runs, "summary": summary}, args.out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="repetitions of each tool, alternating")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--num-samples", type=int, default=17, help="the sweep's configurations")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--sweep-args", nargs=argparse.REMAINDER, default=[],
                        help="more flags for jobs/sweep.py (last on the line)")
    parser.add_argument("--kerastuner-child", help=argparse.SUPPRESS)  # internal: run KerasTuner, write JSON here
    return parser.parse_args()


def _settings_text(args: argparse.Namespace) -> str:
    return (f"MNIST 3,600 train / 400 val / 2,000 test, up to {args.epochs} epochs, reduction factor "
            f"{args.reduction_factor}, search seed {args.search_seed}, sweep: {args.num_samples} configurations, "
            f"grace period {args.grace_period}")


# --- KerasTuner ---------------------------------------------------------------------------------------

def _run_kerastuner(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-kt-") as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "bench/sweep_overhead.py", "--kerastuner-child", str(out),
                   "--epochs", str(args.epochs), "--reduction-factor", str(args.reduction_factor),
                   "--search-seed", str(args.search_seed)] + (["--data-dir", args.data_dir] if args.data_dir else [])
        launched = time.time()
        done, cpu, kinds = _run_measured(command, root_group="KerasTuner (one process)")
        if done.returncode:
            raise SystemExit(f"error: the KerasTuner run failed:\n{done.stderr[-3000:]}")
        child = json.loads(out.read_text())
    wall = child["search_ended_at"] - launched
    epochs = child["epochs"]
    images = sum(e["images"] for e in epochs)
    train, val = sum(e["train_seconds"] for e in epochs), sum(e["val_seconds"] for e in epochs)
    cpus = os.cpu_count() or 1
    return {"configurations": child["configurations"], "trial_epochs": len(epochs),
            "best_val_accuracy": child["best_val_accuracy"], "test_of_best": child["test_of_best"],
            "wall_seconds": wall, "images_per_second_whole_run": images / wall,
            "median_trial_images_per_second": _median_trial_rate(epochs), "cpus_per_trial": cpus,
            "launch_to_first_epoch_seconds": child["first_epoch_at"] - launched,
            "breakdown_cpu_seconds": {"training": train * cpus, "validation": val * cpus,
                                      "other (start-up, model builds, KerasTuner's checkpoints)":
                                          (wall - train - val) * cpus},
            "cpu_seconds_by_process": cpu, "cpu_seconds_by_kind_of_process": kinds}


def _kerastuner_child(args: argparse.Namespace) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    # KerasTuner uses `keras` when it is Keras 3 and tf.keras otherwise; the model is tf_keras's.
    sys.modules["keras"] = tf_keras
    import keras_tuner
    import tensorflow as tf

    from cnn.data import load_dataset
    from cnn.model import build_model
    from cnn.pipeline import evaluation_dataset, training_dataset
    from cnn.sweep_file import PRESETS, STANDARD_SPACES

    # What the sweep side runs: the local preset's data and training, the random search's space
    # (untied: the local preset's grid ties l2_dense to l2_conv, which trial_config would apply).
    settings = PRESETS["local"].replace(base=PRESETS["local"].base.replace(epochs=args.epochs), search="random", seeds=1,
                                        space=STANDARD_SPACES["random"])
    base = settings.base
    data = load_dataset(base.dataset, data_dir=args.data_dir, limit=base.limit, test_limit=base.test_limit,
                        validation_fraction=base.validation_fraction)
    steps = len(data.x_train) // base.batch_size
    val_set = evaluation_dataset(data.x_val, data.y_val, base.batch_size)
    clock = _EpochClock(tf_keras, steps * base.batch_size)

    class SweepSpace(keras_tuner.HyperModel):  # cnn_ray.search_space.param_space's random space
        def build(self, hp):
            return build_model(_config(hp), data.input_shape, data.num_classes, steps)

        def fit(self, hp, model, *fit_args, epochs=1, initial_epoch=0, callbacks=(), **kwargs):
            config = _config(hp)
            stream = training_dataset(data.x_train, data.y_train, config, initial_epoch)
            for epoch in range(initial_epoch + 1, epochs):
                stream = stream.concatenate(training_dataset(data.x_train, data.y_train, config, epoch))
            return model.fit(stream, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                             validation_data=val_set, callbacks=[clock, *callbacks], verbose=0)  # clock first: KerasTuner's per-epoch work is not validation

    def _config(hp):
        return settings.trial_config({
            "l2_conv": hp.Float("l2_conv", 1e-6, 1e-2, sampling="log"),
            "l2_dense": hp.Float("l2_dense", 1e-6, 1e-2, sampling="log"),
            "dropout_conv": hp.Float("dropout_conv", 0.0, 0.5), "dropout_dense": hp.Float("dropout_dense", 0.0, 0.6),
            "augment_strength": hp.Choice("augment_strength", [0.0, 0.5, 1.0, 1.5])})

    with tempfile.TemporaryDirectory(prefix="kt-") as folder:
        tuner = keras_tuner.Hyperband(SweepSpace(), objective="val_accuracy", max_epochs=args.epochs,
                                      factor=args.reduction_factor, hyperband_iterations=1, seed=args.search_seed,
                                      directory=folder, project_name="sweep", overwrite=True)
        tuner.search(verbose=0)
        ended = time.time()
        best = tuner.oracle.get_best_trials(1)[0]
        test = tuner.get_best_models(1)[0].evaluate(evaluation_dataset(data.x_test, data.y_test, base.batch_size),
                                                    return_dict=True, verbose=0)
        configurations = {tuple(sorted((k, v) for k, v in t.hyperparameters.values.items() if not k.startswith("tuner/")))
                          for t in tuner.oracle.trials.values()}
    Path(args.kerastuner_child).write_text(json.dumps({
        "search_ended_at": ended, "first_epoch_at": clock.rows[0]["started_at"], "epochs": clock.rows,
        "configurations": len(configurations), "best_val_accuracy": float(best.score),
        "test_of_best": float(test["accuracy"]), "tensorflow": tf.__version__,
        "kerastuner": keras_tuner.__version__}))


class _EpochClock:
    """A Keras callback (built on the given Keras) timing each epoch's training and validation."""

    def __new__(cls, keras, images_per_epoch: int):
        class EpochClock(keras.callbacks.Callback):
            rows: list[dict[str, Any]] = []

            def on_train_begin(self, logs=None):
                self.trial = len({r["trial"] for r in self.rows})

            def on_epoch_begin(self, epoch, logs=None):
                self.started_at, self.started = time.time(), time.perf_counter()

            def on_test_begin(self, logs=None):
                self.trained = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.rows.append({"trial": self.trial, "epoch": epoch + 1, "started_at": self.started_at,
                                  "images": images_per_epoch, "train_seconds": self.trained - self.started,
                                  "val_seconds": time.perf_counter() - self.trained})

        return EpochClock()


# --- the sweep ---------------------------------------------------------------------------------------

def _run_sweep(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as storage:
        command = [sys.executable, "jobs/sweep.py", "--preset", "local", "--seeds", "1", "--search", "random",
                   "--scheduler", "asha", "--epochs", str(args.epochs), "--grace-period", str(args.grace_period),
                   "--reduction-factor", str(args.reduction_factor), "--num-samples", str(args.num_samples),
                   "--search-seed", str(args.search_seed), "--storage-path", storage, "--name", "overhead",
                   *(["--data-dir", args.data_dir] if args.data_dir else []), *args.sweep_args]
        launched = time.time()
        done, cpu, kinds = _run_measured(command)
        exited = time.time()
        if done.returncode:
            raise SystemExit(f"error: the sweep failed:\n{done.stderr[-3000:]}")
        return {**sweep_figures(Path(storage) / "overhead", launched, exited), "cpu_seconds_by_process": cpu,
                "cpu_seconds_by_kind_of_process": kinds}


def _run_measured(command: list[str], root_group: str = SWEEP_DRIVER) -> tuple[
        subprocess.CompletedProcess, dict[str, float], dict[str, float]]:
    """Run `command` to its end, sampling the CPU time of its whole process tree (bench/process_cpu.py):
    CPU-seconds by group of processes and by kind (each Ray actor class, each daemon)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        with subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, text=True) as child, \
                ProcessCpu(child.pid, root_group=root_group) as cpu:
            try:
                child.wait()
            except BaseException:  # interrupted: do not leave the run (and its Ray) behind
                child.kill()
                raise
        out.seek(0), err.seek(0)
        return (subprocess.CompletedProcess(command, child.returncode, out.read(), err.read()), cpu.by_group(),
                cpu.by_process())


def sweep_figures(experiment: Path, launched: float, exited: float) -> dict[str, Any]:
    """The comparison's figures and the breakdown of one finished sweep, from its stored records."""
    import pandas as pd

    from cnn_ray.trial_clock import read_trial_times

    record = json.loads((experiment / "sweep.json").read_text())
    timeline = record["timeline"]
    trials = pd.read_csv(experiment / "trials.csv")
    epochs = pd.read_csv(experiment / "epochs.csv")
    times = read_trial_times(str(experiment))
    wall = timeline["tables_written"] - launched
    images = float((epochs["images_per_second"] * epochs["train_seconds"]).sum())
    best = trials.iloc[0]  # ranked by best validation accuracy
    per_trial = record["resources_per_trial"]
    cpus_per_trial = per_trial["workers"] * per_trial["cpus_per_worker"]
    rows = [_trial_phases(experiment, trial_id, group, times.get(trial_id, {}))
            for trial_id, group in epochs.groupby("trial_id")]
    return {"configurations": len(trials), "trial_epochs": len(epochs),
            "best_val_accuracy": float(best["best_val_accuracy"]), "test_of_best": float(best["best_test_accuracy"]),
            "wall_seconds": wall, "report_seconds": exited - timeline["tables_written"],
            "images_per_second_whole_run": images / wall,
            "median_trial_images_per_second": float(statistics.median(
                (g["images_per_second"] * g["train_seconds"]).sum() / g["train_seconds"].sum()
                for _, g in epochs.groupby("trial_id"))),
            "cpus_per_trial": cpus_per_trial,
            "launch_to_first_epoch_seconds": float(epochs["fit_started_at"].min() - launched),
            "breakdown_cpu_seconds": _breakdown(rows, timeline, launched, cpus_per_trial,
                                                float(record["cluster_resources"].get("CPU", os.cpu_count() or 1))),
            "trials": rows}


def _trial_phases(experiment: Path, trial_id: str, epochs: Any, times: dict[str, Any]) -> dict[str, Any]:
    """Seconds of one trial's life, phase by phase (wall seconds of the trial's own slot)."""
    startup = startup_record(experiment, trial_id)
    epochs = epochs.sort_values("epoch")
    ends = epochs["fit_started_at"] + epochs["epoch_seconds"]
    tune_start = min(times.get("starts", [startup.get("trial_started_at") or epochs["fit_started_at"].min()]))
    tune_end = max(times.get("ends", [float(ends.max())]))
    marks = {"tune": tune_start, "driver": startup.get("trial_started_at"),
             "process": startup.get("process_started_at"), "backend": startup.get("backend_setup_at"),
             "loop": startup.get("started_at")}
    phases = {
        "trial driver start": _gap(marks["tune"], marks["driver"]),
        "Train controller and worker group start": _gap(marks["driver"], marks["backend"]),
        "TensorFlow import": startup.get("tensorflow_import_seconds", 0.0),
        "Train worker set-up": _gap((marks["backend"] or 0) + startup.get("tensorflow_import_seconds", 0.0),
                                    marks["loop"]),
        "dataset fetch": startup.get("data_fetch_seconds", 0.0),
        "strategy and model build": startup.get("strategy_seconds", 0.0) + startup.get("model_build_seconds", 0.0),
        # max(0, …): after a worker-group restart the record is the last attempt's, the epochs every attempt's.
        "other set-up before the first epoch (imports, restore, input pipelines)": max(0.0, _gap(
            marks["loop"], float(epochs["fit_started_at"].iloc[0])) - sum(
            startup.get(k, 0.0) for k in ("data_fetch_seconds", "strategy_seconds", "model_build_seconds"))),
        "training": float(epochs["train_seconds"].sum()),
        "validation": float(epochs["val_seconds"].sum()),
        "test evaluation": float(epochs["test_seconds"].sum()),
        "checkpoint and report, between epochs": float(
            (epochs["fit_started_at"].iloc[1:].to_numpy() - ends.iloc[:-1].to_numpy()).sum()),
        "epoch's other work (BatchNorm averaging)": float(
            (epochs["epoch_seconds"] - epochs["train_seconds"] - epochs["val_seconds"] - epochs["test_seconds"]).sum()),
        "last checkpoint, report and tear-down": _gap(float(ends.iloc[-1]), tune_end),
    }
    return {"trial_id": trial_id, "started": tune_start, "ended": tune_end, "phases": phases,
            "checkpoint_write_seconds_latest": startup.get("checkpoint_write_seconds")}


def startup_record(experiment: Path, trial_id: str) -> dict[str, Any]:
    """Rank 0's start-up record and checkpoint write time, from the trial's latest checkpoint."""
    from cnn.checkpoint_state import read_worker_records

    checkpoints = sorted((experiment / "train_runs" / trial_id).glob("checkpoint_2*"))
    if not checkpoints:
        return {}
    worker = read_worker_records(checkpoints[-1])[0]
    return {**worker.get("startup", {}), "checkpoint_write_seconds": worker.get("checkpoint_write_seconds")}


def _gap(start: float | None, end: float | None) -> float:
    return max(0.0, end - start) if start is not None and end is not None else 0.0


def _breakdown(rows: list[dict[str, Any]], timeline: dict[str, float], launched: float,
               cpus_per_trial: float, cpus: float) -> dict[str, float]:
    """CPU-seconds by phase; they sum to the run's wall time x the cluster's CPUs. A trial's time
    ends when Tune ended it: for a trial the scheduler stopped, that is before its worker group
    was torn down, so its tear-down counts as idle."""
    total: dict[str, float] = {
        "before Ray (imports, data load)": (timeline["ray_starting"] - launched) * cpus,
        "Ray start": (timeline["ray_ready"] - timeline["ray_starting"]) * cpus,
        "after Ray start, before Tune (object store put, records)": (timeline["tuner_started"] - timeline["ray_ready"]) * cpus,
    }
    for row in rows:
        for phase, seconds in row["phases"].items():
            total[phase] = total.get(phase, 0.0) + seconds * cpus_per_trial
    tuning = (timeline["tuner_ended"] - timeline["tuner_started"]) * cpus
    occupied = sum(seconds * cpus_per_trial for row in rows for seconds in row["phases"].values())
    total["idle CPUs while Tune ran (no trial on them)"] = max(0.0, tuning - occupied)
    total["tables written"] = (timeline["tables_written"] - timeline["tuner_ended"]) * cpus
    return total


# --- output ------------------------------------------------------------------------------------------

def _median_trial_rate(epochs: list[dict[str, Any]]) -> float:
    trials: dict[int, list[dict[str, Any]]] = {}
    for row in epochs:
        trials.setdefault(row["trial"], []).append(row)
    return float(statistics.median(sum(r["images"] for r in rows) / sum(r["train_seconds"] for r in rows)
                                   for rows in trials.values()))


def _print_runs(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    print_table(f"KerasTuner Hyperband against jobs/sweep.py (random + ASHA); {_settings_text(args)}",
                ["tool", "run", "configurations", "trial-epochs", "best val acc", "its test acc", "wall s",
                 "images/s, whole run", "median images/s per trial", "CPUs per trial", "launch to first epoch s"],
                [[r["tool"], r["repeat"], r["configurations"], r["trial_epochs"], r["best_val_accuracy"],
                  r["test_of_best"], r["wall_seconds"], r["images_per_second_whole_run"],
                  r["median_trial_images_per_second"], r["cpus_per_trial"], r["launch_to_first_epoch_seconds"]]
                 for r in runs])
    for run in runs:
        breakdown = run["breakdown_cpu_seconds"]
        capacity = sum(breakdown.values())
        print_table(f"where the CPU-seconds went: {run['tool']} run {run['repeat']} "
                    f"({run['wall_seconds']:.0f} s x {capacity / run['wall_seconds']:.0f} CPUs)", ["phase", "CPU-seconds", "share"],
                    [[phase, seconds, f"{100 * seconds / capacity:.1f}%"] for phase, seconds in breakdown.items()])
        if run.get("cpu_seconds_by_process"):
            used = sum(run["cpu_seconds_by_process"].values())
            print_table(f"CPU time the processes really used (/proc): {run['tool']} run {run['repeat']}, "
                        f"{used:.0f} CPU-seconds of {capacity:.0f} ({100 * used / capacity:.0f}%)",
                        ["processes", "CPU-seconds", "share of used"],
                        [[group, seconds, f"{100 * seconds / used:.1f}%"]
                         for group, seconds in run["cpu_seconds_by_process"].items()])
            kinds = run.get("cpu_seconds_by_kind_of_process", {})
            if len(kinds) > 1:
                print_table(f"the same by kind of process (each Ray actor class, each daemon): {run['tool']} "
                            f"run {run['repeat']}", ["kind", "CPU-seconds", "share of used"],
                            [[kind, seconds, f"{100 * seconds / used:.1f}%"] for kind, seconds in kinds.items()])


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_tool = {tool: [r for r in runs if r["tool"] == tool] for tool in TOOLS}
    summary: dict[str, Any] = {tool: {key: statistics.median(r[key] for r in rows)
                                      for key in ("images_per_second_whole_run", "wall_seconds",
                                                  "launch_to_first_epoch_seconds")}
                               for tool, rows in by_tool.items() if rows}
    if by_tool["kerastuner"] and by_tool["sweep"]:
        summary["ratio_images_per_second_sweep_over_kerastuner"] = (
            summary["sweep"]["images_per_second_whole_run"] / summary["kerastuner"]["images_per_second_whole_run"])
        print_table("goals: ratio >= 0.9, launch to first epoch <= 10 s (medians over the runs)", ["figure", "value"],
                    [["sweep / KerasTuner, trained images/s over the whole run",
                      summary["ratio_images_per_second_sweep_over_kerastuner"]],
                     ["sweep, launch to first epoch, s", summary["sweep"]["launch_to_first_epoch_seconds"]]])
    return summary


if __name__ == "__main__":
    main()
