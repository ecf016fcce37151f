"""Classify images with a model a sweep exported: `cnn-predict MODEL_DIR IMAGES...`.

    cnn-predict results/my_sweep/final_model digit.png cat.jpg          # image files
    cnn-predict results/my_sweep/final_model test_images.npz --top-k 5  # an .npz of images
    python jobs/predict.py MODEL_DIR IMAGES... --out predictions.csv

MODEL_DIR is a sweep's final_model/ folder (`final: true`): model.keras and model_card.json,
which gives the input shape, the scaling and the class names. Images must have the model's
height, width and channels (PNG or JPEG; grayscale or RGB); an .npz holds them as one array
(N, H, W[, C]), uint8 0-255 or floats in [0, 1], under the key x, x_test or images, or as its
only array. Writes a CSV with one row per image: the file, the image's index in it, and the
top-k classes with their probabilities. Bad input gets one line and exit status 2, before the
model is loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (python jobs/predict.py): this checkout first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from jobs.arguments import ArgumentParser  # noqa: E402
from jobs.cli_common import fail, quiet_console  # noqa: E402

from cnn.final_model import KERAS_FILE, MODEL_CARD  # noqa: E402

NPZ_KEYS = ("x", "x_test", "images")
CHANNELS_OF_MODE = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4, "I;16": 1, "I": 1, "F": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a sweep's final_model/ folder")
    parser.add_argument("images", metavar="IMAGES", nargs="+", help="image files (PNG, JPEG) or .npz files")
    parser.add_argument("--top-k", type=int, default=3, help="classes per image, most probable first (default: 3)")
    parser.add_argument("--out", default="predictions.csv", help="the CSV to write (default: predictions.csv)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per prediction batch (default: 256)")
    return parser.parse_args(argv)


def read_card(model_dir: Path) -> dict[str, Any]:
    if not model_dir.is_dir():
        fail(f"{model_dir}: no such folder; give the final_model/ folder a sweep exported (final: true)")
    if not (model_dir / MODEL_CARD).is_file() or not (model_dir / KERAS_FILE).is_file():
        fail(f"{model_dir}: not a model folder (it needs {MODEL_CARD} and {KERAS_FILE}); give the final_model/ "
             "folder a sweep exported (final: true)")
    try:
        card = json.loads((model_dir / MODEL_CARD).read_text())
        shape, names = card["input"]["shape"], card["input"]["class_names"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        fail(f"{model_dir / MODEL_CARD}: unreadable model card ({type(error).__name__}: {error})")
    if len(shape) != 3 or not names:
        fail(f"{model_dir / MODEL_CARD}: the card's input shape {shape} or class names {names} are not usable")
    return card


def read_inputs(paths: list[str], shape: tuple[int, int, int]) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Every image as float32 in [0, 1] with the model's shape, and (file, index) of each."""
    arrays, origins = [], []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            fail(f"{path}: no such file")
        images = read_npz(path, shape) if path.suffix.lower() == ".npz" else read_image(path, shape)[None]
        arrays.append(images)
        origins += [(str(path), index) for index in range(len(images))]
    return np.concatenate(arrays), origins


def read_image(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    height, width, channels = shape
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened
    except (UnidentifiedImageError, OSError, ValueError) as error:
        fail(f"{path}: not an image that can be read ({type(error).__name__}: {error})")
    if image.mode in ("P", "1"):  # palette and 1-bit images: whichever of grayscale or RGB the model takes
        image = image.convert("L" if channels == 1 else "RGB")
    have = CHANNELS_OF_MODE.get(image.mode)
    if have != channels:
        wanted = "grayscale" if channels == 1 else "RGB" if channels == 3 else f"{channels}-channel"
        fail(f"{path}: a {image.mode} image with {have if have else 'an unknown number of'} channel(s); "
             f"the model takes {wanted} images ({channels} channel(s))")
    if image.size != (width, height):
        fail(f"{path}: {image.size[0]}x{image.size[1]} pixels; the model takes {width}x{height} (width x height)")
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        fail(f"{path}: {pixels.dtype} pixels; the model takes 8-bit images")
    return (pixels.reshape(height, width, channels) / 255.0).astype(np.float32)


def read_npz(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                fail(f"{path}: holds {', '.join(keys) or 'no arrays'}; name the images x, x_test or images")
            images = archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # a damaged zip raises the last two
        fail(f"{path}: not an .npz (zip) of arrays that can be read ({type(error).__name__}: {error})")
    if images.ndim == 3 and shape[2] == 1:
        images = images[..., None]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape):
        fail(f"{path}: {key} has shape {images.shape}; the model takes (N, {shape[0]}, {shape[1]}, {shape[2]})")
    if images.dtype == np.uint8:
        return (images / 255.0).astype(np.float32)
    if not np.issubdtype(images.dtype, np.floating):
        fail(f"{path}: {key} holds {images.dtype}; give uint8 (0-255) or floats in [0, 1]")
    if len(images) and (np.nanmin(images) < 0 or np.nanmax(images) > 1 or np.isnan(images).any()):
        fail(f"{path}: {key} holds floats outside [0, 1]; scale pixels to [0, 1] or give uint8")
    return images.astype(np.float32)


def top_k_rows(probabilities: np.ndarray, origins: list[tuple[str, int]], class_names: list[str],
               k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    rows = []
    for (file, index), ranked, row in zip(origins, order, probabilities):
        entry: dict[str, Any] = {"file": file, "index": index}
        for place, cls in enumerate(ranked, start=1):
            entry[f"class_{place}"] = class_names[cls]
            entry[f"probability_{place}"] = float(row[cls])
        rows.append(entry)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    model_dir = Path(args.model_dir)
    card = read_card(model_dir)
    class_names = [str(c) for c in card["input"]["class_names"]]
    if not 1 <= args.top_k <= len(class_names):
        fail(f"--top-k {args.top_k}: must be between 1 and the model's {len(class_names)} classes")
    if args.batch_size < 1:
        fail(f"--batch-size {args.batch_size}: must be at least 1")
    quiet_console(verbose=False)  # before the model's loading imports TensorFlow
    images, origins = read_inputs(args.images, tuple(card["input"]["shape"]))

    import pandas as pd

    from cnn.model_io import load_model

    model = load_model(model_dir)  # model_dir/model.keras, as in a checkpoint folder
    probabilities = model.predict(images, batch_size=args.batch_size, verbose=0)
    frame = pd.DataFrame(top_k_rows(probabilities, origins, class_names, args.top_k))
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} predictions (top {args.top_k}) to {args.out}", flush=True)


if __name__ == "__main__":
    main()
