"""Section 8, the augmentation effect: trials with augmentation against trials without, from this sweep.

A scheduler such as ASHA may stop the augmented trials early (augmentation slows early
progress), so their best accuracy comes from fewer epochs. Besides the best-epoch figures,
every trial is also compared at the last epoch all compared trials reached, from epochs.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cnn.sweep_results import SWEPT_KEYS

from analysis import page, plots
from analysis.page import Section
from analysis.results import Experiment, augment_strength, seed_text, single_trials_note

TITLE = "8. The augmentation effect"
# What else must be equal for an off/on pair to differ in augmentation only.
PAIR_KEYS = (*(k for k in SWEPT_KEYS if k != "augment_strength"), "config_learning_rate", "config_batch_size",
             "config_seed")


def with_common_epoch(trials: pd.DataFrame, epochs: pd.DataFrame) -> tuple[pd.DataFrame, int | None]:
    """Trials with 'augmented' and validation/test accuracy at the last epoch every trial reached."""
    frame = trials.assign(augmented=augment_strength(trials) > 0,
                          final_gap=trials["final_train_accuracy"] - trials["final_val_accuracy"])
    ran = frame["epochs_run"][frame["epochs_run"] > 0]
    common = int(ran.min()) if len(ran) else None
    at_common = epochs[epochs["epoch"] == common].drop_duplicates("trial_id").set_index("trial_id")
    frame["common_val_accuracy"] = frame["trial_id"].map(at_common["val_accuracy"]) if common else np.nan
    frame["common_test_accuracy"] = frame["trial_id"].map(at_common["test_accuracy"]) if common else np.nan
    return frame, common


def group_summary(frame: pd.DataFrame, common: int | None) -> list[dict[str, Any]]:
    rows = []
    for augmented, label in ((False, "off"), (True, "on")):
        members = frame[frame["augmented"] == augmented]
        scored = members[np.isfinite(members["best_val_accuracy"])]
        best = scored.iloc[0] if len(scored) else None  # trials are ranked already
        at_common = members[np.isfinite(members["common_val_accuracy"])]
        best_common = at_common.sort_values("common_val_accuracy", ascending=False).iloc[0] if len(at_common) else None
        epochs = members["epochs_run"].dropna().astype(int)
        rows.append({
            "augmentation": label, "trials": len(members),
            "stopped_early": int((members["status"] == "stopped_early").sum()),
            "failed": int((members["status"] == "failed").sum()),
            "epochs_min": int(epochs.min()) if len(epochs) else None,
            "epochs_max": int(epochs.max()) if len(epochs) else None,
            "best_trial": best["trial_id"] if best is not None else "",
            "best_val_accuracy": best["best_val_accuracy"] if best is not None else np.nan,
            "best_test_accuracy": best["best_test_accuracy"] if best is not None else np.nan,
            "best_trial_epochs": best["epochs_run"] if best is not None else np.nan,
            "mean_final_gap": members["final_gap"].mean(),
            "common_epoch": common,
            "best_val_at_common_epoch": best_common["common_val_accuracy"] if best_common is not None else np.nan,
            "its_test_at_common_epoch": best_common["common_test_accuracy"] if best_common is not None else np.nan,
        })
    return rows


def pairs(frame: pd.DataFrame, swept: tuple[str, ...] = ()) -> list[tuple[pd.Series, pd.Series]]:
    """(off, on) trials that differ in augmentation only: equal in the study's knobs and in every
    other knob the sweep varied (`swept`, its space's knobs)."""
    wanted = [*PAIR_KEYS, *(k for k in swept if k not in PAIR_KEYS and k != "augment_strength")]
    keys = [k for k in wanted if k in frame.columns]
    found = []
    for _, members in frame.groupby(keys, dropna=False, sort=False) if keys else []:
        off, on = members[~members["augmented"]], members[members["augmented"]]
        if len(off) == 1 and len(on) >= 1:
            found += [(off.iloc[0], row) for _, row in on.iterrows()]
    return found


def fairness_note(summary: list[dict[str, Any]], common: int | None) -> str:
    off, on = summary
    if off["epochs_min"] == on["epochs_min"] and off["epochs_max"] == on["epochs_max"]:
        return ""
    return (f"not a like-for-like comparison: the trials without augmentation ran {_range(off)} epochs and those "
            f"with it ran {_range(on)} ({on['stopped_early']} of {on['trials']} augmented and {off['stopped_early']} "
            f"of {off['trials']} unaugmented trials stopped early by the scheduler). At epoch {common}, the last "
            f"epoch every trial reached, the best validation accuracy is {page.pct(off['best_val_at_common_epoch'])} "
            f"without and {page.pct(on['best_val_at_common_epoch'])} with augmentation.")


def section(experiment: Experiment, out: Path, context: str, evidence: Sequence[str] = ()) -> Section:
    """`experiment`: the search stage's trials; `evidence`: the paragraphs on augmentation from the seed
    replicates (analysis.evidence.study_parts), shown first."""
    frame, common = with_common_epoch(experiment.trials, experiment.epochs)
    if frame["augmented"].all() or not frame["augmented"].any():
        state = "on" if frame["augmented"].all() else "off"
        return Section("augmentation", TITLE, page.unavailable(
            f"Augmentation was {state} in every trial, so this sweep cannot show its effect."))
    summary = group_summary(frame, common)
    matched = pairs(frame, experiment.space.knobs if experiment.space is not None else ())
    frame[["trial_id", "status", "augmented", "epochs_run", "best_val_accuracy", "best_test_accuracy", "final_gap",
           "common_val_accuracy", "common_test_accuracy"]].to_csv(out / "augmentation.csv", index=False)
    pd.DataFrame(summary).to_csv(out / "augmentation_summary.csv", index=False)

    parts: list[Any] = [*evidence, page.heading("Trial by trial") if evidence else ""]
    note = fairness_note(summary, common)
    if note:
        parts.append(page.warning(note))
    parts.append(page.table(
        ["augmentation", "trials", "epochs run", "best trial", "best val acc", "its test acc", "mean final gap",
         f"best val acc at epoch {common}", f"its test acc at epoch {common}"],
        [[r["augmentation"], f"{r['trials']} ({r['stopped_early']} stopped early, {r['failed']} failed)", _range(r),
          r["best_trial"] or "–", page.pct(r["best_val_accuracy"]), page.pct(r["best_test_accuracy"]),
          page.points(r["mean_final_gap"]), page.pct(r["best_val_at_common_epoch"]),
          page.pct(r["its_test_at_common_epoch"])] for r in summary], table_id="augmentation-summary"))
    verdict = _verdict(summary, common, seed_text(experiment.trials))
    parts.append(page.paragraph(verdict + single_trials_note(experiment.trials),
                                css="conclusion"))
    if matched:
        parts.append(page.heading("Pairs that differ in augmentation only"))
        parts.append(page.table(
            ["L2 (conv)", "off: trial", "epochs", "best val", "test", "gap", "on: trial", "epochs", "best val",
             "test", "gap", f"val at epoch {common}: off", "on"],
            [[page.num(off["l2_conv"]), off["trial_id"], page.integer(off["epochs_run"]),
              page.pct(off["best_val_accuracy"]), page.pct(off["best_test_accuracy"]), page.points(off["final_gap"]),
              on["trial_id"], page.integer(on["epochs_run"]), page.pct(on["best_val_accuracy"]),
              page.pct(on["best_test_accuracy"]), page.points(on["final_gap"]), page.pct(off["common_val_accuracy"]),
              page.pct(on["common_val_accuracy"])] for off, on in matched], table_id="augmentation-pairs"))
    parts.append(page.figure(plot_augmentation(frame, matched, common, out), "accuracy with and without augmentation",
                             "Validation accuracy of each trial without and with augmentation: at its best epoch "
                             f"(left) and at epoch {common}, which every trial reached (right). Lines join pairs that "
                             "differ in augmentation only.", context))
    return Section("augmentation", TITLE, page.join(parts))


def _verdict(summary: list[dict[str, Any]], common: int | None, seeds: str) -> str:
    off, on = summary
    text = (f"From this sweep's own trials ({seeds}): best validation accuracy with augmentation is {page.pct(on['best_val_accuracy'])} against "
            f"{page.pct(off['best_val_accuracy'])} without ({better(on['best_val_accuracy'], off['best_val_accuracy'])}"
            f"); test accuracy of those trials {page.pct(on['best_test_accuracy'])} against "
            f"{page.pct(off['best_test_accuracy'])}. The mean final train−validation gap is "
            f"{page.points(on['mean_final_gap'])} with and {page.points(off['mean_final_gap'])} without augmentation.")
    if common is not None and np.isfinite(on["best_val_at_common_epoch"]) and np.isfinite(off["best_val_at_common_epoch"]):
        text += (f" At epoch {common}, reached by every trial, augmentation is "
                 f"{better(on['best_val_at_common_epoch'], off['best_val_at_common_epoch'])} "
                 f"({page.pct(on['best_val_at_common_epoch'])} against {page.pct(off['best_val_at_common_epoch'])}).")
    return text


def better(a: float, b: float) -> str:
    return "higher" if a > b else "lower" if a < b else "the same"




def _range(row: dict[str, Any]) -> str:
    low, high = row["epochs_min"], row["epochs_max"]
    if low is None:
        return "–"
    return str(low) if low == high else f"{low}–{high}"


def plot_augmentation(frame: pd.DataFrame, matched: list[tuple[pd.Series, pd.Series]], common: int | None,
                      out: Path) -> Path:
    fig, axes = plots.new_figure(9.0, 4.0, ncols=2)
    for ax, column, title in ((axes[0, 0], "best_val_accuracy", "each trial's best epoch"),
                              (axes[0, 1], "common_val_accuracy", f"epoch {common}, reached by all")):
        for off, on in matched:
            ax.plot([0, 1], [100 * off[column], 100 * on[column]], color="#bbb", linewidth=1, zorder=1)
        for status, style in plots.STATUS_STYLE.items():
            members = frame[(frame["status"] == status) & np.isfinite(frame[column])]
            if len(members):
                hollow = status == "stopped_early"
                ax.scatter(members["augmented"].astype(int), 100 * members[column], marker=style["marker"], s=50,
                           zorder=3, facecolors="none" if hollow else style["color"], edgecolors=style["color"],
                           linewidths=1.5, label=style["label"])
        ax.set_xticks([0, 1], ["off", "on"])
        ax.set_xlim(-0.5, 1.5)
        ax.set_xlabel("augmentation")
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(f"Validation accuracy at {title}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return plots.save(fig, out, "augmentation")
