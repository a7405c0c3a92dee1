"""The predict and review pages, through Django's test client."""

from __future__ import annotations

import pytest
from django.test import Client

from feedback import services
from feedback.models import FeedbackSettings, Prediction
from labeling.models import Annotation, Image

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_predict_page_predicts_and_one_click_confirms(trained, project, annotator, new_uploads):
    version, classes = trained
    client = client_for(annotator)
    page = client.get(f"/projects/{project.pk}/predict/").content.decode()
    assert f"Model v{version.number} answers" in page
    upload = new_uploads(1, names=["Trouser"])[0][0]
    batch = services.predictions_request(project=project, files=[upload], user=annotator)
    services.predictions_run(prediction_ids=[batch.predictions[0].pk])
    prediction = Prediction.objects.get(pk=batch.predictions[0].pk)

    page = client.get(f"/projects/{project.pk}/predict/").content.decode()
    assert f'id="prediction-{prediction.pk}"' in page and "data-pending" in page
    assert "<strong>Trouser</strong>" in page

    card = client.post(
        f"/projects/{project.pk}/predict/{prediction.pk}/resolve/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Confirmed by anna-annotator" in card and "data-pending" not in card
    prediction.refresh_from_db()
    assert prediction.status == "confirmed" and prediction.image.label == classes["Trouser"]

    refused = client.post(
        f"/projects/{project.pk}/predict/{prediction.pk}/resolve/",
        {"label_class": "x"},
        HTTP_HX_REQUEST="true",
    )
    assert refused.status_code == 400 and "Choose a class" in refused.content.decode()


def test_predict_page_reports_bad_files_and_no_files(trained, project, annotator, settings):
    settings.FEEDBACK = {**settings.FEEDBACK, "PREDICT_WAIT_SECONDS": 0}
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = client_for(annotator)
    empty = client.post(f"/projects/{project.pk}/predict/", HTTP_HX_REQUEST="true")
    assert empty.status_code == 400 and "Choose one or more images" in empty.content.decode()
    junk = client.post(
        f"/projects/{project.pk}/predict/",
        {"files": [SimpleUploadedFile("junk.png", b"nope")]},
        HTTP_HX_REQUEST="true",
    )
    assert junk.status_code == 200 and "junk.png: Not an image we can read" in junk.content.decode()
    assert not Prediction.objects.exists()
    assert not Image.objects.filter(project=project, source="feedback").exists()


def stored_threshold(project) -> float:
    return FeedbackSettings.objects.get(project=project).uncertain_below


REFUSED = "The threshold is a number of percent, from 0 to 100."


def test_threshold_setting_is_for_curators_and_checked(project, owner, annotator):
    url = f"/projects/{project.pk}/predict/settings/"
    page = f"/projects/{project.pk}/predict/"
    client = client_for(owner)
    saved = client.post(url, {"uncertain_below": "45"}, follow=True)
    assert saved.redirect_chain == [(page, 302)]
    assert "Predictions under 45% now enter the queue." in saved.content.decode()
    assert stored_threshold(project) == 0.45

    denied = client_for(annotator).post(url, {"uncertain_below": "50"})
    assert denied.status_code == 403
    assert stored_threshold(project) == 0.45

    for typed in ("150", "abc", "-5", "nan", "inf", ""):
        refused = client.post(url, {"uncertain_below": typed}, follow=True)
        assert refused.redirect_chain == [(page, 302)], typed
        html = refused.content.decode()
        assert REFUSED in html and "now enter the queue" not in html, typed
        assert stored_threshold(project) == 0.45, typed


def test_review_page_lists_disputed_labels_and_records_decisions(
    trained, project, owner, reviewer, annotator
):
    _, classes = trained
    trouser = Image.objects.filter(project=project, label=classes["Trouser"]).first()
    from labeling import services as labeling_services

    labeling_services.annotation_create(image=trouser, label_class=classes["Bag"], annotator=owner)
    assert client_for(annotator).get(f"/projects/{project.pk}/review/").status_code == 403
    client = client_for(reviewer)
    client.post(f"/projects/{project.pk}/review/scan/")
    from feedback.models import ReviewScan

    services.review_scan_run(scan_id=ReviewScan.objects.get(project=project).pk)
    page = client.get(f"/projects/{project.pk}/review/").content.decode()
    assert f'id="review-{trouser.pk}"' in page
    assert "Labeled <strong>Bag</strong>; the model says <strong>Trouser</strong>" in page

    card = client.post(
        f"/projects/{project.pk}/review/{trouser.pk}/",
        {"action": "relabel", "label_class": classes["Trouser"].pk},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert f"#{trouser.pk}: <strong>Trouser</strong>, in the dataset." in card
    trouser.refresh_from_db()
    assert trouser.label == classes["Trouser"]
    page = client.get(f"/projects/{project.pk}/review/").content.decode()
    assert f'id="review-{trouser.pk}"' not in page
    bad = client.post(
        f"/projects/{project.pk}/review/{trouser.pk}/", {"action": "burn"}, HTTP_HX_REQUEST="true"
    )
    assert bad.status_code == 400 and "Choose one of" in bad.content.decode()
    assert Annotation.objects.filter(image=trouser).count() == 3


@pytest.fixture
def waiting_prediction(project, images, classes):
    from models_app.models import ModelVersion

    version = ModelVersion.objects.create(
        project=project, number=1, trigger="api", status="succeeded", backbone="x"
    )
    return Prediction.objects.create(
        project=project,
        image=images[0],
        model_version=version,
        status="predicted",
        predicted_class=classes[0],
        confidence=0.9,
        top=[{"class_id": classes[0].pk, "confidence": 0.9}],
    )


def test_a_resolved_prediction_shows_its_decision_without_buttons(
    project, annotator, classes, waiting_prediction
):
    client = client_for(annotator)
    url = f"/projects/{project.pk}/predict/{waiting_prediction.pk}/resolve/"
    card = client.post(url, {"label_class": classes[1].pk}, HTTP_HX_REQUEST="true")
    html = card.content.decode()
    assert card.status_code == 200 and "Corrected to <strong>dog</strong>" in html
    assert "<button" not in html and "data-pending" not in html
    page = client.get(f"/projects/{project.pk}/predict/").content.decode()
    card_html = page.split(f'id="prediction-{waiting_prediction.pk}"')[1].split("</article>")[0]
    assert "Corrected to <strong>dog</strong>" in card_html and "hx-post" not in card_html


def test_the_threshold_form_answers_in_place(project, owner):
    client = client_for(owner)
    url = f"/projects/{project.pk}/predict/settings/"
    refused = client.post(url, {"uncertain_below": "150"}, HTTP_HX_REQUEST="true")
    html = refused.content.decode()
    assert refused.status_code == 400 and 'id="threshold-form"' in html and "<html" not in html
    assert REFUSED in html and 'value="150"' in html
    assert (
        not FeedbackSettings.objects.filter(project=project).exclude(uncertain_below=0.6).exists()
    )
    saved = client.post(url, {"uncertain_below": "45"}, HTTP_HX_REQUEST="true")
    assert saved.status_code == 200 and "Predictions under 45% now enter" in saved.content.decode()
    assert services.feedback_settings(project=project).uncertain_below == 0.45


def test_predict_refused_beside_the_form(project, annotator, images):
    from tests.factories import image_upload

    client = client_for(annotator)
    response = client.post(
        f"/projects/{project.pk}/predict/", {"files": [image_upload(50)]}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and response["HX-Retarget"] == "#predict-errors"
    assert "no trained model yet" in response.content.decode()
