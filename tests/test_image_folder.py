"""A person's own images: folders of real PNG and JPEG files read as a dataset (no Ray, no training)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from cnn.config import TrainConfig
from cnn.data import load_dataset, load_for
from cnn.image_folder import ImageFolderError, list_image_files, read_images, training_and_validation
from image_folders import CLASSES, write_class_folders


@pytest.fixture()
def folder(tmp_path):
    return write_class_folders(tmp_path / "shapes", per_class=10)


def test_class_subfolders_become_classes_and_a_fixed_share_the_test_set(folder):
    data = load_dataset(str(folder), validation_fraction=0.2, test_fraction=0.2)
    assert data.name == "shapes" and data.class_names == sorted(CLASSES)
    assert len(data.x_test) == 6 and len(data.x_train) + len(data.x_val) == 24 and len(data.x_val) == 5
    assert data.x_train.dtype == np.uint8 and data.input_shape == (16, 16, 3)
    assert "30 image files in 3 class folders" in data.source
    again = load_dataset(str(folder), validation_fraction=0.2, test_fraction=0.2)
    assert np.array_equal(data.x_test, again.x_test) and np.array_equal(data.y_train, again.y_train)
    assert data.y_train.sum(axis=0).min() >= 3, "the fixed order mixes the classes"


def test_a_file_decodes_to_the_pixels_it_holds(tmp_path):
    """A PNG is lossless: the dataset holds exactly its pixels, under its folder's class."""
    folder = write_class_folders(tmp_path / "two", per_class=2, classes=("a", "b"))
    pixels = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    Image.fromarray(pixels).save(folder / "b" / "exact.png")
    data = load_dataset(str(folder), validation_fraction=0.0, test_fraction=0.4)
    images = np.concatenate([data.x_train, data.x_test])
    labels = np.concatenate([data.y_train, data.y_test]).argmax(axis=1)
    found = [i for i, image in enumerate(images) if np.array_equal(image, pixels)]
    assert len(found) == 1 and data.class_names[labels[found[0]]] == "b"


def test_train_and_test_folders_keep_their_split(tmp_path):
    write_class_folders(tmp_path / "split" / "train", per_class=6)
    write_class_folders(tmp_path / "split" / "test", per_class=3, seed=1)
    data = load_dataset(str(tmp_path / "split"), validation_fraction=0.0)
    assert data.class_names == sorted(CLASSES) and len(data.x_train) == 18 and len(data.x_test) == 9


def test_limits_decode_only_the_files_they_keep(folder):
    broken = folder / "cross" / "zz_broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageFolderError, match="zz_broken.png: not a JPEG or PNG image"):
        load_dataset(str(folder), test_fraction=0.2)
    files = list_image_files(str(folder), test_fraction=0.2)
    train, test = [path for path, _ in files.train], [path for path, _ in files.test]
    in_train = str(broken) in train
    position = (train if in_train else test).index(str(broken))
    assert position > 0  # the fixed order is the same every time
    limits = {"limit": position} if in_train else {"test_limit": position}
    data = load_dataset(str(folder), validation_fraction=0.0, test_fraction=0.2, **limits)
    assert len(data.x_train if in_train else data.x_test) == position


def test_grayscale_and_resizing(tmp_path):
    folder = write_class_folders(tmp_path / "mixed", per_class=4, size=(16, 16))
    Image.fromarray(np.zeros((20, 12), np.uint8)).save(folder / "circle" / "odd.png")  # another size, one channel
    config = TrainConfig(dataset=str(folder), image_height=8, image_width=10, color_mode="grayscale",
                         validation_fraction=0.0)
    data = load_for(config)
    assert data.input_shape == (8, 10, 1) and data.x_train.dtype == np.uint8
    rgb = load_for(config.replace(color_mode="rgb"))
    assert rgb.input_shape == (8, 10, 3)


def test_images_of_different_sizes_need_an_image_size(tmp_path):
    folder = write_class_folders(tmp_path / "sizes", per_class=3, size=(16, 16))
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(folder / "cross" / "big.png")
    with pytest.raises(ImageFolderError, match=r"images differ in size \(.*is 16x16, .*big.png is 12x20.*--image-size"):
        load_dataset(str(folder))


def test_a_uri_is_read_through_pyarrow(folder):
    """s3:// and gs:// go through the same pyarrow filesystem calls as this file:// URI."""
    data = load_dataset(f"file://{folder}", validation_fraction=0.0)
    assert data.class_names == sorted(CLASSES) and len(data.x_train) + len(data.x_test) == 30


