"""The sweep report: built from a tiny real experiment, opened in headless Chromium, robust to messy results."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import build_report, page, plots
from analysis.effects import edge_position
from analysis.l2_study import L2Group, conclusion, trend
from analysis.leaderboard import tie_note
from analysis.results import single_trials_note
from analysis_fixtures import (SCRIPT, SCRIPT_ID, TRIALS, broken_best_copy, replicated_copy, browser_check, build_tiny_experiment,
                               install_chromium, messy_copy, screenshot)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
SECTIONS = ("study", "leaderboard", "effects", "curves", "feature-maps", "predictions", "l2-study", "augmentation")
CONV_FILTERS = [32, 32, 64, 64, 128, 128]


@pytest.fixture(scope="session")
def chromium() -> str:
    found = install_chromium()
    if not found:
        pytest.skip("headless Chromium is not installed and could not be installed (needs root and apt-get); "
                    "install Debian's `chromium` package to run the browser checks")
    return found


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, data_dir) -> Path:
    return build_tiny_experiment(tmp_path_factory.mktemp("analysis") / "tiny", data_dir)


@pytest.fixture(scope="module")
def report(experiment, data_dir) -> Path:
    return Path(build_report(str(experiment), data_dir=str(data_dir)))


def test_report_has_every_section_with_the_right_counts(report, experiment):
    html = report.read_text()
    out = report.parent
    assert report == experiment / "analysis" / "summary.html"
    for key in SECTIONS:
        assert f'<section id="{key}">' in html, key
    assert "could not be built" not in html
    # The one part a 3-trial sweep cannot have: parameter importance, which says why.
    assert html.count('class="unavailable"') == 1
    assert "No parameter importance: it needs at least 10 trials" in html and "this sweep has 3" in html
    assert "3 trials: 2 finished, 1 stopped early, 0 failed" in html
    assert "single seed (0)" in html and "Single seed:" in html
    assert "python -m pytest tests/test_analysis.py" in html  # the command that reproduces it

    trials = pd.read_csv(experiment / "trials.csv", dtype={"trial_id": str})
    leaderboard = pd.read_csv(out / "leaderboard.csv", dtype={"trial_id": str})
    assert leaderboard["trial_id"].tolist() == trials["trial_id"].tolist()
    assert len(_table_rows(html, "leaderboard")) == len(TRIALS)
    assert html.count('<span class="badge badge-stopped">') == 1  # the augmented trial, cut short
    # Every figure is embedded, and every figure carries the dataset / epochs / trials / seed line.
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 15 and html.count('src="data:image/png;base64,') == len(pngs)
    assert html.count("mnist (540 train / 60 validation / 200 test images) · up to 2 epochs · 3 trials · "
                      "single seed (0)") >= len(pngs)

    # Hyperparameter effects: one plot per swept hyperparameter (L2 conv = dense here), edges flagged.
    assert (out / "effect_l2_conv.png").is_file() and (out / "effect_augment_strength.png").is_file()
    assert not (out / "effect_l2_dense.png").exists()
    assert "edge of the search space" in html

    # The best model on the test set: every test image once, and the same accuracy trials.csv recorded.
    confusion = pd.read_csv(out / "confusion_matrix.csv", index_col=0)
    per_class = pd.read_csv(out / "per_class_accuracy.csv", dtype={"class": str})
    assert confusion.shape == (10, 10) and confusion.to_numpy().sum() == 200
    assert per_class["class"].tolist() == [str(d) for d in range(10)]
    assert per_class["test_images"].sum() == 200 and per_class["correct"].sum() == np.trace(confusion.to_numpy())
    best = trials.iloc[0]
    assert np.trace(confusion.to_numpy()) / 200 == pytest.approx(best["best_test_accuracy"], abs=1 / 200)
    assert (out / "classification_examples.png").is_file() and "misclassified" in html

    never = pd.read_csv(out / "never_active_filters.csv")
    assert never["layer"].tolist() == [f"block{b}_conv{c}" for b in (1, 2, 3) for c in (1, 2)]
    assert never["filters"].tolist() == CONV_FILTERS
    assert (never["images"] == 200).all() and never["never_active"].between(0, never["filters"]).all()
    assert len(list(out.glob("feature_maps_block*_conv*.png"))) == 6

    # L2: within augmentation off, the two strengths tried, with weight norms read from the checkpoints.
    l2 = pd.read_csv(out / "l2_study.csv")
    assert l2["setting"].tolist() == ["augmentation off"] * 2 and l2["l2"].tolist() == [0.0, 1e-3]
    assert (l2["total_kernel_norm"] > 0).all() and len([c for c in l2.columns if c.startswith("norm_")]) == 8
    direction = trend(l2["total_kernel_norm"].tolist())  # whichever way it went, the sentence must say so
    assert re.search(r'class="conclusion">Augmentation off \(2 trials, 2 epochs each, single seed \(0\)\): '
                     r"as L2 grows from 0 to 0\.001, the total kernel weight norm " + re.escape(direction), html)

    # Augmentation: 2 trials off, 1 on; the on trial ran 1 epoch, so the comparison is flagged unfair.
    summary = pd.read_csv(out / "augmentation_summary.csv")
    assert summary["augmentation"].tolist() == ["off", "on"] and summary["trials"].tolist() == [2, 1]
    assert summary["common_epoch"].tolist() == [1, 1]
    assert "not a like-for-like comparison" in html and len(_table_rows(html, "augmentation-pairs")) == 1


def test_report_opens_in_a_real_browser(report, chromium, tmp_path):
    seen = browser_check(chromium, report, tmp_path)
    assert seen["errors"] == [] and seen["alerts"] == []
    assert seen["images"] >= 15 and seen["decoded"] == seen["images"]
    assert seen["leaderboard_rows"] == len(TRIALS) and seen["sections"] == len(SECTIONS)
    assert seen["page_width"] <= 1280, "wide tables must scroll inside the page, not widen it"
    assert seen["overflowing_tables"] == [], "at a 1,280-pixel window every table fits the page"
    # The feature-map grids, one per conv layer, folded away but the first.
    assert seen["folded"] == [True] + [False] * 5
    shot = screenshot(chromium, report, ARTIFACTS / "analysis_summary.png", tmp_path)
    assert _not_blank(shot)


def test_messy_results_render_and_their_text_is_escaped(experiment, data_dir, chromium, tmp_path):
    messy = messy_copy(experiment, tmp_path / "messy")
    report = Path(build_report(str(messy), data_dir=str(data_dir)))
    html = report.read_text()
    assert "<script>alert(" not in html and "<script" not in html
    assert page.esc(SCRIPT) in html and page.esc(SCRIPT_ID) in html
    assert "5 trials: 2 finished, 2 stopped early, 1 failed" in html
    rows = _table_rows(html, "leaderboard")
    assert len(rows) == 5 and rows[-1].startswith('<tr class="failed">') and page.esc(SCRIPT_ID) in rows[-2]
    assert "could not be built" not in html
    # Only the missing weights (the best model still loads) and the importance a 5-trial sweep cannot have.
    assert html.count('class="unavailable"') == 2 and "No parameter importance" in html
    # The trial without a checkpoint is still in the L2 study, with its weights said to be missing.
    assert "trials.csv records no checkpoint for this trial" in html
    assert "weights could not be read, so only the gap is shown" in html

    seen = browser_check(chromium, report, tmp_path)
    assert seen["alerts"] == [] and seen["errors"] == []
    assert seen["leaderboard_rows"] == 5 and seen["decoded"] == seen["images"] > 0
    assert _not_blank(screenshot(chromium, report, ARTIFACTS / "analysis_summary_messy.png", tmp_path))


def test_seed_replicates_are_weighed_with_intervals_and_welch_tests(experiment, data_dir, tmp_path):
    replicated = replicated_copy(experiment, tmp_path / "replicated")
    html = Path(build_report(str(replicated), data_dir=str(data_dir))).read_text()
    assert "could not be built" not in html
    configs = pd.read_csv(replicated / "analysis" / "configs.csv")
    confirm = configs[configs.stage == "confirm"]
    assert len(confirm) == 3 and (confirm["n"] == 3).all()
    assert "Configurations, confirm stage" in html and len(_table_rows(html, "configurations")) == 3
    # The L2 = 0.001 configuration leads by 3 points over intervals of +-0.5: a winner.
    assert re.search(r'class="conclusion">[0-9a-f]{8} \(l2_conv = 0.001, augment_strength = 0, l2_dense = 0.001\) wins',
                     html)
    # The L2 study: 0.001 against 0 without augmentation, 3 seeds each, Welch's test, beyond noise.
    assert "L2 = 0.001 against L2 = 0 (all else equal; 3 and 3 seeds): test accuracy +3.00 points" in html
    assert "): larger than seed-to-seed noise. The train−validation gap moves +0.00 points (p = 1), not larger" in html
    assert "Welch&#x27;s t-test" in html
    # Augmentation: on against off at L2 = 0, the same accuracies: not larger than noise.
    assert "augmentation strength 1 against augmentation off" in html and "not larger than seed-to-seed noise" in html
    # The trial-by-trial sections keep to the search stage: its 3 trials in the L2 study's table.
    assert len(pd.read_csv(replicated / "analysis" / "l2_study.csv")) == 2
    # ... and their sentences say they are single runs, untested against seed noise (one in each study).
    assert html.count("single trials (the best of each setting), not means over seeds: their differences are not "
                      "tested against seed-to-seed noise.") == 2
    # The effect plots draw the search's single trials, and say where the confirm stage's intervals are.
    assert "The search trained one seed per configuration, so there are no error bars here" in html


def test_unloadable_best_checkpoint_is_reported_through_a_uri(experiment, data_dir, tmp_path):
    """A file:// URI takes the s3:// / gs:// path: files downloaded, outputs uploaded."""
    broken = broken_best_copy(experiment, tmp_path / "broken")
    location = build_report(broken.as_uri(), data_dir=str(data_dir))
    assert location == f"{broken.as_uri()}/analysis/summary.html"
    html = (broken / "analysis" / "summary.html").read_text()
    assert (broken / "analysis" / "leaderboard.csv").is_file()
    for key in ("feature-maps", "predictions"):
        body = html.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert "the best model is not available" in body and "could not load" in body, key
    assert "could not be built" not in html and not (broken / "analysis" / "confusion_matrix.csv").exists()
    assert (broken / "analysis" / "l2_study.csv").is_file()


