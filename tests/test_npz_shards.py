"""A folder of .npz shards read as a dataset, and its rows as the streaming loader reads them (no Ray)."""

from __future__ import annotations

import numpy as np
import pyarrow.fs as pafs
import pytest

from cnn.config import TrainConfig
from cnn.data import load_dataset, load_for
from cnn.image_folder import ImageFolderError, list_image_files, quick_check, read_images, training_and_validation
from cnn.npz_shards import check_streamable, read_rows
from cnn_ray.streaming import DecodeFiles
from image_folders import write_class_folders, write_shards

NAMES = np.array(["ant", "bee", "cat"])


def numbered_images(n: int, shape: tuple[int, ...] = (6, 5)) -> np.ndarray:
    """Images whose first pixels spell their row number, so each can be found again."""
    images = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
    images[:, 0, 0, ...] = (np.arange(n) // 256).reshape(-1, *[1] * (len(shape) - 2))
    images[:, 0, 1, ...] = (np.arange(n) % 256).reshape(-1, *[1] * (len(shape) - 2))
    return images


def number_of(image: np.ndarray) -> int:
    return int(image[0, 0, ...].flat[0]) * 256 + int(image[0, 1, ...].flat[0])


@pytest.fixture()
def shards(tmp_path):
    images, labels = numbered_images(90), np.arange(90) % 3
    write_shards(tmp_path / "s", images, labels, 4, class_names=NAMES)
    write_shards(tmp_path / "s", numbered_images(12), np.arange(12) % 3, 1, prefix="test", class_names=NAMES)
    return tmp_path / "s", images, labels


def test_a_shard_folder_is_a_dataset_of_its_rows(shards):
    folder, images, labels = shards
    data = load_dataset(str(folder), validation_fraction=0.2)
    assert data.class_names == list(NAMES) and data.input_shape == (6, 5, 1) and data.x_train.dtype == np.uint8
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (72, 18, 12)
    assert "102 images in 5 .npz shards" in data.source
    # Every training and validation image is one of the shards' rows, once, under its own label.
    pool = np.concatenate([data.x_train, data.x_val])[..., 0]
    numbers = [number_of(image) for image in pool]
    assert sorted(numbers) == list(range(90))
    assert all(np.array_equal(image, images[n]) for image, n in zip(pool, numbers))
    pool_labels = np.concatenate([data.y_train, data.y_val]).argmax(axis=1)
    assert [int(label) for label in pool_labels] == [int(labels[n]) for n in numbers]
    assert numbers[:10] != sorted(numbers[:10]), "rows are taken in the fixed mixed order, as files are"


def test_limit_takes_rows_from_every_shard_and_no_test_shards_hold_out_a_share(tmp_path):
    images, labels = numbered_images(80), np.arange(80) % 2
    write_shards(tmp_path / "s", images, labels, 4)
    data = load_dataset(str(tmp_path / "s"), limit=20, validation_fraction=0.0, test_fraction=0.25)
    assert data.class_names == ["0", "1"] and len(data.x_test) == 20 and len(data.x_train) == 20
    shard_of = {number_of(image[..., 0]) // 20 for image in data.x_train}
    assert shard_of == {0, 1, 2, 3}
    assert not {number_of(i[..., 0]) for i in data.x_train} & {number_of(i[..., 0]) for i in data.x_test}


@pytest.mark.parametrize("compressed", [False, True])
def test_rows_are_read_in_the_order_asked_across_shards(tmp_path, compressed):
    """Stored shards are read by byte ranges (runs of nearby rows; with the listing's places or
    without), compressed ones whole: the same pixels, rows asked twice included."""
    images = numbered_images(300, (4, 4, 3))
    paths = write_shards(tmp_path / "s", images, np.arange(300) % 2, 3, compressed=compressed)
    order = np.concatenate([np.random.default_rng(1).permutation(300)[:150], [7, 7, 299]])
    asked = [f"{paths[i // 100]}#{i % 100}" for i in order]
    places = list_image_files(str(tmp_path / "s"), 0.2).shard_places
    assert all((place.offset is None) == compressed for place in places.values())
    for given in (None, places):
        rows = read_rows(pafs.LocalFileSystem(), asked, places=given)
        assert rows.shape == (153, 4, 4, 3) and np.array_equal(rows, images[order])


def test_compressed_shards_are_read_whole_but_do_not_stream(tmp_path):
    write_shards(tmp_path / "stored", numbered_images(20), np.arange(20) % 2, 2)
    write_shards(tmp_path / "zipped", numbered_images(20), np.arange(20) % 2, 2, compressed=True)
    check_streamable(list_image_files(str(tmp_path / "stored"), 0.2))
    zipped = list_image_files(str(tmp_path / "zipped"), 0.2)
    with pytest.raises(ImageFolderError, match=r"train-00000.npz: a compressed shard .*2 of 2.* --data-loader memory"):
        check_streamable(zipped)
    assert len(load_dataset(str(tmp_path / "zipped"), validation_fraction=0.0).x_train) == 16


def test_a_shard_changed_since_its_listing_is_named(tmp_path):
    paths = write_shards(tmp_path / "s", numbered_images(40), np.arange(40) % 2, 2)
    places = list_image_files(str(tmp_path / "s"), 0.2).shard_places
    np.savez(paths[1], x=numbered_images(5), y=np.arange(5) % 2)
    with pytest.raises(ImageFolderError, match=r"train-00001.npz: \d+ bytes, \d+ when it was listed"):
        read_rows(pafs.LocalFileSystem(), [f"{paths[1]}#15"], places=places)


def test_the_quick_check_reads_one_shard_and_leaves_the_classes_to_the_listing(tmp_path):
    """A first shard of one class passes the check before the job starts (shards sorted by class)."""
    write_shards(tmp_path / "s", numbered_images(20), np.repeat([0, 1], 10), 2)
    quick_check(str(tmp_path / "s"))
    assert list_image_files(str(tmp_path / "s"), 0.2).class_names == ["0", "1"]


def test_an_npz_beside_class_subfolders_leaves_an_image_folder_as_it_was(tmp_path):
    folder = write_class_folders(tmp_path / "f", per_class=4)
    np.savez(folder / "train-stats.npz", x=numbered_images(3), y=np.arange(3))
    quick_check(str(folder))
    files = list_image_files(str(folder), 0.25)
    assert files.shard_places is None and "12 image files in 3 class folders" in files.describe()


def test_the_stream_decodes_the_in_memory_loaders_rows(shards):
    folder, _, _ = shards
    files = list_image_files(str(folder), 0.2)
    train, _ = training_and_validation(files.train, None, 0.25)
    block = {"path": np.array([path for path, _ in train]), "label": np.array([label for _, label in train])}
    decoded = DecodeFiles(files.filesystem, None, "rgb", (6, 5, 1), shard_places=files.shard_places)(block)
    images, labels = read_images(files, train, None, "rgb")
    assert np.array_equal(decoded["image"], images) and np.array_equal(decoded["label"], labels)
    with pytest.raises(ImageFolderError, match=r"train-0000\d.npz: images of \(6, 5, 1\) among images of \(6, 6, 1\)"):
        DecodeFiles(files.filesystem, None, "rgb", (6, 6, 1), shard_places=files.shard_places)(block)


def test_the_image_settings_are_refused_where_they_would_change_the_rows(shards):
    folder, _, _ = shards
    with pytest.raises(ImageFolderError, match=r"--image-size resizes image files only"):
        load_for(TrainConfig(dataset=str(folder), image_height=8, image_width=8))
    with pytest.raises(ImageFolderError, match=r"--color-mode converts image files only"):
        load_dataset(str(write_shards(folder.parent / "rgb", numbered_images(20, (4, 4, 3)), np.arange(20) % 2,
                                      1)[0].parent), color_mode="grayscale")
    assert load_for(TrainConfig(dataset=str(folder), image_height=6, image_width=5)).input_shape == (6, 5, 1)


def _folder_with(tmp_path, **arrays):
    folder = tmp_path / "bad"
    folder.mkdir()
    np.savez(folder / "train-00000.npz", **arrays)
    return folder


BAD_SHARDS = [
    ("no y", {"x": np.zeros((4, 3, 3), np.uint8)}, r"train-00000.npz: missing array\(s\) y; a shard holds x"),
    ("float pixels", {"x": np.zeros((4, 3, 3), np.float32), "y": np.arange(4) % 2},
     r"x has shape \(4, 3, 3\) and dtype float32; expected uint8 images"),
    ("labels of another length", {"x": np.zeros((4, 3, 3), np.uint8), "y": np.arange(3) % 2},
     r"y has shape \(3,\) and dtype int64; expected \(4,\) integer class indices"),
    ("one class", {"x": np.zeros((4, 3, 3), np.uint8), "y": np.zeros(4, np.int64)}, r"1 class\(es\); a classifier"),
    ("a label beyond the names", {"x": np.zeros((4, 3, 3), np.uint8), "y": np.arange(4), "class_names": NAMES},
     r"y holds class 3, but class_names names 3 classes"),
    ("an object array", {"x": np.zeros((4, 3, 3), np.uint8), "y": np.array([0, 1, 0, 1], dtype=object)},
     r"y cannot be read without unpickling"),
]


@pytest.mark.parametrize("case, arrays, message", BAD_SHARDS, ids=[case[0] for case in BAD_SHARDS])
def test_a_bad_shard_gets_one_line(tmp_path, case, arrays, message):
    folder = _folder_with(tmp_path, **arrays)
    with pytest.raises(ImageFolderError, match=message) as raised:
        list_image_files(str(folder), 0.25)
    assert "\n" not in str(raised.value)


def test_shards_that_disagree_or_are_misnamed_get_one_line(tmp_path):
    folder = _folder_with(tmp_path, x=np.zeros((4, 3, 3), np.uint8), y=np.arange(4) % 2)
    np.savez(folder / "train-00001.npz", x=np.zeros((4, 3, 4), np.uint8), y=np.arange(4) % 2)
    with pytest.raises(ImageFolderError, match=r"train-00001.npz: images of \(3, 4, 1\) .* every shard's images"):
        list_image_files(str(folder), 0.25)
    (folder / "train-00001.npz").unlink()
    np.savez(folder / "extra.npz", x=np.zeros((4, 3, 3), np.uint8), y=np.arange(4) % 2)
    with pytest.raises(ImageFolderError, match=r"extra.npz: a shard's name starts with train or test"):
        quick_check(str(folder))
    (folder / "extra.npz").write_bytes(b"not a zip")
    (folder / "extra.npz").rename(folder / "train-00002.npz")
    with pytest.raises(ImageFolderError, match=r"train-00002.npz: not a readable .npz file"):
        list_image_files(str(folder), 0.25)