def _no_class_folders(root):
    (root / "loose").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "loose.png")
    shutil.rmtree(root / "loose")


def _an_empty_class(root):
    write_class_folders(root, per_class=2)
    (root / "empty").mkdir()


def _a_text_file(root):
    write_class_folders(root, per_class=2)
    (root / "cross" / "notes.txt").write_text("not an image")


def _a_gif(root):
    write_class_folders(root, per_class=2)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "circle" / "anim.gif")


def _a_gif_named_png(root):
    write_class_folders(root, per_class=2)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "circle" / "anim.png", format="GIF")


def _one_class(root):
    write_class_folders(root, per_class=3, classes=("only",))


def _test_classes_differ(root):
    write_class_folders(root / "train", per_class=2)
    write_class_folders(root / "test", per_class=2, classes=("circle", "cross", "squares"))


@pytest.mark.parametrize("make, words", [
    (_no_class_folders, "no class subfolders; an image folder holds one subfolder of images per class"),
    (_an_empty_class, "/empty: class 'empty' has no images"),
    (_a_text_file, "cross/notes.txt: not a JPEG or PNG image (by its name"),
    (_a_gif, "circle/anim.gif: not a JPEG or PNG image (by its name"),
    (_a_gif_named_png, "circle/anim.png: a GIF image; only JPEG and PNG are read"),
    (_one_class, "only one class (only); a classifier needs at least two class subfolders"),
    (_test_classes_differ, "/test: its classes differ from train/'s (missing: stripes; not in train/: squares)"),
], ids=["no class subfolders", "an empty class", "a text file", "a GIF", "a GIF named .png", "one class",
        "test classes differ"])
def test_bad_folders_get_one_line_naming_what_is_wrong(tmp_path, make, words):
    root = tmp_path / "bad"
    make(root)
    with pytest.raises(ImageFolderError) as raised:
        load_dataset(str(root), validation_fraction=0.0)
    message = str(raised.value)
    assert words in message and "\n" not in message


def test_hidden_files_and_underscore_class_folders_are_skipped(folder):
    (folder / "circle" / ".DS_Store").write_bytes(b"\0\1")
    (folder / "_thumbnails").mkdir()
    (folder / "_thumbnails" / "x.png").write_bytes(b"\0")
    files = list_image_files(str(folder), 0.2)
    assert len(files.train) == 24 and files.class_names == sorted(CLASSES)


def test_both_loaders_take_one_split_of_the_listed_files(tmp_path):
    """The listing keeps the image files in class folders (not hidden ones, not stray files);
    training_and_validation splits them, and the in-memory loader holds its files in its order (the
    streaming loader decodes the same list: tests/test_streaming.py)."""
    for layout in ("classes", "split"):
        root = tmp_path / layout
        if layout == "classes":
            write_class_folders(root, per_class=9)
            base = root
        else:
            write_class_folders(root / "train", per_class=9)
            write_class_folders(root / "test", per_class=2, seed=1)
            base = root / "train"
        (base / "circle" / ".hidden.png").write_bytes(b"\0")
        (base / "readme.txt").write_text("at the top, in no class")
        files = list_image_files(str(root), 0.2)
        images = sorted(str(path) for path in base.rglob("*")
                        if path.suffix in (".png", ".jpg") and not path.name.startswith("."))
        assert sorted(path for path, _ in files.train + (files.test if layout == "classes" else [])) == images
        for limit in (None, 20):
            kept, validation = training_and_validation(files.train, limit, 0.25)
            assert len(validation) == round(len(files.train[:limit]) * 0.25)
            assert len(kept) + len(validation) == len(files.train[:limit])
        data = load_dataset(str(root), validation_fraction=0.25, test_fraction=0.2)
        kept, validation = training_and_validation(files.train, None, 0.25)
        for images, chosen in ((data.x_train, kept), (data.x_val, validation)):
            expected, _ = read_images(files, chosen, None, "rgb")
            assert np.array_equal(images, expected), "the in-memory loader holds the same files in the same order"


def test_a_multi_picture_jpeg_from_a_phone_reads_as_its_first_picture(folder):
    first, second = (np.full((16, 16, 3), value, np.uint8) for value in (40, 200))
    Image.fromarray(first).save(folder / "circle" / "phone.jpg", format="MPO", save_all=True,
                                append_images=[Image.fromarray(second)])
    files = list_image_files(str(folder), 0.2)
    path = next(p for p, _ in files.train + files.test if p.endswith("phone.jpg"))
    image, _ = read_images(files, [(path, 0)], None, "rgb")
    assert abs(float(image.mean()) - 40) < 3
