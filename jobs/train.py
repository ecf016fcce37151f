"""One distributed training run: `python jobs/train.py --dataset mnist --workers 2 --epochs 2 --limit 5000`.

Runs on a fresh local Ray by default, or on the cluster that RAY_ADDRESS names. The run
lives at <storage-path>/<name>; running again with the same --name resumes it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if not __package__:  # run as a file (python jobs/train.py, as `ray job submit` does): this checkout first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.arguments import ArgumentParser, check_run_name  # noqa: E402
from jobs.cli_common import (add_config_flags, add_data_flags, add_verbose_flag, check_folder,  # noqa: E402
                             check_ray_address_reachable, check_storage_writable, config_from_args, connect_ray,
                             driver_reads, fail, load_data, open_job_data, print_block, print_settings,
                             quiet_console, storage_path)

from cnn.data import folder_name  # noqa: E402

from cnn.replicas import WorkerResources  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("where and how it runs")
    run.add_argument("--workers", type=int, default=1, help="training workers (default: 1)")
    run.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per worker (default: 1)")
    run.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (default: 0)")
    run.add_argument("--storage-path", default="results",
                     help="local folder or s3:// / gs:// URI for checkpoints (default: ./results)")
    run.add_argument("--name", default=None, type=check_run_name, help="run name (default: train_<dataset>_<time>); reuse to resume")
    run.add_argument("--max-failures", type=int, default=2,
                     help="restarts of the worker group after a failure (default: 2)")
    add_data_flags(parser)
    add_config_flags(parser)
    add_verbose_flag(parser.add_argument_group("console"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = config_from_args(args)
    try:
        resources = WorkerResources(args.workers, args.cpus_per_worker, args.gpus_per_worker)
        resources.check_batch(config)  # the global batch must split evenly over the replicas
    except ValueError as error:
        fail(str(error))
    where = storage_path(args.storage_path)
    check_ray_address_reachable()
    console = quiet_console(args.verbose)  # before anything imports TensorFlow
    local = load_data(config, args.data_dir) if driver_reads(config) else check_folder(config)
    check_storage_writable(where)
    name = args.name or f"train_{local.name if local else folder_name(config.dataset)}_{time.strftime('%Y%m%d-%H%M%S')}"
    print_settings("config", config.to_dict())

    from cnn_ray.console import EpochLines
    from cnn_ray.trainer import make_trainer

    connect_ray(console)
    data = open_job_data(config, local)
    print_block("run", {"data": data.summary.describe(), "workers": resources.num_workers,
                        "resources_per_worker": resources.per_worker(),
                        "replicas": resources.layout().describe(), "storage": f"{where}/{name}"})
    trainer = make_trainer(config, data.trial.ref, resources, where, name, max_failures=args.max_failures,
                           stream=data.trial.stream, verbose=args.verbose, callbacks=[EpochLines(config.epochs)])
    result = trainer.fit()
    metrics = {k: v for k, v in result.metrics.items() if not k.startswith("_")}
    print_settings("final epoch", metrics)
    print(f"== results\nrun folder: {where}/{name}\nlatest checkpoint: {result.checkpoint.path}", flush=True)


if __name__ == "__main__":
    main()
