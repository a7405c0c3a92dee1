"""An owner presses Retrain and watches the model arrive, with a real worker behind it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Project
from tests.e2e.test_labeling_flow import log_in
from tests.factories import UserFactory
from tests.fashion import labeled_project

pytestmark = pytest.mark.e2e


def test_retrain_button_shows_progress_then_the_new_model(page, worker, fashion):
    owner = UserFactory(username="olivia")
    from labeling import services

    project = services.project_create(name="Clothes", user=owner)
    labeled_project(
        project, owner, fashion, ["Trouser", "Bag"], per_class=12, unlabeled_per_class=3
    )

    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    expect(page.get_by_text("No model yet.")).to_be_visible()
    page.get_by_role("button", name="Retrain").click()
    expect(page.get_by_test_id("training")).to_contain_text("Training v1")
    expect(page.get_by_role("button", name="Retrain")).to_be_disabled()
    # The panel polls; the worker embeds, trains and scores.
    expect(page.get_by_test_id("active-version")).to_contain_text("Active: v1", timeout=180_000)
    expect(page.get_by_role("button", name="Retrain")).to_be_enabled()

    page.goto(f"/projects/{project.pk}/label/")
    expect(page.get_by_test_id("suggestion")).to_contain_text("Model suggests")
    expect(page.locator(".class-button.suggested")).to_have_count(1)

    page.goto(f"/projects/{project.pk}/model/")
    expect(page.locator("#confusion svg")).to_be_visible()
    expect(page.locator("#versions")).to_contain_text("v1 (active)")
    assert Project.objects.get(pk=project.pk).model_versions.get().is_active
