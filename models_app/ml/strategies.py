"""Query strategies: which unlabeled images an annotator should see first.

Each returns a priority per pool item (higher: ask sooner). Uncertainty strategies read
the model's calibrated probabilities; the cold-start strategy needs only embeddings, for
while no model exists; the batch strategy keeps what several annotators get at once
diverse.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

STRATEGIES = (
    "auto",
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "typiclust",
    "cluster_margin",
)
UNCERTAINTY = {"least_confidence", "margin", "entropy", "cluster_margin"}
# "auto" spreads its picks (`spread`) until the project has this many labels per class,
# then takes the smallest margins class by class, fewest labels first (`class_balanced`).
# Chosen with `bench_active_learning` (README): on the long tail it found the rare
# classes far sooner than TypiClust-then-margin, and kept the balanced scenario's lead.
COLD_START_LABELS_PER_CLASS = 5


def rank(
    strategy: str,
    *,
    embeddings: np.ndarray,
    labeled: np.ndarray,
    proba: np.ndarray | None = None,
    n_classes: int = 2,
    batch_size: int = 50,
    seed: int | None = None,
    class_counts: np.ndarray | None = None,
) -> np.ndarray:
    """The priority of every row of `embeddings` under `strategy` (higher: ask sooner).

    `labeled` masks the rows already labeled (their priority is meaningless); `proba`
    holds the current model's probabilities for every row, or None before any model
    exists, when uncertainty strategies fall back to random order as their start.
    `batch_size` is how many labels arrive before the next retrain.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {STRATEGIES}")
    rng = np.random.default_rng(seed)
    seed = int(rng.integers(2**31))
    labeled = np.asarray(labeled, dtype=bool)
    if strategy == "auto":
        cold = proba is None or labeled.sum() < COLD_START_LABELS_PER_CLASS * n_classes
        if cold:
            return spread(embeddings, labeled, batch_size, seed=seed)
        if class_counts is None:
            return margin(proba)
        pool = np.flatnonzero(~labeled)
        priority = np.zeros(len(embeddings))
        priority[pool] = class_balanced(proba[pool], class_counts, batch_size)
        return priority
    if strategy == "typiclust":
        return typiclust(embeddings, labeled, batch_size, seed=seed)
    if strategy == "random" or proba is None:
        return random_priority(len(embeddings), rng)
    if strategy == "cluster_margin":
        pool = np.flatnonzero(~labeled)
        priority = np.zeros(len(embeddings))
        priority[pool] = cluster_margin(proba[pool], embeddings[pool], batch_size, seed=seed)
        return priority
    return {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}[strategy](
        proba
    )


