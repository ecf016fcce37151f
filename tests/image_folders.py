"""Small image folders of real PNG and JPEG files, written by the tests that use them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("circle", "cross", "stripes")


def class_image(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (height, width, 3) uint8 picture a small CNN can tell apart by class, with noise."""
    height, width = size
    y, x = np.mgrid[:height, :width]
    if kind == "circle":
        mask = (y - height / 2) ** 2 + (x - width / 2) ** 2 < (min(size) / 3) ** 2
    elif kind == "cross":
        mask = (np.abs(y - height / 2) < 2) | (np.abs(x - width / 2) < 2)
    else:
        mask = (x // 3) % 2 == 0
    image = np.where(mask, 220, 30)[..., np.newaxis] * np.array([1.0, 0.8, 0.6])
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)


def write_class_folders(root: Path, per_class: int = 10, size: tuple[int, int] = (16, 16),
                        classes: tuple[str, ...] = CLASSES, seed: int = 0) -> Path:
    """root/<class>/img<i>.png or .jpg (alternating), `per_class` images each."""
    rng = np.random.default_rng(seed)
    for kind in classes:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.fromarray(class_image(kind, size, rng))
            image.save(folder / (f"img{i}.png" if i % 2 == 0 else f"img{i}.jpg"))
    return root


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_mnist_folders(mnist_npz: Path, root: Path, train: int, test: int) -> Path:
    """root/train/<digit name>/ and root/test/<digit name>/ holding MNIST's first `train` training
    and `test` test images, every other one a PNG (lossless) and the rest JPEGs."""
    with np.load(mnist_npz) as arrays:
        splits = {"train": (arrays["x_train"][:train], arrays["y_train"][:train]),
                  "test": (arrays["x_test"][:test], arrays["y_test"][:test])}
    for split, (images, labels) in splits.items():
        for name in DIGIT_NAMES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image).save(root / split / DIGIT_NAMES[int(label)] / f"{i:05d}.{'png' if i % 2 else 'jpg'}")
    return root


def write_shards(root: Path, images: np.ndarray, labels: np.ndarray, shards: int, prefix: str = "train",
                 compressed: bool = False, **extra: np.ndarray) -> list[Path]:
    """root/<prefix>-0000i.npz: the images and labels cut into `shards` shards, as numpy.savez (or
    savez_compressed) writes them, with `extra` arrays in each."""
    root.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    paths = []
    for i, (x, y) in enumerate(zip(np.array_split(images, shards), np.array_split(labels, shards))):
        paths.append(root / f"{prefix}-{i:05d}.npz")
        save(paths[-1], x=x, y=y, **extra)
    return paths


def write_mnist_shards(mnist_npz: Path, root: Path, train: int, test: int, shards: int = 3) -> Path:
    """root/train-*.npz (MNIST's first `train` training images in `shards` shards) and root/test-00000.npz."""
    with np.load(mnist_npz) as arrays:
        write_shards(root, arrays["x_train"][:train], arrays["y_train"][:train], shards,
                     class_names=np.array(DIGIT_NAMES))
        write_shards(root, arrays["x_test"][:test], arrays["y_test"][:test], 1, prefix="test",
                     class_names=np.array(DIGIT_NAMES))
    return root
