"""bench/process_cpu.py: the CPU time of a process tree, grouped by what each process is."""

import subprocess
import sys

from bench.process_cpu import IDLE_WORKERS, OTHER, SWEEP_DRIVER, ProcessCpu, group_of, kind_of


def test_processes_are_grouped_by_the_title_ray_gives_them():
    assert group_of("ray::RayTrainWorker.run_train_fn") == "training workers"
    assert group_of("ray::TrainController.run") == "Train controllers"
    assert group_of("ray::ImplicitFunc.train") == "trial drivers (Tune function actors)"
    assert group_of("ray::SynchronizationActor").startswith("Train helpers")
    assert group_of("ray::IDLE") == IDLE_WORKERS
    # A worker not yet titled names the raylet in its flags: it is a worker, not the raylet.
    assert group_of("python default_worker.py --raylet-name=sockets/raylet") == IDLE_WORKERS
    for daemon in ("ray/core/src/ray/raylet/raylet --raylet_socket_name=sockets/raylet", "ray::DashboardAgent",
                   "ray::RuntimeEnvAgent", "ray-dashboard-StateHead-0 (python -B -c ...)"):
        assert group_of(daemon).startswith("Ray daemons"), daemon
    assert group_of("/usr/bin/python3 something_else.py") == OTHER


def test_the_cpu_time_of_a_descendant_that_exits_is_kept():
    """The root starts a child that burns 0.6 s of CPU and exits; the root then idles a little,
    so that the sampler's last reading of the child is its final one."""
    burn = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"
    root = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time\n"
                             f"subprocess.run([sys.executable, '-c', {burn!r}])\ntime.sleep(0.5)"])
    with ProcessCpu(root.pid, interval=0.05) as cpu:
        root.wait()
    used = cpu.by_group()
    assert set(used) == {SWEEP_DRIVER, OTHER}  # the root is the run's driver; the child is no Ray process
    assert 0.5 < used[OTHER] < 5


def test_each_process_is_also_named_by_its_kind():
    assert kind_of("ray::TrainController.run") == "ray::TrainController"
    assert kind_of("ray::PlacementGroupCleaner") == "ray::PlacementGroupCleaner"
    assert kind_of("ray-dashboard-StateHead-0 (python -B -c ...)") == "ray-dashboard-StateHead"
    assert kind_of("ray/core/src/ray/gcs/gcs_server --config=x") == "/gcs/gcs_server"
    assert kind_of("/usr/bin/python3 something_else.py") == OTHER
