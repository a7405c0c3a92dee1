"""The mistakes review: a scan scores every label out of sample (a class, or each saved
tag state of a multi-label project) and finds near-duplicates; reviewers then keep,
relabel, set aside or remove (classes), or keep the tags or flip a suspect one (tags)."""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from feedback.models import (
    LabelScore,
    NearDuplicate,
    ReviewScan,
    TagLabelScore,
    TagReview,
    TagSuspect,
)
from feedback.services.tags import tag_states, tag_states_text
from labeling import services as labeling_services
from labeling.models import Image, LabelClass, Project, TagAnnotation, Webhook
from models_app import services as learner

logger = logging.getLogger(__name__)

# A tag scan needs this many tagged images, and one tag saved present on
# TAG_REVIEW_MIN_EACH of them and absent on as many (else no head learns anything).
TAG_REVIEW_MIN_IMAGES = 10
TAG_REVIEW_MIN_EACH = 2


def review_scan_request(*, project: Project, user: AbstractBaseUser | None) -> ReviewScan:
    """Ask a worker to score every label of `project` (classes or tags) and find
    near-duplicates. One scan per project at a time: asking again while one waits or
    runs returns it."""
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
        with transaction.atomic():
            ReviewScan.objects.filter(pk=scan.pk).update(
                status=ReviewScan.Status.FAILED, error=message, finished_at=timezone.now()
            )
            _scan_finished(scan)
    scan.refresh_from_db()
    return scan


def _scan_finished(scan: ReviewScan) -> None:
    """Tell the project's webhooks that the scan finished, once per scan, in the
    transaction that records its end (a crash after it cannot lose the event)."""
    scan.refresh_from_db()
    labeling_services.webhook_event_emit(
        project=scan.project,
        event=Webhook.Event.REVIEW_SCAN_FINISHED,
        key=f"review_scan:{scan.pk}",
        data={
            "review_scan": {
                "id": scan.pk,
                "status": scan.status,
                "labeled": scan.labeled,
                "issues": scan.issues,
                "duplicate_pairs": scan.duplicate_pairs,
                "error": scan.error,
            }
        },
    )


def _scan(scan: ReviewScan) -> None:
    project = scan.project
    learner.embeddings_ensure(project=project)
    if project.kind == Project.Kind.MULTI:
        _scan_tags(scan)
        return
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
        _finish(scan, ids, pairs, issues=int(quality.is_issue.sum()))


def _finish(scan: ReviewScan, ids: list[int], pairs: list, *, issues: int) -> None:
    """Replace the project's near-duplicate pairs with the scan's and mark it done (in
    the caller's transaction, with its scores)."""
    NearDuplicate.objects.filter(scan__project=scan.project).delete()
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
        issues=issues,
        duplicate_pairs=len(pairs),
    )
    _scan_finished(scan)


