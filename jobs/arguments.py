"""The jobs' argument parser: a flag a person mistyped gets one line, not the whole usage."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are `error: <what>` and a pointer to --help (exit status 2):
    argparse's own print 18-25 lines of usage first, which bury the one that matters."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}\n(run with --help for every flag)", file=sys.stderr)
        raise SystemExit(2)


def check_run_name(name: str | None) -> str | None:
    """`name` (a run's or sweep's --name) if it is one folder's name; else an ArgumentTypeError."""
    if name is not None and (name in ("", ".", "..") or "/" in name or "\\" in name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a folder name: it names the run's folder under "
                                         "--storage-path, so it cannot hold '/' or '\\' or be '.' or '..'")
    return name
