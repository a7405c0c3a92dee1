"""The simulated annotator on arrays, making the choices the app makes.

What is the app's: the stored (float16) embeddings, the head training a retrain runs
(`train_head_self`, with the same arguments), the ranking (`rank`, with the project's
strategy, the next batch's size and the seed a retrain derives from the labels,
`labels_seed`) and the queue's order (highest priority first, ties by hash draw, then
upload order, as `queue_reserve` serves them with no held-out share). What is
simulated: the database (no rows, reservations or tasks) and the annotator, who gives
every image its true class. `through_app.Pool.simulate` runs the same loop through the
services; on the same pool and seed both label the same images and score the same
(tests/models_app/test_bench_active_learning.py).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import django
import numpy as np
from sklearn.metrics import f1_score

from labeling.datasets import FASHION_MNIST_CLASSES
from labeling.models import Image
from models_app.benchmarks.cache import EmbeddingCache
from models_app.ml.head import predict_proba, train_head, train_head_self
from models_app.ml.strategies import rank
from models_app.services.ranking import labels_seed


class BenchmarkError(Exception):
    """A benchmark that cannot go on, with the reason."""


@dataclass
class ArrayPool:
    """A pool as the app would hold it, in arrays: rows in upload order (exact
    duplicates dropped, as ingestion drops them), the stored embeddings, each image's
    content hash (its hash draw is the queue's tie-break) and its true class."""

    x: np.ndarray
    y: np.ndarray
    digests: list[str]
    names: tuple[str, ...] = FASHION_MNIST_CLASSES

    @classmethod
    def of(cls, data, indices: Sequence[int], cache: EmbeddingCache) -> ArrayPool:
        images, labels, digests, seen = [], [], [], set()
        for index in indices:
            png = data.png(index)
            digest = hashlib.sha256(png).hexdigest()
            if digest not in seen:
                seen.add(digest)
                images.append(png)
                labels.append(data.labels[index])
                digests.append(digest)
        return cls(cache.vectors(images), np.asarray(labels, dtype=np.int64), digests)

    def subset(self, rows: np.ndarray) -> ArrayPool:
        rows = np.sort(rows)
        return ArrayPool(self.x[rows], self.y[rows], [self.digests[i] for i in rows], self.names)


@dataclass
class Curve:
    scores: list[float]  # at each budget
    picks: list[int]  # the rows labeled, in the order the queue served them
    labels_to_find_all: int | None  # labels until every class had one; None: never


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float((y_true == y_pred).mean())


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-F1 over the ten classes, a class never predicted scoring 0."""
    labels = list(range(len(FASHION_MNIST_CLASSES)))
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def simulate(
    pool: ArrayPool,
    strategy: str,
    seed: int,
    budgets: list[int],
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    score: Callable[[np.ndarray, np.ndarray], float],
    device: str,
) -> Curve:
    """Label `pool` from zero up to each budget in the queue's order, retraining and
    re-ranking as the app does at each; score each head on the test set. The cold
    start is ranked with `seed`. A retrain the app would refuse (labels of one class
    only) leaves no model and the queue in its order; a constant answer is scored."""
    labeled = np.zeros(len(pool.y), dtype=bool)
    draws = np.asarray([Image.draw_for(d) for d in pool.digests])
    picks: list[int] = []
    scores = []
    priority = rank(
        strategy,
        embeddings=pool.x,
        labeled=labeled,
        n_classes=len(pool.names),
        batch_size=budgets[0],
        seed=seed,
    )
    for step, budget in enumerate(budgets):
        free = np.flatnonzero(~labeled)
        served = free[np.lexsort((free, draws[free], -priority[free]))][: budget - len(picks)]
        picks += served.tolist()
        labeled[served] = True
        train = np.flatnonzero(labeled)
        seen = np.unique(pool.y[train])  # the classes a retrain trains on, in class order
        if len(seen) < 2:
            scores.append(score(y_test, np.full(len(y_test), seen[0])))
            continue
        head = train_head_self(
            pool.x[train],
            np.searchsorted(seen, pool.y[train]),
            len(seen),
            x_pool=pool.x[~labeled],
            x_val=None,
            y_val=None,
            kind="linear",
            device=device,
        )
        scores.append(score(y_test, seen[predict_proba(head, x_test).argmax(axis=1)]))
        if step + 1 < len(budgets):
            proba = np.zeros((len(labeled), len(seen)), dtype=np.float32)
            proba[~labeled] = predict_proba(head, pool.x[~labeled], device=device)
            priority = rank(
                strategy,
                embeddings=pool.x,
                labeled=labeled,
                proba=proba,
                n_classes=len(seen),
                batch_size=budgets[step + 1] - budget,
                seed=labels_seed((pool.digests[i], pool.names[pool.y[i]]) for i in train),
                class_counts=np.bincount(np.searchsorted(seen, pool.y[train]), minlength=len(seen)),
            )
    return Curve(scores, picks, labels_to_find_all(pool.y[picks], len(pool.names)))


def simulate_many(
    runs: list[tuple[str, int, np.ndarray | None]],
    pool: ArrayPool,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    budgets: list[int],
    score: Callable,
    device: str,
    jobs: int,
    done: Callable[[str, int, Curve], None],
) -> list[Curve]:
    """`simulate` for each (strategy, seed, rows of `pool` or None for all), in order.
    With `jobs` > 1 they run in that many worker processes of one torch thread each
    (small tensors train faster on one thread than on two that wait for each other);
    a worker's figures are those of the same run in a one-thread process."""
    if jobs <= 1:
        curves = []
        for strategy, seed, rows in runs:
            part = pool if rows is None else pool.subset(rows)
            curve = simulate(
                part, strategy, seed, budgets, x_test, y_test, score=score, device=device
            )
            done(strategy, seed, curve)
            curves.append(curve)
        return curves
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    # Read by torch when a worker imports it; this process's torch keeps its threads.
    os.environ.update(dict.fromkeys(threads, "1"))
    try:
        with tempfile.TemporaryDirectory() as folder:
            arrays = Path(folder) / "pool.npz"
            np.savez(arrays, x=pool.x, y=pool.y, digests=pool.digests, tx=x_test, ty=y_test)
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                jobs, mp_context=context, initializer=django.setup
            ) as executor:
                tasks = [(str(arrays), s, seed, r, budgets, score, device) for s, seed, r in runs]
                curves = []
                for (strategy, seed, _), curve in zip(runs, executor.map(_run, tasks), strict=True):
                    done(strategy, seed, curve)
                    curves.append(curve)
                return curves
    finally:
        for key, value in threads.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_loaded: dict[str, tuple] = {}


