"""Predictions in real use and what people make of them: a class with its top-k
(single-label projects) or every tag's probability against its threshold (multi-label
projects), confirmed or corrected into the dataset.

Predictions run in django-q2 workers (the web process never runs the backbone); the
web process stores the images, enqueues the work and may wait for it briefly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from feedback.models import Prediction
from feedback.services.options import feedback_settings
from feedback.services.tags import tag_states
from labeling import services as labeling_services
from labeling.models import Image, LabelClass, Project, TagAnnotation, Webhook
from labeling.services import FileResult, Upload
from models_app import services as learner

logger = logging.getLogger(__name__)

MAX_TOP_K = 20


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
    labeling queue) and ask a worker to predict each with the active model (classes,
    or tags in a multi-label project, where `top_k` has no use).

    Refused when the project has no trained model yet. Each image is stored in its own
    transaction (a bad file costs only itself, see `images_ingest`); an image already in
    the project is predicted again, not stored twice. The work is enqueued once the
    rows are committed. Any member may call it.
    """
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValidationError({"top_k": f"top_k must be between 1 and {MAX_TOP_K}."})
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
    model: top-k classes with calibrated confidences and the version that answered, or
    in a multi-label project every tag's probability, its threshold and whether it is
    predicted present (probability at least the threshold).

    A prediction less confident than the project's threshold (for tags: its least sure
    tag decision, p for a tag predicted present and 1 - p for one predicted absent), or
    whose image nearly duplicates a labeled image of another class (for tags: a tagged
    image whose saved tags disagree with the prediction), is marked uncertain and its image
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
    if model.version.is_multi_label:
        return _predict_tags(project, rows, model)
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
    return _store(project, rows, ["top", "predicted_class"], uncertain)


def _predict_tags(project: Project, rows: list[Prediction], model) -> int:
    image_ids = [p.image_id for p in rows]
    x = learner.embeddings_of_images(image_ids=image_ids)
    proba = model.proba(image_ids)
    tag_ids = list(model.version.class_ids)
    thresholds = np.asarray(model.thresholds, dtype=np.float64)
    if len(thresholds) != len(tag_ids):
        raise ValueError(f"version {model.version.number} stores no threshold for every tag")
    present = proba >= thresholds[None, :]
    conflicts = _tag_conflicts(project, image_ids, x, present, tag_ids)
    limit = feedback_settings(project=project).uncertain_below
    names = dict(LabelClass.objects.filter(project=project).values_list("id", "name"))
    uncertain = []
    for row, p, chosen, conflict in zip(rows, proba, present, conflicts, strict=True):
        decision = np.where(chosen, p, 1.0 - p)
        least = int(np.argmin(decision))
        row.tag_scores = [
            {
                "tag_id": tag_ids[t],
                "probability": float(p[t]),
                "threshold": float(thresholds[t]),
                "present": bool(chosen[t]),
            }
            for t in range(len(tag_ids))
        ]
        row.predicted_tags = [tag_ids[t] for t in np.flatnonzero(chosen)]
        row.confidence = float(decision[least])
        row.model_version = model.version
        row.status = Prediction.Status.PREDICTED
        if row.confidence < limit:
            state = "present" if chosen[least] else "absent"
            name = names.get(tag_ids[least], tag_ids[least])
            row.uncertain_reason = (
                f"Least sure about {name}: {row.confidence:.0%} that it is {state}, "
                f"under {limit:.0%}."
            )[:300]
        elif conflict is not None:
            other, tagged = conflict
            listed = ", ".join(sorted(str(names.get(t, t)) for t in tagged)) or "no tag"
            row.uncertain_reason = f"Near-duplicate of image #{other}, tagged {listed}."[:300]
        if row.uncertain_reason:
            uncertain.append(row.image_id)
    return _store(project, rows, ["tag_scores", "predicted_tags"], uncertain)


def _store(
    project: Project, rows: list[Prediction], fields: list[str], uncertain: list[int]
) -> int:
    """Save the answers (`fields` with the fields every answer has) and send the unsure
    images to the queue, ranked again among the rest."""
    with transaction.atomic():
        Prediction.objects.bulk_update(
            rows, [*fields, "confidence", "model_version", "status", "uncertain_reason"]
        )
        labeling_services.images_queue_add(project=project, image_ids=uncertain)
        for row in rows:
            if row.uncertain_reason:
                _uncertain_announce(project, row)
    if uncertain:
        learner.queue_rerank(project=project)
    return len(rows)


def _uncertain_announce(project: Project, row: Prediction) -> None:
    """Tell the project's webhooks of an uncertain prediction, once per prediction."""
    labeling_services.webhook_event_emit(
        project=project,
        event=Webhook.Event.PREDICTION_UNCERTAIN,
        key=f"prediction:{row.pk}",
        data={
            "prediction": {
                "id": row.pk,
                "image": row.image_id,
                "model_version": row.model_version.number,
                "confidence": row.confidence,
                "predicted_class": row.predicted_class_id,
                "predicted_tags": row.predicted_tags,
                "reason": row.uncertain_reason,
            }
        },
    )


