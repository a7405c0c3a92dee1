"""Undo in a tag project, in a real browser: a save made on the labeling page, then a
tag added from the grid, then both undone by Backspace. Once the save itself is undone
the image is untagged again: the labeled count drops back to 0 and its tags are back to
not looked at."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import services
from labeling.models import Image, TagAnnotation
from tests.e2e.test_labeling_flow import counter, log_in, shown_image_id
from tests.factories import UserFactory, image_upload

pytestmark = pytest.mark.e2e


def stored(image_id) -> dict[str, str]:
    rows = TagAnnotation.objects.filter(image_id=image_id, is_current=True).select_related("tag")
    return {row.tag.name: row.state for row in rows}


def test_undoing_a_grid_change_then_the_save_leaves_the_image_untagged(page):
    owner = UserFactory(username="olivia")
    project = services.project_create(name="Bags", user=owner, kind="multi")
    for name in ("striped", "leather", "rounded"):
        services.label_class_create(project=project, name=name)
    services.images_ingest(project=project, files=[image_upload(i) for i in range(2)], user=owner)
    log_in(page, owner)

    page.goto(f"/projects/{project.pk}/label/")
    expect(page.get_by_test_id("tag-form")).to_be_visible()
    first = shown_image_id(page)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#current-image")).not_to_have_attribute("data-image-id", first)
    assert stored(first) == {"striped": "present", "leather": "absent", "rounded": "absent"}
    expect(counter(page, "labeled")).to_have_text("1")

    page.goto(f"/projects/{project.pk}/images/")
    page.locator(f'input[name="images"][value="{first}"]').check()
    page.locator("#assign-class").select_option(label="3 · rounded")
    page.get_by_role("button", name="Assign to selected").click()
    expect(page.locator(".messages")).to_contain_text("Tag rounded added to 1 image(s)")
    assert stored(first)["rounded"] == "present"

    page.goto(f"/projects/{project.pk}/label/")
    expect(page.get_by_test_id("tag-form")).to_be_visible()
    page.keyboard.press("Backspace")  # the grid change: the save still stands
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", first)
    expect(counter(page, "labeled")).to_have_text("1")
    assert stored(first) == {"striped": "present", "leather": "absent", "rounded": "absent"}

    page.keyboard.press("Backspace")  # the save: nothing of it stays
    expect(counter(page, "labeled")).to_have_text("0")
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", first)
    assert stored(first) == {"striped": "unset", "leather": "unset", "rounded": "unset"}
    assert not Image.objects.get(pk=first).tagged
