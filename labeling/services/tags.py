"""Tags of multi-label projects: every tag's state on an image (present, absent, or not
looked at yet), saved together from the labeling page, set one tag at a time on a
selection from the grid, and undone a save at a time. History is never overwritten."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
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


def _before(row: TagAnnotation, history: dict[int, TagAnnotation]) -> TagAnnotation | None:
    """The row of the same image and tag just before `row`, from the image's `history`
    (every row of it, by id)."""
    earlier = [
        h
        for h in history.values()
        if h.tag_id == row.tag_id and (h.created_at, h.pk) < (row.created_at, row.pk)
    ]
    return max(earlier, key=lambda h: (h.created_at, h.pk)) if earlier else None


def _origin(row: TagAnnotation, history: dict[int, TagAnnotation]) -> TagAnnotation | None:
    """The judgement `row` carries: itself, or for an undo row the row it put back (the
    one before the row it reverts, followed through earlier undos), or None where it put
    back "not looked at"."""
    origin: TagAnnotation | None = row
    while origin is not None and origin.action == Action.UNDO:
        origin = _before(history[origin.reverts_id], history)
    return origin


def _save_standing(history: dict[int, TagAnnotation], undone: Iterable[TagAnnotation]) -> bool:
    """Whether a full save in the image's `history` has not been undone: no undo has
    reverted a row of it (`undone`: the rows the undo in progress reverts)."""
    reverted = {h.reverts_id for h in history.values() if h.reverts_id} | {r.pk for r in undone}
    saves = {h.save_id for h in history.values() if h.action == Action.SAVE}
    return bool(saves - {history[pk].save_id for pk in reverted})


@transaction.atomic
def image_tags_undo_last(*, project: Project, annotator: AbstractBaseUser) -> Image | None:
    """Undo the newest save (or grid change) of tags by `annotator` in `project` that is
    still in force: every tag it wrote goes back to its state before, or to "not looked
    at", including a tag whose state from it a later save's undo had put back (else an
    image with every save undone would keep that state and still count as tagged). New
    rows record the undo. The image counts as labeled only while a full save of its
    tags stands that no undo has taken back, and is reserved for the annotator to tag
    again. Returns the image, or None when there is nothing to undo."""
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
    history = {row.pk: row for row in TagAnnotation.objects.filter(image=image)}
    origins = {tag_id: _origin(row, history) for tag_id, row in current.items()}
    states, reverts = {}, {}
    for tag_id, origin in origins.items():
        if origin is None or origin.save_id != last.save_id:
            continue
        before = _before(origin, history)
        states[tag_id] = before.state if before else State.UNSET
        reverts[tag_id] = origin
    _write(
        image=image,
        states=states,
        annotator=annotator,
        current=current,
        action=Action.UNDO,
        reverts=reverts,
    )
    image.tagged = _save_standing(history, undone=reverts.values())
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
