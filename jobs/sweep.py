"""Hyperparameter sweep: Ray Tune over a sweep file's space (any training knob); every trial a Ray Train run.

    python jobs/sweep.py --config my_sweep.yaml    # your own sweep file (README, "Sweep files")
    python jobs/sweep.py --preset smoke            # the whole path in about a minute
    python jobs/sweep.py --preset local            # what `make sweep` runs (< 15 min, 2 cores)
    python jobs/sweep.py                           # the full CIFAR-10 sweep, sized to the cluster
    ray job submit --working-dir . -- python jobs/sweep.py --storage-path s3://bucket/sweeps
    python jobs/sweep.py --name NAME --resume      # continue an interrupted sweep

Runs on a fresh local Ray by default, or on the cluster that RAY_ADDRESS names (set by
`ray job submit`). Results: <storage-path>/<name>/ with trials.csv, epochs.csv, sweep.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

LAUNCHED = time.time()  # before the heavy imports: the start of sweep.json's "timeline"

if not __package__:  # run as a file (python jobs/sweep.py, as `ray job submit` does): this checkout first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.arguments import ArgumentParser, check_run_name  # noqa: E402
from jobs.cli_common import (add_config_flags, add_data_flags, add_verbose_flag, check_folder,  # noqa: E402
                             check_ray_address_reachable,
                             check_storage_writable, config_from_args, connect_ray, driver_reads, fail,
                             load_data, open_job_data, print_block, quiet_console, storage_path)

from cnn.config import AUGMENT_RANGES, TrainConfig  # noqa: E402
from cnn.data import absolute_dataset, folder_name  # noqa: E402
from cnn.search_space import AUGMENT_STRENGTH, SearchSpace, SearchSpaceError  # noqa: E402
from cnn.sweep_file import (PRESETS, STANDARD_SPACES, SweepFileError, dump_sweep, load_sweep_file,  # noqa: E402
                            load_sweep_text)
from cnn.sweep_results import SWEEP_YAML, read_text  # noqa: E402
from cnn.sweep_settings import AUTO, SCHEDULERS, SEARCH_MODES, SweepSettings  # noqa: E402

EXIT_STORAGE_FAILED = 3  # 2 is bad input (nothing started); 1 an unexpected error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep = parser.add_argument_group("the sweep")
    sweep.add_argument("--preset", choices=sorted(PRESETS),
                       help="a sweep file shipped with the package (cnn/sweeps/): smoke (1 min), local (make sweep, "
                            "< 15 min on 2 cores), full (the default)")
    sweep.add_argument("--config", metavar="FILE", help="your own sweep file (YAML; see the README's example)")
    sweep.add_argument("--search", choices=SEARCH_MODES,
                       help="random, grid or tpe (Optuna's TPE); between random and tpe the file's space stays, "
                            "to or from grid brings that mode's standard space (random/tpe: L2, dropout and "
                            "augmentation; grid: the study's L2 x augmentation grid)")
    sweep.add_argument("--num-samples", type=int, help="random and tpe: number of trials, the baselines included")
    sweep.add_argument("--grid-l2", type=float, nargs="+", help="grid: L2 strengths (conv and dense alike)")
    sweep.add_argument("--grid-augment-strength", type=float, nargs="+",
                       help="grid: augmentation strengths (0 = off, 1 = the original study's)")
    sweep.add_argument("--scheduler", choices=SCHEDULERS, help="asha (early stopping) or fifo")
    sweep.add_argument("--grace-period", type=int, help="ASHA: epochs before a trial can be stopped")
    sweep.add_argument("--reduction-factor", type=int,
                       help="ASHA: keep the best 1/N of trials at each rung (rungs at grace x N^k epochs)")
    sweep.add_argument("--search-seed", type=int, help="seed of the search (random sampling, TPE's sampler)")
    sweep.add_argument("--seeds", type=int, metavar="N",
                       help="train every configuration N times, with seeds --seed, --seed + 1, ... (replicates)")
    sweep.add_argument("--confirm-top", type=int, metavar="K",
                       help="confirm stage: after the search, train the K best configurations (by mean validation "
                            "accuracy) and the baselines again with fresh seeds, FIFO; 0: no confirm stage")
    sweep.add_argument("--confirm-seeds", type=int, metavar="N", help="confirm stage: trainings of each configuration")
    sweep.add_argument("--confirm-epochs", type=int, metavar="E", help="confirm stage: epochs of each training")
    sweep.add_argument("--final", action="store_true", default=None,
                       help="then train the chosen configuration on training + validation data and export it "
                            "(<experiment>/final_model/: model.keras, saved_model/, model_card.json)")
    res = parser.add_argument_group("resources")
    res.add_argument("--workers-per-trial", type=int,
                     help="Ray Train workers per trial (full preset: 1; 2 or more make each trial faster)")
    res.add_argument("--cpus-per-worker", type=float, help="CPUs per worker")
    res.add_argument("--gpus-per-worker",
                     help=f"GPUs per worker, or {AUTO} (1 if the cluster has GPUs); a whole number N gives each "
                          "worker N replicas; a fraction lets one-worker trials share a GPU")
    res.add_argument("--max-concurrent-trials", type=int, help="default: as many as fit in the cluster")
    out = parser.add_argument_group("storage")
    out.add_argument("--storage-path", default="results",
                     help="local folder, shared NFS path, or s3:// / gs:// URI (default: ./results)")
    out.add_argument("--name", type=check_run_name, help="experiment name (default: sweep_<preset>_<dataset>_<time>)")
    out.add_argument("--resume", action="store_true",
                     help="continue the interrupted sweep --name (unpickles its state: only your own folders)")
    add_verbose_flag(parser.add_argument_group("console"))
    add_data_flags(parser)
    add_config_flags(parser, PRESETS["full"].base,
                     title="training config: each flag overrides the preset's value "
                           "(defaults shown are the full preset's)")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> SweepSettings:
    preset = _sweep_file(args)
    base = config_from_args(args, preset.base)
    changes: dict[str, Any] = {"base": base, "space": _space_under_flags(args, preset.space)}
    for key in ("search", "num_samples", "scheduler", "grace_period", "reduction_factor", "search_seed",
                "seeds", "confirm_top", "confirm_seeds", "confirm_epochs", "final", "workers_per_trial",
                "cpus_per_worker", "max_concurrent_trials"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    if args.search is not None and args.search != preset.search and "grid" in (args.search, preset.search):
        changes["space"] = STANDARD_SPACES[args.search]  # a grid's space is not a sampler's, nor the reverse
    if args.grid_l2 is not None or args.grid_augment_strength is not None:
        if changes.get("search", preset.search) != "grid":
            fail("--grid-l2 and --grid-augment-strength shape a grid: add --search grid")
        changes["space"] = _grid_from_flags(args, changes["space"])
    if args.gpus_per_worker is not None:
        try:
            changes["gpus_per_worker"] = AUTO if args.gpus_per_worker == AUTO else float(args.gpus_per_worker)
        except ValueError:
            fail(f"gpus_per_worker={args.gpus_per_worker!r} is out of range; allowed: >= 0 or {AUTO!r}")
    try:
        return preset.replace(**changes)
    except ValueError as error:
        fail(str(error))


def _sweep_file(args: argparse.Namespace) -> SweepSettings:
    """The sweep file the flags start from: --config, --preset, or on --resume the resolved file the
    sweep stored (sweep.yaml), else the full preset."""
    if args.config and args.preset:
        fail("--config and --preset both name a sweep file: give one")
    try:
        if args.config:
            return load_sweep_file(args.config)
        if not args.preset and args.resume and args.name:
            stored = f"{storage_path(args.storage_path)}/{args.name}/{SWEEP_YAML}"
            if _exists(stored):
                return load_sweep_text(read_text(stored), stored)
        return PRESETS[args.preset or "full"]
    except SweepFileError as error:
        fail(str(error))


def _space_under_flags(args: argparse.Namespace, space: SearchSpace) -> SearchSpace:
    """A training flag overrides the file's fixed value of its knob; it cannot fix a knob the file
    varies (nor one that the file's augment_strength sets): one line says so."""
    given = {f.name for f in dataclasses.fields(TrainConfig) if getattr(args, f.name, None) is not None}
    set_by_strength = {"augment", *AUGMENT_RANGES} if AUGMENT_STRENGTH in space.knobs else set()
    for knob in sorted(given & (set(space.knobs) | set_by_strength)):
        varied = "augment_strength, which sets it," if knob in set_by_strength else "it"
        fail(f"--{knob.replace('_', '-')}: the sweep file varies {varied} (space: {knob if knob in space.knobs else AUGMENT_STRENGTH}); "
             "change the file's space to fix it")
    return dataclasses.replace(space, fixed={k: v for k, v in space.fixed.items() if k not in given})


def _grid_from_flags(args: argparse.Namespace, space: SearchSpace) -> SearchSpace:
    """`space` with --grid-l2 as the grid of l2_conv (l2_dense tied to it) and --grid-augment-strength
    as the grid of augment_strength; the file's other knobs as they were."""
    written = space.to_dict()
    knobs = dict(written["space"])
    if args.grid_l2 is not None:
        knobs.update(l2_conv={"grid": list(args.grid_l2)}, l2_dense={"same_as": "l2_conv"})
    if args.grid_augment_strength is not None:
        knobs[AUGMENT_STRENGTH] = {"grid": list(args.grid_augment_strength)}
    try:
        return SearchSpace.from_dict(knobs, written["baselines"])
    except SearchSpaceError as error:
        fail(f"--grid flags: {error}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Tune's console: with --verbose its newer output engine, at its default verbosity. Without, its
    # older engine at verbosity 0, which prints nothing (the newer one still prints its start-up
    # banner); cnn_ray.console prints the sweep's progress instead. A resumed sweep keeps the
    # verbosity (and the callbacks) Tune stored when it began, so it gets the newer engine: at the
    # older engine's default verbosity, a sweep begun with --verbose would print every result.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1" if args.verbose or args.resume else "0")
    settings = settings_from_args(args)
    # A local dataset path as an absolute one, from a flag or a sweep file: the cluster's processes start elsewhere.
    settings = settings.replace(base=settings.base.replace(dataset=absolute_dataset(settings.base.dataset)))
    root = storage_path(args.storage_path)
    check_ray_address_reachable()
    console = quiet_console(args.verbose)  # before anything imports TensorFlow
    local = load_data(settings.base, args.data_dir) if driver_reads(settings.base) else check_folder(settings.base)
    dataset_name = local.name if local is not None else folder_name(settings.base.dataset)
    name = args.name or f"sweep_{settings.preset}_{dataset_name}_{time.strftime('%Y%m%d-%H%M%S')}"
    experiment = f"{root}/{name}"
    if args.resume and not args.name:
        fail("--resume needs --name, the experiment to continue")

    import ray

    from cnn_ray import tuner as sweep_lib
    from cnn_ray.run_record import describe_run, write_started_record, write_sweep_record
    from cnn_ray.confirm import confirm_path
    from cnn_ray.storage_watch import probe_write
    from cnn_ray.trial import TrialPlan

    if args.resume and not ray.tune.Tuner.can_restore(experiment):
        fail(f"nothing to resume at {experiment}")
    if not args.resume and _exists(experiment):
        fail(f"{experiment} already exists; pass --resume to continue it or choose another --name")
    check_storage_writable(root)
    timeline = {"launched": LAUNCHED, "ray_starting": time.time()}
    connect_ray(console)
    timeline["ray_ready"] = time.time()
    data = open_job_data(settings.base, local)
    cluster = sweep_lib.cluster_capacity()
    resources = settings.resources_for(cluster_gpus=cluster.get("GPU", 0.0))
    concurrent = sweep_lib.concurrent_trials(resources, cluster, settings.max_concurrent_trials)
    if resources.gpus_per_worker and not cluster.get("GPU"):
        print(f"warning: each trial asks for {resources.total()['GPU']:g} GPU(s) but the cluster has none; "
              f"trials wait until an autoscaler adds GPU nodes", file=sys.stderr, flush=True)
    plan = TrialPlan(settings, resources, experiment, verbose=args.verbose)
    trials = settings.num_trials()
    replicated = (f" ({settings.num_configurations()} configurations x {settings.seeds} seeds)"
                  if settings.seeds > 1 else "")
    confirm_plan = (f"then the {settings.confirm_top} best configurations by mean validation accuracy, and the "
                    f"{len(settings.space.baselines)} baseline(s), again: {settings.confirm_seeds} fresh seeds x "
                    f"{settings.confirm_stage().base.epochs} epochs each, FIFO" if settings.confirm_top else "none")
    print_block("sweep", {
        "preset": settings.preset, "experiment": experiment, "resume": args.resume,
        "data": data.summary.describe(), "search": settings.search, "search_space": settings.describe_search(),
        "scheduler": settings.scheduler, "confirm_stage": confirm_plan,
        "final_model": ("then the chosen configuration trained on training + validation data and exported"
                        if settings.final else "none"),
        "budget": f"{trials} trials{replicated} x up to {settings.base.epochs} epochs "
                  f"= {trials * settings.base.epochs} trial-epochs at most",
        "per_trial": {"workers": resources.num_workers, **resources.per_worker(),
                      "replicas": resources.layout().replicas_in_sync},
        "cluster": cluster, "concurrent_trials": concurrent})
    print(f"== the sweep file, every value resolved (stored as {experiment}/{SWEEP_YAML})\n{dump_sweep(settings)}",
          end="", flush=True)

    started = time.time()
    run = describe_run(settings, data.summary, cluster, resources, concurrent, started=started, argv=sys.argv)
    confirming = bool(settings.confirm_top) and args.resume and ray.tune.Tuner.can_restore(confirm_path(experiment))
    if args.resume:
        run = {**_stored_record(experiment), **run, "resumed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_started_record(experiment, run, dump_sweep(settings))
    timeline["tuner_started"] = time.time()
    if not confirming:  # the confirm stage starts once the search has finished
        tuner = (sweep_lib.restore_tuner(experiment, plan, data.trial) if args.resume
                 else sweep_lib.build_tuner(plan, data.trial, root, name, concurrent))
        tuner.fit()
    timeline["tuner_ended"] = time.time()
    problem = probe_write(experiment)
    if problem:
        _storage_failed(experiment, root, name, problem)
    interrupted = None if confirming else sweep_lib.unfinished(experiment, settings.num_trials())
    if settings.confirm_top or settings.final:  # later stages build on a whole search
        _stop_if_unfinished("search", interrupted, root, name)
    if settings.confirm_top:
        points = _confirm_stage(plan, data.trial, concurrent, resume=confirming)
        timeline["confirm_ended"] = time.time()
        problem = probe_write(experiment)
        if problem:
            _storage_failed(experiment, root, name, problem)
        if settings.final:
            _stop_if_unfinished("confirm stage", sweep_lib.unfinished(confirm_path(experiment), points), root, name)
    final_error = None
    if settings.final:
        final_error = _final_stage(plan, data, args.data_dir, run)
        timeline["final_ended"] = time.time()
    if settings.confirm_top and not interrupted:
        interrupted = sweep_lib.unfinished(confirm_path(experiment), points)
        interrupted = f"the confirm stage: {interrupted}" if interrupted else None
    elif interrupted:
        interrupted = f"the search: {interrupted}"
    record = write_sweep_record(experiment, {**run, "timeline": timeline}, settings, started=started,
                                interrupted=interrupted)
    _print_leaderboard(record["trials_csv"], settings.space.knobs)
    _print_configurations(record["configs_csv"], settings.space.knobs)
    print(f"== results\nexperiment folder: {experiment}\ntables: {record['trials_csv']}, {record['epochs_csv']}, "
          f"{record['configs_csv']}\ntensorboard --logdir {experiment}", flush=True)
    if settings.final and not final_error:
        print(f"final model: {run['final_model']} (cnn-predict {run['final_model']} IMAGES...)", flush=True)
    report = _build_report(experiment, args.data_dir)
    print(f"report: {report}", flush=True)
    if interrupted:  # Ctrl-C: Tune returned before every trial ended; the tables and report hold what ran
        print(f"error: the sweep was interrupted ({interrupted}); its tables and report hold what had run. Continue "
              f"it with: python jobs/sweep.py --storage-path {root} --name {name} --resume", file=sys.stderr)
        raise SystemExit(1)
    if final_error:
        print(f"error: the final model was not exported ({final_error}); the sweep's results are stored. Try "
              f"again with: python jobs/sweep.py --storage-path {root} --name {name} --resume", file=sys.stderr)
        raise SystemExit(1)


def _final_stage(plan: Any, data: Any, data_dir: str | None, run: dict[str, Any]) -> str | None:
    """Train and export the final model (cnn_ray.final_stage); its folder goes into `run`. A failure
    is returned as one line, so that the tables and the report are still written."""
    from cnn_ray.final_stage import run_final_stage

    run.pop("final_model_error", None)  # an earlier attempt's, on --resume
    try:
        run["final_model"] = run_final_stage(plan, data, data_dir)
    except Exception as error:  # noqa: BLE001 - said at the end, after the results are stored
        import traceback

        traceback.print_exc(file=sys.stderr)
        run["final_model_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
        return run["final_model_error"]
    return None


def _stop_if_unfinished(stage: str, why: str | None, root: str, name: str) -> None:
    if why:
        print(f"error: the {stage} was interrupted ({why}), so the sweep stops before its next stage; continue "
              f"it with: python jobs/sweep.py --storage-path {root} --name {name} --resume", file=sys.stderr)
        raise SystemExit(1)


def _confirm_stage(plan: Any, data: Any, concurrent: int, resume: bool) -> int:
    """Train the search's best configurations and the baselines again (cnn_ray.confirm), or continue
    doing so after an interruption; the number of its trials."""
    from cnn_ray.confirm import build_confirm_tuner, chosen_configurations, confirm_path, confirm_points
    from cnn_ray.tuner import restore_tuner

    settings = plan.settings.confirm_stage()
    stage_plan = dataclasses.replace(plan, settings=settings, experiment_path=confirm_path(plan.experiment_path))
    if resume:
        print(f"== confirm stage: continuing {stage_plan.experiment_path}", flush=True)
        return len(restore_tuner(stage_plan.experiment_path, stage_plan, data).fit())
    chosen, samples = chosen_configurations(plan.experiment_path, plan.settings)
    points = confirm_points(plan.settings, list(samples.values()))
    print(f"== confirm stage: {len(samples)} configurations x {plan.settings.confirm_seeds} seeds x "
          f"{settings.base.epochs} epochs = {len(points)} trials, FIFO, in {stage_plan.experiment_path}", flush=True)
    columns = [c for c in ("config_id", "n", "val_accuracy_mean", *plan.settings.space.knobs) if c in chosen.columns]
    print(chosen[columns].to_string(
        index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    build_confirm_tuner(stage_plan, data, points, concurrent).fit()
    return len(points)


def _storage_failed(experiment: str, root: str, name: str, problem: str) -> NoReturn:
    """Storage stopped taking writes mid-sweep; the sweep was stopped. Say what is kept and what to do."""
    import ray

    ray.shutdown()  # flushes the workers' forwarded logs first, so the error is the last line
    print(f"error: storage stopped taking writes during the sweep ({problem}), so the sweep was stopped; "
          f"every checkpoint and result stored before that is kept in {experiment}. Build a report of them "
          f"elsewhere: python -m analysis {experiment} --out REPORT_FOLDER; once the storage is writable "
          f"again, continue: python jobs/sweep.py --storage-path {root} --name {name} --resume",
          file=sys.stderr, flush=True)
    raise SystemExit(EXIT_STORAGE_FAILED)


def _stored_record(experiment: str) -> dict[str, Any]:
    """The sweep.json of the run being resumed (its start time and command), if it can be read."""
    import json

    from cnn.sweep_results import SWEEP_JSON, read_text

    try:
        record = json.loads(read_text(f"{experiment}/{SWEEP_JSON}"))
    except (OSError, ValueError):
        return {}
    return {"first_started": record.get("first_started") or record.get("started"),
            "first_command": record.get("first_command") or record.get("command")}


def _build_report(experiment: str, data_dir: str | None) -> str:
    from analysis import build_report

    try:
        return build_report(experiment, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001 - the sweep's results are safe; say how to retry
        print(f"error: the sweep finished and its results are stored, but the report failed "
              f"({type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}); "
              f"rebuild it with: python -m analysis {experiment}", file=sys.stderr)
        raise SystemExit(1)


def _exists(uri: str) -> bool:
    import pyarrow.fs as pafs

    from cnn.sweep_results import filesystem

    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _print_leaderboard(trials_csv: str, knobs: tuple[str, ...]) -> None:
    import io

    import pandas as pd

    from cnn.sweep_results import read_text

    frame = pd.read_csv(io.StringIO(read_text(trials_csv)))
    columns = [c for c in ("trial_id", "status", *knobs, "epochs_run", "best_val_accuracy", "best_test_accuracy")
               if c in frame.columns]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("== leaderboard (ranked by validation accuracy; test accuracy reported, never used to choose)")
        print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)


def _print_configurations(configs_csv: str, knobs: tuple[str, ...]) -> None:
    """configs.csv's replicated configurations: mean validation and test accuracy with their 95% intervals."""
    import io

    import pandas as pd

    from cnn.sweep_results import read_text

    frame = pd.read_csv(io.StringIO(read_text(configs_csv)))
    frame = frame[frame["n"] >= 2]
    if frame.empty:
        return
    for name in ("val_accuracy", "test_accuracy"):
        frame[name] = [f"{100 * m:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]" for m, lo, hi in
                       zip(frame[f"{name}_mean"], frame[f"{name}_ci_low"], frame[f"{name}_ci_high"])]
    columns = [c for c in ("config_id", "stage", "n", *knobs, "val_accuracy", "test_accuracy") if c in frame.columns]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("== configurations (mean over seeds [95% CI, Student's t]; ranked by validation within each stage)")
        print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)


if __name__ == "__main__":
    main()
