"""Each command a person types prints its help; the jobs list every config flag."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from cnn.config import TrainConfig
from sweep_checks import REPO, job_env


@pytest.mark.parametrize("command", [["jobs/sweep.py"], ["jobs/train.py"], ["-m", "analysis"]])
def test_help_prints_and_exits_zero(command, data_dir):
    shown = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, env=job_env(data_dir),
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.startswith("usage:")
    if command[0].startswith("jobs/"):
        text = " ".join(shown.stdout.split())  # argparse wraps lines
        for field in dataclasses.fields(TrainConfig):
            assert f"--{field.name.replace('_', '-')}" in text
        assert "1% of it" in text, "a literal percent sign in a help text survives argparse"
