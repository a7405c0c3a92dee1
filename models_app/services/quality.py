"""Label quality for the review, the learner's side of it: out-of-sample scores of every
label (a class, or each saved tag state), near-duplicate pairs and nearest neighbours,
from stored embeddings. The feedback app reaches the numeric code (models_app.ml.quality
and models_app.ml.tag_quality) only through here."""

from __future__ import annotations

import numpy as np

from models_app.ml.quality import (
    LabelQuality,
    cross_val_proba,
    label_quality,
    near_duplicate_pairs,
    nearest,
)
from models_app.ml.tag_quality import TagLabelQuality, cross_val_tag_proba, tag_label_quality
from models_app.services.embeddings import backbone_load


def label_scores(
    *, x: np.ndarray, y: np.ndarray, n_classes: int, folds: int, seed: int
) -> LabelQuality:
    """Every label scored by a head that never saw it (`folds`-fold cross-validation),
    with confident learning's verdict and the class it would rather have."""
    proba = cross_val_proba(
        x, y, n_classes, folds=folds, seed=seed, device=str(backbone_load().device)
    )
    return label_quality(y, proba)


def tag_label_scores(*, x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> TagLabelQuality:
    """Every saved tag state of `y` (images x tags: 1 present, 0 absent, NaN not saved)
    scored by tag heads that never saw its image (`folds`-fold cross-validation), with
    cleanlab's multi-label score per image and its issue flag per tag."""
    proba = cross_val_tag_proba(x, y, folds=folds, seed=seed, device=str(backbone_load().device))
    return tag_label_quality(y, proba)


def near_duplicates(*, x: np.ndarray, similarity: float) -> list[tuple[int, int, float]]:
    """Row pairs (i < j) of `x` whose cosine similarity is at least `similarity`."""
    return near_duplicate_pairs(x, similarity=similarity)


def nearest_neighbours(*, queries: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's most similar row of `x` (cosine) and that similarity; -1 and 0 when
    `x` is empty."""
    return nearest(queries, x)
