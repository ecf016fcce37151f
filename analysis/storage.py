"""Where an experiment lives: a local folder, or an s3:// / gs:// URI read through pyarrow.fs.

Local folders are read and written in place. For a URI, the few files the report needs are
downloaded into a scratch folder, the report is built there, and its files are uploaded into
`<experiment>/analysis/` (the same layout as for a local folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs

from cnn.sweep_results import filesystem


def is_uri(location: str) -> bool:
    return "://" in location


def normalise(location: str) -> str:
    """A URI without its trailing slash, or an absolute local path (pyarrow needs one)."""
    if is_uri(location):
        return location.rstrip("/")
    return str(Path(location).expanduser().resolve())


def exists(location: str) -> bool:
    try:
        fs, path = filesystem(location)
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except (OSError, ValueError):
        return False


def local_file(location: str, scratch: Path) -> Path:
    """A local path holding the file at `location`: itself if local, else a downloaded copy."""
    if not is_uri(location):
        return Path(location)
    fs, path = filesystem(location)
    # One scratch file per source path, so two checkpoints' model.keras never overwrite each other.
    target = scratch / "downloads" / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(path) as source, open(target, "wb") as sink:
        while block := source.read(1 << 20):
            sink.write(block)
    return target


def upload_folder(folder: Path, uri: str) -> None:
    """Copy every file of a local folder (flat) to `uri/`."""
    fs, base = filesystem(uri)
    fs.create_dir(base, recursive=True)
    for file in sorted(folder.iterdir()):
        if file.is_file():
            with fs.open_output_stream(f"{base}/{file.name}") as sink:
                sink.write(file.read_bytes())


def clear_outputs(folder: Path, patterns: tuple[str, ...]) -> None:
    """Remove a previous report's files, so no stale figure from an older run is left beside the new one."""
    for pattern in patterns:
        for file in folder.glob(pattern):
            if file.is_file():
                os.remove(file)
