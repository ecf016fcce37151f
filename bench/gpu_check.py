"""What only a GPU run can show: step time, NCCL against the ring, 1 against 2 workers per
trial, 2 GPUs per worker, mixed precision, determinism and trials sharing a GPU.

    python bench/gpu_check.py                  # on one GPU node: starts a local Ray there
    python bench/gpu_check.py --device cpu     # the same path on CPUs (the tests run a case of it)

Run it on the GPU node itself (ssh, or `ray attach cluster/aws.yaml` then a shell on a worker
node), not through the head of a multi-node cluster: the runs keep their checkpoints in a
local temporary folder that the script reads back. On 8 GPUs it should take 5 to 10 minutes
(an estimate: it has never run on a GPU).

Every case is a real Ray Train run of the sweep's own worker loop (cnn_ray/worker_loop.py: the
model, the tf.data pipeline with augmentation, per-epoch validation, test and checkpoint) on
synthetic CIFAR-10-shaped data, so no dataset has to be on the node. Each run trains a
warm-up epoch (graph tracing, cuDNN autotuning) and then `--epochs - 1` measured ones; the
figures are medians over the measured epochs. Cases that need more GPUs than the cluster has
are skipped and say so. The checks read what each worker recorded in its checkpoint
(workers/rank*.json): the replicas it trained, the all-reduce it used, its weights.

It prints a table to paste into bench/README.md ("GPU check") and writes
bench/results/gpu_check.json. It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python bench/gpu_check.py): this checkout first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, median, print_table, write_record  # noqa: E402

CIFAR_SHAPE = (32, 32, 3)


@dataclass(frozen=True)
class Case:
    """One measurement: `concurrent` identical runs at once (trials side by side), `repeats` in a row."""

    name: str
    workers: int
    gpus_per_worker: float
    changes: dict[str, Any] = field(default_factory=dict)
    concurrent: int = 1
    repeats: int = 1

    def gpus_needed(self) -> float:
        return self.workers * self.gpus_per_worker * self.concurrent


def gpu_cases(gpus: int) -> list[Case]:
    return [
        Case("1 GPU (the full preset's trial)", 1, 1.0),
        Case("1 GPU, steps_per_execution 1", 1, 1.0, {"steps_per_execution": 1}),
        Case("1 GPU, mixed_float16", 1, 1.0, {"precision": "mixed_float16"}),
        Case("1 GPU, deterministic, twice", 1, 1.0, {"deterministic": True}, repeats=2),
        Case("2 workers x 1 GPU, deterministic, twice", 2, 1.0, {"deterministic": True}, repeats=2),
        Case("2 workers x 1 GPU, NCCL", 2, 1.0, {"communication": "nccl"}),
        Case("2 workers x 1 GPU, ring", 2, 1.0, {"communication": "ring"}),
        Case("1 worker x 2 GPUs", 1, 2.0),
        Case("2 trials sharing 1 GPU (0.5 each)", 1, 0.5, concurrent=2),
        Case(f"{gpus} trials at once, 1 GPU each", 1, 1.0, concurrent=max(gpus, 1)),
    ]


def cpu_cases() -> list[Case]:
    return [
        Case("1 worker (CPU)", 1, 0.0),
        Case("2 workers (CPU), ring", 2, 0.0),
        Case("1 worker (CPU), deterministic, twice", 1, 0.0, {"deterministic": True}, repeats=2),
    ]


def synthetic_dataset(train: int, test: int, seed: int = 0):
    """Random CIFAR-10-shaped images and labels: speed does not depend on what the pixels show."""
    import numpy as np

    from cnn.data import Dataset

    rng = np.random.default_rng(seed)
    val = train // 10

    def images(n: int) -> np.ndarray:
        return rng.random((n, *CIFAR_SHAPE), dtype=np.float32)

    def labels(n: int) -> np.ndarray:
        return np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]

    return Dataset(name="synthetic", source="bench/gpu_check.py", class_names=[str(i) for i in range(10)],
                   x_train=images(train - val), y_train=labels(train - val), x_val=images(val), y_val=labels(val),
                   x_test=images(test), y_test=labels(test))


def run_case(case: Case, data_ref, storage: str, epochs: int, batch_size: int,
             cpus_per_worker: float) -> dict[str, Any]:
    """Run the case and summarise it from the runs' checkpoints."""
    import ray

    @ray.remote(num_cpus=0)
    def fit(name: str) -> str:
        from cnn.config import TrainConfig
        from cnn.replicas import WorkerResources
        from cnn_ray.trainer import make_trainer

        config = TrainConfig(dataset="synthetic", epochs=epochs, batch_size=batch_size, target_accuracy=1.0,
                             **case.changes)
        resources = WorkerResources(case.workers, cpus_per_worker, case.gpus_per_worker)
        return make_trainer(config, data_ref, resources, storage, name, max_failures=0).fit().checkpoint.path

    slug = "".join(c if c.isalnum() else "_" for c in case.name)[:40]
    started = time.time()
    paths = []
    for repeat in range(case.repeats):
        paths += ray.get([fit.remote(f"{slug}_{repeat}_{i}_{int(started)}") for i in range(case.concurrent)])
    return summarise(case, paths, time.time() - started, batch_size)


