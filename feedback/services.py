"""Writes of the feedback loop: predictions in real use, their confirmations and
corrections, and the label-quality review.

Predictions run in django-q2 workers (the web process never runs the backbone); the
web process stores the images, enqueues the work and may wait for it briefly.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from feedback.models import FeedbackSettings, LabelScore, NearDuplicate, Prediction, ReviewScan
from labeling import services as labeling_services
from labeling.models import Image, LabelClass, Project
from labeling.services import FileResult, Upload
from models_app import services as learner

logger = logging.getLogger(__name__)

MAX_TOP_K = 20


def feedback_settings(*, project: Project) -> FeedbackSettings:
    return FeedbackSettings.objects.get_or_create(project=project)[0]


@transaction.atomic
def feedback_settings_update(*, project: Project, uncertain_below: float) -> FeedbackSettings:
    """Set the confidence (a fraction, 0 to 1) under which a prediction enters the
    labeling queue. Refuses anything else, NaN included, with nothing saved. Curators
    only (callers check)."""
    # NaN passes the model's range validators (every comparison with it is false).
    # numbers.Real admits numpy's floats, which a caller's arithmetic on scores gives.
    number = isinstance(uncertain_below, numbers.Real) and not isinstance(uncertain_below, bool)
    if not (number and 0.0 <= uncertain_below <= 1.0):
        raise ValidationError(
            {"uncertain_below": "The threshold is a confidence from 0 to 1 (0.6 is 60%)."}
        )
    uncertain_below = float(uncertain_below)
    current = FeedbackSettings.objects.select_for_update().get(
        pk=feedback_settings(project=project).pk
    )
    current.uncertain_below = uncertain_below
    current.full_clean()
    current.save()
    return current


# --- predictions ---------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionBatch:
    predictions: list[Prediction]
    files: list[FileResult]


def predictions_request(
    *,
    project: Project,
    files: Iterable[Upload],
    user: AbstractBaseUser,
    top_k: int = 3,
) -> PredictionBatch:
    """Keep every acceptable image of `files` in `project` (source feedback, out of the
    labeling queue) and ask a worker to predict each with the active model.

    Refused when the project has no trained model yet. Each image is stored in its own
    transaction (a bad file costs only itself, see `images_ingest`); an image already in
    the project is predicted again, not stored twice. The work is enqueued once the
    rows are committed. Any member may call it.
    """
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValidationError({"top_k": f"top_k must be between 1 and {MAX_TOP_K}."})
    labeling_services.project_require_kind(
        project=project, kind=Project.Kind.SINGLE, what="Predicting"
    )
    if learner.active_model(project=project) is None:
        raise ValidationError(
            {"detail": "This project has no trained model yet: label some images and retrain."}
        )
    results = labeling_services.images_ingest(
        project=project, files=files, user=user, source=Image.Source.FEEDBACK, in_queue=False
    )
    image_ids = [r.image_id for r in results if r.image_id is not None]
    with transaction.atomic():
        predictions = [
            Prediction.objects.create(project=project, image_id=pk, requested_by=user, top_k=top_k)
            for pk in image_ids
        ]
        if predictions:
            ids = [p.pk for p in predictions]
            transaction.on_commit(
                lambda: async_task(
                    "feedback.tasks.predict", ids, task_name=f"predict {ids[0]}+{len(ids)}"
                )
            )
    return PredictionBatch(predictions=predictions, files=results)


def predictions_run(*, prediction_ids: Sequence[int]) -> int:
    """Answer the pending predictions among `prediction_ids` with their project's active
    model: top-k classes with calibrated confidences and the version that answered.

    A prediction less confident than the project's threshold, or whose image nearly
    duplicates a labeled image of another class, is marked uncertain and its image
    joins the labeling queue, which is then ranked again so it takes its place among
    the rest. Idempotent: only pending predictions are touched. A failure is recorded
    on the predictions it concerns. Returns how many were answered.
    """
    answered = 0
    pending = Prediction.objects.filter(pk__in=prediction_ids, status=Prediction.Status.PENDING)
    for project_id in set(pending.values_list("project_id", flat=True)):
        rows = list(pending.filter(project_id=project_id).order_by("id"))
        try:
            answered += _predict(Project.objects.get(pk=project_id), rows)
        except Exception as error:  # noqa: BLE001 - recorded on the rows, never lost
            logger.exception("prediction of %s failed", [p.pk for p in rows])
            Prediction.objects.filter(
                pk__in=[p.pk for p in rows], status=Prediction.Status.PENDING
            ).update(status=Prediction.Status.FAILED, error=f"{type(error).__name__}: {error}")
    return answered


def _predict(project: Project, rows: list[Prediction]) -> int:
    model = learner.active_model(project=project)
    if model is None:
        Prediction.objects.filter(pk__in=[p.pk for p in rows]).update(
            status=Prediction.Status.FAILED, error="The project has no trained model."
        )
        return 0
    image_ids = [p.image_id for p in rows]
    # Stored now whatever the model (a fine-tuned one reads the files): the duplicate
    # check, the queue's ranking and the next training all need them.
    x = learner.embeddings_of_images(image_ids=image_ids)
    proba = model.proba(image_ids)
    class_ids = model.version.class_ids
    conflicts = _near_duplicate_conflicts(project, image_ids, x, proba.argmax(axis=1), class_ids)
    threshold = feedback_settings(project=project).uncertain_below
    names = dict(LabelClass.objects.filter(project=project).values_list("id", "name"))
    uncertain = []
    for row, p, conflict in zip(rows, proba, conflicts, strict=True):
        order = np.argsort(-p)[: row.top_k]
        row.top = [{"class_id": class_ids[i], "confidence": float(p[i])} for i in order]
        row.predicted_class_id = class_ids[int(order[0])]
        row.confidence = float(p[order[0]])
        row.model_version = model.version
        row.status = Prediction.Status.PREDICTED
        if row.confidence < threshold:
            row.uncertain_reason = f"Confidence {row.confidence:.0%} is under {threshold:.0%}."
        elif conflict is not None:
            other, label_id = conflict
            row.uncertain_reason = (
                f"Near-duplicate of image #{other}, labeled {names.get(label_id, label_id)}."
            )
        if row.uncertain_reason:
            uncertain.append(row.image_id)
    with transaction.atomic():
        Prediction.objects.bulk_update(
            rows,
            [
                "top",
                "predicted_class",
                "confidence",
                "model_version",
                "status",
                "uncertain_reason",
            ],
        )
        labeling_services.images_queue_add(project=project, image_ids=uncertain)
    if uncertain:
        learner.queue_rerank(project=project)
    return len(rows)


def _near_duplicate_conflicts(
    project: Project,
    image_ids: list[int],
    x: np.ndarray,
    predicted: np.ndarray,
    class_ids: list[int],
) -> list[tuple[int, int] | None]:
    """For each image, (labeled image id, its class) when its nearest labeled image is a
    near-duplicate labeled with another class than the prediction; else None."""
    labeled = dict(
        Image.objects.filter(project=project, label__isnull=False, status=Image.Status.ACTIVE)
        .exclude(pk__in=image_ids)
        .values_list("id", "label_id")
    )
    embeddings = learner.project_embeddings(project=project)
    have = [pk for pk in embeddings.ids.tolist() if pk in labeled]
    best, similarity = learner.nearest_neighbours(queries=x, x=embeddings.of(have))
    out: list[tuple[int, int] | None] = []
    limit = settings.FEEDBACK["NEAR_DUPLICATE_SIMILARITY"]
    for b, s, p in zip(best.tolist(), similarity.tolist(), predicted.tolist(), strict=True):
        label_id = labeled[have[b]] if b >= 0 else None
        out.append(
            (have[b], label_id) if b >= 0 and s >= limit and label_id != class_ids[p] else None
        )
    return out


@transaction.atomic
def prediction_resolve(
    *, prediction: Prediction, label_class: LabelClass | None, user: AbstractBaseUser
) -> Prediction:
    """Confirm a prediction (`label_class` None or the predicted class) or correct it
    (another class). Either way its image becomes a labeled image of the dataset (its
    split drawn like any other), counting toward the next automatic retraining, and
    the prediction records who decided, when, and the label row it made. Deciding again
    later relabels the image and keeps both rows in its history. Any member may call it.
    """
    prediction = Prediction.objects.select_for_update().get(pk=prediction.pk)
    if prediction.status not in (
        Prediction.Status.PREDICTED,
        Prediction.Status.CONFIRMED,
        Prediction.Status.CORRECTED,
    ):
        raise ValidationError(
            {"detail": f"This prediction is {prediction.status}: nothing to confirm."}
        )
    label_class = label_class or prediction.predicted_class
    annotation = labeling_services.annotation_create(
        image=prediction.image, label_class=label_class, annotator=user
    )
    prediction.status = (
        Prediction.Status.CONFIRMED
        if label_class.pk == prediction.predicted_class_id
        else Prediction.Status.CORRECTED
    )
    prediction.resolved_class = label_class
    prediction.resolved_by = user
    prediction.resolved_at = timezone.now()
    prediction.annotation = annotation
    prediction.save(
        update_fields=["status", "resolved_class", "resolved_by", "resolved_at", "annotation"]
    )
    return prediction


# --- the review ----------------------------------------------------------------------


def review_scan_request(*, project: Project, user: AbstractBaseUser | None) -> ReviewScan:
    """Ask a worker to score every label of `project` and find near-duplicates. One scan
    per project at a time: asking again while one waits or runs returns it."""
    labeling_services.project_require_kind(
        project=project, kind=Project.Kind.SINGLE, what="The mistakes review"
    )
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        pending = ReviewScan.objects.filter(
            project=project, status__in=(ReviewScan.Status.QUEUED, ReviewScan.Status.RUNNING)
        ).first()
        if pending:
            return pending
        scan = ReviewScan.objects.create(project=project, requested_by=user)
        transaction.on_commit(
            lambda: async_task("feedback.tasks.scan", scan.pk, task_name=f"review {project.pk}")
        )
    return scan


def review_scan_run(*, scan_id: int) -> ReviewScan:
    """Score every active label of the scan's project out of sample and store the
    scores and the near-duplicate pairs among labeled images, replacing the previous
    scan's in one transaction (the review page never sees half of each). Idempotent:
    a finished scan is returned as it is. Failures are recorded on the scan."""
    scan = ReviewScan.objects.select_related("project").get(pk=scan_id)
    if scan.status in (ReviewScan.Status.SUCCEEDED, ReviewScan.Status.FAILED):
        return scan
    ReviewScan.objects.filter(pk=scan.pk).update(
        status=ReviewScan.Status.RUNNING, started_at=timezone.now()
    )
    try:
        _scan(scan)
    except Exception as error:  # noqa: BLE001 - recorded on the scan
        logger.exception("review scan %s failed", scan.pk)
        message = (
            " ".join(error.messages)
            if isinstance(error, ValidationError)
            else f"{type(error).__name__}: {error}"
        )
        ReviewScan.objects.filter(pk=scan.pk).update(
            status=ReviewScan.Status.FAILED, error=message, finished_at=timezone.now()
        )
    scan.refresh_from_db()
    return scan


def _scan(scan: ReviewScan) -> None:
    project = scan.project
    learner.embeddings_ensure(project=project)
    rows = list(
        Image.objects.filter(
            project=project,
            label__isnull=False,
            label__is_active=True,
            status=Image.Status.ACTIVE,
        )
        .order_by("id")
        .values_list("id", "label_id", "content_hash", "label__name")
    )
    class_ids = sorted({label_id for _, label_id, _, _ in rows})
    if len(class_ids) < 2 or len(rows) < 10:
        raise ValidationError("A review needs at least 10 labeled images of two classes.")
    index = {pk: i for i, pk in enumerate(class_ids)}
    ids = [pk for pk, _, _, _ in rows]
    y = np.asarray([index[label_id] for _, label_id, _, _ in rows], dtype=np.int64)
    x = learner.project_embeddings(project=project).of(ids)
    config = settings.FEEDBACK
    quality = learner.label_scores(
        x=x,
        y=y,
        n_classes=len(class_ids),
        folds=config["REVIEW_FOLDS"],
        # The folds are drawn from the labels themselves, not from the scan's id: the
        # same labels get the same scores in any database and any run.
        seed=learner.labels_seed((content_hash, name) for _, _, content_hash, name in rows),
    )
    pairs = learner.near_duplicates(x=x, similarity=config["NEAR_DUPLICATE_SIMILARITY"])
    with transaction.atomic():
        LabelScore.objects.filter(image__project=project).delete()
        LabelScore.objects.bulk_create(
            [
                LabelScore(
                    image_id=pk,
                    scan=scan,
                    label_class_id=class_ids[y[i]],
                    quality=float(quality.quality[i]),
                    is_issue=bool(quality.is_issue[i]),
                    suggested_class_id=class_ids[int(quality.suggested[i])],
                    suggested_confidence=float(quality.suggested_proba[i]),
                )
                for i, pk in enumerate(ids)
            ],
            batch_size=2000,
        )
        NearDuplicate.objects.filter(scan__project=project).delete()
        NearDuplicate.objects.bulk_create(
            [
                NearDuplicate(scan=scan, first_id=ids[i], second_id=ids[j], similarity=s)
                for i, j, s in pairs
            ],
            batch_size=2000,
        )
        ReviewScan.objects.filter(pk=scan.pk).update(
            status=ReviewScan.Status.SUCCEEDED,
            finished_at=timezone.now(),
            labeled=len(ids),
            issues=int(quality.is_issue.sum()),
            duplicate_pairs=len(pairs),
        )


REVIEW_CHOICES = ("keep", "ambiguous", "remove", "restore", "relabel")


def review_decide(
    *,
    image: Image,
    action: str,
    reviewer: AbstractBaseUser,
    label_class: LabelClass | None = None,
) -> Image:
    """A reviewer's decision on an image: keep its label, relabel it (`label_class`),
    mark it ambiguous, remove it from the dataset (soft) or restore it. Each is one
    Annotation history row. Curators only (callers check)."""
    if action not in REVIEW_CHOICES:
        raise ValidationError({"action": f"Choose one of: {', '.join(REVIEW_CHOICES)}."})
    if action == "relabel":
        if label_class is None:
            raise ValidationError({"label_class": "Relabeling needs the new class."})
        labeling_services.annotation_create(
            image=image, label_class=label_class, annotator=reviewer
        )
    else:
        labeling_services.image_review(image=image, action=action, reviewer=reviewer)
    image.refresh_from_db()
    return image
