"""When each trial held its resources: a Tune callback that stores every trial's start and end.

Tune records when a trial started but not when it ended. "ends" is when Tune ended the trial: for a
trial that finished, after its Train run tore down its worker group; for one the scheduler stopped,
when Tune decided to stop it, before that tear-down. bench/sweep_overhead.py needs both to say how much
of a sweep went to start-up, tear-down and CPUs left idle. Stored in the
experiment folder as `trial_times.csv` (trial_id, event, at), rewritten at each start and end.

Not `.json`: when a sweep is resumed, Tune copies every top-level `.json` and `.pkl` of the
experiment folder into its staging folder and uploads that folder back periodically
(ray/tune/execution/experiment_state.py, sync_down_experiment_state), which put the first run's
copy back over this file and lost the resumed run's trials.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from typing import Any

from ray.tune import Callback

from cnn.sweep_results import read_text, write_text

TRIAL_TIMES_FILE = "trial_times.csv"
COLUMNS = ("trial_id", "event", "at")  # event: "start" or "end"; at: Unix seconds


class TrialClock(Callback):
    def __init__(self, experiment_uri: str) -> None:
        self._experiment_uri = experiment_uri
        self._uri = f"{experiment_uri}/{TRIAL_TIMES_FILE}"
        self._rows: list[tuple[str, str, float]] = []
        self._warned = False

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        """At the start of a sweep, and again when it is resumed (this object comes back pickled as
        it was when the sweep began): what the file holds is what has happened since."""
        self._rows = _read_rows(self._experiment_uri)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._add(trial.trial_id, "start")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._add(trial.trial_id, "end")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._add(trial.trial_id, "end")

    def _add(self, trial_id: str, event: str) -> None:
        self._rows.append((trial_id, event, time.time()))
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        writer.writerows(self._rows)
        try:
            write_text(self._uri, text.getvalue())
        except OSError as error:  # a measurement only: storage trouble is StorageWatch's to report
            if not self._warned:
                logging.getLogger(__name__).warning("could not write %s: %s", self._uri, error)
                self._warned = True


def read_trial_times(experiment_uri: str) -> dict[str, dict[str, list[float]]]:
    """trial_id -> {"starts": [Unix seconds, ...], "ends": [...]} (several after a trial was retried)."""
    times: dict[str, dict[str, list[float]]] = {}
    for trial_id, event, at in _read_rows(experiment_uri):
        times.setdefault(trial_id, {}).setdefault(f"{event}s", []).append(at)
    return times


def _read_rows(experiment_uri: str) -> list[tuple[str, str, float]]:
    try:
        rows = list(csv.reader(io.StringIO(read_text(f"{experiment_uri}/{TRIAL_TIMES_FILE}"))))
    except OSError:
        return []
    return [(trial_id, event, float(at)) for trial_id, event, at in rows[1:]]
