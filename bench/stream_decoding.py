"""The CPU a streamed image costs, without training: the loader's decoding blocks against Ray Data's
own `read_images` (issue 17).

    python bench/stream_decoding.py                  # the 20,000-image folder of bench/data_streaming.py
    python bench/stream_decoding.py --folder my_images/ --limit 0

On a CPU-only machine, a streamed image's decoding runs on the cores the training step uses, so
its CPU cost is what streaming takes from the training. This starts a Ray cluster of 2 CPUs on this
machine, opens the folder as a sweep does (cnn_ray.job_data.open_data, --data-loader stream), and
reads its training images through a one-worker `streaming_split` as a training worker does
(batches of 128, local shuffle buffer) for --epochs epochs, once per design:

- blocks: what the loader streams (cnn_ray/streaming.py: blocks of files decoded into one array);
- read_images: `ray.data.read_images` over the same files (a block per file; the first design,
  here without its file shuffle, paths and label lookup, so if anything it is charged too little).

For each epoch it prints the images/s and the CPU seconds per image of every process of this
cluster (this script and its descendants: Ray's own processes, the decoding tasks, the
coordinator), from /proc. The first epoch includes Ray Data's start (processes importing their
libraries). Linux only. Other work on the machine inflates the time, and with it the CPU of Ray's
own processes, which do some work every fraction of a second: measure on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from common import RESULTS, print_table, write_record

TICKS = os.sysconf("SC_CLK_TCK")
BATCH = 128


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of `root` and every live descendant (Ray's processes outlive an epoch)."""
    parents, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def read_images_dataset(files: list[tuple[str, int]], config: Any) -> Any:
    """The first design: Ray Data's read_images over the same files (no CPU asked, 2 tasks at a time)."""
    import ray.data

    from cnn.image_folder import PIL_MODES

    return ray.data.read_images([path for path, _ in files], size=config.image_size,
                                mode=PIL_MODES[config.color_mode], num_cpus=0, concurrency=2)


def epochs_of(dataset: Any, epochs: int) -> list[dict[str, float]]:
    """Read `dataset` as one training worker would, `epochs` times; images/s and CPU ms per image."""
    shard = dataset.streaming_split(1, equal=True)[0]
    found = []
    for _ in range(epochs):
        cpu, started, images = tree_cpu_seconds(os.getpid()), time.perf_counter(), 0
        for batch in shard.iter_batches(batch_size=BATCH, batch_format="numpy", drop_last=True,
                                        local_shuffle_buffer_size=2048, local_shuffle_seed=0):
            images += len(batch["image"])
        seconds = time.perf_counter() - started
        found.append({"images": images, "seconds": seconds, "images_per_second": images / seconds,
                      "cpu_ms_per_image": 1000 * (tree_cpu_seconds(os.getpid()) - cpu) / images})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=str(RESULTS / "runs" / "data_streaming" / "images_20000"),
                        help="an image folder (default: bench/data_streaming.py's 20,000 images)")
    parser.add_argument("--limit", type=int, default=0, help="files to train on (0: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import ray

    from cnn.config import TrainConfig
    from cnn.image_folder import list_image_files, training_and_validation
    from cnn_ray.job_data import open_data

    config = TrainConfig(dataset=args.folder, data_loader="stream", limit=args.limit or None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        data = open_data(config, None)
        files, _ = training_and_validation(list_image_files(args.folder, config.test_fraction).train,
                                           config.limit, config.validation_fraction)
        runs = {"blocks": epochs_of(data.trial.stream.dataset(config.seed), args.epochs),
                "read_images": epochs_of(read_images_dataset(files, config), args.epochs)}
    finally:
        ray.shutdown()
    rows = [[design, epoch + 1, found["images"], found["images_per_second"], found["cpu_ms_per_image"]]
            for design, epochs in runs.items() for epoch, found in enumerate(epochs)]
    print_table(f"{args.folder}: training images streamed to one reader, no training (2 CPUs)",
                ["design", "epoch", "images", "images/s", "CPU ms per image (all of Ray)"], rows)
    write_record("stream_decoding", {"folder": Path(args.folder).name, "limit": args.limit, "runs": runs}, args.out)


if __name__ == "__main__":
    main()
