"""Load an image-classification dataset, check it, keep it compact and split off validation.

Lookup order: a folder of class subfolders (cnn/image_folder.py) or of .npz shards
(cnn/npz_shards.py); an explicit `.npz` path;
`<data_dir>/<name>.npz` where data_dir is an argument or the CNN_DATA_DIR setting; Keras' own
download. Files are read with `allow_pickle=False`, so no file is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.config import TrainConfig
from cnn.image_folder import ImageFiles, is_image_folder, list_image_files, read_images, training_and_validation
from cnn.splits import validation_split

DATA_DIR_SETTING = "CNN_DATA_DIR"
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 1000
COMPACT_CHUNK = 4096  # images per step of compact_pixels: its float temporaries stay small

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}

# sha256 of files known to be good copies: the team's shared copies, and the mnist.npz that
# keras.datasets.mnist downloads. Another copy still loads (no pickle can run), with a warning.
KNOWN_SHA256 = {
    "4e1f0917a667ad96371e04bc2298892441b23a0daa10edfd6bb81a6449ccdba7": "mnist (PNG export, lossless)",
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1": "mnist (keras.datasets)",
    "a4d1e7980695445acdcc7c977597f42e6f599b9344040e72ac5429c0066a2197":
        "cifar10 (JPEG-recompressed export, quality 75)",
}


class DataError(ValueError):
    """A dataset that cannot be used; the message is one line a person can act on."""


@dataclass(frozen=True)
class Dataset:
    """A split dataset: images (N, H, W, C) as compact as the source allows (uint8 0-255, one byte a
    pixel; float32 in [0, 1] only for float sources that are not whole steps of 1/255), labels
    one-hot float32. The input pipelines scale to [0, 1] (cnn.pipeline.unit_float); code that
    feeds a model directly uses unit_float below."""

    name: str
    source: str
    class_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self, loader: str = "memory") -> "DataSummary":
        return DataSummary(self.name, self.source, list(self.class_names), self.input_shape, len(self.x_train),
                           len(self.x_val), len(self.x_test), loader)

    def describe(self) -> str:
        return self.summary().describe()


@dataclass(frozen=True)
class DataSummary:
    """What a job says and records about its dataset, which it may never hold (the streaming loader's
    training images stay in their folder): names, shape and counts."""

    name: str
    source: str
    class_names: list[str]
    input_shape: tuple[int, int, int]
    train: int
    validation: int
    test: int
    loader: str  # memory or stream

    def describe(self) -> str:
        how = ", training images streamed by Ray Data" if self.loader == "stream" else ""
        return (f"{self.name}: {self.train} train / {self.validation} validation / {self.test} test images of "
                f"{self.input_shape}, {len(self.class_names)} classes, from {self.source}{how}")


def load_for(config: TrainConfig, data_dir: str | None = None, evaluation_only: bool = False) -> Dataset:
    """The dataset a training config names, read with its data settings. With `evaluation_only`, an
    image folder's training images are left undecoded (the report needs the test images only)."""
    if evaluation_only and names_a_folder(config.dataset):
        return folder_evaluation_sets(list_image_files(config.dataset, config.test_fraction), config)
    return load_dataset(config.dataset, data_dir=data_dir, limit=config.limit, test_limit=config.test_limit,
                        validation_fraction=config.validation_fraction, image_size=config.image_size,
                        color_mode=config.color_mode, test_fraction=config.test_fraction)


def load_dataset(dataset: str, data_dir: str | None = None, limit: int | None = None,
                 test_limit: int | None = None, validation_fraction: float = 0.1,
                 image_size: tuple[int, int] | None = None, color_mode: str = "rgb",
                 test_fraction: float = 0.2) -> Dataset:
    """Find, read, check and prepare a dataset (see the module docstring for the lookup).
    image_size, color_mode and test_fraction apply to image folders only."""
    if names_a_folder(dataset):
        return load_image_folder(dataset, limit, test_limit, validation_fraction, image_size, color_mode, test_fraction)
    name, path = resolve_dataset(dataset, data_dir)
    if path is None:
        raw, where, provenance = _download_with_keras(name), f"keras.datasets.{name}", ""
    else:
        raw, where, provenance = read_npz(path), str(path), f" ({checksum_status(path)})"
    check_arrays(raw, where)
    dataset_ = prepare(raw, name=name, source=where, limit=limit, test_limit=test_limit,
                       validation_fraction=validation_fraction)
    return dataclasses.replace(dataset_, source=where + provenance)


def load_image_folder(root: str, limit: int | None, test_limit: int | None, validation_fraction: float,
                      image_size: tuple[int, int] | None, color_mode: str, test_fraction: float) -> Dataset:
    """An image folder, decoded: only the files `limit` and `test_limit` keep."""
    return folder_dataset(list_image_files(root, test_fraction), limit, test_limit, validation_fraction,
                          image_size, color_mode)


