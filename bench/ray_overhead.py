"""Ray overhead: one trial under Ray Tune + Ray Train against plain Keras `fit` in one process.

    python bench/ray_overhead.py                 # CIFAR-10 subset, 4 epochs, 3 repeats of each side

Both sides train the same model on the same images with the same config, batch and seed, through
the same input pipeline (cnn.pipeline.training_dataset), on all of this machine's CPUs:
  plain   keras fit in this process, one epoch at a time, as cnn_ray.worker_loop does
  ray     `jobs/sweep.py` with one trial of one worker holding every CPU (Tune -> Train -> worker)
Each run is a fresh process. Steady-state images/s: the training time alone of every epoch but
the first (which includes tracing), evaluation excluded on both sides, pooled over the repeats;
the figure is the median of the pool. The sides alternate. (Per-epoch rates on this shared
2-core VM are bimodal, so many epochs and a median are needed; the spread is printed.)
Also: seconds from launching the sweep job to the start of the first training epoch.
Goal (issue 7): ray / plain >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import REPO, median, print_table, write_record  # noqa: E402
from runs import latest_history  # noqa: E402

SAMPLE = {"l2_conv": 1e-4, "l2_dense": 1e-4, "augment_strength": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--limit", type=int, default=4000, help="training images (before the validation split)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--plain-only", action="store_true", help=argparse.SUPPRESS)  # one plain run, as JSON
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    if args.plain_only:
        print(json.dumps(_plain_keras(args)))
        return
    cpus = os.cpu_count() or 1
    flags = ["--dataset", args.dataset, "--limit", str(args.limit), "--test-limit", "500", "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--bn-momentum", "0.99", "--target-accuracy", "1.0"]
    plain, ray, first_step = [], [], []
    for repeat in range(args.repeats):
        sides = ("plain", "ray") if repeat % 2 == 0 else ("ray", "plain")
        for side in sides:
            if side == "plain":
                plain.extend(_plain_run(args))
            else:
                rates, seconds = _ray_trial(flags, cpus, args.data_dir)
                ray.extend(rates)
                first_step.append(seconds)
        print(f"repeat {repeat + 1}: plain so far {median(plain):,.0f} images/s, ray {median(ray):,.0f} images/s, "
              f"first epoch started {first_step[-1]:.1f} s after launch", flush=True)

    result = {"plain keras fit": median(plain), "ray tune + train": median(ray)}
    ratio = result["ray tune + train"] / result["plain keras fit"]
    print_table(f"Ray overhead, {args.dataset} {args.limit:,} images, batch {args.batch_size}, {args.epochs} epochs, "
                f"{cpus} CPUs, {args.repeats} runs per side", ["side", "images/s (median)", "epochs pooled",
                                                               "10th-90th percentile"],
                [["plain keras fit", result["plain keras fit"], len(plain), _spread(plain)],
                 ["ray tune + train", result["ray tune + train"], len(ray), _spread(ray)]])
    print_table("goal: ray / plain >= 0.95", ["figure", "value"],
                [["ray / plain", ratio], ["launch -> first epoch, s (median)", median(first_step)]])
    write_record("ray_overhead", {
        "command": f"python bench/ray_overhead.py --dataset {args.dataset} --limit {args.limit} "
                   f"--epochs {args.epochs} --repeats {args.repeats}",
        "config": {"dataset": args.dataset, "limit": args.limit, "epochs": args.epochs,
                   "batch_size": args.batch_size, "cpus": cpus, "sample": SAMPLE},
        "images_per_second": {"plain": plain, "ray": ray}, "medians": result, "ratio": ratio,
        "launch_to_first_epoch_seconds": first_step, "goal": {"ratio": 0.95}}, args.out)


def _spread(values: list[float]) -> str:
    import numpy as np

    return f"{np.percentile(values, 10):,.0f}-{np.percentile(values, 90):,.0f}"


def _plain_run(args: argparse.Namespace) -> list[float]:
    """One plain run in a fresh process (as the Ray side gets): its steady-state epochs' images/s."""
    command = [sys.executable, __file__, "--plain-only", "--dataset", args.dataset, "--limit", str(args.limit),
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"error: the plain run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plain_keras(args: argparse.Namespace) -> list[float]:
    """Images/s of every epoch but the first: the workers' own epoch (cnn.epoch.run_epoch) in this
    process, without Ray, under TensorFlow's default strategy (one replica)."""
    import tensorflow as tf

    from cnn.data import load_dataset
    from cnn.epoch import run_epoch
    from cnn.keras_compat import keras
    from cnn.model import build_model
    from cnn.pipeline import evaluation_dataset
    from cnn.replicas import ReplicaLayout
    from cnn.sweep_file import PRESETS

    base = PRESETS["smoke"].base.replace(dataset=args.dataset, limit=args.limit, test_limit=500, epochs=args.epochs,
                                         batch_size=args.batch_size, bn_momentum=0.99, target_accuracy=1.0)
    config = PRESETS["smoke"].replace(base=base, workers_per_trial=1).trial_config(SAMPLE)
    data = load_dataset(config.dataset, data_dir=args.data_dir, limit=config.limit, test_limit=config.test_limit)
    keras.utils.set_random_seed(config.seed)
    steps = ReplicaLayout().steps_per_epoch(len(data.x_train), config.batch_size)
    model = build_model(config, data.input_shape, data.num_classes, steps)
    val_set = evaluation_dataset(data.x_val, data.y_val, config.batch_size)
    test_set = evaluation_dataset(data.x_test, data.y_test, config.batch_size)
    strategy = tf.distribute.get_strategy()
    return [run_epoch(model, strategy, data, config, epoch, steps, val_set, test_set)["images_per_second"]
            for epoch in range(config.epochs)][1:]


def _ray_trial(flags: list[str], cpus: int, data_dir: str | None) -> tuple[list[float], float]:
    """(images/s of every epoch but the first, seconds from launch to the first epoch's start) of one trial."""
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as storage:
        command = [sys.executable, "jobs/sweep.py", "--preset", "smoke", "--storage-path", storage, "--name", "b",
                   "--grid-l2", str(SAMPLE["l2_conv"]), "--grid-augment-strength", str(SAMPLE["augment_strength"]),
                   "--workers-per-trial", "1", "--cpus-per-worker", str(cpus), "--scheduler", "fifo", *flags]
        if data_dir:
            command += ["--data-dir", data_dir]
        launched = time.time()
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"error: the sweep failed:\n{done.stderr[-3000:]}")
        (run,) = (Path(storage) / "b" / "train_runs").iterdir()  # the one trial's Train run
        history = latest_history(run)
    rates = [row["images_per_second"] for row in history]
    return rates[1:], history[0]["fit_started_at"] - launched


if __name__ == "__main__":
    main()
