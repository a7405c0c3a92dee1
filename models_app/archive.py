"""A whole project as one zip, and back: images, classes, labels, history, taxonomy log, metrics.

The zip holds every format at once:
- `project.json`: everything, enough to rebuild the project exactly (`project_import`);
- `labels.csv`: one row per image with its current label, split, source and status;
- `coco.json`: COCO-style classification (images, categories with their parent as
  supercategory, one annotation per labeled image);
- `images/<class>/<file>`: the images in ImageFolder layout (`_unlabeled/` for the rest).

Inside `project.json` rows refer to each other by position (`ref`), not database ids,
so exporting an imported project gives the same file. Version 2 also writes the class
ids inside the taxonomy log's details as refs (version 1 kept them raw); version 3 is a
tag project's (`models_app.archive_tags`, which adds `tags.csv`). All are read.

A bad archive is refused with a ValidationError saying what is wrong (a missing file or key,
a ref to nothing, a value no form accepts, two rows that cannot both exist): no row, no file.
"""

from __future__ import annotations

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
from django.db import DataError, IntegrityError, models, transaction
from django.utils.dateparse import parse_datetime

from labeling.csv_cells import csv_writer
from labeling.ingest import RejectedFile, image_decode
from labeling.models import Annotation, Image, LabelClass, Project, TaxonomyChange
from labeling.services import (
    image_files_save,
    images_embedding_request,
    project_create,
    upload_limits,
)
from models_app import archive_numbers, archive_provenance, archive_tags
from models_app.models import LearnerSettings, ModelVersion
from models_app.services import backbone_key

FORMAT = "labelloop-project"
VERSION = 2
READABLE_VERSIONS = (1, 2, 3)
LEARNER_FIELDS = ("retrain_every", "head_kind", "fine_tune", "fine_tune_epochs", "strategy")
# Keys of the taxonomy log's details that hold class ids (one, or a list), and those
# that hold ids of rows an archive does not carry (merge and split records).
DETAIL_CLASS_KEYS = ("class", "target", "source")
DETAIL_CLASS_LIST_KEYS = ("sources", "targets")
DETAIL_UNCARRIED_KEYS = ("merge", "split")
FINISHED = (ModelVersion.Status.SUCCEEDED, ModelVersion.Status.FAILED)
# Plain columns written and read as they are; the rest need a ref, a name or a time.
CLASS_FIELDS = ("name", "color", "key", "order", "is_active")
IMAGE_FIELDS = (
    *("original_name", "content_hash", "width", "height", "source", "split", "status"),
    *("in_queue", "needs_relabel"),
)
VERSION_FIELDS = (
    *("number", "status", "trigger", "backbone", "head_kind", "strategy", "fine_tuned"),
    *("labels_total", "error", "duration_seconds"),
)


