"""models_app.ml.strategies on hand-made probabilities and point clouds whose answers
are worked out by hand: which image each strategy asks for first, and by how much."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans

from models_app.ml.strategies import (
    STRATEGIES,
    _kmeans,
    _unit,
    class_balanced,
    cluster_margin,
    entropy,
    least_confidence,
    margin,
    rank,
    spread,
    typicality,
    typiclust,
)

PROBA = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.4, 0.35, 0.25],
        [1.0, 0.0, 0.0],
        [1 / 3, 1 / 3, 1 / 3],
    ]
)
EMBEDDINGS = np.eye(4, 3) + 0.1


def test_least_confidence_is_one_minus_the_top_probability():
    assert least_confidence(PROBA) == pytest.approx([0.3, 0.6, 0.0, 2 / 3])


def test_margin_is_one_minus_the_gap_of_the_two_likeliest():
    assert margin(PROBA) == pytest.approx([1 - 0.5, 1 - 0.05, 0.0, 1.0])
    # Unsorted columns: the two likeliest are found wherever they are.
    assert margin(np.array([[0.1, 0.6, 0.3]])) == pytest.approx([0.7])
    # One class: nothing to hesitate between.
    assert margin(np.array([[1.0], [1.0]])).tolist() == [0.0, 0.0]


def test_entropy_is_normalised_by_its_largest_value():
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)) / math.log(3)
    h2 = -(0.4 * math.log(0.4) + 0.35 * math.log(0.35) + 0.25 * math.log(0.25)) / math.log(3)
    assert entropy(PROBA) == pytest.approx([h, h2, 0.0, 1.0], abs=1e-9)
    # Two classes at 50/50 are as unsure as can be; one class is sure.
    assert entropy(np.array([[0.5, 0.5]])) == pytest.approx([1.0])
    assert entropy(np.array([[1.0]])) == pytest.approx([0.0], abs=1e-9)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("least_confidence", [0.3, 0.6, 0.0, 2 / 3]),
        ("margin", [0.5, 0.95, 0.0, 1.0]),
    ],
)
def test_rank_gives_each_uncertainty_strategys_priority(strategy, expected):
    labeled = np.zeros(4, dtype=bool)
    priority = rank(strategy, embeddings=EMBEDDINGS, labeled=labeled, proba=PROBA, n_classes=3)
    assert priority == pytest.approx(expected)


def test_rank_by_entropy():
    labeled = [False] * 4
    priority = rank("entropy", embeddings=EMBEDDINGS, labeled=labeled, proba=PROBA, n_classes=3)
    assert priority == pytest.approx(entropy(PROBA))
    assert priority[3] == pytest.approx(1.0)
    assert priority[2] == pytest.approx(0.0, abs=1e-9)


def test_an_unknown_strategy_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        rank("best", embeddings=EMBEDDINGS, labeled=np.zeros(4, bool))
    assert set(STRATEGIES) >= {"random", "margin", "auto", "typiclust", "cluster_margin"}


def test_random_order_is_the_seeds_and_uncertainty_without_a_model_is_random():
    x = np.random.default_rng(0).normal(size=(30, 4))
    labeled = np.zeros(30, dtype=bool)
    first = rank("random", embeddings=x, labeled=labeled, seed=5)
    assert first.shape == (30,)
    assert ((first >= 0) & (first < 1)).all()
    assert len(set(first.tolist())) == 30
    assert rank("random", embeddings=x, labeled=labeled, seed=5).tolist() == first.tolist()
    assert rank("random", embeddings=x, labeled=labeled, seed=6).tolist() != first.tolist()
    for strategy in ("least_confidence", "margin", "entropy", "cluster_margin"):
        same = rank(strategy, embeddings=x, labeled=labeled, proba=None, seed=5)
        assert same.tolist() == first.tolist(), strategy
    # A model's probabilities do not change the random order either.
    proba = np.full((30, 2), 0.5)
    assert rank("random", embeddings=x, labeled=labeled, proba=proba, seed=5).tolist() == (
        first.tolist()
    )


def blobs(sizes=(6, 5, 4), spread=0.05):
    """Tight groups around far-apart centres, each with one point exactly at its centre
    and the others on a ring around it, across the centre's direction, so the centre is
    the group's most typical point; the centre comes second in its group, so that
    "the first member" is never the right answer by chance. The points and the index
    of each centre point."""
    points, middle = [], []
    for axis, size in enumerate(sizes):
        centre = np.zeros(3)
        centre[axis] = 10.0
        across = [(axis + 1) % 3, (axis + 2) % 3]
        ring = []
        for k in range(size - 1):
            angle = 2 * math.pi * k / (size - 1)
            point = centre.copy()
            point[across] = spread * np.array([math.cos(angle), math.sin(angle)])
            ring.append(point)
        middle.append(len(points) + 1)
        points += [ring[0], centre, *ring[1:]]
    return np.array(points), middle


def test_auto_spreads_until_five_labels_a_class_then_balances_classes_by_margin():
    x, _ = blobs()
    proba = np.tile([[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]], (5, 1))
    labeled = np.zeros(15, dtype=bool)
    labeled[:9] = True  # one short of 5 a class for 2 classes
    derived = int(np.random.default_rng(1).integers(2**31))  # the seed rank passes on

    def auto(**extra):
        return rank(
            "auto", embeddings=x, labeled=labeled, proba=proba, n_classes=2, seed=1, **extra
        )

    assert auto().tolist() == spread(x, labeled, 50, seed=derived).tolist()
    labeled[9] = True
    # Warm, without label counts: the smallest margins.
    assert auto().tolist() == rank("margin", embeddings=x, labeled=labeled, proba=proba).tolist()
    # With them: class-balanced on the pool, labeled rows at 0.
    counts = np.array([7, 3])
    warm = auto(class_counts=counts)
    assert warm[:10].tolist() == [0.0] * 10
    assert warm[10:].tolist() == class_balanced(proba[10:], counts, 50).tolist()
    # No model yet: cold, however many labels.
    labeled[:] = True
    labeled[-3:] = False
    cold = rank("auto", embeddings=x, labeled=labeled, proba=None, n_classes=2, seed=1)
    assert cold.tolist() == spread(x, labeled, 50, seed=derived).tolist()


def test_typiclust_takes_the_centre_of_each_group_largest_first():
    x, middle = blobs(sizes=(6, 5, 4))
    labeled = np.zeros(len(x), dtype=bool)
    priority = typiclust(x, labeled, 3)
    # Picks rank above everything else, the largest group's first: 1 + budget, down.
    assert [priority[m] for m in middle] == [4.0, 3.0, 2.0]
    rest = np.delete(priority, middle)
    assert ((rest > 0) & (rest <= 1.0)).all()
    assert int(np.argmax(priority)) == middle[0]


def test_typiclust_skips_groups_with_a_label_and_marks_labels_lowest():
    x, middle = blobs(sizes=(6, 5, 4))
    labeled = np.zeros(len(x), dtype=bool)
    labeled[middle[0] + 1] = True  # a label in the largest group (not its centre)
    priority = typiclust(x, labeled, 2)
    assert priority[middle[0] + 1] == -np.inf
    assert [priority[middle[1]], priority[middle[2]]] == [3.0, 2.0]
    # The labeled group's own centre is no pick, only typical.
    assert 0 < priority[middle[0]] <= 1.0


def test_typiclust_makes_no_more_clusters_than_allowed():
    x, middle = blobs(sizes=(6, 5, 4))
    labeled = np.zeros(len(x), dtype=bool)
    priority = typiclust(x, labeled, 3, max_clusters=1)
    # One cluster of everything: one pick, in the largest (densest) group.
    assert (priority > 1).sum() == 1
    assert priority.max() == 4.0
    assert middle[0] - 1 <= int(np.argmax(priority)) < middle[1] - 1


def test_rank_typiclust_uses_the_batch_size_as_budget():
    x, middle = blobs(sizes=(6, 5, 4))
    labeled = np.zeros(len(x), dtype=bool)
    priority = rank("typiclust", embeddings=x, labeled=labeled, batch_size=3, seed=0)
    assert [priority[m] for m in middle] == [4.0, 3.0, 2.0]


def test_typicality_is_the_inverse_mean_distance_to_the_nearest_neighbours():
    x = np.array([[0.0], [1.0], [3.0]])
    assert typicality(x, k=1) == pytest.approx([1.0, 1.0, 0.5])
    # k = 2: 0 -> (1 + 3) / 2, 1 -> (1 + 2) / 2, 3 -> (2 + 3) / 2.
    assert typicality(x, k=2) == pytest.approx([1 / 2, 2 / 3, 2 / 5])
    # More neighbours than there are: all the others.
    assert typicality(x, k=20) == pytest.approx([1 / 2, 2 / 3, 2 / 5])
    assert typicality(np.array([[5.0]])).tolist() == [1.0]
    assert typicality(np.zeros((0, 2))).tolist() == []


def test_unit_rows_have_length_one_and_wide_data_is_projected():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    unit = _unit(x)
    assert unit.dtype == np.float32
    assert unit == pytest.approx(np.array([[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]]))
    wide = np.random.default_rng(0).normal(size=(70, 80))
    assert _unit(wide).shape == (70, 64)
    assert _unit(wide, dims=10).shape == (70, 10)
    # As wide as allowed, or too few rows: left as they are.
    assert _unit(wide[:, :64]).shape == (70, 64)
    assert _unit(wide[:50]).shape == (50, 80)


def test_kmeans_clips_the_number_of_clusters():
    x, middle = blobs(sizes=(6, 5, 4))
    labels = _kmeans(x, 3, seed=0)
    starts = [m - 1 for m in middle]
    groups = [set(labels[m : m + n].tolist()) for m, n in zip(starts, (6, 5, 4), strict=True)]
    assert all(len(g) == 1 for g in groups)
    assert len(set().union(*groups)) == 3
    assert len(set(_kmeans(x[:2], 10, seed=0).tolist())) == 2
    assert set(_kmeans(x, 0, seed=0).tolist()) == {0}


@pytest.mark.parametrize(
    "rows, kind, options",
    [
        (5000, KMeans, {"n_init": 3}),
        (5001, MiniBatchKMeans, {"batch_size": 4096, "n_init": 3}),
    ],
)
def test_over_5000_points_the_clustering_is_minibatch_k_means(rows, kind, options):
    # Uniform noise has no clusters to find: any other setting, seed or method gives
    # other groups.
    x = np.random.default_rng(1).random((rows, 2)).astype(np.float32)
    expected = kind(n_clusters=12, random_state=7, **options).fit_predict(x)
    assert _kmeans(x, 12, seed=7).tolist() == expected.tolist()


def test_cluster_margin_takes_the_uncertain_round_robin_across_groups():
    # Items 0-2 in one group, 3-5 in another; uncertainty falls from 0 to 5.
    embeddings = np.array(
        [[1, 0, 0.01], [1, 0.01, 0], [1, 0, 0], [0, 1, 0.01], [0, 1, 0], [0.01, 1, 0]],
        dtype=float,
    )
    gaps = [0.05, 0.1, 0.2, 0.3, 0.6, 0.7]
    proba = np.array([[(1 + g) / 2, (1 - g) / 2] for g in gaps])
    # Candidates: the 2 x 2 most uncertain (0, 1, 2, 3), in two clusters {0, 1, 2} and
    # {3}, taken in turn: 0, 3, 1, 2, with priorities 2 + 4, 2 + 3, ...
    priority = cluster_margin(proba, embeddings, 2, candidates=2)
    assert priority[:4] == pytest.approx([6.0, 4.0, 3.0, 5.0])
    # The rest keep their margin priority, below every pick.
    assert priority[4:] == pytest.approx([1 - 0.6, 1 - 0.7])
    assert cluster_margin(np.zeros((0, 2)), np.zeros((0, 3)), 2).tolist() == []


def test_cluster_margin_candidates_are_at_least_one_batch():
    embeddings = np.array([[1, 0], [0.99, 0.01], [0, 1], [0.01, 0.99]], dtype=float)
    gaps = [0.1, 0.2, 0.3, 0.4]
    proba = np.array([[(1 + g) / 2, (1 - g) / 2] for g in gaps])
    # candidates=0 still takes batch_size (2) candidates: 0 and 1, one cluster each.
    priority = cluster_margin(proba, embeddings, 2, candidates=0)
    assert priority == pytest.approx([4.0, 3.0, 1 - 0.3, 1 - 0.4])


def test_rank_cluster_margin_ranks_the_pool_and_leaves_labels_at_zero():
    embeddings = np.array(
        [[1, 0, 0.01], [1, 0.01, 0], [1, 0, 0], [0, 1, 0.01], [0, 1, 0], [0.01, 1, 0]],
        dtype=float,
    )
    gaps = [0.05, 0.1, 0.2, 0.3, 0.6, 0.7]
    proba = np.array([[(1 + g) / 2, (1 - g) / 2] for g in gaps])
    labeled = np.array([True, False, False, False, False, False])
    priority = rank(
        "cluster_margin",
        embeddings=embeddings,
        labeled=labeled,
        proba=proba,
        batch_size=2,
        seed=0,
    )
    assert priority[0] == 0.0
    # Pool 1-5, all candidates (10 x 2 > 5), clusters {1, 2} and {3, 4, 5}: taken
    # 1, 3, 2, 4, 5 with priorities 2 + 5, 2 + 4, ...
    assert priority[1:] == pytest.approx([7.0, 5.0, 6.0, 4.0, 3.0])


def test_typicality_counts_twenty_neighbours_by_default():
    x = np.random.default_rng(2).normal(size=(25, 3))
    distances = np.linalg.norm(x[:, None] - x[None], axis=2)
    nearest20 = np.sort(distances, axis=1)[:, 1:21]
    assert typicality(x) == pytest.approx(1 / (nearest20.mean(axis=1) + 1e-8))
    # Two points are each other's only neighbour; two equal points are most typical.
    assert typicality(np.array([[0.0], [4.0]])) == pytest.approx([0.25, 0.25])
    assert typicality(np.array([[1.0], [1.0]])) == pytest.approx([1e8, 1e8])


def test_auto_counts_two_classes_unless_told():
    x, _ = blobs()
    proba = np.tile([[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]], (5, 1))
    labeled = np.zeros(15, dtype=bool)
    labeled[:10] = True
    auto = rank("auto", embeddings=x, labeled=labeled, proba=proba, seed=1)
    assert auto.tolist() == rank("margin", embeddings=x, labeled=labeled, proba=proba).tolist()


def test_typiclust_asks_for_fifty_labels_a_batch_unless_told():
    x = np.random.default_rng(3).normal(size=(60, 3))
    priority = rank("typiclust", embeddings=x, labeled=np.zeros(60, bool), seed=0)
    assert (priority > 1).sum() == 50


def uniform_case(n=120, seed=4):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([1, 1, 1], n)
    return rng.uniform(size=(n, 3)), proba


@pytest.mark.parametrize("strategy", ["typiclust", "cluster_margin"])
def test_the_run_seed_reaches_the_clustering(strategy):
    x, proba = uniform_case()
    labeled = np.zeros(len(x), dtype=bool)

    def ranked(seed):
        return rank(
            strategy, embeddings=x, labeled=labeled, proba=proba, batch_size=8, seed=seed
        ).tolist()

    assert ranked(1) == ranked(1)
    assert ranked(1) != ranked(2)


def test_cluster_margin_takes_ten_batches_of_candidates_unless_told():
    x, proba = uniform_case(n=60)
    priority = cluster_margin(proba, x, 2)
    assert (priority >= 2).sum() == 20


def test_cluster_margin_starts_the_round_with_the_most_uncertain_group():
    embeddings = np.array(
        [[1, 0, 0.01], [1, 0.01, 0], [1, 0, 0], [0, 1, 0.01], [0, 1, 0], [0.01, 1, 0]],
        dtype=float,
    )
    gaps = [0.7, 0.6, 0.3, 0.2, 0.1, 0.05]
    proba = np.array([[(1 + g) / 2, (1 - g) / 2] for g in gaps])
    # Candidates 5, 4, 3 (one group) and 2 (the other): 5, 2, 4, 3 in turn.
    priority = cluster_margin(proba, embeddings, 2, candidates=2)
    assert priority[2:] == pytest.approx([5.0, 3.0, 4.0, 6.0])


def apart(sizes=(8, 6, 3), spread=0.01):
    """Three groups of rows: A along e1, B along e1 + 0.3 e2 (close to A: 0.29 apart
    once unit length), C along e3 (far from both: about 1.41), each a centre point
    (second in its group) and a ring around it. The points and each centre's index."""
    directions = [np.array([1.0, 0, 0]), np.array([1.0, 0.3, 0]), np.array([0, 0, 1.0])]
    points, middle = [], []
    for direction, size in zip(directions, sizes, strict=True):
        centre = direction / np.linalg.norm(direction)
        across = np.linalg.svd(centre[None])[2][1:]  # two unit vectors across the centre
        ring = [
            centre + spread * (np.cos(a) * across[0] + np.sin(a) * across[1])
            for a in 2 * math.pi * np.arange(size - 1) / (size - 1)
        ]
        middle.append(len(points) + 1)
        points += [ring[0], centre, *ring[1:]]
    return np.array(points), middle


