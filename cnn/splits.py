"""The validation split, shared by the in-memory loader (cnn/data.py) and the streaming one
(cnn/image_folder.py picks the same files), so that both hold out the same images."""

from __future__ import annotations

import numpy as np

VALIDATION_SPLIT_SEED = 20240501  # fixed, so every trial and seed sees the same validation set


def validation_split(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) into n images, each sorted: a fixed pseudo-random
    `fraction` of them (rounded) held out for validation."""
    order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(n)
    held_out = int(round(n * fraction))
    return np.sort(order[held_out:]), np.sort(order[:held_out])
