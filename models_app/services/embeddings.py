"""Embeddings: the backbone's features of every image, computed once by the workers in
chunks (each finished chunk queueing the next), stored as float16, read back as one
matrix per project."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from labeling.models import Image, Project
from models_app.ml.backbone import Backbone, cached_backbone
from models_app.ml.embed import embed_batches
from models_app.models import Embedding
from models_app.selectors import backbone_key


class TrainingError(Exception):
    """A training run that cannot go ahead, with a message for the person who asked."""


def backbone_load() -> Backbone:
    config = settings.LEARNER
    return cached_backbone(config["BACKBONE"], config["BACKBONE_WEIGHTS"], config["DEVICE"])


@transaction.atomic
def embeddings_claim(*, limit: int, project: Project | None = None) -> list[int]:
    """Claim up to `limit` images that still need an embedding, for one worker.

    Missing rows are created empty first; claims are taken with SKIP LOCKED, so two
    dispatchers never claim the same image, and a claim older than CLAIM_SECONDS (its
    worker died) can be taken again. Returns the claimed Embedding ids.
    """
    key = backbone_key()
    now = timezone.now()
    _embedding_rows_create(project=project)
    stale = now - timedelta(seconds=settings.LEARNER["CLAIM_SECONDS"])
    open_rows = Embedding.objects.filter(backbone=key, vector__isnull=True).filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale)
    )
    if project is not None:
        open_rows = open_rows.filter(image__project=project)
    ids = list(
        open_rows.select_for_update(skip_locked=True, of=("self",))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    Embedding.objects.filter(pk__in=ids).update(claimed_at=now)
    return ids


def _embedding_rows_create(*, project: Project | None) -> None:
    key = backbone_key()
    images = Image.objects.exclude(embeddings__backbone=key)
    if project is not None:
        images = images.filter(project=project)
    Embedding.objects.bulk_create(
        [Embedding(image_id=pk, backbone=key) for pk in images.values_list("id", flat=True)],
        batch_size=5000,
        ignore_conflicts=True,
    )


def embeddings_in_flight() -> int:
    """How many embedding chunks are claimed and not finished (each claim stamps its
    rows with one time); stale claims, whose worker died, do not count."""
    stale = timezone.now() - timedelta(seconds=settings.LEARNER["CLAIM_SECONDS"])
    return (
        Embedding.objects.filter(
            backbone=backbone_key(), vector__isnull=True, claimed_at__gte=stale
        )
        .values("claimed_at")
        .distinct()
        .count()
    )


def embeddings_dispatch(*, project: Project | None = None) -> int:
    """Start embedding the images still lacking an embedding (of `project` first, then
    of any project), without flooding the task queue: at most EMBED_TASKS chunks are
    queued or running at once, and each finished chunk enqueues the next
    (`embeddings_continue`). A retrain, a prediction or a review scan asked for
    meanwhile so waits behind a few chunks, not behind every image of a large upload.
    Safe to call often and from several places. Returns how many tasks it enqueued."""
    tasks = 0
    while embeddings_in_flight() < settings.LEARNER["EMBED_TASKS"]:
        ids = embeddings_claim(limit=settings.LEARNER["EMBED_CHUNK"], project=project)
        if not ids and project is not None:
            ids = embeddings_claim(limit=settings.LEARNER["EMBED_CHUNK"])
        if not ids:
            break
        async_task("models_app.tasks.embed_chunk", ids, task_name=f"embed {ids[0]}+{len(ids)}")
        tasks += 1
    return tasks


def embeddings_continue() -> int:
    """After a chunk: claim and enqueue the next one, oldest images first (so projects
    are served in the order they uploaded). Returns 1 if it enqueued a chunk."""
    ids = embeddings_claim(limit=settings.LEARNER["EMBED_CHUNK"])
    if not ids:
        return 0
    async_task("models_app.tasks.embed_chunk", ids, task_name=f"embed {ids[0]}+{len(ids)}")
    return 1


def embeddings_compute(*, embedding_ids: list[int]) -> int:
    """Compute and store the vectors of these Embedding rows. Idempotent: rows that
    already have a vector are skipped. Each batch is stored as soon as it is computed, so
    a crash loses at most one batch. Returns how many were computed."""
    rows = list(
        Embedding.objects.filter(pk__in=embedding_ids, vector__isnull=True)
        .select_related("image")
        .order_by("id")
    )
    if not rows:
        return 0
    backbone = backbone_load()
    sources = [_image_source(row.image) for row in rows]
    for start, vectors in embed_batches(
        backbone, sources, batch_size=settings.LEARNER["EMBED_BATCH"]
    ):
        batch = rows[start : start + len(vectors)]
        for row, vector in zip(batch, vectors, strict=True):
            row.vector = vector.astype(np.float16).tobytes()
            row.dim = len(vector)
        Embedding.objects.bulk_update(batch, ["vector", "dim"])
    return len(rows)


def _image_source(image: Image):
    try:
        return default_storage.path(image.file.name)
    except NotImplementedError:  # remote storage: stream the file instead
        return image.file.open("rb")


def image_sources(image_ids: list[int]) -> list:
    """The files of these images, in this order, as the learner reads them."""
    images = Image.objects.in_bulk(image_ids)
    return [_image_source(images[pk]) for pk in image_ids]


def embeddings_ensure(*, project: Project) -> int:
    """Compute, here and now, every missing embedding of `project` (used by training,
    which cannot wait for other workers). Returns how many were computed."""
    _embedding_rows_create(project=project)
    ids = list(
        Embedding.objects.filter(
            image__project=project, backbone=backbone_key(), vector__isnull=True
        ).values_list("id", flat=True)
    )
    chunk = settings.LEARNER["EMBED_CHUNK"]
    return sum(
        embeddings_compute(embedding_ids=ids[start : start + chunk])
        for start in range(0, len(ids), chunk)
    )


@dataclass
class ProjectEmbeddings:
    """Every stored embedding of a project, read once: image ids ascending, float32 rows."""

    ids: np.ndarray
    matrix: np.ndarray

    def of(self, image_ids: list[int]) -> np.ndarray:
        """The rows of `image_ids`, in that order; every one must be embedded."""
        wanted = np.asarray(image_ids, dtype=np.int64)
        if len(wanted) == 0:
            return np.zeros((0, self.matrix.shape[1] if self.matrix.ndim == 2 else 0), np.float32)
        rows = np.clip(np.searchsorted(self.ids, wanted), 0, max(len(self.ids) - 1, 0))
        found = (self.ids[rows] == wanted) if len(self.ids) else np.zeros(len(wanted), bool)
        if not found.all():
            raise TrainingError(f"{int((~found).sum())} images have no embedding yet.")
        return self.matrix[rows]


def project_embeddings(*, project: Project) -> ProjectEmbeddings:
    rows = (
        Embedding.objects.filter(
            image__project=project, backbone=backbone_key(), vector__isnull=False
        )
        .order_by("image_id")
        .values_list("image_id", "vector")
    )
    ids, vectors = [], []
    for image_id, vector in rows.iterator(chunk_size=5000):
        ids.append(image_id)
        vectors.append(np.frombuffer(bytes(vector), dtype=np.float16))
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
    return ProjectEmbeddings(ids=np.asarray(ids, dtype=np.int64), matrix=matrix)


def embeddings_of_images(*, image_ids: list[int]) -> np.ndarray:
    """The embeddings of these images in this order, computed here and now where
    missing (and stored, so training and ranking reuse them)."""
    key = backbone_key()
    Embedding.objects.bulk_create(
        [Embedding(image_id=pk, backbone=key) for pk in image_ids], ignore_conflicts=True
    )
    rows = Embedding.objects.filter(image_id__in=image_ids, backbone=key)
    embeddings_compute(
        embedding_ids=list(rows.filter(vector__isnull=True).values_list("id", flat=True))
    )
    vectors = dict(rows.values_list("image_id", "vector"))
    return np.stack(
        [np.frombuffer(bytes(vectors[pk]), dtype=np.float16) for pk in image_ids]
    ).astype(np.float32)
