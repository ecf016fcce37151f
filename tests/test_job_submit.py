"""The used-by path: `ray start --head` on loopback with token auth, then `ray job submit` the sweep."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from ray_cluster import head_node as start_head, token_env
from sweep_checks import REPO, check_tables

pytestmark = pytest.mark.slow

AGENT_NOT_READY = "No available agent to submit job"


@pytest.fixture()
def head_node(data_dir, tmp_path):
    """A one-node cluster of our own: loopback only, its own token, its own temp folder; stopped after."""
    env = token_env(data_dir, tmp_path)
    with start_head(env, num_cpus=2) as addresses:
        yield {"env": env, "address": addresses["dashboard"]}


def test_job_submit_runs_the_smoke_sweep(head_node, data_dir, tmp_path):
    storage = tmp_path / "storage"
    submit = submit_job(head_node, ["python", "jobs/sweep.py", "--preset", "smoke", "--storage-path", str(storage),
                                    "--name", "submitted", "--data-dir", str(data_dir)])
    assert submit.returncode == 0, (submit.stdout[-3000:], submit.stderr[-3000:])
    assert "succeeded" in submit.stdout.lower()
    trials, epochs = check_tables(storage / "submitted", expected_trials=2)
    assert set(trials["status"]) == {"finished"} and len(epochs) == 4


def submit_job(head_node: dict, entrypoint: list[str], attempts: int = 4) -> subprocess.CompletedProcess:
    """`ray job submit`, again while the head's job agent has not registered yet.

    The dashboard waits 10 s for the head node's agent and then refuses with "No available agent
    to submit job, please try again later" (ray/dashboard/modules/job/job_head.py): on a loaded
    machine a fresh head's agent can take longer. Every attempt names the same submission id, so
    should the job exist after all (the same text answers a timeout of the agent's own request),
    Ray refuses the retry rather than run the sweep twice."""
    submission_id = f"test-{uuid.uuid4().hex[:12]}"
    for _ in range(attempts):
        submit = subprocess.run(
            ["ray", "job", "submit", "--address", head_node["address"], "--submission-id", submission_id,
             "--working-dir", ".", "--", *entrypoint],
            cwd=REPO, env=head_node["env"], capture_output=True, text=True, timeout=900)
        if AGENT_NOT_READY not in submit.stdout + submit.stderr:
            return submit
        time.sleep(5)
    return submit


def test_token_authentication_is_on(head_node):
    without_token = {**head_node["env"], "RAY_AUTH_TOKEN_PATH": "/nonexistent", "RAY_AUTH_MODE": "disabled"}
    refused = subprocess.run(["ray", "job", "list", "--address", head_node["address"]],
                             env=without_token, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    allowed = subprocess.run(["ray", "job", "list", "--address", head_node["address"]],
                             env=head_node["env"], capture_output=True, text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
