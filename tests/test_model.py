import numpy as np
import pytest
import tensorflow as tf

from cnn.config import TrainConfig
from cnn.keras_compat import keras
from cnn.model import COSINE_FLOOR, build_model, conv_layer_names, learning_rate_at


def test_cifar_architecture_and_parameter_count():
    model = build_model(TrainConfig(), (32, 32, 3), 10)
    assert model.output_shape == (None, 10)
    # 3 blocks x (2 conv 5x5 + 2 BN), Dense 512, Dense 10: 1,852,458 parameters.
    assert model.count_params() == 1_852_458
    assert conv_layer_names(model) == [f"block{b}_conv{c}" for b in (1, 2, 3) for c in (1, 2)]
    assert [model.get_layer(n).filters for n in conv_layer_names(model)] == [32, 32, 64, 64, 128, 128]
    assert model.get_layer("block1_conv1").kernel_size == (5, 5)


def test_outputs_are_probabilities():
    model = build_model(TrainConfig(), (28, 28, 1), 10)
    probabilities = model.predict(np.random.default_rng(0).random((4, 28, 28, 1), np.float32), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("l2_conv, l2_dense", [(1e-2, 0.0), (0.0, 1e-2), (1e-3, 1e-2)])
def test_l2_adds_exactly_its_penalty_to_the_loss(l2_conv, l2_dense):
    model = build_model(TrainConfig(l2_conv=l2_conv, l2_dense=l2_dense), (28, 28, 1), 10)
    expected = sum(
        (l2_conv if layer.name.startswith("block") else l2_dense) * float(np.sum(np.square(layer.kernel.numpy())))
        for layer in model.layers if hasattr(layer, "kernel"))
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    x, y = np.zeros((2, 28, 28, 1), np.float32), np.eye(10, dtype=np.float32)[[1, 2]]
    with_penalty = model.evaluate(x, y, verbose=0)[0]
    plain = build_model(TrainConfig(l2_conv=0.0, l2_dense=0.0), (28, 28, 1), 10)
    plain.set_weights(model.get_weights())
    assert not plain.losses
    assert with_penalty - plain.evaluate(x, y, verbose=0)[0] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("precision, compute, optimizer", [
    ("float32", "float32", "Adam"),
    ("mixed_bfloat16", "bfloat16", "Adam"),
    ("mixed_float16", "float16", "LossScaleOptimizerV3"),  # float16 gradients need loss scaling
])
def test_precision_sets_the_compute_dtype_and_keeps_the_softmax_in_float32(precision, compute, optimizer):
    model = build_model(TrainConfig(precision=precision), (32, 32, 3), 10)
    conv = model.get_layer("block1_conv1")
    assert conv.compute_dtype == compute and conv.variable_dtype == "float32", "weights stay float32"
    assert model.get_layer("output").compute_dtype == "float32" and model.output.dtype == "float32"
    assert type(model.optimizer).__name__ == optimizer
    assert keras.mixed_precision.global_policy().name == "float32", "the process-wide policy is restored"


def test_bfloat16_and_xla_train(tmp_path):
    """One real step each (float16 is left out: on a CPU it takes minutes)."""
    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    y = keras.utils.to_categorical(np.arange(64) % 10, 10)
    for config in (TrainConfig(precision="mixed_bfloat16", batch_size=32), TrainConfig(jit_compile=True, batch_size=32)):
        model = build_model(config, (28, 28, 1), 10)
        loss = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss"][0]
        assert np.isfinite(loss)
        assert _xla_must_compile(model) == config.jit_compile, "the traced training step is (not) XLA's"


def _xla_must_compile(model: keras.Model) -> bool:
    """Whether the training step fit traced holds a call XLA must compile (TensorFlow marks it
    _XlaMustCompile). Reads the traced graphs through a private accessor: there is no public one."""
    for function in model.train_function._list_all_concrete_functions():
        for op in function.graph.get_operations():
            try:
                if op.get_attr("_XlaMustCompile"):
                    return True
            except ValueError:
                continue
    return False


def _fit_steps(model: keras.Model, steps: int, batch: int = 8) -> None:
    x = np.random.default_rng(1).random((steps * batch, 28, 28, 1), dtype=np.float32)
    y = keras.utils.to_categorical(np.arange(steps * batch) % 10, 10)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)


def test_constant_schedule_is_the_learning_rate_at_every_step():
    config = TrainConfig(learning_rate=3e-4)
    assert [learning_rate_at(config, 10, step) for step in (0, 5, 10_000)] == pytest.approx([3e-4] * 3)


