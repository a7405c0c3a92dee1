"""Confirming and correcting predictions, and reviewing mistakes, by keyboard in a real
browser."""

from __future__ import annotations

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from feedback import services
from feedback.models import Prediction
from labeling import services as labeling_services
from labeling.models import Annotation, Image
from tests.e2e.test_labeling_flow import log_in
from tests.feedback.conftest import new_uploads, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e


def test_predictions_are_confirmed_and_corrected_by_one_key(
    page,
    trained,  # noqa: F811
    new_uploads,  # noqa: F811
    project,
    annotator,
    tmp_path,
):
    _, classes = trained
    uploads = [u for u, _ in new_uploads(1, names=["Trouser", "Sneaker"])]
    batch = services.predictions_request(project=project, files=uploads, user=annotator)
    services.predictions_run(prediction_ids=[p.pk for p in batch.predictions])
    trouser, sneaker = (Prediction.objects.get(pk=p.pk) for p in batch.predictions)
    assert (trouser.predicted_class.name, sneaker.predicted_class.name) == ("Trouser", "Sneaker")

    log_in(page, annotator)
    page.goto(f"/projects/{project.pk}/predict/")
    # Newest first: the sneaker's card is the one the keys act on.
    first = page.locator(f"#prediction-{sneaker.pk}")
    expect(first).to_have_class("card prediction current")
    page.keyboard.press("Enter")
    expect(first).to_contain_text("Confirmed by anna-annotator")
    second = page.locator(f"#prediction-{trouser.pk}")
    expect(second).to_have_class("card prediction current")
    page.keyboard.press(classes["Bag"].key)
    expect(second).to_contain_text("Corrected to Bag")
    trouser.refresh_from_db()
    sneaker.refresh_from_db()
    assert (sneaker.status, sneaker.image.label) == ("confirmed", classes["Sneaker"])
    assert (trouser.status, trouser.image.label) == ("corrected", classes["Bag"])

    # Sending a file from the page: no worker runs here, so it waits for one.
    path = tmp_path / "bag.png"
    upload = new_uploads(1, names=["Bag"], skip=30)[0][0]
    upload.seek(0)
    path.write_bytes(upload.read())
    with override_settings(FEEDBACK={**services.settings.FEEDBACK, "PREDICT_WAIT_SECONDS": 1}):
        page.set_input_files('input[name="files"]', [path])
        page.get_by_role("button", name="Predict").click()
        expect(page.locator("#results")).to_contain_text("Waiting for a worker")
    assert Prediction.objects.filter(status="pending").count() == 1


def test_a_reviewer_removes_a_wrong_label_by_keyboard(
    page,
    trained,  # noqa: F811
    project,
    owner,
    reviewer,
):
    _, classes = trained
    trouser = Image.objects.filter(project=project, label=classes["Trouser"]).first()
    labeling_services.annotation_create(image=trouser, label_class=classes["Bag"], annotator=owner)
    services.review_scan_run(
        scan_id=services.review_scan_request(project=project, user=reviewer).pk
    )
    log_in(page, reviewer)
    page.goto(f"/projects/{project.pk}/review/")
    card = page.locator(f"#review-{trouser.pk}")
    expect(card).to_have_class("card mistake current")
    page.keyboard.press("Delete")
    expect(card).to_contain_text("removed")
    trouser.refresh_from_db()
    assert trouser.status == "removed"
    assert Annotation.objects.filter(image=trouser, is_current=True).get().action == "remove"
    page.get_by_role("button", name="Restore").click()
    expect(card).to_contain_text("in the dataset")
