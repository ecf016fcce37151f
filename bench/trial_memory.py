"""Memory of a sweep's per-trial processes, and the seconds from launching the sweep to its first epoch.

    python bench/trial_memory.py                 # 2 trials, one at a time, 2 epochs, MNIST subset

Runs `jobs/sweep.py --preset local` on a small grid (one trial at a time, 1 worker each, as
`make sweep` runs them) and samples every 0.5 s each process of that sweep's own Ray instance
(its descendants; another Ray on the machine is not counted) by the title Ray gives it:
`ray::ImplicitFunc` (a trial driver: Tune's function trainable), `ray::TrainController` (its
Ray Train controller) and `ray::RayTrainWorker` (a training worker). For each it prints the
peak resident set size (RSS: every page mapped, shared ones counted in full), the peak
proportional set size (PSS: shared pages divided among their sharers), the peak unique set
size (USS: pages no other process maps, what ending it would free) and whether TensorFlow's
library was mapped. Trial drivers and controllers sit on the head node, one each per running
trial, so their sum is what each concurrent trial costs the head (goal: <= 400 MB RSS).

Linux only (/proc). Launch -> first epoch is the time from starting the job to the first
training epoch's start, as the worker recorded it (`fit_started_at` in the checkpoint history).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import REPO, print_table, write_record  # noqa: E402
from runs import latest_history  # noqa: E402

ROLES = {"ray::ImplicitFunc": "trial driver", "ray::TrainController": "Train controller",
         "ray::RayTrainWorker": "training worker"}
MB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1200, help="MNIST training images (before the validation split)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as storage:
        command = [sys.executable, "jobs/sweep.py", "--preset", "local", "--seeds", "1", "--storage-path", storage, "--name", "m",
                   "--grid-l2", "0", "1e-3", "--grid-augment-strength", "1", "--epochs", str(args.epochs),
                   "--limit", str(args.limit), "--test-limit", "500", "--max-concurrent-trials", "1"]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        launched = time.time()
        job = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peaks: dict[int, dict] = {}
        sampler = threading.Thread(target=_sample_until_done, args=(job, peaks), daemon=True)
        sampler.start()
        output = job.stdout.read()
        job.wait()
        sampler.join()
        if job.returncode:
            raise SystemExit(f"error: the sweep failed (exit {job.returncode}):\n{output[-3000:]}")
        first_epoch = min(latest_history(run)[0]["fit_started_at"] for run in (Path(storage) / "m" / "train_runs").iterdir())
        wall = time.time() - launched

    rows, by_role = [], {}
    for role in ROLES.values():
        found = [p for p in peaks.values() if p["role"] == role]
        by_role[role] = {"processes": len(found), "tensorflow_mapped": any(p["tensorflow"] for p in found),
                         **{f"peak_{k}_mb": max((p[k] for p in found), default=0) / MB for k in ("rss", "pss", "uss")}}
        rows.append([role, len(found), by_role[role]["peak_rss_mb"], by_role[role]["peak_pss_mb"],
                     by_role[role]["peak_uss_mb"], "yes" if by_role[role]["tensorflow_mapped"] else "no"])
    per_trial = by_role["trial driver"]["peak_rss_mb"] + by_role["Train controller"]["peak_rss_mb"]
    per_trial_pss = by_role["trial driver"]["peak_pss_mb"] + by_role["Train controller"]["peak_pss_mb"]
    per_trial_uss = by_role["trial driver"]["peak_uss_mb"] + by_role["Train controller"]["peak_uss_mb"]
    print_table(f"per-trial processes ({' '.join(command[1:4])} ..., 2 trials of {args.epochs} epochs, one at a time)",
                ["process", "seen", "peak RSS, MB", "peak PSS, MB", "peak USS, MB", "TensorFlow mapped"], rows)
    print_table("what each running trial costs the head node, and start-up",
                ["figure", "value"],
                [["trial driver + controller, peak RSS, MB", per_trial],
                 ["trial driver + controller, peak PSS, MB", per_trial_pss],
                 ["trial driver + controller, peak USS, MB", per_trial_uss],
                 ["launch -> first epoch, s", first_epoch - launched], ["whole job, s", wall]])
    write_record("trial_memory", {
        "command": " ".join(command[1:]).replace(storage, "<a temporary folder>"), "processes": by_role,
        "driver_plus_controller_rss_mb": round(per_trial, 1), "driver_plus_controller_pss_mb": round(per_trial_pss, 1),
        "driver_plus_controller_uss_mb": round(per_trial_uss, 1),
        "launch_to_first_epoch_seconds": round(first_epoch - launched, 1), "wall_seconds": round(wall, 1),
        "goal": {"driver_plus_controller_rss_mb": 400}}, args.out)


def _sample_until_done(job: subprocess.Popen, peaks: dict[int, dict]) -> None:
    while job.poll() is None:
        for pid, role in _sweep_processes(job.pid).items():
            usage = _memory(pid)
            if usage is None:
                continue
            peak = peaks.setdefault(pid, {"role": role, "rss": 0, "pss": 0, "uss": 0, "tensorflow": False})
            for key in ("rss", "pss", "uss"):
                peak[key] = max(peak[key], usage[key])
            peak["tensorflow"] = peak["tensorflow"] or usage["tensorflow"]
        time.sleep(0.5)


def _sweep_processes(root: int) -> dict[int, str]:
    """Descendants of the sweep job that Ray titled as one of ROLES."""
    parents, titles = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            titles[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {}
    for pid, title in titles.items():
        role = next((r for prefix, r in ROLES.items() if title.startswith(prefix)), None)
        if role and _descends_from(pid, root, parents):
            found[pid] = role
    return found


def _descends_from(pid: int, root: int, parents: dict[int, int]) -> bool:
    while pid in parents and pid > 1:
        if pid == root:
            return True
        pid = parents[pid]
    return False


def _memory(pid: int) -> dict[str, int | bool] | None:
    """RSS, PSS and USS bytes of a process and whether TensorFlow's library is mapped; None if it is gone."""
    try:
        rollup = (Path(f"/proc/{pid}") / "smaps_rollup").read_text().splitlines()
        maps = (Path(f"/proc/{pid}") / "maps").read_text()
    except OSError:
        return None
    kib = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup[1:] if line.endswith("kB")}
    return {"rss": kib.get("Rss", 0), "pss": kib.get("Pss", 0),
            "uss": kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0), "tensorflow": "libtensorflow" in maps}


if __name__ == "__main__":
    main()
