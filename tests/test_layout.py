"""The layout the README describes: a Ray-free core (`cnn`), the report on the core only
(`analysis`), everything that talks to Ray in `cnn_ray`."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import textwrap

from sweep_checks import REPO


def modules(package: str) -> list[str]:
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules([str(REPO / package)]) if m.name != "__main__")


def test_the_core_and_the_report_import_where_ray_cannot():
    script = textwrap.dedent(f"""
        import importlib, sys
        sys.modules["ray"] = None  # any `import ray` (or `from ray import ...`) now raises ImportError
        for name in {modules("cnn") + modules("analysis")!r}:
            importlib.import_module(name)
        print("imported", len(sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-3000:]


def test_every_ray_import_lives_in_the_ray_package():
    for package in ("cnn", "analysis"):
        for path in sorted((REPO / package).glob("*.py")):
            text = path.read_text()
            assert "import ray" not in text and "from ray" not in text, f"{path.relative_to(REPO)} imports Ray"
    assert {"worker_loop", "trainer", "trial", "tf_backend", "tuner", "search_space", "local_ray", "storage_watch",
            "run_record"} <= \
        {m.rsplit(".", 1)[1] for m in modules("cnn_ray")}


BLOCK_TENSORFLOW = """
import sys
for name in ("tensorflow", "tf_keras", "keras"):
    sys.modules[name] = None  # any import of TensorFlow or Keras now raises ImportError
"""


def run_without_tensorflow(code: str, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(BLOCK_TENSORFLOW + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_trial_drivers_and_train_controllers_never_import_tensorflow(tmp_path):
    """A trial driver imports the trial function's module; its Train controller unpickles the
    trainer's training function, backend config and loop config. Both run where TensorFlow
    cannot be imported: only the training workers import it (README, "Layout")."""
    blob = tmp_path / "trial.pickle"
    written = run_without_tensorflow(f"""
        import ray.cloudpickle as pickle
        from cnn.config import TrainConfig
        from cnn.replicas import WorkerResources
        from cnn.sweep_file import PRESETS
        from cnn_ray.trainer import make_trainer
        from cnn_ray.trial import TrialPlan, run_trial
        import cnn_ray.tuner, cnn_ray.run_record, cnn_ray.search_space  # the sweep's driver side

        trainer = make_trainer(TrainConfig(), None, WorkerResources(2), {str(tmp_path)!r}, "unused")
        plan = TrialPlan(PRESETS["local"], WorkerResources(), {str(tmp_path)!r})
        parts = (run_trial, plan, trainer.train_loop_per_worker, trainer.backend_config, trainer.train_loop_config)
        open({str(blob)!r}, "wb").write(pickle.dumps(parts))
    """, tmp_path)
    assert written.returncode == 0, written.stderr[-3000:]
    read = run_without_tensorflow(f"""
        import pickle
        run_trial, plan, train_fn, backend, loop_config = pickle.loads(open({str(blob)!r}, "rb").read())
        assert loop_config["config"].epochs == 30 and plan.settings.preset == "local"
        print("unpickled", type(backend).__name__, train_fn.__module__)
    """, tmp_path)
    assert read.returncode == 0, read.stderr[-3000:]
    assert "unpickled TensorflowBackendConfig cnn_ray.trainer" in read.stdout


def test_the_folder_reader_never_imports_tensorflow(tmp_path):
    """The FolderReader actor (cnn_ray/streaming.py) runs on the driver's node, the head of a cluster:
    what it runs to list, check and decode a folder must not load TensorFlow (nor claim a GPU)."""
    folder = tmp_path / "shapes"
    done = run_without_tensorflow(f"""
        import sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from image_folders import write_class_folders
        import cnn_ray.job_data, cnn_ray.streaming  # the reader's modules, and the jobs' side of it
        from cnn.config import TrainConfig
        from cnn.data import folder_evaluation_sets, load_for
        from cnn.image_folder import list_image_files

        from pathlib import Path
        config = TrainConfig(dataset=str(write_class_folders(Path({str(folder)!r}), per_class=5)))
        evaluation = folder_evaluation_sets(list_image_files(config.dataset, config.test_fraction), config)
        whole = load_for(config)
        print("read", len(evaluation.x_test), len(whole.x_train) + len(whole.x_val))
    """, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "read 3 12" in done.stdout
