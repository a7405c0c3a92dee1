"""Images in: uploads and zips vetted file by file (a bad file costs only itself), stored
with their thumbnail (and a preview where browsers need one), their embedding
requested from the learner on commit."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
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
    Image,
    LabelClass,
    Project,
)
from labeling.services.annotations import annotation_create
from labeling.services.classes import label_class_create

logger = logging.getLogger(__name__)


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
        for upload in files:
            name = upload.name or "unnamed"
            if name.lower().endswith(".zip"):
                results.extend(
                    _zip_ingest(project=project, upload=upload, user=user, limits=limits)
                )
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
    finally:
        # Also when a later file fails: the images stored before it get embedded.
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