def folder_dataset(files: ImageFiles, limit: int | None, test_limit: int | None, validation_fraction: float,
                   image_size: tuple[int, int] | None, color_mode: str) -> Dataset:
    """A listed image folder, decoded: only the files `limit` and `test_limit` keep."""
    train, test = files.train[:limit], files.test[:test_limit]
    x, y = read_images(files, train + test, image_size, color_mode)  # together: one size check over both
    raw = {"x_train": x[:len(train)], "y_train": y[:len(train)], "x_test": x[len(train):], "y_test": y[len(train):]}
    check_arrays(raw, files.root)
    return prepare(raw, name=folder_name(files.root), source=f"{files.root} ({files.describe()})",
                   validation_fraction=validation_fraction, class_names=files.class_names)


def folder_evaluation_sets(files: ImageFiles, config: TrainConfig) -> Dataset:
    """An image folder's validation and test images, decoded, and no training images: what the
    streaming loader keeps in the object store (its training images stream from the folder)."""
    _, validation = training_and_validation(files.train, config.limit, config.validation_fraction)
    test = files.test[:config.test_limit]
    x, y = read_images(files, validation + test, config.image_size, config.color_mode)
    classes, n = len(files.class_names), len(validation)
    return Dataset(name=folder_name(files.root), source=f"{files.root} ({files.describe()})",
                   class_names=list(files.class_names), x_train=x[:0], y_train=one_hot(y[:0], classes),
                   x_val=x[:n], y_val=one_hot(y[:n], classes), x_test=x[n:], y_test=one_hot(y[n:], classes))


def names_a_folder(dataset: str) -> bool:
    """Whether `dataset` is an image folder: a folder or a bucket URI, and not one of the known
    names (a folder called mnist in the working directory does not hide MNIST)."""
    return dataset not in CLASS_NAMES and is_image_folder(dataset)


def absolute_dataset(dataset: str) -> str:
    """A local folder or file as an absolute path (the cluster's processes have other working
    directories); names and URIs unchanged."""
    if dataset in CLASS_NAMES or "://" in dataset:
        return dataset
    path = Path(dataset).expanduser()
    return str(path.resolve()) if path.exists() else dataset


def folder_name(root: str) -> str:
    return root.rstrip("/").rsplit("/", 1)[-1] or root


def resolve_dataset(dataset: str, data_dir: str | None = None) -> tuple[str, Path | None]:
    """(name, path to an .npz or None for Keras' download). Unknown names raise DataError."""
    if dataset.endswith(".npz") or os.sep in dataset:
        path = Path(dataset).expanduser()
        if not path.is_file():
            raise DataError(f"dataset file not found: {path}")
        return path.stem, path
    if dataset not in CLASS_NAMES:
        raise DataError(f"unknown dataset {dataset!r}; choose one of: "
                        f"{', '.join(CLASS_NAMES)}, or a path to an .npz file")
    folder = data_dir or os.environ.get(DATA_DIR_SETTING)
    if folder:
        path = Path(folder).expanduser() / f"{dataset}.npz"
        if path.is_file():
            return dataset, path
    return dataset, None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