def _run(task) -> Curve:
    """One simulation in a worker process; the pool's arrays are read once per worker."""
    path, strategy, seed, rows, budgets, score, device = task
    if path not in _loaded:
        with np.load(path) as saved:
            pool = ArrayPool(saved["x"], saved["y"], saved["digests"].tolist())
            _loaded[path] = (pool, saved["tx"], saved["ty"])
    pool, x_test, y_test = _loaded[path]
    part = pool if rows is None else pool.subset(rows)
    return simulate(part, strategy, seed, budgets, x_test, y_test, score=score, device=device)


def labels_to_find_all(served_classes: Sequence[int], n_classes: int) -> int | None:
    """How many labels, in the order served, until every class has at least one."""
    seen: set[int] = set()
    for count, label in enumerate(served_classes, start=1):
        seen.add(int(label))
        if len(seen) == n_classes:
            return count
    return None


def long_tail_rows(y: np.ndarray, n_classes: int, ratio: float, rng) -> np.ndarray:
    """Rows of a subset whose class sizes fall exponentially, the largest `ratio` times
    the smallest (the smallest: the scarcest class's count divided by `ratio`). Which
    class gets which size, and which of its images, is drawn with `rng`."""
    smallest = int(np.bincount(y, minlength=n_classes).min() // ratio)
    if smallest < 1:
        raise BenchmarkError(f"The pool is too small for a ratio of {ratio}.")
    steps = np.arange(n_classes)[::-1] / (n_classes - 1)
    sizes = np.rint(smallest * ratio**steps).astype(int)  # largest first
    rows = [
        rng.choice(np.flatnonzero(y == c), size=size, replace=False)
        for c, size in zip(rng.permutation(n_classes), sizes, strict=True)
    ]
    return np.sort(np.concatenate(rows))


def balanced_rows(y: np.ndarray, per_class: int, n_classes: int) -> np.ndarray:
    """The first `per_class` rows of each class (fewer if a class has fewer: as many as
    the scarcest class holds), in their order."""
    per_class = min(per_class, int(np.bincount(y, minlength=n_classes).min()))
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(n_classes)]))


def full_pool_score(pool: ArrayPool, x_test, y_test, score, device: str = "cpu") -> float:
    """The ceiling: the app's head trained on every pool image with its true class."""
    head = train_head(pool.x, pool.y, len(pool.names), device=device)
    return score(y_test, predict_proba(head, x_test).argmax(axis=1))
