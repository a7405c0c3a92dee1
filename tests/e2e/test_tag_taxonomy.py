"""The classes page of a multi-label project in a real browser: merging tags (refused
with one tag ticked, then the union written), undoing it, and starting a tag's split
(refused with one name, then started)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from labeling import services
from labeling.models import ClassMerge, ClassSplit, LabelClass, Project, TagAnnotation
from tests.conftest import add_images
from tests.e2e.test_labeling_flow import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.e2e


def states(tag, images) -> list[str | None]:
    current = dict(
        TagAnnotation.objects.filter(tag=tag, is_current=True).values_list("image_id", "state")
    )
    return [current.get(i.pk) for i in images]


def test_tags_are_merged_undone_and_split_from_the_classes_page(page):
    owner = UserFactory(username="olivia")
    project = services.project_create(name="Shop", user=owner, kind=Project.Kind.MULTI)
    striped, leather, rounded = (
        services.label_class_create(project=project, name=n)
        for n in ("striped", "leather", "rounded")
    )
    images = add_images(project, owner, 3)
    services.image_tags_set(image=images[0], present=[striped.pk], annotator=owner)
    services.image_tags_set(image=images[1], present=[leather.pk], annotator=owner)
    services.image_tags_set(image=images[2], present=[rounded.pk], annotator=owner)
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/taxonomy/")
    merge = page.locator("#merge-form")
    expect(merge).to_contain_text("Tags merge as their union")

    # One tag ticked: refused beside the form, the tick and the name kept, nothing written.
    merge.get_by_label("striped").check()
    merge.get_by_label("Into").fill("pattern")
    merge.get_by_role("button", name="Merge").click()
    merge = page.locator("#merge-form")
    expect(merge.locator(".form-errors")).to_contain_text("Choose at least two classes to merge.")
    expect(merge.get_by_label("striped")).to_be_checked()
    expect(merge.get_by_label("Into")).to_have_value("pattern")
    assert not ClassMerge.objects.exists()

    merge.get_by_label("leather").check()
    merge.get_by_role("button", name="Merge").click()
    expect(page.locator(".messages")).to_contain_text("Merged into pattern")
    pattern = LabelClass.objects.get(project=project, name="pattern")
    assert states(pattern, images) == ["present", "present", "absent"]

    page.get_by_role("button", name="Undo").click()
    expect(page.locator(".messages")).to_contain_text("Merge undone")
    assert ClassMerge.objects.get().undone_at is not None
    assert states(pattern, images) == ["unset", "unset", "unset"]
    striped.refresh_from_db()
    assert striped.is_active

    # A tag's split: one name refused, then two.
    split = page.locator("#split-form")
    split.get_by_label("Tag").select_option(label="rounded")
    split.get_by_label("Into").fill("round")
    split.get_by_role("button", name="Start splitting").click()
    split = page.locator("#split-form")
    expect(split.locator(".form-errors")).to_contain_text("Name at least two different new classes")
    assert not ClassSplit.objects.exists()
    split.get_by_label("Into").fill("round, oval")
    split.get_by_role("button", name="Start splitting").click()
    expect(page.get_by_role("heading", name=re.compile("Splitting rounded"))).to_be_visible()
    expect(page.locator("body")).to_contain_text("where rounded was saved absent")
    assert ClassSplit.objects.get().source == rounded