def test_edge_of_the_search_space():
    tried = pd.Series([0.0, 1e-4, 1e-3, 1e-2])
    assert edge_position(tried, 0.0) == "smallest" and edge_position(tried, 1e-2) == "largest"
    assert edge_position(tried, 1e-3) is None
    assert edge_position(pd.Series([0.5, 0.5]), 0.5) is None  # one value tried: no range to be on the edge of


def test_zero_sits_left_of_the_log_axis():
    x, zero_at = plots.log_positions(np.array([0.0, 1e-4, 1e-2]))
    assert zero_at == pytest.approx(1e-4 / 10 ** 1.5) and x.tolist() == pytest.approx([zero_at, 1e-4, 1e-2])
    assert plots.log_positions(np.array([0.0, 0.0]))[1] is None


def test_a_trial_by_trial_comparison_says_its_figures_are_single_trials():
    one_seed = pd.DataFrame({"trial_id": ["a", "b"], "config_id": ["c1", "c2"]})
    assert "(the best of each setting), not means over seeds: their differences are not tested" in \
        single_trials_note(one_seed)
    assert "(the best of each setting)" in single_trials_note(one_seed.drop(columns="config_id"))  # before seeds
    replicated = pd.DataFrame({"trial_id": ["a", "b", "c"], "config_id": ["c1", "c1", "c2"]})
    assert "(the best of each setting, its seeds included), not means over seeds" in single_trials_note(replicated)


