"""Command-line wiring shared by the jobs: config flags, data loading, connecting to Ray.

Errors a person can fix (bad flag values, missing data, no cluster) end the job with one
line on stderr and exit status 2, before anything starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, NoReturn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from cnn.config import TrainConfig, field_help  # noqa: E402
from cnn.data import DATA_DIR_SETTING, Dataset, absolute_dataset, load_for, names_a_folder  # noqa: E402
from cnn.image_folder import class_folders  # noqa: E402

RAY_ADDRESS_SETTING = "RAY_ADDRESS"
SIZE_FIELDS = ("image_height", "image_width")  # set together by --image-size HEIGHT WIDTH


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def add_config_flags(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None,
                     title: str = "training config (cnn.config.TrainConfig)") -> None:
    """One flag per TrainConfig field (--l2-conv, --no-augment, ...), defaults shown in --help."""
    defaults = defaults or TrainConfig()
    group = parser.add_argument_group(title)
    group.add_argument("--image-size", dest="image_size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                       help="image folders: resize every image to HEIGHT x WIDTH pixels (needed when their sizes "
                            f"differ; default: {defaults.image_height} {defaults.image_width}, the images' own size)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in SIZE_FIELDS:
            continue
        flag, default = "--" + f.name.replace("_", "-"), getattr(defaults, f.name)
        # argparse %-formats help texts: a literal "%" ("1% of it") must be doubled.
        text = f"{field_help(f.name)} (default: {default})".replace("%", "%%")
        if isinstance(default, bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type).split(" ")[0]]
            group.add_argument(flag, dest=f.name, type=kind, default=None, metavar=kind.__name__.upper(), help=text)


def config_from_args(args: argparse.Namespace, defaults: TrainConfig | None = None) -> TrainConfig:
    """Defaults overridden by the flags that were given; a bad value exits with one line."""
    defaults = defaults or TrainConfig()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if getattr(args, "image_size", None) is not None:
        given.update(zip(SIZE_FIELDS, args.image_size))
    if "dataset" in given:  # a local path as an absolute one: the cluster's processes start elsewhere
        given["dataset"] = absolute_dataset(given["dataset"])
    try:
        return defaults.replace(**given)
    except ValueError as error:
        fail(str(error))


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help=f"folder holding <dataset>.npz (default: the {DATA_DIR_SETTING} setting, "
                             "then Keras' download)")


def driver_reads(config: TrainConfig) -> bool:
    """Whether the driver reads the dataset before Ray starts, or an image folder is read on the
    cluster once Ray is up (data_loader stream or auto: cnn_ray/job_data.py). Only image folders
    stream: data_loader=stream with another dataset ends the job with one line."""
    folder = names_a_folder(config.dataset)
    if config.data_loader == "stream" and not folder:
        fail(f"--data-loader stream reads image folders; {config.dataset} is read whole (give a folder of "
             "class subfolders, or --data-loader memory)")
    return not folder or config.data_loader == "memory"


def check_folder(config: TrainConfig) -> None:
    """An image folder read on the cluster: what can be checked without listing its files, checked
    now, before Ray starts (the rest, when the cluster lists it: still before anything is written)."""
    try:
        class_folders(config.dataset)
    except ValueError as error:
        fail(str(error))


def open_job_data(config: TrainConfig, local: Dataset | None) -> Any:
    """The job's dataset on the cluster (cnn_ray.job_data.JobData); a refused folder ends the job with one line."""
    from cnn_ray.job_data import FolderOpenError, open_data

    try:
        return open_data(config, local)
    except FolderOpenError as error:
        fail(str(error))


def load_data(config: TrainConfig, data_dir: str | None) -> Dataset:
    try:
        return load_for(config, data_dir)
    except ValueError as error:
        fail(str(error))


def storage_path(path: str) -> str:
    """Absolute local folder (Ray requires it) or a URI such as s3://bucket/prefix, unchanged."""
    return path if "://" in path else str(Path(path).expanduser().resolve())


def check_ray_address_reachable(timeout: float = 5.0) -> None:
    """Fail fast when RAY_ADDRESS names host:port that nothing answers on.

    Without this, ray.init keeps retrying an unreachable GCS for minutes before it gives up.
    """
    address = os.environ.get(RAY_ADDRESS_SETTING) or ""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "local", "auto", ray:// and http:// addresses: let Ray resolve them
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        fail(f"could not reach a Ray cluster at {RAY_ADDRESS_SETTING}={address} ({error}); "
             f"unset {RAY_ADDRESS_SETTING} to start a local Ray, or check the address")


def check_storage_writable(uri: str) -> None:
    """Fail before anything starts if results could not be written there (creates the folder)."""
    from cnn_ray.storage_watch import probe_write

    problem = probe_write(uri)
    if problem:
        fail(f"cannot write results to storage path {uri} ({problem}); "
             "choose a folder or bucket you can write to with --storage-path")


def connect_ray() -> str:
    """Join the cluster that RAY_ADDRESS names, or start a fresh local Ray (never a stray one)."""
    import ray

    from cnn.devices import MEMORY_GROWTH_SETTING
    from cnn_ray.local_ray import init_local_ray

    address = os.environ.get(RAY_ADDRESS_SETTING) or "local"
    # Memory growth for every process Ray starts, beside the explicit call each worker makes
    # before its first TensorFlow op (cnn/devices.py): trials that share a GPU then both fit.
    env_vars = {"TF_CPP_MIN_LOG_LEVEL": os.environ["TF_CPP_MIN_LOG_LEVEL"], MEMORY_GROWTH_SETTING: "true"}
    try:
        if address == "local":
            init_local_ray(env_vars, logging_level="WARNING")  # workers get RAY_ADDRESS: see cnn_ray/local_ray.py
        else:
            ray.init(address=address, logging_level="WARNING", runtime_env={"env_vars": env_vars})
    except (ConnectionError, RuntimeError, ValueError) as error:
        fail(f"could not connect to Ray at {address!r} ({str(error).splitlines()[0][:200]}); "
             f"unset {RAY_ADDRESS_SETTING} to start a local Ray, or check the address")
    return address


def print_block(title: str, values: dict[str, Any]) -> None:
    print(f"== {title}\n{json.dumps(values, indent=2, default=str)}", flush=True)
