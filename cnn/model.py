"""The original study's CNN as a plain function: conv blocks 32-64-128, a dense layer, softmax."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from cnn.config import TrainConfig
from cnn.device_augment import RandomAffine
from cnn.keras_compat import keras, layers, regularizers

BLOCK_FILTERS = (32, 64, 128)
KERNEL_SIZE = 5


COSINE_FLOOR = 0.01  # the cosine schedule ends at this fraction of the initial learning rate


def build_model(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int,
                steps_per_epoch: int = 1) -> keras.Model:
    """Build and compile the classifier. Call inside `strategy.scope()` for distributed training.

    steps_per_epoch sets the length of a learning-rate schedule (optimizer steps per epoch)."""
    conv_l2 = regularizers.L2(config.l2_conv) if config.l2_conv > 0 else None
    dense_l2 = regularizers.L2(config.l2_dense) if config.l2_dense > 0 else None

    with dtype_policy(config.precision):
        model = _build(config, input_shape, num_classes, conv_l2, dense_l2)
        # Under mixed_float16, compile wraps Adam in a LossScaleOptimizer (float16 gradients underflow).
        # steps_per_execution 0 (auto) is resolved per device by the training worker; elsewhere it is 1.
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate(config, steps_per_epoch)),
                      loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=config.jit_compile,
                      steps_per_execution=config.steps_per_execution or 1)
    return model


def learning_rate(config: TrainConfig, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimizer's learning rate: a number, or a schedule of the optimizer's step count.

    The step count is part of the optimizer's checkpointed state, so a resumed run continues
    the schedule where it stopped."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=max(1, config.epochs * steps_per_epoch), alpha=COSINE_FLOOR)


def learning_rate_at(config: TrainConfig, steps_per_epoch: int, step: int) -> float:
    """The learning rate applied at optimizer step `step` (0-based)."""
    rate = learning_rate(config, steps_per_epoch)
    return float(rate(step)) if callable(rate) else float(rate)


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers built inside compute in this precision; the process-wide policy is restored after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _build(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int,
           conv_l2: regularizers.Regularizer | None, dense_l2: regularizers.Regularizer | None) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if config.augment and config.augment_on_device:
        x = RandomAffine.from_config_of(config, name="augment")(x)
    for block, filters in enumerate(BLOCK_FILTERS, start=1):
        for conv in (1, 2):
            x = layers.Conv2D(filters, KERNEL_SIZE, padding="same", activation="relu",
                              kernel_regularizer=conv_l2, name=f"block{block}_conv{conv}")(x)
            x = layers.BatchNormalization(momentum=config.bn_momentum, name=f"block{block}_bn{conv}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
        x = layers.Dropout(config.dropout_conv, name=f"block{block}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(config.dense_units, activation="relu", kernel_regularizer=dense_l2, name="dense")(x)
    x = layers.Dropout(config.dropout_dense, name="dense_dropout")(x)
    # The softmax and the loss stay in float32 whatever the precision: float16 probabilities underflow.
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=dense_l2, name="output",
                           dtype="float32")(x)
    return keras.Model(inputs, outputs, name="cnn")


def conv_layer_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
