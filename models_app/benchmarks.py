"""The benchmark harness: what the bench commands share.

The Fashion-MNIST pool ingested through the app (`Pool`), the embedding cache keyed by
image content (`EmbeddingCache`, so only a first run pays the backbone), the simulated
annotator (`Pool.simulate`), the summary of learning curves, the plot, running tasks
synchronously as a worker would, and removing a temporary project. The commands under
`*/management/commands/bench_*.py` parse options, call these and print.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.conf import Conf

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES
from labeling.models import Annotation, Image, Project
from models_app import services
from models_app.ml.embed import embed_batches
from models_app.ml.head import head_from_bytes, predict_proba, train_head
from models_app.models import DEFAULT_STRATEGY, Embedding, ModelVersion


class BenchmarkError(Exception):
    """A benchmark that cannot go on, with the reason."""


@contextlib.contextmanager
def synchronous_tasks() -> Iterator[None]:
    """Run django-q2 tasks here and now, as a worker would, for the duration."""
    sync, Conf.SYNC = Conf.SYNC, True
    logging.getLogger("django-q").setLevel(logging.WARNING)
    try:
        yield
    finally:
        Conf.SYNC = sync


def embedding_cache(cache_dir: str | Path) -> EmbeddingCache:
    """The cache of this server's backbone features under `cache_dir`."""
    return EmbeddingCache(Path(cache_dir) / f"{slug(services.backbone_key())}.npz")


class EmbeddingCache:
    """Backbone features by SHA-256 of the image bytes, in one .npz file."""

    def __init__(self, path: Path):
        self.path = path
        self.vectors_by_hash: dict[str, np.ndarray] = {}
        self.changed = False
        if path.exists():
            with np.load(path) as saved:
                self.vectors_by_hash = dict(zip(saved["hashes"], saved["vectors"], strict=True))

    def get(self, digest: str) -> np.ndarray | None:
        return self.vectors_by_hash.get(digest)

    def put(self, digest: str, vector: np.ndarray) -> None:
        self.vectors_by_hash[digest] = np.asarray(vector, dtype=np.float16)
        self.changed = True

    def vectors(self, images: list[bytes]) -> np.ndarray:
        """Features of these encoded images, computing the missing ones with the app's
        embedding function (same preprocessing as stored images get)."""
        digests = [hashlib.sha256(data).hexdigest() for data in images]
        missing = [i for i, d in enumerate(digests) if d not in self.vectors_by_hash]
        if missing:
            sources = [io.BytesIO(images[i]) for i in missing]
            backbone = services.backbone_load()
            for start, batch in embed_batches(
                backbone, sources, batch_size=settings.LEARNER["EMBED_BATCH"]
            ):
                for offset, vector in enumerate(batch):
                    self.put(digests[missing[start + offset]], vector)
        return np.stack([self.vectors_by_hash[d] for d in digests]).astype(np.float32)

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hashes = list(self.vectors_by_hash)
        with open(self.path, "wb") as f:
            np.savez(
                f, hashes=np.array(hashes), vectors=np.stack(list(self.vectors_by_hash.values()))
            )
        self.changed = False


