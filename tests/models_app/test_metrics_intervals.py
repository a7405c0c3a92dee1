"""Held-out figures carry their uncertainty: a Wilson interval for accuracy and a
bootstrap interval for macro-F1, both in every evaluation."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from models_app.ml.metrics import evaluate, macro_f1_interval, wilson_interval


def one_hot(labels, n):
    return np.eye(n, dtype=np.float32)[labels]


def test_the_wilson_interval_of_ten_out_of_ten_is_wide_and_inside_zero_one():
    low, high = wilson_interval(10, 10)
    assert 0.70 < low < 0.73 and high > 0.9999
    # The textbook figure: 8 of 10 gives about 0.49 to 0.94.
    low, high = wilson_interval(8, 10)
    assert abs(low - 0.490) < 0.005 and abs(high - 0.943) < 0.005
    assert wilson_interval(0, 0) is None


def test_intervals_shrink_as_the_held_out_set_grows_and_cover_the_truth():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 40, 400):
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)  # 70% accurate
        metrics = evaluate(y, one_hot(pred, 3), 3)
        low, high = metrics["accuracy_ci"]
        assert low <= metrics["accuracy"] <= high
        f1_low, f1_high = metrics["macro_f1_ci"]
        assert f1_low <= metrics["macro_f1"] <= f1_high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.1 < widths[0]


def test_the_bootstrap_counts_macro_f1_as_sklearn_does():
    y = np.array([0, 0, 1, 1, 2, 2])
    # Perfect predictions: every resample scores 1; one label is too few to resample.
    assert macro_f1_interval(y, y, 3) == (1.0, 1.0)
    assert macro_f1_interval(y[:1], y[:1], 3) is None
    # Its resamples centre on sklearn's macro-F1 (classes present in the truth).
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 2000)
    pred = np.where(rng.random(2000) < 0.6, truth, rng.integers(0, 4, 2000))
    expected = f1_score(truth, pred, average="macro")
    low, high = macro_f1_interval(truth, pred, 4)
    assert low < expected < high and high - low < 0.06
