"""Real Ray clusters for tests, started with `ray start` on loopback: token auth on, own token, stopped after."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sweep_checks import job_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_ports() -> list[str]:
    """Free ports for a node's agents and metrics. Ray's defaults (dashboard agent 52365, ...) are
    the same for every node on a machine: beside another Ray instance (a benchmark, a person's own
    cluster, a second node of a test) the agent cannot bind, retries, gives up, and `ray job submit`
    is refused with "No available agent to submit job" (seen in the dashboard agent's log)."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]


def token_env(data_dir: Path, folder: Path) -> dict[str, str]:
    """A person's environment plus a token of this test's own (never ~/.ray/auth_token)."""
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return job_env(data_dir, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))


@contextmanager
def head_node(env: dict[str, str], num_cpus: int) -> Iterator[dict[str, str]]:
    """`ray start --head` on 127.0.0.1; yields its GCS and dashboard addresses; `ray stop` after."""
    temp_dir = tempfile.mkdtemp(prefix="ray-")  # Ray's socket paths must stay short: directly under /tmp
    gcs_port, dashboard_port = free_port(), free_port()
    try:
        subprocess.run(["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
                        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", f"--num-cpus={num_cpus}",
                        *agent_ports(),
                        f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                       env=own_address(env, f"127.0.0.1:{gcs_port}"), check=True, capture_output=True, text=True,
                       timeout=120)
        yield {"gcs": f"127.0.0.1:{gcs_port}", "dashboard": f"http://127.0.0.1:{dashboard_port}"}
    finally:
        stop_cluster(temp_dir)


def own_address(env: dict[str, str], gcs: str) -> dict[str, str]:
    """The environment for `ray start`: its raylet, and so every worker, knows its cluster's address.

    Ray Train's placement-group cleaner calls Ray's state API without an address; with another
    Ray instance on the machine (a benchmark, a person's own cluster) it cannot tell which is
    its own and dies, and the CPUs of killed or stopped runs stay reserved (cnn_ray/local_ray.py)."""
    return {**env, "RAY_ADDRESS": gcs}


def stop_cluster(temp_dir: str, grace_seconds: float = 15.0) -> None:
    """Stop this cluster's processes and no others.

    `ray stop --force` kills every Ray process on the machine: a person's own cluster, or a
    benchmark running beside the tests. A cluster's daemons (GCS, raylets, dashboard, monitors)
    name its temp dir on their command line; its workers and drivers are their descendants.
    SIGTERM first, SIGKILL whatever is left after the grace period.
    """
    pids = cluster_pids(temp_dir)
    _signal(pids, signal.SIGTERM)
    deadline = time.time() + grace_seconds
    while pids and time.time() < deadline:
        time.sleep(0.5)
        pids = {pid for pid in pids if _alive(pid)}
    _signal(pids, signal.SIGKILL)


def cluster_pids(temp_dir: str) -> set[int]:
    """Processes naming temp_dir in their arguments, and all their descendants."""
    table = process_table()
    marker = temp_dir.rstrip("/")
    roots = {pid for pid, (_, args) in table.items() if marker + "/" in args or args.endswith(marker)}
    return descendants(roots, table)


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, full command line) of every process on the machine."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in listing.splitlines():
        pid, ppid, *args = line.split(None, 2)
        table[int(pid)] = (int(ppid), args[0] if args else "")
    return table


def descendants(roots: set[int], table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """roots and every process below them (not this test process)."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid not in found and pid != os.getpid():
            found.add(pid)
            stack.extend(children.get(pid, []))
    return found


def _signal(pids: set[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def add_node(env: dict[str, str], gcs: str, num_cpus: int) -> None:
    """A second node on this machine, joining the head with `ray start --address`."""
    subprocess.run(["ray", "start", f"--address={gcs}", "--node-ip-address=127.0.0.1",
                    f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}", *agent_ports(),
                    f"--num-cpus={num_cpus}", "--disable-usage-stats"],
                   env=own_address(env, gcs), check=True, capture_output=True, text=True, timeout=120)


class WorkerNode:
    """A node started with `ray start --address --block` in a process group of its own, so a test can
    kill this node alone (raylet, workers and all), as a lost machine would vanish."""

    def __init__(self, process: subprocess.Popen, node_id: str):
        self.process, self.node_id = process, node_id

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def worker_node(env: dict[str, str], gcs: str, num_cpus: int) -> Iterator[WorkerNode]:
    before = _alive_node_ids(env, gcs)
    process = subprocess.Popen(["ray", "start", f"--address={gcs}", "--node-ip-address=127.0.0.1",
                                f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                                *agent_ports(), f"--num-cpus={num_cpus}", "--disable-usage-stats", "--block"],
                               env=own_address(env, gcs), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    node = WorkerNode(process, "")
    try:
        deadline = time.time() + 120
        while not node.node_id:
            assert process.poll() is None and time.time() < deadline, "the second node did not join"
            new = _alive_node_ids(env, gcs) - before
            node.node_id = new.pop() if new else ""
            time.sleep(1)
        yield node
    finally:
        node.kill()


def alive_actors(env: dict[str, str], gcs: str) -> list[dict]:
    """Every live actor of the cluster, with its class name, node id and required resources (Ray's state API)."""
    listed = subprocess.run(["ray", "list", "actors", "--address", gcs, "--filter", "state=ALIVE", "--limit", "10000",
                             "--detail", "--format", "json"], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(listed.stdout)


def _alive_node_ids(env: dict[str, str], gcs: str) -> set[str]:
    listed = subprocess.run(["ray", "list", "nodes", "--address", gcs, "--filter", "state=ALIVE", "--format", "json"],
                            env=env, capture_output=True, text=True, timeout=60)
    if listed.returncode:
        return set()
    return {node["node_id"] for node in json.loads(listed.stdout)}


def cluster_state(env: dict[str, str], gcs: str) -> str:
    """What a person would look at when a sweep hangs: `ray status`, then the placement groups and
    the live actors (where each is, what it waits for), as text for a failure message."""
    commands = [["ray", "status", f"--address={gcs}"],
                ["ray", "list", "placement-groups", "--address", gcs, "--detail", "--format", "yaml"],
                ["ray", "list", "actors", "--address", gcs, "--filter", "state!=DEAD", "--format", "table"]]
    parts = []
    for command in commands:
        try:
            shown = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            parts.append(f"--- {' '.join(command[:3])} ---\n{shown.stdout[-4000:]}{shown.stderr[-1000:]}")
        except subprocess.TimeoutExpired:
            parts.append(f"--- {' '.join(command[:3])} --- (no answer within 60 s)")
    return "\n".join(parts)
