"""Real Ray Train runs: two MultiWorkerMirroredStrategy workers on an MNIST subset."""

import pytest

from cnn.config import TrainConfig
from cnn.data import load_dataset, unit_float
from cnn.checkpoint_state import CheckpointState, read_worker_records
from cnn.model_io import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist_ref(local_ray, data_dir):
    data = load_dataset("mnist", data_dir=str(data_dir), limit=3000, test_limit=1000)
    return local_ray.put(data), data


def trainer(ref, storage, name, epochs, workers=2, gpus_per_worker=0.0, callbacks=None, **changes):
    from cnn.replicas import WorkerResources
    from cnn_ray.trainer import make_trainer

    config = TrainConfig(dataset="mnist", epochs=epochs, batch_size=64, limit=3000, test_limit=1000, **changes)
    resources = WorkerResources(num_workers=workers, gpus_per_worker=gpus_per_worker)
    return make_trainer(config, ref, resources, str(storage), name, max_failures=0, callbacks=callbacks)


def fit(ref, storage, name, epochs, workers=2, callbacks=None, **changes):
    result = trainer(ref, storage, name, epochs, workers, callbacks=callbacks, **changes).fit()
    assert result.error is None
    return result


def actor_classes(ray) -> set[str]:
    """The class of every actor this cluster has run (the state API keeps dead ones too)."""
    from ray.util.state import list_actors

    return {actor.class_name for actor in list_actors(address=ray.get_runtime_context().gcs_address, limit=10_000)}


def test_two_workers_learn_and_end_with_identical_weights(local_ray, mnist_ref, tmp_path):
    ref, data = mnist_ref
    result = fit(ref, tmp_path, "two_workers", epochs=2)
    # The run's own helpers, and none of the two a one-machine run without Ray Datasets does not
    # need: Ray Data's dataset manager (cnn_ray/trainer.py) and the preemption watcher (cnn_ray/local_ray.py).
    assert {"TrainController", "RayTrainWorker", "SynchronizationActor"} <= actor_classes(local_ray)
    assert not {"DatasetManager", "PreemptionWatcher"} & actor_classes(local_ray)
    history = CheckpointState.read(result.checkpoint.path).history
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["train_accuracy"] > 0.5
    assert all(0.0 <= row[k] <= 1.0 for row in history for k in ("train_accuracy", "val_accuracy", "test_accuracy"))

    workers = read_worker_records(result.checkpoint.path)
    assert [w["rank"] for w in workers] == [0, 1]
    assert workers[0]["pid"] != workers[1]["pid"]
    assert workers[0]["weights_sha256"] == workers[1]["weights_sha256"]
    for worker in workers:  # CPU workers: no GPU, the ring all-reduce, one replica each, auto steps of 1
        recorded = {k: v for k, v in worker["devices"].items() if k != "cuda_visible_devices"}  # machine-dependent
        assert recorded == {"gpus": [], "communication": "RING", "replicas_in_sync": 2, "steps_per_execution": 1,
                            "op_determinism": False}
        # Where a worker's start-up went, and what writing this checkpoint took (bench/sweep_overhead.py reads them).
        startup = worker["startup"]
        phases = ("tensorflow_import_seconds", "worker_loop_import_seconds", "data_fetch_seconds",
                  "strategy_seconds", "model_build_seconds", "restore_seconds")
        assert all(0 <= startup[k] < 600 for k in phases)
        # In order: the process starts, Ray Train's backend sets TF_CONFIG (importing TensorFlow), the loop starts.
        assert 1.7e9 < startup["process_started_at"] <= startup["backend_setup_at"] <= startup["started_at"]
        assert startup["trial_started_at"] is None  # not started by a sweep's trial
        assert 0 < worker["checkpoint_write_seconds"] < 600
    assert all(0 < row["val_seconds"] and 0 < row["test_seconds"] < row["epoch_seconds"] for row in history)

    model = load_model(result.checkpoint.path)
    accuracy = model.evaluate(unit_float(data.x_test), data.y_test, verbose=0)[1]
    assert accuracy == pytest.approx(history[-1]["test_accuracy"], abs=1e-4), \
        "sharded test evaluation across workers must count every test image once"


