"""Multi-node on one machine: a head and a second `ray start --address` node, one CPU each.

A trial with two 1-CPU workers can only run with one worker on each node. The driver's copy
of the dataset is deleted as soon as the driver has read it, so the workers can only get
the data through Ray's object store, not through a path only the head has.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from ray_cluster import add_node, head_node, token_env
from sweep_checks import REPO, check_tables

pytestmark = pytest.mark.slow


@pytest.fixture()
def two_nodes(data_dir, tmp_path):
    env = token_env(data_dir, tmp_path)
    with head_node(env, num_cpus=1) as addresses:
        add_node(env, addresses["gcs"], num_cpus=1)
        yield {"env": {**env, "RAY_ADDRESS": addresses["gcs"]}}


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
    assert "\ncluster: CPU=2.0\n" in "".join(output)

    trials, _ = check_tables(storage / "two_nodes", expected_trials=2, workers_per_trial=2)
    for ids in trials["worker_node_ids"]:
        assert len(set(ids.split(";"))) == 2, f"workers of one trial should be on two nodes: {ids}"

