"""A person's own images: a folder of class subfolders, Keras' convention.

Two layouts, as `keras.utils.image_dataset_from_directory` reads them:

    my_images/cat/*.jpg, my_images/dog/*.png ...          one subfolder per class; a fixed share is
                                                          held out as the test set (test_fraction)
    my_images/train/cat/..., my_images/test/cat/...       train/ and test/, each with the same classes

Class names are the subfolders' names, in sorted order (class index = position), as Keras does.
Images are JPEG or PNG files (.jpg, .jpeg, .png), found at any depth under their class folder.
Names starting with "." are skipped at any depth (".DS_Store"), and class folders starting with
"_" too (Ray Data's listing skips them); any other file is an error naming it. The root may be a
local path or a URI pyarrow's filesystems open (s3://bucket/prefix, gs://bucket/prefix).

Files are listed, put in a fixed pseudo-random order (so that `limit` takes a mix of classes and a
held-out test set is the same every time) and only then decoded, the ones `limit` keeps only.
Pixels stay uint8. A folder without subfolders whose top level holds .npz files is a folder of
shards instead (cnn/npz_shards.py): its rows are listed as files here and follow the same order and splits. The streaming loader (cnn_ray/streaming.py) streams the files
training_and_validation picks here and decodes them with `decode`, so both loaders train, validate
and test on the same files and pixels.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from collections.abc import Iterable, Sequence
from typing import Any
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow.fs as pafs

from cnn.splits import validation_split

IMAGE_FORMATS = ("JPEG", "PNG", "MPO")  # MPO: a JPEG with more pictures (phone cameras); the first is read
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg")  # compared in lower case
PIL_MODES = {"rgb": "RGB", "grayscale": "L"}
SPLIT_DIRS = ("train", "test")
FOLDER_ORDER_SEED = 20240502  # fixed: the same files in the same order, in every trial and every run
DECODE_THREADS = 8  # decoding and (for buckets) reading release the GIL


class ImageFolderError(ValueError):
    """A folder that cannot be used; the message is one line a person can act on."""


@dataclass(frozen=True)
class ImageFiles:
    """An image folder's files, listed and ordered, not yet read: what a loader needs."""

    root: str
    class_names: list[str]
    train: list[tuple[str, int]]  # (path, class index), in the fixed order
    test: list[tuple[str, int]]
    filesystem: pafs.FileSystem
    train_base: str  # the folder the training files are listed from, as `filesystem` names it
    test_folder: bool  # the test set is the folder's test/ (or test shards), not a held-out share
    # A folder of .npz shards (cnn/npz_shards.py), whose "files" are "<shard>#<row>": where each
    # shard's images lie (npz_shards.ArrayPlace); None for image files.
    shard_places: dict[str, Any] | None = None

    def describe(self) -> str:
        if self.shard_places is not None:
            return f"{len(self.train) + len(self.test)} images in {len(self.shard_places)} .npz shards"
        return f"{len(self.train) + len(self.test)} image files in {len(self.class_names)} class folders"


def is_image_folder(dataset: str) -> bool:
    """Whether `dataset` names a folder (local, or a bucket URI) rather than an .npz or a known name."""
    if dataset.endswith(".npz"):
        return False
    return "://" in dataset or Path(dataset).expanduser().is_dir()


def class_folders(root: str) -> list[str]:
    """The folder's class names, checked without listing its files (quick, whatever its size): a
    folder, with two or more class subfolders, and a test/ with train/'s classes if it has one."""
    filesystem, base = _open(root)
    if not split_layout(filesystem, base):
        return _class_names(filesystem, base, root)
    class_names = _class_names(filesystem, f"{base}/train", f"{root}/train")
    test_classes = _class_names(filesystem, f"{base}/test", f"{root}/test")
    if test_classes != class_names:
        missing = sorted(set(class_names) - set(test_classes))
        extra = sorted(set(test_classes) - set(class_names))
        raise ImageFolderError(f"{root}/test: its classes differ from train/'s (missing: {', '.join(missing) or 'none'}; "
                               f"not in train/: {', '.join(extra) or 'none'})")
    return class_names


