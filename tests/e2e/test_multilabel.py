"""A multi-label project in a real browser: created from the form, tagged by keyboard
(a key toggles its tag, Enter saves every tag), undone, and tags set on a selection."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import services
from labeling.models import Image, LabelClass, Project, TagAnnotation
from tests.e2e.test_labeling_flow import counter, log_in, shown_image_id
from tests.factories import UserFactory, image_bytes, image_upload

pytestmark = pytest.mark.e2e


def stored(image_id) -> dict[str, str]:
    rows = TagAnnotation.objects.filter(image_id=image_id, is_current=True).select_related("tag")
    return {row.tag.name: row.state for row in rows}


def test_owner_creates_a_tag_project_and_tags_images_by_keyboard(page, tmp_path):
    owner = UserFactory(username="olivia")
    log_in(page, owner)
    form = page.locator("#project-create")
    form.get_by_label("Name").fill("Bags")
    form.get_by_label("Multi-label: any number of tags per image").check()
    form.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Bags")).to_be_visible()
    project = Project.objects.get(name="Bags")
    assert project.kind == "multi"

    for name in ("striped", "leather", "rounded"):
        page.locator("#class-create").get_by_label("Name").fill(name)
        page.get_by_role("button", name="Add tag").click()
        expect(counter(page, f"class-{name}")).to_have_text("0")
    files = []
    for i in range(3):
        path = tmp_path / f"bag{i}.png"
        path.write_bytes(image_bytes(i, size=(120, 90)))
        files.append(path)
    page.set_input_files("#upload-input", files)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_text("3 added, 0 duplicate, 0 refused.")

    page.get_by_role("link", name="Start labeling").click()
    expect(page.get_by_test_id("tag-form")).to_be_visible()
    first = shown_image_id(page)
    striped = page.locator('.tag-toggle[data-key="1"] input')
    rounded = page.locator('.tag-toggle[data-key="3"] input')
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.keyboard.press("3")  # toggled back off
    page.keyboard.press("3")
    expect(striped).to_be_checked()
    expect(rounded).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.locator("#current-image")).not_to_have_attribute("data-image-id", first)
    assert stored(first) == {"striped": "present", "leather": "absent", "rounded": "present"}
    expect(counter(page, "labeled")).to_have_text("1")
    expect(counter(page, "class-striped")).to_have_text("1")

    second = shown_image_id(page)
    expect(striped).not_to_be_checked()  # a new image starts with nothing ticked
    page.keyboard.press("Enter")  # no tag present: every tag recorded absent
    expect(page.locator("#current-image")).not_to_have_attribute("data-image-id", second)
    assert stored(second) == {"striped": "absent", "leather": "absent", "rounded": "absent"}
    expect(counter(page, "labeled")).to_have_text("2")

    page.keyboard.press("Backspace")  # undo the last save: that image comes back
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", second)
    expect(counter(page, "labeled")).to_have_text("1")
    assert stored(second) == {"striped": "unset", "leather": "unset", "rounded": "unset"}
    assert not Image.objects.get(pk=second).tagged


def test_a_save_refused_by_the_server_says_why_and_keeps_the_image(page):
    owner = UserFactory(username="olivia")
    project = services.project_create(name="Bags", user=owner, kind="multi")
    services.label_class_create(project=project, name="striped")
    leather = services.label_class_create(project=project, name="leather")
    services.images_ingest(project=project, files=[image_upload(1)], user=owner)
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/label/")
    image_id = shown_image_id(page)
    page.keyboard.press("2")
    # Meanwhile someone deactivates the ticked tag: the save must be refused, not half-done.
    services.label_class_update(label_class=leather, is_active=False, actor=owner)
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_contain_text(f"No active tag with id {leather.pk}")
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", image_id)
    assert not TagAnnotation.objects.exists()
    assert not Image.objects.get(pk=image_id).tagged


def test_grid_adds_and_removes_a_tag_on_a_selection(page):
    owner = UserFactory(username="olivia")
    project = services.project_create(name="Bags", user=owner, kind="multi")
    for name in ("striped", "leather"):
        services.label_class_create(project=project, name=name)
    services.images_ingest(project=project, files=[image_upload(i) for i in range(3)], user=owner)
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/images/")
    boxes = page.locator('.tile input[type="checkbox"]')
    expect(boxes).to_have_count(3)
    boxes.nth(0).check()
    boxes.nth(2).check()
    page.locator("#assign-class").select_option(label="2 · leather")
    page.get_by_role("button", name="Assign to selected").click()
    expect(page.locator(".messages")).to_contain_text("Tag leather added to 2 image(s)")
    leather = LabelClass.objects.get(project=project, name="leather")
    names = dict(Image.objects.filter(project=project).values_list("pk", "original_name"))
    present = {
        names[i]
        for i in TagAnnotation.objects.filter(
            tag=leather, is_current=True, state="present"
        ).values_list("image_id", flat=True)
    }
    assert present == {"img0.png", "img2.png"}

    boxes.nth(0).check()
    page.locator("#tag-action").select_option("remove")
    page.locator("#assign-class").select_option(label="2 · leather")
    page.get_by_role("button", name="Assign to selected").click()
    expect(page.locator(".messages")).to_contain_text("Tag leather removed from 1 image(s)")
    states = dict(
        TagAnnotation.objects.filter(tag=leather, is_current=True).values_list(
            "image__original_name", "state"
        )
    )
    assert states == {"img0.png": "absent", "img2.png": "present"}

    # Nothing selected: refused with the reason, nothing written.
    page.get_by_role("button", name="Assign to selected").click()
    expect(page.locator(".messages")).to_contain_text("Select at least one image")
    assert TagAnnotation.objects.count() == 3
