import numpy as np
import pytest
import tensorflow as tf

from cnn.augment import SEED_STRIDE, augment_batch
from cnn.config import TrainConfig
from cnn.data import load_dataset, unit_float
from cnn.pipeline import training_dataset
from cnn.replicas import ReplicaLayout

NO_GEOMETRY = dict(rotation_degrees=0.0, width_shift=0.0, height_shift=0.0, shear_degrees=0.0, zoom=0.0)


@pytest.fixture(scope="module")
def cifar(data_dir):
    return load_dataset("cifar10", data_dir=str(data_dir), limit=256, validation_fraction=0.0)


@pytest.fixture(scope="module")
def cifar_pixels(cifar):
    """The training images as the pipeline hands them to the model: float32 in [0, 1]."""
    return unit_float(cifar.x_train)


def first_batch(data, config, epoch=0):
    return next(iter(training_dataset(data.x_train, data.y_train, config, epoch)))


def test_keeps_shape_and_range_and_changes_pixels(cifar):
    config = TrainConfig(batch_size=64)
    augmented, labels = first_batch(cifar, config)
    plain, plain_labels = first_batch(cifar, config.replace(augment=False))
    assert augmented.shape == plain.shape == (64, 32, 32, 3)
    assert float(tf.reduce_min(augmented)) >= 0.0 and float(tf.reduce_max(augmented)) <= 1.0
    assert np.array_equal(labels, plain_labels)  # same images, same order
    changed = np.mean(np.abs(augmented.numpy() - plain.numpy()) > 1e-3, axis=(1, 2, 3))
    assert np.all(changed > 0.05), "every image should be visibly transformed"


def test_the_dataset_keeps_bytes_and_the_pipeline_scales_them(cifar):
    assert cifar.x_train.dtype == np.uint8  # one byte a pixel in the object store and the workers
    images, _ = first_batch(cifar, TrainConfig(batch_size=64, augment=False))
    assert images.dtype == tf.float32 and 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert float(tf.reduce_max(images)) > 0.5  # scaled once, not twice


def test_switched_off_is_the_identity(cifar, cifar_pixels):
    images, labels = first_batch(cifar, TrainConfig(batch_size=256, augment=False))
    order = np.argsort(np.argmax(labels, axis=1) * 1e6 + images.numpy().sum(axis=(1, 2, 3)))
    reference = np.argsort(np.argmax(cifar.y_train, axis=1) * 1e6 + cifar_pixels.sum(axis=(1, 2, 3)))
    assert np.array_equal(images.numpy()[order], cifar_pixels[reference])


def test_zero_ranges_without_flip_resample_exactly(cifar_pixels):
    config = TrainConfig(horizontal_flip=False, **NO_GEOMETRY)
    images = tf.constant(cifar_pixels[:16])
    out = augment_batch(images, tf.constant([1, 2], tf.int64), config)
    np.testing.assert_allclose(out.numpy(), images.numpy(), atol=1e-6)


def test_flip_alone_mirrors_about_half_the_images(cifar_pixels):
    config = TrainConfig(horizontal_flip=True, **NO_GEOMETRY)
    images = cifar_pixels[:64]
    out = augment_batch(tf.constant(images), tf.constant([3, 4], tf.int64), config).numpy()
    same = [np.allclose(o, i, atol=1e-6) for o, i in zip(out, images)]
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-6) for o, i in zip(out, images)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 16 <= sum(mirrored) <= 48


def test_same_seed_same_images_new_epoch_new_images(cifar):
    config = TrainConfig(batch_size=32)
    a, b = first_batch(cifar, config, epoch=3)[0], first_batch(cifar, config, epoch=3)[0]
    c = first_batch(cifar, config, epoch=4)[0]
    assert np.array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


def test_shards_are_disjoint(cifar):
    config = TrainConfig(batch_size=64, augment=False)
    seen = []
    for index in range(2):
        shard = training_dataset(cifar.x_train, cifar.y_train, config, 0, ReplicaLayout(2), worker_index=index)
        for images, _ in shard:
            seen.extend(images.numpy().sum(axis=(1, 2, 3)).round(3).tolist())
    assert len(seen) == 256 and len(set(seen)) == len(set(cifar.x_train.sum(axis=(1, 2, 3)).round(3).tolist()))


def test_on_device_the_pipeline_passes_images_through_and_the_model_augments(cifar, cifar_pixels):
    from cnn.device_augment import RandomAffine

    config = TrainConfig(batch_size=16, seed=3, augment_on_device=True)
    images, _ = next(iter(training_dataset(cifar.x_train[:64], cifar.y_train[:64], config, epoch=0)))
    order = np.random.default_rng(3 * SEED_STRIDE).permutation(64)[:16]
    np.testing.assert_array_equal(images.numpy(), cifar_pixels[:64][order])

    layer = RandomAffine.from_config_of(config)
    np.testing.assert_array_equal(layer(images, training=False).numpy(), images.numpy())
    first, second = layer(images, training=True).numpy(), layer(images, training=True).numpy()
    assert int(layer.batches_seen.numpy()) == 2
    assert not np.allclose(first, second), "each batch draws new transforms"
    # The very transform of the tf.data pipeline, seeded by (run seed, replica, batch counter).
    expected = augment_batch(images, tf.constant([3 * SEED_STRIDE, 1], tf.int64), config).numpy()
    np.testing.assert_allclose(second, expected, atol=1e-6)


def test_on_device_augmentation_cannot_be_compiled_with_xla():
    with pytest.raises(ValueError, match="augment_on_device cannot be combined with jit_compile"):
        TrainConfig(augment_on_device=True, jit_compile=True)
    TrainConfig(augment=False, augment_on_device=True, jit_compile=True)  # nothing to augment: fine
