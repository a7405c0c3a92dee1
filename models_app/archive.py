"""A whole project as one zip, and back: images, classes, labels with their history, the
taxonomy log and the model versions' metrics.

The zip holds every format at once:
- `project.json`: everything, enough to rebuild the project exactly (`project_import`);
- `labels.csv`: one row per image with its current label, split, source and status;
- `coco.json`: COCO-style classification (images, categories with their parent as
  supercategory, one annotation per labeled image);
- `images/<class>/<file>`: the images in ImageFolder layout (`_unlabeled/` for the rest).

Inside `project.json` rows refer to each other by position (`ref`), not database ids,
so exporting an imported project gives the same file.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from collections.abc import Iterable
from typing import BinaryIO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.dateparse import parse_datetime

from labeling.ingest import RejectedFile, image_decode
from labeling.models import Annotation, Image, LabelClass, Project, TaxonomyChange
from labeling.services import (
    image_files_save,
    images_embedding_request,
    project_create,
    upload_limits,
)
from models_app.models import ModelVersion
from models_app.services import backbone_key

FORMAT = "labelloop-project"
VERSION = 1
FINISHED = (ModelVersion.Status.SUCCEEDED, ModelVersion.Status.FAILED)


def _folder(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "class"


def _stamp(value) -> str | None:
    return value.isoformat() if value else None


def project_document(*, project: Project) -> dict:
    """The project as plain data (`project.json`)."""
    classes = list(LabelClass.objects.filter(project=project).order_by("order", "id"))
    class_ref = {c.pk: i for i, c in enumerate(classes)}
    images = list(Image.objects.filter(project=project).order_by("id"))
    image_ref = {image.pk: i for i, image in enumerate(images)}
    annotations = list(
        Annotation.objects.filter(image__project=project).select_related("annotator").order_by("id")
    )
    annotation_ref = {a.pk: i for i, a in enumerate(annotations)}

    def ref(pk):
        return class_ref.get(pk) if pk is not None else None

    versions = ModelVersion.objects.filter(project=project, status__in=FINISHED).order_by("number")
    return {
        "format": FORMAT,
        "version": VERSION,
        "project": {
            "name": project.name,
            "description": project.description,
            "test_fraction": project.test_fraction,
            "val_fraction": project.val_fraction,
        },
        "classes": [
            {
                "ref": class_ref[c.pk],
                "name": c.name,
                "color": c.color,
                "key": c.key,
                "order": c.order,
                "is_active": c.is_active,
                "parent": ref(c.parent_id),
            }
            for c in classes
        ],
        "images": [
            {
                "ref": image_ref[image.pk],
                "file": _image_path(image, classes_by_id={c.pk: c for c in classes}),
                "original_name": image.original_name,
                "content_hash": image.content_hash,
                "width": image.width,
                "height": image.height,
                "source": image.source,
                "split": image.split,
                "status": image.status,
                "in_queue": image.in_queue,
                "needs_relabel": image.needs_relabel,
                "label": ref(image.label_id),
                "created_at": _stamp(image.created_at),
            }
            for image in images
        ],
        "annotations": [
            {
                "ref": annotation_ref[a.pk],
                "image": image_ref[a.image_id],
                "label_class": ref(a.label_class_id),
                "annotator": a.annotator.get_username() if a.annotator else None,
                "action": a.action,
                "is_current": a.is_current,
                "reverts": annotation_ref.get(a.reverts_id),
                "created_at": _stamp(a.created_at),
            }
            for a in annotations
        ],
        "taxonomy": [
            {
                "kind": change.kind,
                "summary": change.summary,
                "details": change.details,
                "actor": change.actor.get_username() if change.actor else None,
                "created_at": _stamp(change.created_at),
            }
            for change in TaxonomyChange.objects.filter(project=project)
            .select_related("actor")
            .order_by("created_at", "id")
        ],
        "model_versions": [_version_document(v, ref) for v in versions],
    }


def _image_path(image: Image, *, classes_by_id: dict) -> str:
    folder = _folder(classes_by_id[image.label_id].name) if image.label_id else "_unlabeled"
    extension = image.file.name.rsplit(".", 1)[-1]
    return f"images/{folder}/{image.content_hash[:32]}.{extension}"


def _version_document(version: ModelVersion, ref) -> dict:
    # Class ids inside the metrics become refs too, so the file is the same after a
    # round trip.
    metrics = _metric_classes(version.metrics, ref)
    return {
        "number": version.number,
        "status": version.status,
        "is_active": version.is_active,
        "trigger": version.trigger,
        "backbone": version.backbone,
        "head_kind": version.head_kind,
        "strategy": version.strategy,
        "fine_tuned": version.fine_tuned,
        "class_ids": [ref(pk) for pk in version.class_ids],
        "label_counts": {str(ref(int(pk))): row for pk, row in version.label_counts.items()},
        "labels_total": version.labels_total,
        "metrics": metrics,
        "error": version.error,
        "created_at": _stamp(version.created_at),
        "finished_at": _stamp(version.finished_at),
        "duration_seconds": version.duration_seconds,
        # The active version's model file travels with it, so the imported project
        # serves predictions at once; older versions keep their metrics only.
        "artifact": _artifact_path(version) if version.is_active and version.artifact else None,
    }


def _artifact_path(version: ModelVersion) -> str:
    return f"models/v{version.number}.pt"


def _metric_classes(metrics: dict, convert) -> dict:
    """The metrics with the class lists inside them (`classes`, `test_parents.classes`)
    passed through `convert` (id to ref, or back)."""
    metrics = dict(metrics)
    if "classes" in metrics:
        metrics["classes"] = [convert(c) for c in metrics["classes"]]
    if "test_parents" in metrics:
        parents = metrics["test_parents"]
        metrics["test_parents"] = {**parents, "classes": [convert(c) for c in parents["classes"]]}
    return metrics


def project_export(*, project: Project, out: BinaryIO) -> None:
    """Write the project's zip (see the module docstring) to `out`."""
    document = project_document(project=project)
    names = {c["ref"]: c["name"] for c in document["classes"]}
    parents = {c["ref"]: c["parent"] for c in document["classes"]}
    images = list(Image.objects.filter(project=project).order_by("id"))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.json", json.dumps(document, indent=1, sort_keys=True))
        rows = io.StringIO()
        writer = csv.writer(rows)
        writer.writerow(["file", "label", "split", "source", "status", "original_name"])
        for row in document["images"]:
            label = names.get(row["label"], "") if row["label"] is not None else ""
            writer.writerow(
                [
                    row["file"],
                    label,
                    row["split"],
                    row["source"],
                    row["status"],
                    row["original_name"],
                ]
            )
        archive.writestr("labels.csv", rows.getvalue())
        archive.writestr("coco.json", json.dumps(_coco(document, names, parents), indent=1))
        for image, row in zip(images, document["images"], strict=True):
            with image.file.open("rb") as f:
                archive.writestr(row["file"], f.read())
        for version in ModelVersion.objects.filter(project=project, is_active=True):
            if version.artifact:
                with default_storage.open(version.artifact, "rb") as f:
                    archive.writestr(_artifact_path(version), f.read())


