"""models_app.ml.quality on hand-made vectors and probabilities: near-duplicates,
nearest neighbours, label quality and out-of-sample probabilities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from models_app.ml.head import feature_stats, predict_proba, train_head
from models_app.ml.quality import cross_val_proba, label_quality, near_duplicate_pairs, nearest

VECTORS = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.0, 0.0]])
SHORT = np.array([[0.3, 0.0], [0.0, 0.2], [0.06, 0.08]])  # the same directions, shorter


@pytest.mark.parametrize("chunk", [512, 1, 2])
def test_near_duplicates_are_pairs_at_or_above_the_cosine_similarity(chunk):
    # cos(0, 1) = 1, cos(2, 3) = 0.8, cos(0, 3) = 0.6; the zero vector is like nothing.
    pairs = near_duplicate_pairs(VECTORS, similarity=0.7, chunk=chunk)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (2, 3)]
    assert [s for _, _, s in pairs] == pytest.approx([1.0, 0.8], abs=1e-6)
    assert all(type(s) is float for _, _, s in pairs)
    at = near_duplicate_pairs(VECTORS, similarity=0.6, chunk=chunk)
    assert sorted((i, j) for i, j, _ in at) == [(0, 1), (0, 3), (1, 3), (2, 3)]
    assert near_duplicate_pairs(VECTORS[:0], similarity=0.5, chunk=chunk) == []
    # Length does not matter, only direction.
    short = near_duplicate_pairs(np.vstack([VECTORS[:1], SHORT]), similarity=0.99, chunk=chunk)
    assert [(i, j) for i, j, _ in short] == [(0, 1)]


def test_nearest_is_the_most_similar_row_by_cosine():
    queries = np.array([[3.0, 0.1], [0.1, 5.0], [1.0, 1.0]])
    best, similarity = nearest(queries, VECTORS[[2, 3, 1]])
    assert best.tolist() == [2, 0, 1]
    expected = [
        3.0 / np.hypot(3.0, 0.1),
        5.0 / np.hypot(0.1, 5.0),
        (0.6 + 0.8) / np.sqrt(2),
    ]
    assert similarity == pytest.approx(expected, abs=1e-6)
    assert similarity.dtype == np.float32
    # Rows shorter than 1 are compared by direction too, not by length.
    best, similarity = nearest(np.array([[1.0, 0.0]]), np.array([[0.1, 0.0], [0.6, 0.6]]))
    assert (best.tolist(), similarity.tolist()) == ([0], [pytest.approx(1.0)])
    best, similarity = nearest(queries, np.zeros((0, 2)))
    assert best.tolist() == [-1, -1, -1]
    assert similarity.tolist() == [0.0, 0.0, 0.0]
    assert similarity.dtype == np.float32


def test_nearest_ignores_length_and_zero_vectors_match_nothing():
    # Short queries and rows point the same ways as long ones.
    best, similarity = nearest(SHORT, np.vstack([np.zeros((1, 2)), VECTORS[[2, 3, 1]]]))
    assert best.tolist() == [3, 1, 2]
    assert similarity == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    # A zero query is like nothing: similarity 0, not NaN.
    best, similarity = nearest(np.zeros((1, 2)), VECTORS[:2])
    assert similarity.tolist() == [0.0]


def test_label_quality_is_the_probability_of_the_given_label_among_classes_in_use():
    # Class 1 has no example: its column is left out and the rest renormalised.
    y = np.array([0, 0, 2, 2])
    proba = np.array(
        [[0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.7, 0.1, 0.2]], dtype=np.float32
    )
    result = label_quality(y, proba)
    assert result.quality == pytest.approx([0.8 / 0.9, 0.6 / 0.8, 0.8 / 0.9, 0.2 / 0.9], abs=1e-6)
    assert result.quality.dtype == np.float32
    assert result.suggested.tolist() == [0, 0, 2, 0]
    assert result.suggested_proba == pytest.approx([0.8, 0.6, 0.8, 0.7])


def test_a_label_with_no_probability_among_classes_in_use_has_quality_zero():
    y = np.array([0, 2])
    proba = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    result = label_quality(y, proba)
    assert result.quality.tolist() == [0.0, 1.0]


def test_a_confidently_contradicted_label_is_an_issue_and_agreeing_ones_are_not():
    y = np.array([0] * 10 + [1] * 10 + [0])
    proba = np.array([[0.9, 0.1]] * 10 + [[0.1, 0.9]] * 10 + [[0.05, 0.95]], dtype=np.float32)
    result = label_quality(y, proba)
    assert result.is_issue.dtype == bool
    assert result.is_issue.tolist() == [False] * 20 + [True]
    assert result.suggested[-1] == 1


def test_an_issue_is_a_label_its_own_row_disputes():
    # The largest probability of all sits in row 0, column 0: a label 0 disputed in
    # another row is still an issue (the dispute is read row by row).
    y = np.array([0] * 11 + [1] * 10 + [0])
    proba = np.array(
        [[0.99, 0.01]] + [[0.9, 0.1]] * 10 + [[0.1, 0.9]] * 10 + [[0.05, 0.95]], dtype=np.float32
    )
    assert label_quality(y, proba).is_issue.tolist() == [False] * 21 + [True]


def test_one_class_in_use_has_no_issues():
    y = np.array([1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]], dtype=np.float32)
    result = label_quality(y, proba)
    assert result.quality.tolist() == [1.0, 1.0, 1.0]
    # Its prediction differs from the label, but a single class cannot be disputed.
    assert result.is_issue.tolist() == [False, False, False]
    assert result.suggested.tolist() == [1, 0, 0]


def groups_with_a_wrong_label():
    rng = np.random.default_rng(0)
    a = np.array([1.0, 0.0, 0.0]) + rng.normal(0, 0.05, (10, 3))
    b = np.array([0.0, 1.0, 0.0]) + rng.normal(0, 0.05, (10, 3))
    x = np.vstack([a, b]).astype(np.float32)
    y = np.array([0] * 10 + [1] * 10)
    y[3] = 1  # a point of the first group, labeled as the second
    return x, y


def test_out_of_sample_probabilities_come_from_heads_that_never_saw_the_label():
    x, y = groups_with_a_wrong_label()
    proba = cross_val_proba(x, y, 2)
    assert proba.shape == (20, 2)
    assert proba.dtype == np.float32
    assert proba.sum(axis=1) == pytest.approx(np.ones(20), abs=1e-5)
    # Its own (wrong) label never trained the head that scored it: it looks like its group.
    assert proba[3].argmax() == 0
    right = np.delete(np.arange(20), 3)
    assert (proba[right].argmax(axis=1) == y[right]).all()


def test_out_of_sample_heads_are_strongly_regularised():
    x, y = groups_with_a_wrong_label()
    strong = cross_val_proba(x, y, 2)
    weak = cross_val_proba(x, y, 2, weight_decay=1e-3)
    assert strong.max(axis=1).mean() < weak.max(axis=1).mean()
    assert cross_val_proba(x, y, 2, seed=1).tolist() != strong.tolist()


def test_folds_are_clipped_to_the_smallest_class():
    x, y = groups_with_a_wrong_label()
    # Two examples of class 2: at most two folds, and every row is still scored.
    x = np.vstack([x, [[0.0, 0.0, 1.0], [0.0, 0.05, 1.0]]]).astype(np.float32)
    y = np.append(y, [2, 2])
    proba = cross_val_proba(x, y, 3, folds=5)
    assert (proba.sum(axis=1) > 0.99).all()


def _documented_steps(x, y, n_classes, folds, seed):
    """cross_val_proba's docstring by hand: stratified folds shuffled by the seed, one
    head a fold (weight decay 10, the whole set's feature statistics, the seed), each
    scoring the fold it never saw."""
    proba = np.zeros((len(y), n_classes), dtype=np.float32)
    stats = feature_stats(x)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class of one, on purpose
        parts = list(splitter.split(x, y))
    for train, held in parts:
        head = train_head(x[train], y[train], n_classes, seed=seed, stats=stats, weight_decay=10.0)
        proba[held] = predict_proba(head, x[held])
    return proba


@pytest.mark.parametrize(
    "sizes, n_classes, folds",
    [
        ((6, 7), 3, 5),  # five folds unless told; the absent third class changes nothing
        ((2, 7), 2, 2),  # no more folds than the smallest class has examples
        ((1, 6), 2, 2),  # a class of one: still two folds
    ],
)
def test_out_of_sample_probabilities_follow_the_documented_steps(sizes, n_classes, folds):
    rng = np.random.default_rng(sum(sizes))
    x = np.vstack([np.eye(3)[c] + rng.normal(0, 0.3, (n, 3)) for c, n in enumerate(sizes)])
    x = x.astype(np.float32)
    y = np.repeat(np.arange(len(sizes)), sizes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        got = cross_val_proba(x, y, n_classes, seed=3)
    np.testing.assert_allclose(got, _documented_steps(x, y, n_classes, folds, seed=3), atol=1e-6)
