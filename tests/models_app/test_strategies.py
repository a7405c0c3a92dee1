"""Query strategies on data whose right answer is known."""

from __future__ import annotations

import numpy as np

from models_app.ml import strategies
from models_app.ml.head import predict_proba, train_head, train_head_self


def blobs(sizes, dim=16, spread=0.05, seed=0):
    """Gaussian clusters around random unit directions; returns points and cluster ids."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim))
    points, ids = [], []
    for c, size in enumerate(sizes):
        points.append(centres[c] + spread * rng.standard_normal((size, dim)))
        ids += [c] * size
    return np.vstack(points).astype(np.float32), np.array(ids)


def test_uncertainty_orders():
    proba = np.array([[0.98, 0.01, 0.01], [0.5, 0.49, 0.01], [0.34, 0.33, 0.33], [0.6, 0.2, 0.2]])
    assert np.argsort(-strategies.least_confidence(proba)).tolist() == [2, 1, 3, 0]
    assert set(np.argsort(-strategies.margin(proba))[:2].tolist()) == {1, 2}  # both 0.01 apart
    assert np.argmax(strategies.entropy(proba)) == 2
    assert np.isclose(strategies.entropy(proba)[2], 1.0, atol=1e-3)
    # Margin prefers the two-way tie over the flatter but decided row.
    assert strategies.margin(proba)[1] > strategies.margin(proba)[3]


def test_typiclust_covers_every_cluster_with_typical_points():
    x, ids = blobs([300, 150, 80, 40, 20])
    outliers = np.random.default_rng(1).standard_normal((10, x.shape[1])).astype(np.float32) * 3
    x = np.vstack([x, outliers])
    ids = np.concatenate([ids, np.full(10, -1)])
    priority = strategies.typiclust(x, np.zeros(len(x), bool), budget=5)
    picks = np.argsort(-priority)[:5]
    assert sorted(ids[picks].tolist()) == [0, 1, 2, 3, 4]  # one per cluster, no outlier
    # Random picks of 5 almost never cover all five clusters of these sizes.
    rng = np.random.default_rng(0)
    covered = [len(set(ids[rng.choice(len(x), 5, replace=False)]) - {-1}) for _ in range(200)]
    assert np.mean([c == 5 for c in covered]) < 0.1


def test_typiclust_skips_clusters_already_labeled():
    x, ids = blobs([100, 100, 100])
    labeled = np.zeros(len(x), bool)
    labeled[np.flatnonzero(ids == 0)[:3]] = True
    priority = strategies.typiclust(x, labeled, budget=2)
    assert np.isneginf(priority[labeled]).all()
    assert sorted(ids[np.argsort(-priority)[:2]].tolist()) == [1, 2]


def test_cluster_margin_spreads_a_batch_across_confusions():
    x, ids = blobs([60, 60, 60])
    proba = np.tile([0.9, 0.1], (len(x), 1))
    # The first blob is slightly more uncertain than the second; the third is sure.
    proba[ids == 0] = [0.51, 0.49]
    proba[ids == 1] = [0.53, 0.47]
    by_margin = np.argsort(-strategies.margin(proba))[:4]
    assert set(ids[by_margin]) == {0}
    batch = np.argsort(-strategies.cluster_margin(proba, x, batch_size=4, candidates=30))[:4]
    assert set(ids[batch]) == {0, 1}


def test_auto_starts_cold_then_turns_to_uncertain_batches():
    x, _ = blobs([20, 20, 20])
    labeled = np.zeros(len(x), bool)
    cold = strategies.rank("auto", embeddings=x, labeled=labeled, n_classes=3, batch_size=4)
    assert (cold > 1.0).sum() == 4  # TypiClust's picks rank above everything else
    labeled[::4] = True  # five labels per class: the model's doubts take over
    proba = np.tile([0.9, 0.05, 0.05], (len(x), 1))
    proba[41] = [0.5, 0.5, 0.0]
    warm = strategies.rank(
        "auto", embeddings=x, labeled=labeled, proba=proba, n_classes=3, batch_size=4
    )
    assert np.argmax(warm) == 41


def test_self_training_learns_from_the_unlabeled_pool():
    """One label per class, each the point of its class nearest the other class: alone
    they place the boundary badly; the unlabeled pool shows where the classes lie."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((2, 16))
    a = centres[0] + rng.normal(0, 0.6, (200, 16))
    b = centres[1] + rng.normal(0, 0.6, (200, 16))
    pool = np.concatenate([a, b]).astype(np.float32)
    truth = np.repeat([0, 1], 200)
    nearest_a = a[np.linalg.norm(a - centres[1], axis=1).argmin()]
    nearest_b = b[np.linalg.norm(b - centres[0], axis=1).argmin()]
    x_train, y_train = np.stack([nearest_a, nearest_b]).astype(np.float32), np.array([0, 1])

    def accuracy(head):
        return (predict_proba(head, pool).argmax(axis=1) == truth).mean()

    assert accuracy(train_head(x_train, y_train, 2)) < 0.8
    assert accuracy(train_head_self(x_train, y_train, 2, x_pool=pool)) > 0.95