def _coco(document: dict, names: dict, parents: dict) -> dict:
    labeled = [row for row in document["images"] if row["label"] is not None]
    return {
        "info": {"description": document["project"]["name"], "version": str(VERSION)},
        "images": [
            {
                "id": row["ref"] + 1,
                "file_name": row["file"],
                "width": row["width"],
                "height": row["height"],
            }
            for row in document["images"]
        ],
        "categories": [
            {
                "id": c["ref"] + 1,
                "name": c["name"],
                "supercategory": names.get(parents[c["ref"]], "")
                if parents[c["ref"]] is not None
                else "",
            }
            for c in document["classes"]
        ],
        "annotations": [
            {"id": i + 1, "image_id": row["ref"] + 1, "category_id": row["label"] + 1}
            for i, row in enumerate(labeled)
        ],
    }


@transaction.atomic
def project_import(
    *, archive: BinaryIO, user: AbstractBaseUser, name: str | None = None
) -> Project:
    """Rebuild a project from a zip `project_export` wrote, owned by `user`: classes,
    images (same bytes, hashes and splits), the whole label history (annotators matched
    by username where such a user exists), the taxonomy log, the finished model
    versions' metrics and the active version's model file, which serves at once when it
    was made with this server's backbone (otherwise no version is active and the
    project needs a retrain: `imported_model_missing` says so). Embedding of the images
    is requested on commit. All or nothing: a bad archive raises ValidationError and
    leaves nothing behind."""
    stored: list[str] = []
    try:
        return _import(archive, user, name, stored)
    except BaseException:
        for path in stored:
            default_storage.delete(path)
        raise


