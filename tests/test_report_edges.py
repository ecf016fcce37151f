"""The report's rough edges a reader met (issue 18): epoch axes at whole epochs, wide tables that may
wrap, unit and number kept together. The browser test in test_analysis.py checks the page itself."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import curves, page, plots


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions save, kept open to be read instead of written."""
    kept = []
    monkeypatch.setattr(plots, "save", lambda fig, folder, name: kept.append(fig) or folder / f"{name}.png")
    return kept


def epochs_of(trial_id: str, count: int) -> pd.DataFrame:
    return pd.DataFrame({"trial_id": trial_id, "epoch": range(1, count + 1),
                         **{f"{split}_{q}": [0.5 + 0.1 * i for i in range(count)]
                            for split in ("train", "val", "test") for q in ("accuracy", "loss")}})


@pytest.mark.parametrize("count", [2, 3, 7])
def test_epoch_axes_show_whole_epochs_only(figures, tmp_path, count):
    history = epochs_of("a", count)
    best = pd.Series({"trial_id": "a", "best_epoch": count, "status": "finished"})
    curves.plot_curves(history, "accuracy", "%", best, tmp_path)
    curves.plot_top_trials(history, pd.DataFrame([best]), tmp_path)
    for fig in figures:
        ax = fig.axes[0]
        low, high = ax.get_xlim()
        shown = [tick for tick in ax.get_xticks() if low <= tick <= high]
        assert shown and all(float(tick).is_integer() for tick in shown), shown


def test_column_names_may_wrap_after_underscores_and_a_difference_keeps_its_unit():
    html = page.table(["augment_strength", page.Html("<b>x_y</b>")], [["a_b", 1]])
    assert "<th scope=\"col\">augment_<wbr>strength</th>" in html and "<b>x_y</b>" in html
    assert "<td>a_b</td>" in html, "cells are left as they are"
    assert page.points(0.0123) == "+1.23\u00a0pt"
