"""Section 5, feature maps of the best model: every conv layer's channels for one test image, and
how many filters never activate.

The original study remarks that deep filters often stay dark. A filter counts as never active
when its ReLU output is 0 at every position of every image in a batch of test images.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnn.data import Dataset, unit_float

from analysis import page, plots
from analysis.checkpoints import LoadedModel
from analysis.page import Section

ACTIVITY_BATCH = 256   # test images over which a filter must stay at 0 to count as never active
EXAMPLE_INDEX = 0      # the test image whose feature maps are drawn
TITLE = "5. Feature maps of the best model"


def conv_activations(model: Any, images: np.ndarray) -> dict[str, np.ndarray]:
    """Each conv layer's output (after its ReLU) for a batch of images, by layer name."""
    from cnn.keras_compat import keras
    from cnn.model import conv_layer_names

    names = conv_layer_names(model)
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outputs = probe.predict(images, batch_size=64, verbose=0)
    return dict(zip(names, outputs if isinstance(outputs, list) else [outputs]))


def never_active(activations: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per layer: filters, and how many have max activation 0 over every image and position."""
    rows = []
    for name, output in activations.items():
        peak = output.max(axis=(0, 1, 2))
        dead = int((peak <= 0).sum())
        rows.append({"layer": name, "filters": output.shape[-1], "never_active": dead,
                     "fraction": dead / output.shape[-1], "images": output.shape[0]})
    return pd.DataFrame(rows)


def section(best: LoadedModel | None, data: Dataset | None, data_error: str, out: Path, context: str) -> Section:
    if best is None or best.model is None:
        reason = best.error if best is not None else "there is no best trial"
        return Section("feature-maps", TITLE, page.unavailable(f"No feature maps: the best model is not available ({reason})."))
    if data is None:
        return Section("feature-maps", TITLE, page.unavailable(f"No feature maps: {data_error}"))
    batch = unit_float(data.x_test[:ACTIVITY_BATCH])
    activations = conv_activations(best.model, batch)
    counts = never_active(activations)
    counts.to_csv(out / "never_active_filters.csv", index=False)
    label = data.class_names[int(np.argmax(data.y_test[EXAMPLE_INDEX]))]

    parts: list[Any] = [page.paragraph(
        f"Model: best checkpoint of trial {best.trial_id} ({best.checkpoint}). Test image #{EXAMPLE_INDEX} "
        f"(true class: {label}). Each small square is one channel's ReLU output, on one colour scale per layer "
        f"(dark = 0); a red frame marks a filter that stays at 0 on all {len(batch)} test images checked.")]
    parts.append(page.heading("Filters that never activate"))
    parts.append(page.table(["layer", "filters", "never active", "share", "test images checked"],
                            [[r.layer, r.filters, r.never_active, f"{100 * r.fraction:.1f}%", r.images]
                             for r in counts.itertuples()], table_id="never-active"))
    total = int(counts["never_active"].sum())
    parts.append(page.paragraph(
        f"{total} of {int(counts['filters'].sum())} conv filters never activate over {len(batch)} test images"
        + (f"; most in {counts.loc[counts['never_active'].idxmax(), 'layer']}." if total else "."), css="conclusion"))
    parts.append(page.figure(plot_never_active(counts, out), "filters that never activate per conv layer",
                             f"Conv filters per layer whose ReLU output is 0 on all {len(batch)} test images.",
                             context))
    parts.append(page.figure(plot_input(batch[EXAMPLE_INDEX], label, out), "the test image",
                             f"Test image #{EXAMPLE_INDEX}, true class {label}.", context))
    # One grid per layer, folded away but the first: together they were over half the page's height.
    for position, (name, output) in enumerate(activations.items()):
        dead = output.max(axis=(0, 1, 2)) <= 0
        png = plot_channels(output[EXAMPLE_INDEX], dead, name, out)
        shape = f"{output.shape[-1]} channels of {output.shape[1]}×{output.shape[2]}"
        parts.append(page.collapsible(
            f"{name}: {shape}, {int(dead.sum())} never active",
            page.figure(png, f"feature maps of {name}",
                        f"{name}: {shape} for test image #{EXAMPLE_INDEX}; {int(dead.sum())} framed red (never active).",
                        context),
            open_=position == 0))
    return Section("feature-maps", TITLE, page.join(parts))


def plot_channels(maps: np.ndarray, dead: np.ndarray, name: str, out: Path) -> Path:
    channels = maps.shape[-1]
    columns = 16 if channels > 32 else 8
    rows = math.ceil(channels / columns)
    fig, axes = plots.new_figure(0.62 * columns, 0.62 * rows + 0.5, ncols=columns, nrows=rows)
    top = float(maps.max()) or 1.0  # one scale per layer, so a dim channel looks dim
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= channels:
            ax.axis("off")
            continue
        ax.imshow(maps[..., i], cmap="viridis", vmin=0.0, vmax=top)
        ax.set_title(str(i), fontsize=6, pad=1)
        if dead[i]:
            for spine in ax.spines.values():
                spine.set_edgecolor("#e02020")
                spine.set_linewidth(2)
    fig.suptitle(f"{name}: ReLU output per channel (colour scale 0 to {top:.3g})", fontsize=10)
    return plots.save(fig, out, f"feature_maps_{name}")


def plot_input(image: np.ndarray, label: str, out: Path) -> Path:
    fig, axes = plots.new_figure(2.2, 2.4)
    ax = axes[0, 0]
    plots.show_image(ax, image)
    ax.set_title(f"test image #{EXAMPLE_INDEX}\ntrue: {plots.plain(label)}", fontsize=9)
    return plots.save(fig, out, "feature_maps_input")


def plot_never_active(counts: pd.DataFrame, out: Path) -> Path:
    fig, axes = plots.new_figure(6.5, 3.5)
    ax = axes[0, 0]
    ax.bar(counts["layer"], counts["filters"], color="#d9dee5", label="filters in layer")
    ax.bar(counts["layer"], counts["never_active"], color="#c0392b", label="never active")
    for i, row in enumerate(counts.itertuples()):
        ax.annotate(f"{row.never_active}/{row.filters}", (i, row.filters), ha="center", va="bottom", fontsize=8)
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_xlabel("conv layer")
    ax.set_ylabel("filters (count)")
    ax.set_title(f"Filters with max activation 0 over {int(counts['images'].iloc[0])} test images")
    ax.set_ylim(0, counts["filters"].max() * 1.15)
    ax.legend(fontsize=8)
    return plots.save(fig, out, "never_active_filters")