def summarise(case: Case, checkpoints: list[str], wall: float, batch_size: int) -> dict[str, Any]:
    from cnn.checkpoint_state import CheckpointState, read_worker_records

    runs = [(list(CheckpointState.read(path).history), read_worker_records(path)) for path in checkpoints]
    steady = [row for history, _ in runs for row in history[1:]] or [row for history, _ in runs for row in history]
    per_run = median([row["images_per_second"] for row in steady])
    devices = runs[0][1][0]["devices"]
    expected_replicas = case.workers * (int(case.gpus_per_worker) if case.gpus_per_worker >= 1 else 1)
    problems = []
    for history, workers in runs:
        if any(w["devices"]["replicas_in_sync"] != expected_replicas for w in workers):
            problems.append(f"replicas {[w['devices']['replicas_in_sync'] for w in workers]} != {expected_replicas}")
        if len({w["weights_sha256"] for w in workers}) != 1:
            problems.append("workers ended with different weights")
    if case.repeats > 1:
        digests = {workers[0]["weights_sha256"] for _, workers in runs}
        problems.append("repeats identical" if len(digests) == 1 else f"repeats DIFFER ({len(digests)} weight sets)")
    if case.concurrent > 1 and 0 < case.gpus_per_worker < 1:  # did Ray really put them on one GPU?
        shared = {workers[0]["devices"]["cuda_visible_devices"] for _, workers in runs}
        problems.append(f"CUDA_VISIBLE_DEVICES {', '.join(sorted(map(str, shared)))}: "
                        + ("one GPU shared" if len(shared) == 1 else "NOT shared"))
    return {
        "case": case.name, "layout": f"{case.workers} x {case.gpus_per_worker:g} GPU", "runs": len(runs),
        "replicas": devices["replicas_in_sync"], "all_reduce": devices["communication"],
        "precision": case.changes.get("precision", "float32"), "steps_per_execution": devices["steps_per_execution"],
        "global_batch": batch_size, "images_per_second_per_run": per_run,
        "images_per_second_all_runs": per_run * case.concurrent,
        "ms_per_step": 1000 * batch_size / per_run,
        "epoch_seconds": median([row["epoch_seconds"] for row in steady]),
        "train_share_of_epoch": median([row["train_seconds"] / row["epoch_seconds"] for row in steady]),
        "wall_seconds": wall, "gpus": devices["gpus"],
        "check": "; ".join(problems) or "ok",
    }


def run_cases(cases: list[Case], cluster: dict[str, float], epochs: int, batch_size: int, train_images: int,
              test_images: int, cpus_per_worker: float, storage: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(one row per case that ran, one line per case skipped)."""
    import ray

    data_ref = ray.put(synthetic_dataset(train_images, test_images))
    rows, skipped = [], []
    for case in cases:
        need_gpus, need_cpus = case.gpus_needed(), case.workers * cpus_per_worker * case.concurrent
        if need_gpus > cluster.get("GPU", 0) or need_cpus > cluster.get("CPU", 0):
            skipped.append(f"{case.name}: needs {need_gpus:g} GPU(s) and {need_cpus:g} CPU(s)")
            continue
        print(f"-- {case.name}", flush=True)
        rows.append(run_case(case, data_ref, storage, epochs, batch_size, cpus_per_worker))
    return rows, skipped


TABLE_HEADER = ["case", "workers x GPUs", "replicas", "all-reduce", "precision", "steps/call", "images/s per run",
                "images/s all runs", "ms/step", "epoch s (eval + checkpoint)", "train share", "check"]


def table_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[r["case"], r["layout"], r["replicas"], r["all_reduce"], r["precision"], r["steps_per_execution"],
             r["images_per_second_per_run"], r["images_per_second_all_runs"], r["ms_per_step"], r["epoch_seconds"],
             f"{r['train_share_of_epoch']:.0%}", r["check"]] for r in rows]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    for row in table_rows(rows):
        lines.append("| " + " | ".join(f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "gpu", "cpu"), default="auto",
                        help="auto: the GPU cases if the cluster has a GPU, else the CPU ones")
    parser.add_argument("--epochs", type=int, default=4, help="per run, the first a warm-up (default: 4)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (default: 128)")
    parser.add_argument("--train-images", type=int, default=12_800, help="synthetic training images (default: 12,800)")
    parser.add_argument("--test-images", type=int, default=2_560)
    parser.add_argument("--cpus-per-worker", type=float, default=2.0, help="as the full preset (default: 2)")
    parser.add_argument("--storage-path", default=None, help="where the runs' checkpoints go (default: a temp folder)")
    parser.add_argument("--out", default=None, help="JSON record (default: bench/results/gpu_check.json)")
    args = parser.parse_args()

    import ray

    from jobs.cli_common import connect_ray, quiet_console

    connect_ray(quiet_console(verbose=True))
    cluster = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    on_gpu = args.device == "gpu" or (args.device == "auto" and cluster.get("GPU", 0) >= 1)
    cases = gpu_cases(int(cluster.get("GPU", 0))) if on_gpu else cpu_cases()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        rows, skipped = run_cases(cases, cluster, args.epochs, args.batch_size, args.train_images, args.test_images,
                                  args.cpus_per_worker, args.storage_path or scratch)
    title = (f"GPU check: synthetic CIFAR-10-shaped data, {args.train_images:,} images, global batch "
             f"{args.batch_size}, {args.epochs} epochs per run (first one not measured), cluster {cluster}")
    print_table(title, TABLE_HEADER, table_rows(rows))
    for line in skipped:
        print(f"skipped: {line}")
    print(f"\nFor bench/README.md:\n\n{title}\n\n{markdown(rows)}\n", flush=True)
    write_record("gpu_check", {"command": " ".join(["python", "bench/gpu_check.py", *sys.argv[1:]]),
                               "cluster": cluster, "rows": rows, "skipped": skipped}, args.out)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
