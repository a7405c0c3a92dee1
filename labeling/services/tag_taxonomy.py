"""Merging tags of a multi-label project, undoing it, and finishing a tag's split.

A merged tag is the union of its tags: present on an image where any of them is
present, absent where every one of them was saved absent, and not looked at otherwise
(an absent tag beside one never looked at says nothing about the union). A split tag's
kinds: one kind present where the tag was, every kind absent where it was absent. Only
rows are added, as everywhere in the tag history; the old tags are deactivated and keep
theirs."""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser

from labeling.models import ClassMerge, ClassSplit, Image, LabelClass, Project, TagAnnotation

State = TagAnnotation.State


def _rows_add(rows: list[tuple], *, action: str, actor) -> uuid.UUID:
    """Add rows in force, one save: (image id, tag id, state, the row it reverts or
    None) each. The rows they replace were retired by the caller."""
    save_id = uuid.uuid4()
    TagAnnotation.objects.bulk_create(
        [
            TagAnnotation(
                image_id=image_id,
                tag_id=tag_id,
                state=state,
                action=action,
                annotator=actor,
                save_id=save_id,
                is_current=True,
                reverts=reverts,
            )
            for image_id, tag_id, state, reverts in rows
        ],
        batch_size=2000,
    )
    return save_id


def tag_union(states: list[str], count: int) -> str:
    """The merged state of an image from the states in force of the `count` merged
    tags saved on it (`states`, one per tag with a row in force)."""
    if State.PRESENT in states:
        return State.PRESENT
    if len(states) == count and all(s == State.ABSENT for s in states):
        return State.ABSENT
    return State.UNSET


def tag_merge_write(
    *,
    project: Project,
    chosen: list[LabelClass],
    target: LabelClass,
    actor: AbstractBaseUser | None,
) -> tuple[uuid.UUID, int]:
    """Give `target` the union of the `chosen` tags' states on every image where one of
    them has a row in force, as rows of one save (action "merge"); rows that would not
    change the target's state are not written. Returns the save id and how many images
    changed. Callers hold the transaction and the project's lock."""
    rows = TagAnnotation.objects.filter(
        image__project=project, tag__in=chosen, is_current=True
    ).values_list("image_id", "tag_id", "state", "pk")
    states: dict[int, list[str]] = defaultdict(list)
    target_rows: dict[int, tuple[str, int]] = {}
    for image_id, tag_id, state, pk in rows.iterator(chunk_size=5000):
        if tag_id == target.pk:
            target_rows[image_id] = (state, pk)
        if state != State.UNSET:
            states[image_id].append(state)
    writes = {}
    for image_id in set(states) | set(target_rows):
        merged = tag_union(states.get(image_id, []), len(chosen))
        before = target_rows.get(image_id, (State.UNSET, None))[0]
        if merged != before:
            writes[image_id] = merged
    TagAnnotation.objects.filter(
        pk__in=[target_rows[i][1] for i in writes if i in target_rows]
    ).update(is_current=False)
    save_id = _rows_add(
        [(image_id, target.pk, state, None) for image_id, state in writes.items()],
        action=TagAnnotation.Action.MERGE,
        actor=actor,
    )
    return save_id, len(writes)


def tag_merge_revert(*, merge: ClassMerge, actor: AbstractBaseUser | None) -> tuple[int, int]:
    """Put the target tag of `merge` back to its state before the merge (the row before
    the merge's, or not looked at) on every image where the merge's row is still in
    force, each a row (action "undo") naming the one it reverts. Images whose target tag
    changed since keep the newer state. Returns (restored, kept). Callers hold the
    transaction and the project's lock."""
    written = TagAnnotation.objects.filter(save_id=merge.tag_save_id, tag=merge.target)
    standing = list(written.filter(is_current=True))
    history: dict[int, list[tuple]] = defaultdict(list)
    for image_id, created_at, pk, state in TagAnnotation.objects.filter(
        tag=merge.target, image_id__in=[r.image_id for r in standing]
    ).values_list("image_id", "created_at", "id", "state"):
        history[image_id].append((created_at, pk, state))
    before: dict[int, str] = {}
    for row in standing:
        earlier = [h for h in history[row.image_id] if (h[0], h[1]) < (row.created_at, row.pk)]
        before[row.image_id] = max(earlier)[2] if earlier else State.UNSET
    TagAnnotation.objects.filter(pk__in=[r.pk for r in standing]).update(is_current=False)
    _rows_add(
        [(r.image_id, merge.target_id, before[r.image_id], r) for r in standing],
        action=TagAnnotation.Action.UNDO,
        actor=actor,
    )
    return len(standing), written.count() - len(standing)


def tag_merge_target_used(*, tag: LabelClass) -> bool:
    """Whether any image has `tag` saved present or absent in force."""
    return (
        TagAnnotation.objects.filter(tag=tag, is_current=True).exclude(state=State.UNSET).exists()
    )


def tag_split_write(*, split: ClassSplit, decided: dict[int, int], actor) -> int:
    """Finish the split of a tag into its kinds (the split's new tags): on every image
    with the tag present and a decided kind, that kind present and the other kinds
    absent; where the tag was saved absent, every kind absent (none of them can be
    there); where it was never looked at, nothing. Rows of one save (action "split").
    Images with the tag present but no decided kind are marked to tag again, first in
    the queue. Returns how many. Callers hold the transaction and the project's lock."""
    targets = list(split.targets.order_by("order", "id").values_list("id", flat=True))
    source = TagAnnotation.objects.filter(
        tag_id=split.source_id, is_current=True, state__in=(State.PRESENT, State.ABSENT)
    ).values_list("image_id", "state")
    writes: list[tuple[int, int, str]] = []
    undecided = []
    for image_id, state in source.iterator(chunk_size=5000):
        kind = decided.get(image_id) if state == State.PRESENT else None
        if state == State.PRESENT and kind is None:
            undecided.append(image_id)
            continue
        writes += [(image_id, t, State.PRESENT if t == kind else State.ABSENT) for t in targets]
    written = {image_id for image_id, _, _ in writes}
    # The new tags were inactive until now, so no one could have tagged them; retire any
    # row in force all the same rather than leave two.
    TagAnnotation.objects.filter(tag_id__in=targets, image_id__in=written, is_current=True).update(
        is_current=False
    )
    _rows_add(
        [(image_id, tag_id, state, None) for image_id, tag_id, state in writes],
        action=TagAnnotation.Action.SPLIT,
        actor=actor,
    )
    Image.objects.filter(pk__in=undecided).update(needs_relabel=True)
    return len(undecided)
