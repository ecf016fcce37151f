"""The original study's CNN as a plain function: conv blocks 32-64-128, a dense layer, softmax."""

from __future__ import annotations

from cnn.config import TrainConfig
from cnn.keras_compat import keras, layers, regularizers

BLOCK_FILTERS = (32, 64, 128)
KERNEL_SIZE = 5


def build_model(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Build and compile the classifier. Call inside `strategy.scope()` for distributed training."""
    conv_l2 = regularizers.L2(config.l2_conv) if config.l2_conv > 0 else None
    dense_l2 = regularizers.L2(config.l2_dense) if config.l2_dense > 0 else None

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
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
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=dense_l2, name="output")(x)

    model = keras.Model(inputs, outputs, name="cnn")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def conv_layer_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
