"""Streaming an image folder through Ray Data against reading it into memory (issue 17).

    python bench/data_streaming.py                      # folders of 20,000 and 200,000 images: about 25 min
    python bench/data_streaming.py --sizes 20000 --repeats 1

Writes image folders (CIFAR-10's training images as PNG files, one subfolder per class; the
200,000-image folder repeats the 50,000 images four times under new names) under --work-dir, not
committed. Then runs `jobs/train.py` on them, one training worker with both CPUs, --epochs epochs
(2) of at most --steps steps (batch 128: --limit is set so that the training split holds that many
batches; the 20,000-image folder holds 14,400 training images, 112 batches, after its held-out
test set and validation split), alternating the two loaders:

- memory: the driver decodes the images it trains on into arrays, puts them in the object store;
- stream: a FolderReader lists the folder on the cluster, Ray Data reads the training images and
  streams them to the worker; the driver holds neither the images nor the file list.

For each run it samples the driver process's resident memory every 0.2 s (its peak is what must
not grow with the folder) and reads the epoch's training images/s from the run's checkpoint
(train steps x batch / the worker's time in model.fit), for the first epoch and for the later ones:
the first epoch of a stream also pays for starting Ray Data (its coordinator and decoding processes
import their libraries on the same cores), once per run. For every streamed epoch it also prints the
worker's time inside Ray Data's iterator (epochs.csv's stream_wait_seconds) beside its time in
model.fit: a wait near the fit time means the training waited for images. With --full-epoch, the
largest folder is also streamed for one whole epoch (every image, about 10 minutes here).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import REPO, RESULTS, median, print_table, write_record  # noqa: E402
from runs import latest_history  # noqa: E402

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCH = 128
VALIDATION_FRACTION = 0.1
MB = 2**20


def write_folder(root: Path, images: int, data_dir: Path) -> Path:
    """root/<class>/<n>.png for `images` CIFAR-10 training images (cycled); kept if already complete."""
    import numpy as np
    from PIL import Image

    done = root / ".complete"
    if done.exists():
        return root
    with np.load(data_dir / "cifar10.npz") as arrays:
        x, y = arrays["x_train"], arrays["y_train"].reshape(-1)
    for name in CIFAR_CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.fromarray(x[i % len(x)]).save(root / CIFAR_CLASSES[int(y[i % len(x)])] / f"{i:06d}.png")
    done.write_text(str(images))
    return root


def peak_rss_mb(pid: int, stop: threading.Event, found: list[float]) -> None:
    """The highest VmRSS of `pid` seen every 0.2 s until `stop` (or the process ends)."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found.append(int(line.split()[1]) / 1024)
        except OSError:
            return
        time.sleep(0.2)


