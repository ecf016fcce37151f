"""The layout the README describes: a Ray-free core (`cnn`), the report on the core only
(`analysis`), everything that talks to Ray in `cnn_ray`."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import textwrap

from sweep_checks import REPO


def modules(package: str) -> list[str]:
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules([str(REPO / package)]) if m.name != "__main__")


def test_the_core_and_the_report_import_where_ray_cannot():
    script = textwrap.dedent(f"""
        import importlib, sys
        sys.modules["ray"] = None  # any `import ray` (or `from ray import ...`) now raises ImportError
        for name in {modules("cnn") + modules("analysis")!r}:
            importlib.import_module(name)
        print("imported", len(sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-3000:]


def test_every_ray_import_lives_in_the_ray_package():
    for package in ("cnn", "analysis"):
        for path in sorted((REPO / package).glob("*.py")):
            text = path.read_text()
            assert "import ray" not in text and "from ray" not in text, f"{path.relative_to(REPO)} imports Ray"
    assert {"worker_loop", "trainer", "tuner", "search_space", "local_ray", "storage_watch", "run_record"} <= \
        {m.rsplit(".", 1)[1] for m in modules("cnn_ray")}