def quick_check(root: str) -> None:
    """A folder checked before anything starts, without listing its files (quick, whatever its
    size): an image folder's class subfolders (class_folders), or a shard folder's shard names and
    first training shard (cnn/npz_shards.py)."""
    from cnn import npz_shards  # which imports this module

    filesystem, base = _open(root)
    if npz_shards.is_shard_folder(filesystem, base, _subfolders(filesystem, base)):
        npz_shards.check_shard_folder(root, filesystem, base)
    else:
        class_folders(root)


def list_image_files(root: str, test_fraction: float) -> ImageFiles:
    """The folder's classes and files; the test set is its test/ folder, else `test_fraction` of the
    files. A folder of .npz shards lists its rows as files (cnn/npz_shards.py)."""
    from cnn import npz_shards  # which imports this module

    filesystem, base = _open(root)
    if npz_shards.is_shard_folder(filesystem, base, _subfolders(filesystem, base)):
        return npz_shards.list_shards(root, filesystem, base, test_fraction)
    class_names = class_folders(root)
    if split_layout(filesystem, base):
        train, _ = ordered_split(_listed(filesystem, f"{base}/train", f"{root}/train", class_names), None)
        test, _ = ordered_split(_listed(filesystem, f"{base}/test", f"{root}/test", class_names), None)
        return ImageFiles(root, class_names, train, test, filesystem, f"{base}/train", True)
    train, test = held_out_test(_listed(filesystem, base, root, class_names), test_fraction, root,
                                "add images or give train/ and test/ folders")
    return ImageFiles(root, class_names, train, test, filesystem, base, False)


def held_out_test(files: list[tuple[str, int]], test_fraction: float, root: str, remedy: str
                  ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """ordered_split's (train, test) with `test_fraction` held out; one line (ending in `remedy`) if
    that leaves either side empty."""
    held_out = int(round(len(files) * test_fraction))
    if held_out == 0 or held_out == len(files):
        raise ImageFolderError(f"{root}: {len(files)} images cannot be split into train and test with "
                               f"test_fraction={test_fraction}; {remedy}")
    return ordered_split(files, test_fraction)


def split_layout(filesystem: pafs.FileSystem, base: str) -> bool:
    """Whether the folder holds train/ and test/ folders (with class subfolders in train/)."""
    return set(SPLIT_DIRS) <= set(_subfolders(filesystem, base)) and bool(_subfolders(filesystem, f"{base}/train"))


def labelled_files(paths: Iterable[str], base: str, class_names: Sequence[str]) -> list[tuple[str, int]]:
    """(path, class index) of the image files among `paths` (as a recursive listing of `base` gives
    them), by class then path: the files in their class folders, hidden names skipped."""
    index = {name: i for i, name in enumerate(class_names)}
    found = []
    for path in paths:
        parts = PurePosixPath(path[len(base):].lstrip("/")).parts
        if len(parts) >= 2 and parts[0] in index and not any(part.startswith(".") for part in parts):
            found.append((path, index[parts[0]]))
    return sorted(found, key=lambda item: (item[1], item[0]))


def ordered_split(files: list[tuple[str, int]], test_fraction: float | None
                  ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train, test): the files in the fixed pseudo-random order, the first `test_fraction` of them
    (rounded) held out as the test set; all of them train when test_fraction is None."""
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(files))
    shuffled = [files[i] for i in order]
    held_out = 0 if test_fraction is None else int(round(len(files) * test_fraction))
    return shuffled[held_out:], shuffled[:held_out]


def training_and_validation(train: list[tuple[str, int]], limit: int | None, validation_fraction: float
                            ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The files the in-memory loader trains and validates on: the first `limit` of the training
    files, split as cnn.data.prepare splits their images."""
    pool = train[:limit]
    train_idx, val_idx = validation_split(len(pool), validation_fraction)
    return [pool[i] for i in train_idx], [pool[i] for i in val_idx]


def read_images(files: ImageFiles, split: list[tuple[str, int]], image_size: tuple[int, int] | None,
                color_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, H, W, C), labels int64) of `split`, resized to `image_size` (height, width)
    if given; without it every image must have the first one's size."""
    if not split:
        return np.zeros((0, 1, 1, 1), np.uint8), np.zeros(0, np.int64)
    labels = np.array([label for _, label in split], np.int64)
    if files.shard_places is not None:
        from cnn.npz_shards import read_rows  # which imports this module

        paths = [path for path, _ in split]
        return read_rows(files.filesystem, paths, None, image_size, color_mode, files.shard_places), labels
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        images = list(pool.map(lambda item: decode(files.filesystem, item[0], image_size, color_mode), split))
    first_path, first = split[0][0], images[0]
    for (path, _), image in zip(split, images):
        if image.shape != first.shape:
            raise ImageFolderError(
                f"{files.root}: images differ in size ({first_path} is {first.shape[1]}x{first.shape[0]}, "
                f"{path} is {image.shape[1]}x{image.shape[0]}, width x height); "
                "pass --image-size HEIGHT WIDTH to resize them all")
    return np.stack(images), labels


