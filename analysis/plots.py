"""Matplotlib, headless: saving figures, how trial status is drawn, and a log axis that can show 0.

L2 strengths span decades, so they go on a log axis; but the no-L2 baseline is 0, which a
log axis cannot hold. It is drawn one and a half decades below the smallest positive value,
behind a marked axis break and labelled "0", rather than silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: reports are built on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 100
ZERO_GAP_DECADES = 1.5
# How each trial status is drawn, so stopped and failed trials stand out in every plot.
STATUS_STYLE = {
    "finished": {"marker": "o", "color": "#2458a6", "label": "finished"},
    "stopped_early": {"marker": "^", "color": "#d08c00", "label": "stopped early"},
    "failed": {"marker": "X", "color": "#c0392b", "label": "failed (no accuracy)"},
}
SERIES_COLORS = {"train": "#2458a6", "val": "#d08c00", "test": "#2e8b57"}


def new_figure(width: float = 7.0, height: float = 4.2, ncols: int = 1, nrows: int = 1
               ) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    return fig, axes


def save(fig: Figure, folder: Path, name: str) -> Path:
    """Write the figure as PNG and free it (a report makes dozens; open figures pile up)."""
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def whole_epochs(ax: Axes) -> None:
    """Ticks on an epoch axis at whole epochs only (matplotlib would put some at 1.5, 2.5, ...)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plain(value: object) -> str:
    """Text from results (trial ids, class names) for a label: a "$" in it must not start math mode."""
    return str(value).replace("$", r"\$")


def log_positions(values: np.ndarray) -> tuple[np.ndarray, float | None]:
    """x positions of values on a log axis, and where 0 sits (None if no value is positive)."""
    values = np.asarray(values, dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    if not len(positive):
        return values, None
    zero_at = float(positive.min()) / 10 ** ZERO_GAP_DECADES
    return np.where(values == 0, zero_at, values), zero_at


def log_axis_with_zero(ax: Axes, values: np.ndarray, zero_at: float | None, label: str) -> None:
    """Log x axis over the positive values, with 0 at `zero_at` behind a drawn break."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    positive = np.unique(values[values > 0])
    if zero_at is None:  # only zeros: a log axis has nothing to show
        ax.set_xlabel(label)
        return
    ax.set_xscale("log")
    tried = sorted(set(positive))
    ticks = tried if len(tried) <= 6 and _spread_out(tried) else _round_ticks(tried[0], tried[-1])
    labels = [f"{t:g}" for t in ticks]
    if (values == 0).any():
        ticks, labels = [zero_at, *ticks], ["0", *labels]
        gap = np.sqrt(zero_at * positive.min())
        ax.axvline(gap, color="#888", linestyle=(0, (2, 3)), linewidth=1)
        ax.annotate("log axis starts", xy=(gap, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                    textcoords="offset points", fontsize=7, color="#666", va="top")
    ax.set_xticks(ticks, labels)
    ax.minorticks_off()
    low = zero_at if (values == 0).any() else positive.min()
    ax.set_xlim(low / 2.5, positive.max() * 2.5)
    ax.set_xlabel(f"{label} (log scale; 0 shown left of the break)" if (values == 0).any()
                  else f"{label} (log scale)")


def _spread_out(values: list[float]) -> bool:
    """Whether neighbouring values lie at least a third of a decade apart (their labels then fit)."""
    return all(np.log10(b / a) >= 1 / 3 for a, b in zip(values, values[1:]))


def _round_ticks(low: float, high: float) -> list[float]:
    """Ticks at 1, 2 and 5 times the powers of ten between low and high (decades alone when the
    range spans more than two), so that sampled values get readable labels."""
    steps = (1.0,) if np.log10(high / low) > 2 else (1.0, 2.0, 5.0)
    decades = 10.0 ** np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    ticks = [d * s for d in decades for s in steps if low / 1.5 <= d * s <= high * 1.5]
    return ticks or [low, high]


def show_image(ax: Axes, image: np.ndarray) -> None:
    """An (H, W, C) image in [0, 1]: grey for one channel, colour for three."""
    grey = image.shape[-1] == 1
    ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
