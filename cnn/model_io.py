"""Writing a model into a checkpoint folder and loading it back (the folder's layout: cnn.checkpoint_state)."""

from __future__ import annotations

from pathlib import Path

from cnn import device_augment  # noqa: F401  registers RandomAffine, which saved models may contain
from cnn.checkpoint_state import MODEL_FILE
from cnn.keras_compat import keras


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save in the native .keras (zip) format, from any thread.

    tf_keras 2.21 bug: saving_lib restores a thread-local "v3 saving enabled" flag to False
    after the first save in a thread other than the main one (Ray Train runs the training
    function in such a thread), so every later `model.save("x.keras")` silently writes HDF5.
    Setting the flag before each save keeps the format what the file name says.
    """
    from tf_keras.src.saving import saving_lib  # private, but the flag lives nowhere else

    saving_lib._SAVING_V3_ENABLED.value = True
    model.save(str(path))


def load_model(checkpoint_dir: str | Path) -> keras.Model:
    """The model saved in a checkpoint folder (compiled, with its optimizer)."""
    path = Path(checkpoint_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in checkpoint folder {checkpoint_dir}")
    return keras.models.load_model(path)
