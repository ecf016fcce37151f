"""Bad input to the sweep job: one line naming the problem, exit status 2, nothing started or written.

Each case calls the job's `main` in this process (what the command line runs, minus the
interpreter start), so a failure names its case; one case goes through `python jobs/sweep.py`
for the real path, with an environment that cannot download.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from jobs import sweep
from sweep_checks import run_sweep

TAKEN = "taken"  # an experiment name that already exists under the storage path


@pytest.fixture()
def inputs(tmp_path, data_dir, monkeypatch) -> dict[str, Path]:
    """Broken datasets and storage folders, and the environment a person's shell would have."""
    truncated, empty, bad_labels = tmp_path / "truncated", tmp_path / "empty", tmp_path / "bad_labels.npz"
    truncated.mkdir(), empty.mkdir()
    (truncated / "mnist.npz").write_bytes((data_dir / "mnist.npz").read_bytes()[:200_000])
    np.savez(bad_labels, x_train=np.zeros((20, 8, 8), np.uint8), y_train=np.full(20, -3),
             x_test=np.zeros((4, 8, 8), np.uint8), y_test=np.zeros(4, np.int64))
    (tmp_path / "other_results" / TAKEN).mkdir(parents=True)
    bad_sweep = tmp_path / "bad_sweep.yaml"
    bad_sweep.write_text("train: {dataset: mnist, limit: 400, epochs: 2}\nspace:\n  dropout_conv: {uniform: [0, 1.5]}\n")
    random_bytes = tmp_path / "random_bytes.npz"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    shards = tmp_path / "shards"
    shards.mkdir()
    np.savez(shards / "part-0.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4) % 2)
    tpe_grid = tmp_path / "tpe_grid.yaml"
    tpe_grid.write_text("search: {algorithm: tpe}\nspace:\n  l2_conv: {grid: [0, 1e-3]}\n")
    monkeypatch.setenv("CNN_DATA_DIR", str(data_dir))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(sys, "argv", ["jobs/sweep.py"])  # argparse names the program after it
    return {"store": tmp_path / "results", "truncated": truncated, "empty": empty, "bad_labels": bad_labels,
            "other_results": tmp_path / "other_results", "bad_sweep": bad_sweep, "tpe_grid": tpe_grid,
            "random_bytes": random_bytes, "shards": shards}


# (case id, the flags after --preset smoke --storage-path <store>, environment changes, the words the line must hold)
CASES = [
    ("unknown preset", ["--preset", "nope"], {}, "invalid choice: 'nope'"),
    ("unknown flag", ["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    ("dropout out of range", ["--dropout-conv", "1.5"], {}, "dropout_conv=1.5 is out of range"),
    ("negative grid L2", ["--grid-l2", "-1"], {}, "l2_conv=-1.0 is out of range"),
    ("no replicates at all", ["--seeds", "0"], {}, "seeds=0 is out of range; allowed: a whole number >= 1"),
    ("a confirm stage of one seed", ["--confirm-top", "1", "--confirm-seeds", "1"], {},
     "confirm_seeds=1 is out of range; allowed: a whole number >= 2 (one replicate gives no interval)"),
    ("grid values without a grid", ["--search", "random", "--grid-l2", "0"], {}, "add --search grid"),
    ("a flag on a knob the sweep's augmentation strength sets", ["--rotation-degrees", "10"], {},
     "--rotation-degrees: the sweep file varies augment_strength, which sets it"),
    ("a sweep file with a bound outside the knob's range", ["--config", "{bad_sweep}"], {},
     "bad_sweep.yaml: space.dropout_conv: uniform [0, 1.5]: dropout_conv=1.5 is out of range; allowed: [0.0, 1.0)"),
    ("a grid searched by TPE", ["--config", "{tpe_grid}"], {},
     "tpe_grid.yaml: search.algorithm: tpe cannot search grid domains (l2_conv)"),
    ("a sweep file that is not there", ["--config", "{store}.yaml"], {}, "results.yaml: cannot be read"),
    ("workers of one trial sharing a GPU", ["--gpus-per-worker", "0.5"], {}, "two workers of one trial could share"),
    ("a non-whole GPU count above 1", ["--gpus-per-worker", "1.5"], {}, "above 1 it must be a whole number"),
    ("a GPU count that is no number", ["--gpus-per-worker", "many"], {}, "gpus_per_worker='many' is out of range"),
    ("a batch that does not split over the replicas", ["--gpus-per-worker", "2", "--batch-size", "6"], {},
     "divisible by the 4 replicas"),
    ("deterministic with XLA", ["--deterministic", "--jit-compile"], {}, "deterministic cannot be combined"),
    ("unknown dataset", ["--dataset", "cifar100"], {}, "unknown dataset 'cifar100'"),
    ("truncated dataset file", ["--data-dir", "{truncated}"], {}, "mnist.npz"),
    ("a file of random bytes named .npz", ["--dataset", "{random_bytes}"], {},
     "random_bytes.npz: not an .npz file (an .npz is a zip archive of arrays"),
    ("a name that is a path", ["--name", "runs/a"], {}, "argument --name: 'runs/a' is not a folder name"),
    ("a name that climbs out of the storage", ["--name", ".."], {}, "argument --name: '..' is not a folder name"),
    ("labels outside the classes", ["--dataset", "{bad_labels}"], {}, "labels outside"),
    ("a folder without class subfolders", ["--dataset", "{empty}"], {}, "empty: no class subfolders"),
    ("a misnamed .npz shard", ["--dataset", "{shards}"], {}, "part-0.npz: a shard's name starts with train or test"),
    ("an image size of one number", ["--image-size", "32"], {}, "--image-size: expected 2 arguments"),
    ("an image size of zero", ["--image-size", "0", "32"], {}, "image_height=0 is out of range"),
    ("streaming an .npz", ["--data-loader", "stream"], {}, "--data-loader stream reads folders; mnist is read whole"),
    ("resume without a name", ["--resume"], {}, "--resume needs --name"),
    ("resume of nothing", ["--name", "ghost", "--resume"], {}, "nothing to resume at"),
    ("an experiment that exists", ["--storage-path", "{other_results}", "--name", TAKEN], {},
     "already exists; pass --resume"),
    ("an unreachable cluster", [], {"RAY_ADDRESS": "127.0.0.1:1"}, "could not reach a Ray cluster"),
    ("storage that cannot be written", ["--storage-path", "/dev/null/results"], {}, "cannot write results"),
]


@pytest.mark.parametrize("flags, env, words", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_stops_the_sweep_before_anything_starts(flags, env, words, inputs, monkeypatch, capsys):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    preset = [] if "--config" in flags else ["--preset", "smoke"]
    argv = [*preset, "--storage-path", str(inputs["store"]), *(flag.format(**inputs) for flag in flags)]
    with pytest.raises(SystemExit) as stopped:
        sweep.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line != "(run with --help for every flag)"]
    assert stopped.value.code == 2, err[-800:]
    assert lines and lines[-1].startswith("error:") and words in lines[-1], err[-800:]
    assert "Traceback" not in err
    if "ray" in sys.modules:
        assert not sys.modules["ray"].is_initialized(), "no Ray may be started for bad input"
    assert not inputs["store"].exists() or not list(inputs["store"].iterdir()), "nothing may be left behind"


@pytest.mark.parametrize("flags", [["--preset", "nope"], ["--no-such-flag"], ["--s", "3"], ["--epochs", "many"]],
                         ids=["invalid choice", "unknown flag", "ambiguous flag", "not a number"])
def test_a_mistyped_flag_gets_its_error_and_a_pointer_to_help_not_the_usage(flags, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["jobs/sweep.py"])
    with pytest.raises(SystemExit) as stopped:
        sweep.main(flags)
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1] == "(run with --help for every flag)", lines


def test_the_real_command_line_fails_the_same_way_offline(data_dir, tmp_path):
    """`python jobs/sweep.py` as a person runs it, for a dataset it would have to download, with no
    way out to the internet: the same one line, exit 2, no Ray started, nothing written."""
    store, empty = tmp_path / "results", tmp_path / "empty"
    empty.mkdir()
    offline = {"KERAS_HOME": str(empty), "HOME": str(empty), "https_proxy": "http://127.0.0.1:1",
               "HTTPS_PROXY": "http://127.0.0.1:1", "CNN_DATA_DIR": ""}
    done = run_sweep(["--preset", "smoke", "--storage-path", str(store), "--dataset", "fashion_mnist",
                      "--data-dir", str(empty)], data_dir, timeout=120, env=offline)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1].startswith("error:") and "could not download" in lines[-1], \
        done.stderr[-800:]
    assert "Traceback" not in done.stderr and "Started a local Ray instance" not in done.stderr + done.stdout
    assert not store.exists() or not list(store.iterdir())
