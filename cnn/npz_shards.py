"""A dataset too large for one .npz: a folder of .npz shards, read whole or streamed like an image folder.

    my_shards/train-00000.npz, train-00001.npz, ...   arrays x: uint8 images (N, H, W) or (N, H, W, C)
                                                      with C 1 or 3, and y: class indices (N,)
    my_shards/test-00000.npz, ...                     the same for the test set; without test shards,
                                                      test_fraction of the training rows are held out
    class_names (optional, in any shard)              an array of strings, the same wherever it is

A shard is what `numpy.savez(path, x=images, y=labels)` writes; shards are taken in the order of
their names. Every row is listed as "<shard>#<row>" with its label, so that an image folder's
machinery applies unchanged (cnn/image_folder.py: the fixed order, `limit`, the validation split;
cnn_ray/streaming.py: blocks of rows decoded by Ray Data tasks). `read_rows` reads a block's rows
opening each shard once: only those rows' bytes when the shard is stored uncompressed
(numpy.savez), locally or from a bucket, at the places the listing found; the whole array when it
is compressed (numpy.savez_compressed), which is why compressed shards are read into memory but do
not stream (check_streamable: every block would decompress whole shards).
Nothing is unpickled. All images must have one shape: `--image-size` and `--color-mode grayscale`
are refused where they would change it (they apply to image files).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from cnn.image_folder import ImageFiles, ImageFolderError, first_line, held_out_test, ordered_split

EXTENSION = ".npz"
ROW_MARK = "#"  # "<shard>#<row>"
SPLIT_PREFIXES = ("train", "test")
IMAGES, LABELS, NAMES = "x.npy", "y.npy", "class_names.npy"
ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, 22 bytes, file name length, extra field length


@dataclass(frozen=True)
class ArrayPlace:
    """Where an array of a shard lies: its shape and dtype, and the offset of its first byte in the
    shard's file when the zip stores it uncompressed (None: compressed, read whole)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int | None
    file_size: int  # the shard's, when it was read: a shard rewritten since its listing is refused


@dataclass(frozen=True)
class Shard:
    path: str
    images: ArrayPlace
    image_shape: tuple[int, int, int]
    labels: np.ndarray
    class_names: tuple[str, ...] | None


def is_shard_folder(filesystem: pafs.FileSystem, base: str, subfolders: list[str]) -> bool:
    """Whether the folder is one of shards: .npz files at its top level and no `subfolders` (a
    folder of class subfolders stays an image folder whatever else lies beside them)."""
    return not subfolders and bool(_shard_paths(filesystem, base))


def list_shards(root: str, filesystem: pafs.FileSystem, base: str, test_fraction: float) -> ImageFiles:
    """Every row of the folder's shards as ("<shard>#<row>", label), in the fixed order image folders
    use; checked: shard names, arrays, one image shape, labels within the classes."""
    train_paths, test_paths = split_shard_paths(root, filesystem, base)
    shards = [read_shard(filesystem, path) for path in train_paths + test_paths]
    class_names = _class_names(root, shards)
    _check_shapes(shards)
    rows = {path: _rows(shard) for path, shard in zip(train_paths + test_paths, shards)}
    train = [row for path in train_paths for row in rows[path]]
    test = [row for path in test_paths for row in rows[path]]
    if test:
        files_train, _ = ordered_split(train, None)
        files_test, _ = ordered_split(test, None)
    else:
        files_train, files_test = held_out_test(train, test_fraction, root, "add rows or test-*.npz shards")
    return ImageFiles(root, class_names, files_train, files_test, filesystem, base, bool(test),
                      shard_places={shard.path: shard.images for shard in shards})


def check_shard_folder(root: str, filesystem: pafs.FileSystem, base: str) -> None:
    """A quick check of a shard folder before anything starts: its shard names, and the first
    training shard's arrays (its classes are counted when every shard is read)."""
    train_paths, _ = split_shard_paths(root, filesystem, base)
    read_shard(filesystem, train_paths[0])


