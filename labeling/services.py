"""Writes to the dataset. Each function is one transaction unless its docstring says why not.

Callers (views, API views, admin actions, commands, tasks) check access first with
`labeling.access`; these functions trust that the actor may do what is asked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import Lower
from django.utils import timezone
from django_q.tasks import async_task

from labeling.ingest import (
    DecodedImage,
    Limits,
    RejectedFile,
    image_decode,
    too_large,
    zip_members,
)
from labeling.models import (
    Annotation,
    ClassMerge,
    ClassMergeMove,
    ClassSplit,
    Image,
    LabelClass,
    Membership,
    Project,
    SplitAssignment,
    TaxonomyChange,
)

logger = logging.getLogger(__name__)

CLASS_KEYS = "123456789abcdefghijklmnopqrstuvwxyz"
# Tableau's ten colours: distinct, and readable with white text.
CLASS_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


# --- projects and members ------------------------------------------------------------


@transaction.atomic
def project_create(*, name: str, description: str = "", user: AbstractBaseUser) -> Project:
    """Create a project with `user` as its first owner."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A project needs a name."})
    project = Project.objects.create(name=name, description=description, created_by=user)
    Membership.objects.create(project=project, user=user, role=Membership.Role.OWNER)
    return project


@transaction.atomic
def project_update(*, project: Project, name: str | None = None, description: str | None = None):
    if name is not None:
        if not name.strip():
            raise ValidationError({"name": "A project needs a name."})
        project.name = name.strip()
    if description is not None:
        project.description = description
    project.save(update_fields=["name", "description"])
    return project


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str) -> Membership:
    """Add `username` to the project with `role`, or change the role of a member.

    Refuses to leave the project without an owner.
    """
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"Role must be one of {', '.join(Membership.Role.values)}."})
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"username": f"No user named {username!r}."})
    # One membership change per project at a time: two owners demoting each other at
    # once must not both pass the last-owner check.
    Project.objects.select_for_update().get(pk=project.pk)
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        return Membership.objects.create(project=project, user=user, role=role)
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        _ensure_another_owner(project=project, membership=membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    """Remove a member; their labels stay. Refuses to remove the last owner."""
    Project.objects.select_for_update().get(pk=membership.project_id)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Membership.Role.OWNER:
        _ensure_another_owner(project=membership.project, membership=membership)
    Image.objects.filter(project=membership.project, reserved_by=membership.user).update(
        reserved_by=None, reserved_until=None
    )
    membership.delete()


def _ensure_another_owner(*, project: Project, membership: Membership) -> None:
    owners = Membership.objects.filter(project=project, role=Membership.Role.OWNER)
    if not owners.exclude(pk=membership.pk).exists():
        raise ValidationError({"role": "A project must keep at least one owner."})


# --- classes -------------------------------------------------------------------------


@transaction.atomic
def label_class_create(
    *,
    project: Project,
    name: str,
    color: str | None = None,
    key: str | None = None,
    actor: AbstractBaseUser | None = None,
    is_active: bool = True,
) -> LabelClass:
    """Create a class. A missing key takes the next free one (1-9, then a-z); a missing
    colour takes the next of the palette. Names are unique in a project, ignoring case.
    An inactive class (the targets of a split) gets no key until it is activated.
    Recorded in the taxonomy log."""
    # Serialise class creation per project so two requests cannot pick the same key.
    Project.objects.select_for_update().get(pk=project.pk)
    existing = LabelClass.objects.filter(project=project)
    name = (name or "").strip()
    if existing.annotate(lname=Lower("name")).filter(lname=name.lower()).exists():
        raise ValidationError({"name": f"A class named {name!r} already exists."})
    used_keys = _used_keys(project)
    if key is None:
        key = _free_key(project) if is_active else ""
    elif key and key.lower() in used_keys:
        raise ValidationError({"key": f"Key {key!r} is already used by another class."})
    count = existing.count()
    label_class = LabelClass(
        project=project,
        name=name,
        color=color or CLASS_COLOURS[count % len(CLASS_COLOURS)],
        key=(key or "").lower(),
        order=count,
        is_active=is_active,
    )
    label_class.full_clean(validate_constraints=False)
    label_class.save()
    _log(
        project,
        actor,
        TaxonomyChange.Kind.CREATE,
        f"Created class {name!r}.",
        {"class": label_class.pk},
    )
    return label_class


def _free_key(project: Project) -> str:
    """A key no class holds; a deactivated class's key only when none is left (it
    would be taken back from it, confusingly, on reactivation)."""
    active = _used_keys(project)
    held = active | set(LabelClass.objects.filter(project=project).values_list("key", flat=True))
    return next((k for k in CLASS_KEYS if k not in held), "") or next(
        (k for k in CLASS_KEYS if k not in active), ""
    )


def _log(project: Project, actor, kind: str, summary: str, details: dict) -> TaxonomyChange:
    return TaxonomyChange.objects.create(
        project=project, actor=actor, kind=kind, summary=summary[:500], details=details
    )


_CLASS_FIELDS = ("name", "color", "key", "order", "is_active", "parent")


@transaction.atomic
def label_class_update(
    *, label_class: LabelClass, actor: AbstractBaseUser | None = None, **changes
) -> LabelClass:
    """Change a class's name, colour, key, order, active flag or parent. Labels are
    untouched: a deactivated class keeps its images and history and leaves the
    labeling page. Each change is recorded in the taxonomy log with its old value."""
    unknown = set(changes) - set(_CLASS_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    label_class = LabelClass.objects.select_for_update().get(pk=label_class.pk)
    if (
        ClassSplit.objects.filter(
            Q(source=label_class) | Q(targets=label_class), status=ClassSplit.Status.OPEN
        ).exists()
        and "is_active" in changes
    ):
        raise ValidationError({"is_active": "Finish or cancel the split of this class first."})
    before = {f: _field_value(label_class, f) for f in changes}
    for field, value in changes.items():
        setattr(label_class, field, value.strip().lower() if field == "key" else value)
    if "parent" in changes:
        _check_parent(label_class)
    label_class.full_clean(validate_constraints=False)
    others = LabelClass.objects.filter(project_id=label_class.project_id).exclude(pk=label_class.pk)
    if others.annotate(lname=Lower("name")).filter(lname=label_class.name.lower()).exists():
        raise ValidationError({"name": f"A class named {label_class.name!r} already exists."})
    if (
        label_class.key
        and label_class.is_active
        and others.filter(is_active=True, key=label_class.key).exists()
    ):
        raise ValidationError({"key": f"Key {label_class.key!r} is already used by another class."})
    label_class.save()
    after = {f: _field_value(label_class, f) for f in changes}
    changed = {f: [before[f], after[f]] for f in changes if before[f] != after[f]}
    if changed:
        _log(
            label_class.project,
            actor,
            TaxonomyChange.Kind.UPDATE,
            f"Class {label_class.name!r}: "
            + ", ".join(f"{f} {old!r} → {new!r}" for f, (old, new) in changed.items())
            + ".",
            {"class": label_class.pk, "changes": changed},
        )
    return label_class


def _field_value(label_class: LabelClass, field: str):
    return label_class.parent_id if field == "parent" else getattr(label_class, field)


def _check_parent(label_class: LabelClass) -> None:
    if label_class.parent_id is None:
        return
    # Read again: the caller's object may predate a change of its own parent.
    parent = LabelClass.objects.get(pk=label_class.parent_id)
    if parent.project_id != label_class.project_id:
        raise ValidationError({"parent": "The parent must be a class of the same project."})
    if parent.pk == label_class.pk:
        raise ValidationError({"parent": "A class cannot be its own parent."})
    if parent.parent_id is not None:
        raise ValidationError({"parent": f"{parent.name!r} has a parent itself: one level only."})
    if label_class.children.exists():
        raise ValidationError({"parent": f"{label_class.name!r} has children: one level only."})


# --- images --------------------------------------------------------------------------


class Upload(Protocol):
    """What an upload looks like to the ingest service: Django's UploadedFile fits."""

    name: str
    size: int

    def read(self, size: int = -1) -> bytes: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...


@dataclass(frozen=True)
class FileResult:
    name: str
    status: str  # "created", "duplicate" or "rejected"
    message: str
    image_id: int | None = None


def upload_limits() -> Limits:
    config = settings.LABELING
    return Limits(
        max_image_bytes=config["MAX_IMAGE_BYTES"],
        max_image_pixels=config["MAX_IMAGE_PIXELS"],
        max_zip_bytes=config["MAX_ZIP_BYTES"],
        max_zip_expanded_bytes=config["MAX_ZIP_EXPANDED_BYTES"],
        max_zip_ratio=config["MAX_ZIP_RATIO"],
        max_zip_entries=config["MAX_ZIP_ENTRIES"],
        thumbnail_size=config["THUMBNAIL_SIZE"],
    )


def images_ingest(
    *,
    project: Project,
    files: Iterable[Upload],
    user: AbstractBaseUser | None,
    source: str = Image.Source.UPLOAD,
    label_class: LabelClass | None = None,
    in_queue: bool = True,
    request_embedding: bool = True,
) -> list[FileResult]:
    """Store every acceptable image of a batch and report on each file.

    Not one transaction on purpose: each image is its own transaction, so a bad file
    never costs the good ones beside it, and a refused file leaves nothing behind. A zip
    is unpacked with its folders as class names (missing classes are created). Exact
    duplicates of an image already in the project are reported and not stored again.
    Images stored with `in_queue=False` stay out of the labeling queue until
    `images_queue_add` puts them in. Their embedding is requested on commit
    (`images_embedding_request`) unless the caller stores embeddings itself
    (`request_embedding=False`: the benchmarks' cache).
    """
    limits = upload_limits()
    results: list[FileResult] = []
    try:
        _images_ingest_each(
            project=project,
            files=files,
            user=user,
            source=source,
            label_class=label_class,
            in_queue=in_queue,
            limits=limits,
            results=results,
        )
    finally:
        if request_embedding and any(result.status == "created" for result in results):
            images_embedding_request(project=project)
    return results


def images_embedding_request(*, project: Project) -> None:
    """Ask the learner to embed the project's new images as soon as the caller's
    transaction commits (at once outside one), not at the next schedule tick: until the
    embeddings exist the queue has no ranking. labeling names the learner's task by its
    path and does not import models_app (labeling <- models_app <- feedback)."""
    transaction.on_commit(
        lambda: async_task(
            "models_app.tasks.embed_project", project.pk, task_name=f"embed project {project.pk}"
        )
    )


def _images_ingest_each(
    *,
    project: Project,
    files: Iterable[Upload],
    user: AbstractBaseUser | None,
    source: str,
    label_class: LabelClass | None,
    in_queue: bool,
    limits: Limits,
    results: list[FileResult],
) -> None:
    for upload in files:
        name = upload.name or "unnamed"
        if name.lower().endswith(".zip"):
            results.extend(_zip_ingest(project=project, upload=upload, user=user, limits=limits))
            continue
        if upload.size > limits.max_image_bytes:
            results.append(_rejected(name, too_large(upload.size, limits.max_image_bytes)))
            continue
        upload.seek(0)
        data = upload.read(limits.max_image_bytes + 1)
        results.append(
            _image_ingest_one(
                project=project,
                name=name,
                data=data,
                user=user,
                source=source,
                label_class=label_class,
                limits=limits,
                in_queue=in_queue,
            )
        )


def _rejected(name: str, message: str) -> FileResult:
    return FileResult(name=name, status="rejected", message=message)


def _zip_ingest(
    *, project: Project, upload: Upload, user: AbstractBaseUser | None, limits: Limits
) -> list[FileResult]:
    upload.seek(0)
    try:
        members = list(zip_members(upload, size=upload.size, limits=limits))
    except RejectedFile as rejected:
        return [_rejected(upload.name, rejected.message)]
    results = []
    for member in members:
        shown = f"{upload.name}/{member.name}"
        if member.error:
            results.append(_rejected(shown, member.error))
            continue
        results.append(
            _image_ingest_one(
                project=project,
                name=shown,
                data=member.data,
                user=user,
                source=Image.Source.IMPORT,
                class_name=member.class_name,
                limits=limits,
            )
        )
    return results


def _image_ingest_one(
    *,
    project: Project,
    name: str,
    data: bytes,
    user: AbstractBaseUser | None,
    source: str,
    limits: Limits,
    label_class: LabelClass | None = None,
    class_name: str | None = None,
    in_queue: bool = True,
) -> FileResult:
    try:
        decoded = image_decode(data, limits=limits)
    except RejectedFile as rejected:
        return _rejected(name, rejected.message)
    duplicate = _duplicate_of(project=project, content_hash=decoded.content_hash)
    if duplicate:
        return duplicate.as_result(name)
    if class_name is not None:
        try:
            label_class = _class_for_import(project=project, name=class_name)
        except ValidationError as error:
            return _rejected(name, " ".join(error.messages))
    return _image_store(
        project=project,
        name=name,
        decoded=decoded,
        user=user,
        source=source,
        label_class=label_class,
        in_queue=in_queue,
    )


@dataclass(frozen=True)
class _Duplicate:
    image_id: int
    original_name: str

    def as_result(self, name: str) -> FileResult:
        return FileResult(
            name=name,
            status="duplicate",
            message=f"Already in this project as image #{self.image_id} "
            f"({self.original_name}); not stored again.",
            image_id=self.image_id,
        )


def _duplicate_of(*, project: Project, content_hash: str) -> _Duplicate | None:
    row = (
        Image.objects.filter(project=project, content_hash=content_hash)
        .values_list("id", "original_name")
        .first()
    )
    return _Duplicate(*row) if row else None


def _class_for_import(*, project: Project, name: str) -> LabelClass:
    existing = (
        LabelClass.objects.filter(project=project)
        .annotate(lname=Lower("name"))
        .filter(lname=name.strip().lower())
        .first()
    )
    if existing is None:
        return label_class_create(project=project, name=name)
    if not existing.is_active:
        raise ValidationError(
            f"Class {existing.name!r} is deactivated; reactivate it or rename the folder."
        )
    return existing


def _image_store(
    *,
    project: Project,
    name: str,
    decoded: DecodedImage,
    user: AbstractBaseUser | None,
    source: str,
    label_class: LabelClass | None,
    in_queue: bool = True,
) -> FileResult:
    stored: list[str] = []
    try:
        file_name, thumb_name, preview_name = image_files_save(
            project=project,
            content_hash=decoded.content_hash,
            extension=decoded.extension,
            content=decoded.content,
            thumbnail=decoded.thumbnail,
            preview=decoded.preview,
            stored=stored,
        )
        with transaction.atomic():
            image = Image.objects.create(
                project=project,
                file=file_name,
                thumbnail=thumb_name,
                preview=preview_name,
                original_name=name[-255:],
                content_hash=decoded.content_hash,
                draw=Image.draw_for(decoded.content_hash),
                width=decoded.width,
                height=decoded.height,
                source=source,
                uploaded_by=user,
                in_queue=in_queue,
            )
            if label_class is not None:
                annotation_create(image=image, label_class=label_class, annotator=user)
    except IntegrityError:
        # Another request stored the same bytes between our check and our insert.
        _files_delete(stored)
        duplicate = _duplicate_of(project=project, content_hash=decoded.content_hash)
        if duplicate:
            return duplicate.as_result(name)
        raise
    except BaseException:
        _files_delete(stored)
        raise
    return FileResult(name=name, status="created", message="Added.", image_id=image.pk)


def image_files_save(
    *,
    project: Project,
    content_hash: str,
    extension: str,
    content: bytes,
    thumbnail: bytes,
    stored: list[str],
    preview: bytes | None = None,
) -> tuple[str, str, str]:
    """Store an image's file, its thumbnail and its preview (if any) where the project
    keeps them; returns their storage names ("" for no preview), and appends each to
    `stored` as soon as it exists, so a caller that fails later can delete them."""
    base = f"projects/{project.pk}"
    stem = content_hash[:32]
    file_name = default_storage.save(
        f"{base}/images/{stem[:2]}/{stem}.{extension}", ContentFile(content)
    )
    stored.append(file_name)
    thumb_name = default_storage.save(
        f"{base}/thumbnails/{stem[:2]}/{stem}.jpg", ContentFile(thumbnail)
    )
    stored.append(thumb_name)
    preview_name = ""
    if preview is not None:
        preview_name = default_storage.save(
            f"{base}/previews/{stem[:2]}/{stem}.jpg", ContentFile(preview)
        )
        stored.append(preview_name)
    return file_name, thumb_name, preview_name


def _files_delete(names: Sequence[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("could not delete %s after a failed upload", name)


# --- annotations ---------------------------------------------------------------------


@transaction.atomic
def annotation_create(
    *, image: Image, label_class: LabelClass, annotator: AbstractBaseUser | None
) -> Annotation:
    """Give `image` the label `label_class`, adding a history row; earlier rows stay.

    Idempotent: labeling an image with the class it already has adds nothing, so a
    double key press or a retried request leaves one row. Releases the image's queue
    reservation.
    """
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
        annotation = Annotation.objects.create(
            image=image, label_class=label_class, annotator=annotator, is_current=True
        )
    image.label = label_class
    image.reserved_by = None
    image.reserved_until = None
    image.needs_relabel = False
    if image.split == Image.Split.UNASSIGNED:
        image.split = split_for(image=image)
    image.save(update_fields=["label", "reserved_by", "reserved_until", "split", "needs_relabel"])
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
    image.reserved_until = timezone.now() + _reservation()
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


def image_suggestions_write(*, project: Project, suggestions: Sequence[Suggestion]) -> int:
    """Store the learner's suggested class, confidence and queue priority for images of
    `project`. Called by the learner after scoring; rows of other projects are ignored.

    One parameterised UPDATE run for many rows (`executemany`), in transactions of
    5,000 rows that keep locks short: Django's bulk_update builds a CASE expression per
    row and takes seconds per thousand, where this re-ranks 100,000 images in seconds.
    """
    quote = connection.ops.quote_name
    column = {name: quote(Image._meta.get_field(name).column) for name in _SUGGESTION_FIELDS}
    sql = (
        f"UPDATE {quote(Image._meta.db_table)} SET {column['suggested_class']} = %s, "
        f"{column['confidence']} = %s, {column['priority']} = %s "
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
                (s.class_id, s.confidence, s.priority, s.image_id, project.pk)
                for s in chunk
                if s.image_id in mine
            ]
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            written += len(rows)
    return written


_SUGGESTION_FIELDS = ("suggested_class", "confidence", "priority", "id", "project")


# --- taxonomy: merge and split ----------------------------------------------------------


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
    learner retrain. One transaction. Owners and reviewers only (callers check)."""
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


def _used_keys(project: Project) -> set[str]:
    return set(
        LabelClass.objects.filter(project=project, is_active=True).values_list("key", flat=True)
    )


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
    if merge.target_created and not Image.objects.filter(label=target).exists():
        target.is_active = False
        target.save(update_fields=["is_active"])
    merge.undone_at = timezone.now()
    merge.undone_by = actor
    merge.save(update_fields=["undone_at", "undone_by"])
    _log(
        merge.project,
        actor,
        TaxonomyChange.Kind.UNMERGE,
        f"Undid the merge into {target.name!r}: {len(moves)} labels restored"
        + (f", {kept} relabeled since kept as they are." if kept else "."),
        {"merge": merge.pk, "restored": len(moves), "kept": kept},
    )
    return len(moves)


@transaction.atomic
def label_class_split_start(
    *, label_class: LabelClass, names: Sequence[str], actor: AbstractBaseUser | None
) -> ClassSplit:
    """Start splitting `label_class` into new classes named `names` (at least two). The
    new classes stay inactive, and the class keeps working, until the split is
    finished. Curators only."""
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
    images = list(
        Image.objects.filter(
            project=split.project, label=split.source, pk__in=image_ids
        ).values_list("id", flat=True)
    )
    if len(images) != len(set(image_ids)):
        raise ValidationError({"images": f"Some images are not labeled {split.source.name!r}."})
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
            kind__in=SplitAssignment.DECIDED, image__label=split.source
        ).values_list("image_id", "label_class_id")
    )
    _relabel_bulk(moves=list(decided.items()), action=Annotation.Action.SPLIT, actor=actor)
    to_relabel = Image.objects.filter(project=project, label=split.source).update(
        needs_relabel=True
    )
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


# --- the queue -----------------------------------------------------------------------


def _reservation() -> timedelta:
    return timedelta(seconds=settings.LABELING["RESERVATION_SECONDS"])


@transaction.atomic
def queue_reserve(
    *,
    project: Project,
    user: AbstractBaseUser,
    count: int = 2,
    exclude_ids: Sequence[int] = (),
) -> list[Image]:
    """Reserve the next `count` unlabeled images for `user` and return them in order.

    Images the user already holds come first (a reload shows the same image), then
    images a class split left to re-label. Each
    further slot goes to a held-out image (`Image.draw` below test + val fraction), in
    random order, while held-out images are less than that fraction of the labeled and
    reserved ones, so validation and test labels stay an unbiased sample at a set rate;
    otherwise to the image the query strategy ranks highest (`Image.priority`), ties
    (and every image while no ranking exists yet) in hash-draw order, a random one,
    never upload order. When one kind runs out the other is served.

    Rows are taken with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent callers
    never get the same image. On SQLite, whose IMMEDIATE transactions admit one writer
    at a time, the lock clause is dropped by Django and the guarantee comes from that
    instead. Reservations expire, so an annotator who walks away does not keep images
    forever.
    """
    now = timezone.now()
    pending = Image.objects.filter(
        project=project, label__isnull=True, in_queue=True, status=Image.Status.ACTIVE
    ).exclude(pk__in=exclude_ids)
    relabel = Image.objects.filter(
        project=project, needs_relabel=True, status=Image.Status.ACTIVE
    ).exclude(pk__in=exclude_ids)
    # Held images in the order they were served (their reservations end a microsecond
    # apart, see below), so a reload shows the image that was on the screen.
    images = list(
        (pending | relabel)
        .select_for_update()
        .filter(reserved_by=user, reserved_until__gt=now)
        .order_by("reserved_until", "id")[:count]
    )
    # Images left without a class by a split come before anything else.
    free_relabel = relabel.filter(Q(reserved_until__isnull=True) | Q(reserved_until__lte=now))
    while len(images) < count:
        image = (
            free_relabel.exclude(pk__in=[i.pk for i in images])
            .order_by("id")
            .select_for_update(skip_locked=True)
            .first()
        )
        if image is None:
            break
        images.append(image)
    rate = project.test_fraction + project.val_fraction
    # Labeled and reserved images counted apart: each count then runs on an index.
    counts = {"all": Count("id"), "holdout": Count("id", filter=Q(draw__lt=rate))}
    labeled = Image.objects.filter(project=project, label__isnull=False).aggregate(**counts)
    reserved = Image.objects.filter(
        project=project, label__isnull=True, reserved_until__gt=now
    ).aggregate(**counts)
    totals = {k: labeled[k] + reserved[k] for k in counts}
    free = pending.filter(Q(reserved_until__isnull=True) | Q(reserved_until__lte=now))
    kinds = {
        True: free.filter(draw__lt=rate).order_by("draw", "id"),
        False: free.filter(draw__gte=rate).order_by("-priority", "draw", "id"),
    }
    while len(images) < count:
        holdout = totals["holdout"] < rate * (totals["all"] + 1)
        for kind in (holdout, not holdout):
            image = (
                kinds[kind]
                .exclude(pk__in=[image.pk for image in images])
                .select_for_update(skip_locked=True)
                .first()
            )
            if image is not None:
                images.append(image)
                totals["all"] += 1
                totals["holdout"] += image.draw < rate
                break
        else:
            break
    until = now + _reservation()
    for position, image in enumerate(images):
        image.reserved_by = user
        image.reserved_until = until + timedelta(microseconds=position)
    Image.objects.bulk_update(images, ["reserved_by", "reserved_until"])
    return images


@transaction.atomic
def queue_release(*, image: Image, user: AbstractBaseUser) -> None:
    """Give back `user`'s reservation of `image` (Skip), so another annotator can take it."""
    Image.objects.filter(pk=image.pk, reserved_by=user).update(
        reserved_by=None, reserved_until=None
    )
