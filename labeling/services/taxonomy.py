"""Class evolution: merge (with an exact undo) and split (seeds, suggestions, accept,
finish, cancel), every label moved through a new history row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.models import (
    Annotation,
    ClassMerge,
    ClassMergeMove,
    ClassSplit,
    Image,
    LabelClass,
    Project,
    SplitAssignment,
    TaxonomyChange,
)
from labeling.services.annotations import _relabel_bulk
from labeling.services.classes import _free_key, _log, _used_keys, label_class_create
from labeling.services.tag_taxonomy import (
    tag_merge_revert,
    tag_merge_target_used,
    tag_merge_write,
    tag_split_write,
)


def _open_split_of(classes: Iterable[LabelClass]) -> ClassSplit | None:
    ids = [c.pk for c in classes]
    return (
        ClassSplit.objects.filter(status=ClassSplit.Status.OPEN)
        .filter(Q(source_id__in=ids) | Q(targets__in=ids))
        .first()
    )


@transaction.atomic
def label_class_merge(
    *,
    project: Project,
    classes: Sequence[LabelClass],
    name: str,
    actor: AbstractBaseUser | None,
) -> ClassMerge:
    """Merge `classes` into one named `name`: one of them if it has that name, else a
    new class. Every image labeled with another of them gets the merged class through
    a new history row (action "merge"); those classes are deactivated, keeping their
    history. The merge remembers each label it moved, so `label_class_merge_undo`
    restores exactly the labels before. Recorded in the taxonomy log, which makes the
    learner retrain. One transaction. Owners and reviewers only (callers check).

    In a multi-label project the merged tag is the union of the tags (see
    `tag_taxonomy`): its state is written on every image where one of them has a row in
    force, as rows of one save that undo takes back."""
    Project.objects.select_for_update().get(pk=project.pk)
    wanted = {c.pk for c in classes}
    chosen = list(LabelClass.objects.select_for_update().filter(project=project, pk__in=wanted))
    if len(wanted) < 2:
        raise ValidationError({"classes": "Choose at least two classes to merge."})
    if len(chosen) != len(wanted):
        raise ValidationError({"classes": "Some classes do not exist in this project."})
    if _open_split_of(chosen):
        raise ValidationError({"classes": "A class being split cannot be merged."})
    if LabelClass.objects.filter(parent__in=chosen).exists():
        raise ValidationError({"classes": "A class with child classes cannot be merged."})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Name the merged class."})
    target = next((c for c in chosen if c.name.lower() == name.lower()), None)
    created = target is None
    if created:
        target = label_class_create(project=project, name=name, actor=actor)
    elif not target.is_active:
        target.is_active = True
        target.key = target.key if target.key and target.key not in _used_keys(project) else ""
        target.save(update_fields=["is_active", "key"])
    sources = [c for c in chosen if c.pk != target.pk]
    if project.kind == Project.Kind.MULTI:
        return _tag_merge(project, chosen, sources, target, created, actor)
    moved = list(
        Image.objects.filter(project=project, label__in=sources).values_list("id", "label_id")
    )
    rows = _relabel_bulk(
        moves=[(image_id, target.pk) for image_id, _ in moved],
        action=Annotation.Action.MERGE,
        actor=actor,
    )
    merge = ClassMerge.objects.create(
        project=project,
        target=target,
        source_ids=[c.pk for c in sources],
        target_created=created,
        created_by=actor,
    )
    ClassMergeMove.objects.bulk_create(
        [
            ClassMergeMove(
                merge=merge,
                image_id=image_id,
                previous_class_id=label_id,
                annotation=rows[image_id],
            )
            for image_id, label_id in moved
        ],
        batch_size=2000,
    )
    LabelClass.objects.filter(pk__in=[c.pk for c in sources]).update(is_active=False)
    _log(
        project,
        actor,
        TaxonomyChange.Kind.MERGE,
        f"Merged {', '.join(repr(c.name) for c in chosen)} into {target.name!r}: "
        f"{len(moved)} labels moved.",
        {"merge": merge.pk, "target": target.pk, "sources": merge.source_ids, "moved": len(moved)},
    )
    return merge


def _tag_merge(project, chosen, sources, target, created, actor) -> ClassMerge:
    save_id, changed = tag_merge_write(project=project, chosen=chosen, target=target, actor=actor)
    merge = ClassMerge.objects.create(
        project=project,
        target=target,
        source_ids=[c.pk for c in sources],
        target_created=created,
        tag_save_id=save_id,
        created_by=actor,
    )
    LabelClass.objects.filter(pk__in=[c.pk for c in sources]).update(is_active=False)
    _log(
        project,
        actor,
        TaxonomyChange.Kind.MERGE,
        f"Merged tags {', '.join(repr(c.name) for c in chosen)} into {target.name!r}: "
        f"{changed} images' {target.name!r} state written.",
        {"merge": merge.pk, "target": target.pk, "sources": merge.source_ids, "moved": changed},
    )
    return merge


@transaction.atomic
def label_class_merge_undo(*, merge: ClassMerge, actor: AbstractBaseUser | None) -> int:
    """Undo a merge: its classes are active again (with their keys where still free),
    and every image still holding the merge's label gets back the class it had before,
    through a new history row that names the row it reverts. Images relabeled since the
    merge keep their newer label. A class the merge created and that no longer holds a
    label is deactivated. Returns how many labels were restored. Curators only."""
    merge = ClassMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise ValidationError({"merge": "This merge was already undone."})
    Project.objects.select_for_update().get(pk=merge.project_id)
    for source in LabelClass.objects.filter(pk__in=merge.source_ids).order_by("order", "id"):
        source.is_active = True
        if source.key in _used_keys(merge.project):
            source.key = _free_key(merge.project)
        source.save(update_fields=["is_active", "key"])
    if merge.tag_save_id is not None:
        return _tag_merge_undo(merge, actor)
    moves = list(
        merge.moves.filter(annotation__is_current=True).values_list(
            "image_id", "previous_class_id", "annotation_id"
        )
    )
    _relabel_bulk(
        moves=[(image_id, class_id) for image_id, class_id, _ in moves],
        action=Annotation.Action.UNMERGE,
        actor=actor,
        reverts={image_id: annotation_id for image_id, _, annotation_id in moves},
    )
    kept = merge.moves.count() - len(moves)
    target = merge.target
    _merge_undone(
        merge,
        actor,
        retire=merge.target_created and not Image.objects.filter(label=target).exists(),
        summary=f"Undid the merge into {target.name!r}: {len(moves)} labels restored"
        + (f", {kept} relabeled since kept as they are." if kept else "."),
        restored=len(moves),
        kept=kept,
    )
    return len(moves)


def _merge_undone(merge: ClassMerge, actor, *, retire: bool, summary: str, **counts) -> None:
    """Record an undone merge: a target it created and that is unused now retired, the
    merge marked undone, the taxonomy log written."""
    if retire:
        merge.target.is_active = False
        merge.target.save(update_fields=["is_active"])
    merge.undone_at = timezone.now()
    merge.undone_by = actor
    merge.save(update_fields=["undone_at", "undone_by"])
    _log(merge.project, actor, TaxonomyChange.Kind.UNMERGE, summary, {"merge": merge.pk, **counts})


def _tag_merge_undo(merge: ClassMerge, actor: AbstractBaseUser | None) -> int:
    restored, kept = tag_merge_revert(merge=merge, actor=actor)
    target = merge.target
    _merge_undone(
        merge,
        actor,
        retire=merge.target_created and not tag_merge_target_used(tag=target),
        summary=f"Undid the merge of tags into {target.name!r}: {restored} images' "
        f"{target.name!r} state restored"
        + (f", {kept} changed since kept as they are." if kept else "."),
        restored=restored,
        kept=kept,
    )
    return restored


@transaction.atomic
def label_class_split_start(
    *, label_class: LabelClass, names: Sequence[str], actor: AbstractBaseUser | None
) -> ClassSplit:
    """Start splitting `label_class` into new classes named `names` (at least two). The
    new classes stay inactive, and the class keeps working, until the split is
    finished. Curators only.

    In a multi-label project the new tags are kinds of the tag: an image with the tag
    present gets one of them present (and the others absent) when the split finishes."""
    project = label_class.project
    Project.objects.select_for_update().get(pk=project.pk)
    names = [(n or "").strip() for n in names]
    names = [n for n in names if n]
    if len(names) < 2 or len({n.lower() for n in names}) != len(names):
        raise ValidationError({"names": "Name at least two different new classes."})
    if not label_class.is_active:
        raise ValidationError({"label_class": "Only an active class can be split."})
    if _open_split_of([label_class]):
        raise ValidationError({"label_class": "This class is already being split."})
    if label_class.children.exists():
        raise ValidationError({"label_class": "A class with child classes cannot be split."})
    targets = [
        label_class_create(project=project, name=n, actor=actor, is_active=False) for n in names
    ]
    for target in targets:
        target.parent = label_class.parent
        target.save(update_fields=["parent"])
    split = ClassSplit.objects.create(project=project, source=label_class, created_by=actor)
    split.targets.set(targets)
    _log(
        project,
        actor,
        TaxonomyChange.Kind.SPLIT_START,
        f"Started splitting {label_class.name!r} into {', '.join(repr(n) for n in names)}.",
        {"split": split.pk, "source": label_class.pk, "targets": [t.pk for t in targets]},
    )
    return split


def _open(split: ClassSplit) -> ClassSplit:
    split = ClassSplit.objects.select_for_update().get(pk=split.pk)
    if split.status != ClassSplit.Status.OPEN:
        raise ValidationError({"split": f"This split is {split.status}."})
    return split


@transaction.atomic
def split_assign(*, split: ClassSplit, image_ids: Sequence[int], label_class: LabelClass) -> int:
    """The expert's choice of new class for images of the split class (seeds, or a fix
    of a suggestion). Returns how many images were assigned."""
    split = _open(split)
    if not split.targets.filter(pk=label_class.pk).exists():
        raise ValidationError({"label_class": "Choose one of the split's new classes."})
    images = list(split.source_images().filter(pk__in=image_ids).values_list("id", flat=True))
    if len(images) != len(set(image_ids)):
        what = "tagged" if split.project.kind == Project.Kind.MULTI else "labeled"
        raise ValidationError({"images": f"Some images are not {what} {split.source.name!r}."})
    for image_id in images:
        SplitAssignment.objects.update_or_create(
            split=split,
            image_id=image_id,
            defaults={
                "label_class": label_class,
                "kind": SplitAssignment.Kind.EXPERT,
                "confidence": None,
            },
        )
    return len(images)


@transaction.atomic
def split_suggestions_write(
    *, split: ClassSplit, suggestions: Sequence[tuple[int, int, float]]
) -> int:
    """Store the learner's suggestion (image id, class id, confidence) for images the
    expert has not decided, replacing earlier suggestions. Returns how many."""
    split = _open(split)
    targets = set(split.targets.values_list("id", flat=True))
    decided = set(
        split.assignments.filter(kind__in=SplitAssignment.DECIDED).values_list(
            "image_id", flat=True
        )
    )
    split.assignments.filter(kind=SplitAssignment.Kind.SUGGESTED).delete()
    rows = [
        SplitAssignment(
            split=split,
            image_id=image_id,
            label_class_id=class_id,
            kind=SplitAssignment.Kind.SUGGESTED,
            confidence=confidence,
        )
        for image_id, class_id, confidence in suggestions
        if image_id not in decided and class_id in targets
    ]
    SplitAssignment.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


@transaction.atomic
def split_accept(
    *, split: ClassSplit, min_confidence: float = 0.0, image_ids: Sequence[int] | None = None
) -> int:
    """Accept the suggestions at or above `min_confidence` (of `image_ids` only, if
    given) as they stand. Returns how many were accepted."""
    split = _open(split)
    if not 0.0 <= min_confidence <= 1.0:
        raise ValidationError({"min_confidence": "Give a confidence between 0 and 1."})
    rows = split.assignments.filter(
        kind=SplitAssignment.Kind.SUGGESTED, confidence__gte=min_confidence
    )
    if image_ids is not None:
        rows = rows.filter(image_id__in=image_ids)
    return rows.update(kind=SplitAssignment.Kind.ACCEPTED)


@transaction.atomic
def label_class_split_finish(*, split: ClassSplit, actor: AbstractBaseUser | None) -> dict:
    """Finish a split: every image of the split class with a decided new class gets it
    (a history row, action "split"); the others keep the old label and are marked to
    re-label, first in the queue. The new classes become active (with free keys) and
    the old one inactive, its history kept. Returns {"moved": n, "to_relabel": m}."""
    split = _open(split)
    project = split.project
    Project.objects.select_for_update().get(pk=project.pk)
    decided = dict(
        split.assignments.filter(
            kind__in=SplitAssignment.DECIDED, image__in=split.source_images()
        ).values_list("image_id", "label_class_id")
    )
    if project.kind == Project.Kind.MULTI:
        to_relabel = tag_split_write(split=split, decided=decided, actor=actor)
    else:
        _relabel_bulk(moves=list(decided.items()), action=Annotation.Action.SPLIT, actor=actor)
        to_relabel = split.source_images().update(needs_relabel=True)
    split.source.is_active = False
    split.source.save(update_fields=["is_active"])
    for target in split.targets.order_by("order", "id"):
        target.is_active = True
        target.key = _free_key(project)
        target.save(update_fields=["is_active", "key"])
    split.status = ClassSplit.Status.FINISHED
    split.finished_at = timezone.now()
    split.save(update_fields=["status", "finished_at"])
    _log(
        project,
        actor,
        TaxonomyChange.Kind.SPLIT_FINISH,
        f"Split {split.source.name!r} into "
        f"{', '.join(repr(t.name) for t in split.targets.all())}: {len(decided)} labels "
        f"moved, {to_relabel} images to re-label.",
        {"split": split.pk, "moved": len(decided), "to_relabel": to_relabel},
    )
    return {"moved": len(decided), "to_relabel": to_relabel}


@transaction.atomic
def label_class_split_cancel(*, split: ClassSplit, actor: AbstractBaseUser | None) -> None:
    """Abandon a split: no label changes; the new classes (never used) are deleted."""
    split = _open(split)
    targets = list(split.targets.all())
    split.status = ClassSplit.Status.CANCELLED
    split.finished_at = timezone.now()
    split.save(update_fields=["status", "finished_at"])
    split.assignments.all().delete()
    split.targets.clear()
    for target in targets:
        target.delete()
    _log(
        split.project,
        actor,
        TaxonomyChange.Kind.SPLIT_CANCEL,
        f"Cancelled the split of {split.source.name!r}.",
        {"split": split.pk},
    )
