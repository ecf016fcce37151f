"""Section 6, classification examples: the best model on the test set, with its right and wrong answers,
its confusion matrix and its accuracy per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnn.data import Dataset, unit_float

from analysis import page, plots
from analysis.checkpoints import LoadedModel
from analysis.page import Section

EXAMPLES_PER_ROW = 8
TITLE = "6. Classification examples"


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    images = matrix.sum(axis=1)
    correct = np.diag(matrix)
    off_diagonal = matrix - np.diag(correct)
    confused = [class_names[int(np.argmax(row))] if row.max() > 0 else "" for row in off_diagonal]
    return pd.DataFrame({"class": class_names, "test_images": images, "correct": correct,
                         "accuracy": np.where(images > 0, correct / np.maximum(images, 1), np.nan),
                         "most_often_predicted_instead": confused})


def section(best: LoadedModel | None, data: Dataset | None, data_error: str, recorded_accuracy: float,
            out: Path, context: str) -> Section:
    if best is None or best.model is None:
        reason = best.error if best is not None else "there is no best trial"
        return Section("predictions", TITLE, page.unavailable(
            f"No classification examples: the best model is not available ({reason})."))
    if data is None:
        return Section("predictions", TITLE, page.unavailable(f"No classification examples: {data_error}"))
    probabilities = best.model.predict(unit_float(data.x_test), batch_size=256, verbose=0)
    predicted, true = probabilities.argmax(axis=1), data.y_test.argmax(axis=1)
    matrix = confusion_matrix(true, predicted, data.num_classes)
    per_class = per_class_accuracy(matrix, data.class_names)
    pd.DataFrame(matrix, index=pd.Index(data.class_names, name="true \\ predicted"),
                 columns=data.class_names).to_csv(out / "confusion_matrix.csv")
    per_class.to_csv(out / "per_class_accuracy.csv", index=False)

    accuracy = float((predicted == true).mean())
    parts: list[Any] = [page.paragraph(
        f"Best model: trial {best.trial_id}. Test accuracy recomputed from its checkpoint on the "
        f"{len(true):,} test images: {page.pct(accuracy)} ({int((predicted == true).sum()):,} correct, "
        f"{int((predicted != true).sum()):,} wrong); trials.csv records {page.pct(recorded_accuracy)} for this "
        "trial's best epoch.")]
    if np.isfinite(recorded_accuracy) and abs(accuracy - recorded_accuracy) > 1.5 / len(true):
        parts.append(page.warning("the recomputed test accuracy differs from the recorded one: the checkpoint or the "
                                  "test images may not be the ones the sweep used."))
    parts.append(page.figure(plot_examples(data, true, predicted, out), "correctly and wrongly classified test images",
                             "Top row: the first correctly classified test images; bottom row: the first "
                             "misclassified ones, in test-set order.", context))
    parts.append(page.figure(plot_confusion(matrix, data.class_names, out), "confusion matrix",
                             "Confusion matrix of the best model on the test set (counts).", context))
    parts.append(page.heading("Accuracy per class"))
    parts.append(page.table(["class", "test images", "correct", "accuracy", "most often predicted instead"],
                            [[r["class"], r["test_images"], r["correct"], page.pct(r["accuracy"]),
                              r["most_often_predicted_instead"] or "–"] for r in per_class.to_dict("records")],
                            table_id="per-class-accuracy"))
    return Section("predictions", TITLE, page.join(parts))


def plot_examples(data: Dataset, true: np.ndarray, predicted: np.ndarray, out: Path) -> Path:
    right = np.flatnonzero(predicted == true)[:EXAMPLES_PER_ROW]
    wrong = np.flatnonzero(predicted != true)[:EXAMPLES_PER_ROW]
    fig, axes = plots.new_figure(1.45 * EXAMPLES_PER_ROW, 3.9, ncols=EXAMPLES_PER_ROW, nrows=2)
    for row, (indices, verdict) in enumerate(((right, "correct"), (wrong, "wrong"))):
        for column, ax in enumerate(axes[row]):
            if column >= len(indices):
                ax.axis("off")
                if column == 0:
                    ax.text(0, 0.5, f"no {verdict} predictions", transform=ax.transAxes, fontsize=9)
                continue
            i = indices[column]
            plots.show_image(ax, unit_float(data.x_test[i]))
            ax.set_title(example_title(data.class_names[true[i]], data.class_names[predicted[i]]), fontsize=9,
                         color="#1d6b34" if verdict == "correct" else "#c0392b")
    fig.suptitle("Top: correctly classified test images · bottom: misclassified", fontsize=10)
    return plots.save(fig, out, "classification_examples")


def example_title(true: str, predicted: str) -> str:
    title = f"true: {plots.plain(true)} / pred: {plots.plain(predicted)}"
    # Long class names (fashion_mnist, cifar10) would run into the next image: two lines.
    return title if len(title) <= 20 else f"true: {plots.plain(true)} /\npred: {plots.plain(predicted)}"


def plot_confusion(matrix: np.ndarray, class_names: list[str], out: Path) -> Path:
    size = max(4.5, 0.4 * len(class_names) + 1.5)
    fig, axes = plots.new_figure(size + 1.2, size)
    ax = axes[0, 0]
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="test images (count)", shrink=0.8)
    ticks = np.arange(len(class_names))
    names = [plots.plain(n) for n in class_names]
    long_names = max(map(len, names)) > 3
    ax.set_xticks(ticks, names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(ticks, names)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (r, c), count in np.ndenumerate(matrix):
        if count:
            ax.text(c, r, str(count), ha="center", va="center", fontsize=8,
                    color="white" if count > threshold else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix, best model, test set")
    return plots.save(fig, out, "confusion_matrix")
