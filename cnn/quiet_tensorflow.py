"""Importing TensorFlow without its start-up lines, for a console a person can read.

TF_CPP_MIN_LOG_LEVEL silences TensorFlow's C++ logging once abseil's logging is set up, but
TensorFlow 2.21 writes a few INFO lines before that, straight to file descriptor 2, whatever the
setting: abseil's "WARNING: All log messages before absl::InitializeLog() is called are written to
STDERR", then "I0000 ... oneDNN custom operations are on ..." and "I0000 ... Could not find cuda
drivers ...", twice (two of TensorFlow's libraries log them). An open abseil bug
(abseil/abseil-cpp#1718 and #1957: "messages with severity < threshold should always be ignored
even if not initialized"). Every training worker and the sweep's driver import TensorFlow, so a
sweep printed 6 of these lines per trial.

With QUIET_SETTING=1 in the environment (the jobs set it unless --verbose, and hand it to every
Ray process), `import_tensorflow()` imports TensorFlow with file descriptor 2 going to a temporary
file, then writes back everything it caught except those INFO lines: a warning or an error
written meanwhile, by TensorFlow or by another thread, still reaches stderr (later, not lost).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from types import ModuleType

QUIET_SETTING = "CNN_QUIET_CONSOLE"  # "1": the job runs without --verbose
# abseil's INFO lines ("I" + MMDD, time, thread, file:line]) and its notice that they go to stderr.
_START_UP_LINE = re.compile(r"^(I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] |"
                            r"WARNING: All log messages before absl::InitializeLog\(\) is called)")


def import_tensorflow() -> ModuleType:
    """`import tensorflow`, without its start-up INFO lines when QUIET_SETTING is "1". Should the
    process die during the import (a fatal error in TensorFlow's libraries), what it wrote stays in
    cnn-tensorflow-import-*.log in the temp folder."""
    if "tensorflow" in sys.modules or os.environ.get(QUIET_SETTING) != "1":
        import tensorflow

        return tensorflow
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable stderr to stand in for: import as is
        import tensorflow

        return tensorflow
    with tempfile.NamedTemporaryFile(prefix="cnn-tensorflow-import-", suffix=".log", delete=False) as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = drop_start_up_lines(caught.read().decode(errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
    os.unlink(caught.name)  # replayed: only a process that died in the import leaves its file behind
    return tensorflow


def drop_start_up_lines(text: str) -> str:
    """`text` without TensorFlow's pre-initialisation INFO lines (see the module's docstring)."""
    return "".join(line for line in text.splitlines(keepends=True) if not _START_UP_LINE.match(line))