def _scan_tags(scan: ReviewScan) -> None:
    """Score the saved tags of every tagged image out of sample (cross-validated tag
    heads, cleanlab's multi-label scores and per-tag flags) and store, per image, its
    score and the tag states the model disputes."""
    project = scan.project
    states = tag_states(project=project)
    y = states.y
    enough = ((y == 1).sum(axis=0) >= TAG_REVIEW_MIN_EACH) & (
        (y == 0).sum(axis=0) >= TAG_REVIEW_MIN_EACH
    )
    if len(states.image_ids) < TAG_REVIEW_MIN_IMAGES or not enough.any():
        raise ValidationError(
            f"A review of tags needs at least {TAG_REVIEW_MIN_IMAGES} tagged images, and a "
            f"tag saved present on {TAG_REVIEW_MIN_EACH} of them and absent on "
            f"{TAG_REVIEW_MIN_EACH}."
        )
    ids = states.image_ids
    x = learner.project_embeddings(project=project).of(ids)
    config = settings.FEEDBACK
    quality = learner.quality.tag_label_scores(
        x=x,
        y=y,
        folds=config["REVIEW_FOLDS"],
        # From the saved tags themselves, as for classes: the same tags, the same scores.
        seed=learner.labels_seed(
            (content_hash, tag_states_text(y[i])) for i, content_hash in enumerate(states.hashes)
        ),
    )
    pairs = learner.near_duplicates(x=x, similarity=config["NEAR_DUPLICATE_SIMILARITY"])
    known = ~np.isnan(y)
    disputed = known & ((np.nan_to_num(quality.tag_quality, nan=1.0) < 0.5) | quality.tag_issue)
    with transaction.atomic():
        TagLabelScore.objects.filter(image__project=project).delete()
        TagLabelScore.objects.bulk_create(
            [
                TagLabelScore(
                    image_id=pk,
                    scan=scan,
                    quality=float(quality.quality[i]),
                    is_issue=bool(quality.is_issue[i]),
                )
                for i, pk in enumerate(ids)
            ],
            batch_size=2000,
        )
        TagSuspect.objects.bulk_create(
            [
                TagSuspect(
                    score_id=ids[i],
                    image_id=ids[i],
                    tag_id=states.tag_ids[t],
                    state=TagAnnotation.State.PRESENT
                    if y[i, t] == 1
                    else TagAnnotation.State.ABSENT,
                    probability=float(quality.proba[i, t]),
                    quality=float(quality.tag_quality[i, t]),
                    is_issue=bool(quality.tag_issue[i, t]),
                )
                for i, t in zip(*np.nonzero(disputed), strict=True)
            ],
            batch_size=2000,
        )
        _finish(scan, ids, pairs, issues=int(quality.is_issue.sum()))


REVIEW_CHOICES = ("keep", "ambiguous", "remove", "restore", "relabel")
TAG_REVIEW_CHOICES = ("keep", "flip")


def review_decide(
    *,
    image: Image,
    action: str,
    reviewer: AbstractBaseUser,
    label_class: LabelClass | None = None,
    tag: LabelClass | None = None,
) -> Image:
    """A reviewer's decision on an image. Single-label projects: keep its label,
    relabel it (`label_class`), mark it ambiguous, remove it from the dataset (soft) or
    restore it, each one Annotation history row. Multi-label projects: keep its tags as
    they are, or flip one saved `tag` (present to absent or the reverse) through
    labeling's tag service, a row of its tag history that undo takes back like any
    other; either is recorded as a TagReview. Curators only (callers check)."""
    if image.project.kind == Project.Kind.MULTI:
        return _review_tags(image=image, action=action, reviewer=reviewer, tag=tag)
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


@transaction.atomic
def _review_tags(
    *, image: Image, action: str, reviewer: AbstractBaseUser, tag: LabelClass | None
) -> Image:
    if action not in TAG_REVIEW_CHOICES:
        raise ValidationError(
            {
                "action": "A review of tags keeps them or flips one: choose one of: "
                f"{', '.join(TAG_REVIEW_CHOICES)}."
            }
        )
    image = Image.objects.select_for_update().get(pk=image.pk)
    if not image.tagged:
        raise ValidationError({"action": "This image's tags were never saved: tag it first."})
    if action == TagReview.Action.KEEP:
        TagReview.objects.create(image=image, reviewer=reviewer, action=TagReview.Action.KEEP)
        return image
    if tag is None:
        raise ValidationError({"tag": "Flipping needs the tag to flip."})
    if tag.project_id != image.project_id or not tag.is_active:
        raise ValidationError({"tag": "Choose an active tag of this project."})
    current = TagAnnotation.objects.filter(image=image, tag=tag, is_current=True).first()
    saved = (TagAnnotation.State.PRESENT, TagAnnotation.State.ABSENT)
    if current is None or current.state not in saved:
        raise ValidationError(
            {"tag": f"{tag.name} was never saved on this image: there is nothing to flip."}
        )
    labeling_services.images_tag_set(
        project=image.project,
        image_ids=[image.pk],
        tag=tag,
        present=current.state == TagAnnotation.State.ABSENT,
        annotator=reviewer,
    )
    row = TagAnnotation.objects.get(image=image, tag=tag, is_current=True)
    TagReview.objects.create(
        image=image,
        reviewer=reviewer,
        action=TagReview.Action.FLIP,
        tag=tag,
        state=row.state,
        save_id=row.save_id,
    )
    return image
