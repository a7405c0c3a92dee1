"""models_app.ml.metrics on hand-made predictions whose answers are worked out by hand
(or by a plain loop), so every figure the dashboard shows is pinned down."""

from __future__ import annotations

import numpy as np
import pytest

from models_app.ml.metrics import (
    evaluate,
    expected_calibration_error,
    macro_f1_interval,
    wilson_interval,
)


def rows(predicted: list[int], confidence: list[float], n_classes: int) -> np.ndarray:
    """Probabilities whose argmax is `predicted` with that `confidence`, the rest spread
    evenly over the other classes."""
    proba = np.zeros((len(predicted), n_classes))
    for i, (c, p) in enumerate(zip(predicted, confidence, strict=True)):
        proba[i] = (1 - p) / (n_classes - 1)
        proba[i, c] = p
    return proba


# Four classes: class 2 is in the truth but never predicted, class 3 in neither.
TRUTH = [0, 0, 0, 1, 1, 2]
PREDICTED = [0, 0, 1, 1, 1, 0]
# Each confidence in its own of the 15 bins, none on a bin edge (k / 15).
CONFIDENCE = [0.9, 0.85, 0.63, 0.7, 0.5, 0.45]


def test_evaluate_counts_every_figure_of_a_hand_made_case():
    result = evaluate(np.array(TRUTH), rows(PREDICTED, CONFIDENCE, 4), 4)
    assert result["n"] == 6
    assert result["accuracy"] == pytest.approx(4 / 6)
    # class 0: 2 right of 3 predicted, of 3 true; class 1: 2 of 3 predicted, of 2 true.
    expected = [
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3},
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2},
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    ]
    assert result["per_class"] == [
        {k: pytest.approx(v) if isinstance(v, float) else v for k, v in row.items()}
        for row in expected
    ]
    assert all(type(row["support"]) is int for row in result["per_class"])
    # Macro-F1 over the three classes present in the truth, not the absent fourth.
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert result["confusion"] == [
        [2, 1, 0, 0],
        [0, 2, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
    ]
    # One prediction a bin: the mean gap between confidence and being right.
    gaps = [0.1, 0.15, 0.63, 0.3, 0.5, 0.45]
    assert result["ece"] == pytest.approx(sum(gaps) / 6)
    assert result["accuracy_ci"] == pytest.approx(wilson_interval(4, 6))
    low, high = result["macro_f1_ci"]
    assert 0.0 <= low <= result["macro_f1"] <= high <= 1.0
    assert set(result) == {
        "n",
        "accuracy",
        "accuracy_ci",
        "macro_f1",
        "macro_f1_ci",
        "per_class",
        "confusion",
        "ece",
    }


def test_evaluate_takes_a_plain_list_of_labels():
    result = evaluate(TRUTH, rows(PREDICTED, CONFIDENCE, 4), 4)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["ece"] == pytest.approx(2.13 / 6)


def test_the_calibration_error_weighs_each_bin_by_its_share():
    # Two predictions in one bin (0.8667, 0.9333], one right: |0.5 - 0.91| for both.
    proba = rows([0, 0], [0.9, 0.92], 2)
    assert expected_calibration_error(proba, np.array([0, 1])) == pytest.approx(0.41)
    # Add a third, right at 0.7 (its own bin): (2/3) * 0.41 + (1/3) * 0.3.
    proba = rows([0, 0, 1], [0.9, 0.92, 0.7], 2)
    assert expected_calibration_error(proba, np.array([0, 1, 1])) == pytest.approx(
        2 / 3 * 0.41 + 1 / 3 * 0.3
    )


def test_bins_are_open_below_and_closed_above():
    # Two bins, (0, 0.5] and (0.5, 1]: a wrong 0.5 counts once, in the lower one.
    proba = np.array([[0.5, 0.5]])
    assert expected_calibration_error(proba, np.array([1]), bins=2) == pytest.approx(0.5)
    # A wrong certainty is in the top bin, whose upper edge is 1 itself.
    proba = np.array([[1.0, 0.0]])
    assert expected_calibration_error(proba, np.array([1])) == pytest.approx(1.0)
    # A right certainty has no gap at all.
    assert expected_calibration_error(proba, np.array([0])) == 0.0


def test_the_number_of_bins_decides_which_predictions_share_one():
    # 0.45 (right) and 0.95 (wrong): apart in 2 bins, together in 1.
    proba = rows([0, 0], [0.45, 0.95], 3)
    truth = np.array([0, 1])
    assert expected_calibration_error(proba, truth, bins=2) == pytest.approx(
        0.5 * 0.55 + 0.5 * 0.95
    )
    assert expected_calibration_error(proba, truth, bins=1) == pytest.approx(abs(0.5 - 0.7))


def test_wilson_intervals_match_the_published_figures():
    # 3 of 10 at 95%: (0.1078, 0.6032), as in Newcombe (1998) and every table since.
    low, high = wilson_interval(3, 10)
    assert (low, high) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    # All of 10: the lower bound is n / (n + z^2).
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(10 / (10 + 1.959963984540054**2))
    assert high == pytest.approx(1.0)
    # One of one is still an interval, not None.
    low, high = wilson_interval(1, 1)
    assert low == pytest.approx(1 / (1 + 1.959963984540054**2))
    # z = 1 for 5 of 10: centre 0.5, half-width sqrt(0.025 + 0.0025) / 1.1.
    low, high = wilson_interval(5, 10, z=1.0)
    half = np.sqrt(0.0275) / 1.1
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))