def test_spread_takes_the_largest_groups_centre_then_the_farthest():
    x, middle = apart()
    labeled = np.zeros(len(x), dtype=bool)
    # 2 picks x 1.5 -> 3 clusters: A, B, C. A first (the largest), then C (1.41 from
    # A) before B (0.29 from A), where typiclust would take B, the larger.
    priority = spread(x, labeled, 2, clusters_per_pick=1.5, size_power=0.0)
    assert [priority[m] for m in middle] == [3.0, pytest.approx(priority[middle[1]]), 2.0]
    assert 0 < priority[middle[1]] <= 1.0
    rest = np.delete(priority, [middle[0], middle[2]])
    assert ((rest > 0) & (rest <= 1.0)).all()


def test_spread_weighs_the_distance_by_the_cluster_size_to_a_power():
    x, middle = apart()
    labeled = np.zeros(len(x), dtype=bool)
    # After A: B scores 0.29 x 6^3 = 63, C 1.41 x 3^3 = 38: B. At power 1, C (4.2 > 1.7).
    priority = spread(x, labeled, 2, clusters_per_pick=1.5, size_power=3.0)
    assert [priority[middle[0]], priority[middle[1]]] == [3.0, 2.0]
    priority = spread(x, labeled, 2, clusters_per_pick=1.5, size_power=1.0)
    assert [priority[middle[0]], priority[middle[2]]] == [3.0, 2.0]


