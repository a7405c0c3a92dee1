"""Export of a whole project and its import into a new one: a round trip."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from feedback import services as feedback_services
from labeling import services as labeling_services
from labeling.models import Annotation, Image, Project
from models_app import services
from models_app.archive import (
    imported_model_missing,
    project_document,
    project_export,
    project_import,
)
from tests.fashion import labeled_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rich_project(project, owner, reviewer, fashion):
    """Labels with history, a merge and its undo, a split left to re-label, a parent,
    a removed image, unlabeled images and a trained version."""
    classes = labeled_project(
        project, owner, fashion, ["Trouser", "Bag", "Sneaker"], per_class=8, unlabeled_per_class=2
    )
    wear = labeling_services.label_class_create(project=project, name="Wear", actor=owner)
    labeling_services.label_class_update(label_class=classes["Trouser"], parent=wear, actor=owner)
    merge = labeling_services.label_class_merge(
        project=project, classes=[classes["Bag"], classes["Sneaker"]], name="Bag", actor=reviewer
    )
    labeling_services.label_class_merge_undo(merge=merge, actor=reviewer)
    version = services.model_version_train(
        version_id=services.model_version_request(project=project, trigger="api").pk
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
    return project


def test_importing_an_export_reproduces_the_project_exactly(rich_project, owner, outsider):
    out = io.BytesIO()
    project_export(project=rich_project, out=out)
    out.seek(0)
    copy = project_import(archive=out, user=outsider, name=None)
    assert copy.pk != rich_project.pk
    assert project_document(project=copy) == project_document(project=rich_project)
    # The copy works: same images (bytes), history and metrics, owned by the importer.
    assert copy.memberships.get().user == outsider
    original = Image.objects.filter(project=rich_project).order_by("id").first()
    imported = Image.objects.filter(project=copy).order_by("id").first()
    with original.file.open("rb") as a, imported.file.open("rb") as b:
        assert a.read() == b.read()
    assert (
        Annotation.objects.filter(image__project=copy).count()
        == Annotation.objects.filter(image__project=rich_project).count()
    )


def test_an_imported_project_predicts_with_its_model_at_once(rich_project, owner, outsider):
    """The active version's model file travels in the zip: the copy serves the same
    probabilities, before any retrain."""
    out = io.BytesIO()
    project_export(project=rich_project, out=out)
    out.seek(0)
    copy = project_import(archive=out, user=outsider, name="Copy")
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
    out = io.BytesIO()
    project_export(project=rich_project, out=out)
    source = zipfile.ZipFile(io.BytesIO(out.getvalue()))
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
    out = io.BytesIO()
    project_export(project=rich_project, out=out)
    archive = zipfile.ZipFile(io.BytesIO(out.getvalue()))
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


def test_a_bad_archive_is_refused_and_leaves_nothing(owner, tmp_path, media_root):
    before = Project.objects.count()
    with pytest.raises(ValidationError, match="Not a labelloop export"):
        project_import(archive=io.BytesIO(b"not a zip"), user=owner)
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr(
            "project.json",
            json.dumps(
                {
                    "format": "labelloop-project",
                    "version": 1,
                    "project": {
                        "name": "x",
                        "description": "",
                        "test_fraction": 0.2,
                        "val_fraction": 0.1,
                    },
                    "classes": [],
                    "images": [{"ref": 0, "file": "images/_unlabeled/missing.png"}],
                }
            ),
        )
    broken.seek(0)
    with pytest.raises((ValidationError, KeyError)):
        project_import(archive=broken, user=owner)
    assert Project.objects.count() == before
    assert (
        not list((media_root / "projects").glob("**/*.*"))
        if (media_root / "projects").exists()
        else True
    )


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
    expected = project_document(project=rich_project)
    expected["project"]["name"] = "Copy"
    assert project_document(project=copy) == expected
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
    imported = page.post(
        "/projects/import/", {"file": SimpleUploadedFile("p.zip", data), "name": "Again"}
    )
    again = Project.objects.get(name="Again")
    assert imported.url == f"/projects/{again.pk}/"
