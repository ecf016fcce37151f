"""When each trial held its resources: a Tune callback that stores every trial's start and end.

Tune records when a trial started but not when it ended. "ends" is when Tune ended the trial: for a
trial that finished, after its Train run tore down its worker group; for one the scheduler stopped,
when Tune decided to stop it, before that tear-down. bench/sweep_overhead.py needs both to say how much
of a sweep went to start-up, tear-down and CPUs left idle. Stored as `trial_times.json` in the
experiment folder, rewritten at each start and end (a few hundred bytes).

Known gap: after `--resume` the file keeps the first run's trials but records none of the resumed
run's (seen in tests/test_sweep.py; Tune restores this callback from tuner.pkl, and why it then
writes nothing is not understood yet). bench/sweep_overhead.py does not resume.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ray.tune import Callback

from cnn.sweep_results import read_text, write_text

TRIAL_TIMES_FILE = "trial_times.json"


class TrialClock(Callback):
    def __init__(self, experiment_uri: str) -> None:
        self._experiment_uri = experiment_uri
        self._uri = f"{experiment_uri}/{TRIAL_TIMES_FILE}"
        self._times: dict[str, dict[str, Any]] = {}
        self._warned = False

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        """At the start of a sweep, and again when it is resumed (this object comes back pickled as
        it was when the sweep began): what the file holds is what has happened since."""
        self._times = read_trial_times(self._experiment_uri)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._times.setdefault(trial.trial_id, {}).setdefault("starts", []).append(time.time())
        self._write()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial)

    def _ended(self, trial: Any) -> None:
        self._times.setdefault(trial.trial_id, {}).setdefault("ends", []).append(time.time())
        self._write()

    def _write(self) -> None:
        try:
            write_text(self._uri, json.dumps(self._times, indent=1))
        except OSError as error:  # a measurement only: storage trouble is StorageWatch's to report
            if not self._warned:
                logging.getLogger(__name__).warning("could not write %s: %s", self._uri, error)
                self._warned = True


def read_trial_times(experiment_uri: str) -> dict[str, dict[str, Any]]:
    """trial_id -> {"starts": [wall clock, ...], "ends": [...]} (several after a trial was retried)."""
    try:
        return json.loads(read_text(f"{experiment_uri}/{TRIAL_TIMES_FILE}"))
    except (OSError, ValueError):
        return {}