def _folder(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "class"


def _stamp(value) -> str | None:
    return value.isoformat() if value else None


def _username(user) -> str | None:
    return user.get_username() if user else None


def project_document(*, project: Project) -> dict:
    """The project as plain data (`project.json`)."""
    classes = list(LabelClass.objects.filter(project=project).order_by("order", "id"))
    class_ref = {c.pk: i for i, c in enumerate(classes)}
    images = list(
        Image.objects.filter(project=project).select_related("uploaded_by").order_by("id")
    )
    image_ref = {image.pk: i for i, image in enumerate(images)}
    annotations = list(
        Annotation.objects.filter(image__project=project).select_related("annotator").order_by("id")
    )
    annotation_ref = {a.pk: i for i, a in enumerate(annotations)}
    ref = class_ref.get  # no class (None) is no ref
    versions = (
        ModelVersion.objects.filter(project=project, status__in=FINISHED)
        .select_related("requested_by")
        .order_by("number")
    )
    learner = LearnerSettings.objects.filter(project=project).first()
    refs = (image_ref, annotation_ref, class_ref)
    return {
        "format": FORMAT,
        "version": VERSION,
        "provenance": archive_provenance.provenance_document(
            project=project, versions=versions, images=images, annotations=annotations, refs=refs
        ),
        "project": {
            "name": project.name,
            "description": project.description,
            "test_fraction": project.test_fraction,
            "val_fraction": project.val_fraction,
        },
        "learner": {f: getattr(learner, f) for f in LEARNER_FIELDS} if learner else None,
        "classes": [
            {
                "ref": class_ref[c.pk],
                **{f: getattr(c, f) for f in CLASS_FIELDS},
                "parent": ref(c.parent_id),
                "created_at": _stamp(c.created_at),
            }
            for c in classes
        ],
        "images": [
            {
                "ref": image_ref[image.pk],
                "file": _image_path(image, classes_by_id={c.pk: c for c in classes}),
                **{f: getattr(image, f) for f in IMAGE_FIELDS},
                "label": ref(image.label_id),
                "uploaded_by": _username(image.uploaded_by),
                # The active model's view of the image and the queue order it made.
                "priority": image.priority,
                "suggested_class": ref(image.suggested_class_id),
                "confidence": image.confidence,
                "created_at": _stamp(image.created_at),
            }
            for image in images
        ],
        "annotations": [
            {
                "ref": annotation_ref[a.pk],
                "image": image_ref[a.image_id],
                "label_class": ref(a.label_class_id),
                "annotator": _username(a.annotator),
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
                "details": _detail_classes(change.details, ref, keep_uncarried=False),
                "actor": _username(change.actor),
                "created_at": _stamp(change.created_at),
            }
            for change in TaxonomyChange.objects.filter(project=project)
            .select_related("actor")
            .order_by("created_at", "id")
        ],
        "model_versions": [_version_document(v, ref) for v in versions],
        **archive_tags.tags_document(project=project, image_ref=image_ref, class_ref=class_ref),
    }


def _image_path(image: Image, *, classes_by_id: dict) -> str:
    folder = _folder(classes_by_id[image.label_id].name) if image.label_id else "_unlabeled"
    extension = image.file.name.rsplit(".", 1)[-1]
    return f"images/{folder}/{image.content_hash[:32]}.{extension}"


def _version_document(version: ModelVersion, ref) -> dict:
    # Class ids inside the metrics become refs too: the same file after a round trip.
    metrics = _metric_classes(version.metrics, ref)
    return {
        **{f: getattr(version, f) for f in VERSION_FIELDS},
        "is_active": version.is_active,
        "requested_by": _username(version.requested_by),
        "progress": version.progress,
        "class_ids": [ref(pk) for pk in version.class_ids],
        "label_counts": {str(ref(int(pk))): row for pk, row in version.label_counts.items()},
        "metrics": metrics,
        "created_at": _stamp(version.created_at),
        "started_at": _stamp(version.started_at),
        "finished_at": _stamp(version.finished_at),
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
    return archive_tags.tag_metrics_converted(metrics, convert)


def _detail_classes(details: dict, convert, *, keep_uncarried: bool) -> dict:
    """The taxonomy log's details with the class ids inside them (see
    DETAIL_CLASS_KEYS, and a parent change) passed through `convert`; ids of merge and
    split records, which do not travel, are left out unless `keep_uncarried`."""
    details = dict(details)
    for key in DETAIL_CLASS_KEYS:
        if details.get(key) is not None:
            details[key] = convert(details[key])
    for key in DETAIL_CLASS_LIST_KEYS:
        if key in details:
            details[key] = [convert(c) for c in details[key]]
    if not keep_uncarried:
        for key in DETAIL_UNCARRIED_KEYS:
            details.pop(key, None)
    changes = details.get("changes")
    if isinstance(changes, dict) and "parent" in changes:
        details["changes"] = {
            **changes,
            "parent": [convert(c) if c is not None else None for c in changes["parent"]],
        }
    return details


def project_export(*, project: Project, out: BinaryIO) -> None:
    """Write the project's zip (see the module docstring) to `out`."""
    document = project_document(project=project)
    names = {c["ref"]: c["name"] for c in document["classes"]}
    parents = {c["ref"]: c["parent"] for c in document["classes"]}
    images = list(Image.objects.filter(project=project).order_by("id"))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.json", json.dumps(document, indent=1, sort_keys=True))
        rows = io.StringIO()
        writer = csv_writer(rows)  # names a spreadsheet would run are quoted
        writer.writerow(["file", "label", "split", "source", "status", "original_name"])
        for row in document["images"]:
            label = names.get(row["label"], "") if row["label"] is not None else ""
            rest = (row[k] for k in ("split", "source", "status", "original_name"))
            writer.writerow([row["file"], label, *rest])
        archive.writestr("labels.csv", rows.getvalue())
        archive.writestr("coco.json", json.dumps(_coco(document, names, parents), indent=1))
        if tags := archive_tags.tags_csv(project=project):
            archive.writestr("tags.csv", tags)
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
                **{k: row[k] for k in ("width", "height")},
            }
            for row in document["images"]
        ],
        "categories": [
            # No parent (None) is no name: an empty supercategory.
            {
                "id": c["ref"] + 1,
                "name": c["name"],
                "supercategory": names.get(parents[c["ref"]], ""),
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
    images (same bytes, hashes, splits and queue order), the whole label history
    (annotators, uploaders and requesters matched by username where such a user
    exists), the taxonomy log, the learner settings, the finished model versions'
    metrics and the active version's model file, which serves at once when it was made
    with this server's backbone (otherwise no version is active and the project needs a
    retrain: `imported_model_missing` says so). Embedding of the images is requested on
    commit. All or nothing: a bad archive raises ValidationError saying what is wrong
    and leaves no row and no file behind."""
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
    archive_numbers.archive_version(document, format_name=FORMAT, readable=READABLE_VERSIONS)
    try:
        meta = document["project"]
        project = project_create(
            name=name or meta["name"], description=meta["description"], user=user
        )
        project.test_fraction, project.val_fraction = meta["test_fraction"], meta["val_fraction"]
        project.kind = archive_tags.archive_kind(document)
        archive_numbers.booleans_refused(project, "The project").full_clean()
        project.save()
        if document.get("learner"):
            learner = document["learner"]
            _checked(
                LearnerSettings(project=project, **{f: learner[f] for f in LEARNER_FIELDS}),
                "The learner settings",
            ).save()
        users = _users(document)
        classes = _classes(project, document["classes"])
        images = _images(project, zipped, document["images"], classes, user, users, limits, stored)
        annotations = _annotations(document["annotations"], images, classes, users)
        archive_tags.tags_import(document, project, images, classes, check=_checked, time=_time)
        _taxonomy(project, document["taxonomy"], classes, users, document["version"])
        _versions(project, zipped, document["model_versions"], classes, users, stored)
        archive_provenance.provenance_import(
            document, project, images, annotations, classes, users, time=_time
        )
    except KeyError as error:
        raise ValidationError(
            f"The archive's project.json is incomplete: a row has no {error.args[0]!r}."
        ) from None
    except (TypeError, ValueError, IndexError, AttributeError) as error:
        raise ValidationError(f"The archive's project.json is malformed: {error}") from None
    except (IntegrityError, DataError) as error:
        # Rows that cannot all exist (two current labels of one image, two active
        # versions, ...): the transaction is rolled back on the way out.
        raise ValidationError(f"The archive's rows cannot all be stored: {error}") from None
    except zipfile.BadZipFile as error:
        raise ValidationError(f"The archive is damaged: {error}") from None
    images_embedding_request(project=project)
    return project


def _checked(instance: models.Model, what: str) -> models.Model:
    """`instance` if every plain field holds a value its form would accept (choices,
    lengths, bounds); relations are checked by the refs, JSON by its readers, and files
    are named by the import itself."""
    exclude = [
        f.name
        for f in instance._meta.concrete_fields
        if f.is_relation or isinstance(f, models.JSONField | models.FileField)
    ]
    archive_numbers.booleans_refused(instance, what)
    try:
        instance.clean_fields(exclude=exclude)
    except ValidationError as error:
        problems = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
        raise ValidationError(f"{what}: {problems}") from None
    return instance


def _time(value, what: str, *, required: bool = True):
    if value is None and not required:
        return None
    # A well-formed but impossible time (month 13) raises ValueError: malformed.
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValidationError(f"{what}: {value!r} is not a time.")
    return parsed


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
    names |= {i["uploaded_by"] for i in document["images"] if i.get("uploaded_by")}
    names |= {v["requested_by"] for v in document["model_versions"] if v.get("requested_by")}
    User = get_user_model()
    return {
        u.get_username(): u for u in User.objects.filter(**{f"{User.USERNAME_FIELD}__in": names})
    }


def _classes(project: Project, rows: Iterable[dict]) -> archive_numbers.Made:
    rows = list(rows)
    created = archive_numbers.Made("class")
    for row in rows:
        label_class = LabelClass(project=project, **{f: row[f] for f in CLASS_FIELDS})
        archive_numbers.booleans_refused(label_class, f"Class {row['name']!r}")
        try:
            label_class.full_clean(validate_constraints=False)
        except ValidationError as error:
            raise ValidationError(f"Class {row['name']!r}: {' '.join(error.messages)}") from None
        label_class.save()
        created.add(row["ref"], label_class)
        if row.get("created_at"):
            LabelClass.objects.filter(pk=label_class.pk).update(
                created_at=_time(row["created_at"], f"Class {row['name']!r}")
            )
    for row in rows:
        if row["parent"] is not None:
            label_class = created[row["ref"]]
            label_class.parent = created[row["parent"]]
            label_class.save(update_fields=["parent"])
    return created


def _images(project, zipped, rows, classes, user, users, limits, stored) -> archive_numbers.Made:
    created = archive_numbers.Made("image")
    hashes: set[str] = set()
    for row in rows:
        try:
            info = zipped.getinfo(row["file"])
        except KeyError:
            raise ValidationError(
                f"The archive names a file it does not hold ({row['file']})."
            ) from None
        if info.file_size > limits.max_image_bytes:
            raise ValidationError(f"{row['file']} is larger than the image size limit.")
        # The hash is of the bytes first uploaded (stored bytes may be re-encoded after
        # an EXIF rotation), so it is taken from the file, checked only for its form.
        if not isinstance(row["content_hash"], str) or not re.fullmatch(
            r"[0-9a-f]{64}", row["content_hash"]
        ):
            raise ValidationError(f"{row['file']}: bad content hash.")
        if row["content_hash"] in hashes:
            raise ValidationError(f"The archive holds the image {row['file']} twice.")
        hashes.add(row["content_hash"])
        label = classes[row["label"]]
        suggested = classes[row.get("suggested_class")]
        image = _checked(
            Image(
                project=project,
                **{f: row[f] for f in IMAGE_FIELDS},
                draw=Image.draw_for(row["content_hash"]),
                label=label,
                # Older archives do not say who uploaded: the importer did, then.
                uploaded_by=users.get(row["uploaded_by"]) if "uploaded_by" in row else user,
                priority=row.get("priority", 0.0),
                suggested_class=suggested,
                confidence=row.get("confidence"),
            ),
            f"Image {row['file']}",
        )
        created_at = _time(row["created_at"], f"Image {row['file']}")
        data = zipped.read(info)
        try:
            decoded = image_decode(data, limits=limits)
        except RejectedFile as rejected:
            raise ValidationError(f"{row['file']}: {rejected.message}") from None
        image.file, image.thumbnail, image.preview = image_files_save(
            project=project,
            content_hash=row["content_hash"],
            extension=row["file"].rsplit(".", 1)[-1],
            content=data,
            thumbnail=decoded.thumbnail,
            preview=decoded.preview,
            stored=stored,
        )
        image.save()
        Image.objects.filter(pk=image.pk).update(created_at=created_at)
        created.add(row["ref"], image)
    return created


def _annotations(rows, images, classes, users) -> archive_numbers.Made:
    created = archive_numbers.Made("label")
    for row in rows:
        what = f"Label {row['ref']!r}"
        annotation = _checked(
            Annotation(
                image=images[row["image"]],
                label_class=classes[row["label_class"]],
                annotator=users.get(row["annotator"]),
                action=row["action"],
                is_current=row["is_current"],
                reverts=created[row["reverts"]],
            ),
            what,
        )
        created_at = _time(row["created_at"], what)
        annotation.save()
        Annotation.objects.filter(pk=annotation.pk).update(created_at=created_at)
        created.add(row["ref"], annotation)
    return created


def _taxonomy(project, rows, classes, users, version: int) -> None:
    def pk(ref):
        return classes[ref].pk

    for number, row in enumerate(rows):
        what = f"Taxonomy change {number}"
        if not isinstance(row["details"], dict):
            raise ValidationError(f"{what}: its details are not an object.")
        details = (
            _detail_classes(row["details"], pk, keep_uncarried=True)
            if version >= 2
            else row["details"]
        )
        change = _checked(
            TaxonomyChange(
                project=project,
                actor=users.get(row["actor"]),
                kind=row["kind"],
                summary=row["summary"],
                details=details,
            ),
            what,
        )
        created_at = _time(row["created_at"], what)
        change.save()
        TaxonomyChange.objects.filter(pk=change.pk).update(created_at=created_at)


def _versions(project, zipped, rows, classes, users, stored) -> None:
    def pk(ref):
        return classes[ref].pk if ref is not None else None

    numbers: set = set()
    for row in rows:
        what = f"Model version {row['number']!r}"
        if row["number"] in numbers:
            raise ValidationError(f"The archive holds model version {row['number']!r} twice.")
        numbers.add(row["number"])
        version = _checked(
            ModelVersion(
                project=project,
                **{f: row[f] for f in VERSION_FIELDS},
                requested_by=users.get(row.get("requested_by")),
                progress=row.get("progress", ""),
                class_ids=[pk(r) for r in row["class_ids"]],
                label_counts={str(pk(int(r))): v for r, v in row["label_counts"].items()},
                metrics=_metric_classes(row["metrics"], pk),
                started_at=_time(row.get("started_at"), what, required=False),
                finished_at=_time(row["finished_at"], what, required=False),
            ),
            what,
        )
        created_at = _time(row["created_at"], what)
        # A model of another backbone cannot score this server's embeddings.
        if row.get("artifact") and row["backbone"] == backbone_key():
            try:
                data = zipped.read(row["artifact"])
            except KeyError:
                raise ValidationError(
                    f"The archive names a model file it does not hold ({row['artifact']})."
                ) from None
            version.artifact = default_storage.save(
                f"models/{project.pk}/v{row['number']}-{uuid.uuid4().hex[:8]}.pt",
                ContentFile(data),
            )
            stored.append(version.artifact)
        version.is_active = bool(row["is_active"] and version.artifact)
        version.save()
        ModelVersion.objects.filter(pk=version.pk).update(created_at=created_at)
