"""Tags of a multi-label project as a file: the CSV and JSON lines export, checked
against hand-written expected files, the import refusing bad files whole, and a round
trip into a fresh project reproducing every state (present, absent, not looked at)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from labeling import services
from labeling.models import Image, LabelClass, Project, TagAnnotation
from models_app.selectors import labels_since
from tests.conftest import add_images

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(owner, reviewer, annotator):
    project = services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    services.membership_set(project=project, username=reviewer.username, role="reviewer")
    services.membership_set(project=project, username=annotator.username, role="annotator")
    for name in ("striped", "leather", "rounded"):
        services.label_class_create(project=project, name=name)
    return project


def tag(project, name):
    return LabelClass.objects.get(project=project, name=name)


@pytest.fixture
def tagged(shop, owner, annotator):
    """img0 saved striped+rounded, img1 saved with none present, img2 leather set on a
    selection (never saved), img3 never looked at."""
    images = add_images(shop, owner, 4)
    ids = {n: tag(shop, n).pk for n in ("striped", "leather", "rounded")}
    services.image_tags_set(
        image=images[0], present=[ids["striped"], ids["rounded"]], annotator=annotator
    )
    services.image_tags_set(image=images[1], present=[], annotator=annotator)
    services.images_tag_set(
        project=shop,
        image_ids=[images[2].pk],
        tag=tag(shop, "leather"),
        present=True,
        annotator=annotator,
    )
    return [Image.objects.get(pk=i.pk) for i in images]


def states(image) -> dict[str, str]:
    rows = TagAnnotation.objects.filter(image=image, is_current=True).select_related("tag")
    return {row.tag.name: row.state for row in rows if row.state != "unset"}


def parsed(text: str, file_format: str) -> list[dict]:
    if file_format == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines()]


def test_the_csv_export_is_one_row_an_image_and_one_column_a_tag(shop, tagged):
    h = [i.content_hash for i in tagged]
    s = [i.split for i in tagged]
    expected = (
        "image,sha256,split,striped,leather,rounded\n"
        f"img0.png,{h[0]},{s[0]},1,0,1\n"
        f"img1.png,{h[1]},{s[1]},0,0,0\n"
        f"img2.png,{h[2]},unassigned,,1,\n"
        f"img3.png,{h[3]},unassigned,,,\n"
    )
    assert services.project_tags_export(project=shop, file_format="csv") == expected


def test_the_jsonl_export_leaves_out_the_tags_not_looked_at(shop, tagged):
    lines = services.project_tags_export(project=shop, file_format="jsonl").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "image": "img0.png",
            "sha256": tagged[0].content_hash,
            "split": tagged[0].split,
            "tags": {"striped": True, "leather": False, "rounded": True},
        },
        {
            "image": "img1.png",
            "sha256": tagged[1].content_hash,
            "split": tagged[1].split,
            "tags": {"striped": False, "leather": False, "rounded": False},
        },
        {
            "image": "img2.png",
            "sha256": tagged[2].content_hash,
            "split": "unassigned",
            "tags": {"leather": True},
        },
        {"image": "img3.png", "sha256": tagged[3].content_hash, "split": "unassigned", "tags": {}},
    ]


def test_the_export_refuses_a_single_label_project_and_an_unknown_format(project, shop):
    with pytest.raises(ValidationError, match="multi-label"):
        services.project_tags_export(project=project)
    with pytest.raises(ValidationError, match="csv"):
        services.project_tags_export(project=shop, file_format="xml")


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_a_round_trip_into_a_fresh_project_reproduces_every_state(shop, tagged, owner, file_format):
    exported = services.project_tags_export(project=shop, file_format=file_format)
    fresh = services.project_create(name="Copy", user=owner, kind=Project.Kind.MULTI)
    for name in ("rounded", "striped", "leather"):  # another column order
        services.label_class_create(project=fresh, name=name)
    copies = add_images(fresh, owner, 4)
    result = services.project_tags_import(
        project=fresh, name=f"tags.{file_format}", content=exported.encode(), user=owner
    )
    assert (result.images, result.changed, result.tagged, result.missing) == (4, 3, 2, 0)
    assert result.rows == 3 + 3 + 1
    for original, copy in zip(tagged, copies, strict=True):
        copy.refresh_from_db()
        assert states(copy) == states(original), original.original_name
        assert copy.tagged == original.tagged
    # A saved image is one save of its tags: undo takes it back as it would a typed one.
    rows = TagAnnotation.objects.filter(image=copies[0], is_current=True)
    assert {r.action for r in rows} == {"save"} and len({r.save_id for r in rows}) == 1
    # Exported again, the copy says the same, line for line (its columns in its order).
    again_text = services.project_tags_export(project=fresh, file_format=file_format)
    assert parsed(again_text, file_format) == parsed(exported, file_format)
    # Importing the same file twice writes nothing more.
    again = services.project_tags_import(
        project=fresh, name=f"tags.{file_format}", content=exported.encode(), user=owner
    )
    assert (again.rows, again.changed, again.tagged) == (0, 0, 0)


def test_an_import_matches_by_name_without_a_hash_and_keeps_what_an_empty_cell_skips(
    shop, tagged, owner
):
    content = b"image,striped,leather,rounded\nimg3.png,TRUE,false,1\nimg2.png,,,0\n"
    result = services.project_tags_import(
        project=shop, name="from-a-sheet.csv", content=content, user=owner
    )
    assert (result.images, result.tagged) == (2, 1)
    assert states(Image.objects.get(pk=tagged[3].pk)) == {
        "striped": "present",
        "leather": "absent",
        "rounded": "present",
    }
    img2 = Image.objects.get(pk=tagged[2].pk)
    assert states(img2) == {"leather": "present", "rounded": "absent"}
    assert not img2.tagged  # striped still not looked at
    assert Image.objects.get(pk=tagged[3].pk).split != "unassigned"


def test_images_not_in_the_project_are_counted_and_skipped(shop, tagged, owner):
    content = (
        '{"image": "elsewhere.png", "sha256": "' + "ab" * 32 + '", "tags": {"striped": true}}\n'
        '{"sha256": "' + tagged[3].content_hash + '", "tags": {"leather": true}}\n'
    ).encode()
    result = services.project_tags_import(project=shop, name="t.jsonl", content=content, user=owner)
    assert (result.images, result.missing, result.missing_names) == (1, 1, ["elsewhere.png"])
    assert states(Image.objects.get(pk=tagged[3].pk)) == {"leather": "present"}


@pytest.mark.parametrize(
    ("name", "content", "messages"),
    [
        (
            "t.csv",
            b"image,sha256,split,striped,colour\nimg3.png,,,1,0\n",
            ["Line 1: 'colour' is not a tag of this project. Its tags: leather, rounded, striped."],
        ),
        (
            "t.csv",
            b"image,striped,leather,rounded\nimg3.png,1,0,1\nimg2.png,yes,2,\n",
            [
                "Line 3, column \"striped\": 'yes' is not 1, 0, true, false or empty.",
                "Line 3, column \"leather\": '2' is not 1, 0, true, false or empty.",
            ],
        ),
        (
            "t.csv",
            b"image,striped\nimg3.png,1\nimg3.png,0\n",
            ["Line 3: the same image as line 2."],
        ),
        ("t.csv", b"image,striped\nimg3.png,1,0\n", ["Line 2: 3 cells where the header has 2."]),
        (
            "t.csv",
            b"name,striped\nimg3.png,1\n",
            ['Line 1: the header needs an "image" or a "sha256" column, then the tags.'],
        ),
        (
            "t.jsonl",
            b'{"image": "img3.png", "tags": {"striped": true}}\nnot json\n'
            b'{"image": "img2.png", "tags": {"striped": "maybe", "fur": 1}}\n',
            [
                "Line 2: not JSON (Expecting value).",
                "Line 3: 'fur' is not a tag of this project. Its tags: leather, rounded, striped.",
                "Line 3, column \"striped\": 'maybe' is not 1, 0, true, false or empty.",
            ],
        ),
        (
            "t.csv",
            b"",
            ['Line 1: the header needs an "image" or a "sha256" column, then the tags.'],
        ),
        ("t.csv", b"image,striped\n", ["The file has no rows."]),
        ("t.csv", b"\xff\xfeimage", ["The file is not UTF-8 text."]),
        (
            "t.csv",
            b"image,striped\nimg3.png,\x001\n",
            ["Line 2, column \"striped\": '\\x001' is not 1, 0, true, false or empty."],
        ),
        (
            "t.csv",
            b'image,striped\nimg3.png,"' + b"x" * 200_000 + b'"\n',
            ["Not a CSV file: field larger than field limit (131072)."],
        ),
    ],
)
def test_a_bad_file_is_refused_whole_naming_its_lines(shop, tagged, owner, name, content, messages):
    before = TagAnnotation.objects.count()
    with pytest.raises(ValidationError) as refused:
        services.project_tags_import(project=shop, name=name, content=content, user=owner)
    assert refused.value.message_dict["file"] == messages
    assert TagAnnotation.objects.count() == before
    assert not Image.objects.get(pk=tagged[3].pk).tagged


def test_a_file_over_the_limit_is_refused_before_it_is_read(shop, owner, monkeypatch):
    monkeypatch.setattr("labeling.services.tag_exchange.MAX_FILE_BYTES", 10)
    with pytest.raises(ValidationError, match="over"):
        services.project_tags_import(
            project=shop, name="t.csv", content=b"image,striped\nimg0.png,1\n", user=owner
        )


def test_the_format_is_read_from_the_content_when_the_name_does_not_say(shop, tagged, owner):
    content = ('{"sha256": "' + tagged[3].content_hash + '", "tags": {"striped": 0}}').encode()
    result = services.project_tags_import(project=shop, name="upload", content=content, user=owner)
    assert result.images == 1
    assert states(Image.objects.get(pk=tagged[3].pk)) == {"striped": "absent"}


def test_an_import_refuses_a_single_label_project(project, owner):
    with pytest.raises(ValidationError, match="multi-label"):
        services.project_tags_import(project=project, name="t.csv", content=b"image\n", user=owner)


# --- the project page ------------------------------------------------------------------


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_page_offers_the_downloads_to_members_and_the_import_to_curators(
    shop, annotator, reviewer
):
    page = client_of(annotator).get(f"/projects/{shop.pk}/").content.decode()
    assert "Export tags (CSV)" in page and 'id="tags-import-form"' not in page
    page = client_of(reviewer).get(f"/projects/{shop.pk}/").content.decode()
    assert 'id="tags-import-form"' in page


def test_an_annotator_downloads_both_formats(shop, tagged, annotator):
    client = client_of(annotator)
    response = client.get(f"/projects/{shop.pk}/tags/export/?type=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f'filename="project-{shop.pk}-tags.csv"' in response["Content-Disposition"]
    assert response.content.decode() == services.project_tags_export(project=shop)
    response = client.get(f"/projects/{shop.pk}/tags/export/?type=jsonl")
    assert response.content.decode().count("\n") == 4


def test_the_page_imports_a_good_file_and_refuses_a_bad_one_whole(shop, tagged, reviewer):
    client = client_of(reviewer)
    good = SimpleUploadedFile("tags.csv", b"image,striped,leather,rounded\nimg3.png,1,1,0\n")
    response = client.post(f"/projects/{shop.pk}/tags/import/", {"file": good}, follow=True)
    page = response.content.decode()
    assert "Read 1 image: 3 tag states written on 1, 1 newly tagged." in page
    bad = SimpleUploadedFile("tags.csv", b"image,striped\nimg2.png,1\nimg1.png,x\n")
    response = client.post(f"/projects/{shop.pk}/tags/import/", {"file": bad}, follow=True)
    page = response.content.decode()
    assert "Nothing was imported from tags.csv" in page
    assert "Line 3, column &quot;striped&quot;: &#x27;x&#x27; is not 1, 0" in page
    assert "striped" not in states(Image.objects.get(pk=tagged[2].pk))


def test_an_annotator_may_not_import(shop, annotator):
    good = SimpleUploadedFile("tags.csv", b"image,striped\nimg3.png,1\n")
    response = client_of(annotator).post(f"/projects/{shop.pk}/tags/import/", {"file": good})
    assert response.status_code == 403


# --- the API ---------------------------------------------------------------------------


def test_the_api_exports_and_imports(shop, tagged, owner, annotator, api):
    response = api(annotator).get(f"/api/v1/projects/{shop.pk}/tags/export/?type=jsonl")
    assert response.status_code == 200
    assert b"".join(response).decode() == services.project_tags_export(
        project=shop, file_format="jsonl"
    )
    assert api(annotator).get(f"/api/v1/projects/{shop.pk}/tags/export/?type=x").status_code == 400
    good = SimpleUploadedFile(
        "t.csv", b"image,striped,leather,rounded\nimg3.png,0,0,0\nz.png,1,,\n"
    )
    response = api(owner).post(
        f"/api/v1/projects/{shop.pk}/tags/import/", {"file": good}, format="multipart"
    )
    assert response.status_code == 200, response.data
    assert response.data == {
        "images": 1,
        "changed": 1,
        "rows": 3,
        "tagged": 1,
        "missing": 1,
        "missing_names": ["z.png"],
    }


def test_the_api_refuses_a_bad_file_and_an_annotator(shop, tagged, owner, annotator, api):
    bad = SimpleUploadedFile("t.csv", b"image,fur\nimg3.png,1\n")
    url = f"/api/v1/projects/{shop.pk}/tags/import/"
    response = api(owner).post(url, {"file": bad}, format="multipart")
    assert response.status_code == 400
    assert "'fur' is not a tag" in response.data["file"][0]
    assert api(owner).post(url, {}, format="multipart").status_code == 400
    good = SimpleUploadedFile("t.csv", b"image,striped\nimg3.png,1\n")
    assert api(annotator).post(url, {"file": good}, format="multipart").status_code == 403


def test_an_imported_save_is_undone_and_counted_for_retraining_like_a_typed_one(
    shop, tagged, owner
):
    before = labels_since(project=shop, version=None)
    content = b"image,striped,leather,rounded\nimg3.png,1,0,0\n"
    services.project_tags_import(project=shop, name="t.csv", content=content, user=owner)
    assert labels_since(project=shop, version=None) == before + 1
    undone = services.label_undo_last(project=shop, annotator=owner)
    assert undone.pk == tagged[3].pk and not undone.tagged
    assert states(undone) == {}
