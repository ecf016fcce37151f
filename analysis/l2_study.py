"""Section 7, the L2 study: does L2 shrink the weights, and does it narrow the train/validation gap?

Like is compared with like: trials are grouped by augmentation setting first, and L2 is
compared only within a group. Within a group, one trial stands for each L2 strength (the
best by validation accuracy, if several share it). Weights come from each trial's best
checkpoint; the gap from trials.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from analysis import page, plots
from analysis.checkpoints import LoadedModel, kernel_weights
from analysis.page import Section
from analysis.results import augment_strength, augmentation_label, seed_text, single_trials_note

MAX_LEVELS = 6            # more L2 strengths than this in one group (random search): a spread of them
OTHER_KNOBS = ("l2_dense", "dropout_conv", "dropout_dense")
TITLE = "7. The L2 study"
# The strength each trial is placed by: the grid ties L2 on dense kernels to it; random search
# samples both (the dense one is then among OTHER_KNOBS, which the study shows beside it).
L2 = "l2_conv"


@dataclass(frozen=True)
class L2Group:
    setting: str              # the augmentation setting all its trials share
    trials: pd.DataFrame      # one trial per L2 strength, by increasing strength
    strengths_tried: int      # distinct L2 strengths in this setting before thinning to MAX_LEVELS


def l2_groups(trials: pd.DataFrame) -> list[L2Group]:
    """Per augmentation setting with two or more L2 strengths: one representative trial per strength."""
    column = L2
    ranked = trials.assign(_augment=augment_strength(trials))
    ranked = ranked[ranked[column].notna() & np.isfinite(ranked["best_val_accuracy"])]
    groups = []
    for strength, members in ranked.groupby("_augment", sort=True, dropna=False):
        chosen = members.sort_values("best_val_accuracy", ascending=False, kind="stable")
        chosen = chosen.drop_duplicates(column).sort_values(column, kind="stable")
        tried = len(chosen)
        if tried < 2:
            continue
        if tried > MAX_LEVELS:
            chosen = chosen.iloc[np.unique(np.linspace(0, tried - 1, MAX_LEVELS).round().astype(int))]
        groups.append(L2Group(augmentation_label(float(strength)), chosen.drop(columns="_augment"), tried))
    return groups


def trials_needed(trials: pd.DataFrame) -> list[str]:
    """The trials whose checkpoints this section reads."""
    return [t for group in l2_groups(trials) for t in group.trials["trial_id"]]


def trend(values: list[float]) -> str:
    """How a series moves as L2 grows, in words."""
    steps = np.diff(values)
    if (steps < 0).all():
        return "falls steadily"
    if values[-1] < values[0]:
        return "falls overall, though not at every step"
    if (steps > 0).all():
        return "rises steadily"
    if values[-1] > values[0]:
        return "rises overall"
    return "does not change"


def conclusion(group: L2Group, column: str, total_norms: list[float] | None, seeds: str) -> str:
    """One plain sentence from this group's numbers: do weights and the gap fall as L2 grows?"""
    trials = group.trials
    l2 = trials[column].tolist()
    gaps = (100 * (trials["final_train_accuracy"] - trials["final_val_accuracy"])).tolist()
    epochs = sorted(set(trials["epochs_run"].dropna().astype(int)))
    head = (f"{group.setting.capitalize()} ({len(trials)} trials, "
            f"{'%d epochs each' % epochs[0] if len(epochs) == 1 else 'epochs ' + ', '.join(map(str, epochs))}, "
            f"{seeds}): as L2 grows from {l2[0]:g} to {l2[-1]:g}, ")
    gap_trend = trend(gaps) if all(np.isfinite(gaps)) else "cannot be computed"
    gap_text = f"the final train−validation accuracy gap {gap_trend} ({gaps[0]:+.2f} → {gaps[-1]:+.2f} points)"
    shrinks = total_norms is not None and trend(total_norms).startswith("falls")
    narrows = gap_trend.startswith("falls")
    if total_norms is None:
        verdict = "; weights could not be read, so only the gap is shown."
    elif shrinks and narrows:
        verdict = ", so here L2 both shrinks the weights and narrows the gap between training and validation."
    elif shrinks:
        verdict = ", so L2 shrinks the weights here but this sweep does not show it reducing overfitting."
    else:
        verdict = ", so this sweep does not show L2 shrinking the weights."
    norm_text = ("" if total_norms is None else
                 f"the total kernel weight norm {trend(total_norms)} ({total_norms[0]:.3g} → {total_norms[-1]:.3g}) and ")
    sentence = head + norm_text + gap_text + verdict
    if all(np.isfinite(gaps)) and max(gaps) <= 0:
        sentence += (" Training accuracy never exceeds validation accuracy here (it is measured with dropout on), "
                     "so there is no measurable overfitting for L2 to reduce.")
    if len(epochs) > 1:
        sentence += " The trials ran different numbers of epochs, which also moves the gap."
    return sentence