def test_wilson_intervals_stay_inside_zero_and_one_even_by_rounding():
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, -1) is None
    # Unclipped, all of 16 would reach 1 + 2e-16 and none of 21 -1e-17.
    for n in range(1, 100):
        low, high = wilson_interval(n, n)
        assert 0.0 < low < high <= 1.0
        assert high == pytest.approx(1.0)
        low, high = wilson_interval(0, n)
        assert 0.0 <= low < high < 1.0
        assert low == pytest.approx(0.0, abs=1e-12)


def _macro_f1(truth: list[int], predicted: list[int]) -> float:
    """F1 = 2TP / (2TP + FP + FN) of each class in `truth`, averaged: by hand."""
    scores = []
    for c in sorted(set(truth)):
        tp = sum(t == c and p == c for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != c and p == c for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == c and p != c for t, p in zip(truth, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def _bootstrap_by_hand(y_true, y_pred, resamples, seed):
    """The same resampled rows (numpy's generator from `seed`), each scored by
    `_macro_f1`; the 2.5th and 97.5th percentiles."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(y_true), size=(resamples, len(y_true)))
    scores = [_macro_f1(y_true[d].tolist(), y_pred[d].tolist()) for d in draws]
    return tuple(np.percentile(scores, [2.5, 97.5]))


@pytest.mark.parametrize(
    ("truth", "predicted", "n_classes"),
    [
        ([0, 0, 1], [0, 1, 1], 2),  # so few that many resamples hold one class
        ([0, 0, 1, 1, 2, 2, 2, 0], [0, 1, 1, 1, 2, 0, 2, 2], 4),  # class 3 never appears
        ([1, 0], [1, 1], 2),  # two labels are enough for an interval
    ],
)
def test_the_macro_f1_bootstrap_scores_each_resample_as_by_hand(truth, predicted, n_classes):
    y_true, y_pred = np.array(truth), np.array(predicted)
    expected = _bootstrap_by_hand(y_true, y_pred, 200, 0)
    assert macro_f1_interval(y_true, y_pred, n_classes, resamples=200) == pytest.approx(expected)
    expected = _bootstrap_by_hand(y_true, y_pred, 100, 7)
    assert macro_f1_interval(y_true, y_pred, n_classes, resamples=100, seed=7) == pytest.approx(
        expected
    )


def test_one_label_gives_no_macro_f1_interval():
    assert macro_f1_interval(np.array([1]), np.array([1]), 2) is None
    assert macro_f1_interval(np.array([], dtype=int), np.array([], dtype=int), 2) is None
