"""Faults a person found using the app in Chromium, each with the browser test that would
have caught it."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from feedback.models import Prediction
from labeling import services
from labeling.models import Annotation, Image
from models_app.models import ModelVersion
from tests.e2e.test_labeling_flow import log_in
from tests.factories import image_bytes

pytestmark = pytest.mark.e2e


def no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def inside(inner: dict, outer: dict) -> bool:
    return inner["x"] >= outer["x"] - 1 and inner["x"] + inner["width"] <= (
        outer["x"] + outer["width"] + 1
    )


def fake_version(project) -> ModelVersion:
    return ModelVersion.objects.create(
        project=project, number=1, trigger="api", status="succeeded", backbone="x"
    )


def test_the_classes_table_lines_up_with_its_headers(page, project, owner, classes):
    cat, dog, bird = classes
    services.label_class_update(label_class=dog, parent=cat, actor=owner)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/taxonomy/")
    headers = page.locator("#class-table thead th")
    for row in (cat, dog, bird):
        cells = page.locator(f"#class-{row.pk} > td")
        assert cells.count() == headers.count() == 8
        for i in range(8):
            header, cell = headers.nth(i).bounding_box(), cells.nth(i).bounding_box()
            assert abs(header["x"] - cell["x"]) <= 1 and abs(header["width"] - cell["width"]) <= 1
        # Each control stays in its own column: the parent select no longer spans the row.
        select = page.locator(f"#class-{row.pk}").get_by_label(f"Parent of {row.name}")
        assert inside(select.bounding_box(), cells.nth(5).bounding_box())
        assert select.bounding_box()["width"] < 300
    assert no_horizontal_scroll(page)


def test_long_names_stay_inside_the_top_bar_and_the_buttons(page, project, owner, images):
    project.name = "P" * 200
    project.save()
    long = services.label_class_create(project=project, name="x" * 100)
    log_in(page, owner)
    page.set_viewport_size({"width": 1280, "height": 900})
    for url in (f"/projects/{project.pk}/", f"/projects/{project.pk}/label/"):
        page.goto(url)
        expect(page.locator(".topbar .crumb")).to_have_attribute("title", project.name)
        assert no_horizontal_scroll(page), url
        bar = page.locator(".topbar").bounding_box()
        for link in ("Log out", "API"):
            assert inside(page.locator(".topbar").get_by_text(link).bounding_box(), bar)
    button = page.locator(".class-button", has_text="xxxx")
    expect(button).to_have_attribute("title", long.name)
    assert inside(button.bounding_box(), page.locator(".side").bounding_box())


def test_enter_accepts_the_suggestion_shown(page, project, annotator, images, classes):
    Image.objects.filter(project=project).update(suggested_class=classes[1], confidence=0.8)
    log_in(page, annotator)
    page.goto(f"/projects/{project.pk}/label/")
    expect(page.get_by_test_id("suggestion")).to_contain_text("Enter")
    expect(page.locator(".keys-help")).to_contain_text("Enter accepts the suggestion (dog)")
    shown = page.locator("#current-image").get_attribute("data-image-id")
    page.keyboard.press("Enter")
    expect(page.locator("#current-image")).not_to_have_attribute("data-image-id", shown)
    annotation = Annotation.objects.get()
    assert (annotation.image_id, annotation.label_class) == (int(shown), classes[1])

    # No suggestion: Enter does nothing.
    Image.objects.filter(project=project).update(suggested_class=None, confidence=None)
    page.reload()
    shown = page.locator("#current-image").get_attribute("data-image-id")
    expect(page.locator(".keys-help")).not_to_contain_text("Enter")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    expect(page.locator("#current-image")).to_have_attribute("data-image-id", shown)
    assert Annotation.objects.count() == 1


def test_a_resolved_prediction_has_no_live_buttons(page, project, owner, images, classes):
    version = fake_version(project)
    top = [{"class_id": classes[0].pk, "confidence": 0.9}]
    waiting, decided = (
        Prediction.objects.create(
            project=project,
            image=image,
            model_version=version,
            status="predicted",
            predicted_class=classes[0],
            confidence=0.9,
            top=top,
        )
        for image in images[:2]
    )
    services.annotation_create(image=images[1], label_class=classes[1], annotator=owner)
    Prediction.objects.filter(pk=decided.pk).update(
        status="corrected", resolved_class=classes[1], resolved_by=owner, resolved_at=timezone.now()
    )
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/predict/")
    card = page.locator(f"#prediction-{decided.pk}")
    expect(card).to_contain_text("Corrected to dog")
    expect(card.get_by_role("button")).to_have_count(0)

    first = page.locator(f"#prediction-{waiting.pk}")
    expect(first).to_have_class("card prediction current")
    page.keyboard.press("Enter")
    expect(first).to_contain_text("Confirmed by olivia-owner")
    expect(first.get_by_role("button")).to_have_count(0)
    # No card waits any more: keys change nothing.
    page.keyboard.press("Enter")
    page.keyboard.press(classes[2].key)
    page.wait_for_timeout(500)
    statuses = dict(Prediction.objects.values_list("pk", "status"))
    assert statuses == {waiting.pk: "confirmed", decided.pk: "corrected"}
    expect(card).to_contain_text("Corrected to dog")


def test_review_keys_act_on_predictions_corrected_in_use(page, project, owner, images, classes):
    version = fake_version(project)
    predictions = []
    for image in images[:2]:
        services.annotation_create(image=image, label_class=classes[1], annotator=owner)
        predictions.append(
            Prediction.objects.create(
                project=project,
                image=image,
                model_version=version,
                status="corrected",
                predicted_class=classes[0],
                confidence=0.7,
                resolved_class=classes[1],
                resolved_by=owner,
                resolved_at=timezone.now(),
            )
        )
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/review/")
    newest = page.locator(f"#corrected-{predictions[1].pk}")
    older = page.locator(f"#corrected-{predictions[0].pk}")
    expect(newest).to_have_class("card mistake current")
    # A click chooses the card the keys act on.
    older.locator("p").click()
    expect(older).to_have_class("card mistake current")
    expect(newest).to_have_class("card mistake")
    page.keyboard.press("Enter")
    expect(page.locator(f"#review-{images[0].pk}")).to_contain_text("dog, in the dataset")
    assert Annotation.objects.filter(image=images[0], is_current=True).get().action == "keep"

    # Then the keys move on to the card still open.
    expect(newest).to_have_class("card mistake current")
    page.keyboard.press(classes[2].key)
    expect(page.locator(f"#review-{images[1].pk}")).to_contain_text("bird, in the dataset")
    assert Image.objects.get(pk=images[1].pk).label == classes[2]


def test_an_annotator_meets_a_page_that_says_why_and_leads_back(page, project, annotator):
    log_in(page, annotator)
    response = page.goto(f"/projects/{project.pk}/review/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You may not do this")).to_be_visible()
    expect(page.locator("[data-error-message]")).to_have_text(
        "Your role (annotator) may not do this."
    )
    page.get_by_role("link", name="Back to your projects").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()

    response = page.goto("/projects/999999/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("link", name="Back to your projects")).to_be_visible()


def test_pages_have_an_icon_and_no_missing_files(page, project, owner, classes):
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    log_in(page, owner)
    for url in (f"/projects/{project.pk}/", f"/projects/{project.pk}/label/", "/"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
    href = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(href).status == 200
    assert page.request.get("/favicon.ico").status == 200
    assert not missing, missing


def test_the_model_card_counts_an_upload_without_a_reload(page, project, owner, tmp_path):
    log_in(page, owner)
    page.goto(f"/projects/{project.pk}/")
    expect(page.get_by_test_id("embedded")).to_have_text("Embedded 0 of 0 images")
    files = []
    for i in range(2):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(image_bytes(i))
        files.append(path)
    page.set_input_files("#upload-input", files)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_have_text("2 added, 0 duplicate, 0 refused.")
    expect(page.get_by_test_id("embedded")).to_have_text("Embedded 0 of 2 images…")
