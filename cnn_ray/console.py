"""What a sweep prints while it runs, unless `--verbose`: a Tune callback in the sweep's driver.

One line per finished trial-epoch (the trial, its swept values, epoch/max, training and validation
accuracy, images/s), a status line at most every STATUS_EVERY seconds (trials done, running and
pending, the best validation accuracy so far and its trial, the time since the stage started and
an estimate of the time left), and one line for each event a person should know of: a trial that
diverged, reached the target, was stopped by ASHA, resumed from its checkpoint, failed or is
retried. Tune's own table and the training workers' per-report lines are off meanwhile
(cnn_ray.tuner, cnn_ray.trainer); everything still goes to Ray's log folder and the dashboard.

Reads Tune's results only (what the workers reported, cnn_ray.worker_loop): the tables and the
report read the checkpoints, never this output.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

from ray.train import UserCallback
from ray.tune import Callback

from cnn.checkpoint_state import STOP_DIVERGED, STOP_TARGET
from cnn.sweep_settings import REPLICATE_KEY

STATUS_EVERY = 60.0  # seconds between status lines, at most one per interval


class ConsoleProgress(Callback):
    """`planned` trials of up to `max_epochs` epochs each; `knobs`: the swept knobs, shown per trial."""

    def __init__(self, planned: int, max_epochs: int, knobs: Sequence[str], scheduler: str,
                 status_every: float = STATUS_EVERY) -> None:
        self._planned, self._max_epochs = planned, max_epochs
        self._knobs, self._scheduler = tuple(knobs), scheduler
        self._status_every = status_every
        self._started = self._last_status = time.time()
        self._epochs_seen = 0          # trial-epochs reported since this process started (the rate)
        self._resumes: dict[str, int] = {}

    def setup(self, **info: Any) -> None:
        """At the start of a stage, and again when it is resumed (this object then comes back as it
        was pickled when the stage began): times count from now."""
        self._started = self._last_status = time.time()
        self._epochs_seen = 0

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self._epochs_seen += 1
        print(f"{self._clock()} trial {trial.trial_id}{self._values(trial.config)} "
              f"{epoch_line(result, self._max_epochs, test=False)}", flush=True)
        resumes = int(result.get("resumes") or 0)
        if resumes > self._resumes.get(trial.trial_id, 0):
            self._resumes[trial.trial_id] = resumes
            print(f"{self._clock()} trial {trial.trial_id}: training had resumed from its checkpoint after epoch "
                  f"{result.get('resumed_after_epoch')} (its workers were restarted, or the sweep was resumed)",
                  flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        epoch = last.get("epoch")
        if isinstance(epoch, int) and epoch < self._max_epochs and not last.get("stop_reason"):
            print(f"{self._clock()} trial {trial.trial_id}: stopped by {self._scheduler.upper()} after epoch "
                  f"{epoch} (val {_percent(last.get('val_accuracy'))}), behind the other trials at its rung", flush=True)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"{self._clock()} warning: trial {trial.trial_id} failed and is started again from its checkpoint "
              f"({_first_line(trial)})", flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"{self._clock()} error: trial {trial.trial_id} failed: {_first_line(trial)} (the whole error: "
              f"{trial.error_file or trial.path})", flush=True)  # the driver's own copy: a local path

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.time()
        if now - self._last_status < self._status_every:
            return
        self._last_status = now
        print(f"{self._clock()} {self.status(trials, now)}", flush=True)

    def status(self, trials: list, now: float) -> str:
        """Trials done / running / pending, the best validation accuracy so far, the time left."""
        ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        running = [t for t in trials if t.status == "RUNNING"]
        pending = max(self._planned - len(ended) - len(running), 0)
        text = f"status: {len(ended)} of {self._planned} trials done, {len(running)} running, {pending} waiting"
        best = max(((t.last_result.get("best_val_accuracy"), t.trial_id) for t in trials
                    if _is_number((t.last_result or {}).get("best_val_accuracy"))), default=None)
        if best:
            text += f"; best validation accuracy so far {_percent(best[0])} (trial {best[1]})"
        return text + f"; {self._time_left(trials, ended, now)}"

    def _time_left(self, trials: list, ended: list, now: float) -> str:
        """From the trial-epochs this process has seen per second: the epochs not yet trained, at
        most (ASHA may stop trials early, so it is an upper bound with ASHA)."""
        if not self._epochs_seen:
            return "time left: not known before the first epoch ends"
        not_created = max(self._planned - len(trials), 0)  # Tune creates some waiting trials early, not all
        left = sum(max(self._max_epochs - int((t.last_result or {}).get("epoch") or 0), 0)
                   for t in trials if t not in ended) + not_created * self._max_epochs
        seconds = left * (now - self._started) / self._epochs_seen
        bound = "at most " if self._scheduler == "asha" else ""
        return f"{bound}about {_duration(seconds)} left"

    def _clock(self) -> str:
        return f"[{_duration(time.time() - self._started):>6}]"

    def _values(self, config: dict[str, Any]) -> str:
        shown = [f"{knob}={_short(config[knob])}" for knob in self._knobs if knob in config]
        if int(config.get(REPLICATE_KEY, 0) or 0):
            shown.append(f"seed +{int(config[REPLICATE_KEY])}")
        return f" ({', '.join(shown)})" if shown else ""


def epoch_line(result: dict[str, Any], max_epochs: int, test: bool) -> str:
    """One reported epoch: `epoch 2/3: train 97.10%, val 98.00%[, test 97.20%], 412 images/s`, and
    why the run stops there, if it does. A sweep's console leaves test accuracy out (trials are
    chosen on validation); a single run's shows it."""
    line = (f"epoch {result.get('epoch', '?')}/{max_epochs}: train {_percent(result.get('train_accuracy'))}, "
            f"val {_percent(result.get('val_accuracy'))}, "
            + (f"test {_percent(result.get('test_accuracy'))}, " if test else "")
            + _rate(result.get("images_per_second")))
    stop = result.get("stop_reason")
    if stop == STOP_DIVERGED:
        line += "; warning: the loss is not finite, training stops (diverged)"
    elif stop == STOP_TARGET:
        line += "; reached the target accuracy, training stops"
    return line


class EpochLines(UserCallback):
    """A Ray Train callback for a single run (jobs/train.py): one epoch_line per report, printed by
    the run's controller (Ray shows it on the driver's console, prefixed with the controller's pid)."""

    def __init__(self, max_epochs: int) -> None:
        self._max_epochs = max_epochs

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        print(epoch_line(metrics[0], self._max_epochs, test=True), flush=True)


def _first_line(trial: Any) -> str:
    """The last line of the trial's error (the exception, after its traceback), from the error file
    Tune wrote in the driver's copy of the trial folder before it called this callback."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if _is_number(value) else "-"


def _rate(value: Any) -> str:
    return f"{value:,.0f} images/s" if _is_number(value) else "- images/s"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
