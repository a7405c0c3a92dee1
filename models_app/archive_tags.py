"""The tag parts of a project archive (`models_app.archive`): what a multi-label project
stores beyond a single-label one, out to `project.json` and back.

A tag project's archive is version 3 and says `"kind": "multi"`. Its `tags` object
holds `tagged` (the refs of the images whose tags count as saved) and `states`: every
row of the tag history in order, each with its image, tag, state (present, absent, or
unset: an undo back to not looked at), action, annotator, whether it is in force, the
row it reverts and its `save` (rows written by one save share a number; each number
becomes a fresh save id on import). A tag with no row in force on an image was not
looked at there, so that state travels as the absence of a row. Model versions keep
their tags (`metrics.tags`, `metrics.untrainable`) as class refs, like `class_ids`.
`tags.csv` beside it is the project's tag file (`project_tags_export`), which the tag
import reads.

Predictions and the review's records do not travel, for either kind of project; nor do
merge records, so a merge of tags cannot be undone in the copy (as for classes).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Model

from labeling.models import Image, LabelClass, Project, TagAnnotation
from labeling.services import project_tags_export
from models_app.archive_numbers import whole_number

TAG_VERSION = 3
# Lists of class ids inside a tag version's metrics.
METRIC_TAG_KEYS = ("tags", "untrainable")


def tags_document(*, project: Project, image_ref: dict, class_ref: dict) -> dict:
    """The keys a multi-label project adds to `project.json` (none for a single-label
    one): the archive's version, its kind and its `tags` (see the module docstring)."""
    if project.kind != Project.Kind.MULTI:
        return {}
    rows = list(
        TagAnnotation.objects.filter(image__project=project)
        .select_related("annotator")
        .order_by("id")
    )
    row_ref = {row.pk: n for n, row in enumerate(rows)}
    saves: dict[uuid.UUID, int] = {}
    for row in rows:
        saves.setdefault(row.save_id, len(saves))
    tagged = Image.objects.filter(project=project, tagged=True).values_list("id", flat=True)
    return {
        "version": TAG_VERSION,
        "kind": Project.Kind.MULTI,
        "tags": {
            "tagged": sorted(image_ref[pk] for pk in tagged),
            "states": [
                {
                    "ref": row_ref[row.pk],
                    "image": image_ref[row.image_id],
                    "tag": class_ref[row.tag_id],
                    "state": row.state,
                    "action": row.action,
                    "annotator": row.annotator.get_username() if row.annotator else None,
                    "save": saves[row.save_id],
                    "is_current": row.is_current,
                    "reverts": row_ref.get(row.reverts_id),
                    "created_at": row.created_at.isoformat(),
                }
                for row in rows
            ],
        },
    }


def tag_metrics_converted(metrics: dict, convert: Callable) -> dict:
    """A tag version's metrics with its tag ids passed through `convert` (id to ref, or
    back); other metrics as they are. `metrics` is a copy the caller owns."""
    if metrics.get("kind") == "multi":
        for key in METRIC_TAG_KEYS:
            if key in metrics:
                metrics[key] = [convert(c) for c in metrics[key]]
    return metrics


def tags_csv(*, project: Project) -> str | None:
    """The tag file of a multi-label project, for `tags.csv`; None for a single-label one."""
    if project.kind != Project.Kind.MULTI:
        return None
    return project_tags_export(project=project, file_format="csv")


def archive_kind(document: dict) -> str:
    """The kind of project an archive rebuilds: multi-label for version 3, which must
    say so, single-label before."""
    if document["version"] < TAG_VERSION:
        if "tags" in document or document.get("kind", Project.Kind.SINGLE) != "single":
            raise ValidationError(
                f"Tags come in version-{TAG_VERSION} archives; this one is version "
                f"{document['version']}."
            )
        return Project.Kind.SINGLE
    if document.get("kind") != Project.Kind.MULTI or not isinstance(document.get("tags"), dict):
        raise ValidationError(
            f'A version-{TAG_VERSION} archive is of a multi-label project: it needs "kind": '
            '"multi" and a "tags" object.'
        )
    return Project.Kind.MULTI


