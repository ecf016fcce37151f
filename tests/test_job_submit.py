"""The used-by path: `ray start --head` on loopback with token auth, then `ray job submit` the sweep."""

from __future__ import annotations

import subprocess

import pytest

from ray_cluster import head_node as start_head, token_env
from sweep_checks import REPO, check_tables

pytestmark = pytest.mark.slow


@pytest.fixture()
def head_node(data_dir, tmp_path):
    """A one-node cluster of our own: loopback only, its own token, its own temp folder; stopped after."""
    env = token_env(data_dir, tmp_path)
    with start_head(env, num_cpus=2) as addresses:
        yield {"env": env, "address": addresses["dashboard"]}


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
