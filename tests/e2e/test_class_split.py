"""A domain expert splits a class in a real browser: seeds by keyboard, suggestions,
bulk accept, finish."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling import services
from labeling.models import ClassSplit, Image
from models_app import services as learner
from tests.e2e.test_labeling_flow import log_in
from tests.fashion import labeled_project

pytestmark = pytest.mark.e2e


def test_an_expert_splits_a_merged_class_back(page, project, owner, fashion):
    classes = labeled_project(project, owner, fashion, ["Trouser", "Bag"], per_class=12)
    truth = dict(Image.objects.filter(project=project).values_list("id", "label__name"))
    learner.embeddings_ensure(project=project)
    merge = services.label_class_merge(
        project=project, classes=list(classes.values()), name="Things", actor=owner
    )

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/taxonomy/")
    page.locator("#split-form select").select_option(label="Things")
    page.locator("#split-form").get_by_label("Into").fill("Trousers, Bags")
    page.get_by_role("button", name="Start splitting").click()
    expect(page.get_by_role("heading", name="Splitting Things into Trousers, Bags")).to_be_visible()

    # Two seeds of each: tick them, press the new class's number.
    for key, name in (("1", "Trouser"), ("2", "Bag")):
        for pk in [pk for pk, n in sorted(truth.items()) if n == name][:2]:
            page.locator(f'input[name="images"][value="{pk}"]').check()
        page.keyboard.press(key)
        expect(page.locator(".messages")).to_contain_text("2 image(s) assigned.")
    page.get_by_role("button", name="Suggest for the rest").click()
    expect(page.locator(".messages")).to_contain_text("20 suggestions made.")
    page.get_by_label("Accept suggestions from").fill("0")
    page.get_by_role("button", name="Accept").click()
    expect(page.locator(".messages")).to_contain_text("20 suggestion(s) accepted.")
    page.get_by_role("button", name="Finish the split").click()
    expect(page.locator(".messages")).to_contain_text("Split finished: 24 moved, 0 to re-label")

    split = ClassSplit.objects.get()
    assert split.status == "finished" and split.source == merge.target
    final = dict(Image.objects.filter(project=project).values_list("id", "label__name"))
    recovered = sum(final[pk] == f"{truth[pk]}s" for pk in truth)
    assert recovered >= 22, recovered
