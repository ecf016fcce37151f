"""The original study's augmentation as one random affine transform per image, in tf.data.

Keras' ImageDataGenerator (gone from Keras 3's public API) applied rotation, shift, shear,
zoom and flip. Here the five are composed into a single 3x3 matrix per image and the image
is resampled once with ImageProjectiveTransformV3: one bilinear interpolation instead of
five, on a whole batch at a time. Randomness is stateless and seeded per batch, so a run is
reproducible and a resumed run sees the same augmented images as an uninterrupted one.
"""

from __future__ import annotations

import math

import tensorflow as tf

from cnn.config import TrainConfig

# A seed per (run seed, n) for the pipeline's epochs and the on-device layer's replicas:
# run_seed * SEED_STRIDE + n, distinct for every n below the stride (a prime).
SEED_STRIDE = 1_000_003


def augment_batch(images: tf.Tensor, seed: tf.Tensor, config: TrainConfig) -> tf.Tensor:
    """Randomly transform a batch (N, H, W, C) of float images; `seed` is an int64 pair."""
    height = tf.cast(tf.shape(images)[1], tf.float32)
    width = tf.cast(tf.shape(images)[2], tf.float32)
    transforms = random_affine_transforms(tf.shape(images)[0], height, width, seed, config)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode=config.fill_mode.upper())


def random_affine_transforms(n: tf.Tensor, height: tf.Tensor, width: tf.Tensor, seed: tf.Tensor,
                             config: TrainConfig) -> tf.Tensor:
    """(n, 8) projective transforms mapping output pixel coordinates to input coordinates.

    As in ImageDataGenerator, the matrix maps each output pixel back to where it samples the
    input, about the image centre: input = A @ (output - centre) + centre + shift, with
    A = rotation @ shear @ zoom @ flip.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=7)

    def uniform(i: int, bound: float) -> tf.Tensor:
        return tf.random.stateless_uniform([n], seeds[i], minval=-bound, maxval=bound)

    theta = uniform(0, math.radians(config.rotation_degrees))
    shear = uniform(1, math.radians(config.shear_degrees))
    zoom_x = 1.0 + uniform(2, config.zoom)
    zoom_y = 1.0 + uniform(3, config.zoom)
    shift_x = uniform(4, config.width_shift) * width
    shift_y = uniform(5, config.height_shift) * height
    flip = tf.ones([n])
    if config.horizontal_flip:
        coin = tf.random.stateless_uniform([n], seeds[6])
        flip = tf.where(coin < 0.5, -1.0, 1.0)

    # A = R(theta) @ [[1, -sin(shear)], [0, cos(shear)]] @ diag(zoom_x, zoom_y) @ diag(flip, 1)
    cos_t, sin_t = tf.cos(theta), tf.sin(theta)
    s01, s11 = -tf.sin(shear), tf.cos(shear)
    a00 = cos_t * zoom_x * flip
    a01 = (cos_t * s01 - sin_t * s11) * zoom_y
    a10 = sin_t * zoom_x * flip
    a11 = (sin_t * s01 + cos_t * s11) * zoom_y

    # Pixel centres sit at half-integers' neighbours; (size - 1) / 2 is the geometric centre.
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    a02 = cx + shift_x - a00 * cx - a01 * cy
    a12 = cy + shift_y - a10 * cx - a11 * cy
    zeros = tf.zeros([n])
    return tf.stack([a00, a01, a02, a10, a11, a12, zeros, zeros], axis=1)
