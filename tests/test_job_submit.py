"""The used-by path: `ray start --head` on loopback with token auth, then `ray job submit` the sweep."""

from __future__ import annotations

import secrets
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from sweep_checks import REPO, check_tables, job_env

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def head_node(data_dir, tmp_path):
    """A one-node cluster of our own: loopback only, its own token, its own temp folder; stopped after."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = job_env(data_dir, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    # Ray's socket paths must stay short, hence a temp folder directly under /tmp.
    temp_dir = tempfile.mkdtemp(prefix="ray-")
    gcs_port, dashboard_port = free_port(), free_port()
    subprocess.run(["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--num-cpus=2",
                    f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, text=True, timeout=120)
    try:
        yield {"env": env, "address": f"http://127.0.0.1:{dashboard_port}"}
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_job_submit_runs_the_smoke_sweep(head_node, data_dir, tmp_path):
    storage = tmp_path / "storage"
    submit = subprocess.run(
        ["ray", "job", "submit", "--address", head_node["address"], "--working-dir", ".", "--",
         "python", "jobs/sweep.py", "--preset", "smoke", "--storage-path", str(storage),
         "--name", "submitted", "--data-dir", str(data_dir)],
        cwd=REPO, env=head_node["env"], capture_output=True, text=True, timeout=900)
    assert submit.returncode == 0, (submit.stdout[-3000:], submit.stderr[-3000:])
    assert "succeeded" in submit.stdout.lower()
    trials, epochs = check_tables(storage / "submitted", expected_trials=2)
    assert set(trials["status"]) == {"finished"} and len(epochs) == 4


def test_token_authentication_is_on(head_node):
    without_token = {**head_node["env"], "RAY_AUTH_TOKEN_PATH": "/nonexistent", "RAY_AUTH_MODE": "disabled"}
    refused = subprocess.run(["ray", "job", "list", "--address", head_node["address"]],
                             env=without_token, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    allowed = subprocess.run(["ray", "job", "list", "--address", head_node["address"]],
                             env=head_node["env"], capture_output=True, text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