class Pool:
    """The simulated project: its images, their true classes and the annotator."""

    def __init__(self, log: Callable[[str], None], project: Project, user, truth: dict[int, int]):
        self.log = log
        self.project = project
        self.user = user
        self.truth = truth  # image id -> Fashion-MNIST class index
        self.classes = {c.name: c for c in project.classes.all()}

    @property
    def size(self) -> int:
        return len(self.truth)

    @classmethod
    def build(
        cls, log: Callable[[str], None], project: Project, user, data, count: int, cache
    ) -> Pool:
        """Ingest the first `count` images of `data` through the app into `project`
        (val/test fractions 0: an outside test set replaces them), with the ten classes,
        and store their embeddings (from `cache` where it has them)."""
        project.test_fraction = project.val_fraction = 0.0
        project.save()
        for name in FASHION_MNIST_CLASSES:
            labeling_services.label_class_create(project=project, name=name)
        truth: dict[int, int] = {}
        started = time.monotonic()
        for start in range(0, count, 500):
            indices = range(start, min(start + 500, count))
            results = labeling_services.images_ingest(
                project=project,
                files=[SimpleUploadedFile(f"fmnist-{i:05d}.png", data.png(i)) for i in indices],
                user=user,
                source=Image.Source.IMPORT,
                request_embedding=False,  # the cache provides them, below
            )
            for index, result in zip(indices, results, strict=True):
                if result.status == "created":
                    truth[result.image_id] = data.labels[index]
        log(
            f"pool: {len(truth)} images ingested ({count - len(truth)} exact duplicates "
            f"skipped) in {time.monotonic() - started:.0f} s"
        )
        pool = cls(log, project, user, truth)
        pool._embed(cache)
        return pool

    def _embed(self, cache: EmbeddingCache) -> None:
        """Stored embeddings from the cache where it has them; the app's own embedding
        service computes the rest, and the cache keeps them for the next run."""
        key = services.backbone_key()
        images = list(Image.objects.filter(project=self.project).values_list("id", "content_hash"))
        cached = [(pk, cache.get(digest)) for pk, digest in images if cache.get(digest) is not None]
        Embedding.objects.bulk_create(
            [
                Embedding(image_id=pk, backbone=key, vector=v.tobytes(), dim=len(v))
                for pk, v in cached
            ],
            batch_size=2000,
        )
        started = time.monotonic()
        computed = services.embeddings_ensure(project=self.project)
        self.log(
            f"embeddings: {len(cached)} from the cache, {computed} computed in "
            f"{time.monotonic() - started:.0f} s"
        )
        if len(cached) < len(images):
            matrix = services.project_embeddings(project=self.project)
            by_id = dict(images)
            for pk, vector in zip(matrix.ids.tolist(), matrix.matrix, strict=True):
                if cache.get(by_id[pk]) is None:
                    cache.put(by_id[pk], vector)

    def full_pool_accuracy(self, x_test: np.ndarray, y_test: np.ndarray) -> float:
        """The ceiling: the app's head trained on every pool image with its true class."""
        matrix = services.project_embeddings(project=self.project)
        y = np.asarray([self.truth[pk] for pk in matrix.ids.tolist()], dtype=np.int64)
        head = train_head(matrix.matrix, y, len(FASHION_MNIST_CLASSES))
        return float((predict_proba(head, x_test).argmax(axis=1) == y_test).mean())

    def reset(self, strategy: str, first_batch: int) -> None:
        """Back to zero labels, keeping the images and their embeddings."""
        Annotation.objects.filter(image__project=self.project).delete()
        ModelVersion.objects.filter(project=self.project).delete()
        Image.objects.filter(project=self.project).update(
            label=None,
            split=Image.Split.UNASSIGNED,
            priority=0.0,
            suggested_class=None,
            confidence=None,
            reserved_by=None,
            reserved_until=None,
        )
        services.learner_settings_update(
            project=self.project, strategy=strategy, retrain_every=first_batch
        )

    def simulate(
        self, strategy: str, seed: int, budgets: list[int], x_test: np.ndarray, y_test: np.ndarray
    ) -> list[float]:
        started = time.monotonic()
        self.reset(strategy, budgets[0])
        by_id = {c.pk: FASHION_MNIST_CLASSES.index(name) for name, c in self.classes.items()}
        by_index = {FASHION_MNIST_CLASSES.index(name): c for name, c in self.classes.items()}
        accuracies, labeled = [], 0
        for budget in budgets:
            services.learner_settings_update(project=self.project, retrain_every=budget - labeled)
            if labeled == 0:
                services.queue_rank(project=self.project, seed=seed)  # the cold start
            while labeled < budget:
                # The annotator takes up to 20 images at a time from the queue.
                served = labeling_services.queue_reserve(
                    project=self.project, user=self.user, count=min(20, budget - labeled)
                )
                if not served:
                    break
                for image in served:
                    labeling_services.annotation_create(
                        image=image, label_class=by_index[self.truth[image.pk]], annotator=self.user
                    )
                labeled += len(served)
            version = services.model_version_request(
                project=self.project, trigger=ModelVersion.Trigger.API, user=self.user
            )
            version.refresh_from_db()
            if version.status != ModelVersion.Status.SUCCEEDED:
                raise BenchmarkError(f"training at {budget} labels failed: {version.error}")
            with default_storage.open(version.artifact, "rb") as f:
                head = head_from_bytes(f.read())
            predicted = predict_proba(head, x_test).argmax(axis=1)
            index = np.asarray([by_id[pk] for pk in version.class_ids])
            accuracies.append(float((index[predicted] == y_test).mean()))
        self.log(
            f"{strategy:>16} seed {seed}: "
            + " ".join(f"{a:.3f}" for a in accuracies)
            + f"  ({time.monotonic() - started:.0f} s)"
        )
        return accuracies


