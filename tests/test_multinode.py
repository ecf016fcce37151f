"""Multi-node on one machine: a head and a second `ray start --address` node, one CPU each.

A trial with two 1-CPU workers can only run with one worker on each node. The driver's copy
of the dataset is deleted as soon as the driver has read it, so the workers can only get
the data through Ray's object store, not through a path only the head has.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile

import pytest

from sweep_checks import REPO, check_tables, job_env
from test_job_submit import free_port

pytestmark = pytest.mark.slow


@pytest.fixture()
def two_nodes(data_dir, tmp_path):
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = job_env(data_dir, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    temp_dir = tempfile.mkdtemp(prefix="ray-")
    port = free_port()
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run(["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        "--dashboard-host=127.0.0.1", f"--dashboard-port={free_port()}",
                        f"--temp-dir={temp_dir}", *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run(["ray", "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1",
                        f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        yield {"env": {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}}
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_trial_workers_span_both_nodes_and_data_travels_through_ray(two_nodes, data_dir, tmp_path):
    driver_data = tmp_path / "driver-only-data"
    driver_data.mkdir()
    shutil.copy(data_dir / "mnist.npz", driver_data / "mnist.npz")
    storage = tmp_path / "shared-storage"  # one filesystem: what NFS gives real nodes
    env = {**two_nodes["env"], "CNN_DATA_DIR": "/nonexistent"}
    driver = subprocess.Popen(
        [sys.executable, "jobs/sweep.py", "--preset", "smoke", "--storage-path", str(storage), "--name", "two_nodes",
         "--data-dir", str(driver_data), "--workers-per-trial", "2", "--cpus-per-worker", "1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in driver.stdout:
        output.append(line)
        if line.startswith("== sweep"):
            shutil.rmtree(driver_data)  # read by the driver; no worker has started yet
    assert driver.wait(timeout=900) == 0, "".join(output)[-4000:]
    assert not driver_data.exists()
    assert '"cluster": {\n    "CPU": 2.0' in "".join(output)

    trials, _ = check_tables(storage / "two_nodes", expected_trials=2, workers_per_trial=2)
    for ids in trials["worker_node_ids"]:
        assert len(set(ids.split(";"))) == 2, f"workers of one trial should be on two nodes: {ids}"