def _tag_conflicts(
    project: Project,
    image_ids: list[int],
    x: np.ndarray,
    present: np.ndarray,
    tag_ids: list[int],
) -> list[tuple[int, set[int]] | None]:
    """For each image, (tagged image id, its tags saved present) when its nearest tagged
    image is a near-duplicate with a saved tag state the prediction contradicts."""
    states = tag_states(project=project, exclude=image_ids)
    embeddings = learner.project_embeddings(project=project)
    embedded = set(embeddings.ids.tolist())
    have = [i for i, pk in enumerate(states.image_ids) if pk in embedded]
    best, similarity = learner.nearest_neighbours(
        queries=x, x=embeddings.of([states.image_ids[i] for i in have])
    )
    column = {pk: j for j, pk in enumerate(states.tag_ids)}
    columns = [column.get(t) for t in tag_ids]  # None: a tag no longer active
    limit = settings.FEEDBACK["NEAR_DUPLICATE_SIMILARITY"]
    out: list[tuple[int, set[int]] | None] = []
    for b, s, chosen in zip(best.tolist(), similarity.tolist(), present, strict=True):
        if b < 0 or s < limit:
            out.append(None)
            continue
        row = have[b]
        saved = states.y[row]
        disagrees = any(
            c is not None and not np.isnan(saved[c]) and bool(saved[c]) != bool(chosen[k])
            for k, c in enumerate(columns)
        )
        out.append((states.image_ids[row], states.present_ids(row)) if disagrees else None)
    return out


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
    *,
    prediction: Prediction,
    label_class: LabelClass | None = None,
    user: AbstractBaseUser,
    present: Iterable[int] | None = None,
) -> Prediction:
    """Confirm a prediction or correct it; either way its image becomes a labeled image
    of the dataset (its split drawn like any other), counting toward the next automatic
    retraining, and the prediction records who decided, when, and what it wrote.

    Single-label projects: `label_class` None or the predicted class confirms, another
    corrects; the label row is `annotation`. Multi-label projects: `present` is the set
    of tag ids present (None confirms the tags predicted present that are still active
    tags), saved through labeling's `image_tags_set` (every active tag present or
    absent); the status is confirmed when that set equals the prediction's, else
    corrected, and `resolved_tags` and `tag_save_id` (the save's rows) are its
    provenance. An unknown or inactive tag id refuses it with nothing written.

    Deciding again later saves again and keeps both in the image's history; but a
    prediction made before another prediction of the same image was decided is refused
    (it would overwrite that decision). One transaction. Any member may call it.
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
    newer = (
        Prediction.objects.filter(
            image_id=prediction.image_id, resolved_at__gt=prediction.created_at
        )
        .exclude(pk=prediction.pk)
        .order_by("-resolved_at")
        .first()
    )
    if newer is not None:
        # Its answer is older than that decision: saving it would undo a person's word.
        raise ValidationError(
            {
                "detail": f"This image was decided since this prediction was made (prediction "
                f"#{newer.pk}, by {newer.resolved_by or 'someone'}): nothing saved."
            }
        )
    if prediction.project.kind == Project.Kind.MULTI:
        if label_class is not None:
            raise ValidationError(
                {"label_class": "This project has tags: send the tags present, not a class."}
            )
        return _resolve_tags(prediction, present, user)
    if present is not None:
        raise ValidationError(
            {"present": "This project has one class per image: send a class, not tags."}
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


def _resolve_tags(
    prediction: Prediction, present: Iterable[int] | None, user: AbstractBaseUser
) -> Prediction:
    active = set(
        LabelClass.objects.filter(project=prediction.project, is_active=True).values_list(
            "id", flat=True
        )
    )
    # A tag deactivated since the prediction can be neither confirmed nor denied.
    predicted = {t for t in prediction.predicted_tags if t in active}
    chosen = sorted(predicted) if present is None else list(present)
    rows = labeling_services.image_tags_set(image=prediction.image, present=chosen, annotator=user)
    resolved = sorted({int(t) for t in chosen})  # image_tags_set has checked them
    if rows:
        save_id = rows[0].save_id
    else:  # the image's tags already stood so: the save in force is the one it confirms
        newest = (
            TagAnnotation.objects.filter(image=prediction.image, is_current=True)
            .order_by("-created_at", "-id")
            .first()
        )
        save_id = prediction.tag_save_id or (newest.save_id if newest else None)
    prediction.status = (
        Prediction.Status.CONFIRMED if set(resolved) == predicted else Prediction.Status.CORRECTED
    )
    prediction.resolved_tags = resolved
    prediction.tag_save_id = save_id
    prediction.resolved_by = user
    prediction.resolved_at = timezone.now()
    prediction.save(
        update_fields=["status", "resolved_tags", "tag_save_id", "resolved_by", "resolved_at"]
    )
    return prediction