def test_spread_measures_from_the_labels_and_skips_their_clusters():
    x, middle = apart()
    labeled = np.zeros(len(x), dtype=bool)
    labeled[middle[0] + 1] = True  # a label in A, not its centre
    # (1 label + 1 pick) x 1.5 = 3 clusters; A is covered; C (1.41 from the label) goes
    # before B (0.29 from it), though B is the larger.
    priority = spread(x, labeled, 1, clusters_per_pick=1.5, size_power=0.0)
    assert priority[middle[0] + 1] == -np.inf
    assert priority[middle[2]] == 2.0
    assert 0 < priority[middle[0]] <= 1.0
    assert 0 < priority[middle[1]] <= 1.0
    # Every cluster covered: no pick, typicality only.
    labeled[[middle[1], middle[2]]] = True
    # (3 + 1) x 1 clusters, held to 3: A, B and C, each with a label.
    left = spread(x, labeled, 1, clusters_per_pick=1, size_power=0.0, max_clusters=3)
    assert (left[~labeled] <= 1.0).all()


# Five items, three classes: predicted 0, 0, 1, 2, 2; margins 0.9, 0.3, 0.7, 0.9, 0.5.
BALANCE = np.array(
    [
        [0.5, 0.4, 0.1],
        [0.8, 0.1, 0.1],
        [0.3, 0.6, 0.1],
        [0.2, 0.35, 0.45],
        [0.1, 0.2, 0.7],
    ]
)


