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
import textwrap
from pathlib import Path
from typing import Any, NoReturn

from cnn.config import TrainConfig, field_help
from cnn.data import DATA_DIR_SETTING, Dataset, absolute_dataset, load_for, names_a_folder
from cnn.image_folder import quick_check
from cnn.quiet_tensorflow import QUIET_SETTING, import_tensorflow

RAY_ADDRESS_SETTING = "RAY_ADDRESS"
TF_LOG_SETTING = "TF_CPP_MIN_LOG_LEVEL"  # TensorFlow's C++ logging: 2 hides INFO and WARNING, 3 ERROR too
# Without --verbose, for every process of the job (a person's own values kept): Ray Data's progress
# bars off and its log at errors (a streamed dataset printed bars, an execution plan and a
# "finished" line per trial-epoch from Ray Data's coordinators, and with the bars off a warning
# that says so, once per trial); Python's deprecation warnings hidden (Ray's own, such as Ray
# Train's use of a deprecated Ray Data option: any warning option stops Ray from turning its
# RayDeprecationWarning on).
QUIET_RAY_SETTINGS = {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", "RAY_DATA_LOG_LEVEL": "ERROR",
                      "PYTHONWARNINGS": "ignore::DeprecationWarning"}
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
    cluster once Ray is up (data_loader stream or auto: cnn_ray/job_data.py). Only folders (of images
    or of .npz shards) stream: data_loader=stream with another dataset ends the job with one line."""
    folder = names_a_folder(config.dataset)
    if config.data_loader == "stream" and not folder:
        fail(f"--data-loader stream reads folders; {config.dataset} is read whole (give a folder of class "
             "subfolders or of .npz shards, or --data-loader memory)")
    return not folder or config.data_loader == "memory"


def check_folder(config: TrainConfig) -> None:
    """An image folder read on the cluster: what can be checked without listing its files, checked
    now, before Ray starts (the rest, when the cluster lists it: still before anything is written)."""
    try:
        quick_check(config.dataset)
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


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="print everything: Tune's trial table, Ray Train's log lines, TensorFlow's "
                             "start-up lines and its C++ warnings and errors, from every process. Without it, the "
                             "workers' output that is still written goes to Ray's log folder "
                             "(session_latest/logs in Ray's temp folder on each node) and the Ray dashboard, and TensorFlow's "
                             "C++ log lines are not written at all (TF_CPP_MIN_LOG_LEVEL=3, unless you set it)")


def quiet_console(verbose: bool) -> dict[str, str]:
    """Set this process up for the console --verbose asks for, and return the same settings for
    every process Ray starts for the job: TensorFlow's C++ log lines from errors up with --verbose
    (2) and none without it (3; an error also ends in a Python exception, which is reported), unless
    the person set TF_CPP_MIN_LOG_LEVEL; TensorFlow imported without its start-up lines unless
    --verbose (cnn.quiet_tensorflow); without --verbose, QUIET_RAY_SETTINGS. Imports TensorFlow
    here, before anything else does."""
    settings = {TF_LOG_SETTING: os.environ.get(TF_LOG_SETTING) or ("2" if verbose else "3"),
                QUIET_SETTING: "0" if verbose else "1"}
    if not verbose:
        settings.update({key: os.environ.get(key) or value for key, value in QUIET_RAY_SETTINGS.items()})
    os.environ.update(settings)
    import_tensorflow()
    return settings


def connect_ray(console: dict[str, str]) -> str:
    """Join the cluster that RAY_ADDRESS names, or start a fresh local Ray (never a stray one).
    `console`: quiet_console's settings, for every process of the job."""
    import ray

    from cnn.devices import MEMORY_GROWTH_SETTING
    from cnn_ray.local_ray import init_local_ray

    address = os.environ.get(RAY_ADDRESS_SETTING) or "local"
    # Memory growth for every process Ray starts, beside the explicit call each worker makes
    # before its first TensorFlow op (cnn/devices.py): trials that share a GPU then both fit.
    env_vars = {**console, MEMORY_GROWTH_SETTING: "true"}
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
    """`== title`, then one `key: value` line per entry (a dict inline, as key=value pairs)."""
    lines = [f"{key}: {_inline(value)}" for key, value in values.items()]
    print("\n".join([f"== {title}", *lines]), flush=True)


def print_settings(title: str, values: dict[str, Any], width: int = 120) -> None:
    """`== title`, then every key=value pair, wrapped at `width` columns (a TrainConfig in 5 lines, not 40)."""
    pairs = [f"{key}={_inline(value)}" for key, value in values.items()]
    print("\n".join([f"== {title}", *textwrap.wrap(", ".join(pairs), width, break_on_hyphens=False)]), flush=True)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}={_inline(item)}" for key, item in value.items())
    return value if isinstance(value, str) else json.dumps(value, default=str)