def decode(filesystem: pafs.FileSystem, path: str, image_size: tuple[int, int] | None, color_mode: str) -> np.ndarray:
    """One JPEG or PNG file as uint8 (H, W, 3) for rgb or (H, W, 1) for grayscale."""
    from PIL import Image, UnidentifiedImageError

    try:
        with filesystem.open_input_file(path) as handle:
            content = handle.read()
    except OSError as error:
        raise ImageFolderError(f"{path}: cannot be read ({first_line(error)})") from None
    try:
        image = Image.open(io.BytesIO(content))
        if image.format not in IMAGE_FORMATS:
            raise ImageFolderError(f"{path}: a {image.format} image; only JPEG and PNG are read")
        # Resized, then converted (the streaming loader decodes with this function too).
        if image_size is not None and image.size != (image_size[1], image_size[0]):
            image = image.resize((image_size[1], image_size[0]), Image.BILINEAR)
        image = image.convert(PIL_MODES[color_mode])
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageFolderError(f"{path}: not a JPEG or PNG image that can be read ({type(error).__name__})") from None
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def _open(root: str) -> tuple[pafs.FileSystem, str]:
    try:
        if "://" in root:
            filesystem, base = pafs.FileSystem.from_uri(root)
        else:
            filesystem, base = pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())
        info = filesystem.get_file_info(base)
    except (OSError, ValueError) as error:
        raise ImageFolderError(f"{root}: cannot open ({first_line(error)})") from None
    if info.type != pafs.FileType.Directory:
        raise ImageFolderError(f"{root}: not a folder")
    return filesystem, base.rstrip("/")


def _subfolders(filesystem: pafs.FileSystem, base: str) -> list[str]:
    entries = _listing(filesystem, pafs.FileSelector(base))
    return sorted(e.base_name for e in entries
                  if e.type == pafs.FileType.Directory and not e.base_name.startswith((".", "_")))


def _class_names(filesystem: pafs.FileSystem, base: str, shown: str) -> list[str]:
    names = _subfolders(filesystem, base)
    if not names:
        raise ImageFolderError(f"{shown}: no class subfolders; an image folder holds one subfolder of images per "
                               "class (or train/ and test/ folders that each do)")
    if len(names) < 2:
        raise ImageFolderError(f"{shown}: only one class ({names[0]}); a classifier needs at least two class subfolders")
    return names


def _listed(filesystem: pafs.FileSystem, base: str, shown: str, class_names: list[str]) -> list[tuple[str, int]]:
    """Every image file under the class folders, by class then path; one line for an empty class or
    a file that is not named as a JPEG or PNG."""
    entries = _listing(filesystem, pafs.FileSelector(base, recursive=True))
    files = labelled_files([e.path for e in entries if e.type == pafs.FileType.File], base, class_names)
    for path, _ in files:
        if path.rsplit(".", 1)[-1].lower() not in IMAGE_EXTENSIONS:
            raise ImageFolderError(f"{path}: not a JPEG or PNG image (by its name; images end in "
                                   f"{', '.join('.' + e for e in IMAGE_EXTENSIONS)})")
    counts = np.bincount([label for _, label in files], minlength=len(class_names))
    for name, count in zip(class_names, counts):
        if count == 0:
            raise ImageFolderError(f"{shown}/{name}: class '{name}' has no images")
    return files


def _listing(filesystem: pafs.FileSystem, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
    try:
        return filesystem.get_file_info(selector)
    except OSError as error:  # a bucket that refuses the listing, a folder gone since
        raise ImageFolderError(f"{selector.base_dir}: cannot be listed ({first_line(error)})") from None


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