def summarise(curves: dict[str, list[list[float]]], budgets: list[int], ceiling: float) -> dict:
    target = 0.95 * ceiling
    strategies = {}
    for name, runs in curves.items():
        runs_array = np.asarray(runs)
        mean = runs_array.mean(axis=0)
        strategies[name] = {
            "accuracy_mean": [round(float(v), 4) for v in mean],
            "accuracy_std": [round(float(v), 4) for v in runs_array.std(axis=0)],
            "aubc": round(aubc(budgets, mean), 4),
            "labels_to_95pct": labels_to_reach(budgets, mean, target),
        }
    random_labels = strategies["random"]["labels_to_95pct"]
    for row in strategies.values():
        labels = row["labels_to_95pct"]
        row["labels_ratio_vs_random"] = (
            round(labels / random_labels, 3) if labels and random_labels else None
        )
    return {
        "full_pool_accuracy": round(ceiling, 4),
        "target_95pct": round(target, 4),
        "budgets": budgets,
        "default_strategy": DEFAULT_STRATEGY,
        "strategies": strategies,
    }


def aubc(budgets: list[int], accuracy) -> float:
    """Area under the accuracy curve over log(budget), divided by its width: the mean
    accuracy across the budgets, each decade weighing the same. 1.0 is perfect."""
    if len(budgets) == 1:
        return float(accuracy[0])
    x = np.log(np.asarray(budgets, dtype=float))
    return float(np.trapezoid(accuracy, x) / (x[-1] - x[0]))


def labels_to_reach(budgets: list[int], accuracy, target: float) -> int | None:
    """The labels at which the mean curve first reaches `target`, interpolated linearly
    between the two budgets around it; None if it never does."""
    previous = None
    for budget, value in zip(budgets, accuracy, strict=True):
        if value >= target:
            if previous is None:
                return budget
            b0, a0 = previous
            return math.ceil(b0 + (budget - b0) * (target - a0) / (value - a0))
        previous = (budget, value)
    return None


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    budgets = report["budgets"]
    for name, row in report["strategies"].items():
        mean, std = np.asarray(row["accuracy_mean"]), np.asarray(row["accuracy_std"])
        width = 2.5 if name == report["default_strategy"] else 1.2
        ax.plot(budgets, mean, marker="o", linewidth=width, label=f"{name} (AUBC {row['aubc']})")
        ax.fill_between(budgets, mean - std, mean + std, alpha=0.15)
    ax.axhline(report["full_pool_accuracy"], color="black", linestyle="--", label="full pool")
    ax.axhline(report["target_95pct"], color="grey", linestyle=":", label="95% of full pool")
    ax.set_xscale("log")
    ax.set_xlabel("labels")
    ax.set_ylabel(f"test accuracy ({report['test']} Fashion-MNIST test images)")
    ax.set_title(f"Query strategies, pool of {report['pool']}, {report['seeds']} seeds")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def project_delete(project: Project) -> None:
    """Remove the temporary project, its rows (labels protect classes) and its files."""
    Annotation.objects.filter(image__project=project).delete()
    Image.objects.filter(project=project).delete()
    folder = Path(default_storage.path(f"projects/{project.pk}"))
    project.delete()
    shutil.rmtree(folder, ignore_errors=True)
