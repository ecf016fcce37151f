"""`build_report`: a finished sweep's stored results in, `<experiment>/analysis/summary.html` out.

The report reads only the tables, sweep.json and checkpoints (never logs). Its figures (PNG)
and tables (CSV) are written beside summary.html, and the PNGs are also embedded in it, so
the one HTML file opens offline anywhere. A section that cannot be built says why in the
page instead of taking the whole report down.
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from cnn.devices import enable_memory_growth
from cnn.sweep_results import EPOCHS_CSV, STAGE_CONFIRM, TRIALS_CSV, knob_columns, write_text

from analysis import (augmentation, curves, effects, feature_maps, l2_study, leaderboard, page, predictions,
                      storage, study)
from analysis.checkpoints import load_models, load_test_data
from analysis.page import Section
from analysis.evidence import evidence_stage, study_parts
from analysis.results import (Experiment, augmentation_label, best_trial, context_line, load_experiment,
                              search_stage)

OUTPUT_DIR = "analysis"
REPORT_FILE = "summary.html"
OUTPUT_PATTERNS = ("*.png", "*.csv", REPORT_FILE)


def build_report(experiment: str, data_dir: str | None = None, out: str | None = None) -> str:
    """Build the report of the sweep stored at `experiment` (folder or s3:// / gs:// URI); return its path.

    data_dir: folder holding <dataset>.npz for the test images (default: the CNN_DATA_DIR setting).
    out: where the report goes (folder or URI; default `<experiment>/analysis`). A sweep that did
    not finish has its tables rebuilt, and they are written there too.
    """
    enable_memory_growth()  # before any TensorFlow op: this process may share a GPU with trials
    loaded = load_experiment(experiment)
    target = storage.normalise(out) if out else f"{loaded.location}/{OUTPUT_DIR}"
    remote = storage.is_uri(target)
    with tempfile.TemporaryDirectory(prefix="cnn-report-") as scratch_dir:
        scratch = Path(scratch_dir)
        folder = scratch / OUTPUT_DIR if remote else Path(target)
        folder.mkdir(parents=True, exist_ok=True)
        storage.clear_outputs(folder, OUTPUT_PATTERNS)
        html = render(loaded, folder, scratch, data_dir)
        write_text(str(folder / REPORT_FILE), html)
        if loaded.rebuilt:
            write_text(str(folder / TRIALS_CSV), loaded.trials_text)
            write_text(str(folder / EPOCHS_CSV), loaded.epochs_text)
        if remote:
            storage.upload_folder(folder, target)
    return f"{target}/{REPORT_FILE}"


def render(experiment: Experiment, out: Path, scratch: Path, data_dir: str | None) -> str:
    context = context_line(experiment)
    searched = search_stage(experiment)  # trial-by-trial comparisons at the search's epochs
    trials = searched.trials
    best = best_trial(trials)
    confirm_replicated = evidence_stage(experiment.configs) == STAGE_CONFIRM  # its intervals, not the search's
    sections = [
        _safely("study", "1. The study", lambda: study.section(experiment)),
        _safely("leaderboard", "2. Leaderboard", lambda: leaderboard.section(experiment, out)),
        _safely("effects", "3. Hyperparameter effects",
                lambda: effects.section(searched, out, context, confirm_replicated)),
        _safely("curves", "4. Training curves", lambda: curves.section(experiment, out, context)),
    ]
    # Every checkpoint the report needs, each loaded once: the best model and the L2 study's trials.
    needed = ([best["trial_id"]] if best is not None else []) + l2_study.trials_needed(trials)
    models = load_models(experiment, needed, scratch)
    best_model = models.get(best["trial_id"]) if best is not None else None
    data, data_error = (load_test_data(experiment, data_dir) if best_model is not None and best_model.model is not None
                        else (None, "the best model is not available"))
    recorded_test = float(best["best_test_accuracy"]) if best is not None else float("nan")
    sections += [
        _safely("feature-maps", feature_maps.TITLE,
                lambda: feature_maps.section(best_model, data, data_error, out, context)),
        _safely("predictions", predictions.TITLE,
                lambda: predictions.section(best_model, data, data_error, recorded_test, out, context)),
        _safely("l2-study", l2_study.TITLE,
                lambda: l2_study.section(searched.trials, models, out, context,
                                         evidence_on(experiment, l2_study.L2, lambda v: f"L2 = {v:g}"))),
        _safely("augmentation", augmentation.TITLE,
                lambda: augmentation.section(searched, out, context,
                                             evidence_on(experiment, "augment_strength", augmentation_label))),
    ]
    name = experiment.location.rstrip("/").rsplit("/", 1)[-1]
    subtitle = (f"{context}. Built {time.strftime('%Y-%m-%d %H:%M')} from trials.csv, epochs.csv, sweep.json "
                f"and the checkpoints in {experiment.location}.")
    return page.render_page(f"Sweep report: {name}", subtitle, sections)


def evidence_on(experiment: Experiment, knob: str, label: Callable[[Any], str]) -> list[str]:
    """A study's paragraphs from the seed replicates (analysis.evidence), over every stage's trials."""
    swept = experiment.space.knobs if experiment.space is not None else ()
    ties = dict(experiment.space.tied) if experiment.space is not None else {"l2_dense": "l2_conv"}  # old sweeps: the grid's tie
    return study_parts(experiment.configs, experiment.trials, knob_columns(swept), knob, label, ties)


def _safely(key: str, title: str, build: Callable[[], Section]) -> Section:
    """One broken section (an unexpected table, a bug) costs that section, not the report."""
    try:
        return build()
    except Exception as error:  # noqa: BLE001 - shown in the page and printed, never swallowed silently
        traceback.print_exc(file=sys.stderr)
        return Section(key, title, page.unavailable(
            f"This section could not be built: {type(error).__name__}: {error}"))
