"""A job's dataset once Ray is up: the driver's arrays put in the object store, or an image folder
opened on the cluster by a FolderReader (cnn_ray/streaming.py), streamed or not.

Which one is decided before Ray starts (jobs.cli_common.driver_reads): the driver reads every
dataset itself, as it always has, except an image folder whose data_loader is stream or auto; that
one is listed and read by the reader, so that the driver's memory does not grow with the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cnn.config import TrainConfig
from cnn.data import Dataset, DataSummary
from cnn_ray.streaming import FolderReader
from cnn_ray.trial import TrialData


class FolderOpenError(ValueError):
    """The image folder could not be opened on the cluster: one line a person can act on."""


@dataclass
class JobData:
    summary: DataSummary
    trial: TrialData
    reader: Any = None  # the FolderReader: alive while the stream's Ray Dataset is in use
    local: Dataset | None = None  # the arrays, when the driver read them

    def arrays(self) -> Dataset:
        """The whole dataset as arrays (the final model folds validation into training); fetched from
        the object store if the driver did not read it. Not for a stream."""
        if self.trial.stream is not None:
            raise ValueError("the training images stream from their folder: there are no arrays to fetch")
        return self.local if self.local is not None else ray.get(self.trial.ref)


def open_data(config: TrainConfig, local: Dataset | None) -> JobData:
    """The dataset on the cluster: `local` (what the driver read) put in the object store, or the
    image folder `config` names opened by a FolderReader; FolderOpenError for a folder it refuses."""
    if local is not None:
        return JobData(local.summary(), TrialData(ray.put(local)), local=local)
    # On the driver's node, so that a folder the driver can read is read (a local path on a one-machine
    # cluster); a stream's read tasks go anywhere, so a multi-node cluster needs the folder on every node.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    reader = FolderReader.options(scheduling_strategy=here).remote(config)
    try:
        summary, streamed = ray.get(reader.plan.remote())
        stream = ray.get(reader.training_stream.remote()) if streamed else None
    except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as error:
        ray.kill(reader)
        cause = getattr(error, "cause", None)
        message = str(cause if isinstance(cause, ValueError) else error).strip()
        raise FolderOpenError(message.splitlines()[-1] if message else type(error).__name__) from None
    ref = reader.arrays.remote()
    if streamed:
        return JobData(summary, TrialData(ref, stream), reader=reader)
    ray.wait([ref], fetch_local=False)  # in the object store, owned by this driver: the reader can go
    ray.kill(reader)
    return JobData(summary, TrialData(ref))
