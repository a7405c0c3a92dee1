"""Query strategies on hand-made data whose right answer is known beforehand."""

from __future__ import annotations

import numpy as np
import pytest

from models_app.ml import strategies
from models_app.ml.head import predict_proba, train_head, train_head_self

# Five hand-made predictions over three classes, with their two likeliest classes'
# gap worked out by hand: 0.5, 0.01, 0.05, 0.85, 0.1.
PROBA = np.array(
    [
        [0.70, 0.20, 0.10],
        [0.45, 0.44, 0.11],
        [0.40, 0.35, 0.25],
        [0.90, 0.05, 0.05],
        [0.30, 0.30, 0.40],
    ]
)


def separated_clusters(sizes, dim=8, noise=0.02, seed=0):
    """One cluster per axis of `dim` (far apart on the unit sphere), each of `size`
    points: its centre exactly, then the centre plus small noise. Returns the points,
    each point's cluster and the index of each cluster's centre."""
    rng = np.random.default_rng(seed)
    points, ids, centres = [], [], []
    for c, size in enumerate(sizes):
        centre = np.zeros(dim)
        centre[c] = 1.0
        centres.append(sum(sizes[:c]))
        points.append(centre)
        points.extend(centre + noise * rng.standard_normal((size - 1, dim)))
        ids += [c] * size
    return np.asarray(points, np.float32), np.asarray(ids), centres


def picks(priority, above):
    """The rows ranked above `above`, best first."""
    order = np.argsort(-priority, kind="stable")
    return [int(i) for i in order if priority[i] > above]


def test_least_confidence_is_one_minus_the_top_probability():
    assert np.allclose(strategies.least_confidence(PROBA), [0.30, 0.55, 0.60, 0.10, 0.60])


def test_margin_puts_the_smallest_gap_first():
    assert np.allclose(strategies.margin(PROBA), [0.50, 0.99, 0.95, 0.15, 0.90])
    assert np.argsort(-strategies.margin(PROBA)).tolist() == [1, 2, 4, 0, 3]
    ranked = strategies.rank(
        "margin", embeddings=np.zeros((5, 2)), labeled=np.zeros(5, bool), proba=PROBA
    )
    assert np.argsort(-ranked).tolist() == [1, 2, 4, 0, 3]
    # One class: nothing to hesitate between.
    assert strategies.margin(np.ones((3, 1))).tolist() == [0.0, 0.0, 0.0]


def test_entropy_is_normalised_by_the_number_of_classes():
    proba = np.array([[0.25] * 4, [1.0, 0, 0, 0], [0.5, 0.5, 0, 0]])
    # log 2 / log 4 = 1/2 for an even split between two of four classes.
    assert np.allclose(strategies.entropy(proba), [1.0, 0.0, 0.5], atol=1e-6)


def test_random_order_is_fixed_by_its_seed_and_only_by_it():
    x, labeled = np.zeros((50, 2)), np.zeros(50, bool)

    def order(strategy, seed):
        return np.argsort(strategies.rank(strategy, embeddings=x, labeled=labeled, seed=seed))

    assert order("random", 1).tolist() == order("random", 1).tolist()
    # Another seed, another permutation: it differs in most places.
    assert (order("random", 1) != order("random", 2)).mean() > 0.5
    # Before any model, an uncertainty strategy starts from that same random order.
    assert order("margin", 1).tolist() == order("random", 1).tolist()


def test_typiclust_takes_each_clusters_centre_largest_cluster_first():
    x, ids, centres = separated_clusters([40, 30, 20, 10])
    priority = strategies.typiclust(x, np.zeros(len(x), bool), budget=4)
    # Exactly the budget ranks above every other row, each pick a cluster's own
    # centre (its most typical point), the largest cluster first.
    assert picks(priority, 1.0) == centres
    assert (priority[np.setdiff1d(np.arange(len(x)), centres)] <= 1.0).all()


def test_typiclust_skips_clusters_already_labeled_and_never_ranks_labels():
    x, ids, centres = separated_clusters([40, 30, 20, 10])
    labeled = np.zeros(len(x), bool)
    labeled[1] = True  # one of the largest cluster
    priority = strategies.typiclust(x, labeled, budget=3)
    assert np.isneginf(priority[labeled]).all()
    assert picks(priority, 1.0) == centres[1:]


def test_auto_is_cold_until_five_labels_per_class_then_takes_the_smallest_margin():
    x, ids, centres = separated_clusters([20, 20, 20])
    proba = np.tile([0.9, 0.05, 0.05], (len(x), 1))
    proba[41] = [0.5, 0.5, 0.0]  # the one the model hesitates on

    def auto(labels: int):
        labeled = np.zeros(len(x), bool)
        labeled[np.flatnonzero(~np.isin(np.arange(len(x)), [*centres, 41]))[:labels]] = True
        return strategies.rank(
            "auto", embeddings=x, labeled=labeled, proba=proba, n_classes=3, batch_size=3
        )

    # 14 labels for 3 classes: still the cold start, whatever the model says. Its
    # picks rank above 1, where no margin (at most 1, for row 41) reaches.
    cold = auto(5 * 3 - 1)
    assert (cold > 1.0).sum() == 3
    # 15: the smallest margin, and nothing else, is on top.
    warm = auto(5 * 3)
    assert np.argmax(warm) == 41 and warm.max() == 1.0 and (warm == 1.0).sum() == 1
    # With no model at all, the cold start: one image of each cluster.
    none = strategies.rank("auto", embeddings=x, labeled=np.zeros(len(x), bool), batch_size=3)
    assert sorted(ids[picks(none, 1.0)].tolist()) == [0, 1, 2]


def test_cluster_margin_spreads_a_batch_over_every_confusing_cluster():
    x, ids, centres = separated_clusters([30, 30, 30, 30, 30])
    proba = np.tile([0.95, 0.05], (len(x), 1))
    # Four clusters the model hesitates on, the first most; the fifth it is sure of.
    for c, p in enumerate([0.51, 0.52, 0.53, 0.54]):
        proba[ids == c] = [p, 1 - p]
    by_margin = np.argsort(-strategies.margin(proba))[:4]
    assert set(ids[by_margin]) == {0}
    priority = strategies.cluster_margin(proba, x, batch_size=4, candidates=30)
    batch = picks(priority, 2.0)[:4]
    assert sorted(ids[batch].tolist()) == [0, 1, 2, 3]
    assert ids[batch[0]] == 0  # the batch opens with the most uncertain cluster


def test_cluster_margin_never_puts_a_labeled_item_in_the_batch():
    x, ids, _ = separated_clusters([30, 30, 30])
    proba = np.tile([0.95, 0.05], (len(x), 1))
    proba[ids == 0] = [0.5, 0.5]  # the most uncertain, and all labeled
    proba[ids == 1] = [0.6, 0.4]
    labeled = ids == 0
    priority = strategies.rank(
        "cluster_margin", embeddings=x, labeled=labeled, proba=proba, batch_size=4
    )
    batch = picks(priority, 2.0)
    assert len(batch) >= 4
    assert not labeled[batch].any()
    assert (priority[labeled] < priority[~labeled].max()).all()


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        strategies.rank("best", embeddings=np.zeros((2, 2)), labeled=np.zeros(2, bool))


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
