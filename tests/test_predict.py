"""The final model's export (cnn/final_model.py) and cnn-predict (jobs/predict.py), on a small untrained
model: what a person runs on the folder a sweep exports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cnn.config import TrainConfig
from cnn.data import load_dataset, unit_float
from cnn.final_model import (KERAS_FILE, MODEL_CARD, SAVED_MODEL_DIR, export_model, final_epochs, model_card,
                             training_plus_validation)
from cnn.model import build_model
from sweep_checks import REPO

CONFIG = TrainConfig(dataset="mnist", limit=300, test_limit=50, epochs=1, batch_size=32, dense_units=32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir):
    data = training_plus_validation(load_dataset("mnist", data_dir=str(data_dir), limit=300, test_limit=50))
    model = build_model(CONFIG, data.input_shape, data.num_classes, steps_per_epoch=10)
    chosen = {"config_id": "abc12345", "stage": "confirm", "n": 3, "val_accuracy_mean": 0.9,
              "test_accuracy_mean": 0.89, "test_accuracy_ci_low": 0.88, "test_accuracy_ci_high": float("nan")}
    card = model_card(config=CONFIG.to_dict(), data=data.summary(), folded_validation=30, dataset_sha256="feed", chosen=chosen,
                      ranking="No winner: configuration abc12345 ranks first but is tied with configuration def67890; "
                              "their validation intervals overlap, so seed-to-seed noise could reorder them.",
                      final_test_accuracy=0.5, epochs_run=1, experiment="/x", git_commit="test", packages={})
    folder = export_model(model, tmp_path_factory.mktemp("final") / "final_model", card)
    return folder, model, data


def predict(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "jobs" / "predict.py"), *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=300)


def test_the_export_is_whole_and_both_formats_give_the_same_probabilities(exported):
    import tensorflow as tf

    folder, model, data = exported
    assert {p.name for p in folder.iterdir()} == {KERAS_FILE, SAVED_MODEL_DIR, MODEL_CARD}
    assert not folder.with_name(folder.name + ".partial").exists()
    card = json.loads((folder / MODEL_CARD).read_text())
    assert card["input"]["shape"] == [28, 28, 1] and card["input"]["class_names"] == [str(d) for d in range(10)]
    assert card["dataset"]["trained_on"] == "300 images: 270 training + 30 validation"  # validation folded in
    assert card["chosen_configuration"]["test_accuracy_ci95"] == [0.88, None]
    assert card["chosen_configuration"]["ranking"].startswith("No winner: configuration abc12345 ranks first")
    served = tf.saved_model.load(str(folder / SAVED_MODEL_DIR))
    images = unit_float(data.x_test[:8])
    expected = model.predict(images, verbose=0)
    assert np.allclose(served.serve(tf.constant(images)).numpy(), expected, atol=1e-5)


def test_cnn_predict_classifies_image_files_and_an_npz(exported, tmp_path):
    folder, model, data = exported
    pngs = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        image = Image.fromarray(data.x_test[i, :, :, 0], mode="L")
        (image.convert("P") if i == 2 else image).save(path)  # a palette PNG reads as grayscale too
        pngs.append(str(path))
    npz = tmp_path / "batch.npz"
    np.savez(npz, x_test=data.x_test[:5, :, :, 0])  # uint8 (N, H, W): channel added
    out = tmp_path / "predictions.csv"
    done = predict(str(folder), *pngs, str(npz), "--top-k", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(out, dtype={"class_1": str, "class_2": str})
    assert list(table.columns) == ["file", "index", "class_1", "probability_1", "class_2", "probability_2"]
    assert list(table["index"]) == [0, 0, 0, 0, 1, 2, 3, 4] and table["file"].iloc[-1] == str(npz)
    assert (table["probability_1"] >= table["probability_2"]).all()
    expected = model.predict(unit_float(data.x_test[:5]), verbose=0)
    assert list(table["class_1"].iloc[3:]) == [str(c) for c in expected.argmax(axis=1)]
    assert np.allclose(table["probability_1"].iloc[3:], expected.max(axis=1), atol=1e-3)


@pytest.mark.parametrize("case, says", [
    ("wrong size", "10x12 pixels; the model takes 28x28 (width x height)"),
    ("wrong channels", "a RGB image with 3 channel(s); the model takes grayscale images (1 channel(s))"),
    ("not an image", "not an image that can be read"),
    ("not a model", "not a model folder (it needs model_card.json and model.keras)"),
    ("npz of the wrong shape", "x has shape (2, 32, 32, 3); the model takes (N, 28, 28, 1)"),
    ("truncated npz", "not an .npz (zip) of arrays that can be read"),
    ("corrupt npz", "not an .npz (zip) of arrays that can be read"),
    ("missing file", "no such file"),
])
def test_bad_input_gets_one_line_and_exit_status_2(exported, tmp_path, case, says):
    folder, _, _ = exported
    target, model = tmp_path / "input.png", str(folder)
    if case == "wrong size":
        Image.new("L", (10, 12)).save(target)
    elif case == "wrong channels":
        Image.new("RGB", (28, 28)).save(target)
    elif case == "not an image":
        target.write_bytes(np.random.default_rng(0).bytes(500))
    elif case == "not a model":
        Image.new("L", (28, 28)).save(target)
        model = str(tmp_path)
    elif case == "npz of the wrong shape":
        target = tmp_path / "input.npz"
        np.savez(target, x=np.zeros((2, 32, 32, 3), dtype=np.uint8))
    elif case in ("truncated npz", "corrupt npz"):
        target = tmp_path / "input.npz"
        np.savez_compressed(target, x=np.random.default_rng(0).integers(0, 255, (4, 28, 28), dtype=np.uint8))
        whole = bytearray(target.read_bytes())
        if case == "truncated npz":
            del whole[len(whole) // 2:]
        else:  # a flipped byte in the middle of the compressed array
            whole[len(whole) // 2] ^= 0xFF
        target.write_bytes(bytes(whole))
    done = predict(model, str(target), "--out", str(tmp_path / "p.csv"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert not (tmp_path / "p.csv").exists()


def test_the_final_epochs_are_the_median_of_the_epochs_validation_chose():
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "best_epoch": [3, 5, 9, 1]})
    assert final_epochs(trials, ["a", "b", "c"]) == 5
    assert final_epochs(trials, ["a", "d"]) == 2
    with pytest.raises(ValueError):
        final_epochs(trials, ["zzz"])
