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


def evaluate(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict:
    """Accuracy, macro-F1 over the classes present in `y_true`, per-class precision /
    recall / F1 / support, the confusion matrix (rows: truth) and the calibration error.
    Plain lists and floats, ready for JSON."""
    y_true = np.asarray(y_true)
    y_pred = proba.argmax(axis=1)
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = [c for c in labels if support[c] > 0]
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else None,
        "macro_f1": float(np.mean([f1[c] for c in present])) if present else None,
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
