"""Stop a sweep as soon as its storage stops taking writes, rather than let every trial fail on it.

Without this, each remaining trial would train an epoch, fail to store its checkpoint, and be
retried by Ray Train and then by Tune: hours of GPU time spent on results that cannot be kept.
The watch probes the experiment folder from the driver (a tiny file written and deleted) at
most every `interval` seconds and tells Tune to stop every trial once a probe fails.
"""

from __future__ import annotations

import os
import time
import uuid

import pyarrow.fs as pafs
from ray import tune

PROBE_INTERVAL_SECONDS = 15.0


def probe_write(uri: str) -> str | None:
    """None if a file can be written into (and deleted from) `uri`, else why not, in one line."""
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        fs.create_dir(path, recursive=True)
        probe = f"{path.rstrip('/')}/.write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with fs.open_output_stream(probe) as stream:
            stream.write(b"ok")
        fs.delete_file(probe)
    except (OSError, ValueError) as error:
        return str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return None


class StorageWatch(tune.Stopper):
    """A Tune stopper that never stops a single trial, and stops them all when storage fails."""

    def __init__(self, experiment_uri: str, interval: float = PROBE_INTERVAL_SECONDS):
        self.experiment_uri = experiment_uri
        self.interval = interval
        self.problem: str | None = None
        self._last_probe = 0.0

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.problem is None and time.monotonic() - self._last_probe >= self.interval:
            self._last_probe = time.monotonic()
            self.problem = probe_write(self.experiment_uri)
        return self.problem is not None

    def __getstate__(self) -> dict:
        # Tune pickles its stopper into the experiment: a resumed sweep must start watching afresh.
        return {"experiment_uri": self.experiment_uri, "interval": self.interval}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["experiment_uri"], state["interval"])
