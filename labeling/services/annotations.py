"""Labels: one row per labeling event (history is never overwritten), undo, a reviewer's
decisions, and the learner's suggestions and priorities written onto the images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from labeling.models import (
    Annotation,
    Image,
    LabelClass,
    Project,
)
from labeling.services.projects import project_require_kind
from labeling.services.queue import reservation_length
from labeling.services.webhooks import labels_added


@transaction.atomic
def annotation_create(
    *,
    image: Image,
    label_class: LabelClass,
    annotator: AbstractBaseUser | None,
    origin: str = Annotation.Origin.CHOSEN,
) -> Annotation:
    """Give `image` the label `label_class`, adding a history row; earlier rows stay.

    Idempotent: labeling an image with the class it already has adds nothing, so a
    double key press or a retried request leaves one row. Releases the image's queue
    reservation. `origin` says how the class was chosen; a label that accepts the
    model's suggestion records the suggestion's version and confidence.
    """
    project_require_kind(project=image.project, kind=Project.Kind.SINGLE)
    if label_class.project_id != image.project_id:
        raise ValidationError({"label_class": "That class belongs to another project."})
    if not label_class.is_active:
        raise ValidationError({"label_class": f"Class {label_class.name!r} is deactivated."})
    if label_class.children.filter(is_active=True).exists():
        raise ValidationError(
            {"label_class": f"Label with one of the subclasses of {label_class.name!r}."}
        )
    # Lock the image so concurrent labels of one image are applied one after the other.
    image = Image.objects.select_for_update().get(pk=image.pk)
    current = Annotation.objects.filter(image=image, is_current=True).first()
    if current and current.label_class_id == label_class.pk:
        annotation = current
    else:
        if current:
            current.is_current = False
            current.save(update_fields=["is_current"])
        # The suggestion's provenance, while it is still the image's suggestion (a
        # retrain may have changed it since the page was shown).
        still = origin != Annotation.Origin.CHOSEN and image.suggested_class_id == label_class.pk
        annotation = Annotation.objects.create(
            image=image,
            label_class=label_class,
            annotator=annotator,
            is_current=True,
            origin=origin,
            suggested_by=image.suggested_by if still else None,
            suggestion_confidence=image.confidence if still else None,
        )
    was_unlabeled = image.label_id is None
    image.label = label_class
    image.reserved_by = None
    image.reserved_until = None
    image.needs_relabel = False
    if image.split == Image.Split.UNASSIGNED:
        image.split = split_for(image=image)
    image.save(update_fields=["label", "reserved_by", "reserved_until", "split", "needs_relabel"])
    if was_unlabeled:
        labels_added(project_id=image.project_id)
    return annotation


def split_for(*, image: Image) -> str:
    """The split an image joins when first labeled, fixed by its hash: held-out images
    (draw below test + val fraction) are a uniform random sample of the project,
    whatever order they are labeled in, and the same bytes always land in the same
    split. Test or validation is decided by a second, independent number from the hash,
    because the queue serves held-out images in draw order: deciding by the draw too
    would serve every test image before the first validation one."""
    project = image.project
    held_out = project.test_fraction + project.val_fraction
    if image.draw >= held_out:
        return Image.Split.TRAIN
    test_share = project.test_fraction / held_out
    return (
        Image.Split.TEST
        if Image.second_draw_for(image.content_hash) < test_share
        else (Image.Split.VAL)
    )


@transaction.atomic
def annotations_bulk_create(
    *,
    project: Project,
    image_ids: Sequence[int],
    label_class: LabelClass,
    annotator: AbstractBaseUser,
) -> int:
    """Label several images of `project` at once, all or none. Returns how many."""
    images = list(Image.objects.filter(project=project, pk__in=image_ids))
    if len(images) != len(set(image_ids)):
        raise ValidationError({"images": "Some images do not exist in this project."})
    for image in images:
        annotation_create(image=image, label_class=label_class, annotator=annotator)
    return len(images)


@transaction.atomic
def annotation_undo_last(*, project: Project, annotator: AbstractBaseUser) -> Image | None:
    """Undo the newest label by `annotator` in `project` that is still in force.

    Adds a row restoring the image's previous label (or none), so history keeps both the
    label and its undo. The image is reserved for the annotator to label again.
    Returns the image, or None when there is nothing to undo.
    """
    last = (
        Annotation.objects.select_for_update()
        .filter(
            image__project=project,
            annotator=annotator,
            is_current=True,
            reverts__isnull=True,
            label_class__isnull=False,
            action=Annotation.Action.LABEL,
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if last is None:
        return None
    image = Image.objects.select_for_update().get(pk=last.image_id)
    previous = (
        Annotation.objects.filter(image=image)
        .filter(Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__lt=last.id))
        .order_by("-created_at", "-id")
        .first()
    )
    last.is_current = False
    last.save(update_fields=["is_current"])
    restored = previous.label_class if previous else None
    Annotation.objects.create(
        image=image, label_class=restored, annotator=annotator, is_current=True, reverts=last
    )
    image.label = restored
    image.reserved_by = annotator
    image.reserved_until = timezone.now() + reservation_length()
    image.save(update_fields=["label", "reserved_by", "reserved_until"])
    return image


REVIEW_ACTIONS = {
    Annotation.Action.KEEP: Image.Status.ACTIVE,
    Annotation.Action.AMBIGUOUS: Image.Status.AMBIGUOUS,
    Annotation.Action.REMOVE: Image.Status.REMOVED,
    Annotation.Action.RESTORE: Image.Status.ACTIVE,
}


@transaction.atomic
def image_review(*, image: Image, action: str, reviewer: AbstractBaseUser) -> Annotation:
    """Record a reviewer's decision on `image` that keeps its class: keep (the label is
    right), ambiguous or remove (the image leaves the queue, training and evaluation,
    label kept) or restore (it comes back). To change the label, use
    `annotation_create`. Adds one history row in force, so every decision is in the
    image's history; the image's `status` follows. Curators only (callers check)."""
    if action not in REVIEW_ACTIONS:
        raise ValidationError({"action": f"Unknown review action {action!r}."})
    image = Image.objects.select_for_update().get(pk=image.pk)
    if action == Annotation.Action.RESTORE and image.status == Image.Status.ACTIVE:
        raise ValidationError({"action": "This image is already in the dataset."})
    if action == Annotation.Action.KEEP and image.label_id is None:
        raise ValidationError({"action": "Only a labeled image can be kept as it is."})
    Annotation.objects.filter(image=image, is_current=True).update(is_current=False)
    annotation = Annotation.objects.create(
        image=image,
        label_class_id=image.label_id,
        annotator=reviewer,
        action=action,
        is_current=True,
    )
    image.status = REVIEW_ACTIONS[action]
    image.reserved_by = None
    image.reserved_until = None
    image.save(update_fields=["status", "reserved_by", "reserved_until"])
    return annotation


@transaction.atomic
def images_queue_add(*, project: Project, image_ids: Sequence[int]) -> int:
    """Put unlabeled images of `project` into the labeling queue (served by priority
    like the rest). Returns how many were added."""
    return (
        Image.objects.filter(project=project, pk__in=image_ids, label__isnull=True)
        .exclude(in_queue=True)
        .update(in_queue=True)
    )


@dataclass(frozen=True)
class Suggestion:
    image_id: int
    class_id: int | None
    confidence: float | None
    priority: float
    version_id: int | None = None  # the model version whose suggestion it is


_SUGGESTION_FIELDS = ("suggested_class", "confidence", "suggested_by", "priority", "id", "project")


def image_suggestions_write(*, project: Project, suggestions: Sequence[Suggestion]) -> int:
    """Store the learner's suggested class, confidence, version and queue priority for
    images of `project`. Called by the learner after scoring; rows of other projects are ignored.

    One parameterised UPDATE run for many rows (`executemany`), in transactions of
    5,000 rows that keep locks short: Django's bulk_update builds a CASE expression per
    row and takes seconds per thousand, where this re-ranks 100,000 images in seconds.
    """
    quote = connection.ops.quote_name
    column = {name: quote(Image._meta.get_field(name).column) for name in _SUGGESTION_FIELDS}
    sql = (
        f"UPDATE {quote(Image._meta.db_table)} SET {column['suggested_class']} = %s, "
        f"{column['confidence']} = %s, {column['suggested_by']} = %s, "
        f"{column['priority']} = %s "
        f"WHERE {column['id']} = %s AND {column['project']} = %s"
    )
    written = 0
    for start in range(0, len(suggestions), 5000):
        chunk = suggestions[start : start + 5000]
        with transaction.atomic():
            mine = set(
                Image.objects.filter(
                    project=project, pk__in=[s.image_id for s in chunk]
                ).values_list("id", flat=True)
            )
            rows = [
                (s.class_id, s.confidence, s.version_id, s.priority, s.image_id, project.pk)
                for s in chunk
                if s.image_id in mine
            ]
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            written += len(rows)
    return written


def _relabel_bulk(
    *,
    moves: Sequence[tuple[int, int]],
    action: str,
    actor: AbstractBaseUser | None,
    reverts: dict[int, int] | None = None,
) -> dict[int, Annotation]:
    """Give each (image id, class id) its class with one new history row in force, in
    a few statements for any number of images (a merge can move tens of thousands).
    Returns the new rows by image id. Callers hold the transaction."""
    if not moves:
        return {}
    ids = [image_id for image_id, _ in moves]
    Annotation.objects.filter(image_id__in=ids, is_current=True).update(is_current=False)
    rows = Annotation.objects.bulk_create(
        [
            Annotation(
                image_id=image_id,
                label_class_id=class_id,
                annotator=actor,
                action=action,
                is_current=True,
                reverts_id=(reverts or {}).get(image_id),
            )
            for image_id, class_id in moves
        ],
        batch_size=2000,
    )
    by_class: dict[int, list[int]] = {}
    for image_id, class_id in moves:
        by_class.setdefault(class_id, []).append(image_id)
    for class_id, image_ids in by_class.items():
        for start in range(0, len(image_ids), 5000):
            Image.objects.filter(pk__in=image_ids[start : start + 5000]).update(
                label_id=class_id, needs_relabel=False, reserved_by=None, reserved_until=None
            )
    return {row.image_id: row for row in rows}
