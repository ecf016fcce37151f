"""Scaling: one trial on 1 worker against the same trial on 2 workers, on this machine's CPUs.

    python bench/scaling.py                      # CIFAR-10 subset, 3 epochs, 2 repeats each

Both use every CPU (1 worker x all CPUs, or 2 workers x half), the same global batch (split
across the workers) and the same data. Steady-state images/s: training time alone of every
epoch but the first, pooled over the repeats; the figure is the pool's median. On one 2-core machine little gain is expected: the two workers share
the same cores and add an all-reduce of every gradient per step. bench/README.md turns the
measured step time and the gradient size into an estimate for GPUs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import median, print_table, write_record
from runs import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    cpus = os.cpu_count() or 1
    rates: dict[int, list[float]] = {1: [], 2: []}
    step_ms: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):
            flags = ["--dataset", args.dataset, "--limit", str(args.limit), "--test-limit", "500",
                     "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--target-accuracy", "1.0",
                     "--workers", str(workers), "--cpus-per-worker", str(cpus / workers)]
            if args.data_dir:
                flags += ["--data-dir", args.data_dir]
            with tempfile.TemporaryDirectory(prefix="bench-scaling-") as storage:
                history, _ = train(flags, Path(storage), f"w{workers}")
            steady = [row["images_per_second"] for row in history[1:]]
            rates[workers].extend(steady)
            step_ms[workers].extend(1000 * args.batch_size / rate for rate in steady)
            print(f"repeat {repeat + 1}, {workers} worker(s): median {median(steady):,.0f} images/s", flush=True)

    speedup = median(rates[2]) / median(rates[1])
    print_table(f"1 vs 2 workers per trial, {args.dataset} {args.limit:,} images, global batch {args.batch_size}, "
                f"{cpus} CPUs, {args.repeats} runs each", ["workers", "images/s (median)", "ms per step",
                                                          "epochs pooled", "min-max"],
                [[w, median(rates[w]), median(step_ms[w]), len(rates[w]), f"{min(rates[w]):,.0f}-{max(rates[w]):,.0f}"]
                 for w in (1, 2)])
    print_table("scaling", ["figure", "value"], [["2 workers / 1 worker", speedup]])
    write_record("scaling", {
        "command": f"python bench/scaling.py --dataset {args.dataset} --limit {args.limit} --epochs {args.epochs} "
                   f"--repeats {args.repeats}",
        "images_per_second": {str(w): v for w, v in rates.items()},
        "ms_per_step": {str(w): median(v) for w, v in step_ms.items()}, "speedup": speedup,
        "repeats": args.repeats, "batch_size": args.batch_size, "cpus": cpus}, args.out)


if __name__ == "__main__":
    main()
