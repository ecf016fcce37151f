"""Starting a private local Ray whose processes know their own cluster's address.

Ray Train's PlacementGroupCleaner (and anything else in the cluster that calls Ray's state
API without an address) finds "its" cluster by scanning the machine for GCS processes. With
a second Ray instance on the same machine (another local sweep, a person's own
`ray start`), that scan fails with "Found multiple active Ray instances", the cleaner dies,
and the placement groups of trials that ASHA stopped are never freed: the next trials wait
for CPUs forever and the sweep hangs (seen on Ray 2.60 with three local instances).
Choosing the GCS port before starting, and handing every worker RAY_ADDRESS, removes the guess.

How workers get RAY_ADDRESS (and the caller's other settings) matters for speed: every Ray
process inherits the environment of the raylet, which inherits this process's, so the settings
are put in this process's environment while Ray starts (and taken out again after). A job
runtime environment (`runtime_env={"env_vars": ...}`) would do the same, but then Ray sets up
that runtime environment for every process it starts and cannot give them the idle worker
processes it starts with. Of the five processes a trial starts, three are then plain (the
placement-group cleaner, the synchronisation actor, the training worker; Tune and Ray Train give
the trial driver and the Train controller runtime environments of their own anyway). Measured
here: 2.5–2.8 s to an actor's first call with a runtime environment, 1.9–2.0 s without, 0.3 s
on an idle prestarted process; the first epoch came 3.6 and 5.3 s sooner (bench/README.md,
"Second stop on issue 19").

A local Ray is one machine, which no cloud preempts: Ray Train's preemption watcher (an actor per
run that follows Ray's notices of nodes about to be taken away) is switched off here, unless the
caller set RAY_TRAIN_ENABLE_PREEMPTION_WATCHER itself. It saves every trial a process (about 3.4
CPU-seconds, bench/README.md, "Third stop on issue 19"). On a cluster (RAY_ADDRESS set) it stays on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GCS_PORT_SETTING = "RAY_GCS_SERVER_PORT"  # read by Ray when it starts a local GCS
ADDRESS_SETTING = "RAY_ADDRESS"
# Settings for every process of a one-machine Ray, each kept only if the caller has not set it.
ONE_MACHINE_SETTINGS = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def init_local_ray(env_vars: dict[str, str] | None = None, **init_kwargs: Any) -> str:
    """`ray.init(address="local", ...)` whose every process has `env_vars` and RAY_ADDRESS set;
    returns the GCS address."""
    import ray

    node_ip = ray.util.get_node_ip_address()
    port = _free_port(node_ip)
    address = f"{node_ip}:{port}"
    with environment(process_settings(env_vars or {}, address, port)):
        # address="local" starts a new cluster whatever RAY_ADDRESS says (Ray reads the variable
        # only for address=None or "auto").
        ray.init(address="local", **init_kwargs)
    started = ray.get_runtime_context().gcs_address
    if started != address:  # Ray chose otherwise: say so rather than hand workers a wrong address
        raise RuntimeError(f"local Ray started its GCS at {started}, not at the chosen {address}")
    return address


def process_settings(env_vars: dict[str, str], address: str, port: int) -> dict[str, str]:
    """What every process of the local Ray gets: the one-machine defaults the caller has not set
    themselves, then `env_vars`, then the cluster's address."""
    defaults = {key: value for key, value in ONE_MACHINE_SETTINGS.items() if key not in os.environ}
    return {**defaults, **env_vars, ADDRESS_SETTING: address, GCS_PORT_SETTING: str(port)}


@contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """These environment variables set inside the block, the previous values restored after."""
    previous = {key: os.environ.get(key) for key in settings}
    try:
        os.environ.update(settings)
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
