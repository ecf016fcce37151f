"""A person's own images: a folder of class subfolders, Keras' convention.

Two layouts, as `keras.utils.image_dataset_from_directory` reads them:

    my_images/cat/*.jpg, my_images/dog/*.png ...          one subfolder per class; a fixed share is
                                                          held out as the test set (test_fraction)
    my_images/train/cat/..., my_images/test/cat/...       train/ and test/, each with the same classes

Class names are the subfolders' names, in sorted order (class index = position), as Keras does.
Images are JPEG or PNG, found at any depth under their class folder; hidden files (".DS_Store")
are skipped, any other file that is not a JPEG or PNG is an error naming it. The root may be a
local path or a URI pyarrow's filesystems open (s3://bucket/prefix, gs://bucket/prefix).

Files are listed, put in a fixed pseudo-random order (so that `limit` takes a mix of classes and a
held-out test set is the same every time) and only then decoded, the ones `limit` keeps only.
Pixels stay uint8.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow.fs as pafs

IMAGE_FORMATS = ("JPEG", "PNG")
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

    def describe(self) -> str:
        return f"{len(self.train) + len(self.test)} image files in {len(self.class_names)} class folders"


def is_image_folder(dataset: str) -> bool:
    """Whether `dataset` names a folder (local, or a bucket URI) rather than an .npz or a known name."""
    if dataset.endswith(".npz"):
        return False
    return "://" in dataset or Path(dataset).expanduser().is_dir()


def list_image_files(root: str, test_fraction: float) -> ImageFiles:
    """The folder's classes and files; the test set is its test/ folder, else `test_fraction` of the files."""
    filesystem, base = _open(root)
    subfolders = _subfolders(filesystem, base)
    if set(SPLIT_DIRS) <= set(subfolders) and _subfolders(filesystem, f"{base}/train"):
        class_names = _class_names(filesystem, f"{base}/train", f"{root}/train")
        test_classes = _class_names(filesystem, f"{base}/test", f"{root}/test")
        if test_classes != class_names:
            missing = sorted(set(class_names) - set(test_classes))
            extra = sorted(set(test_classes) - set(class_names))
            raise ImageFolderError(f"{root}/test: its classes differ from train/'s (missing: {', '.join(missing) or 'none'}; "
                                   f"not in train/: {', '.join(extra) or 'none'})")
        train = _shuffled(_labelled_files(filesystem, f"{base}/train", f"{root}/train", class_names))
        test = _shuffled(_labelled_files(filesystem, f"{base}/test", f"{root}/test", class_names))
        return ImageFiles(root, class_names, train, test, filesystem)
    class_names = _class_names(filesystem, base, root)
    files = _shuffled(_labelled_files(filesystem, base, root, class_names))
    held_out = int(round(len(files) * test_fraction))
    if held_out == 0 or held_out == len(files):
        raise ImageFolderError(f"{root}: {len(files)} images cannot be split into train and test with "
                               f"test_fraction={test_fraction}; add images or give train/ and test/ folders")
    return ImageFiles(root, class_names, files[held_out:], files[:held_out], filesystem)


def read_images(files: ImageFiles, split: list[tuple[str, int]], image_size: tuple[int, int] | None,
                color_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, H, W, C), labels int64) of `split`, resized to `image_size` (height, width)
    if given; without it every image must have the first one's size."""
    if not split:
        return np.zeros((0, 1, 1, 1), np.uint8), np.zeros(0, np.int64)
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        images = list(pool.map(lambda item: decode(files.filesystem, item[0], image_size, color_mode), split))
    first_path, first = split[0][0], images[0]
    for (path, _), image in zip(split, images):
        if image.shape != first.shape:
            raise ImageFolderError(
                f"{files.root}: images differ in size ({first_path} is {first.shape[1]}x{first.shape[0]}, "
                f"{path} is {image.shape[1]}x{image.shape[0]}, width x height); "
                "pass --image-size HEIGHT WIDTH to resize them all")
    return np.stack(images), np.array([label for _, label in split], np.int64)


def decode(filesystem: pafs.FileSystem, path: str, image_size: tuple[int, int] | None, color_mode: str) -> np.ndarray:
    """One JPEG or PNG file as uint8 (H, W, 3) for rgb or (H, W, 1) for grayscale."""
    from PIL import Image, UnidentifiedImageError

    with filesystem.open_input_file(path) as handle:
        content = handle.read()
    try:
        image = Image.open(io.BytesIO(content))
        if image.format not in IMAGE_FORMATS:
            raise ImageFolderError(f"{path}: a {image.format} image; only JPEG and PNG are read")
        image = image.convert("RGB" if color_mode == "rgb" else "L")
        if image_size is not None and image.size != (image_size[1], image_size[0]):
            image = image.resize((image_size[1], image_size[0]), Image.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageFolderError(f"{path}: not a JPEG or PNG image ({type(error).__name__})") from None
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
        raise ImageFolderError(f"{root}: cannot open ({str(error).splitlines()[0][:160]})") from None
    if info.type != pafs.FileType.Directory:
        raise ImageFolderError(f"{root}: not a folder")
    return filesystem, base.rstrip("/")


def _subfolders(filesystem: pafs.FileSystem, base: str) -> list[str]:
    entries = filesystem.get_file_info(pafs.FileSelector(base))
    return sorted(e.base_name for e in entries if e.type == pafs.FileType.Directory and not e.base_name.startswith("."))


def _class_names(filesystem: pafs.FileSystem, base: str, shown: str) -> list[str]:
    names = _subfolders(filesystem, base)
    if not names:
        raise ImageFolderError(f"{shown}: no class subfolders; an image folder holds one subfolder of images per "
                               "class (or train/ and test/ folders that each do)")
    if len(names) < 2:
        raise ImageFolderError(f"{shown}: only one class ({names[0]}); a classifier needs at least two class subfolders")
    return names


def _labelled_files(filesystem: pafs.FileSystem, base: str, shown: str, class_names: list[str]) -> list[tuple[str, int]]:
    files = []
    for index, name in enumerate(class_names):
        selector = pafs.FileSelector(f"{base}/{name}", recursive=True)
        found = sorted(e.path for e in filesystem.get_file_info(selector)
                       if e.type == pafs.FileType.File and not _hidden(e.path, base))
        if not found:
            raise ImageFolderError(f"{shown}/{name}: class '{name}' has no images")
        files.extend((path, index) for path in found)
    return files


def _hidden(path: str, base: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(path[len(base):]).parts)


def _shuffled(files: list[tuple[str, int]]) -> list[tuple[str, int]]:
    order = np.random.default_rng(FOLDER_ORDER_SEED).permutation(len(files))
    return [files[i] for i in order]
