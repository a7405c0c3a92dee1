"""Export of a whole project and its import into a new one: a round trip.

"The same project" is judged on the stored rows, not on the export's own document: every
concrete field of every row the archive carries (project, learner settings, classes,
images, labels, taxonomy log, model versions), read from the database with files read
as bytes, foreign keys as the thing they point at (a user's name, a class's name, an
image's hash, a label's place in the history). Only what must differ is left out: ids,
the project itself, and when and by whom the copy was created. A field added to one of
these models is compared without touching this file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import models

from feedback import services as feedback_services
from labeling import services as labeling_services
from labeling.models import Annotation, Image, LabelClass, Project, TaxonomyChange
from labeling.models import SuggestionRejection as Rejection
from models_app import services
from models_app.archive import (
    imported_model_missing,
    project_export,
    project_import,
)
from models_app.models import LearnerSettings, ModelVersion
from tests.fashion import labeled_project

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()

# Fields whose value must differ in a copy: the copy is a new project, created now by
# whoever imports it (its membership is checked on its own).
MUST_DIFFER = {(Project, "created_at"), (Project, "created_by")}
# Keys inside the taxonomy log's details that hold class ids, and those that hold ids of
# rows the archive does not carry (the merge and split records).
DETAIL_CLASS_KEYS = ("class", "target", "source")
DETAIL_CLASS_LIST_KEYS = ("sources", "targets")
DETAIL_UNCARRIED_KEYS = ("merge", "split")


def stored_rows(project: Project) -> dict[str, list[dict]]:
    """Every row of `project` that an archive carries, as comparable plain data."""
    classes = {c.pk: c.name for c in LabelClass.objects.filter(project=project)}
    images = {i.pk: i.content_hash for i in Image.objects.filter(project=project)}
    annotations = list(Annotation.objects.filter(image__project=project).order_by("id"))
    position = {a.pk: n for n, a in enumerate(annotations)}
    users = dict(User.objects.values_list("pk", User.USERNAME_FIELD))
    # A suggestion's version by its number: ids change on import.
    numbers = dict(ModelVersion.objects.filter(project=project).values_list("pk", "number"))

    def class_name(pk):
        return classes[int(pk)] if pk is not None else None

    def natural(field: models.Field, pk):
        if pk is None:
            return None
        target = field.related_model
        if target is Project:
            assert pk == project.pk, f"{field} points at another project"
            return "this project"
        if target is User:
            return users[pk]
        if target is LabelClass:
            return class_name(pk)
        if target is Image:
            return images[pk]
        if target is Annotation:
            return position[pk]
        raise AssertionError(f"{field} points at {target.__name__}: say how to compare it")

    def file_digest(name: str) -> str | None:
        if not name:
            return None
        with default_storage.open(name, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def details(value: dict) -> dict:
        value = dict(value)
        for key in DETAIL_CLASS_KEYS:
            if key in value:
                value[key] = class_name(value[key])
        for key in DETAIL_CLASS_LIST_KEYS:
            if key in value:
                value[key] = [class_name(pk) for pk in value[key]]
        for key in DETAIL_UNCARRIED_KEYS:
            value.pop(key, None)
        if "parent" in value.get("changes", {}):
            value["changes"] = {
                **value["changes"],
                "parent": [class_name(pk) for pk in value["changes"]["parent"]],
            }
        return value

    def metrics(value: dict) -> dict:
        value = dict(value)
        if "classes" in value:
            value["classes"] = [class_name(pk) for pk in value["classes"]]
        if "test_parents" in value:
            parents = value["test_parents"]
            value["test_parents"] = {
                **parents,
                "classes": [class_name(pk) for pk in parents["classes"]],
            }
        return value

    # Fields that hold ids or storage paths inside plain columns.
    adapted = {
        (ModelVersion, "artifact"): file_digest,
        (ModelVersion, "class_ids"): lambda ids: [class_name(pk) for pk in ids],
        (ModelVersion, "label_counts"): lambda counts: {
            class_name(pk): row for pk, row in counts.items()
        },
        (ModelVersion, "metrics"): metrics,
        (TaxonomyChange, "details"): details,
        **{(model, "suggested_by"): numbers.get for model in (Image, Annotation, Rejection)},
    }

    def row(instance: models.Model) -> dict:
        model = type(instance)
        out = {}
        for field in model._meta.concrete_fields:
            if (model, field.name) in MUST_DIFFER:
                continue
            if field.primary_key and not field.is_relation:
                continue
            value = getattr(instance, field.attname)
            if (model, field.name) in adapted:
                value = adapted[model, field.name](value)
            elif isinstance(field, models.FileField):
                value = file_digest(value.name)
            elif field.is_relation:
                value = natural(field, value)
            out[field.name] = value
        return out

    return {
        "project": [row(project)],
        "learner": [row(s) for s in LearnerSettings.objects.filter(project=project)],
        "classes": sorted(
            (row(c) for c in LabelClass.objects.filter(project=project)), key=lambda r: r["name"]
        ),
        "images": sorted(
            (row(i) for i in Image.objects.filter(project=project)),
            key=lambda r: r["content_hash"],
        ),
        "annotations": [row(a) for a in annotations],
        "rejections": [
            row(r) for r in Rejection.objects.filter(image__project=project).order_by("id")
        ],
        "taxonomy": [
            row(t)
            for t in TaxonomyChange.objects.filter(project=project).order_by("created_at", "id")
        ],
        "model_versions": [
            row(v) for v in ModelVersion.objects.filter(project=project).order_by("number")
        ],
    }


def assert_same_rows(copy: Project, original: Project, **project_changes) -> None:
    expected = stored_rows(original)
    expected["project"][0].update(project_changes)
    actual = stored_rows(copy)
    for table, rows in expected.items():
        assert len(actual[table]) == len(rows), table
        for got, wanted in zip(actual[table], rows, strict=True):
            assert got == wanted, table


@pytest.fixture
def rich_project(project, owner, reviewer, fashion):
    """Labels with history, a merge and its undo, a split left to re-label, a parent,
    a removed image, unlabeled images, learner settings off their defaults and a
    trained version that ranked the queue."""
    classes = labeled_project(
        project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=8, unlabeled_per_class=2
    )
    project.description = "Trousers, bags and shoes"
    project.test_fraction, project.val_fraction = 0.25, 0.15
    project.save()
    services.learner_settings_update(
        project=project, retrain_every=7, strategy="margin", fine_tune_epochs=3
    )
    wear = labeling_services.label_class_create(project=project, name="Wear", actor=owner)
    labeling_services.label_class_update(label_class=classes["Trouser"], parent=wear, actor=owner)
    merge = labeling_services.label_class_merge(
        project=project, classes=[classes["Bag"], classes["Sneaker"]], name="Bag", actor=reviewer
    )
    labeling_services.label_class_merge_undo(merge=merge, actor=reviewer)
    version = services.model_version_train(
        version_id=services.model_version_request(project=project, trigger="api", user=reviewer).pk
    )
    assert version.status == "succeeded", version.error
    image = Image.objects.filter(project=project, label=classes["Bag"]).first()
    feedback_services.review_decide(image=image, action="remove", reviewer=reviewer)
    split = labeling_services.label_class_split_start(
        label_class=classes["Sneaker"], names=["Low", "High"], actor=owner
    )
    sneaker = Image.objects.filter(project=project, label=classes["Sneaker"]).first()
    labeling_services.split_assign(
        split=split, image_ids=[sneaker.pk], label_class=split.targets.get(name="Low")
    )
    labeling_services.label_class_split_finish(split=split, actor=owner)
    # One suggestion accepted in bulk, one rejected (their version and confidence).
    waiting = Image.objects.filter(
        project=project, label__isnull=True, suggested_class__is_active=True
    )
    first, second = waiting.order_by("id")[:2]
    for image, accepted in ((first, [first.pk]), (second, [])):
        labeling_services.suggestions_verify(
            project=project,
            label_class=image.suggested_class,
            accepted_ids=accepted,
            rejected_ids=[] if accepted else [image.pk],
            annotator=reviewer,
        )
    return project


def exported(project: Project) -> bytes:
    out = io.BytesIO()
    project_export(project=project, out=out)
    return out.getvalue()


def test_importing_an_export_reproduces_the_stored_rows_and_serves_at_once(
    rich_project, owner, outsider
):
    # The comparison only means something if the rows are off their defaults.
    images = Image.objects.filter(project=rich_project)
    assert images.filter(label__isnull=True).exists()
    assert images.filter(status="removed").exists()
    assert images.filter(needs_relabel=True).exists()
    assert images.filter(suggested_class__isnull=False).exists()
    assert images.exclude(priority=0).exists()
    assert LabelClass.objects.filter(project=rich_project, is_active=False).exists()
    assert LabelClass.objects.filter(project=rich_project, parent__isnull=False).exists()
    assert Annotation.objects.filter(image__project=rich_project, reverts__isnull=False).exists()
    assert Annotation.objects.filter(image__project=rich_project, is_current=False).exists()
    version = ModelVersion.objects.get(project=rich_project)
    assert version.is_active and version.requested_by and version.started_at and version.artifact
    assert LearnerSettings.objects.get(project=rich_project).retrain_every == 7

    copy = project_import(archive=io.BytesIO(exported(rich_project)), user=outsider, name=None)
    assert copy.pk != rich_project.pk
    assert_same_rows(copy, rich_project)
    assert copy.created_by == outsider
    assert list(copy.memberships.values_list("user__username", "role")) == [
        (outsider.username, "owner")
    ]
    # The active version's model file travelled: the copy serves the same
    # probabilities, before any retrain.
    assert not imported_model_missing(project=copy)
    original, imported = (
        services.active_model(project=rich_project),
        services.active_model(project=copy),
    )
    assert imported is not None and imported.version.artifact
    first = Image.objects.filter(project=rich_project).order_by("id")[:5]
    twins = [Image.objects.get(project=copy, content_hash=i.content_hash) for i in first]
    assert np.allclose(
        original.proba([i.pk for i in first]), imported.proba([i.pk for i in twins]), atol=1e-5
    )


def test_an_export_without_its_model_file_imports_with_no_active_version(rich_project, outsider):
    """An older export (no model file) or another backbone: the copy says it needs a
    retrain instead of claiming an active version it cannot use."""
    source = zipfile.ZipFile(io.BytesIO(exported(rich_project)))
    stripped = io.BytesIO()
    with zipfile.ZipFile(stripped, "w") as target:
        for info in source.infolist():
            if info.filename.startswith("models/"):
                continue
            data = source.read(info)
            if info.filename == "project.json":
                document = json.loads(data)
                for version in document["model_versions"]:
                    version.pop("artifact", None)
                data = json.dumps(document).encode()
            target.writestr(info, data)
    stripped.seek(0)
    copy = project_import(archive=stripped, user=outsider, name="Old copy")
    assert services.active_model(project=copy) is None
    assert imported_model_missing(project=copy)
    assert copy.model_versions.filter(status="succeeded").exists()


def test_the_zip_holds_csv_coco_and_an_image_folder(rich_project):
    archive = zipfile.ZipFile(io.BytesIO(exported(rich_project)))
    names = archive.namelist()
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    images = Image.objects.filter(project=rich_project)
    assert len(rows) == images.count()
    for row in rows:
        assert row["file"] in names
        folder = row["file"].split("/")[1]
        assert folder == ("_unlabeled" if not row["label"] else row["label"].replace("/", "_"))
    coco = json.loads(archive.read("coco.json"))
    assert len(coco["annotations"]) == images.filter(label__isnull=False).count()
    trouser = next(c for c in coco["categories"] if c["name"] == "Trouser")
    assert trouser["supercategory"] == "Wear"
    assert {c["name"] for c in coco["categories"]} >= {"Low", "High", "Sneaker"}


# --- bad archives --------------------------------------------------------------------


def _rewritten(data: bytes, change) -> io.BytesIO:
    """The export with its project.json passed through `change`, leaving out the
    entries whose names `change` returns."""
    source = zipfile.ZipFile(io.BytesIO(data))
    document = json.loads(source.read("project.json"))
    drop = change(document) or ()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename in drop:
                continue
            payload = source.read(info)
            if info.filename == "project.json":
                payload = json.dumps(document).encode()
            target.writestr(info, payload)
    out.seek(0)
    return out


def _last(key, **values):
    def change(document):
        document[key][-1].update(values)

    return change


def _without(key, field):
    def change(document):
        del document[key][-1][field]

    return change


def _missing_image_file(document):
    return [document["images"][-1]["file"]]


def _duplicate_image(document):
    document["images"].append({**document["images"][-1], "ref": len(document["images"])})


def _extra_annotation(document, **values):
    row = {**document["annotations"][-1], "ref": len(document["annotations"]), **values}
    document["annotations"].append(row)


def _duplicate_version(document):
    document["model_versions"].append({**document["model_versions"][-1], "artifact": None})


def _extra_version(document, **values):
    last = document["model_versions"][-1]
    number = max(v["number"] for v in document["model_versions"]) + 1
    row = {**last, "number": number, "is_active": False, "artifact": None, **values}
    document["model_versions"].append(row)


# Each is found after every image (and, for the versions, the model file) was stored.
LATE_FAILURES = {
    "image file missing": (_missing_image_file, "does not hold"),
    "image of an unknown class": (_last("images", label=99), "class 99"),
    "image with a bad split": (_last("images", split="banana"), "split"),
    "same image twice": (_duplicate_image, "twice"),
    "label of an unknown image": (lambda d: _extra_annotation(d, image=999), "image 999"),
    "label with a bad action": (
        lambda d: _extra_annotation(d, action="explode", is_current=False),
        "action",
    ),
    "label with a bad time": (
        lambda d: _extra_annotation(d, created_at="yesterday", is_current=False),
        "time",
    ),
    "label row without a class": (_without("annotations", "label_class"), "incomplete"),
    "two current labels of an image": (
        lambda d: _extra_annotation(d, reverts=None, is_current=True),
        "stored",
    ),
    "version twice": (_duplicate_version, "twice"),
    "version of an unknown status": (lambda d: _extra_version(d, status="great"), "status"),
    "version of an unknown class": (lambda d: _extra_version(d, class_ids=[0, 42]), "class 42"),
}


def test_a_bad_archive_is_refused_with_a_reason(owner):
    with pytest.raises(ValidationError, match="Not a labelloop export"):
        project_import(archive=io.BytesIO(b"not a zip"), user=owner)
    for document in ("[1, 2]", '{"format": "labelloop-project", "version": 99}'):
        only_junk = io.BytesIO()
        with zipfile.ZipFile(only_junk, "w") as z:
            z.writestr("project.json", document)
        only_junk.seek(0)
        with pytest.raises(ValidationError, match="Not a labelloop-project archive"):
            project_import(archive=only_junk, user=owner)
    assert not Project.objects.exists()


def test_an_archive_that_fails_late_is_refused_and_leaves_nothing(
    rich_project, outsider, media_root, monkeypatch, subtests
):
    data = exported(rich_project)
    # Every file the import stores, so that the test knows the failure came late.
    saved = []
    original_save = default_storage.save

    def save(name, content, *args, **kwargs):
        saved.append(original_save(name, content, *args, **kwargs))
        return saved[-1]

    monkeypatch.setattr(default_storage, "save", save)
    images = Image.objects.filter(project=rich_project).count()
    for case, (change, message) in LATE_FAILURES.items():
        with subtests.test(case):
            saved.clear()
            files_before = {p for p in media_root.rglob("*") if p.is_file()}
            rows_before = {
                model: model.objects.count()
                for model in (Project, LabelClass, Image, Annotation, TaxonomyChange, ModelVersion)
            }
            with pytest.raises(ValidationError, match=message):
                project_import(archive=_rewritten(data, change), user=outsider, name="Bad")
            if case.startswith(("label", "two", "version")):
                assert len([s for s in saved if "/images/" in s]) == images
            if case.startswith("version"):
                assert any(s.startswith("models/") for s in saved)
            assert {p for p in media_root.rglob("*") if p.is_file()} == files_before
            assert {model: model.objects.count() for model in rows_before} == rows_before


# --- over REST and the pages -----------------------------------------------------------


def test_export_and_import_over_rest_and_pages(rich_project, api, owner, annotator, outsider):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    url = f"/api/v1/projects/{rich_project.pk}/export/"
    assert api(outsider).get(url).status_code == 404
    assert api(annotator).get(url).status_code == 403
    response = api(owner).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    data = b"".join(response.streaming_content)
    created = api(outsider).post(
        "/api/v1/projects/import/",
        {"file": SimpleUploadedFile("p.zip", data), "name": "Copy"},
        format="multipart",
    )
    assert created.status_code == 201 and created.json()["name"] == "Copy"
    copy = Project.objects.get(pk=created.json()["id"])
    assert_same_rows(copy, rich_project, name="Copy")
    bad = api(outsider).post(
        "/api/v1/projects/import/",
        {"file": SimpleUploadedFile("p.zip", b"junk")},
        format="multipart",
    )
    assert bad.status_code == 400

    page = Client()
    page.force_login(owner)
    download = page.get(f"/projects/{rich_project.pk}/export/")
    assert download.status_code == 200
    downloaded = b"".join(download.streaming_content) if download.streaming else download.content
    assert zipfile.ZipFile(io.BytesIO(downloaded)).testzip() is None
    imported = page.post(
        "/projects/import/", {"file": SimpleUploadedFile("p.zip", downloaded), "name": "Again"}
    )
    again = Project.objects.get(name="Again")
    assert imported.url == f"/projects/{again.pk}/"
    assert_same_rows(again, rich_project, name="Again")
