"""The whole first session of a project owner, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Annotation, Image, Project
from tests.factories import PASSWORD, UserFactory, image_bytes

pytestmark = pytest.mark.e2e


def log_in(page, user):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()


def shown_image_id(page) -> str:
    return page.locator("#current-image").get_attribute("data-image-id")


def press_and_wait(page, key: str) -> None:
    """Press a key and wait until the panel shows another image."""
    before = shown_image_id(page)
    page.keyboard.press(key)
    expect(page.locator("#current-image")).not_to_have_attribute("data-image-id", before)


def counter(page, name: str):
    return page.get_by_test_id(f"count-{name}")


def test_owner_creates_a_project_uploads_and_labels_by_keyboard(page, tmp_path):
    owner = UserFactory(username="olivia")
    log_in(page, owner)

    page.get_by_label("Name").fill("Shoes")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Shoes")).to_be_visible()

    for name in ("sneaker", "boot", "sandal"):
        page.locator("#class-create").get_by_label("Name").fill(name)
        page.get_by_role("button", name="Add class").click()
        expect(counter(page, f"class-{name}")).to_have_text("0")

    files = []
    for i in range(8):
        path = tmp_path / f"shoe{i}.png"
        path.write_bytes(image_bytes(i, size=(160, 120)))
        files.append(path)
    bad = tmp_path / "readme.png"
    bad.write_bytes(b"not really a png")
    page.set_input_files("#upload-input", [*files, bad])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_text("8 added, 0 duplicate, 1 refused.")
    expect(page.locator(".result.rejected")).to_contain_text("readme.png")
    expect(counter(page, "total")).to_have_text("8")

    page.get_by_role("link", name="Start labeling").click()
    expect(page.locator("#current-image")).to_be_visible()
    first = shown_image_id(page)
    # The next image is already requested by the browser while this one is labeled.
    prefetched = page.locator("#prefetch-next").get_attribute("data-image-id")
    assert prefetched and prefetched != first

    for key in ("1", "2", "3", "1"):
        press_and_wait(page, key)
    fifth = shown_image_id(page)
    press_and_wait(page, "2")
    expect(counter(page, "labeled")).to_have_text("5")

    page.keyboard.press("Backspace")  # undo the last label: that image comes back
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", fifth)
    expect(counter(page, "labeled")).to_have_text("4")
    expect(counter(page, "total")).to_have_text("8")
    expect(counter(page, "class-sneaker")).to_have_text("2")
    expect(counter(page, "class-boot")).to_have_text("1")
    expect(counter(page, "class-sandal")).to_have_text("1")

    # What the page shows is what was stored.
    project = Project.objects.get(name="Shoes")
    assert Image.objects.filter(project=project).count() == 8
    assert Image.objects.filter(project=project, label__isnull=False).count() == 4
    assert Annotation.objects.filter(image__project=project).count() == 6  # 5 labels + 1 undo

    page.reload()
    expect(counter(page, "labeled")).to_have_text("4")
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", fifth)


def test_grid_selects_by_keyboard_and_assigns_in_one_action(page):
    from labeling import services
    from tests.factories import image_upload

    owner = UserFactory(username="olivia")
    project = services.project_create(name="Shoes", user=owner)
    for name in ("sneaker", "boot"):
        services.label_class_create(project=project, name=name)
    services.images_ingest(project=project, files=[image_upload(i) for i in range(5)], user=owner)

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/images/?label=unlabeled")
    boxes = page.locator('.tile input[type="checkbox"]')
    expect(boxes).to_have_count(5)
    boxes.first.focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    page.keyboard.press("2")  # the key of "boot"
    expect(page.locator(".messages")).to_contain_text("Labeled 2 image(s) boot")
    expect(boxes).to_have_count(3)  # still filtered to unlabeled
    labels = dict(Image.objects.filter(project=project).values_list("original_name", "label__name"))
    assert labels == {
        "img0.png": "boot",
        "img1.png": None,
        "img2.png": "boot",
        "img3.png": None,
        "img4.png": None,
    }

    page.get_by_role("link", name="boot (2)").click()
    expect(boxes).to_have_count(2)
