"""Predictions of a multi-label project: every tag's probability against the threshold
its version stored, confirmed or corrected per tag into the dataset with provenance,
unsure ones sent to the queue; on the page, in the API and through a real worker."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.test import Client

from feedback import services
from feedback.models import Prediction
from labeling import services as labeling_services
from labeling.models import Image, Project, TagAnnotation
from models_app import selectors as learner_selectors
from models_app import services as learner
from models_app.ml.multilabel import predict_tag_proba, tag_head_from_bytes
from tests.factories import PASSWORD
from tests.fashion import fashion_uploads
from tests.feedback.conftest import twin_upload
from tests.models_app.test_tag_training import TAGS_OF, tagged_images


@pytest.fixture
def tag_trained(owner, annotator, fashion):
    """A multi-label project (footwear, bag, has legs) with 14 real images of each of
    four classes tagged, its version 1, and the annotator a member."""
    project = labeling_services.project_create(name="Wardrobe", user=owner, kind="multi")
    labeling_services.membership_set(project=project, username=annotator.username, role="annotator")
    tags = tagged_images(project, owner, fashion, per_class=14)
    version = learner.model_version_request(project=project, trigger="api", user=owner)
    version = learner.model_version_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    return project, tags, version


def predict(project, user, uploads):
    batch = services.predictions_request(project=project, files=uploads, user=user)
    services.predictions_run(prediction_ids=[p.pk for p in batch.predictions])
    return [Prediction.objects.get(pk=p.pk) for p in batch.predictions]


def saved_tags(image: Image) -> dict[int, str]:
    return dict(
        TagAnnotation.objects.filter(image=image, is_current=True).values_list("tag_id", "state")
    )


def test_every_tag_is_answered_against_the_threshold_its_version_stored(
    tag_trained, annotator, fashion
):
    project, tags, version = tag_trained
    uploads = fashion_uploads(fashion, ["Sneaker", "Bag", "Trouser"], 2, skip=14)
    predictions = predict(project, annotator, [u for u, _ in uploads])

    # The expectation from the stored head itself, read from its artifact.
    with default_storage.open(version.artifact, "rb") as f:
        head = tag_head_from_bytes(f.read())
    x = learner.embeddings_of_images(image_ids=[p.image_id for p in predictions])
    proba = predict_tag_proba(head, x)
    thresholds = np.asarray(head.thresholds)
    name_of = {t.pk: name for name, t in tags.items()}
    right = 0
    for prediction, p, (_, truth) in zip(predictions, proba, uploads, strict=True):
        assert prediction.status == "predicted" and prediction.model_version == version
        assert [s["tag_id"] for s in prediction.tag_scores] == version.class_ids
        assert [s["probability"] for s in prediction.tag_scores] == pytest.approx(p, abs=1e-5)
        assert [s["threshold"] for s in prediction.tag_scores] == pytest.approx(thresholds)
        present = p >= thresholds
        assert [s["present"] for s in prediction.tag_scores] == present.tolist()
        assert prediction.predicted_tags == [
            t for t, yes in zip(version.class_ids, present, strict=True) if yes
        ]
        # Its confidence is that of its least sure decision.
        assert prediction.confidence == pytest.approx(np.where(present, p, 1 - p).min(), abs=1e-5)
        assert prediction.top == [] and prediction.predicted_class is None
        right += {name_of[t] for t in prediction.predicted_tags} == TAGS_OF[truth]
        image = prediction.image
        assert (image.source, image.tagged) == ("feedback", False)
        assert image.in_queue == bool(prediction.uncertain_reason)
    assert right >= 5, f"{right}/6 tag sets right"


def test_confirming_and_correcting_save_every_tag_with_provenance(
    tag_trained, owner, annotator, fashion
):
    project, tags, version = tag_trained
    footwear, bag, legs = tags["footwear"], tags["bag"], tags["has legs"]
    uploads = [u for u, _ in fashion_uploads(fashion, ["Sneaker"], 3, skip=14)]
    first, second, third = predict(project, annotator, uploads)
    assert first.predicted_tags == [footwear.pk]

    confirmed = services.prediction_resolve(prediction=first, user=annotator)
    assert confirmed.status == "confirmed" and confirmed.resolved_tags == [footwear.pk]
    assert confirmed.resolved_by == annotator and confirmed.resolved_at is not None
    assert saved_tags(first.image) == {footwear.pk: "present", bag.pk: "absent", legs.pk: "absent"}
    rows = TagAnnotation.objects.filter(image=first.image, is_current=True)
    assert {r.save_id for r in rows} == {confirmed.tag_save_id}
    assert {r.annotator_id for r in rows} == {annotator.pk}
    image = Image.objects.get(pk=first.image_id)
    assert image.tagged and image.split != "unassigned"

    # A correction: the person says bag and footwear (a shoe bag).
    corrected = services.prediction_resolve(
        prediction=second, user=annotator, present=[bag.pk, footwear.pk]
    )
    assert corrected.status == "corrected"
    assert corrected.resolved_tags == sorted([bag.pk, footwear.pk])
    assert saved_tags(second.image) == {
        footwear.pk: "present",
        bag.pk: "present",
        legs.pk: "absent",
    }
    # Deciding again keeps both saves in the image's history.
    again = services.prediction_resolve(prediction=corrected, user=owner, present=[])
    assert again.status == "corrected" and again.resolved_tags == []
    assert again.tag_save_id != corrected.tag_save_id
    assert set(saved_tags(second.image).values()) == {"absent"}
    # Three rows for the first save, two for the tags the second changed.
    assert TagAnnotation.objects.filter(image=second.image).count() == 5
    # Both decided images count toward the next automatic retraining.
    assert learner_selectors.labels_since(project=project, version=version) == 2

    # Bad decisions are refused with nothing written.
    other = labeling_services.project_create(name="Other", user=owner, kind="multi")
    stranger = labeling_services.label_class_create(project=other, name="stranger")
    for bad, message in (
        ({"present": [stranger.pk]}, f"No active tag with id {stranger.pk} in this project"),
        ({"present": [999_999]}, "No active tag with id 999999"),
        ({"label_class": bag}, "send the tags present, not a class"),
    ):
        with pytest.raises(ValidationError, match=message):
            services.prediction_resolve(prediction=third, user=annotator, **bad)
    third.refresh_from_db()
    assert third.status == "predicted" and third.resolved_tags is None
    assert not TagAnnotation.objects.filter(image=third.image).exists()
    # A tag deactivated since the prediction can no longer be saved present.
    labeling_services.label_class_update(label_class=footwear, is_active=False, actor=owner)
    with pytest.raises(ValidationError, match=f"No active tag with id {footwear.pk}"):
        services.prediction_resolve(prediction=third, user=annotator, present=[footwear.pk])
    assert not TagAnnotation.objects.filter(image=third.image).exists()
    confirmed = services.prediction_resolve(prediction=third, user=annotator)
    # Footwear, the one tag predicted, is no longer a tag: confirming saves no tag present.
    assert confirmed.status == "confirmed" and confirmed.resolved_tags == []
    assert saved_tags(third.image) == {bag.pk: "absent", legs.pk: "absent"}


def test_an_older_prediction_of_an_image_cannot_overwrite_a_later_decision(
    tag_trained, annotator, fashion
):
    project, tags, version = tag_trained
    upload = fashion_uploads(fashion, ["Bag"], 1, skip=14)[0][0]
    older = predict(project, annotator, [upload])[0]
    upload.seek(0)
    newer = predict(project, annotator, [upload])[0]
    assert older.image_id == newer.image_id  # the same image, predicted twice
    services.prediction_resolve(
        prediction=newer, user=annotator, present=[tags["bag"].pk, tags["has legs"].pk]
    )
    with pytest.raises(
        ValidationError, match=f"decided since this prediction was made .prediction #{newer.pk}"
    ):
        services.prediction_resolve(prediction=older, user=annotator)
    older.refresh_from_db()
    assert older.status == "predicted"
    assert saved_tags(older.image)[tags["has legs"].pk] == "present"
    # The newer one may still be decided again.
    again = services.prediction_resolve(prediction=newer, user=annotator, present=[])
    assert again.resolved_tags == []


def test_unsure_tag_predictions_and_near_duplicates_that_disagree_join_the_queue(
    tag_trained, owner, annotator, fashion
):
    project, tags, version = tag_trained
    footwear, bag = tags["footwear"], tags["bag"]
    services.feedback_settings_update(project=project, uncertain_below=1.0)
    unsure = predict(project, annotator, [fashion_uploads(fashion, ["Bag"], 1, skip=14)[0][0]])[0]
    assert unsure.uncertain_reason.startswith("Least sure about ")
    assert "under 100%" in unsure.uncertain_reason
    assert Image.objects.get(pk=unsure.image_id).in_queue

    # A sneaker whose saved tags say "bag" (wrongly), and a twin of it predicted: the
    # model says footwear, so the two disagree and a person should look.
    services.feedback_settings_update(project=project, uncertain_below=0.0)
    sneaker = Image.objects.filter(
        project=project,
        original_name__in=[u.name for u, _ in fashion_uploads(fashion, ["Sneaker"], 14)],
    ).first()
    assert saved_tags(sneaker)[footwear.pk] == "present"
    labeling_services.image_tags_set(image=sneaker, present=[bag.pk], annotator=owner)
    twin = predict(project, annotator, [twin_upload(sneaker, "twin.png")])[0]
    assert footwear.pk in twin.predicted_tags
    assert twin.uncertain_reason == f"Near-duplicate of image #{sneaker.pk}, tagged bag."
    assert Image.objects.get(pk=twin.image_id).in_queue


def test_the_predict_page_shows_each_tag_and_saves_the_ticked_ones(tag_trained, annotator, fashion):
    project, tags, version = tag_trained
    footwear, bag, legs = tags["footwear"], tags["bag"], tags["has legs"]
    first, second, third = predict(
        project, annotator, [u for u, _ in fashion_uploads(fashion, ["Trouser"], 3, skip=14)]
    )
    client = Client()
    client.login(username=annotator.username, password=PASSWORD)
    page = client.get(f"/projects/{project.pk}/predict/").content.decode()
    assert f'data-testid="tag-decision-{first.pk}"' in page
    for name in ("footwear", "bag", "has legs"):
        assert f"<td>{name}</td>" in page

    url = f"/projects/{project.pk}/predict/{first.pk}/resolve/"
    response = client.post(url, {"decision": "correct", "present": [str(bag.pk), str(legs.pk)]})
    assert response.status_code in (200, 302)
    first.refresh_from_db()
    assert first.status == "corrected" and first.resolved_tags == sorted([bag.pk, legs.pk])
    assert saved_tags(first.image) == {footwear.pk: "absent", bag.pk: "present", legs.pk: "present"}

    # Enter ("confirm") after changing the ticks saves the ticks, not the prediction.
    client.post(
        f"/projects/{project.pk}/predict/{third.pk}/resolve/",
        {"decision": "confirm", "ticked": "1", "present": [str(footwear.pk)]},
        HTTP_HX_REQUEST="true",
    )
    third.refresh_from_db()
    assert third.status == "corrected" and third.resolved_tags == [footwear.pk]

    # A tag id that is not one: a clear refusal, nothing saved.
    bad = client.post(
        f"/projects/{project.pk}/predict/{second.pk}/resolve/",
        {"decision": "correct", "present": ["abc"]},
        HTTP_HX_REQUEST="true",
    )
    assert bad.status_code == 400
    second.refresh_from_db()
    assert second.status == "predicted"
    assert not TagAnnotation.objects.filter(image=second.image).exists()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_predicts_tags_through_the_api(worker, tag_trained, annotator, fashion, api):
    project, tags, version = tag_trained
    upload = fashion_uploads(fashion, ["Bag"], 1, skip=20)[0][0]
    response = api(annotator).post(
        f"/api/v1/projects/{project.pk}/predictions/", {"files": [upload]}, format="multipart"
    )
    assert response.status_code == 200, response.json()
    answer = response.json()["predictions"][0]
    assert answer["status"] == "predicted" and answer["model_version"] == 1
    assert [t["name"] for t in answer["tags"]] == ["footwear", "bag", "has legs"]
    assert answer["predicted_tags"] == [t["tag"] for t in answer["tags"] if t["present"]]
    assert answer["predicted_tags"] == [tags["bag"].pk]

    url = f"/api/v1/projects/{project.pk}/predictions/{answer['id']}/resolve/"
    refused = api(annotator).post(url, {"present": ["x"]}, format="json")
    assert refused.status_code == 400, refused.json()
    wrong_kind = api(annotator).post(url, {"label_class": tags["bag"].pk}, format="json")
    assert wrong_kind.status_code == 400 and "not a class" in str(wrong_kind.json())
    resolved = api(annotator).post(url, {"present": [tags["footwear"].pk]}, format="json")
    assert resolved.status_code == 200, resolved.json()
    assert resolved.json()["status"] == "corrected"
    assert resolved.json()["resolved_tags"] == [tags["footwear"].pk]
    image = Image.objects.get(pk=answer["image"])
    assert image.tagged and image.project.kind == Project.Kind.MULTI
