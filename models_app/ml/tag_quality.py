"""Label quality of tags (multi-label projects): every image's tag probabilities from
tag heads that never saw it, and cleanlab's multi-label scores and issue flags for each
saved tag state. Pure numpy / torch; no Django.

A tag matrix `y` is float (N, T): 1 present, 0 absent, NaN not looked at. Only saved
states (1 or 0) are scored or flagged; a NaN entry is never taken for "absent".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
from cleanlab.multilabel_classification.rank import get_label_quality_scores
from sklearn.model_selection import KFold, StratifiedKFold

from models_app.ml.head import feature_stats
from models_app.ml.multilabel import predict_tag_proba, tag_matrix_check, train_tag_head


def _fold_key(y: np.ndarray) -> np.ndarray:
    """Per image, its rarest present tag (T for none): stratifying on it spreads every
    tag's few positives over the folds, so each training part still holds some."""
    positives = np.nansum(y, axis=0)
    key = np.full(len(y), y.shape[1], dtype=np.int64)
    rarity = np.argsort(positives, kind="stable")[::-1]  # commonest first, rarest last wins
    for t in rarity:
        key[y[:, t] == 1] = t
    return key


def cross_val_tag_proba(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    device: str = "cpu",
    weight_decay: float | None = None,
) -> np.ndarray:
    """Every image's tag probabilities (N, T) from a tag head trained on the other
    `folds` - 1 parts (`train_tag_head` on their saved states, its default penalty),
    as cleanlab needs. Folds are stratified by each image's rarest present tag where
    every stratum can be split, else drawn at random; at least 2, at most N. The
    features are standardised with the statistics of all rows (no labels in them)."""
    x = np.asarray(x, dtype=np.float32)
    y = tag_matrix_check(y, len(x))
    folds = max(2, min(folds, len(y)))
    key = _fold_key(y)
    counts = np.bincount(key)
    if counts[counts > 0].min() >= folds:
        parts = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, key)
    else:
        parts = KFold(n_splits=folds, shuffle=True, random_state=seed).split(x)
    stats = feature_stats(x)
    proba = np.zeros(y.shape, dtype=np.float32)
    for train, held in parts:
        head = train_tag_head(
            x[train], y[train], stats=stats, device=device, weight_decay=weight_decay
        )
        proba[held] = predict_tag_proba(head, x[held], device=device)
    return proba


@dataclass(frozen=True)
class TagLabelQuality:
    """Per image: `quality` in [0, 1] (cleanlab's multi-label score over its saved tags;
    low: some tag is suspect; 1 with none saved) and `is_issue` (some tag flagged). Per
    image and tag: `tag_quality`, the out-of-sample probability of the saved state (p
    if saved present, 1 - p if absent; NaN where not saved), `tag_issue` (confident
    learning flags that state) and `proba`, the probability that the tag is present."""

    quality: np.ndarray
    is_issue: np.ndarray
    tag_quality: np.ndarray
    tag_issue: np.ndarray
    proba: np.ndarray


def tag_label_quality(y: np.ndarray, proba: np.ndarray) -> TagLabelQuality:
    """Score every saved tag state of `y` against out-of-sample `proba` with cleanlab's
    multi-label tools, reading only the saved entries.

    cleanlab's multi-label functions take each image's full list of present tags, so
    absence is implied for the rest. Here a tag may be unsaved on some images, so:
    - an image's score is `multilabel_classification.get_label_quality_scores`
      (self-confidence per tag, exponential moving average over tags) on the tags saved
      on it, images with the same saved tags scored together;
    - a tag's issues are `find_multilabel_issues_per_class` (confident learning's
      prune-by-noise-rate, one-vs-rest) on the images where that tag is saved, so its
      noise rates come from saved states only. A tag needs both kinds of state to be
      flagged, and only states the model disputes (self-confidence under 0.5) count as
      issues, as for single-label projects.
    """
    y = tag_matrix_check(y)
    proba = np.asarray(proba, dtype=np.float32).reshape(y.shape)
    known = ~np.isnan(y)
    n, n_tags = y.shape
    tag_quality = np.where(known, np.where(y == 1, proba, 1.0 - proba), np.nan).astype(np.float32)
    tag_issue = np.zeros((n, n_tags), dtype=bool)
    for t in range(n_tags):
        rows = np.flatnonzero(known[:, t])
        saved = y[rows, t]
        if not ((saved == 1).any() and (saved == 0).any()):
            continue
        labels = [[0] if s == 1 else [] for s in saved]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cleanlab warns about small classes
            # n_jobs=1: a process pool cannot start in django-q2's daemonic workers.
            flagged = find_multilabel_issues_per_class(
                labels, proba[rows, t : t + 1], filter_by="prune_by_noise_rate", n_jobs=1
            )
        tag_issue[rows, t] = np.asarray(flagged, dtype=bool)[:, 0]
    tag_issue &= known & (np.nan_to_num(tag_quality, nan=1.0) < 0.5)

    quality = np.ones(n, dtype=np.float32)
    patterns: dict[bytes, list[int]] = {}
    for i in range(n):
        if known[i].any():
            patterns.setdefault(known[i].tobytes(), []).append(i)
    for members in patterns.values():
        rows = np.asarray(members)
        cols = np.flatnonzero(known[rows[0]])
        labels = [np.flatnonzero(y[i, cols] == 1).tolist() for i in rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quality[rows] = get_label_quality_scores(labels, proba[np.ix_(rows, cols)])
    return TagLabelQuality(
        quality=quality,
        is_issue=tag_issue.any(axis=1),
        tag_quality=tag_quality,
        tag_issue=tag_issue,
        proba=proba,
    )
