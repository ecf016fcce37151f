"""Real Ray clusters for tests, started with `ray start` on loopback: token auth on, own token, stopped after."""

from __future__ import annotations

import secrets
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sweep_checks import job_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
                        f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, text=True, timeout=120)
        yield {"gcs": f"127.0.0.1:{gcs_port}", "dashboard": f"http://127.0.0.1:{dashboard_port}"}
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=120)


def add_node(env: dict[str, str], gcs: str, num_cpus: int) -> None:
    """A second node on this machine, joining the head with `ray start --address`."""
    subprocess.run(["ray", "start", f"--address={gcs}", "--node-ip-address=127.0.0.1",
                    f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                    f"--num-cpus={num_cpus}", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, text=True, timeout=120)
