"""The feedback REST API: predicting through a real worker, and who may see what."""

from __future__ import annotations

import pytest
from django.test import override_settings

from feedback import services
from feedback.models import Prediction
from labeling.models import Image

pytestmark = pytest.mark.django_db(transaction=True)


def test_predicting_through_the_api_waits_for_the_worker_and_answers(
    worker, trained, project, annotator, api, new_uploads
):
    version, classes = trained
    uploads = new_uploads(1)
    response = api(annotator).post(
        f"/api/v1/projects/{project.pk}/predictions/",
        {"files": [u for u, _ in uploads], "top_k": "2"},
        format="multipart",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [f["status"] for f in body["files"]] == ["created"] * 3
    for prediction, (_, truth) in zip(body["predictions"], uploads, strict=True):
        assert prediction["status"] == "predicted" and prediction["model_version"] == 1
        assert len(prediction["top"]) == 2 and 0 < prediction["confidence"] <= 1
        assert prediction["predicted_class_name"] == truth

    first = body["predictions"][0]
    wrong = next(c for c in classes.values() if c.pk != first["predicted_class"])
    resolved = api(annotator).post(
        f"/api/v1/projects/{project.pk}/predictions/{first['id']}/resolve/",
        {"label_class": wrong.pk},
        format="json",
    )
    assert resolved.status_code == 200, resolved.json()
    assert resolved.json()["status"] == "corrected"
    assert resolved.json()["resolved_by"] == annotator.username
    assert Image.objects.get(pk=first["image"]).label == wrong
    stored = Prediction.objects.get(pk=first["id"])
    assert (stored.status, stored.resolved_class, stored.resolved_by) == (
        "corrected",
        wrong,
        annotator,
    )


@override_settings(FEEDBACK={**services.settings.FEEDBACK, "PREDICT_WAIT_SECONDS": 0})
def test_without_a_worker_the_answer_is_202_and_can_be_polled(
    trained, project, annotator, api, new_uploads
):
    response = api(annotator).post(
        f"/api/v1/projects/{project.pk}/predictions/",
        {"files": [new_uploads(1, names=["Bag"])[0][0]]},
        format="multipart",
    )
    assert response.status_code == 202
    prediction = response.json()["predictions"][0]
    assert prediction["status"] == "pending"
    services.predictions_run(prediction_ids=[prediction["id"]])
    polled = api(annotator).get(f"/api/v1/projects/{project.pk}/predictions/{prediction['id']}/")
    assert polled.json()["status"] == "predicted"
    listed = api(annotator).get(f"/api/v1/projects/{project.pk}/predictions/?status=predicted")
    assert [p["id"] for p in listed.json()["results"]] == [prediction["id"]]


def test_bad_requests_get_clear_errors(trained, project, annotator, api, new_uploads, classes=None):
    url = f"/api/v1/projects/{project.pk}/predictions/"
    assert api(annotator).post(url, {}, format="multipart").status_code == 400
    # Found by the schema fuzzer: a body that is not a form was a server error.
    assert api(annotator).post(url).status_code == 400
    bad_k = api(annotator).post(
        url, {"files": [new_uploads(1, names=["Bag"])[0][0]], "top_k": "0"}, format="multipart"
    )
    assert bad_k.status_code == 400 and "top_k" in bad_k.json()
    from django.core.files.uploadedfile import SimpleUploadedFile

    junk = api(annotator).post(
        url, {"files": [SimpleUploadedFile("junk.png", b"not an image")]}, format="multipart"
    )
    assert junk.status_code == 400
    assert junk.json()["files"][0]["status"] == "rejected"
    assert not Prediction.objects.exists()
    assert api(annotator).get(f"{url}?status=nonsense").status_code == 400


def test_without_a_model_predicting_is_refused(project, annotator, api, classes, new_uploads):
    response = api(annotator).post(
        f"/api/v1/projects/{project.pk}/predictions/",
        {"files": [new_uploads(1, names=["Bag"])[0][0]]},
        format="multipart",
    )
    assert response.status_code == 400
    assert "no trained model yet" in response.json()["detail"][0]
    assert not Image.objects.filter(project=project).exists()


def test_an_outsider_can_neither_predict_nor_see_predictions_models_or_images(
    trained, project, annotator, outsider, api, new_uploads
):
    batch = services.predictions_request(
        project=project, files=[new_uploads(1, names=["Bag"])[0][0]], user=annotator
    )
    services.predictions_run(prediction_ids=[batch.predictions[0].pk])
    prediction = Prediction.objects.get(pk=batch.predictions[0].pk)
    p = f"/api/v1/projects/{project.pk}"
    client = api(outsider)
    refused = [
        client.post(
            f"{p}/predictions/",
            {"files": [new_uploads(1, names=["Bag"], skip=20)[0][0]]},
            format="multipart",
        ),
        client.get(f"{p}/predictions/"),
        client.get(f"{p}/predictions/{prediction.pk}/"),
        client.post(f"{p}/predictions/{prediction.pk}/resolve/", {}, format="json"),
        client.get(f"{p}/model/versions/"),
        client.get(f"{p}/images/{prediction.image_id}/"),
        client.get(f"{p}/images/{prediction.image_id}/file/"),
        client.get(f"{p}/review/mistakes/"),
        client.post(f"{p}/review/scan/"),
        client.post(f"{p}/images/{prediction.image_id}/review/", {"action": "remove"}),
    ]
    assert [r.status_code for r in refused] == [404] * len(refused)
    from django.test import Client

    browser = Client()
    browser.force_login(outsider)
    pages = [
        f"/projects/{project.pk}/predict/",
        f"/projects/{project.pk}/review/",
        f"/projects/{project.pk}/images/{prediction.image_id}/file",
    ]
    assert [browser.get(url).status_code for url in pages] == [404] * len(pages)
    assert Prediction.objects.count() == 1 and Image.objects.filter(project=project).count() == 46
    prediction.refresh_from_db()
    assert prediction.status == "predicted"


def test_annotators_may_not_review(trained, project, annotator, reviewer, api):
    image = Image.objects.filter(project=project).first()
    p = f"/api/v1/projects/{project.pk}"
    assert api(annotator).get(f"{p}/review/mistakes/").status_code == 403
    assert api(annotator).post(f"{p}/review/scan/").status_code == 403
    refused = api(annotator).post(f"{p}/images/{image.pk}/review/", {"action": "remove"})
    assert refused.status_code == 403
    image.refresh_from_db()
    assert image.status == "active"
    allowed = api(reviewer).post(f"{p}/images/{image.pk}/review/", {"action": "remove"})
    assert allowed.status_code == 200
    image.refresh_from_db()
    assert image.status == "removed"


def test_a_reviewer_scans_and_lists_disputed_labels_through_the_api(
    trained, project, owner, reviewer, api
):
    from labeling import services as labeling_services

    _, classes = trained
    trouser = Image.objects.filter(project=project, label=classes["Trouser"]).first()
    labeling_services.annotation_create(image=trouser, label_class=classes["Bag"], annotator=owner)
    p = f"/api/v1/projects/{project.pk}"
    scan = api(reviewer).post(f"{p}/review/scan/")
    assert scan.status_code == 202 and scan.json()["status"] == "queued"
    services.review_scan_run(scan_id=scan.json()["id"])
    listed = api(reviewer).get(f"{p}/review/mistakes/").json()
    first = listed["results"][0]
    assert first["image"]["id"] == trouser.pk
    assert (first["label_name"], first["suggested_name"]) == ("Bag", "Trouser")
    assert 0 <= first["quality"] < 0.5
    relabel = api(reviewer).post(
        f"{p}/images/{trouser.pk}/review/",
        {"action": "relabel", "label_class": classes["Trouser"].pk},
    )
    assert relabel.status_code == 200 and relabel.json()["label_name"] == "Trouser"
    trouser.refresh_from_db()
    assert trouser.label == classes["Trouser"]
    missing_class = api(reviewer).post(f"{p}/images/{trouser.pk}/review/", {"action": "relabel"})
    assert missing_class.status_code == 400 and "label_class" in missing_class.json()
    history = api(reviewer).get(f"{p}/images/{trouser.pk}/annotations/").json()
    assert [h["action"] for h in history] == ["label", "label", "label"]
