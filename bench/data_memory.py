"""Memory of a dataset in the object store and in a training worker: bytes (uint8) against floats.

    python bench/data_memory.py                   # full CIFAR-10 (45,000 train / 5,000 validation / 10,000 test)
    python bench/data_memory.py --dataset mnist

The driver loads the dataset as the sweep does (`cnn.data.load_dataset`: one byte a pixel) and
puts it in Ray's object store; for "float32 (before)" it first converts the images to float32 in
[0, 1], which is what every version before issue 17 stored (the input pipeline's scaling is then a
cast, so the worker runs exactly the old path). A fresh Ray worker process, one CPU, then does what
a training worker does with its data before and during its first epoch: imports TensorFlow, fetches
the dataset from the object store, streams one epoch of its training pipeline (shuffled, augmented,
batch 128) and fills the cached validation and test pipelines. It reads its own /proc: resident
memory before the fetch, its peak (VmHWM) after the epoch, and its private memory (USS: pages no
other process maps; the object store's pages are shared and count in RSS only once touched).
"The dataset's share" is the peak minus the resident memory before the fetch. Linux only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import print_table, write_record  # noqa: E402

MB = 2**20
FORMATS = ("uint8", "float32")


def proc_kib(field: str, path: str = "/proc/self/status") -> int:
    """A kB field of /proc/self/status (VmRSS, VmHWM) or smaps_rollup (Private_Dirty, ...)."""
    with open(path) as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def private_kib() -> int:
    return sum(proc_kib(f, "/proc/self/smaps_rollup") for f in ("Private_Clean", "Private_Dirty"))


def worker_memory(refs: list[Any], batch_size: int) -> dict[str, float]:
    """Run in a fresh Ray worker: a training worker's use of its data over one epoch, in MB."""
    import ray
    import tensorflow as tf

    from cnn.config import TrainConfig
    from cnn.pipeline import evaluation_dataset, training_dataset

    tf.constant(0.0)  # TensorFlow's runtime up before the baseline
    before = proc_kib("VmRSS")
    data = ray.get(refs[0])
    fetched = proc_kib("VmRSS")
    config = TrainConfig(batch_size=batch_size)  # augmentation on, as the study trains
    started, images = time.perf_counter(), 0
    for batch, _ in training_dataset(data.x_train, data.y_train, config, epoch=0):
        images += int(batch.shape[0])
    pipeline_seconds = time.perf_counter() - started
    for x, y in ((data.x_val, data.y_val), (data.x_test, data.y_test)):
        for _ in range(2):  # the second pass reads the cache, as every epoch after the first
            for _ in evaluation_dataset(x, y, batch_size):
                pass
    return {"rss_before_fetch_mb": before / 1024, "rss_after_fetch_mb": fetched / 1024,
            "rss_peak_mb": proc_kib("VmHWM") / 1024, "private_mb": private_kib() / 1024,
            "dataset_share_mb": (proc_kib("VmHWM") - before) / 1024,
            "pipeline_images_per_second": images / pipeline_seconds}


def as_floats(data: Any) -> Any:
    """The dataset as stored before issue 17: images float32 in [0, 1]."""
    from cnn.data import unit_float

    return dataclasses.replace(data, x_train=unit_float(data.x_train), x_val=unit_float(data.x_val),
                               x_test=unit_float(data.x_test))


def measure(data: Any, batch_size: int) -> dict[str, float]:
    import ray

    arrays = [getattr(data, f"{kind}_{split}") for kind in "xy" for split in ("train", "val", "test")]
    ref = ray.put(data)
    task = ray.remote(num_cpus=1, max_calls=1)(worker_memory)  # max_calls=1: a process of its own
    result = ray.get(task.remote([ref], batch_size))
    del ref
    return {"object_mb": sum(a.nbytes for a in arrays) / MB,
            "images_mb": sum(a.nbytes for a in arrays[:3]) / MB, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=None, help="training images before the split (default: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import ray

    from cnn.data import load_dataset
    from cnn_ray.local_ray import init_local_ray

    data = load_dataset(args.dataset, data_dir=args.data_dir, limit=args.limit)
    print(data.describe(), flush=True)
    init_local_ray(num_cpus=2, include_dashboard=False)
    try:
        results = {"uint8": measure(data, args.batch_size), "float32": measure(as_floats(data), args.batch_size)}
    finally:
        ray.shutdown()
    names = {"uint8": "uint8 (now)", "float32": "float32 (before)"}
    print_table(f"{data.describe()}; one worker, one epoch of its pipeline (batch {args.batch_size})",
                ["images stored as", "object MB", "images MB", "worker RSS before fetch MB", "peak RSS MB",
                 "dataset's share MB", "private MB", "pipeline images/s"],
                [[names[f], r["object_mb"], r["images_mb"], r["rss_before_fetch_mb"], r["rss_peak_mb"],
                  r["dataset_share_mb"], r["private_mb"], r["pipeline_images_per_second"]]
                 for f, r in results.items()])
    share = results["float32"]["dataset_share_mb"] / results["uint8"]["dataset_share_mb"]
    objects = results["float32"]["object_mb"] / results["uint8"]["object_mb"]
    print(f"\nfloat32 / uint8: object {objects:.2f}x, the worker's dataset share {share:.2f}x (goal: at least 3x)")
    where = data.source.split(" (", 1)[0]  # the record names the file, not this machine's folder
    write_record("data_memory", {"dataset": data.describe().replace(where, where.rsplit("/", 1)[-1]), "batch_size": args.batch_size, "results": results,
                                 "object_ratio": objects, "worker_share_ratio": share}, args.out)


if __name__ == "__main__":
    main()