def random_priority(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.random(n)


def least_confidence(proba: np.ndarray) -> np.ndarray:
    return 1.0 - proba.max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """1 minus the gap between the two likeliest classes: near 1 when the model hesitates."""
    if proba.shape[1] < 2:
        return np.zeros(len(proba))
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(proba: np.ndarray) -> np.ndarray:
    """Entropy normalised to [0, 1] by its maximum, log(classes)."""
    p = np.clip(proba, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(max(proba.shape[1], 2))


def _unit(x: np.ndarray, dims: int = 64) -> np.ndarray:
    """Unit-length rows, projected on their top `dims` principal components when wider:
    distances keep their shape and clustering runs many times faster."""
    x = np.asarray(x, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    if x.shape[1] > dims and len(x) > dims:
        x = PCA(n_components=dims, svd_solver="randomized", random_state=0).fit_transform(x)
    return x


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    k = max(1, min(k, len(x)))
    if len(x) > 5000:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=3)
    return model.fit_predict(x)


def typicality(x: np.ndarray, k: int = 20) -> np.ndarray:
    """Inverse mean distance to the k nearest neighbours: high in dense regions."""
    k = max(1, min(k, len(x) - 1))
    if len(x) < 2:
        return np.ones(len(x))
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return 1.0 / (distances[:, 1:].mean(axis=1) + 1e-8)


def typiclust(
    embeddings: np.ndarray,
    labeled: np.ndarray,
    budget: int,
    *,
    seed: int = 0,
    max_clusters: int = 500,
) -> np.ndarray:
    """Cold start as in TypiClust (Hacohen et al., 2022): cluster the data into as many
    clusters as there will be labels, then take the most typical point of each of the
    largest clusters that hold no label yet.

    `labeled` is a boolean mask over `embeddings`; the result has a priority for every
    row (labeled rows get -inf). The first `budget` picks rank highest, in pick order.
    """
    x = _unit(embeddings)
    labeled = np.asarray(labeled, dtype=bool)
    clusters = _kmeans(x, min(int(labeled.sum()) + budget, max_clusters), seed)
    covered = set(clusters[labeled].tolist())
    sizes = np.bincount(clusters)
    priority = np.full(len(x), -np.inf)
    pool = np.flatnonzero(~labeled)
    # Everything unpicked ranks by typicality, below every pick.
    typical = _typical_by_cluster(x, clusters)
    priority[pool] = typical[pool] / (typical[pool].max() + 1e-8)
    order = sorted(
        (c for c in range(len(sizes)) if sizes[c] and c not in covered), key=lambda c: -sizes[c]
    )
    rank = budget
    for c in order[:budget]:
        members = pool[clusters[pool] == c]
        if len(members):
            best = members[np.argmax(typical[members])]
            priority[best] = 1.0 + rank
            rank -= 1
    return priority


def cluster_margin(
    proba: np.ndarray,
    embeddings: np.ndarray,
    batch_size: int,
    *,
    candidates: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """A diverse batch of uncertain items, as in cluster-margin (Citovsky et al., 2021):
    cluster the `candidates` × `batch_size` smallest-margin items and take them round
    robin across clusters, so a batch is not many copies of one confusing case.
    Items outside the candidates rank below, by margin."""
    uncertainty = margin(proba)
    priority = uncertainty.copy()
    pool_size = min(len(proba), max(batch_size, batch_size * candidates))
    top = np.argsort(-uncertainty)[:pool_size]
    if len(top) == 0:
        return priority
    clusters = _kmeans(_unit(embeddings[top]), min(batch_size, len(top)), seed)
    queues = [
        list(top[clusters == c][np.argsort(-uncertainty[top[clusters == c]])])
        for c in np.unique(clusters)
    ]
    queues.sort(key=lambda q: -uncertainty[q[0]])
    picked: list[int] = []
    while any(queues):
        for queue in queues:
            if queue:
                picked.append(queue.pop(0))
    for rank, item in enumerate(picked):
        priority[item] = 2.0 + len(picked) - rank
    return priority


def _typical_by_cluster(x: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    typical = np.zeros(len(x))
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        typical[members] = typicality(x[members])
    return typical


def spread(
    embeddings: np.ndarray,
    labeled: np.ndarray,
    budget: int,
    *,
    seed: int = 0,
    clusters_per_pick: float = 4.0,
    size_power: float = 0.0,
    max_clusters: int = 500,
) -> np.ndarray:
    """A cold start that spreads its picks over the embedding space, so that a small
    class apart from the others is seen early: cluster into `clusters_per_pick` times as
    many clusters as there will be labels (small groups get clusters of their own), take
    the most typical point of each cluster holding no label, and pick among those
    farthest-first: each pick the candidate farthest from every label and earlier pick
    (its distance times its cluster's size to `size_power`). With no label yet the first
    pick is the largest cluster's.

    The first `budget` picks rank highest, in pick order; the rest of the pool ranks
    below by typicality in its cluster; labeled rows get -inf."""
    x = _unit(embeddings)
    labeled = np.asarray(labeled, dtype=bool)
    k = min(int(round((int(labeled.sum()) + budget) * clusters_per_pick)), max_clusters)
    clusters = _kmeans(x, k, seed)
    typical = _typical_by_cluster(x, clusters)
    pool = np.flatnonzero(~labeled)
    priority = np.full(len(x), -np.inf)
    priority[pool] = typical[pool] / (typical[pool].max() + 1e-8)
    covered = set(clusters[labeled].tolist())
    sizes = np.bincount(clusters)
    candidates = []
    for c in range(len(sizes)):
        members = pool[clusters[pool] == c]
        if c not in covered and len(members):
            candidates.append(members[np.argmax(typical[members])])
    if not candidates:
        return priority
    candidates = np.asarray(candidates)
    weight = sizes[clusters[candidates]].astype(float) ** size_power
    if labeled.any():
        gaps = np.linalg.norm(x[candidates, None] - x[None, labeled], axis=2).min(axis=1)
    else:
        gaps = np.where(sizes[clusters[candidates]] == sizes.max(), np.inf, 1.0)
    for step in range(min(budget, len(candidates))):
        best = int(np.argmax(gaps * weight))
        priority[candidates[best]] = 1.0 + budget - step
        gaps = np.minimum(gaps, np.linalg.norm(x[candidates] - x[candidates[best]], axis=1))
        gaps[best] = -np.inf
    return priority


def class_balanced(
    proba: np.ndarray,
    class_counts: np.ndarray,
    batch_size: int,
    *,
    share: float = 1.0,
) -> np.ndarray:
    """Uncertain items for the classes with fewest labels: `share` of the batch goes to
    the classes one at a time, each time to the class with the fewest labels counting
    those already given it (water-filling), which gets its smallest-margin item among
    those the model predicts as it; the rest of the batch is the smallest margins.
    Priorities: picks above 2, in pick order; the rest by margin."""
    uncertainty = margin(proba)
    priority = uncertainty.copy()
    predicted = proba.argmax(axis=1)
    queues = [
        list(
            np.flatnonzero(predicted == c)[np.argsort(-uncertainty[predicted == c], kind="stable")]
        )
        for c in range(proba.shape[1])
    ]
    level = np.asarray(class_counts, dtype=float).copy()
    taken = np.zeros(len(proba), dtype=bool)
    picked: list[int] = []
    for _ in range(min(int(round(share * batch_size)), len(proba))):
        while True:
            c = int(np.argmin(level))
            if np.isinf(level[c]):
                break
            while queues[c] and taken[queues[c][0]]:
                queues[c].pop(0)
            if queues[c]:
                break
            level[c] = np.inf
        if np.isinf(level[c]):
            break
        item = queues[c].pop(0)
        taken[item] = True
        picked.append(item)
        level[c] += 1
    rest = [i for i in np.argsort(-uncertainty, kind="stable") if not taken[i]]
    picked += rest[: max(0, batch_size - len(picked))]
    for position, item in enumerate(picked):
        priority[item] = 2.0 + len(picked) - position
    return priority