def check_streamable(files: ImageFiles) -> None:
    """One line if the folder's shards cannot stream: a compressed shard would be decompressed whole
    by every decoding task that needs one of its rows (blocks mix rows of every shard)."""
    compressed = [path for path, place in (files.shard_places or {}).items() if place.offset is None]
    if compressed:
        raise ImageFolderError(f"{compressed[0]}: a compressed shard (numpy.savez_compressed; {len(compressed)} of "
                               f"{len(files.shard_places or {})}) does not stream: store shards with numpy.savez, or "
                               "read them whole with --data-loader memory")


def split_shard_paths(root: str, filesystem: pafs.FileSystem, base: str) -> tuple[list[str], list[str]]:
    """(training shards, test shards), each in name order; one line for an .npz named neither."""
    paths = _shard_paths(filesystem, base)
    split = {prefix: [p for p in paths if _name(p).startswith(prefix)] for prefix in SPLIT_PREFIXES}
    other = [p for p in paths if not _name(p).startswith(SPLIT_PREFIXES)]
    if other:
        raise ImageFolderError(f"{other[0]}: a shard's name starts with train or test (train-00000.npz, "
                               "test-00000.npz)")
    if not split["train"]:
        raise ImageFolderError(f"{root}: no training shards; name them train-00000.npz, train-00001.npz, ...")
    return split["train"], split["test"]


def read_shard(filesystem: pafs.FileSystem, path: str) -> Shard:
    """A shard's image shape (from its header: the pixels are not read), labels and class names."""
    with _opened(filesystem, path) as (handle, archive):
        missing = [name[:-4] for name in (IMAGES, LABELS) if name not in archive.namelist()]
        if missing:
            raise ImageFolderError(f"{path}: missing array(s) {', '.join(missing)}; a shard holds x (images) "
                                   "and y (class indices), as numpy.savez(path, x=images, y=labels) writes")
        images = array_place(handle, archive, IMAGES, path)
        labels = _read_array(archive, LABELS, path)
        names = _read_array(archive, NAMES, path) if NAMES in archive.namelist() else None
    image_shape = _image_shape(images, path)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.ndim != 1 or len(labels) != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ImageFolderError(f"{path}: y has shape {labels.shape} and dtype {labels.dtype}; expected "
                               f"({images.shape[0]},) integer class indices, one per image")
    if len(labels) and labels.min() < 0:
        raise ImageFolderError(f"{path}: y holds a negative class index ({labels.min()})")
    if names is not None and (names.ndim != 1 or names.dtype.kind != "U"):
        raise ImageFolderError(f"{path}: class_names has shape {names.shape} and dtype {names.dtype}; "
                               "expected a 1-D array of strings")
    return Shard(path, images, image_shape, labels.astype(np.int64),
                 None if names is None else tuple(str(n) for n in names))


def read_rows(filesystem: pafs.FileSystem, paths: Sequence[str], image_shape: tuple[int, int, int] | None = None,
              image_size: tuple[int, int] | None = None, color_mode: str = "rgb",
              places: Mapping[str, ArrayPlace] | None = None) -> np.ndarray:
    """The images at `paths` ("<shard>#<row>"), in that order, as uint8 (N, H, W, C). Every image
    must have `image_shape` (default: the first shard's). With `places` (the listing's), a stored
    shard's rows are read without reading its zip directory again."""
    wanted: dict[str, list[tuple[int, int]]] = defaultdict(list)  # shard -> [(position, row)]
    for position, path in enumerate(paths):
        shard, row = split_row(path)
        wanted[shard].append((position, row))
    images: np.ndarray | None = None
    for shard, asked in wanted.items():
        rows = _shard_rows(filesystem, shard, np.array([row for _, row in asked]), (places or {}).get(shard))
        shape = image_shape or rows.shape[1:]
        _check_image_settings(shard, rows.shape[1:], image_size, color_mode)
        if rows.shape[1:] != shape:
            raise ImageFolderError(f"{shard}: images of {rows.shape[1:]} among images of {shape}; every shard's "
                                   "images must have one shape")
        if images is None:
            images = np.empty((len(paths), *shape), np.uint8)
        images[[position for position, _ in asked]] = rows
    return images if images is not None else np.zeros((0, *(image_shape or (1, 1, 1))), np.uint8)


