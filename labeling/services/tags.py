"""Tags of multi-label projects: every tag's state on an image (present, absent, or not
looked at yet), saved together from the labeling page, set one tag at a time on a
selection from the grid, and undone a save at a time. History is never overwritten."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.models import Image, LabelClass, Project, TagAnnotation
from labeling.services.annotations import annotation_undo_last, split_for
from labeling.services.projects import project_require_kind
from labeling.services.queue import reservation_length
from labeling.services.webhooks import labels_added

State = TagAnnotation.State
Action = TagAnnotation.Action


def _tags(project: Project) -> list[LabelClass]:
    return list(LabelClass.objects.filter(project=project, is_active=True).order_by("order", "id"))


def _tag_ids(project: Project, ids: Iterable[int], field: str) -> set[int]:
    try:
        wanted = {int(i) for i in ids}
    except (TypeError, ValueError):
        raise ValidationError({field: "Tag ids must be whole numbers."}) from None
    known = {t.pk for t in _tags(project)}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValidationError(
            {field: f"No active tag with id {', '.join(map(str, unknown))} in this project."}
        )
    return wanted


def _write(
    *,
    image: Image,
    states: dict[int, str],
    annotator: AbstractBaseUser | None,
    current: dict[int, TagAnnotation],
    action: str,
    reverts: dict[int, TagAnnotation] | None = None,
) -> list[TagAnnotation]:
    """One new row in force per (tag id, state), the rows they replace retired. Callers
    hold the transaction and the image's lock."""
    if not states:
        return []
    TagAnnotation.objects.filter(pk__in=[current[t].pk for t in states if t in current]).update(
        is_current=False
    )
    save_id = uuid.uuid4()
    return TagAnnotation.objects.bulk_create(
        [
            TagAnnotation(
                image=image,
                tag_id=tag_id,
                state=state,
                action=action,
                annotator=annotator,
                save_id=save_id,
                is_current=True,
                reverts=(reverts or {}).get(tag_id),
            )
            for tag_id, state in states.items()
        ]
    )


def _current(image: Image) -> dict[int, TagAnnotation]:
    return {row.tag_id: row for row in TagAnnotation.objects.filter(image=image, is_current=True)}


@transaction.atomic
def image_tags_set(
    *, image: Image, present: Iterable[int], annotator: AbstractBaseUser | None
) -> list[TagAnnotation]:
    """Save `image`'s tags as the annotator saw them: each active tag of the project is
    present when its id is in `present` and absent otherwise, both recorded. The image
    then counts as labeled (`tagged`), joins its split and leaves the annotator's queue.

    Idempotent: a tag whose state in force is already the one given gets no new row, so
    a double Enter or a retried request adds nothing; the first save of an image records
    every tag. Returns the rows written. Raises ValidationError for a single-label
    project or an id that is not an active tag of the project.
    """
    project = image.project
    project_require_kind(project=project, kind=Project.Kind.MULTI)
    wanted = _tag_ids(project, present, "present")
    tags = _tags(project)
    if not tags:
        raise ValidationError({"present": "This project has no tags yet: add some first."})
    image = Image.objects.select_for_update().get(pk=image.pk)
    current = _current(image)
    states = {t.pk: State.PRESENT if t.pk in wanted else State.ABSENT for t in tags}
    if image.tagged:
        states = {t: s for t, s in states.items() if t not in current or current[t].state != s}
    rows = _write(
        image=image, states=states, annotator=annotator, current=current, action=Action.SAVE
    )
    _mark_tagged(image)
    return rows


def _mark_tagged(image: Image) -> None:
    """A full save of its tags is in force: the image counts as labeled, joins its split
    and leaves the queue (a reservation, or a re-tag after a split left its kind
    undecided). Callers hold the image's lock."""
    was_untagged = not image.tagged
    image.tagged = True
    image.needs_relabel = False
    image.reserved_by = None
    image.reserved_until = None
    if image.split == Image.Split.UNASSIGNED:
        image.split = split_for(image=image)
    image.save(update_fields=["tagged", "needs_relabel", "reserved_by", "reserved_until", "split"])
    if was_untagged:
        labels_added(project_id=image.project_id)


@transaction.atomic
def images_tag_set(
    *,
    project: Project,
    image_ids: Sequence[int],
    tag: LabelClass,
    present: bool,
    annotator: AbstractBaseUser,
) -> int:
    """Mark one tag present (or absent) on several images of `project` at once, all or
    none; the other tags keep their states, and an image whose tags were never saved
    stays in the queue for the rest. Returns how many images changed."""
    project_require_kind(project=project, kind=Project.Kind.MULTI)
    if tag.project_id != project.pk or not tag.is_active:
        raise ValidationError({"tag": "Choose an active tag of this project."})
    images = list(
        Image.objects.select_for_update().filter(project=project, pk__in=image_ids).order_by("id")
    )
    if len(images) != len(set(image_ids)):
        raise ValidationError({"images": "Some images do not exist in this project."})
    state = State.PRESENT if present else State.ABSENT
    changed = 0
    for image in images:
        current = _current(image)
        if tag.pk in current and current[tag.pk].state == state:
            continue
        _write(
            image=image,
            states={tag.pk: state},
            annotator=annotator,
            current=current,
            action=Action.SET,
        )
        changed += 1
    return changed


@transaction.atomic
def image_tags_undo_last(*, project: Project, annotator: AbstractBaseUser) -> Image | None:
    """Undo the newest save (or grid change) of tags by `annotator` in `project` that is
    still in force: every tag it wrote goes back to its state before, or to "not looked
    at". New rows record the undo. The image counts as labeled only while a full save of
    its tags remains in force, and is reserved for the annotator to tag again. Returns
    the image, or None when there is nothing to undo."""
    last = (
        TagAnnotation.objects.select_for_update()
        .filter(
            image__project=project,
            annotator=annotator,
            is_current=True,
            action__in=(Action.SAVE, Action.SET),
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if last is None:
        return None
    image = Image.objects.select_for_update().get(pk=last.image_id)
    current = _current(image)
    undone = [row for row in current.values() if row.save_id == last.save_id]
    states, reverts = {}, {}
    for row in undone:
        before = (
            TagAnnotation.objects.filter(image=image, tag_id=row.tag_id)
            .filter(Q(created_at__lt=row.created_at) | Q(created_at=row.created_at, id__lt=row.id))
            .order_by("-created_at", "-id")
            .first()
        )
        states[row.tag_id] = before.state if before else State.UNSET
        reverts[row.tag_id] = row
    _write(
        image=image,
        states=states,
        annotator=annotator,
        current=current,
        action=Action.UNDO,
        reverts=reverts,
    )
    # Undo goes newest first, so a save still standing is one no undo has reverted.
    image.tagged = (
        TagAnnotation.objects.filter(image=image, action=Action.SAVE)
        .exclude(
            pk__in=TagAnnotation.objects.filter(image=image, reverts__isnull=False).values(
                "reverts_id"
            )
        )
        .exists()
    )
    image.reserved_by = annotator
    image.reserved_until = timezone.now() + reservation_length()
    image.save(update_fields=["tagged", "reserved_by", "reserved_until"])
    return image


def label_undo_last(*, project: Project, annotator: AbstractBaseUser) -> Image | None:
    """Undo the annotator's newest label in force, whatever the project's kind: a class
    (`annotation_undo_last`) or a save of tags (`image_tags_undo_last`)."""
    if project.kind == Project.Kind.MULTI:
        return image_tags_undo_last(project=project, annotator=annotator)
    return annotation_undo_last(project=project, annotator=annotator)