def section(trials: pd.DataFrame, models: dict[str, LoadedModel], out: Path, context: str,
            evidence: Sequence[str] = ()) -> Section:
    """`trials`: the search stage's; `evidence`: the paragraphs on L2 from the seed replicates
    (analysis.evidence.study_parts), shown first."""
    column = L2
    groups = l2_groups(trials)
    if column in trials.columns and trials[column].nunique(dropna=True) == 1:
        return Section("l2-study", TITLE, page.unavailable(
            f"This sweep did not vary L2: every trial had {column} = {trials[column].dropna().iloc[0]:g}. Add "
            f"{column} to the sweep file's space (with an L2 = 0 baseline) for the original study's comparison."))
    if not groups:
        return Section("l2-study", TITLE, page.join([*evidence, page.unavailable(
            "No augmentation setting has trials at two or more L2 strengths with a validation accuracy, "
            "so there is no like-for-like L2 comparison in this sweep.")]))
    parts: list[Any] = [*evidence, page.heading("Trial by trial") if evidence else "", page.paragraph(
        "Trials are compared within one augmentation setting at a time, so that augmentation does not blur the "
        "effect of L2. Weights are each trial's kernels at its best checkpoint; the gap is train minus validation "
        "accuracy (the train figure is the running mean over the epoch with dropout on).", css="note")]
    rows = []
    for group in groups:
        kernels = {t: kernel_weights(models[t].model) for t in group.trials["trial_id"]
                   if t in models and models[t].model is not None}
        parts += group_parts(group, column, kernels, models, out, context, seed_text(trials),
                             single_trials_note(trials))
        rows += study_rows(group, column, kernels)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "l2_study.csv", index=False)
    parts.append(page.heading("Train−validation gap against L2"))
    parts.append(page.figure(plot_gaps(groups, column, out), "train minus validation accuracy against L2",
                             "Train minus validation accuracy against L2 strength, per augmentation setting: at "
                             "the last epoch (solid) and at the best epoch (dashed). Above 0 = overfitting.",
                             context))
    parts.append(page.table(
        ["setting", "L2", "trial", "status", "epochs", "best: train", "val", "gap", "final: train", "val", "gap",
         "kernel norm"],
        [[r["setting"], page.num(r["l2"]), r["trial_id"], page.badge(r["status"]), page.integer(r["epochs_run"]),
          page.pct(r["best_train_accuracy"]), page.pct(r["best_val_accuracy"]), page.points(r["best_gap"]),
          page.pct(r["final_train_accuracy"]), page.pct(r["final_val_accuracy"]), page.points(r["final_gap"]),
          page.num(r["total_kernel_norm"])] for r in rows], table_id="l2-gap"))
    return Section("l2-study", TITLE, page.join(parts))


def group_parts(group: L2Group, column: str, kernels: dict[str, dict[str, np.ndarray]],
                models: dict[str, LoadedModel], out: Path, context: str, seeds: str, caveat: str) -> list[Any]:
    trials = group.trials
    ids = trials["trial_id"].tolist()
    parts: list[Any] = [page.heading(f"{group.setting.capitalize()}: {len(trials)} L2 strengths")]
    if group.strengths_tried > len(trials):
        parts.append(page.paragraph(f"{group.strengths_tried} L2 strengths were tried in this setting; "
                                    f"{len(trials)} spread over the range are shown.", css="note"))
    varying = [k for k in OTHER_KNOBS if k in trials.columns and trials[k].nunique() > 1
               and not (k == "l2_dense" and trials["l2_dense"].equals(trials["l2_conv"]))]
    if varying:
        parts.append(page.warning(f"these trials also differ in {', '.join(varying)}, so differences are not due to "
                                  "L2 alone."))
    for t in ids:
        if t not in kernels:
            reason = models[t].error if t in models else "not loaded"
            parts.append(page.unavailable(f"Weights of trial {t} are not shown: {reason}"))
    complete = len(kernels) == len(ids)
    norms = [total_norm(kernels[t]) for t in ids] if complete else None
    tag = _slug(group.setting)
    parts.append(page.paragraph(conclusion(group, column, norms, seeds) + caveat, css="conclusion"))
    if kernels:
        labels = {t: f"L2 = {v:g}" for t, v in zip(ids, trials[column])}
        parts.append(page.figure(plot_histograms(kernels, labels, group.setting, tag, out),
                                 f"kernel weight histograms, {group.setting}",
                                 f"Distribution of conv and dense kernel weights per L2 strength ({group.setting}).",
                                 context))
        parts.append(page.figure(plot_layer_norms(kernels, labels, group.setting, tag, out),
                                 f"kernel weight norm per layer, {group.setting}",
                                 f"L2 norm of each layer's kernel per L2 strength ({group.setting}).", context))
        layers = list(next(iter(kernels.values())))
        parts.append(page.table(["layer", *(labels[t] for t in kernels)],
                                [[layer, *(page.num(np.linalg.norm(kernels[t][layer])) for t in kernels)]
                                 for layer in layers], table_id=f"norms-{tag}"))
    return parts


