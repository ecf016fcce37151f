import shutil
import socket

import numpy as np
import pytest

from cnn.data import DataError, absolute_dataset, compact_pixels, load_dataset, read_npz, unit_float


def test_mnist_is_compact_one_hot_and_split(data_dir):
    data = load_dataset("mnist", data_dir=str(data_dir), validation_fraction=0.1)
    assert data.x_train.shape == (54000, 28, 28, 1) and data.x_val.shape == (6000, 28, 28, 1)
    assert data.x_test.shape == (10000, 28, 28, 1)
    for x in (data.x_train, data.x_val, data.x_test):
        assert x.dtype == np.uint8 and x.min() == 0 and x.max() == 255  # one byte a pixel
        scaled = unit_float(x[:100])
        assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 1.0
    assert data.y_train.shape == (54000, 10) and data.y_train.dtype == np.float32
    assert np.all(data.y_train.sum(axis=1) == 1.0)
    assert "checksum verified" in data.source


def test_cifar10_limit_and_deterministic_validation_split(data_dir):
    first = load_dataset("cifar10", data_dir=str(data_dir), limit=1000, test_limit=200)
    again = load_dataset("cifar10", data_dir=str(data_dir), limit=1000, test_limit=200)
    assert first.x_train.shape == (900, 32, 32, 3) and first.x_val.shape == (100, 32, 32, 3)
    assert first.x_test.shape == (200, 32, 32, 3)
    assert np.array_equal(first.x_val, again.x_val)
    assert first.class_names[0] == "airplane"


def test_data_dir_comes_from_the_setting(data_dir, monkeypatch):
    monkeypatch.setenv("CNN_DATA_DIR", str(data_dir))
    assert load_dataset("mnist", limit=100).x_train.shape[0] == 90


def test_explicit_npz_path_with_unknown_checksum(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8), y_train=np.arange(50) % 3,
             x_test=rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), y_test=np.arange(10) % 3)
    data = load_dataset(str(path), validation_fraction=0.2)
    assert data.num_classes == 3 and data.x_train.shape == (40, 8, 8, 3)
    assert "checksum unknown" in data.source


def test_truncated_file_is_one_line_naming_it(data_dir, tmp_path):
    broken = tmp_path / "mnist.npz"
    broken.write_bytes((data_dir / "mnist.npz").read_bytes()[:100_000])
    with pytest.raises(DataError) as error:
        load_dataset(str(broken))
    assert str(broken) in str(error.value) and "\n" not in str(error.value)
    assert "corrupt or truncated .npz file" in str(error.value)  # not "not an .npz": it starts as one


def test_a_file_that_is_not_a_zip_is_not_called_pickled(tmp_path):
    for name, content in (("random.npz", np.random.default_rng(0).bytes(4096)), ("empty.npz", b""),
                          ("one_array.npz", None)):
        path = tmp_path / name
        if content is None:
            np.save(tmp_path / "one_array.npy", np.zeros(3))
            (tmp_path / "one_array.npy").rename(path)
        else:
            path.write_bytes(content)
        with pytest.raises(DataError, match=r"not an .npz file \(an .npz is a zip archive of arrays"):
            read_npz(path)


def test_corrupt_bytes_inside_the_archive(data_dir, tmp_path):
    corrupt = tmp_path / "mnist.npz"
    shutil.copy(data_dir / "mnist.npz", corrupt)
    raw = bytearray(corrupt.read_bytes())
    raw[5_000_000:5_000_100] = b"\x00" * 100
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="mnist.npz"):
        load_dataset(str(corrupt))


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    objects = np.array([{"a": 1}] * 4, dtype=object)
    np.savez(path, x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    with pytest.raises(DataError, match="pickle"):
        read_npz(path)


@pytest.mark.parametrize("change, words", [
    ({"x_train": np.zeros((10, 8), np.uint8)}, "x_train has shape"),
    ({"y_train": np.full(10, -1)}, "labels outside"),
    ({"y_train": np.zeros(9, np.int64)}, "y_train has shape"),
    ({"y_test": np.zeros(4, np.float32)}, "expected integer"),
    ({"x_test": np.zeros((4, 9, 9), np.uint8)}, "differ in shape"),
    ({"x_train": np.full((10, 8, 8), 300, np.int16)}, "integer pixels outside"),
])
def test_wrong_shapes_dtypes_and_labels(tmp_path, change, words):
    arrays = {"x_train": np.zeros((10, 8, 8), np.uint8), "y_train": np.zeros(10, np.int64),
              "x_test": np.zeros((4, 8, 8), np.uint8), "y_test": np.zeros(4, np.int64)} | change
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=words):
        load_dataset(str(path))


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match="unknown dataset 'cifar100'.*mnist, fashion_mnist, cifar10"):
        load_dataset("cifar100")


def test_offline_download_is_one_line_with_advice(tmp_path, monkeypatch):
    """fashion_mnist is not in the shared folder, so Keras tries to download it: no network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr("os.path.expanduser", lambda p: str(tmp_path) if p == "~" else p)

    def refuse(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataError) as error:
        load_dataset("fashion_mnist", data_dir=str(tmp_path))
    message = str(error.value)
    assert "CNN_DATA_DIR" in message and "fashion_mnist.npz" in message and "\n" not in message


@pytest.mark.parametrize("pixels, kind", [
    (np.array([[0, 17, 255]], np.uint8), np.uint8),
    (np.array([[0, 17, 255]], np.int64), np.uint8),
    (np.array([[0, 17, 255]], np.float64) / 255.0, np.uint8),  # whole steps of 1/255: no loss as bytes
    (np.array([[0.0, 17.0, 255.0]], np.float32), np.uint8),  # whole numbers in [0, 255]
    (np.array([[0.0, 0.3333, 1.0]], np.float32), np.float32),  # not whole steps: kept as floats
])
def test_pixels_become_bytes_only_when_nothing_is_lost(pixels, kind):
    compact = compact_pixels(pixels[np.newaxis])
    assert compact.dtype == kind and compact.shape == (1, 1, 3, 1)
    expected = pixels / (255.0 if pixels.max() > 1 else 1.0)
    np.testing.assert_allclose(unit_float(compact)[0, ..., 0], expected, atol=1e-6)


def test_a_folder_named_like_a_dataset_does_not_hide_it(data_dir, tmp_path, monkeypatch):
    (tmp_path / "mnist" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert load_dataset("mnist", data_dir=str(data_dir), limit=100).name == "mnist"
    assert absolute_dataset("mnist") == "mnist" and absolute_dataset("s3://b/x") == "s3://b/x"
    assert absolute_dataset("./mnist/") == str(tmp_path / "mnist")  # a local folder: absolute for the cluster
