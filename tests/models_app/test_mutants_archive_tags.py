"""Export and import of a small hand-made multi-label project, compared row by row with
the database (models_app/archive_tags.py).

Quick enough to run for every mutant (no Fashion-MNIST, no backbone, no training): the
tag rows are made by the tag services (saves, a change on a selection, an undo back to
not looked at, a merge and its undo, a rename, a removal by review) and a version by
hand; every expectation is read from the stored rows, never from the archive's output.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, models
from django.test.utils import CaptureQueriesContext

from labeling import services as labeling_services
from labeling.models import Annotation, Image, LabelClass, Project, TagAnnotation, TaxonomyChange
from models_app.archive import project_document, project_export, project_import
from models_app.models import ModelVersion
from models_app.selectors import backbone_key
from tests.conftest import add_images
from tests.models_app.test_mutants_archive import _rewritten
from tests.models_app.test_mutants_archive import _set as set_in

pytestmark = pytest.mark.django_db

User = get_user_model()
ARTIFACT = b"a tag head's bytes, which must travel unchanged"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
# A copy is a new project, made now by its importer; a queue reservation is a moment's
# state that no archive carries.
MUST_DIFFER = {
    (Project, "created_at"),
    (Project, "created_by"),
    (Image, "reserved_by"),
    (Image, "reserved_until"),
}
TABLES = (Project, LabelClass, Image, Annotation, TagAnnotation, TaxonomyChange, ModelVersion)


@pytest.fixture
def shop(owner, annotator, reviewer):
    """Tags striped, leather and rounded (and an inactive one), five images:
    0 saved (striped), then removed by a reviewer;
    1 saved twice (leather and rounded, then leather only);
    2 striped set on a selection, never saved (the rest not looked at);
    3 striped set and undone (back to not looked at);
    4 never looked at, the model's suggestion on it.
    Then striped and rounded merged into "pattern" and the merge undone, leather
    renamed, a failed and an active version."""
    project = labeling_services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    labeling_services.membership_set(project=project, username=annotator.username, role="annotator")
    labeling_services.membership_set(project=project, username=reviewer.username, role="reviewer")
    tag = {
        name: labeling_services.label_class_create(project=project, name=name, actor=owner)
        for name in ("striped", "leather", "rounded")
    }
    labeling_services.label_class_create(project=project, name="old", is_active=False)
    images = add_images(project, owner, 5)
    labeling_services.image_tags_set(
        image=images[0], present=[tag["striped"].pk], annotator=annotator
    )
    labeling_services.image_tags_set(
        image=images[1], present=[tag["leather"].pk, tag["rounded"].pk], annotator=owner
    )
    labeling_services.image_tags_set(image=images[1], present=[tag["leather"].pk], annotator=owner)
    for image in images[2:4]:
        labeling_services.images_tag_set(
            project=project,
            image_ids=[image.pk],
            tag=tag["striped"],
            present=True,
            annotator=reviewer,
        )
    labeling_services.image_tags_undo_last(project=project, annotator=reviewer)
    merge = labeling_services.label_class_merge(
        project=project, classes=[tag["striped"], tag["rounded"]], name="pattern", actor=reviewer
    )
    labeling_services.label_class_merge_undo(merge=merge, actor=reviewer)
    labeling_services.label_class_update(label_class=tag["leather"], name="hide", actor=owner)
    labeling_services.image_review(image=images[0], action="remove", reviewer=reviewer)
    Image.objects.filter(pk=images[4].pk).update(
        priority=0.75, suggested_class=tag["leather"], confidence=0.625
    )
    for n, row in enumerate(TagAnnotation.objects.filter(image__project=project).order_by("id")):
        TagAnnotation.objects.filter(pk=row.pk).update(created_at=T0 + timedelta(minutes=n))
    ids = [tag[n].pk for n in ("striped", "leather", "rounded")]
    ModelVersion.objects.create(
        project=project,
        number=1,
        status=ModelVersion.Status.FAILED,
        trigger="api",
        backbone=backbone_key(),
        error="no tag can be trained",
        finished_at=T0,
    )
    ModelVersion.objects.create(
        project=project,
        number=2,
        status=ModelVersion.Status.SUCCEEDED,
        is_active=True,
        trigger="button",
        requested_by=reviewer,
        backbone=backbone_key(),
        class_ids=ids,
        label_counts={str(pk): {"name": "x", "train": 1, "train_absent": 1} for pk in ids},
        labels_total=2,
        metrics={
            "kind": "multi",
            "tags": ids,
            "thresholds": [0.5, 0.25, 0.75],
            "untrainable": [tag["rounded"].pk],
            "test": {"map": 0.5, "tags": [{"ap": 0.5, "n": 2}] * 3, "n_images": 2},
        },
        artifact=default_storage.save(f"models/{project.pk}/v2.tags.pt", ContentFile(ARTIFACT)),
        started_at=T0,
        finished_at=T0 + timedelta(seconds=3),
        duration_seconds=3.0,
    )
    return project, tag, images


def exported(project) -> bytes:
    out = io.BytesIO()
    project_export(project=project, out=out)
    return out.getvalue()


def imported(data: bytes, user, name: str | None = "Copy") -> Project:
    return project_import(archive=io.BytesIO(data), user=user, name=name)


def stored(project: Project) -> dict[str, list[dict]]:
    """Every row of `project` an archive carries as plain data: ids as what they stand
    for (tag names, image hashes, usernames, places in a history; a save id as the
    place of its save among the project's saves), files as their bytes."""
    names = {c.pk: c.name for c in LabelClass.objects.filter(project=project)}
    hashes = {i.pk: i.content_hash for i in Image.objects.filter(project=project)}
    users = dict(User.objects.values_list("pk", User.USERNAME_FIELD))
    tag_rows = list(TagAnnotation.objects.filter(image__project=project).order_by("id"))
    labels = list(Annotation.objects.filter(image__project=project).order_by("id"))
    place = {
        TagAnnotation: {r.pk: n for n, r in enumerate(tag_rows)},
        Annotation: {r.pk: n for n, r in enumerate(labels)},
    }
    saves: dict = {}
    for row in tag_rows:
        saves.setdefault(row.save_id, len(saves))

    def natural(field, pk):
        if pk is None:
            return None
        target = field.related_model
        if target is Project:
            assert pk == project.pk
            return "this project"
        return {User: users, LabelClass: names, Image: hashes, **place}[target][pk]

    def metrics(value):
        value = dict(value)
        for key in ("tags", "untrainable"):
            value[key] = [names[pk] for pk in value.get(key, [])]
        return value

    def artifact(path):
        if not path:
            return None
        with default_storage.open(path, "rb") as f:
            return f.read()

    adapted = {
        (TagAnnotation, "save_id"): saves.get,
        (ModelVersion, "class_ids"): lambda ids: [names[pk] for pk in ids],
        (ModelVersion, "label_counts"): lambda c: {names[int(pk)]: v for pk, v in c.items()},
        (ModelVersion, "metrics"): metrics,
        (ModelVersion, "artifact"): artifact,
        # Class ids as names; the merge record's id does not travel.
        (TaxonomyChange, "details"): lambda d: {
            k: names.get(v)
            if k in ("class", "target")
            else [names[pk] for pk in v]
            if k == "sources"
            else v
            for k, v in d.items()
            if k != "merge"
        },
    }

    def row(instance) -> dict:
        model, out = type(instance), {}
        for field in model._meta.concrete_fields:
            if (model, field.name) in MUST_DIFFER or (field.primary_key and not field.is_relation):
                continue
            value = getattr(instance, field.attname)
            if (model, field.name) in adapted:
                value = adapted[model, field.name](value)
            elif isinstance(field, models.FileField):
                value = artifact(value.name)
            elif field.is_relation:
                value = natural(field, value)
            out[field.name] = value
        return out

    return {
        "project": [row(project)],
        "tags": sorted((row(c) for c in LabelClass.objects.filter(project=project)), key=str),
        "images": sorted((row(i) for i in Image.objects.filter(project=project)), key=str),
        "labels": [row(a) for a in labels],
        "tag_states": [row(r) for r in tag_rows],
        "taxonomy": [
            row(t)
            for t in TaxonomyChange.objects.filter(project=project).order_by("created_at", "id")
        ],
        "versions": [
            row(v) for v in ModelVersion.objects.filter(project=project).order_by("number")
        ],
    }


def states_in_force(project: Project) -> dict[tuple[str, str], str]:
    """(image hash, tag name) -> present / absent / unset / not looked at, every pair."""
    held = {
        (r.image.content_hash, r.tag.name): r.state
        for r in TagAnnotation.objects.filter(
            image__project=project, is_current=True
        ).select_related("image", "tag")
    }
    return {
        (image.content_hash, tag.name): held.get((image.content_hash, tag.name), "not looked at")
        for image in Image.objects.filter(project=project)
        for tag in LabelClass.objects.filter(project=project)
    }


def test_a_tag_project_comes_back_row_for_row(shop, outsider):
    project, tag, images = shop
    # The comparison only means something if the rows are off their defaults.
    rows = TagAnnotation.objects.filter(image__project=project)
    assert {r.action for r in rows} == {"save", "set", "undo", "merge"}
    assert {r.state for r in rows} == {"present", "absent", "unset"}
    assert rows.filter(is_current=False).exists() and rows.filter(reverts__isnull=False).exists()
    assert len({r.save_id for r in rows}) > 4
    assert list(Image.objects.filter(project=project, tagged=True).order_by("id")) == images[:2]
    assert set(states_in_force(project).values()) == {"present", "absent", "unset", "not looked at"}

    copy = imported(exported(project), outsider)
    assert copy.kind == Project.Kind.MULTI and copy.pk != project.pk
    original = stored(project)
    original["project"][0]["name"] = "Copy"
    assert stored(copy) == original
    assert states_in_force(copy) == states_in_force(project)
    # Numbered saves, not copied save ids: the copy's rows are its own.
    copy_saves = set(
        TagAnnotation.objects.filter(image__project=copy).values_list("save_id", flat=True)
    )
    assert not copy_saves & set(rows.values_list("save_id", flat=True))

    # Exporting the copy gives the same document.
    again = json.loads(zipfile.ZipFile(io.BytesIO(exported(copy))).read("project.json"))
    first = json.loads(zipfile.ZipFile(io.BytesIO(exported(project))).read("project.json"))
    again["project"]["name"] = first["project"]["name"]
    assert again == first


def test_the_copy_undoes_a_save_as_the_original_does(shop, owner, outsider):
    """Saves keep their grouping: undo takes back the same rows in both projects."""
    project, _, _ = shop
    copy = imported(exported(project), outsider)
    undone = {}
    for each in (project, copy):
        first = labeling_services.image_tags_undo_last(project=each, annotator=owner)
        second = labeling_services.image_tags_undo_last(project=each, annotator=owner)
        undone[each] = [(i.content_hash, i.tagged) for i in (first, second)]
    assert undone[copy] == undone[project]
    assert states_in_force(copy) == states_in_force(project)
    # The second undo took back every tag of the first save, those a later save changed
    # and an undo restored included: each is not looked at again.
    image = undone[project][1][0]
    assert {tag: state for (sha, tag), state in states_in_force(copy).items() if sha == image} == {
        "striped": "unset",
        "hide": "unset",
        "rounded": "unset",
        "old": "not looked at",
        "pattern": "unset",
    }


def test_the_zip_says_it_is_a_tag_project_and_holds_its_tag_file(shop):
    project, tag, images = shop
    archive = zipfile.ZipFile(io.BytesIO(exported(project)))
    document = json.loads(archive.read("project.json"))
    assert (document["version"], document["kind"]) == (3, "multi")
    assert (
        len(document["tags"]["states"])
        == TagAnnotation.objects.filter(image__project=project).count()
    )
    lines = archive.read("tags.csv").decode().splitlines()
    # Active tags, active images (the removed one left out), 1/0/empty.
    assert lines[0] == "image,sha256,split,striped,hide,rounded"
    second = Image.objects.get(pk=images[1].pk)
    assert f"{second.original_name},{second.content_hash},{second.split},0,1,0" in lines
    third = Image.objects.get(pk=images[2].pk)
    assert f"{third.original_name},{third.content_hash},unassigned,1,," in lines
    assert len(lines) == 5
    version = next(v for v in document["model_versions"] if v["number"] == 2)
    refs = {c["name"]: c["ref"] for c in document["classes"]}
    assert version["metrics"]["tags"] == [refs["striped"], refs["hide"], refs["rounded"]]
    assert version["metrics"]["untrainable"] == [refs["rounded"]]


def test_a_single_label_archive_is_unchanged(project, owner):
    add_images(project, owner, 1)
    archive = zipfile.ZipFile(io.BytesIO(exported(project)))
    document = json.loads(archive.read("project.json"))
    assert document["version"] == 2 and "kind" not in document and "tags" not in document
    assert "tags.csv" not in archive.namelist()
    copy = imported(exported(project), owner)
    assert copy.kind == Project.Kind.SINGLE


# --- bad tag archives ---------------------------------------------------------------------


def _state(n: int, **values):
    def change(document):
        document["tags"]["states"][n].update(values)

    return change


def _current_pair(document):
    """A second row in force for the (image, tag) of the last row in force."""
    states = document["tags"]["states"]
    last = next(s for s in reversed(states) if s["is_current"])
    states.append({**last, "ref": len(states), "reverts": None})


def _reverting(pick):
    """The first row that reverts another made to revert the one `pick` chooses."""

    def change(document):
        states = document["tags"]["states"]
        undo = next(s for s in states if s["reverts"] is not None)
        undo["reverts"] = pick(states, undo)

    return change


def _later(states, undo):
    return undo["ref"] + 1


def _other_tag(states, undo):
    reverted = states[undo["reverts"]]
    return next(s["ref"] for s in states if s["tag"] != reverted["tag"])


def _reverting_one_sharing(shared: str):
    """A row that reverts another made to revert an earlier row that shares only its
    `shared` ("image" or "tag") with the one it reverted."""
    other = {"image": "tag", "tag": "image"}[shared]

    def change(document):
        states = document["tags"]["states"]
        for undo in (s for s in states if s["reverts"] is not None):
            reverted = states[undo["reverts"]]
            for earlier in states[: undo["ref"]]:
                if earlier[shared] == reverted[shared] and earlier[other] != reverted[other]:
                    undo["reverts"] = earlier["ref"]
                    return
        raise AssertionError(f"the fixture has no two states of one {shared}")

    return change


def _both(*changes):
    def change(document):
        for each in changes:
            each(document)

    return change


def _set(*path, value):
    return set_in(list(path), value)


BAD = {
    "version 3 without its kind": (_set("kind", value=KeyError), 'needs "kind": "multi"'),
    "version 3 of a single-label kind": (_set("kind", value="single"), 'needs "kind": "multi"'),
    "version 3 without tags": (_set("tags", value=KeyError), 'and a "tags" object'),
    "tags in version 2": (
        _set("version", value=2),
        "Tags come in version-3 archives; this one is version 2",
    ),
    "no states": (_set("tags", "states", value=KeyError), "a row has no 'states'"),
    "a state of no image": (_state(0, image=99), "refers to image 99, which it does not define"),
    "a state of no tag": (_state(0, tag=42), "refers to class 42, which it does not define"),
    "a state no form accepts": (
        _state(0, state="maybe"),
        "Tag state 0: state: Value 'maybe' is not a valid choice",
    ),
    "an action no form accepts": (
        _state(1, action="guess"),
        "Tag state 1: action: Value 'guess' is not a valid choice",
    ),
    "a bad time": (_state(2, created_at="yesterday"), "Tag state 2: 'yesterday' is not a time"),
    "states out of order": (
        _state(0, ref=5),
        "Tag state 5 is at place 0: tag states are numbered in order from 0",
    ),
    "a save that is no number": (
        _state(0, save="first"),
        "Tag state 0: its save 'first' is not a number from 0",
    ),
    "a negative save": (_state(0, save=-1), "its save -1 is not a number from 0"),
    "in force neither true nor false": (
        _state(0, is_current="yes"),
        "is_current is 'yes', not true or false",
    ),
    "two states in force": (_current_pair, "a second state of"),
    "reverting a later state": (
        _reverting(_later),
        re.compile(r"^Tag state \d+: it reverts tag state \d+, which comes nowhere before it\.$"),
    ),
    "reverting true": (
        _reverting(lambda states, undo: True),
        re.compile(r"^Tag state \d+: it reverts tag state True, which comes nowhere before it"),
    ),
    "reverting another tag": (_reverting(_other_tag), "of another image or tag"),
    "reverting another tag of the same image": (
        _reverting_one_sharing("image"),
        "of another image or tag",
    ),
    "reverting the same tag of another image": (
        _reverting_one_sharing("tag"),
        "of another image or tag",
    ),
    "tags in version 2 without a kind": (
        _both(_set("version", value=2), _set("kind", value=KeyError)),
        "Tags come in version-3 archives; this one is version 2.",
    ),
    "a multi-label kind in version 2 without tags": (
        _both(_set("version", value=2), _set("tags", value=KeyError)),
        "Tags come in version-3 archives; this one is version 2.",
    ),
    "a tagged image twice": (
        lambda d: d["tags"]["tagged"].append(d["tags"]["tagged"][0]),
        re.compile(r"^The archive lists a tagged image twice\.$"),
    ),
    "a tagged image of nothing": (lambda d: d["tags"]["tagged"].append(77), "refers to image 77"),
    "an image with a class": (
        lambda d: d["images"][-1].update(label=0),
        "an image of a multi-label project has tags, not a class",
    ),
    "a label with a class": (
        lambda d: d["annotations"][-1].update(label_class=0),
        "a multi-label project's history holds no classes",
    ),
}


def test_a_bad_tag_archive_is_refused_by_name_and_leaves_nothing(
    shop, outsider, media_root, subtests
):
    project, _, _ = shop
    data = exported(project)
    for case, (change, message) in BAD.items():
        with subtests.test(case):
            files_before = {p for p in media_root.rglob("*") if p.is_file()}
            rows_before = {model: model.objects.count() for model in TABLES}
            with pytest.raises(ValidationError) as refused:
                imported(_rewritten(data, change), outsider, name="Bad")
            said = " ".join(refused.value.messages)
            if isinstance(message, re.Pattern):
                assert message.search(said), said
            else:
                assert message in said
            assert {p for p in media_root.rglob("*") if p.is_file()} == files_before
            assert {model: model.objects.count() for model in TABLES} == rows_before


def test_a_state_whose_annotator_is_gone_travels_without_one(shop, outsider):
    project, _, _ = shop
    first = TagAnnotation.objects.filter(image__project=project).order_by("id").first()
    TagAnnotation.objects.filter(pk=first.pk).update(annotator=None)
    document = json.loads(zipfile.ZipFile(io.BytesIO(exported(project))).read("project.json"))
    assert document["tags"]["states"][0]["annotator"] is None
    copy = imported(exported(project), outsider)
    assert TagAnnotation.objects.filter(image__project=copy).order_by("id")[0].annotator is None


def test_the_tag_rows_cost_the_same_queries_however_many_there_are(shop, owner):
    project, tag, images = shop

    def queries():
        with CaptureQueriesContext(connection) as captured:
            project_document(project=project)
        return len(captured)

    few = queries()
    for n, image in enumerate(images[2:5]):  # each saved by an annotator of its own
        labeling_services.image_tags_set(
            image=image,
            present=[tag["leather"].pk],
            annotator=User.objects.create_user(username=f"tagger-{n}"),
        )
    assert queries() == few
