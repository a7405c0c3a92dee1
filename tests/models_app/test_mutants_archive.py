"""Export and import of a small hand-made project, compared row by row with the database.

Quick enough to run for every mutant of models_app/archive.py (`make mutation`): no
Fashion-MNIST, no backbone, no training; the project's rows are made by the services
and by hand, and every expectation is read from the stored rows, never from the
archive code's own output.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeling import services as labeling_services
from labeling.models import Annotation, Image, LabelClass, Project, TaxonomyChange
from models_app.archive import imported_model_missing, project_export, project_import
from models_app.models import LearnerSettings, ModelVersion
from models_app.selectors import backbone_key
from tests.conftest import add_images
from tests.factories import UserFactory, image_upload

ARTIFACT = b"not really a model, but the bytes must travel unchanged"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def small_project(project, owner, annotator, reviewer):
    """Two labeled classes under a parent, an inactive class, four images (one removed,
    one relabeled, one labeled and undone, one never labeled), learner settings, a
    failed and an active version with its model file, and a queued one."""
    cat = labeling_services.label_class_create(project=project, name="cat", actor=owner)
    dog = labeling_services.label_class_create(project=project, name="dog", actor=owner)
    animal = labeling_services.label_class_create(project=project, name="Animal", actor=owner)
    labeling_services.label_class_update(label_class=cat, parent=animal, actor=reviewer)
    labeling_services.label_class_create(project=project, name="old", is_active=False)
    images = add_images(project, owner, 3)
    wide = labeling_services.images_ingest(
        project=project, files=[image_upload(7, size=(40, 30))], user=annotator
    )
    images.append(Image.objects.get(pk=wide[0].image_id))
    first, second, third, fourth = images
    labeling_services.annotation_create(image=first, label_class=cat, annotator=annotator)
    labeling_services.annotation_create(image=second, label_class=dog, annotator=owner)
    labeling_services.annotation_create(image=second, label_class=cat, annotator=annotator)
    labeling_services.annotation_create(image=third, label_class=dog, annotator=reviewer)
    labeling_services.annotation_undo_last(project=project, annotator=reviewer)
    labeling_services.image_review(image=first, action="remove", reviewer=reviewer)
    Image.objects.filter(pk=fourth.pk).update(
        priority=0.625, suggested_class=dog, confidence=0.875, in_queue=False
    )
    Image.objects.filter(pk=second.pk).update(needs_relabel=True, split=Image.Split.VAL)
    for n, image in enumerate(images):
        Image.objects.filter(pk=image.pk).update(created_at=T0 + timedelta(minutes=n))
    for n, row in enumerate(Annotation.objects.filter(image__project=project).order_by("id")):
        Annotation.objects.filter(pk=row.pk).update(created_at=T0 + timedelta(hours=n))
    LearnerSettings.objects.update_or_create(
        project=project,
        defaults={"retrain_every": 7, "head_kind": "mlp", "strategy": "margin"},
    )
    project.description = "two pets"
    project.test_fraction, project.val_fraction = 0.15, 0.05
    project.save()
    ModelVersion.objects.create(
        project=project,
        number=1,
        status=ModelVersion.Status.FAILED,
        trigger="api",
        backbone=backbone_key(),
        error="too few labels",
        finished_at=T0,
    )
    artifact = default_storage.save(f"models/{project.pk}/v2.pt", ContentFile(ARTIFACT))
    ModelVersion.objects.create(
        project=project,
        number=2,
        status=ModelVersion.Status.SUCCEEDED,
        is_active=True,
        trigger="auto",
        requested_by=owner,
        progress="done",
        backbone=backbone_key(),
        head_kind="mlp",
        strategy="margin",
        fine_tuned=True,
        class_ids=[cat.pk, dog.pk],
        label_counts={str(cat.pk): {"train": 2}, str(dog.pk): {"train": 1}},
        labels_total=3,
        metrics={
            "accuracy": 0.75,
            "classes": [cat.pk, dog.pk],
            "test_parents": {"classes": [animal.pk], "accuracy": 0.5},
        },
        artifact=artifact,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=90),
        duration_seconds=90.0,
    )
    ModelVersion.objects.create(project=project, number=3, trigger="api", backbone="x")
    return project


def exported(project) -> bytes:
    out = io.BytesIO()
    project_export(project=project, out=out)
    return out.getvalue()


def imported(data: bytes, user, name="Copy") -> Project:
    return project_import(archive=io.BytesIO(data), user=user, name=name)


def stored(project) -> dict:
    """The project's rows as plain values, ids replaced by what they stand for (class
    names, image hashes, usernames, positions), read straight from the database."""
    name = {c.pk: c.name for c in LabelClass.objects.filter(project=project)}
    name[None] = None
    annotations = list(Annotation.objects.filter(image__project=project).order_by("id"))
    position = {a.pk: n for n, a in enumerate(annotations)}
    position[None] = None

    def user(u):
        return u.get_username() if u else None

    def named_ids(value):
        if isinstance(value, list):
            return [name.get(v, v) for v in value]
        return name.get(value, value)

    def details(d):
        d = dict(d)
        for key in ("class", "target", "source", "sources", "targets"):
            if key in d:
                d[key] = named_ids(d[key])
        if "parent" in d.get("changes", {}):
            d["changes"] = {**d["changes"], "parent": named_ids(d["changes"]["parent"])}
        return d

    learner = LearnerSettings.objects.get(project=project)
    versions = ModelVersion.objects.filter(project=project).order_by("number")
    return {
        "project": (project.description, project.test_fraction, project.val_fraction),
        "learner": (
            learner.retrain_every,
            learner.head_kind,
            learner.fine_tune,
            learner.fine_tune_epochs,
            learner.strategy,
        ),
        "classes": sorted(
            (c.name, c.color, c.key, c.order, c.is_active, name[c.parent_id], c.created_at)
            for c in LabelClass.objects.filter(project=project)
        ),
        "images": sorted(
            (
                i.content_hash,
                i.original_name,
                i.width,
                i.height,
                i.source,
                i.split,
                i.status,
                i.in_queue,
                i.needs_relabel,
                name[i.label_id],
                user(i.uploaded_by),
                i.priority,
                name[i.suggested_class_id],
                i.confidence,
                i.created_at,
                i.draw,
                i.file.open("rb").read(),
                bool(i.thumbnail),
            )
            for i in Image.objects.filter(project=project)
        ),
        "annotations": [
            (
                a.image.content_hash,
                name[a.label_class_id],
                user(a.annotator),
                a.action,
                a.is_current,
                position[a.reverts_id],
                a.created_at,
            )
            for a in annotations
        ],
        "taxonomy": sorted(
            (
                t.kind,
                t.summary,
                json.dumps(details(t.details), sort_keys=True),
                user(t.actor),
                t.created_at,
            )
            for t in TaxonomyChange.objects.filter(project=project)
        ),
        "versions": [
            (
                v.number,
                v.status,
                v.is_active,
                v.trigger,
                user(v.requested_by),
                v.progress,
                v.backbone,
                v.head_kind,
                v.strategy,
                v.fine_tuned,
                named_ids(v.class_ids),
                {name[int(k)]: row for k, row in v.label_counts.items()},
                v.labels_total,
                {
                    **v.metrics,
                    **(
                        {"classes": named_ids(v.metrics["classes"])}
                        if "classes" in v.metrics
                        else {}
                    ),
                    **(
                        {
                            "test_parents": {
                                **v.metrics["test_parents"],
                                "classes": named_ids(v.metrics["test_parents"]["classes"]),
                            }
                        }
                        if "test_parents" in v.metrics
                        else {}
                    ),
                },
                v.error,
                v.created_at,
                v.started_at,
                v.finished_at,
                v.duration_seconds,
                default_storage.open(v.artifact).read() if v.artifact else None,
            )
            for v in versions
        ],
    }


@pytest.mark.django_db
def test_an_import_stores_the_same_rows_as_the_exported_project(small_project, outsider):
    before = stored(small_project)
    copy = imported(exported(small_project), outsider)
    after = stored(copy)
    assert copy.name == "Copy"
    assert copy.memberships.get().user == outsider
    # The queued version is not exported; the failed and the active one are.
    assert [v[0] for v in after["versions"]] == [1, 2]
    before["versions"] = before["versions"][:2]
    for part in before:
        assert after[part] == before[part], part
    assert not imported_model_missing(project=copy)


@pytest.mark.django_db
def test_the_zip_holds_the_images_the_model_a_csv_and_coco(small_project):
    data = zipfile.ZipFile(io.BytesIO(exported(small_project)))
    images = list(Image.objects.filter(project=small_project).order_by("id"))

    def folder(image):
        return image.label.name if image.label else "_unlabeled"

    paths = [f"images/{folder(i)}/{i.content_hash[:32]}.png" for i in images]
    for image, path in zip(images, paths, strict=True):
        assert data.read(path) == image.file.open("rb").read()
    assert data.read("models/v2.pt") == ARTIFACT
    assert sorted(data.namelist()) == sorted(
        [*paths, "models/v2.pt", "project.json", "labels.csv", "coco.json"]
    )

    rows = list(csv.reader(io.StringIO(data.read("labels.csv").decode())))
    assert rows[0] == ["file", "label", "split", "source", "status", "original_name"]
    assert rows[1:] == [
        [p, i.label.name if i.label else "", i.split, i.source, i.status, i.original_name]
        for p, i in zip(paths, images, strict=True)
    ]

    coco = json.loads(data.read("coco.json"))
    assert coco["info"]["description"] == small_project.name
    assert [(c["name"], c["supercategory"]) for c in coco["categories"]] == [
        (c.name, c.parent.name if c.parent else "")
        for c in LabelClass.objects.filter(project=small_project).order_by("order", "id")
    ]
    category = {c["id"]: c["name"] for c in coco["categories"]}
    file_of = {i["id"]: i["file_name"] for i in coco["images"]}
    assert [(i["file_name"], i["width"], i["height"]) for i in coco["images"]] == [
        (p, i.width, i.height) for p, i in zip(paths, images, strict=True)
    ]
    labeled = [(p, i.label.name) for p, i in zip(paths, images, strict=True) if i.label]
    assert [(file_of[a["image_id"]], category[a["category_id"]]) for a in coco["annotations"]] == (
        labeled
    )
    assert len({a["id"] for a in coco["annotations"]}) == len(labeled)


@pytest.mark.django_db
def test_exporting_the_import_gives_the_same_document(small_project, outsider):
    data = exported(small_project)
    first = zipfile.ZipFile(io.BytesIO(data))
    copy = imported(data, outsider, name=small_project.name + " 2")
    second = zipfile.ZipFile(io.BytesIO(exported(copy)))
    one, two = (json.loads(z.read("project.json")) for z in (first, second))
    assert two["project"].pop("name") == small_project.name + " 2"
    one["project"].pop("name")
    assert one == two


@pytest.mark.django_db
def test_without_the_name_the_import_keeps_the_projects_own(small_project, outsider):
    copy = project_import(archive=io.BytesIO(exported(small_project)), user=outsider)
    assert copy.name == small_project.name


@pytest.mark.django_db
def test_a_model_of_another_backbone_stays_behind(small_project, outsider):
    ModelVersion.objects.filter(project=small_project, number=2).update(backbone="resnet50")
    copy = imported(exported(small_project), outsider)
    version = ModelVersion.objects.get(project=copy, number=2)
    assert (version.is_active, version.artifact, version.backbone) == (False, "", "resnet50")
    assert imported_model_missing(project=copy)


@pytest.mark.django_db
def test_a_project_that_never_trained_misses_no_model(project, outsider):
    labeling_services.label_class_create(project=project, name="cat")
    assert not imported_model_missing(project=project)
    ModelVersion.objects.create(
        project=project, number=1, trigger="api", backbone="x", status="failed"
    )
    copy = imported(exported(project), outsider)
    assert not imported_model_missing(project=copy)
    assert LearnerSettings.objects.filter(project=copy).count() == 0


def _rewritten(data: bytes, change=None, drop=(), add=None) -> bytes:
    """The archive `data` with project.json passed through `change`, files in `drop`
    left out and `add` (name -> bytes) added."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            if name in drop:
                continue
            content = source.read(name)
            if name == "project.json" and change is not None:
                document = json.loads(content)
                change(document)
                content = json.dumps(document).encode()
            target.writestr(name, content)
        for name, content in (add or {}).items():
            target.writestr(name, content)
    return out.getvalue()


