"""The augmentation as the model's first layer, so it runs on the accelerator (`augment_on_device`).

The same random affine transform as the tf.data pipeline (`cnn.augment`), applied to each
training batch on the device the model runs on; at inference the layer passes images
through. It pays when the CPUs feeding a GPU cannot augment as fast as the GPU trains
(bench/README.md estimates when). Randomness stays stateless: the seed of each batch is
(run seed, replica, the layer's own batch counter), and the counter is a model variable,
so it is checkpointed and a resumed run continues the sequence instead of replaying it.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from cnn.augment import SEED_STRIDE, augment_batch
from cnn.config import TrainConfig
from cnn.keras_compat import keras, layers

# The TrainConfig fields the transform reads.
AUGMENTATION_FIELDS = ("rotation_degrees", "width_shift", "height_shift", "shear_degrees", "zoom",
                       "horizontal_flip", "fill_mode")


@keras.utils.register_keras_serializable(package="cnn")
class RandomAffine(layers.Layer):
    """Training: one random affine resampling per image (rotation, shift, shear, zoom, flip).
    Inference: the identity."""

    def __init__(self, augmentation: dict[str, Any], seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")  # resample in float32 whatever the model's precision
        super().__init__(**kwargs)
        self.augmentation = {k: augmentation[k] for k in AUGMENTATION_FIELDS}
        self.seed = int(seed)
        self._config = TrainConfig().replace(**self.augmentation)

    @classmethod
    def from_config_of(cls, config: TrainConfig, **kwargs: Any) -> "RandomAffine":
        return cls({k: getattr(config, k) for k in AUGMENTATION_FIELDS}, seed=config.seed, **kwargs)

    def build(self, input_shape: tf.TensorShape) -> None:
        # Per replica (like BatchNorm's moving statistics): each worker counts its own batches.
        self.batches_seen = self.add_weight(
            name="batches_seen", shape=(), dtype="int64", initializer="zeros", trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        super().build(input_shape)

    def call(self, images: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not training:
            return images
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.stack([tf.cast(self.seed * SEED_STRIDE + replica, tf.int64), self.batches_seen.read_value()])
        self.batches_seen.assign_add(1)
        return augment_batch(images, seed, self._config)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "augmentation": self.augmentation, "seed": self.seed}
