"""How long an epoch waits after its last step, with tf.data's autotuning and without it.

    python bench/epoch_end_stall.py                      # CIFAR-10 3,200 images, 12 epochs a side: about 6 min
    python bench/epoch_end_stall.py --epochs 20 --images 6400

Each side runs in a process of its own: the worker's training as cnn/epoch.py runs it (one
`model.fit` per epoch under MultiWorkerMirroredStrategy, one worker on this machine's CPUs,
cnn.pipeline.training_dataset, batch 128), with a callback that notes when the last step ended.
The time from there to fit's return is the wait cnn/epoch_end_stall.py is about (destroying the
epoch's input iterators). Sides:

  autotune   tf.data's default: the host pipeline's autotuning turned back on, and TensorFlow's
             per-device pipelines left as TensorFlow builds them
  shipped    as the project trains: no autotuning in either (cnn.epoch_end_stall)

It prints every epoch's time in steps and after the last step, and per side the sum, the largest
and how many epochs waited more than a second. The wait depends on when in the autotuner's sleep
an epoch ends, so it varies from epoch to epoch and run to run: compare sums over many epochs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import REPO, print_table, write_record  # noqa: E402

SIDES = ("autotune", "shipped")


def one_side(side: str, images: int, epochs: int, data_dir: str | None) -> list[dict[str, float]]:
    """Train `epochs` epochs in this process; every epoch's seconds in steps and after the last step."""
    import tensorflow as tf

    from cnn import epoch_end_stall
    from cnn.config import TrainConfig
    from cnn.data import load_dataset
    from cnn.keras_compat import keras
    from cnn.model import build_model
    from cnn.pipeline import training_dataset

    data = load_dataset("cifar10", data_dir, limit=images)
    config = TrainConfig()
    if side == "shipped":
        epoch_end_stall.install()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    steps = len(data.x_train) // config.batch_size
    with strategy.scope():
        model = build_model(config, data.input_shape, data.num_classes, steps)

    class LastStep(keras.callbacks.Callback):
        ended = 0.0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.ended = time.perf_counter()

    rows = []
    for epoch in range(epochs):
        def shard(context: tf.distribute.InputContext, epoch: int = epoch) -> tf.data.Dataset:
            dataset = training_dataset(data.x_train, data.y_train, config, epoch)
            if side == "autotune":
                options = tf.data.Options()
                options.autotune.enabled = True
                dataset = dataset.with_options(options)
            return dataset

        last, started = LastStep(), time.perf_counter()
        model.fit(strategy.distribute_datasets_from_function(shard), epochs=epoch + 1, initial_epoch=epoch,
                  steps_per_epoch=steps, verbose=0, callbacks=[last])
        rows.append({"epoch": epoch + 1, "steps_seconds": last.ended - started,
                     "after_last_step_seconds": time.perf_counter() - last.ended})
    return rows


def run_side(side: str, args: argparse.Namespace) -> list[dict[str, float]]:
    """one_side in a fresh process (so that one side's TensorFlow state cannot reach the other)."""
    command = [sys.executable, __file__, "--side", side, "--images", str(args.images), "--epochs", str(args.epochs)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in done.stdout.splitlines() if line.startswith("epoch\t")]
    return [{"epoch": int(e), "steps_seconds": float(s), "after_last_step_seconds": float(a)} for _, e, s, a in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3200, help="CIFAR-10 training images (default 3,200)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one side, in its own process
    parser.add_argument("--out", default=None, help="JSON record (default bench/results/epoch_end_stall.json)")
    args = parser.parse_args()
    if args.side:
        for row in one_side(args.side, args.images, args.epochs, args.data_dir):
            print(f"epoch\t{row['epoch']}\t{row['steps_seconds']}\t{row['after_last_step_seconds']}", flush=True)
        return

    started = time.time()
    sides = {side: run_side(side, args) for side in SIDES}
    print_table(f"CIFAR-10 {args.images:,} images, batch 128, one worker, {args.epochs} epochs a side",
                ["side", "epoch", "steps s", "after last step s"],
                [(side, row["epoch"], row["steps_seconds"], row["after_last_step_seconds"])
                 for side, rows in sides.items() for row in rows])
    summary = {side: {"steps_seconds": sum(r["steps_seconds"] for r in rows),
                      "after_last_step_seconds": sum(r["after_last_step_seconds"] for r in rows),
                      "largest_wait_seconds": max(r["after_last_step_seconds"] for r in rows),
                      "epochs_waiting_over_1s": sum(r["after_last_step_seconds"] > 1 for r in rows)}
               for side, rows in sides.items()}
    print_table("per side", ["side", "steps s (sum)", "after last step s (sum)", "largest wait s", "epochs > 1 s"],
                [(side, s["steps_seconds"], s["after_last_step_seconds"], s["largest_wait_seconds"],
                  s["epochs_waiting_over_1s"]) for side, s in summary.items()])
    write_record("epoch_end_stall", {"images": args.images, "epochs": args.epochs, "batch_size": 128,
                                     "wall_seconds": time.time() - started, "summary": summary, "epochs_by_side": sides},
                 args.out)


if __name__ == "__main__":
    main()