def _set(path, value):
    def change(document):
        node = document
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


BAD = {
    "not a zip": (lambda data: b"PK but not really", "Not a labelloop export"),
    "no project.json": (lambda data: _rewritten(data, drop={"project.json"}), "Not a labelloop"),
    "not json": (
        lambda data: _rewritten(data, drop={"project.json"}, add={"project.json": b"{"}),
        "Not a labelloop export",
    ),
    "a list": (
        lambda data: _rewritten(data, drop={"project.json"}, add={"project.json": b"[]"}),
        "Not a labelloop-project archive",
    ),
    "another format": (
        lambda data: _rewritten(data, _set(["format"], "cvat")),
        "Not a labelloop-project archive",
    ),
    "a later version": (
        lambda data: _rewritten(data, _set(["version"], 99)),
        "Not a labelloop-project archive",
    ),
    "no classes": (lambda data: _rewritten(data, _set(["classes"], KeyError)), "'classes'"),
    "a class without a name": (
        lambda data: _rewritten(data, _set(["classes", 0, "name"], KeyError)),
        "'name'",
    ),
    "a label of no class": (
        lambda data: _rewritten(data, _set(["images", 1, "label"], 99)),
        "class 99",
    ),
    "a parent of no class": (
        lambda data: _rewritten(data, _set(["classes", 0, "parent"], 42)),
        "class 42",
    ),
    "an image file missing": (
        lambda data: _rewritten(data, _set(["images", 0, "file"], "images/none.png")),
        "images/none.png",
    ),
    "a bad hash": (
        lambda data: _rewritten(data, _set(["images", 0, "content_hash"], "abc")),
        "bad content hash",
    ),
    "a bad time": (
        lambda data: _rewritten(data, _set(["images", 0, "created_at"], "yesterday")),
        "'yesterday' is not a time",
    ),
    "a split no form offers": (
        lambda data: _rewritten(data, _set(["images", 0, "split"], "holdout")),
        "holdout",
    ),
    "a label of no image": (
        lambda data: _rewritten(data, _set(["annotations", 0, "image"], 50)),
        "image 50",
    ),
    "a model file missing": (
        lambda data: _rewritten(data, drop={"models/v2.pt"}),
        "models/v2.pt",
    ),
    "an unknown head kind": (
        lambda data: _rewritten(data, _set(["learner", "head_kind"], "forest")),
        "learner settings",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("fault", list(BAD))
def test_a_bad_archive_is_refused_by_what_is_wrong_and_leaves_nothing(
    small_project, outsider, media_root, fault
):
    make, message = BAD[fault]
    data = make(exported(small_project))
    projects = Project.objects.count()
    files = sorted(p for p in media_root.rglob("*") if p.is_file())
    with pytest.raises(ValidationError) as refused:
        imported(data, outsider)
    assert message in " ".join(refused.value.messages)
    assert Project.objects.count() == projects
    assert sorted(p for p in media_root.rglob("*") if p.is_file()) == files


@pytest.mark.django_db
def test_an_image_over_the_size_limit_is_refused(small_project, outsider, settings):
    data = exported(small_project)
    settings.LABELING = {**settings.LABELING, "MAX_IMAGE_BYTES": 100}
    with pytest.raises(ValidationError, match="larger than the image size limit"):
        imported(data, outsider)


@pytest.mark.django_db
def test_annotators_are_matched_by_username_where_they_exist(small_project, outsider):
    data = exported(small_project)
    stranger = UserFactory(username="somebody-else")
    copy = imported(data, stranger)
    annotators = set(
        Annotation.objects.filter(image__project=copy).values_list("annotator__username", flat=True)
    )
    # The personas exist on this server, so every label keeps its annotator.
    assert annotators == {"anna-annotator", "olivia-owner", "rita-reviewer"}


@pytest.mark.django_db
def test_merged_and_split_classes_in_the_log_come_back_by_name(project, owner, outsider):
    cat, dog, fox = (
        labeling_services.label_class_create(project=project, name=n, actor=owner)
        for n in ("cat", "dog", "fox")
    )
    labeling_services.label_class_merge(
        project=project, classes=[cat, dog], name="pet", actor=owner
    )
    labeling_services.label_class_split_start(label_class=fox, names=["red", "grey"], actor=owner)
    LearnerSettings.objects.create(project=project)  # stored() reads it
    before = stored(project)["taxonomy"]
    # The log's lists of classes (a merge's sources, a split's targets) name classes.
    assert any('"sources": ["cat", "dog"]' in row[2] for row in before)
    assert any('"targets": ["red", "grey"]' in row[2] for row in before)
    # The merge's and the split's own records do not travel (nor their ids).
    expected = [
        (
            *row[:2],
            json.dumps(_without(json.loads(row[2]), "merge", "split"), sort_keys=True),
            *row[3:],
        )
        for row in before
    ]
    assert stored(imported(exported(project), outsider))["taxonomy"] == expected


def _without(details: dict, *keys: str) -> dict:
    return {key: value for key, value in details.items() if key not in keys}
