"""Server-rendered SVG charts (matplotlib), embedded inline in the dashboard."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the non-GUI backend

from models_app.models import STRATEGY_CHOICES  # noqa: E402
from models_app.selectors import CurvePoint  # noqa: E402

plt.rcParams["svg.fonttype"] = "none"  # text stays text: selectable, searchable, smaller
STRATEGY_NAMES = dict(STRATEGY_CHOICES)


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue for inline use


def confusion_svg(matrix: list[list[int]], names: list[str]) -> str:
    size = max(3.5, 0.55 * len(names) + 1.5)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    peak = max((max(row) for row in matrix), default=0) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            colour = "white" if value > peak / 2 else "black"
            axes.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046)
    return _svg(figure)


def learning_curve_svg(points: list[CurvePoint], measure: str = "test accuracy") -> str:
    """Accuracy (or `measure`: a tag project's curve is of mean AP) against labels, a
    line per query strategy that chose the labels."""
    figure, axes = plt.subplots(figsize=(5.5, 3.2))
    strategies = list(dict.fromkeys(p.strategy for p in points))
    for strategy in strategies:
        mine = [p for p in points if p.strategy == strategy]
        axes.plot(
            [p.labels for p in mine],
            [p.accuracy for p in mine],
            marker="o",
            label=STRATEGY_NAMES.get(strategy, strategy or "unrecorded"),
        )
    for p in points:
        axes.annotate(
            f"v{p.version}",
            (p.labels, p.accuracy),
            textcoords="offset points",
            xytext=(3, 5),
            fontsize=8,
        )
    axes.set_xlabel("labels")
    axes.set_ylabel(measure)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right", title="labels chosen by", title_fontsize=7)
    return _svg(figure)


def binary_curves_svg(curves: dict, positive: str) -> str:
    """The ROC and precision-recall curves side by side, the threshold's point marked."""
    figure, (roc, pr) = plt.subplots(1, 2, figsize=(7.5, 3.4))
    at = curves["at_threshold"]
    xs, ys = zip(*curves["roc"], strict=True)
    roc.plot(xs, ys, color="C0")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc.plot(
        [at["fpr"]], [at["tpr"]], "o", color="C3", label=f"threshold {curves['threshold']:.2f}"
    )
    roc.set_title(f"ROC, AUC {curves['roc_auc']:.3f}", fontsize=9)
    roc.set_xlabel("false positive rate")
    roc.set_ylabel(f"true positive rate ({positive})")
    xs, ys = zip(*curves["pr"], strict=True)
    pr.step(xs, ys, where="post", color="C0")
    share = curves["positives"] / (curves["positives"] + curves["negatives"])
    pr.axhline(share, color="grey", linestyle=":", linewidth=1)
    if at["precision"] is not None:
        pr.plot([at["tpr"]], [at["precision"]], "o", color="C3")
    pr.set_title(f"Precision-recall, AP {curves['average_precision']:.3f}", fontsize=9)
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    for axes in (roc, pr):
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(-0.02, 1.02)
        axes.grid(alpha=0.3)
    roc.legend(fontsize=7, loc="lower right")
    return _svg(figure)