def total_norm(kernels: dict[str, np.ndarray]) -> float:
    """The L2 norm of all kernels together: what the penalty acts on."""
    return float(np.sqrt(sum(float(np.sum(np.square(k))) for k in kernels.values())))


def study_rows(group: L2Group, column: str, kernels: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    rows = []
    for trial in group.trials.to_dict("records"):
        weights = kernels.get(trial["trial_id"])
        row = {"setting": group.setting, "l2": trial[column], "trial_id": trial["trial_id"],
               "status": trial["status"], "epochs_run": trial["epochs_run"]}
        for when in ("best", "final"):
            row[f"{when}_train_accuracy"] = trial[f"{when}_train_accuracy"]
            row[f"{when}_val_accuracy"] = trial[f"{when}_val_accuracy"]
            row[f"{when}_gap"] = trial[f"{when}_train_accuracy"] - trial[f"{when}_val_accuracy"]
        row["total_kernel_norm"] = total_norm(weights) if weights else np.nan
        row.update({f"norm_{layer}": float(np.linalg.norm(k)) for layer, k in (weights or {}).items()})
        rows.append(row)
    return rows


def plot_histograms(kernels: dict[str, dict[str, np.ndarray]], labels: dict[str, str], setting: str, tag: str,
                    out: Path) -> Path:
    fig, axes = plots.new_figure(10.0, 3.8, ncols=2)
    for ax, kind in zip(axes[0], ("conv", "dense")):
        pooled = {t: np.concatenate([k.ravel() for name, k in layers.items() if _is_conv(name) == (kind == "conv")])
                  for t, layers in kernels.items()}
        # A diverged trial's weights may be inf or NaN: only finite values are drawn (none: no curve).
        pooled = {t: v[np.isfinite(v)] for t, v in pooled.items()}
        pooled = {t: v for t, v in pooled.items() if v.size}
        limit = max((float(np.percentile(np.abs(v), 99.9)) for v in pooled.values()), default=0.0) or 1.0
        bins = np.linspace(-limit, limit, 81)
        for t, values in pooled.items():
            ax.hist(values, bins=bins, density=True, histtype="step", linewidth=1.4, label=labels[t])
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel(f"{kind} kernel weight value")
        ax.set_ylabel("density (log scale)")
        ax.set_title(f"{kind.capitalize()} kernels ({'all conv layers' if kind == 'conv' else 'dense + output'})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Kernel weights per L2 strength, {setting}", fontsize=11)
    return plots.save(fig, out, f"l2_weight_histograms_{tag}")


def plot_layer_norms(kernels: dict[str, dict[str, np.ndarray]], labels: dict[str, str], setting: str, tag: str,
                     out: Path) -> Path:
    fig, axes = plots.new_figure(8.0, 3.8)
    ax = axes[0, 0]
    for t, layers in kernels.items():
        ax.plot(list(layers), [np.linalg.norm(k) for k in layers.values()], marker="o", label=labels[t])
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 20, not 2×10^1
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("layer")
    ax.set_ylabel("kernel L2 norm (log scale)")
    ax.set_title(f"Kernel norm per layer, {setting}")
    ax.tick_params(axis="x", labelrotation=30)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return plots.save(fig, out, f"l2_layer_norms_{tag}")


def plot_gaps(groups: list[L2Group], column: str, out: Path) -> Path:
    fig, axes = plots.new_figure(7.0, 4.0)
    ax = axes[0, 0]
    every = np.concatenate([g.trials[column].to_numpy(dtype=float) for g in groups])
    _, zero_at = plots.log_positions(every)
    for group in groups:
        l2 = group.trials[column].to_numpy(dtype=float)
        x = np.where(l2 == 0, zero_at, l2) if zero_at is not None else l2
        color = None  # one colour per setting; solid = last epoch, dashed = best epoch
        for when, style in (("final", "-"), ("best", "--")):
            gap = 100 * (group.trials[f"{when}_train_accuracy"] - group.trials[f"{when}_val_accuracy"])
            color = ax.plot(x, gap, style, marker="o", color=color, label=f"{group.setting}, {when} epoch")[0].get_color()
    ax.axhline(0, color="black", linewidth=0.8)
    plots.log_axis_with_zero(ax, every, zero_at, "L2 strength (conv kernels)")
    ax.set_ylabel("train − validation accuracy (points)")
    ax.set_title("Train/validation gap against L2")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return plots.save(fig, out, "l2_gap")


def _is_conv(layer: str) -> bool:
    return "conv" in layer


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")
