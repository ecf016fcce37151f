"""Each command a person types prints its help; the jobs list every config flag."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cnn.config import TrainConfig
from jobs.cli_common import SIZE_FIELDS
from sweep_checks import REPO, job_env


BIN = Path(sys.executable).parent  # the console scripts pyproject.toml installs beside the interpreter


@pytest.mark.parametrize("command", [[sys.executable, "jobs/sweep.py"], [sys.executable, "jobs/train.py"],
                                     [sys.executable, "-m", "analysis"], [sys.executable, "jobs/predict.py"],
                                     [str(BIN / "cnn-sweep")], [str(BIN / "cnn-train")], [str(BIN / "cnn-report")],
                                     [str(BIN / "cnn-predict")]],
                         ids=lambda command: " ".join(Path(c).name for c in command))
def test_help_prints_and_exits_zero(command, data_dir, tmp_path):
    # The console scripts run from another folder: they must not need the checkout as the working directory.
    cwd = REPO if command[0] == sys.executable else tmp_path
    shown = subprocess.run([*command, "--help"], cwd=cwd, env=job_env(data_dir),
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.startswith("usage:")
    if any(part in " ".join(command) for part in ("jobs/sweep", "jobs/train", "cnn-sweep", "cnn-train")):
        text = " ".join(shown.stdout.split())  # argparse wraps lines
        for field in dataclasses.fields(TrainConfig):
            flag = "--image-size" if field.name in SIZE_FIELDS else f"--{field.name.replace('_', '-')}"
            assert flag in text
        assert "1% of it" in text, "a literal percent sign in a help text survives argparse"
