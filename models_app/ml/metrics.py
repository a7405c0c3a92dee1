"""Evaluation of calibrated probabilities against true labels."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins,
    weighted by how many predictions fall in each."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


Z_95 = 1.959963984540054  # two-sided 95% normal quantile
BOOTSTRAP_RESAMPLES = 1000


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion: honest at small n and near 0 or 1,
    where the normal approximation gives intervals outside [0, 1] or of zero width."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def macro_f1_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """A 95% percentile-bootstrap interval of macro-F1 (over the classes present in each
    resample), all resamples counted at once from their confusion matrices."""
    n = len(y_true)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(resamples, n))
    codes = (y_true[rows] * n_classes + y_pred[rows]) + (
        np.arange(resamples)[:, None] * n_classes * n_classes
    )
    confusion = np.bincount(codes.ravel(), minlength=resamples * n_classes * n_classes).reshape(
        resamples, n_classes, n_classes
    )
    true_positive = np.diagonal(confusion, axis1=1, axis2=2).astype(np.float64)
    support = confusion.sum(axis=2)
    predicted = confusion.sum(axis=1)
    denominator = support + predicted
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    present = support > 0
    scores = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def evaluate(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict:
    """Accuracy, macro-F1 over the classes present in `y_true`, each with its 95%
    interval (Wilson for accuracy, bootstrap for macro-F1) since held-out sets are often
    small, per-class precision / recall / F1 / support, the confusion matrix (rows:
    truth) and the calibration error. Plain lists and floats, ready for JSON."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = proba.argmax(axis=1)
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = [c for c in labels if support[c] > 0]
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else None,
        "accuracy_ci": wilson_interval(int((y_true == y_pred).sum()), len(y_true)),
        "macro_f1": float(np.mean([f1[c] for c in present])) if present else None,
        "macro_f1_ci": macro_f1_interval(y_true, y_pred, n_classes),
        "per_class": [
            {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in labels
        ],
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "ece": expected_calibration_error(proba, y_true) if len(y_true) else None,
    }