def test_cosine_schedule_decays_per_step_from_the_rate_to_its_floor():
    config = TrainConfig(lr_schedule="cosine", learning_rate=1e-3, epochs=2, batch_size=8)
    rates = [learning_rate_at(config, 4, step) for step in range(9)]
    assert rates[0] == pytest.approx(1e-3)
    assert rates[4] == pytest.approx(1e-3 * (COSINE_FLOOR + (1 - COSINE_FLOOR) / 2), rel=1e-4), "halfway"
    assert rates[8] == pytest.approx(1e-3 * COSINE_FLOOR, rel=1e-4)
    assert all(a > b for a, b in zip(rates, rates[1:]))

    model = build_model(config, (28, 28, 1), 10, steps_per_epoch=4)
    _fit_steps(model, 4)
    # tf_keras keeps the rate it applied last in `learning_rate`: the rate of step 3.
    assert float(model.optimizer.learning_rate) == pytest.approx(rates[3], rel=1e-4)


def test_a_restored_optimizer_continues_the_schedule(tmp_path):
    """A resumed run restores the optimizer's step count, so the schedule does not start over."""
    config = TrainConfig(lr_schedule="cosine", learning_rate=1e-3, epochs=2, batch_size=8)
    first = build_model(config, (28, 28, 1), 10, steps_per_epoch=4)
    _fit_steps(first, 4)
    saved = tf.train.Checkpoint(model=first, optimizer=first.optimizer).write(str(tmp_path / "resume"))

    second = build_model(config, (28, 28, 1), 10, steps_per_epoch=4)
    second.optimizer.build(second.trainable_variables)
    tf.train.Checkpoint(model=second, optimizer=second.optimizer).read(saved).assert_consumed()
    assert int(second.optimizer.iterations) == 4
    _fit_steps(second, 4)
    assert float(second.optimizer.learning_rate) == pytest.approx(learning_rate_at(config, 4, 7), rel=1e-4)


def test_a_model_augmenting_on_device_saves_and_loads_and_predicts_unaugmented(tmp_path):
    from cnn.model_io import MODEL_FILE, load_model, save_model

    model = build_model(TrainConfig(augment_on_device=True, horizontal_flip=False), (28, 28, 1), 10)
    assert [layer.name for layer in model.layers][:3] == ["image", "augment", "block1_conv1"]
    assert "augment" not in [layer.name for layer in build_model(TrainConfig(), (28, 28, 1), 10).layers]
    _fit_steps(model, 2)
    save_model(model, tmp_path / MODEL_FILE)
    loaded = load_model(tmp_path)
    x = np.random.default_rng(2).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert loaded.get_layer("augment").augmentation["horizontal_flip"] is False
    assert int(loaded.get_layer("augment").batches_seen.numpy()) == 2


def test_several_steps_per_call_train_exactly_the_same_steps():
    """steps_per_execution only changes how often Python calls into TensorFlow, not what is
    trained: the same seed gives the same weights bit for bit, and every step is counted."""
    def trained(steps_per_execution: int) -> tuple[list[np.ndarray], int]:
        keras.utils.set_random_seed(0)
        model = build_model(TrainConfig(steps_per_execution=steps_per_execution, dropout_conv=0.25), (28, 28, 1), 10)
        _fit_steps(model, 6)
        return [w.numpy() for w in model.trainable_weights], int(model.optimizer.iterations)

    one, four = trained(1), trained(4)
    assert one[1] == four[1] == 6
    assert all(np.array_equal(a, b) for a, b in zip(one[0], four[0]))


@pytest.mark.parametrize("training_batch, images, workers, expected", [
    (64, 2000, 1, 256), (64, 400, 2, 200), (64, 100, 2, 64), (512, 2000, 1, 512)])
def test_evaluation_batches_are_large_and_every_worker_shard_holds_one(training_batch, images, workers, expected):
    from cnn.pipeline import evaluation_batch_size

    assert evaluation_batch_size(training_batch, images, workers) == expected


def test_evaluating_in_large_batches_gives_the_metrics_of_training_sized_batches():
    """The test set is evaluated every epoch in evaluation batches (cheaper per image); the
    accuracy is the same image by image, the loss the same up to float summation order."""
    from cnn.pipeline import evaluation_dataset

    rng = np.random.default_rng(0)
    x, labels = rng.random((600, 28, 28, 1), np.float32), rng.integers(0, 10, 600)
    y = np.eye(10, dtype=np.float32)[labels]
    model = build_model(TrainConfig(l2_conv=1e-3, l2_dense=1e-3), (28, 28, 1), 10)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # moving statistics off their initial values
    small = model.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    large = model.evaluate(evaluation_dataset(x, y, 64), return_dict=True, verbose=0)
    assert large["accuracy"] == small["accuracy"]
    assert large["loss"] == pytest.approx(small["loss"], rel=1e-5)
