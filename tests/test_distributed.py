"""Real Ray Train runs: two MultiWorkerMirroredStrategy workers on an MNIST subset."""

import pytest

from cnn.config import TrainConfig
from cnn.data import load_dataset
from cnn.model_io import load_model, load_state, load_worker_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist_ref(local_ray, data_dir):
    data = load_dataset("mnist", data_dir=str(data_dir), limit=3000, test_limit=1000)
    return local_ray.put(data), data


def fit(ref, storage, name, epochs, workers=2, **changes):
    from cnn.trainer import WorkerResources, make_trainer

    config = TrainConfig(dataset="mnist", epochs=epochs, batch_size=64, limit=3000, test_limit=1000, **changes)
    result = make_trainer(config, ref, WorkerResources(num_workers=workers), str(storage), name,
                          max_failures=0).fit()
    assert result.error is None
    return result


def test_two_workers_learn_and_end_with_identical_weights(mnist_ref, tmp_path):
    ref, data = mnist_ref
    result = fit(ref, tmp_path, "two_workers", epochs=2)
    state = load_state(result.checkpoint.path)
    history = state["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["train_accuracy"] > 0.5
    assert all(0.0 <= row[k] <= 1.0 for row in history for k in ("train_accuracy", "val_accuracy", "test_accuracy"))

    workers = load_worker_records(result.checkpoint.path)
    assert [w["rank"] for w in workers] == [0, 1]
    assert workers[0]["pid"] != workers[1]["pid"]
    assert workers[0]["weights_sha256"] == workers[1]["weights_sha256"]

    model = load_model(result.checkpoint.path)
    accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)[1]
    assert accuracy == pytest.approx(history[-1]["test_accuracy"], abs=1e-4), \
        "sharded test evaluation across workers must count every test image once"


def test_rerun_with_more_epochs_resumes_at_the_next_epoch(mnist_ref, tmp_path):
    ref, _ = mnist_ref
    first = load_state(fit(ref, tmp_path, "resumed", epochs=2).checkpoint.path)["history"]
    second = load_state(fit(ref, tmp_path, "resumed", epochs=3).checkpoint.path)["history"]
    assert [row["epoch"] for row in second] == [1, 2, 3]
    assert second[:2] == first, "epochs 1-2 must come from the checkpoint, not be trained again"
    assert second[2]["train_loss"] < first[0]["train_loss"]


def test_augmentation_on_device_and_a_cosine_schedule_on_two_workers_resume_where_they_stopped(mnist_ref, tmp_path):
    """The augment layer's batch counter and the optimizer's step count (which drives the
    schedule) are both checkpointed: a resumed run continues them instead of starting over."""
    from cnn.model import learning_rate_at
    from cnn.pipeline import steps_per_epoch

    ref, data = mnist_ref
    changes = {"augment_on_device": True, "lr_schedule": "cosine", "horizontal_flip": False}
    fit(ref, tmp_path, "on_device", epochs=2, **changes)
    result = fit(ref, tmp_path, "on_device", epochs=3, **changes)
    history = load_state(result.checkpoint.path)["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["train_accuracy"] > 0.5

    workers = load_worker_records(result.checkpoint.path)
    assert workers[0]["weights_sha256"] == workers[1]["weights_sha256"]
    model = load_model(result.checkpoint.path)
    steps = steps_per_epoch(len(data.x_train), TrainConfig(batch_size=64), 2)
    assert int(model.get_layer("augment").batches_seen.numpy()) == 3 * steps
    assert int(model.optimizer.iterations.numpy()) == 3 * steps
    two, three = TrainConfig(epochs=2, lr_schedule="cosine"), TrainConfig(epochs=3, lr_schedule="cosine")
    # Epochs 1-2 decayed over 2 epochs; the rerun asked for 3, so epoch 3 follows the longer schedule.
    expected = [learning_rate_at(two, steps, 0), learning_rate_at(two, steps, steps),
                learning_rate_at(three, steps, 2 * steps)]
    assert [row["learning_rate"] for row in history] == pytest.approx(expected, rel=1e-5)
    assert history[2]["learning_rate"] < history[0]["learning_rate"]