def train_run(folder: Path, loader: str, limit: int | None, epochs: int, work: Path, name: str) -> dict[str, Any]:
    """One jobs/train.py run; its driver's peak RSS, wall time and every epoch's images/s."""
    command = [sys.executable, "jobs/train.py", "--dataset", str(folder), "--data-loader", loader, "--epochs", str(epochs),
               "--batch-size", str(BATCH), "--workers", "1", "--cpus-per-worker", "2", "--test-limit", "1000",
               "--validation-fraction", str(VALIDATION_FRACTION), "--storage-path", str(work / "runs"), "--name", name,
               *(["--limit", str(limit)] if limit else [])]
    started = time.perf_counter()
    with open(work / f"{name}.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        stop, found = threading.Event(), []
        sampler = threading.Thread(target=peak_rss_mb, args=(process.pid, stop, found), daemon=True)
        sampler.start()
        code = process.wait()
        stop.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"error: {name} failed (exit {code}); see {work / (name + '.log')}")
    history = latest_history(work / "runs" / name)
    speeds = [epoch["images_per_second"] for epoch in history]
    return {"driver_peak_rss_mb": max(found), "wall_seconds": time.perf_counter() - started,
            "first_epoch_images_per_second": speeds[0],
            "images_per_second": median(speeds[1:]) if len(speeds) > 1 else speeds[0],
            "epoch_images_per_second": speeds, "epoch_train_seconds": [epoch["train_seconds"] for epoch in history],
            # a stream's time inside Ray Data's iterator, per epoch (None in memory): near train_seconds, input-bound
            "epoch_stream_wait_seconds": [epoch.get("stream_wait_seconds") for epoch in history],
            "steps": round(speeds[-1] * history[-1]["train_seconds"] / BATCH)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--steps", type=int, default=150, help="training steps of one epoch, batch 128")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; images/s is the later epochs' median")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full-epoch", action=argparse.BooleanOptionalAction, default=True,
                        help="also stream one whole epoch of the largest folder")
    parser.add_argument("--work-dir", default=str(RESULTS / "runs" / "data_streaming"))
    parser.add_argument("--data-dir", default=os.environ.get("CNN_DATA_DIR") or str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    limit = int(round(args.steps * BATCH / (1 - VALIDATION_FRACTION))) + 1  # the training split holds `steps` batches
    runs = []
    for size in args.sizes:
        started = time.perf_counter()
        folder = write_folder(work / f"images_{size}", size, Path(args.data_dir))
        print(f"folder of {size:,} images: {folder} ({time.perf_counter() - started:.0f} s)", flush=True)
        for repeat in range(args.repeats):
            for loader in ("memory", "stream"):
                name = f"{loader}_{size}_r{repeat}_{int(time.time())}"
                result = train_run(folder, loader, limit, args.epochs, work, name)
                runs.append({"images": size, "loader": loader, "repeat": repeat, "limit": limit, **result})
                print(f"{name}: {result}", flush=True)
    if args.full_epoch:
        size = max(args.sizes)
        name = f"stream_{size}_full_{int(time.time())}"
        result = train_run(work / f"images_{size}", "stream", None, 1, work, name)
        runs.append({"images": size, "loader": "stream", "repeat": 0, "limit": None, **result})
        print(f"{name}: {result}", flush=True)

    rows = []
    for size in args.sizes:
        for loader in ("memory", "stream"):
            mine = [r for r in runs if r["images"] == size and r["loader"] == loader and r["limit"]]
            rows.append([f"{size:,}", loader, len(mine), mine[0]["steps"],
                         median([r["first_epoch_images_per_second"] for r in mine]),
                         median([r["images_per_second"] for r in mine]),
                         max(r["driver_peak_rss_mb"] for r in mine), median([r["wall_seconds"] for r in mine])])
    for r in runs:
        if r["limit"] is None:
            rows.append([f"{r['images']:,}", "stream, whole epoch", 1, r["steps"], r["images_per_second"], "-",
                         r["driver_peak_rss_mb"], r["wall_seconds"]])
    print_table(f"jobs/train.py, 1 worker x 2 CPUs, {args.epochs} epochs, batch {BATCH}, CIFAR-10 PNGs",
                ["folder", "loader", "runs", "steps an epoch", "median images/s, epoch 1",
                 "median images/s, later epochs", "driver peak RSS MB (max)", "median wall s"], rows)
    waits = [[f"{r['images']:,}", r["repeat"] if r["limit"] else "whole epoch", epoch + 1, train, wait, wait / train]
             for r in runs if r["loader"] == "stream"
             for epoch, (train, wait) in enumerate(zip(r["epoch_train_seconds"], r["epoch_stream_wait_seconds"]))]
    print_table("streamed epochs: the worker's time in model.fit and inside Ray Data's iterator",
                ["folder", "run", "epoch", "train s", "stream wait s", "wait / train"], waits)
    for size in args.sizes:
        speeds = {loader: median([r["images_per_second"] for r in runs
                                  if r["images"] == size and r["loader"] == loader and r["limit"]])
                  for loader in ("memory", "stream")}
        which = "after the first epoch" if args.epochs > 1 else "in one epoch"
        print(f"{size:,} images: stream / memory images/s {which} = "
              f"{speeds['stream'] / speeds['memory']:.2f} (goal: at least 0.9)")
    write_record("data_streaming", {"steps": args.steps, "epochs": args.epochs, "batch": BATCH, "runs": runs}, args.out)


if __name__ == "__main__":
    main()