def test_class_balanced_lifts_the_classes_with_fewest_labels_first():
    # Labels 5, 2, 1: class 2 first (item 3, its smaller margin), then 1 and 2 tie at 2
    # labels and the lower index goes (item 2), then class 2 again (item 4).
    priority = class_balanced(BALANCE, np.array([5, 2, 1]), 3, share=1.0)
    assert priority == pytest.approx([0.9, 0.3, 4.0, 5.0, 3.0])


def test_class_balanced_gives_the_rest_of_the_batch_to_the_smallest_margins():
    # Nothing shared out: the batch is the three smallest margins, ties in row order.
    priority = class_balanced(BALANCE, np.array([5, 2, 1]), 3, share=0.0)
    assert priority == pytest.approx([5.0, 0.3, 3.0, 4.0, 0.5])
    # Half of 4: items 3 and 2 by class, then items 0 and 4 by margin.
    priority = class_balanced(BALANCE, np.array([5, 2, 1]), 4, share=0.5)
    assert priority == pytest.approx([4.0, 0.3, 5.0, 6.0, 3.0])


def test_class_balanced_moves_on_when_a_class_has_no_predicted_items_left():
    # Classes 0 and 1 have no labels: 0 (item 0), 1 (item 2), 0 (item 1); then both are
    # out of items and class 2 gets item 3.
    priority = class_balanced(BALANCE, np.array([0, 0, 5]), 4, share=1.0)
    assert priority == pytest.approx([6.0, 4.0, 5.0, 3.0, 0.5])
    # A batch larger than the pool takes everything.
    assert sorted(class_balanced(BALANCE, np.array([0, 0, 0]), 9).tolist()) == [3, 4, 5, 6, 7]


