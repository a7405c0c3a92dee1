"""What an import says when an archive is bad, word for word, and what it does with
archives written by older exports or holding unusual names.

A refusal's message is what a person reads to mend their file, so each is checked whole:
which row, which field, what is wrong. Quick enough for every mutant of
models_app/archive.py (`make mutation`), like test_mutants_archive.py, whose project
and helpers these tests share.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from labeling import services as labeling_services
from labeling.models import Annotation, Image, LabelClass, Project, TaxonomyChange
from models_app.archive import project_document
from models_app.models import ModelVersion
from models_app.selectors import backbone_key
from tests.conftest import no_index_scans
from tests.factories import UserFactory, image_upload
from tests.models_app import test_mutants_archive as base
from tests.models_app.test_mutants_archive import _rewritten, _set, exported, imported

small_project = base.small_project  # the same hand-made project (a fixture)


def _document(data: bytes) -> dict:
    return json.loads(zipfile.ZipFile(io.BytesIO(data)).read("project.json"))


def _refusal(data: bytes, user) -> str:
    with pytest.raises(ValidationError) as refused:
        imported(data, user)
    return " ".join(refused.value.messages)


def _change(fn):
    """A change of project.json made by a function of the document."""
    return lambda data: _rewritten(data, fn)


def _image_file(n):
    return lambda document: document["images"][n]["file"]


def _twice(key, n=0):
    def change(document):
        document[key].append(dict(document[key][n]))

    return change


def _same_hash(document):
    document["images"][1]["content_hash"] = document["images"][0]["content_hash"]


def _class_ref_twice(document):
    document["classes"][1]["ref"] = document["classes"][0]["ref"]


def _corrupt_member(data: bytes, name: str) -> bytes:
    """The archive stored without compression and one byte of `name`'s data flipped,
    so that reading it fails its CRC check."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for member in source.namelist():
            target.writestr(member, source.read(member))
    raw = bytearray(out.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).getinfo(name)
    header = 30 + len(info.filename.encode()) + len(info.extra)
    raw[info.header_offset + header + info.compress_size // 2] ^= 0xFF
    return bytes(raw)


# fault -> (the archive made bad, the whole message; `{file0}` stands for the first
# image's path in the archive, `{file1}` for the second's)
REFUSED = {
    "two bad learner fields": (
        _change(
            lambda d: d["learner"].update(head_kind="forest", fine_tune_epochs=-5),
        ),
        "The learner settings: head_kind: Value 'forest' is not a valid choice.; "
        "fine_tune_epochs: Ensure this value is greater than or equal to 1.",
    ),
    "a row of the wrong shape": (
        _change(_set(["model_versions", 0, "label_counts"], [])),
        "The archive's project.json is malformed: 'list' object has no attribute 'items'",
    ),
    "a class ref twice": (
        _change(_class_ref_twice),
        "The archive holds class 0 twice or unnumbered.",
    ),
    "a class ref that is no number": (
        _change(_set(["classes", 0, "ref"], "first")),
        "The archive holds class 'first' twice or unnumbered.",
    ),
    "a class colour with two problems and a bad key": (
        _change(lambda d: d["classes"][0].update(color="#zzzzzzzz", key="ab")),
        "Class 'cat': Colour must look like #1f77b4. Ensure this value has at most 7 "
        "characters (it has 9). Key must be one character: a digit or a lowercase letter. "
        "Ensure this value has at most 1 character (it has 2).",
    ),
    "a class time": (
        _change(_set(["classes", 0, "created_at"], "noon")),
        "Class 'cat': 'noon' is not a time.",
    ),
    "an image without a time": (
        _change(_set(["images", 0, "created_at"], None)),
        "Image {file0}: None is not a time.",
    ),
    "an image time that is a number": (
        _change(_set(["images", 0, "created_at"], 5)),
        "Image {file0}: 5 is not a time.",
    ),
    "an image twice": (
        _change(_same_hash),
        "The archive holds the image {file1} twice.",
    ),
    "an image split no form offers": (
        _change(_set(["images", 0, "split"], "holdout")),
        "Image {file0}: split: Value 'holdout' is not a valid choice.",
    ),
    "a label of another action": (
        _change(_set(["annotations", 0, "action"], "guess")),
        "Label 0: action: Value 'guess' is not a valid choice.",
    ),
    "a label time": (
        _change(_set(["annotations", 1, "created_at"], "soon")),
        "Label 1: 'soon' is not a time.",
    ),
    "a label reverting no label": (
        _change(_set(["annotations", 0, "reverts"], 77)),
        "The archive refers to label 77, which it does not define.",
    ),
    "taxonomy details that are no object": (
        _change(_set(["taxonomy", 0, "details"], [1, 2])),
        "Taxonomy change 0: its details are not an object.",
    ),
    "a taxonomy change of no kind": (
        _change(_set(["taxonomy", 1, "kind"], "rename-all")),
        "Taxonomy change 1: kind: Value 'rename-all' is not a valid choice.",
    ),
    "a taxonomy time": (
        _change(_set(["taxonomy", 0, "created_at"], "later")),
        "Taxonomy change 0: 'later' is not a time.",
    ),
    "a version twice": (
        _change(_twice("model_versions")),
        "The archive holds model version 1 twice.",
    ),
    "a version of no status": (
        _change(_set(["model_versions", 0, "status"], "lost")),
        "Model version 1: status: Value 'lost' is not a valid choice.",
    ),
    "a version start": (
        _change(_set(["model_versions", 1, "started_at"], "dawn")),
        "Model version 2: 'dawn' is not a time.",
    ),
    "a version end": (
        _change(_set(["model_versions", 1, "finished_at"], "dusk")),
        "Model version 2: 'dusk' is not a time.",
    ),
    "a version's creation": (
        _change(_set(["model_versions", 0, "created_at"], "never")),
        "Model version 1: 'never' is not a time.",
    ),
    # After the active version's model file is stored: that file must go too.
    "a version twice after the model file": (
        _change(_twice("model_versions", n=1)),
        "The archive holds model version 2 twice.",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("fault", list(REFUSED))
def test_a_bad_archive_is_refused_in_words_that_name_the_row(
    small_project, outsider, media_root, fault
):
    make, message = REFUSED[fault]
    data = exported(small_project)
    files = _document(data)["images"]
    projects = Project.objects.count()
    before = sorted(p for p in media_root.rglob("*") if p.is_file())
    assert _refusal(make(data), outsider) == message.format(
        file0=files[0]["file"], file1=files[1]["file"]
    )
    assert Project.objects.count() == projects
    assert sorted(p for p in media_root.rglob("*") if p.is_file()) == before


@pytest.mark.django_db
def test_two_classes_of_one_name_are_refused_by_the_database_constraint(small_project, outsider):
    refusal = _refusal(
        _rewritten(exported(small_project), _set(["classes", 1, "name"], "CAT")), outsider
    )
    assert refusal.startswith(
        "The archive's rows cannot all be stored: duplicate key value violates unique "
        'constraint "labelclass_unique_name_ci"\n'
        "DETAIL:  Key (lower(name::text), project_id)=(cat, "
    )
    assert refusal.endswith(") already exists.")


@pytest.mark.django_db
def test_an_image_pillow_cannot_read_is_refused_by_its_path(small_project, outsider):
    data = exported(small_project)
    path = _document(data)["images"][2]["file"]
    bad = _rewritten(data, drop={path}, add={path: b"\x89PNG\r\n\x1a\n not an image"})
    assert _refusal(bad, outsider).startswith(f"{path}: ")


@pytest.mark.django_db
def test_a_damaged_member_is_refused_as_damage(small_project, outsider):
    data = exported(small_project)
    path = _document(data)["images"][0]["file"]
    assert _refusal(_corrupt_member(data, path), outsider) == (
        f"The archive is damaged: Bad CRC-32 for file '{path}'"
    )


@pytest.mark.django_db
def test_an_image_exactly_at_the_size_limit_is_taken(small_project, outsider, settings):
    data = exported(small_project)
    archive = zipfile.ZipFile(io.BytesIO(data))
    largest = max(archive.getinfo(i["file"]).file_size for i in _document(data)["images"])
    settings.LABELING = {**settings.LABELING, "MAX_IMAGE_BYTES": largest}
    assert Image.objects.filter(project=imported(data, outsider)).count() == 4


@pytest.mark.django_db
def test_an_older_archive_without_uploader_priority_or_progress(small_project, outsider):
    def older(document):
        for row in document["images"]:
            del row["uploaded_by"], row["priority"]
        for row in document["model_versions"]:
            del row["progress"]

    copy = imported(_rewritten(exported(small_project), older), outsider)
    images = Image.objects.filter(project=copy)
    assert {(i.uploaded_by, i.priority) for i in images} == {(outsider, 0.0)}
    assert set(ModelVersion.objects.filter(project=copy).values_list("progress", flat=True)) == {""}


@pytest.mark.django_db
def test_a_version_1_archive_keeps_its_taxonomy_details_as_written(small_project, outsider):
    def version_1(document):
        document["version"] = 1
        document["taxonomy"][0]["details"] = {"class": 123456, "merge": 9}

    copy = imported(_rewritten(exported(small_project), version_1), outsider)
    first = TaxonomyChange.objects.filter(project=copy).order_by("created_at", "id").first()
    assert first.details == {"class": 123456, "merge": 9}


@pytest.mark.django_db
def test_a_version_2_archive_keeps_the_ids_of_rows_it_does_not_carry(small_project, outsider):
    copy = imported(
        _rewritten(exported(small_project), _set(["taxonomy", 0, "details", "merge"], 9)),
        outsider,
    )
    first = TaxonomyChange.objects.filter(project=copy).order_by("created_at", "id").first()
    assert first.details["merge"] == 9


@pytest.mark.django_db
def test_a_version_naming_a_class_that_is_gone_keeps_the_gap(small_project, outsider):
    version = ModelVersion.objects.get(project=small_project, number=2)
    version.class_ids = [*version.class_ids, 10**9]
    version.save()
    copy = imported(exported(small_project), outsider)
    ids = ModelVersion.objects.get(project=copy, number=2).class_ids
    names = dict(LabelClass.objects.filter(project=copy).values_list("pk", "name"))
    assert [names.get(pk) for pk in ids] == ["cat", "dog", None]


@pytest.mark.django_db
def test_the_active_model_file_gets_a_name_of_its_own(small_project, outsider):
    copy = imported(exported(small_project), outsider)
    artifact = ModelVersion.objects.get(project=copy, number=2).artifact
    assert re.fullmatch(rf"models/{copy.pk}/v2-[0-9a-f]{{8}}\.pt", artifact)
    assert default_storage.open(artifact).read() == base.ARTIFACT


@pytest.mark.django_db
def test_the_imported_images_are_sent_to_be_embedded(
    small_project, outsider, django_capture_on_commit_callbacks
):
    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        copy = imported(exported(small_project), outsider)
    tasks = [SignedPackage.loads(row.payload) for row in OrmQ.objects.all()]
    assert [(t["func"], t["args"]) for t in tasks] == [
        ("models_app.tasks.embed_project", (copy.pk,))
    ]


@pytest.mark.django_db
def test_uploaders_requesters_taxonomists_and_labelers_are_matched_by_username(project, owner):
    uploader, requester, taxonomist, labeler = (
        UserFactory(username=n)
        for n in ("uma-uploader", "vera-requester", "tom-taxonomist", "lea-labeler")
    )
    cat = labeling_services.label_class_create(project=project, name="cat", actor=taxonomist)
    result = labeling_services.images_ingest(
        project=project, files=[image_upload(3)], user=uploader
    )
    # lea only labels: her name is in no other row of the archive.
    labeling_services.annotation_create(
        image=Image.objects.get(pk=result[0].image_id), label_class=cat, annotator=labeler
    )
    ModelVersion.objects.create(
        project=project,
        number=1,
        status=ModelVersion.Status.FAILED,
        trigger="api",
        backbone=backbone_key(),
        requested_by=requester,
    )
    copy = imported(exported(project), owner)
    assert Image.objects.get(project=copy).uploaded_by == uploader
    assert ModelVersion.objects.get(project=copy).requested_by == requester
    assert TaxonomyChange.objects.get(project=copy).actor == taxonomist
    assert Annotation.objects.get(image__project=copy).annotator == labeler


@pytest.mark.django_db
def test_a_tiff_keeps_its_preview_and_a_dotted_class_its_extension(project, owner, outsider):
    dotted = labeling_services.label_class_create(project=project, name="v1.2", actor=owner)
    tiff = image_upload(5, name="scan.tif", fmt="TIFF")
    result = labeling_services.images_ingest(project=project, files=[tiff], user=owner)
    image = Image.objects.get(pk=result[0].image_id)
    labeling_services.annotation_create(image=image, label_class=dotted, annotator=owner)
    data = exported(project)
    assert (
        f"images/v1.2/{image.content_hash[:32]}.tif" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    )
    copy = Image.objects.get(project=imported(data, outsider))
    stem = image.content_hash[:32]
    # The extension is what follows the path's last dot, not its first ("v1.2/...").
    assert copy.file.name == f"projects/{copy.project_id}/images/{stem[:2]}/{stem}.tif"
    assert copy.preview.open("rb").read()[:2] == b"\xff\xd8"  # a JPEG
    assert copy.preview.name.endswith(f"/{image.content_hash[:32]}.jpg")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, folder",
    [
        ("..Xmas tree/..", "Xmas_tree"),
        ("?!", "class"),
        ("snow  & ice", "snow_ice"),
    ],
)
def test_a_class_name_becomes_a_safe_folder(project, owner, name, folder):
    label_class = labeling_services.label_class_create(project=project, name=name, actor=owner)
    image = base.add_images(project, owner, 1)[0]
    labeling_services.annotation_create(image=image, label_class=label_class, annotator=owner)
    names = zipfile.ZipFile(io.BytesIO(exported(project))).namelist()
    assert f"images/{folder}/{image.content_hash[:32]}.png" in names


@pytest.mark.parametrize("rewritten", ["second made", "third made"])
@pytest.mark.django_db
def test_classes_are_written_in_their_display_order(project, owner, rewritten):
    for n, name in enumerate(["first made", "second made", "third made"]):
        made = labeling_services.label_class_create(project=project, name=name, actor=owner)
        LabelClass.objects.filter(pk=made.pk).update(order=[2, 1, 1][n])
    # An update writes a new row version at the end of the table, and a table scan meets
    # it last: with either of the tied rows rewritten, one of the two runs has the ties
    # in another order than the ids' unless the ids break them.
    LabelClass.objects.filter(project=project, name=rewritten).update(color="#000000")
    no_index_scans()
    document = _document(exported(project))
    assert [c["name"] for c in document["classes"]] == ["second made", "third made", "first made"]


@pytest.mark.django_db
def test_the_document_costs_the_same_queries_whatever_the_project_holds(small_project):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            project_document(project=small_project)
        return len(captured)

    few = queries()
    for n in range(3):  # each logged with its actor
        labeling_services.label_class_create(
            project=small_project, name=f"new {n}", actor=UserFactory(username=f"t{n}")
        )
    more = base.add_images(small_project, UserFactory(username="u2"), 3, start=20)
    cat = LabelClass.objects.get(project=small_project, name="cat")
    for image in more:
        labeling_services.annotation_create(
            image=image, label_class=cat, annotator=UserFactory(username=f"a{image.pk}")
        )
    for number in (4, 5):
        ModelVersion.objects.create(
            project=small_project,
            number=number,
            status=ModelVersion.Status.FAILED,
            trigger="api",
            backbone="x",
            requested_by=UserFactory(username=f"r{number}"),
        )
    assert queries() == few