def split_row(path: str) -> tuple[str, int]:
    shard, _, row = path.rpartition(ROW_MARK)
    return shard, int(row)


def array_place(handle: Any, archive: zipfile.ZipFile, member: str, path: str) -> ArrayPlace:
    """The shape, dtype and (for a stored member) file offset of an array in an open .npz."""
    info = archive.getinfo(member)
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ImageFolderError(f"{path}: {member} is in .npy format {version}, which is not read here")
        header = stream.tell()
    if fortran or dtype.hasobject:
        raise ImageFolderError(f"{path}: {member[:-4]} is {'an object array' if dtype.hasobject else 'in Fortran order'}; "
                               "save plain C-ordered arrays with numpy.savez")
    if info.compress_type != zipfile.ZIP_STORED:
        return ArrayPlace(shape, dtype, None, handle.size())
    handle.seek(info.header_offset)
    _, name_length, extra_length = ZIP_LOCAL_HEADER.unpack(handle.read(ZIP_LOCAL_HEADER.size))
    offset = info.header_offset + ZIP_LOCAL_HEADER.size + name_length + extra_length + header
    return ArrayPlace(shape, dtype, offset, handle.size())


def _shard_rows(filesystem: pafs.FileSystem, path: str, rows: np.ndarray, place: ArrayPlace | None) -> np.ndarray:
    """Rows of one shard's images, in the order asked: runs of nearby rows read straight from the
    file when the array is stored (at `place` if the listing gave it), else the array read whole."""
    if place is None or place.offset is None:
        with _opened(filesystem, path) as (handle, archive):
            place = array_place(handle, archive, IMAGES, path)
            if place.offset is None:
                _check_rows(path, place, rows)
                return _read_array(archive, IMAGES, path).reshape(-1, *_image_shape(place, path))[rows]
    _check_rows(path, place, rows)
    image_shape = _image_shape(place, path)
    row_bytes = int(np.prod(image_shape))
    order = np.argsort(rows, kind="stable")
    in_order = rows[order]
    out = np.empty((len(rows), *image_shape), np.uint8)
    try:
        with filesystem.open_input_file(path) as handle:
            if handle.size() != place.file_size:
                raise ImageFolderError(f"{path}: {handle.size()} bytes, {place.file_size} when it was listed: the "
                                       "shard changed since")
            for start, stop in _runs(in_order):
                chunk = handle.read_at((stop - start) * row_bytes, place.offset + start * row_bytes)
                low, high = np.searchsorted(in_order, [start, stop])
                picked = order[low:high]
                out[picked] = np.frombuffer(chunk, np.uint8).reshape(stop - start, *image_shape)[rows[picked] - start]
    except OSError as error:
        raise ImageFolderError(f"{path}: cannot be read ({first_line(error)})") from None
    return out


def _check_rows(path: str, place: ArrayPlace, rows: np.ndarray) -> None:
    if len(rows) and (rows.min() < 0 or rows.max() >= place.shape[0]):
        raise ImageFolderError(f"{path}: has {place.shape[0]} rows, row {rows.max()} was asked for: "
                               "the shard changed since it was listed")


