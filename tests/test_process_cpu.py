"""bench/process_cpu.py: the CPU time of a process tree, grouped by what each process is."""

import subprocess
import sys
import time

from bench.process_cpu import IDLE_WORKERS, OTHER, SWEEP_DRIVER, ProcessCpu, group_of


def test_processes_are_grouped_by_the_title_ray_gives_them():
    assert group_of("ray::RayTrainWorker.run_train_fn") == "training workers"
    assert group_of("ray::TrainController.run") == "Train controllers"
    assert group_of("ray::ImplicitFunc.train") == "trial drivers (Tune function actors)"
    assert group_of("ray::SynchronizationActor").startswith("Train helpers")
    assert group_of("ray::IDLE") == IDLE_WORKERS
    # A worker not yet titled names the raylet in its flags: it is a worker, not the raylet.
    assert group_of("python default_worker.py --raylet-name=/tmp/ray/sockets/raylet") == IDLE_WORKERS
    for daemon in ("/venv/ray/core/src/ray/raylet/raylet --raylet_socket_name=/tmp/x", "ray::DashboardAgent",
                   "ray::RuntimeEnvAgent", "ray-dashboard-StateHead-0 (python -B -c ...)"):
        assert group_of(daemon).startswith("Ray daemons"), daemon
    assert group_of("/usr/bin/python3 something_else.py") == OTHER


def test_the_cpu_time_of_a_child_that_exits_is_kept():
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.6\n"
                              "while time.process_time() < end: pass"])
    with ProcessCpu(child.pid, interval=0.05) as cpu:
        child.wait()
        time.sleep(0.1)
    used = cpu.by_group()
    assert set(used) == {SWEEP_DRIVER}  # the root process is the run's driver
    assert 0.4 < used[SWEEP_DRIVER] < 5
