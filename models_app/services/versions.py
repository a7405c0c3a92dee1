"""Model versions: requested (or refused at once when they cannot succeed), trained in a
worker on the stored embeddings, evaluated on the held-out labels, then activated."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from django_q.tasks import async_task

from labeling.models import Image, LabelClass, Project, Webhook
from labeling.services.webhooks import webhook_event_emit
from models_app.ml.curves import binary_curves
from models_app.ml.finetune import finetune, finetuned_to_bytes, predictor
from models_app.ml.head import (
    TrainedHead,
    head_to_bytes,
    predict_proba,
    train_head_self,
)
from models_app.ml.metrics import evaluate
from models_app.models import ModelVersion
from models_app.services.embeddings import (
    TrainingError,
    backbone_key,
    backbone_load,
    embeddings_ensure,
    image_sources,
    project_embeddings,
)
from models_app.services.options import learner_settings
from models_app.services.ranking import queue_rank, ranking_seed
from models_app.services.tag_versions import tag_training_blocker, tag_version_train

logger = logging.getLogger(__name__)


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
            # Fine-tuning trains a softmax network: single-label projects only, so far.
            fine_tuned=learner.fine_tune and project.kind == Project.Kind.SINGLE,
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
    training images of at least two active classes (the same rule `_dataset` applies);
    a multi-label project, a tag with enough present and absent training images."""
    if project.kind == Project.Kind.MULTI:
        return tag_training_blocker(project=project)
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
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.FAILED,
            error=error,
            finished_at=now,
            duration_seconds=(
                (now - version.started_at).total_seconds() if version.started_at else None
            ),
        )
        version.refresh_from_db()
        _announce(version)


def _announce(version: ModelVersion) -> None:
    """Tell the project's webhooks that `version` finished, in the transaction that
    records its end, once per version (the key): a rerun announces nothing twice."""
    test = version.metrics.get("test") or {}
    succeeded = version.status == ModelVersion.Status.SUCCEEDED
    webhook_event_emit(
        project=version.project,
        event=Webhook.Event.VERSION_SUCCEEDED if succeeded else Webhook.Event.VERSION_FAILED,
        key=f"model_version:{version.pk}",
        data={
            "model_version": {
                "id": version.pk,
                "number": version.number,
                "status": version.status,
                "is_active": version.is_active,
                "trigger": version.trigger,
                "labels_total": version.labels_total,
                "duration_seconds": version.duration_seconds,
                "error": version.error,
                "test": {
                    key: test.get(key)
                    for key in ("n", "accuracy", "accuracy_ci", "macro_f1", "map", "ece")
                    if key in test
                },
            }
        },
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
    The queue is then ranked with the project's strategy (randomness seeded by its
    labels, `ranking_seed`: never by a database id, so a rerun ranks alike).
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
        _announce(version)
    return version


def _train(version: ModelVersion) -> dict:
    project = version.project
    _progress(version, "Embedding images")
    embeddings_ensure(project=project)
    _progress(version, "Training")
    if project.kind == Project.Kind.MULTI:
        return tag_version_train(version, lambda text: _progress(version, text))
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
            if len(data.class_ids) == 2:
                # A binary project: the second class is the positive one, and the larger
                # probability wins, so its threshold is one half.
                metrics[split]["binary"] = binary_curves(data.y[split] == 1, proba[:, 1], 0.5)
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
        seed=ranking_seed(project=project),
        version_id=version.pk,
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
        image_sources(data.ids["train"]),
        data.y["train"],
        val_paths=image_sources(data.ids["val"]),
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
    return (lambda image_ids: network(image_sources(image_ids))), finetuned_to_bytes(tuned, probe)
