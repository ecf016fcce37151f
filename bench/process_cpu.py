"""CPU-seconds spent by every process of a run, grouped by what the process is, read from /proc.

A sweep's wall-clock phases (bench/sweep_overhead.py's breakdown) say when a trial was starting or
training; they cannot say what the CPUs did meanwhile: on a 2-core machine one trial's start-up
runs beside another trial's training, and Ray's own daemons use CPU all along. This sampler reads
the CPU time (user + system) of the benchmark's process tree once a second and keeps, for every
process it saw, the last reading (a process that exits loses at most its last second). Ray names
its worker processes after what they run (`ray::RayTrainWorker`, `ray::TrainController`, ...),
which gives the groups.

    with ProcessCpu(root_pid) as cpu:
        ... run ...
    cpu.by_group()  # {"training workers": 812.4, "Ray daemons (GCS, raylet, dashboard, agents)": 61.0, ...}
    cpu.by_process()  # finer: {"ray::RayTrainWorker": 812.4, "/gcs/gcs_server": 20.5, "ray-dashboard-StateHead": ...}
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# (group, substrings of the command line that put a process in it), first match wins.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("training workers", ("ray::RayTrainWorker", "ray::_RayTrainWorker")),
    ("Train controllers", ("ray::TrainController",)),
    ("trial drivers (Tune function actors)", ("ray::_Inner", "ray::ImplicitFunc", "run_trial")),
    ("Train helpers (synchronisation actor, placement-group cleaner, state actor)",
     ("ray::SynchronizationActor", "ray::PlacementGroupCleaner", "ray::TrainStateActor")),
    # The raylet starts the two agents as titled processes; the dashboard forks one process per module.
    ("Ray daemons (GCS, raylet, dashboard, agents, monitors)",
     ("ray::DashboardAgent", "ray::RuntimeEnvAgent", "/dashboard/agent.py", "/runtime_env/agent/main.py",
      "ray-dashboard-", "multiprocessing.forkserver", "/gcs/gcs_server", "/raylet/raylet",
      "/dashboard/dashboard.py", "/log_monitor.py", "/monitor.py")),
)
IDLE_WORKERS = "Ray worker processes before or without an actor"
SWEEP_DRIVER = "sweep driver (Tune loop, tables, report)"
OTHER = "other processes"


class ProcessCpu:
    """Samples the CPU time of `root` and all its descendants in a background thread."""

    def __init__(self, root: int, interval: float = 1.0, root_group: str = SWEEP_DRIVER) -> None:
        self.root, self.interval, self.root_group = root, interval, root_group
        # (pid, start time) -> (group, kind, CPU-seconds at the last reading); the start time tells a
        # reused pid apart
        self.seen: dict[tuple[int, int], tuple[str, str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ProcessCpu":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def by_group(self) -> dict[str, float]:
        return _totals((group, seconds) for group, _, seconds in self.seen.values())

    def by_process(self) -> dict[str, float]:
        """CPU-seconds by kind of process: Ray's title for a worker, the daemon's name for a daemon."""
        return _totals((kind, seconds) for _, kind, seconds in self.seen.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)
        self.sample()

    def sample(self) -> None:
        for pid in descendants(self.root):
            reading = cpu_reading(pid)
            if reading is None:
                continue
            key, seconds = (pid, reading[1]), reading[0]
            group, kind = self.seen[key][:2] if key in self.seen else (IDLE_WORKERS, IDLE_WORKERS)
            if group in (IDLE_WORKERS, OTHER):  # Ray titles its processes once they know their role
                command = command_line(pid)
                group = self.root_group if pid == self.root else group_of(command)
                kind = self.root_group if pid == self.root else kind_of(command)
            self.seen[key] = (group, kind, seconds)


def _totals(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, seconds in pairs:
        totals[name] = totals.get(name, 0.0) + seconds
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def group_of(command: str) -> str:
    if "default_worker.py" in command:  # a worker Ray has not titled yet (its flags name the raylet's socket)
        return IDLE_WORKERS
    for group, marks in GROUPS:
        if any(mark in command for mark in marks):
            return group
    return IDLE_WORKERS if command.startswith("ray::") else OTHER


def kind_of(command: str) -> str:
    """The mark that puts `command` in its group (a daemon's name), or a Ray worker's title up to its
    method (`ray::TrainController.run` -> `ray::TrainController`)."""
    if command.startswith("ray::"):
        return command.split()[0].split(".")[0]
    if command.startswith("ray-dashboard-"):  # one process per dashboard module: ray-dashboard-StateHead-0 (...)
        return command.split()[0].rsplit("-", 1)[0]
    for _, marks in GROUPS:
        for mark in marks:
            if mark in command:
                return mark
    return group_of(command)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_reading(pid: int) -> tuple[float, int] | None:
    """User + system CPU seconds of `pid` (its own, not its children's) and its start time (in clock
    ticks since boot), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[19])


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int) -> list[int]:
    """`root` and every process below it (Ray's daemons and workers are children of the driver's tree)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found