def test_spread_makes_four_clusters_a_pick_and_weighs_distance_alone_unless_told():
    x, _ = uniform_case(n=90)
    labeled = np.zeros(len(x), dtype=bool)
    labeled[:2] = True
    default = spread(x, labeled, 3, seed=0).tolist()
    told = {"clusters_per_pick": 4.0, "size_power": 0.0, "max_clusters": 500}
    assert default == spread(x, labeled, 3, seed=0, **told).tolist()
    for change in ({"clusters_per_pick": 2.0}, {"size_power": 1.0}, {"max_clusters": 4}):
        assert default != spread(x, labeled, 3, seed=0, **{**told, **change}).tolist(), change


def test_class_balanced_shares_out_the_whole_batch_unless_told():
    assert class_balanced(BALANCE, np.array([5, 2, 1]), 3) == pytest.approx(
        [0.9, 0.3, 4.0, 5.0, 3.0]
    )


def test_class_balanced_counts_each_pick_as_one_label():
    # Labels 0 and 1. Class 0 gets a pick and reaches 1 label, ties with class 1 and, the
    # lower index, gets the next; only then class 1 (counting a pick as two labels would
    # give class 1 the second pick).
    proba = np.array([[0.6, 0.4], [0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])
    priority = class_balanced(proba, np.array([0, 1]), 3, share=1.0)
    picks = [int(i) for i in np.argsort(-priority)[:3]]
    assert picks == [0, 1, 2]


def test_class_balanced_takes_ties_in_pool_order():
    # Thirty items of two kinds, all predicted class 0: 0.55/0.45 (unsure) and 0.95/0.05
    # (sure), interleaved at random. Half of a batch of ten by class, half by margin:
    # either way the unsure come first, among equals the earlier in the pool.
    unsure = np.random.default_rng(3).permutation([True] * 15 + [False] * 15)
    proba = np.where(unsure[:, None], [0.55, 0.45], [0.95, 0.05])
    expected = sorted(range(30), key=lambda i: (not unsure[i], i))[:10]
    for share in (1.0, 0.5, 0.0):
        priority = class_balanced(proba, np.array([0, 0]), 10, share=share)
        assert [int(i) for i in np.argsort(-priority, kind="stable")[:10]] == expected, share
        assert sorted(priority[expected], reverse=True) == list(priority[expected])
