"""Tags as a file in a real browser: the project page downloads the CSV, and its import
form takes a good file (the summary shown, the tags written) and refuses a bad one whole
(the bad line named, nothing written)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import services
from labeling.models import Image, TagAnnotation
from tests.conftest import add_images
from tests.e2e.test_labeling_flow import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.e2e


def stored(image) -> dict[str, str]:
    rows = TagAnnotation.objects.filter(image=image, is_current=True).select_related("tag")
    return {row.tag.name: row.state for row in rows}


def test_a_curator_downloads_tags_and_imports_a_good_file_then_a_bad_one(page, tmp_path):
    owner = UserFactory(username="olivia")
    project = services.project_create(name="Bags", user=owner, kind="multi")
    for name in ("striped", "leather"):
        services.label_class_create(project=project, name=name)
    first, second = add_images(project, owner, 2)
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    expect(page.get_by_role("heading", name="Import tags")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="Export tags (CSV)").click()
    text = download.value.path().read_text()
    assert text.splitlines()[0] == "image,sha256,split,striped,leather"
    assert text.count("\n") == 3

    good = tmp_path / "tags.csv"
    good.write_text(
        f"image,sha256,split,striped,leather\nimg0.png,{first.content_hash},,1,0\nelse.png,,,1,\n"
    )
    page.set_input_files("#tags-import-input", good)
    page.get_by_role("button", name="Import tags").click()
    expect(page.locator(".messages")).to_contain_text(
        "Read 1 image: 2 tag states written on 1, 1 newly tagged."
    )
    expect(page.locator(".messages")).to_contain_text("1 row named images not in this project")
    assert stored(first) == {"striped": "present", "leather": "absent"}
    assert Image.objects.get(pk=first.pk).tagged

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"image": "img1.png", "tags": {"striped": true}}\n'
        '{"image": "img0.png", "tags": {"striped": "sometimes"}}\n'
    )
    page.set_input_files("#tags-import-input", bad)
    page.get_by_role("button", name="Import tags").click()
    messages = page.locator(".messages")
    expect(messages).to_contain_text("Nothing was imported from bad.jsonl")
    expect(messages).to_contain_text("Line 2, column \"striped\": 'sometimes' is not 1, 0")
    assert stored(second) == {}
    assert stored(first) == {"striped": "present", "leather": "absent"}


def test_tag_names_a_spreadsheet_would_run_go_out_quoted_and_come_back_exactly(page, tmp_path):
    """A tag named like a formula: quoted in the downloaded CSV, read back unquoted by
    another project's import form; a quoted unknown tag is refused under its own name."""
    owner = UserFactory(username="olivia")
    link = '=HYPERLINK("http://evil.example","click")'

    def shop(name):
        project = services.project_create(name=name, user=owner, kind="multi")
        tags = [services.label_class_create(project=project, name=n) for n in (link, "-1")]
        return project, tags, add_images(project, owner, 2)

    source, tags, images = shop("Source")
    services.image_tags_set(image=images[0], present=[tags[0].pk], annotator=owner)
    services.image_tags_set(image=images[1], present=[tags[1].pk], annotator=owner)
    target, _, copies = shop("Target")
    log_in(page, owner)
    page.goto(f"/projects/{source.pk}/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export tags (CSV)").click()
    text = download.value.path().read_text()
    assert (
        text.splitlines()[0]
        == 'image,sha256,split,"\'=HYPERLINK(""http://evil.example"",""click"")",\'-1'
    )

    page.goto(f"/projects/{target.pk}/")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image,sha256,'=other\nimg0.png,{copies[0].content_hash},1\n")
    page.set_input_files("#tags-import-input", bad)
    page.get_by_role("button", name="Import tags").click()
    expect(page.locator(".messages")).to_contain_text("Nothing was imported from bad.csv")
    expect(page.locator(".messages")).to_contain_text("'=other' is not a tag of this project")
    assert not TagAnnotation.objects.filter(image__project=target).exists()

    good = tmp_path / "tags.csv"
    good.write_text(text)
    page.set_input_files("#tags-import-input", good)
    page.get_by_role("button", name="Import tags").click()
    expect(page.locator(".messages")).to_contain_text("Read 2 images: 4 tag states written on 2")
    assert [stored(c) for c in copies] == [stored(i) for i in images]
    assert stored(copies[0]) == {link: "present", "-1": "absent"}