ZIP_HEADER = b"PK\x03\x04"  # how every zip archive, and so every .npz, begins


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read the four arrays from an .npz without unpickling anything."""
    try:
        with open(path, "rb") as handle:  # np.load takes what is not a zip (or .npy) for a pickle
            if handle.read(4) != ZIP_HEADER:
                raise DataError(f"{path}: not an .npz file (an .npz is a zip archive of arrays, as numpy.savez "
                                "writes it)")
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ARRAY_KEYS if k not in archive.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(missing)}; "
                                f"an .npz dataset needs {', '.join(ARRAY_KEYS)}")
            return {key: archive[key] for key in ARRAY_KEYS}
    except DataError:
        raise
    except ValueError as error:
        if "pickle" in str(error):
            raise DataError(f"{path}: holds pickled objects, which are refused; "
                            "save plain numeric arrays with numpy.savez") from None
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: corrupt or truncated .npz file ({type(error).__name__}: {error})") from None


def checksum_status(path: Path) -> str:
    """Which known copy a file is, or a warning that its checksum is unknown."""
    known = KNOWN_SHA256.get(sha256_of(path))
    return f"checksum verified: {known}" if known else "checksum unknown: not one of the known copies"


def check_arrays(raw: dict[str, np.ndarray], source: str) -> None:
    """Shapes, dtypes and label range; raise DataError naming the source on any problem."""
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], raw[f"y_{split}"]
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise DataError(f"{source}: x_{split} has shape {x.shape}; expected (N, H, W) "
                            "or (N, H, W, 1 or 3)")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise DataError(f"{source}: x_{split} has dtype {x.dtype}; expected uint8 or float")
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{source}: y_{split} has shape {raw[f'y_{split}'].shape}; "
                            f"expected ({len(x)},) class indices")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{source}: y_{split} has dtype {y.dtype}; expected integer class indices")
        if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
            raise DataError(f"{source}: y_{split} has labels outside [0, {MAX_CLASSES - 1}] "
                            f"(min {y.min()}, max {y.max()})")
        if len(x) == 0:
            raise DataError(f"{source}: x_{split} is empty")
        if np.issubdtype(x.dtype, np.integer) and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{source}: x_{split} has integer pixels outside [0, 255] "
                            f"(min {x.min()}, max {x.max()}); expected 8-bit images")
    if raw["x_train"].shape[1:] != raw["x_test"].shape[1:]:
        raise DataError(f"{source}: train images {raw['x_train'].shape[1:]} and test images "
                        f"{raw['x_test'].shape[1:]} differ in shape")
    if raw["x_train"].dtype.kind == "f" and (raw["x_train"].min() < 0 or raw["x_train"].max() > 255):
        raise DataError(f"{source}: float pixels must lie in [0, 1] or [0, 255]")


def prepare(raw: dict[str, np.ndarray], name: str, source: str, limit: int | None = None,
            test_limit: int | None = None, validation_fraction: float = 0.1,
            class_names: list[str] | None = None) -> Dataset:
    """Compact the pixels, add the channel axis, one-hot the labels, split off validation.
    Class names: `class_names` if given, else the known dataset's, else the label numbers."""
    x_pool, y_pool = raw["x_train"][:limit], raw["y_train"].reshape(-1)[:limit]
    x_test, y_test = raw["x_test"][:test_limit], raw["y_test"].reshape(-1)[:test_limit]
    class_names = class_names or CLASS_NAMES.get(name)
    num_classes = len(class_names or []) or int(max(y_pool.max(), y_test.max())) + 1
    if y_pool.max() >= num_classes or y_test.max() >= num_classes:
        raise DataError(f"{source}: labels go up to {max(y_pool.max(), y_test.max())} but "
                        f"{name} has {num_classes} classes")
    train_idx, val_idx = validation_split(len(x_pool), validation_fraction)
    if len(train_idx) == 0:
        raise DataError(f"{source}: no training images left after holding out "
                        f"{validation_fraction:.0%} for validation")
    class_names = class_names or [str(i) for i in range(num_classes)]
    return Dataset(
        name=name, source=source, class_names=class_names,
        x_train=compact_pixels(x_pool[train_idx]), y_train=one_hot(y_pool[train_idx], num_classes),
        x_val=compact_pixels(x_pool[val_idx]), y_val=one_hot(y_pool[val_idx], num_classes),
        x_test=compact_pixels(x_test), y_test=one_hot(y_test, num_classes),
    )


def compact_pixels(x: np.ndarray) -> np.ndarray:
    """The images with a channel axis, as uint8 0-255 whenever that loses nothing: integer pixels
    (checked to lie in [0, 255]) and floats that are whole steps of 1/255 (in [0, 1]) or whole
    numbers (in [0, 255]); other floats as float32 in [0, 1]. Four times less memory than float32
    in the object store and in every worker. Floats are checked and converted a chunk at a time."""
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.dtype.kind != "f":
        return x.astype(np.uint8, copy=False)
    scale = np.float32(255.0 if x.size and x.max() <= 1.0 else 1.0)
    chunks = [slice(i, i + COMPACT_CHUNK) for i in range(0, len(x), COMPACT_CHUNK)]
    if all(_whole_steps(x[chunk].astype(np.float32) * scale) for chunk in chunks):
        compact = np.empty(x.shape, np.uint8)
        for chunk in chunks:
            compact[chunk] = np.round(x[chunk].astype(np.float32) * scale)
        return compact
    return x.astype(np.float32) * (scale / np.float32(255.0))


def _whole_steps(steps: np.ndarray) -> bool:
    return bool(np.all(np.abs(steps - np.round(steps)) < 1e-3))


def unit_float(x: np.ndarray) -> np.ndarray:
    """Images as a model takes them: float32 in [0, 1] (uint8 divided by 255, floats as they are)."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[y.astype(np.int64)]


def _download_with_keras(name: str) -> dict[str, np.ndarray]:
    """Keras' own download (cached under ~/.keras/datasets); one line if it fails."""
    import tf_keras  # imported here: reading an .npz needs no TensorFlow

    loader = getattr(tf_keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # noqa: BLE001 - any download failure gets the same advice
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"could not download {name} with keras.datasets ({reason[:160]}); without internet, "
            f"put {name}.npz (arrays {', '.join(ARRAY_KEYS)}) in a folder and set "
            f"{DATA_DIR_SETTING}=<folder>, or pass the .npz path as the dataset") from None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
