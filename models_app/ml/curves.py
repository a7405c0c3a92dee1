"""ROC and precision-recall curves of a binary decision (a two-class project, or a
one-tag project), with the operating point of its threshold. Plain lists for JSON."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from models_app.ml.metrics import wilson_interval

# A stored curve keeps at most this many points: enough to draw, small in the JSON.
MAX_POINTS = 101


def _thinned(xs: np.ndarray, ys: np.ndarray) -> list[list[float]]:
    """At most MAX_POINTS points of the curve, evenly spaced along it, the ends kept."""
    keep = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), MAX_POINTS)).round().astype(int))
    return [[round(float(xs[i]), 4), round(float(ys[i]), 4)] for i in keep]


def binary_curves(truth: np.ndarray, score: np.ndarray, threshold: float) -> dict | None:
    """The ROC curve (false positive rate, true positive rate) and the precision-recall
    curve (recall, precision) of `score` for the positives in `truth`, their areas (ROC
    AUC; average precision, the step-wise area), and what the decision `score >=
    threshold` gives: its rates with Wilson 95% intervals, since held-out sets are
    often small, and its counts. None when `truth` lacks positives or negatives: then
    neither curve is defined."""
    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return None
    fpr, tpr, _ = roc_curve(truth, score)
    precision, recall, _ = precision_recall_curve(truth, score)
    decided = score >= threshold
    tp = int((decided & truth).sum())
    fp = int((decided & ~truth).sum())
    return {
        "positives": positives,
        "negatives": negatives,
        "threshold": float(threshold),
        "roc": _thinned(fpr, tpr),
        "roc_auc": float(auc(fpr, tpr)),
        # precision_recall_curve runs from high recall to low; drawn left to right.
        "pr": _thinned(recall[::-1], precision[::-1]),
        "average_precision": float(average_precision_score(truth, score)),
        "at_threshold": {
            "tp": tp,
            "fp": fp,
            "fn": positives - tp,
            "tn": negatives - fp,
            "tpr": tp / positives,
            "tpr_ci": wilson_interval(tp, positives),
            "fpr": fp / negatives,
            "fpr_ci": wilson_interval(fp, negatives),
            "precision": tp / (tp + fp) if tp + fp else None,
            "precision_ci": wilson_interval(tp, tp + fp),
        },
    }