def _import(archive: BinaryIO, user, name: str | None, stored: list[str]) -> Project:
    limits = upload_limits()
    try:
        zipped = zipfile.ZipFile(archive)
        document = json.loads(zipped.read("project.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ValidationError(f"Not a labelloop export: {error}") from None
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ValidationError(f"Not a {FORMAT} archive of version {VERSION}.")
    try:
        meta = document["project"]
        project = project_create(
            name=name or meta["name"], description=meta["description"], user=user
        )
        project.test_fraction = meta["test_fraction"]
        project.val_fraction = meta["val_fraction"]
        project.full_clean()
        project.save()
        users = _users(document)
        classes = _classes(project, document["classes"])
        images = _images(project, zipped, document["images"], classes, user, limits, stored)
        _annotations(document["annotations"], images, classes, users)
        _taxonomy(project, document["taxonomy"], users)
        _versions(project, zipped, document["model_versions"], classes, stored)
    except (KeyError, TypeError, IndexError) as error:
        raise ValidationError(f"The archive's project.json is incomplete: {error!r}") from None
    images_embedding_request(project=project)
    return project


def imported_model_missing(*, project: Project) -> bool:
    """Whether an imported project had an active model that could not come with it (an
    older export, or another backbone): it needs a retrain before it predicts."""
    versions = ModelVersion.objects.filter(project=project)
    return (
        versions.filter(status=ModelVersion.Status.SUCCEEDED).exists()
        and not versions.filter(is_active=True).exists()
    )


def _users(document: dict) -> dict[str, AbstractBaseUser]:
    names = {a["annotator"] for a in document["annotations"] if a["annotator"]}
    names |= {t["actor"] for t in document["taxonomy"] if t["actor"]}
    User = get_user_model()
    return {
        u.get_username(): u for u in User.objects.filter(**{f"{User.USERNAME_FIELD}__in": names})
    }


def _classes(project: Project, rows: Iterable[dict]) -> dict[int, LabelClass]:
    rows = list(rows)
    created = {}
    for row in rows:
        label_class = LabelClass(
            project=project,
            name=row["name"],
            color=row["color"],
            key=row["key"],
            order=row["order"],
            is_active=row["is_active"],
        )
        label_class.full_clean(validate_constraints=False)
        label_class.save()
        created[row["ref"]] = label_class
    for row in rows:
        if row["parent"] is not None:
            created[row["ref"]].parent = created[row["parent"]]
            created[row["ref"]].save(update_fields=["parent"])
    return created


def _images(project, zipped, rows, classes, user, limits, stored) -> dict[int, Image]:
    created = {}
    for row in rows:
        info = zipped.getinfo(row["file"])
        if info.file_size > limits.max_image_bytes:
            raise ValidationError(f"{row['file']} is larger than the image size limit.")
        data = zipped.read(info)
        # The hash is of the bytes first uploaded (stored bytes may be re-encoded after
        # an EXIF rotation), so it is taken from the file, checked only for its form.
        if not re.fullmatch(r"[0-9a-f]{64}", row["content_hash"]):
            raise ValidationError(f"{row['file']}: bad content hash.")
        try:
            decoded = image_decode(data, limits=limits)
        except RejectedFile as rejected:
            raise ValidationError(f"{row['file']}: {rejected.message}") from None
        file_name, thumb, preview = image_files_save(
            project=project,
            content_hash=row["content_hash"],
            extension=row["file"].rsplit(".", 1)[-1],
            content=data,
            thumbnail=decoded.thumbnail,
            preview=decoded.preview,
            stored=stored,
        )
        image = Image.objects.create(
            project=project,
            file=file_name,
            thumbnail=thumb,
            preview=preview,
            original_name=row["original_name"],
            content_hash=row["content_hash"],
            draw=Image.draw_for(row["content_hash"]),
            width=row["width"],
            height=row["height"],
            source=row["source"],
            split=row["split"],
            status=row["status"],
            in_queue=row["in_queue"],
            needs_relabel=row["needs_relabel"],
            label=classes[row["label"]] if row["label"] is not None else None,
            uploaded_by=user,
        )
        Image.objects.filter(pk=image.pk).update(created_at=parse_datetime(row["created_at"]))
        created[row["ref"]] = image
    return created


def _annotations(rows, images, classes, users) -> None:
    created: dict[int, Annotation] = {}
    for row in rows:
        annotation = Annotation.objects.create(
            image=images[row["image"]],
            label_class=classes[row["label_class"]] if row["label_class"] is not None else None,
            annotator=users.get(row["annotator"]),
            action=row["action"],
            is_current=row["is_current"],
            reverts=created[row["reverts"]] if row["reverts"] is not None else None,
        )
        Annotation.objects.filter(pk=annotation.pk).update(
            created_at=parse_datetime(row["created_at"])
        )
        created[row["ref"]] = annotation


def _taxonomy(project, rows, users) -> None:
    for row in rows:
        change = TaxonomyChange.objects.create(
            project=project,
            actor=users.get(row["actor"]),
            kind=row["kind"],
            summary=row["summary"],
            details=row["details"],
        )
        TaxonomyChange.objects.filter(pk=change.pk).update(
            created_at=parse_datetime(row["created_at"])
        )


def _versions(project, zipped, rows, classes, stored) -> None:
    def pk(ref):
        return classes[ref].pk if ref is not None else None

    for row in rows:
        metrics = _metric_classes(row["metrics"], pk)
        artifact = ""
        # A model of another backbone cannot score this server's embeddings.
        if row.get("artifact") and row["backbone"] == backbone_key():
            try:
                data = zipped.read(row["artifact"])
            except KeyError:
                raise ValidationError(
                    f"The archive names a model file it does not hold ({row['artifact']})."
                ) from None
            artifact = default_storage.save(
                f"models/{project.pk}/v{row['number']}-{uuid.uuid4().hex[:8]}.pt",
                ContentFile(data),
            )
            stored.append(artifact)
        version = ModelVersion.objects.create(
            project=project,
            number=row["number"],
            status=row["status"],
            is_active=row["is_active"] and bool(artifact),
            artifact=artifact,
            trigger=row["trigger"],
            backbone=row["backbone"],
            head_kind=row["head_kind"],
            strategy=row["strategy"],
            fine_tuned=row["fine_tuned"],
            class_ids=[pk(r) for r in row["class_ids"]],
            label_counts={str(pk(int(r))): v for r, v in row["label_counts"].items()},
            labels_total=row["labels_total"],
            metrics=metrics,
            error=row["error"],
            finished_at=parse_datetime(row["finished_at"]) if row["finished_at"] else None,
            duration_seconds=row["duration_seconds"],
        )
        ModelVersion.objects.filter(pk=version.pk).update(
            created_at=parse_datetime(row["created_at"])
        )