def reports_to_file(path):
    """A Ray Train callback (it runs in the Train controller; cloudpickle sends the class) that
    appends every report's metrics, as rank 0 sent them, and whether a checkpoint came with them,
    to a JSON-lines file."""
    from ray.train import UserCallback

    class ReportsToFile(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            import json

            with open(path, "a") as file:
                file.write(json.dumps({"metrics": metrics[0], "checkpoint": checkpoint is not None}) + "\n")

    return ReportsToFile()


def test_rerun_with_more_epochs_resumes_at_the_next_epoch(mnist_ref, tmp_path):
    import json

    ref, _ = mnist_ref
    first = CheckpointState.read(fit(ref, tmp_path, "resumed", epochs=2).checkpoint.path).history
    second = CheckpointState.read(fit(ref, tmp_path, "resumed", epochs=3).checkpoint.path).history
    assert [row["epoch"] for row in second] == [1, 2, 3]
    assert second[:2] == first, "epochs 1-2 must come from the checkpoint, not be trained again"
    assert second[2]["train_loss"] < first[0]["train_loss"]

    # Run again with nothing left to train (a resumed sweep whose driver died before Tune saved the
    # trial as finished): no epoch is trained and no checkpoint taken, but the last epoch is
    # reported again, for Tune needs a trial's result.
    checkpoints = sorted(p.name for p in (tmp_path / "resumed").glob("checkpoint_*"))
    reports = tmp_path / "reports.jsonl"
    fit(ref, tmp_path, "resumed", epochs=3, callbacks=[reports_to_file(str(reports))])
    assert sorted(p.name for p in (tmp_path / "resumed").glob("checkpoint_*")) == checkpoints
    sent = [json.loads(line) for line in reports.read_text().splitlines()]
    assert [report["checkpoint"] for report in sent] == [False]
    assert sent[0]["metrics"]["epoch"] == 3 and sent[0]["metrics"]["val_accuracy"] == second[2]["val_accuracy"]
    assert sent[0]["metrics"]["best_val_accuracy"] == max(row["val_accuracy"] for row in second)


def test_augmentation_on_device_and_a_cosine_schedule_on_two_workers_resume_where_they_stopped(mnist_ref, tmp_path):
    """The augment layer's batch counter and the optimizer's step count (which drives the
    schedule) are both checkpointed: a resumed run continues them instead of starting over.
    With deterministic ops and 4 steps per call into TensorFlow, every step still counts once."""
    from cnn.model import learning_rate_at
    from cnn.replicas import ReplicaLayout

    ref, data = mnist_ref
    changes = {"augment_on_device": True, "lr_schedule": "cosine", "horizontal_flip": False,
               "deterministic": True, "steps_per_execution": 4}
    fit(ref, tmp_path, "on_device", epochs=2, **changes)
    result = fit(ref, tmp_path, "on_device", epochs=3, **changes)
    history = CheckpointState.read(result.checkpoint.path).history
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["train_accuracy"] > 0.5

    workers = read_worker_records(result.checkpoint.path)
    assert workers[0]["weights_sha256"] == workers[1]["weights_sha256"]
    assert all(w["devices"]["op_determinism"] and w["devices"]["steps_per_execution"] == 4 for w in workers)
    model = load_model(result.checkpoint.path)
    steps = ReplicaLayout(workers=2).steps_per_epoch(len(data.x_train), 64)
    assert int(model.get_layer("augment").batches_seen.numpy()) == 3 * steps
    assert int(model.optimizer.iterations.numpy()) == 3 * steps
    two, three = TrainConfig(epochs=2, lr_schedule="cosine"), TrainConfig(epochs=3, lr_schedule="cosine")
    # Epochs 1-2 decayed over 2 epochs; the rerun asked for 3, so epoch 3 follows the longer schedule.
    expected = [learning_rate_at(two, steps, 0), learning_rate_at(two, steps, steps),
                learning_rate_at(three, steps, 2 * steps)]
    assert [row["learning_rate"] for row in history] == pytest.approx(expected, rel=1e-5)
    assert history[2]["learning_rate"] < history[0]["learning_rate"]


def test_a_worker_granted_a_gpu_it_cannot_see_fails_with_one_line_naming_its_node(mnist_ref, tmp_path):
    """The module's Ray advertises a GPU this machine does not have: Ray grants it and sets
    CUDA_VISIBLE_DEVICES, TensorFlow finds no GPU, and the worker must not train on its CPU."""
    from ray.train import TrainingFailedError

    ref, _ = mnist_ref
    run = trainer(ref, tmp_path, "no_gpu_visible", epochs=1, workers=1, gpus_per_worker=1.0)
    with pytest.raises(TrainingFailedError) as failed:
        run.fit()
    line = next(line for line in str(failed.value).splitlines() if line.startswith("cnn.devices.GpuNotVisibleError: "))
    assert "training worker rank 0 on node " in line
    assert "was granted GPU(s) 0 by Ray but TensorFlow sees 0 GPU(s) (CUDA_VISIBLE_DEVICES='0')" in line
    assert not list(tmp_path.glob("no_gpu_visible/checkpoint_*")), "nothing was trained"


def test_the_gpu_check_script_runs_its_cases_on_this_clusters_cpus(local_ray, tmp_path):
    """bench/gpu_check.py cannot be measured here, but its path can be run: a real Train run
    of the worker loop on synthetic data, summarised from the run's own worker records."""
    from bench import gpu_check

    # Run as a script it is __main__, which Ray ships by value; imported here it must be told to.
    local_ray.cloudpickle.register_pickle_by_value(gpu_check)
    cases = [case for case in gpu_check.cpu_cases() if case.workers == 2]
    rows, skipped = gpu_check.run_cases(cases + gpu_check.gpu_cases(8)[-1:], {"CPU": 2.0, "GPU": 0.0}, epochs=2,
                                        batch_size=64, train_images=1280, test_images=256, cpus_per_worker=1.0,
                                        storage=str(tmp_path))
    assert skipped == ["8 trials at once, 1 GPU each: needs 8 GPU(s) and 8 CPU(s)"]
    [row] = rows
    assert (row["replicas"], row["all_reduce"], row["check"]) == (2, "RING", "ok")
    assert row["images_per_second_per_run"] > 0 and 0 < row["train_share_of_epoch"] <= 1
    assert "| 2 workers (CPU), ring | 2 x 0 GPU | 2 | RING |" in gpu_check.markdown(rows)


def test_the_local_clusters_processes_inherit_its_settings_without_a_job_runtime_environment(local_ray):
    """init_local_ray hands its settings to every Ray process through the raylet's environment (no job
    runtime environment: with one, Ray sets it up for every process a trial starts and cannot use
    its idle processes) and leaves this process's environment as it was."""
    import os

    from cnn_ray.local_ray import GCS_PORT_SETTING

    @local_ray.remote(num_cpus=0)
    def settings_inside() -> dict:
        return {"address": os.environ.get("RAY_ADDRESS")}

    seen = local_ray.get(settings_inside.remote())
    # RAY_ADDRESS is in no environment but the one init_local_ray gave Ray's processes.
    assert seen["address"] == local_ray.get_runtime_context().gcs_address
    assert local_ray.get_runtime_context().runtime_env == {}
    assert GCS_PORT_SETTING not in os.environ and os.environ.get("RAY_ADDRESS") != seen["address"]


# Last in this module: the tests above check that runs without Ray Datasets start no DatasetManager,
# and the state API remembers the actors of every run before them.
def test_a_streamed_image_folder_trains_two_workers_and_resumes(local_ray, data_dir, tmp_path):
    """The streaming loader end to end on this cluster: Ray Data reads a folder of PNGs and JPEGs
    and splits it over two workers, which train on equal shares (their weights agree), evaluate the
    validation and test images from the object store, and resume at the next epoch."""
    from cnn.replicas import WorkerResources
    from cnn_ray.job_data import open_data
    from cnn_ray.trainer import make_trainer
    from image_folders import DIGIT_NAMES, write_mnist_folders

    folder = write_mnist_folders(data_dir / "mnist.npz", tmp_path / "digits", train=1000, test=200)
    config = TrainConfig(dataset=str(folder), color_mode="grayscale", data_loader="stream", epochs=1, batch_size=32,
                         bn_momentum=0.9, augment=False)
    data = open_data(config, None)
    summary = data.summary
    assert (summary.loader, summary.train, summary.validation, summary.test) == ("stream", 900, 100, 200)
    assert summary.class_names == sorted(DIGIT_NAMES) and summary.input_shape == (28, 28, 1)
    assert data.trial.stream.spec.train_images == 900
    assert_streams_the_in_memory_rows(data, config)

    def run(epochs):
        trainer = make_trainer(config.replace(epochs=epochs), data.trial.ref, WorkerResources(num_workers=2),
                               str(tmp_path), "streamed", max_failures=0, stream=data.trial.stream)
        result = trainer.fit()
        assert result.error is None, result.error
        return result

    run(1)
    result = run(2)  # the same run folder: resumes at epoch 2
    history = CheckpointState.read(result.checkpoint.path).history
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"] and history[1]["train_accuracy"] > 0.5
    assert history[1]["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert all(0 < row["stream_wait_seconds"] <= row["train_seconds"] for row in history)
    workers = read_worker_records(result.checkpoint.path)
    assert workers[0]["weights_sha256"] == workers[1]["weights_sha256"]
    assert "DatasetManager" in actor_classes(local_ray)  # the images came through Ray Data


def test_a_folder_of_npz_shards_streams_the_rows_the_in_memory_loader_reads(local_ray, data_dir, tmp_path):
    """.npz shards through the streaming loader: Ray Data's tasks read the same rows, under the same
    labels, as the in-memory loader trains on; below the streaming size `auto` decodes them whole."""
    from cnn_ray.job_data import open_data
    from image_folders import DIGIT_NAMES, write_mnist_shards

    folder = write_mnist_shards(data_dir / "mnist.npz", tmp_path / "shards", train=600, test=100, shards=3)
    config = TrainConfig(dataset=str(folder), data_loader="stream")
    data = open_data(config, None)
    summary = data.summary
    assert (summary.loader, summary.train, summary.validation, summary.test) == ("stream", 540, 60, 100)
    assert summary.class_names == list(DIGIT_NAMES) and summary.input_shape == (28, 28, 1)
    assert "700 images in 4 .npz shards" in summary.source
    assert_streams_the_in_memory_rows(data, config)
    local_ray.kill(data.reader)
    whole = open_data(config.replace(data_loader="auto"), None)
    assert whole.summary.loader == "memory" and len(whole.arrays().x_train) == 540


def assert_streams_the_in_memory_rows(data, config: TrainConfig) -> None:
    """What Ray Data streams is exactly the in-memory loader's training images and labels (in its own order)."""
    from cnn.image_folder import list_image_files, read_images, training_and_validation

    files = list_image_files(config.dataset, config.test_fraction)
    kept, _ = training_and_validation(files.train, config.limit, config.validation_fraction)
    images, labels = read_images(files, kept, config.image_size, config.color_mode)
    rows = data.trial.stream.dataset(config.seed).take_all()
    assert sorted((int(row["label"]), row["image"].tobytes()) for row in rows) \
        == sorted((int(label), image.tobytes()) for image, label in zip(images, labels))


def test_a_folder_the_cluster_refuses_gets_one_line(local_ray, tmp_path):
    """What only a listing shows (an empty class) is found by the FolderReader on the cluster."""
    import numpy as np
    from PIL import Image

    from cnn_ray.job_data import FolderOpenError, open_data
    from image_folders import write_class_folders

    folder = write_class_folders(tmp_path / "shapes", per_class=4)
    (folder / "empty").mkdir()
    with pytest.raises(FolderOpenError) as raised:
        open_data(TrainConfig(dataset=str(folder), data_loader="stream"), None)
    assert str(raised.value) == f"{folder}/empty: class 'empty' has no images"
    # auto, below the streaming size: the reader decodes every image before the job goes on
    (folder / "empty").rmdir()
    odd = write_class_folders(tmp_path / "odd", per_class=4)
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(odd / "cross" / "big.png")
    with pytest.raises(FolderOpenError, match=r"images differ in size .*--image-size"):
        open_data(TrainConfig(dataset=str(odd)), None)
    fine = open_data(TrainConfig(dataset=str(folder)), None)  # auto: small, so decoded into the object store
    assert fine.summary.loader == "memory" and fine.reader is None and fine.arrays().x_train.dtype == np.uint8
