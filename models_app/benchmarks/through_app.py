"""The simulated project through the app: images ingested by the upload service, an
annotator who takes images from the queue and labels them through the services, and
the real retrain task run synchronously as a worker runs it. Slow (every label and
ranking is a database write), and the reference the array simulation is checked
against; the split and mistakes benches build their projects with it."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.conf import Conf

from labeling import services as labeling_services
from labeling.datasets import FASHION_MNIST_CLASSES
from labeling.models import Annotation, Image, Project, SuggestionRejection
from models_app import services
from models_app.benchmarks.cache import EmbeddingCache
from models_app.benchmarks.simulation import BenchmarkError, Curve, accuracy, labels_to_find_all
from models_app.ml.head import head_from_bytes, predict_proba
from models_app.models import Embedding, ModelVersion


@contextlib.contextmanager
def synchronous_tasks() -> Iterator[None]:
    """Run django-q2 tasks here and now, as a worker would, for the duration."""
    sync, Conf.SYNC = Conf.SYNC, True
    logging.getLogger("django-q").setLevel(logging.WARNING)
    try:
        yield
    finally:
        Conf.SYNC = sync


def project_delete(project: Project) -> None:
    """Remove the temporary project, its rows (labels protect classes) and its files."""
    Annotation.objects.filter(image__project=project).delete()
    Image.objects.filter(project=project).delete()
    folder = Path(default_storage.path(f"projects/{project.pk}"))
    project.delete()
    shutil.rmtree(folder, ignore_errors=True)


def fashion_ingest(project, user, data, count: int, *, request_embedding: bool = True) -> dict:
    """Upload the first `count` images of `data` into `project` through the app's
    ingest, 500 at a time; returns each stored image's true class (image id -> class
    index). Exact duplicates are skipped by the ingest and left out."""
    truth: dict[int, int] = {}
    for start in range(0, count, 500):
        indices = range(start, min(start + 500, count))
        results = labeling_services.images_ingest(
            project=project,
            files=[SimpleUploadedFile(f"fmnist-{i:05d}.png", data.png(i)) for i in indices],
            user=user,
            source=Image.Source.IMPORT,
            request_embedding=request_embedding,
        )
        for index, result in zip(indices, results, strict=True):
            if result.status == "created":
                truth[result.image_id] = data.labels[index]
    return truth


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
        started = time.monotonic()
        # The cache provides the embeddings, below.
        truth = fashion_ingest(project, user, data, count, request_embedding=False)
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

    def reset(self, strategy: str, first_batch: int) -> None:
        """Back to zero labels, keeping the images and their embeddings."""
        Annotation.objects.filter(image__project=self.project).delete()
        SuggestionRejection.objects.filter(image__project=self.project).delete()
        ModelVersion.objects.filter(project=self.project).delete()
        Image.objects.filter(project=self.project).update(
            label=None,
            split=Image.Split.UNASSIGNED,
            priority=0.0,
            suggested_class=None,
            suggested_by=None,
            in_queue=True,
            confidence=None,
            reserved_by=None,
            reserved_until=None,
        )
        services.learner_settings_update(
            project=self.project, strategy=strategy, retrain_every=first_batch
        )

    def simulate(
        self,
        strategy: str,
        seed: int,
        budgets: list[int],
        x_test: np.ndarray,
        y_test: np.ndarray,
        score: Callable[[np.ndarray, np.ndarray], float] = accuracy,
    ) -> Curve:
        """The annotator, through the app: takes up to 20 images at a time from the
        queue (`queue_reserve`) and gives their true class (`annotation_create`); at
        each budget the project retrains through the real task, which re-ranks the
        queue for the next batch (`retrain_every` set to its size); the active version
        is scored on the test set. Picks are image ids."""
        started = time.monotonic()
        self.reset(strategy, budgets[0])
        by_id = {c.pk: FASHION_MNIST_CLASSES.index(name) for name, c in self.classes.items()}
        by_index = {FASHION_MNIST_CLASSES.index(name): c for name, c in self.classes.items()}
        scores, picks = [], []
        services.queue_rank(project=self.project, seed=seed)  # the cold start
        for step, budget in enumerate(budgets):
            while len(picks) < budget:
                served = labeling_services.queue_reserve(
                    project=self.project, user=self.user, count=min(20, budget - len(picks))
                )
                if not served:
                    break
                for image in served:
                    labeling_services.annotation_create(
                        image=image, label_class=by_index[self.truth[image.pk]], annotator=self.user
                    )
                picks += [image.pk for image in served]
            if step + 1 < len(budgets):
                services.learner_settings_update(
                    project=self.project, retrain_every=budgets[step + 1] - budget
                )
            try:
                version = services.model_version_request(
                    project=self.project, trigger=ModelVersion.Trigger.API, user=self.user
                )
            except ValidationError:  # refused below two classes, as `simulate` mirrors
                scores.append(score(y_test, np.full(len(y_test), self.truth[picks[0]])))
                continue
            version.refresh_from_db()
            if version.status != ModelVersion.Status.SUCCEEDED:
                raise BenchmarkError(f"training at {budget} labels failed: {version.error}")
            with default_storage.open(version.artifact, "rb") as f:
                head = head_from_bytes(f.read())
            predicted = predict_proba(head, x_test).argmax(axis=1)
            index = np.asarray([by_id[pk] for pk in version.class_ids])
            scores.append(score(y_test, index[predicted]))
        self.log(
            f"{strategy:>16} seed {seed} (through the app): "
            + " ".join(f"{s:.3f}" for s in scores)
            + f"  ({time.monotonic() - started:.0f} s)"
        )
        found = labels_to_find_all([self.truth[pk] for pk in picks], len(FASHION_MNIST_CLASSES))
        return Curve(scores, picks, found)