def tags_import(
    document: dict,
    project: Project,
    images,
    classes,
    *,
    check: Callable[[Model, str], Model],
    time: Callable,
) -> None:
    """Store the tag rows of a multi-label archive into `project`, whose images and
    classes are made (`images`, `classes`: the archive's refs to them, refusing a ref to
    nothing); `check` and `time` are the archive's own field and time checks, so
    both modules refuse alike. Raises ValidationError naming the row at fault: a class
    label on an image, a state or action no form accepts, two states of one tag in
    force on an image, a row reverting one of another image or tag, or a later one.
    Callers hold the transaction (and delete stored files on the way out)."""
    if project.kind != Project.Kind.MULTI:
        return
    _refuse_classes(document)
    section = document["tags"]
    tagged = [images[ref] for ref in section["tagged"]]
    if len({image.pk for image in tagged}) != len(tagged):
        raise ValidationError("The archive lists a tagged image twice.")
    Image.objects.filter(pk__in=[image.pk for image in tagged]).update(tagged=True)
    rows = section["states"]
    users = _users(rows)
    made: dict[int, TagAnnotation] = {}
    saves: dict[int, uuid.UUID] = {}
    in_force: set[tuple[int, int]] = set()
    times = []
    for number, row in enumerate(rows):
        what = f"Tag state {row['ref']!r}"
        if not whole_number(row["ref"]) or row["ref"] != number:
            raise ValidationError(
                f"{what} is at place {number}: tag states are numbered in order from 0."
            )
        if not isinstance(row["save"], int) or isinstance(row["save"], bool) or row["save"] < 0:
            raise ValidationError(f"{what}: its save {row['save']!r} is not a number from 0.")
        image, tag = images[row["image"]], classes[row["tag"]]
        reverts = _reverted(what, row["reverts"], made, image, tag)
        if not isinstance(row["is_current"], bool):
            raise ValidationError(
                f"{what}: is_current is {row['is_current']!r}, not true or false."
            )
        if row["is_current"]:
            if (image.pk, tag.pk) in in_force:
                raise ValidationError(
                    f"{what}: a second state of {tag.name!r} in force on {image.original_name}."
                )
            in_force.add((image.pk, tag.pk))
        made[number] = check(
            TagAnnotation(
                image=image,
                tag=tag,
                state=row["state"],
                action=row["action"],
                annotator=users.get(row["annotator"]),
                save_id=saves.setdefault(row["save"], uuid.uuid4()),
                is_current=row["is_current"],
                reverts=reverts,
            ),
            what,
        )
        times.append(time(row["created_at"], what))
    _store(list(made.values()), times)


def _refuse_classes(document: dict) -> None:
    for row in document["images"]:
        if row["label"] is not None:
            raise ValidationError(
                f"Image {row['file']}: an image of a multi-label project has tags, not a class."
            )
    for row in document["annotations"]:
        if row["label_class"] is not None:
            raise ValidationError(
                f"Label {row['ref']!r}: a multi-label project's history holds no classes."
            )


def _users(rows: list[dict]) -> dict:
    User = get_user_model()
    names = {row["annotator"] for row in rows if row["annotator"]}
    found = User.objects.filter(**{f"{User.USERNAME_FIELD}__in": names})
    return {user.get_username(): user for user in found}


def _reverted(what: str, ref, made: dict, image: Image, tag: LabelClass):
    if ref is None:
        return None
    if not isinstance(ref, int) or isinstance(ref, bool) or ref not in made:
        raise ValidationError(
            f"{what}: it reverts tag state {ref!r}, which comes nowhere before it."
        )
    reverted = made[ref]
    if reverted.image_id != image.pk or reverted.tag_id != tag.pk:
        raise ValidationError(f"{what}: it reverts tag state {ref!r}, of another image or tag.")
    return reverted


def _store(rows: list[TagAnnotation], times: list) -> None:
    """Insert the rows in order (so ids keep the archive's order), then give them their
    times and the rows they revert: `created_at` is set on insert, and a row's
    `reverts` may be in the same batch."""
    reverts = [row.reverts for row in rows]
    for row in rows:
        row.reverts = None
    TagAnnotation.objects.bulk_create(rows, batch_size=2000)
    for row, created_at, reverted in zip(rows, times, reverts, strict=True):
        row.created_at, row.reverts = created_at, reverted
    TagAnnotation.objects.bulk_update(rows, ["created_at", "reverts"], batch_size=2000)
