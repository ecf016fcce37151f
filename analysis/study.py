"""Section 1, the study: what was trained, on what, on which hardware, and how to run it again."""

from __future__ import annotations

import json
from typing import Any

from analysis import page
from analysis.page import Html, Section
from analysis.results import Experiment, count, seed_text, seeds, status_counts


def section(experiment: Experiment) -> Section:
    sweep, base, trials = experiment.sweep, experiment.base, experiment.trials
    counts = status_counts(trials)
    settings = sweep.get("settings") or {}
    facts = [
        ("Dataset", _dataset_text(sweep.get("dataset") or {}, base)),
        ("Epochs", f"up to {base.get('epochs', '?')} per trial (batch size {base.get('batch_size', '?')}, "
                   f"learning rate {base.get('learning_rate', '?')})"),
        ("Trials", trial_count_text(counts, len(trials))),
        ("Search", _search_text(settings, sweep.get("search_space") or {})),
        ("Scheduler", _scheduler_text(settings)),
        ("Selection", sweep.get("selection", "trials ranked by best validation accuracy")),
        ("Seeds", seed_text(trials)),
        ("Cluster resources", _compact(sweep.get("cluster_resources"))),
        ("Resources per trial", _compact(sweep.get("resources_per_trial"))),
        ("Concurrent trials", _compact(sweep.get("concurrent_trials"))),
        ("Driver host", _compact(sweep.get("driver_host"))),
        ("Code", f"git commit {sweep.get('git_commit', 'not recorded')}"),
        ("Packages", _compact(sweep.get("packages"))),
        ("Ran", f"{sweep.get('started', '?')} to {sweep.get('finished', '?')} "
                f"({_minutes(sweep.get('wall_seconds'))})"),
        ("Results", experiment.location),
    ]
    parts: list[Any] = [page.key_values(facts, table_id="study-facts")]
    if sweep.get("state", "finished") != "finished":
        parts.append(page.paragraph(
            "This sweep did not finish: it was interrupted (driver stopped, or storage stopped taking writes). "
            "Its tables were rebuilt from what it had stored; trials it had not run are missing, and a trial "
            "marked stopped early may have been cut short by the interruption.", css="warning"))
    if len(seeds(trials)) <= 1:
        parts.append(page.paragraph(
            "Single seed: every trial ran once, so each number in this report comes from one training run. "
            "Differences smaller than the run-to-run noise (unknown here) may not repeat.", css="warning"))
    parts += [page.heading("Reproduce"), page.code_block(sweep.get("command", "command not recorded")),
              Html("<details><summary>Base training config (sweep.json settings.base)</summary>"),
              page.code_block(json.dumps(base, indent=1, default=str)), Html("</details>")]
    return Section("study", "1. The study", page.join(parts))


def trial_count_text(counts: dict[str, int], total: int) -> str:
    text = (f"{total} trials: {counts['finished']} finished, {counts['stopped_early']} stopped early, "
            f"{counts['failed']} failed")
    return text + (f", {counts['other']} with another status" if counts["other"] else "")


def _dataset_text(dataset: dict[str, Any], base: dict[str, Any]) -> str:
    name = dataset.get("name") or base.get("dataset", "not recorded")
    if "train" not in dataset:
        return str(name)
    shape = "×".join(str(s) for s in dataset.get("input_shape", []))
    classes = len(dataset.get("class_names", []))
    return (f"{name}: {count(dataset['train'])} train / {count(dataset.get('validation'))} validation / "
            f"{count(dataset.get('test'))} test images of {shape}, {classes} classes (source: {dataset.get('source', 'not recorded')})")


def _search_text(settings: dict[str, Any], space: dict[str, Any]) -> str:
    described = "; ".join(f"{k}: {v}" for k, v in space.items()) or "not recorded"
    return f"{settings.get('search', '?')} search — {described}"


def _scheduler_text(settings: dict[str, Any]) -> str:
    scheduler = settings.get("scheduler", "not recorded")
    if scheduler == "asha":
        return (f"ASHA early stopping on validation accuracy (grace period {settings.get('grace_period')} "
                f"epochs, reduction factor {settings.get('reduction_factor')})")
    if scheduler == "fifo":
        return "FIFO: no early stopping; every trial runs to its epoch limit (or the target training accuracy)"
    return str(scheduler)


def _compact(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _minutes(seconds: Any) -> str:
    try:
        return f"{float(seconds) / 60:.1f} min"
    except (TypeError, ValueError):
        return "duration not recorded"