def _runs(sorted_rows: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) ranges covering the sorted rows, merging rows that are close (a gap of a few
    rows is cheaper to read than another request)."""
    runs: list[tuple[int, int]] = []
    for row in sorted_rows.tolist():
        if runs and row < runs[-1][1] + 16:
            runs[-1] = (runs[-1][0], max(runs[-1][1], row + 1))
        else:
            runs.append((row, row + 1))
    return runs


@contextmanager
def _opened(filesystem: pafs.FileSystem, path: str) -> Iterator[tuple[Any, zipfile.ZipFile]]:
    """An .npz on a pyarrow filesystem, open as (file, zip archive); one line if it cannot be read."""
    try:
        handle = filesystem.open_input_file(path)
    except OSError as error:
        raise ImageFolderError(f"{path}: cannot be read ({first_line(error)})") from None
    with handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise ImageFolderError(f"{path}: not a readable .npz file ({type(error).__name__}: "
                                   f"{first_line(error)})") from None
        try:
            yield handle, archive
        except (zipfile.BadZipFile, EOFError, zlib.error) as error:  # a member that does not read back
            raise ImageFolderError(f"{path}: a corrupt .npz file ({type(error).__name__}: {first_line(error)})") from None


def _read_array(archive: zipfile.ZipFile, member: str, path: str) -> np.ndarray:
    try:
        with archive.open(member) as stream:
            return np.lib.format.read_array(stream, allow_pickle=False)
    except ValueError as error:
        raise ImageFolderError(f"{path}: {member[:-4]} cannot be read without unpickling ({error}); save plain "
                               "numeric or string arrays with numpy.savez") from None


def _image_shape(place: ArrayPlace, path: str) -> tuple[int, int, int]:
    shape = place.shape
    if place.dtype != np.uint8 or len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
        raise ImageFolderError(f"{path}: x has shape {shape} and dtype {place.dtype}; expected uint8 images "
                               "(N, H, W) or (N, H, W, 1 or 3)")
    return (shape[1], shape[2], shape[3] if len(shape) == 4 else 1)


def _check_image_settings(path: str, shape: tuple[int, ...], image_size: tuple[int, int] | None,
                          color_mode: str) -> None:
    if image_size is not None and tuple(image_size) != tuple(shape[:2]):
        raise ImageFolderError(f"{path}: .npz shards hold images of {shape[0]}x{shape[1]} (height x width); "
                               "--image-size resizes image files only")
    if color_mode == "grayscale" and shape[2] != 1:
        raise ImageFolderError(f"{path}: .npz shards hold {shape[2]}-channel images; --color-mode converts "
                               "image files only")


def _check_shapes(shards: list[Shard]) -> None:
    first = shards[0]
    for shard in shards[1:]:
        if shard.image_shape != first.image_shape:
            raise ImageFolderError(f"{shard.path}: images of {shard.image_shape} (height, width, channels), where "
                                   f"{first.path} holds {first.image_shape}; every shard's images must have one shape")


def _class_names(root: str, shards: list[Shard]) -> list[str]:
    named = [shard for shard in shards if shard.class_names is not None]
    for shard in named[1:]:
        if shard.class_names != named[0].class_names:
            raise ImageFolderError(f"{shard.path}: its class_names differ from {named[0].path}'s")
    top = max((int(shard.labels.max()) for shard in shards if len(shard.labels)), default=-1)
    names = list(named[0].class_names) if named else [str(i) for i in range(top + 1)]
    if named and top >= len(names):
        raise ImageFolderError(f"{root}: y holds class {top}, but class_names names {len(names)} classes")
    if len(names) < 2:
        raise ImageFolderError(f"{root}: {len(names)} class(es); a classifier needs at least two")
    return names


def _rows(shard: Shard) -> list[tuple[str, int]]:
    return [(f"{shard.path}{ROW_MARK}{row}", int(label)) for row, label in enumerate(shard.labels)]


def _shard_paths(filesystem: pafs.FileSystem, base: str) -> list[str]:
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(base))
    except OSError:
        return []
    return sorted(e.path for e in entries if e.type == pafs.FileType.File and e.base_name.endswith(EXTENSION)
                  and not e.base_name.startswith("."))


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
