"""Writes of the learner: embeddings, model versions and the suggestions they make.

The heavy work (embedding, training) runs in django-q2 workers through `tasks.py`; the
web process only requests it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django_q.tasks import async_task

from labeling.models import ClassSplit, Image, LabelClass, Project, SplitAssignment
from labeling.services import Suggestion, image_suggestions_write, split_suggestions_write
from models_app.ml.backbone import Backbone, cached_backbone
from models_app.ml.embed import embed_batches
from models_app.ml.finetune import finetune, finetuned_from_bytes, finetuned_to_bytes, predictor
from models_app.ml.head import (
    TrainedHead,
    head_from_bytes,
    head_to_bytes,
    predict_proba,
    train_head_self,
)
from models_app.ml.metrics import evaluate
from models_app.ml.strategies import rank
from models_app.models import Embedding, LearnerSettings, ModelVersion

logger = logging.getLogger(__name__)


class TrainingError(Exception):
    """A training run that cannot go ahead, with a message for the person who asked."""


# --- backbone and embeddings ---------------------------------------------------------


def backbone_key() -> str:
    """Names the features an embedding holds: the model, and its weights if not default."""
    config = settings.LEARNER
    weights = config["BACKBONE_WEIGHTS"]
    return f"{config['BACKBONE']}:{weights.rsplit('/', 1)[-1]}" if weights else config["BACKBONE"]


def backbone_load() -> Backbone:
    config = settings.LEARNER
    return cached_backbone(config["BACKBONE"], config["BACKBONE_WEIGHTS"], config["DEVICE"])


def learner_settings(*, project: Project) -> LearnerSettings:
    return LearnerSettings.objects.get_or_create(project=project)[0]


@transaction.atomic
def learner_settings_update(*, project: Project, **changes) -> LearnerSettings:
    """Change how `project` trains (retrain_every, head_kind, fine_tune,
    fine_tune_epochs) and ranks its queue (strategy); the next version uses them, and a
    new strategy re-ranks the queue in the background at once."""
    allowed = {"retrain_every", "head_kind", "fine_tune", "fine_tune_epochs", "strategy"}
    if set(changes) - allowed:
        raise ValidationError(f"Unknown settings: {', '.join(sorted(set(changes) - allowed))}.")
    learner = LearnerSettings.objects.select_for_update().get(
        pk=learner_settings(project=project).pk
    )
    strategy_changed = "strategy" in changes and changes["strategy"] != learner.strategy
    for field, value in changes.items():
        setattr(learner, field, value)
    learner.full_clean()
    learner.save()
    if strategy_changed:
        transaction.on_commit(
            lambda: async_task(
                "models_app.tasks.rerank_project", project.pk, task_name=f"rank {project.pk}"
            )
        )
    return learner


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


# --- model versions ------------------------------------------------------------------


def model_version_request(
    *, project: Project, trigger: str, user: AbstractBaseUser | None = None
) -> ModelVersion:
    """Ask for a new model version of `project` and enqueue its training.

    At most one version per project is queued or running: asking again returns that
    one. A running version whose worker is gone (older than the task timeout) is marked
    failed first, so a crash never blocks retraining for good. A training that cannot
    succeed (fewer than two active classes with training labels) is refused at once
    with a ValidationError saying why, instead of failing minutes later in the worker.
    """
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        pending = ModelVersion.objects.filter(
            project=project, status__in=ModelVersion.PENDING
        ).first()
        if pending and not _is_lost(pending):
            return pending
        if pending:
            _fail(pending, "The worker stopped before the training finished.")
        blocker = training_blocker(project=project)
        if blocker:
            raise ValidationError(blocker)
        number = (project.model_versions.aggregate(n=Max("number"))["n"] or 0) + 1
        learner = learner_settings(project=project)
        version = ModelVersion.objects.create(
            project=project,
            number=number,
            trigger=trigger,
            requested_by=user,
            backbone=backbone_key(),
            head_kind=learner.head_kind,
            strategy=learner.strategy,
            fine_tuned=learner.fine_tune,
        )
        transaction.on_commit(
            lambda: async_task(
                "models_app.tasks.train_model_version",
                version.pk,
                task_name=version.task_name,
            )
        )
    return version


def training_blocker(*, project: Project) -> str | None:
    """Why a training of `project` cannot succeed now, or None: it needs labeled
    training images of at least two active classes (the same rule `_dataset` applies)."""
    counts = dict(
        Image.objects.filter(
            project=project,
            label__is_active=True,
            split=Image.Split.TRAIN,
            status=Image.Status.ACTIVE,
        )
        .values_list("label__name")
        .annotate(n=Count("id"))
    )
    if len(counts) >= 2:
        return None
    if not LabelClass.objects.filter(project=project, is_active=True).exists():
        return "Nothing to train yet: the project has no classes. Add classes and label images."
    have = ", ".join(f"{name}: {n}" for name, n in counts.items()) or "none yet"
    return (
        "Training needs labeled training images of at least two classes "
        f"(training labels so far: {have}). Label more images first."
    )


def _is_lost(version: ModelVersion) -> bool:
    if version.status != ModelVersion.Status.RUNNING or version.started_at is None:
        return False
    return version.started_at < timezone.now() - timedelta(seconds=settings.Q_CLUSTER["timeout"])


def _fail(version: ModelVersion, error: str) -> None:
    now = timezone.now()
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.FAILED,
        error=error,
        finished_at=now,
        duration_seconds=(now - version.started_at).total_seconds() if version.started_at else None,
    )


@dataclass
class _Dataset:
    class_ids: list[int]
    ids: dict[str, list[int]]
    y: dict[str, np.ndarray]
    counts: dict[str, dict[str, int]]
    total: int
    # Where each labeled image came from, per split, in the order of `ids`: "feedback"
    # for predictions sent in real use, "uploaded" for the rest.
    origins: dict[str, list[str]]


def _origin(source: str) -> str:
    return "feedback" if source == Image.Source.FEEDBACK else "uploaded"


def _dataset(project: Project) -> _Dataset:
    classes = list(
        LabelClass.objects.filter(project=project, is_active=True).order_by("order", "id")
    )
    # Images a reviewer removed or marked ambiguous are out of training and evaluation.
    labeled = list(
        Image.objects.filter(project=project, label__in=classes, status=Image.Status.ACTIVE)
        .values_list("id", "label_id", "split", "source")
        .order_by("id")
    )
    counts = {str(c.pk): {"name": c.name, "train": 0, "val": 0, "test": 0} for c in classes}
    for _, label_id, split, _ in labeled:
        if split in ("train", "val", "test"):
            counts[str(label_id)][split] += 1
    class_ids = [c.pk for c in classes if counts[str(c.pk)]["train"] > 0]
    if len(class_ids) < 2:
        have = ", ".join(f"{v['name']}: {v['train']}" for v in counts.values()) or "no classes"
        raise TrainingError(
            f"Training needs labeled training images of at least two active classes ({have})."
        )
    index = {pk: i for i, pk in enumerate(class_ids)}
    ids: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    origins: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for image_id, label_id, split, source in labeled:
        if split in ids and label_id in index:
            ids[split].append(image_id)
            ys[split].append(index[label_id])
            origins[split].append(_origin(source))
    return _Dataset(
        origins=origins,
        class_ids=class_ids,
        ids=ids,
        y={k: np.asarray(v, dtype=np.int64) for k, v in ys.items()},
        counts=counts,
        total=len(labeled),
    )


def _progress(version: ModelVersion, text: str) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(progress=text)


def model_version_train(*, version_id: int) -> ModelVersion:
    """Train, evaluate and score one requested version, then make it the active one.

    Idempotent: a version already finished is returned as it is, and a rerun after a
    crash starts over. Any failure is recorded on the version (status failed, with the
    error) and the previously active version keeps serving. Suggestions are written last,
    once the new model has trained and been evaluated, just before it is activated.
    The queue is then ranked with the project's strategy (randomness seeded by the
    version's id).
    """
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version_id)
        if version.status in (ModelVersion.Status.SUCCEEDED, ModelVersion.Status.FAILED):
            return version
        version.status = ModelVersion.Status.RUNNING
        version.started_at = timezone.now()
        version.error = ""
        version.save(update_fields=["status", "started_at", "error"])
    started = time.monotonic()
    try:
        outcome = _train(version)
    except Exception as error:  # noqa: BLE001 - every failure is recorded, none is lost
        logger.exception("training %s failed", version)
        message = (
            str(error) if isinstance(error, TrainingError) else f"{type(error).__name__}: {error}"
        )
        _fail(version, message)
        version.refresh_from_db()
        return version

    with transaction.atomic():
        ModelVersion.objects.filter(project=version.project, is_active=True).update(is_active=False)
        for field, value in outcome.items():
            setattr(version, field, value)
        version.status = ModelVersion.Status.SUCCEEDED
        version.is_active = True
        version.progress = ""
        version.finished_at = timezone.now()
        version.duration_seconds = time.monotonic() - started
        version.save()
    return version


def _train(version: ModelVersion) -> dict:
    project = version.project
    _progress(version, "Embedding images")
    embeddings_ensure(project=project)
    _progress(version, "Training")
    data = _dataset(project)
    embeddings = project_embeddings(project=project)
    x = {split: embeddings.of(ids) for split, ids in data.ids.items() if ids}
    device = str(backbone_load().device)
    labeled = set(
        Image.objects.filter(project=project, label__isnull=False).values_list("id", flat=True)
    )
    unlabeled = np.fromiter((pk not in labeled for pk in embeddings.ids.tolist()), bool)
    head = train_head_self(
        x["train"],
        data.y["train"],
        len(data.class_ids),
        x_pool=embeddings.matrix[unlabeled],
        x_val=x.get("val"),
        y_val=data.y["val"] if "val" in x else None,
        kind=version.head_kind,
        device=device,
    )
    metrics = {"temperature": head.temperature, "epochs": head.epochs, "classes": data.class_ids}

    def proba_for(image_ids: list[int]) -> np.ndarray:
        return predict_proba(head, embeddings.of(image_ids), device=device)

    artifact_bytes = head_to_bytes(head)
    if version.fine_tuned:
        proba_for, artifact_bytes = _fine_tune(version, data, head, metrics)
    for split in ("test", "val"):
        if data.ids[split]:
            proba = proba_for(data.ids[split])
            metrics[split] = evaluate(data.y[split], proba, len(data.class_ids))
            if split == "test":
                metrics["test_by_source"] = _evaluate_by_origin(data, proba)
                parents = _evaluate_parents(data, proba)
                if parents:
                    metrics["test_parents"] = parents
    metrics["sources"] = {
        split: {o: origins.count(o) for o in sorted(set(origins))}
        for split, origins in data.origins.items()
    }
    artifact = default_storage.save(
        f"models/{project.pk}/v{version.number}-{uuid.uuid4().hex[:8]}.pt",
        ContentFile(artifact_bytes),
    )
    _progress(version, "Scoring and ranking unlabeled images")
    queue_rank(
        project=project,
        embeddings=embeddings,
        proba_for=proba_for,
        class_ids=data.class_ids,
        seed=version.pk,
    )
    return {
        "class_ids": data.class_ids,
        "label_counts": data.counts,
        "labels_total": data.total,
        "metrics": metrics,
        "artifact": artifact,
    }


def _evaluate_by_origin(data: _Dataset, proba: np.ndarray) -> dict:
    """Test metrics of uploaded and of feedback images apart, so that drift between the
    data a model was built on and the data it meets in use shows."""
    origins = np.asarray(data.origins["test"])
    return {
        origin: evaluate(
            data.y["test"][origins == origin],
            proba[origins == origin],
            len(data.class_ids),
        )
        for origin in sorted(set(data.origins["test"]))
    }


def _evaluate_parents(data: _Dataset, proba: np.ndarray) -> dict | None:
    """Test metrics one level up the class hierarchy (a class without a parent stands
    for itself): probabilities of children are summed into their parent's. None when
    no class has a parent."""
    parent_of = dict(
        LabelClass.objects.filter(pk__in=data.class_ids).values_list("id", "parent_id")
    )
    if not any(parent_of.values()):
        return None
    groups = list(dict.fromkeys(parent_of[c] or c for c in data.class_ids))
    column = {g: i for i, g in enumerate(groups)}
    members = np.asarray([column[parent_of[c] or c] for c in data.class_ids])
    grouped = np.zeros((len(proba), len(groups)), dtype=np.float32)
    for j, g in enumerate(members):
        grouped[:, g] += proba[:, j]
    return {
        "classes": groups,
        **evaluate(members[data.y["test"]], grouped, len(groups)),
    }


def _fine_tune(version: ModelVersion, data: _Dataset, probe: TrainedHead, metrics: dict):
    """Fine-tune the whole network from the probe; returns its probability function and
    its artifact. Scoring then runs the network over image files, not cached embeddings."""
    _progress(version, "Fine-tuning the backbone")
    config = settings.LEARNER
    weights = Path(config["BACKBONE_WEIGHTS"]) if config["BACKBONE_WEIGHTS"] else None
    tuned = finetune(
        probe,
        _sources(data.ids["train"]),
        data.y["train"],
        val_paths=_sources(data.ids["val"]),
        y_val=data.y["val"],
        backbone_name=config["BACKBONE"],
        weights=weights,
        epochs=learner_settings(project=version.project).fine_tune_epochs,
        batch_size=config["EMBED_BATCH"],
        device=config["DEVICE"],
    )
    metrics.update(fine_tune_epochs=tuned.epochs, temperature=tuned.temperature)
    network = predictor(
        tuned, probe, backbone_name=config["BACKBONE"], weights=weights, device=config["DEVICE"]
    )
    return (lambda image_ids: network(_sources(image_ids))), finetuned_to_bytes(tuned, probe)


def _sources(image_ids: list[int]) -> list:
    images = Image.objects.in_bulk(image_ids)
    return [_image_source(images[pk]) for pk in image_ids]


def queue_rank(
    *,
    project: Project,
    embeddings: ProjectEmbeddings | None = None,
    proba_for: Callable[[list[int]], np.ndarray] | None = None,
    class_ids: list[int] | None = None,
    seed: int | None = None,
) -> int:
    """Rank the unlabeled, embedded images of `project` with its query strategy and
    store each one's queue priority, and, given a model (`proba_for` and the classes
    its outputs are), its suggested class and confidence. Without a model this is the
    cold start: typical, diverse images first (or random, as the strategy says).
    Returns how many images were ranked."""
    embeddings = embeddings or project_embeddings(project=project)
    learner = learner_settings(project=project)
    labeled_ids = set(
        Image.objects.filter(project=project, label__isnull=False).values_list("id", flat=True)
    )
    labeled = np.fromiter((pk in labeled_ids for pk in embeddings.ids.tolist()), bool)
    pool_ids = embeddings.ids[~labeled].tolist()
    if not pool_ids:
        return 0
    proba = None
    if proba_for is not None:
        proba = np.zeros((len(labeled), len(class_ids)), dtype=np.float32)
        proba[~labeled] = proba_for(pool_ids)
    priority = rank(
        learner.strategy,
        embeddings=embeddings.matrix,
        labeled=labeled,
        proba=proba,
        n_classes=len(class_ids) if class_ids else project.classes.filter(is_active=True).count(),
        batch_size=learner.retrain_every or 50,
        seed=seed,
    )[~labeled]
    if proba is None:
        suggestions = [
            Suggestion(image_id=pk, class_id=None, confidence=None, priority=float(p))
            for pk, p in zip(pool_ids, priority, strict=True)
        ]
    else:
        pool_proba = proba[~labeled]
        best = pool_proba.argmax(axis=1)
        confidence = pool_proba.max(axis=1)
        suggestions = [
            Suggestion(
                image_id=pk,
                class_id=class_ids[int(best[i])],
                confidence=float(confidence[i]),
                priority=float(priority[i]),
            )
            for i, pk in enumerate(pool_ids)
        ]
    return image_suggestions_write(project=project, suggestions=suggestions)


def queue_rerank(*, project: Project, seed: int | None = None) -> int:
    """Rank the queue again now, with the active model if there is one (new images get
    its suggestions too) or as a cold start. A fine-tuned model runs over image files,
    too slow to repeat here: its queue keeps its ranking until the next version."""
    active = ModelVersion.objects.filter(project=project, is_active=True).first()
    if active is None:
        return queue_rank(project=project, seed=seed)
    if active.fine_tuned or not active.artifact:
        return 0
    head = _head_of(active.artifact)
    embeddings = project_embeddings(project=project)
    device = str(backbone_load().device)
    return queue_rank(
        project=project,
        embeddings=embeddings,
        proba_for=lambda ids: predict_proba(head, embeddings.of(ids), device=device),
        class_ids=active.class_ids,
        seed=seed,
    )


# --- predictions with the active model -----------------------------------------------


@lru_cache(maxsize=8)
def _head_of(artifact: str) -> TrainedHead:
    # Artifacts are never rewritten (each name is unique), so caching by name is safe.
    with default_storage.open(artifact, "rb") as f:
        return head_from_bytes(f.read())


@lru_cache(maxsize=2)
def _network_of(artifact: str) -> Callable[[list], np.ndarray]:
    config = settings.LEARNER
    with default_storage.open(artifact, "rb") as f:
        tuned, probe = finetuned_from_bytes(f.read())
    weights = Path(config["BACKBONE_WEIGHTS"]) if config["BACKBONE_WEIGHTS"] else None
    return predictor(
        tuned, probe, backbone_name=config["BACKBONE"], weights=weights, device=config["DEVICE"]
    )


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


@dataclass
class ActiveModel:
    """The model a project serves predictions with, loaded from its artifact."""

    version: ModelVersion

    def proba(self, image_ids: list[int]) -> np.ndarray:
        """Calibrated class probabilities of these images (columns: version.class_ids)."""
        if not image_ids:
            return np.zeros((0, len(self.version.class_ids)), np.float32)
        if self.version.fine_tuned:
            return _network_of(self.version.artifact)(_sources(image_ids))
        x = embeddings_of_images(image_ids=image_ids)
        head = _head_of(self.version.artifact)
        return predict_proba(head, x, device=str(backbone_load().device))


def active_model(*, project: Project) -> ActiveModel | None:
    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    if version is None or not version.artifact:
        return None
    return ActiveModel(version=version)


# --- class splits --------------------------------------------------------------------


def split_suggest(*, split: ClassSplit) -> int:
    """Suggest a new class, with its confidence, for every image of a split class the
    expert has not decided: a head trained on the expert's choices (at least one per
    new class) and self-trained on the rest of the class's images, on their stored
    embeddings. Returns how many suggestions were written."""
    decided = dict(
        split.assignments.filter(
            kind__in=SplitAssignment.DECIDED, image__label=split.source
        ).values_list("image_id", "label_class_id")
    )
    targets = list(split.targets.order_by("order", "id").values_list("id", flat=True))
    missing = [t for t in targets if t not in set(decided.values())]
    if missing:
        names = ", ".join(LabelClass.objects.filter(pk__in=missing).values_list("name", flat=True))
        raise ValidationError(f"Choose at least one image for each new class (none yet: {names}).")
    ids = list(
        Image.objects.filter(project=split.project, label=split.source)
        .order_by("id")
        .values_list("id", flat=True)
    )
    rest = [pk for pk in ids if pk not in decided]
    embeddings = project_embeddings(project=split.project)
    try:
        x_seed = embeddings.of(list(decided))
        x_rest = embeddings.of(rest)
    except TrainingError as error:
        raise ValidationError(f"{error} Wait for the worker to embed them.") from None
    index = {t: i for i, t in enumerate(targets)}
    y_seed = np.asarray([index[c] for c in decided.values()], dtype=np.int64)
    device = str(backbone_load().device)
    head = train_head_self(x_seed, y_seed, len(targets), x_pool=x_rest, device=device)
    proba = predict_proba(head, x_rest, device=device) if rest else np.zeros((0, len(targets)))
    return split_suggestions_write(
        split=split,
        suggestions=[
            (pk, targets[int(p.argmax())], float(p.max()))
            for pk, p in zip(rest, proba, strict=True)
        ],
    )