def test_l2_conclusion_follows_the_numbers():
    assert trend([3.0, 2.0, 1.0]) == "falls steadily" and trend([3.0, 4.0, 1.0]).startswith("falls overall")
    assert trend([1.0, 2.0]) == "rises steadily"
    group = L2Group("augmentation off", pd.DataFrame({
        "l2_conv": [0.0, 1e-3], "final_train_accuracy": [0.99, 0.95], "final_val_accuracy": [0.95, 0.94],
        "epochs_run": [5, 5]}), 2)
    text = conclusion(group, "l2_conv", [40.0, 10.0], "single seed (0)")
    assert "norm falls steadily (40 → 10)" in text and "gap falls steadily (+4.00 → +1.00 points)" in text
    assert "L2 both shrinks the weights and narrows the gap" in text
    text = conclusion(group, "l2_conv", [10.0, 40.0], "single seed (0)")
    assert "does not show L2 shrinking the weights" in text


def test_a_shared_top_is_called_a_tie():
    trials = pd.DataFrame({"trial_id": ["a", "b", "c"], "best_val_accuracy": [0.985, 0.985, 0.9]})
    note = tie_note(trials, 400)
    assert note.startswith("2 trials tie at the top validation accuracy of 98.50%: a, b.")
    assert "one validation image is 0.25 points" in note
    assert tie_note(trials.iloc[1:], 400) == ""


def test_table_cells_are_escaped_unless_built_here():
    html = page.table(["<th>"], [[SCRIPT], [page.badge("failed")]])
    assert "<script>" not in html and page.esc(SCRIPT) in html and "&lt;th&gt;" in html
    assert '<span class="badge badge-failed">failed</span>' in html


def _table_rows(html: str, table_id: str) -> list[str]:
    table = html.split(f'<table id="{table_id}">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[^>]*>.*?</tr>", table.split("<tbody>", 1)[1])


def _not_blank(png: Path) -> bool:
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    return pixels.shape[1] == 1280 and pixels.std() > 5
