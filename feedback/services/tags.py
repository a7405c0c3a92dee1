"""The saved tags of a multi-label project's images, read as a matrix for the feedback
loop's predictions (near-duplicate checks) and its review."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeling.models import Image, LabelClass, Project, TagAnnotation


@dataclass(frozen=True)
class TagStates:
    """The tagged images still in the dataset (ids ascending, with their content
    hashes) and the state in force of each active tag (`tag_ids`, in the project's
    order): `y` is (images, tags), 1 present, 0 absent, NaN never saved or undone."""

    tag_ids: list[int]
    image_ids: list[int]
    hashes: list[str]
    y: np.ndarray

    def present_ids(self, row: int) -> set[int]:
        return {self.tag_ids[t] for t in np.flatnonzero(self.y[row] == 1)}


def tag_states(*, project: Project, exclude: list[int] | None = None) -> TagStates:
    tag_ids = list(
        LabelClass.objects.filter(project=project, is_active=True)
        .order_by("order", "id")
        .values_list("id", flat=True)
    )
    images = Image.objects.filter(project=project, tagged=True, status=Image.Status.ACTIVE)
    if exclude:
        images = images.exclude(pk__in=exclude)
    rows = list(images.order_by("id").values_list("id", "content_hash"))
    row_of = {pk: i for i, (pk, _) in enumerate(rows)}
    column = {pk: j for j, pk in enumerate(tag_ids)}
    y = np.full((len(rows), len(tag_ids)), np.nan, dtype=np.float32)
    saved = TagAnnotation.objects.filter(
        image__in=images,
        tag_id__in=tag_ids,
        is_current=True,
        state__in=(TagAnnotation.State.PRESENT, TagAnnotation.State.ABSENT),
    ).values_list("image_id", "tag_id", "state")
    for image_id, tag_id, state in saved.iterator(chunk_size=5000):
        y[row_of[image_id], column[tag_id]] = state == TagAnnotation.State.PRESENT
    return TagStates(
        tag_ids=tag_ids,
        image_ids=[pk for pk, _ in rows],
        hashes=[h for _, h in rows],
        y=y,
    )


def tag_states_text(y_row: np.ndarray) -> str:
    """One image's saved states as text (1, 0, - per tag), for seeding from labels."""
    return ",".join("-" if v != v else f"{v:.0f}" for v in y_row.tolist())
