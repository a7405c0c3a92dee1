"""The verify page in a real browser: a page of suggestions for one class, wrong ones
unticked by key and by click, the page accepted with Enter; a stale page and a refused
one."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import services
from labeling.models import Annotation, Image, SuggestionRejection
from tests.conftest import add_images
from tests.e2e.test_labeling_flow import log_in
from tests.labeling.test_suggestions import VERSION, suggest

pytestmark = pytest.mark.e2e


def tiles(page):
    return page.locator("#verify-form .tile")


def test_unticked_suggestions_go_back_and_enter_accepts_the_rest(page, project, annotator, classes):
    cat, dog, _ = classes
    images = add_images(project, annotator, 6)
    suggest(images[:4], cat, [0.9, 0.8, 0.7, 0.6])
    suggest(images[4:], dog, [0.95, 0.5])
    a, b, c, d, e, f = images
    log_in(page, annotator)
    page.goto(f"/projects/{project.pk}/")
    page.get_by_role("link", name="Verify suggestions").click()
    # It opens on the class with the most suggestions waiting, most confident first.
    expect(page.get_by_text("Is each of these cat?")).to_be_visible()
    expect(page.get_by_test_id("verify-summary")).to_have_text(
        "4 of 4 suggestions, most confident first."
    )
    expect(tiles(page).locator(".guess")).to_have_text(["90%", "80%", "70%", "60%"])
    expect(tiles(page).locator('input[type="checkbox"]:checked')).to_have_count(4)

    # b by keys (arrow to it, Space), c by a click.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    tiles(page).nth(2).locator("img").click()
    expect(tiles(page).locator('input[type="checkbox"]:checked')).to_have_count(2)
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_have_text("Accepted 2 as cat; 2 back to the queue.")
    expect(page.get_by_test_id("verify-empty")).to_contain_text("suggests cat for no image")

    rows = Annotation.objects.filter(is_current=True).order_by("image_id")
    assert [(r.image_id, r.label_class_id, r.origin, r.suggested_by) for r in rows] == [
        (a.pk, cat.pk, "verified", VERSION),
        (d.pk, cat.pk, "verified", VERSION),
    ]
    assert set(SuggestionRejection.objects.values_list("image_id", flat=True)) == {b.pk, c.pk}

    # The dog page: Shift+A unticks all, Enter sends them all back.
    page.get_by_test_id("verify-class-dog").click()
    expect(page.get_by_text("Is each of these dog?")).to_be_visible()
    page.keyboard.press("Shift+A")
    expect(tiles(page).locator('input[type="checkbox"]:checked')).to_have_count(0)
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_have_text("Accepted 0 as dog; 2 back to the queue.")
    assert SuggestionRejection.objects.filter(label_class=dog).count() == 2
    assert not Image.objects.filter(pk__in=[e.pk, f.pk], label__isnull=False).exists()


def test_a_stale_page_skips_what_others_labeled_and_a_refused_one_saves_nothing(
    page, project, owner, annotator, classes
):
    cat, dog, _ = classes
    images = add_images(project, annotator, 3)
    suggest(images, cat, [0.9, 0.8, 0.7])
    log_in(page, annotator)
    page.goto(f"/projects/{project.pk}/verify/")
    expect(tiles(page)).to_have_count(3)
    # Meanwhile the owner labels the first image dog.
    services.annotation_create(image=images[0], label_class=dog, annotator=owner)
    page.get_by_role("button", name="Accept ticked").click()
    expect(page.locator(".messages")).to_have_text(
        "Accepted 2 as cat; 0 back to the queue. 1 were labeled by someone else meanwhile "
        "and left as they are."
    )
    assert Image.objects.get(pk=images[0].pk).label_id == dog.pk

    more = add_images(project, annotator, 2, start=20)
    suggest(more, dog, [0.9, 0.8])
    page.goto(f"/projects/{project.pk}/verify/?class={dog.pk}")
    expect(tiles(page)).to_have_count(2)
    services.label_class_update(label_class=dog, is_active=False)
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_have_text("Class 'dog' is deactivated.")
    assert not Annotation.objects.filter(image__in=more).exists()
    assert not SuggestionRejection.objects.exists()
