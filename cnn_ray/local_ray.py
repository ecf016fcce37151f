"""Starting a private local Ray whose processes know their own cluster's address.

Ray Train's PlacementGroupCleaner (and anything else in the cluster that calls Ray's state
API without an address) finds "its" cluster by scanning the machine for GCS processes. With
a second Ray instance on the same machine (another local sweep, a person's own
`ray start`), that scan fails with "Found multiple active Ray instances", the cleaner dies,
and the placement groups of trials that ASHA stopped are never freed: the next trials wait
for CPUs forever and the sweep hangs (seen on Ray 2.60 with three local instances).
Choosing the GCS port before starting, and handing every worker RAY_ADDRESS through the
job's runtime environment, removes the guess.
"""

from __future__ import annotations

import os
import socket
from typing import Any

GCS_PORT_SETTING = "RAY_GCS_SERVER_PORT"  # read by Ray when it starts a local GCS


def init_local_ray(env_vars: dict[str, str] | None = None, **init_kwargs: Any) -> str:
    """`ray.init(address="local", ...)` with RAY_ADDRESS set for all its workers; returns the GCS address."""
    import ray

    node_ip = ray.util.get_node_ip_address()
    port = _free_port(node_ip)
    address = f"{node_ip}:{port}"
    previous = os.environ.get(GCS_PORT_SETTING)
    os.environ[GCS_PORT_SETTING] = str(port)
    try:
        ray.init(address="local", runtime_env={"env_vars": {**(env_vars or {}), "RAY_ADDRESS": address}},
                 **init_kwargs)
    finally:
        if previous is None:
            os.environ.pop(GCS_PORT_SETTING, None)
        else:
            os.environ[GCS_PORT_SETTING] = previous
    started = ray.get_runtime_context().gcs_address
    if started != address:  # Ray chose otherwise: say so rather than hand workers a wrong address
        raise RuntimeError(f"local Ray started its GCS at {started}, not at the chosen {address}")
    return address


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
