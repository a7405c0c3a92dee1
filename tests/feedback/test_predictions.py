"""Predictions in real use, and how confirmed, corrected and uncertain ones flow back."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from feedback import services
from feedback.models import Prediction
from labeling import services as labeling_services
from labeling.models import Annotation, Image
from models_app import selectors as learner_selectors
from models_app import services as learner
from tests.feedback.conftest import twin_upload

pytestmark = pytest.mark.django_db(transaction=True)


def predict(project, user, uploads, top_k=3):
    batch = services.predictions_request(project=project, files=uploads, user=user, top_k=top_k)
    services.predictions_run(prediction_ids=[p.pk for p in batch.predictions])
    return [Prediction.objects.get(pk=p.pk) for p in batch.predictions], batch


def test_a_prediction_answers_top_k_with_the_version_and_keeps_the_image(
    trained, project, annotator, new_uploads
):
    version, classes = trained
    uploads = new_uploads(2)
    predictions, batch = predict(project, annotator, [u for u, _ in uploads], top_k=2)
    assert [r.status for r in batch.files] == ["created"] * 6
    right = 0
    for prediction, (_, truth) in zip(predictions, uploads, strict=True):
        assert prediction.status == "predicted"
        assert prediction.model_version == version
        assert len(prediction.top) == 2
        assert prediction.top[0]["confidence"] >= prediction.top[1]["confidence"]
        assert prediction.confidence == pytest.approx(prediction.top[0]["confidence"])
        assert prediction.predicted_class_id == prediction.top[0]["class_id"]
        right += prediction.predicted_class.name == truth
        image = prediction.image
        assert (image.source, image.label_id, image.uploaded_by) == ("feedback", None, annotator)
    assert right >= 5, f"{right}/6 right"


def test_a_corrected_prediction_becomes_a_labeled_training_image_and_the_next_version_trains_on_it(  # noqa: E501
    trained, project, owner, annotator, new_uploads
):
    first, classes = trained
    # Bags the model gets right, relabeled "Sneaker" by the person who knows better: the
    # correction, not the model, decides the label.
    uploads = new_uploads(8, names=["Bag"])
    predictions, _ = predict(project, annotator, [u for u, _ in uploads])
    assert all(p.predicted_class == classes["Bag"] for p in predictions)
    for prediction in predictions:
        services.prediction_resolve(
            prediction=prediction, label_class=classes["Sneaker"], user=annotator
        )
    for prediction in predictions:
        prediction.refresh_from_db()
        image = prediction.image
        assert prediction.status == "corrected"
        assert prediction.resolved_by == annotator and prediction.resolved_at is not None
        assert prediction.model_version == first
        assert prediction.predicted_class == classes["Bag"]
        assert prediction.resolved_class == classes["Sneaker"]
        annotation = prediction.annotation
        assert (annotation.image_id, annotation.label_class, annotation.annotator) == (
            image.pk,
            classes["Sneaker"],
            annotator,
        )
        assert image.label == classes["Sneaker"] and image.split != "unassigned"

    # The corrections count toward automatic retraining...
    learner.learner_settings_update(project=project, retrain_every=8)
    assert project in learner_selectors.projects_due_for_training()
    # ... and the next version trains on those that fell in the training split.
    in_train = Image.objects.filter(project=project, source="feedback", split="train").count()
    assert in_train >= 3
    second = learner.model_version_request(project=project, trigger="auto")
    second = learner.model_version_train(version_id=second.pk)
    assert second.status == "succeeded", second.error
    trained_before = sum(c["train"] for c in first.label_counts.values())
    assert first.metrics["sources"]["train"] == {"uploaded": trained_before}
    assert second.metrics["sources"]["train"] == {"feedback": in_train, "uploaded": trained_before}
    counts = second.label_counts[str(classes["Sneaker"].pk)]
    assert counts["train"] == first.label_counts[str(classes["Sneaker"].pk)]["train"] + in_train
    # The fixed images put one bag in the test split (their hashes decide): the next
    # version's test metrics count it under its source.
    held = Image.objects.filter(project=project, source="feedback", split="test").count()
    assert held >= 1, "the 8 bags chosen must put at least one in the test split"
    by_source = second.metrics["test_by_source"]["feedback"]
    assert by_source["n"] == held
    # Its accuracy is the new active model's, on those images and their corrected labels.
    tested = list(Image.objects.filter(project=project, source="feedback", split="test"))
    model = learner.active_model(project=project)
    assert model.version == second
    guesses = model.proba([i.pk for i in tested]).argmax(axis=1)
    right = sum(second.class_ids[g] == i.label_id for g, i in zip(guesses, tested, strict=True))
    assert by_source["accuracy"] == pytest.approx(right / held)


def test_confirming_labels_the_image_with_the_predicted_class(
    trained, project, annotator, new_uploads
):
    version, classes = trained
    (prediction,), _ = predict(project, annotator, [new_uploads(1, names=["Trouser"])[0][0]])
    services.prediction_resolve(prediction=prediction, label_class=None, user=annotator)
    prediction.refresh_from_db()
    assert prediction.status == "confirmed"
    assert prediction.image.label == prediction.predicted_class == classes["Trouser"]
    # Changing one's mind later relabels it, both rows kept in the history.
    services.prediction_resolve(prediction=prediction, label_class=classes["Bag"], user=annotator)
    prediction.refresh_from_db()
    assert prediction.status == "corrected"
    history = Annotation.objects.filter(image=prediction.image).order_by("id")
    assert [a.label_class.name for a in history] == ["Trouser", "Bag"]


def predict_at(project, user, uploads, threshold):
    """Predict `uploads` with the project's threshold set to `threshold` (hand-chosen);
    the stored rows, in upload order."""
    services.feedback_settings_update(project=project, uncertain_below=threshold)
    predictions, _ = predict(project, user, uploads)
    return predictions


def test_predictions_under_the_threshold_are_uncertain_and_join_the_labeling_queue(
    trained, project, annotator, new_uploads
):
    # Images of the project's classes and of classes it lacks: a spread of confidences.
    uploads = [u for u, _ in new_uploads(2)]
    uploads += [u for u, _ in new_uploads(2, names=["Sandal", "Shirt", "Pullover"], skip=0)]

    def check(rows, threshold, queued_before):
        flagged = {p.image_id for p in rows if p.is_uncertain}
        expected = {p.image_id for p in rows if p.confidence < threshold}
        assert flagged == expected, [(p.confidence, p.uncertain_reason) for p in rows]
        for p in rows:
            reason = f"Confidence {p.confidence:.0%} is under {threshold:.0%}."
            assert p.uncertain_reason == (reason if p.image_id in expected else "")
        queued = set(
            Image.objects.filter(project=project, source="feedback", in_queue=True).values_list(
                "id", flat=True
            )
        )
        assert queued == queued_before | expected
        return expected

    # Below every confidence: nothing is uncertain, nothing joins the queue.
    rows = predict_at(project, annotator, uploads, 0.0)
    assert all(p.status == "predicted" for p in rows)
    confidences = {p.image_id: p.confidence for p in rows}
    assert len(confidences) == len(uploads)
    assert check(rows, 0.0, set()) == set()

    # A stored confidence as the threshold: those strictly under it are uncertain, the
    # one that equals it is not.
    ranked = sorted(confidences.values())
    assert ranked[0] < ranked[1] < 1.0, ranked
    rows = predict_at(project, annotator, uploads, ranked[1])
    assert {p.image_id: p.confidence for p in rows} == confidences  # the same answers
    queued = check(rows, ranked[1], set())
    assert len(queued) == sum(c < ranked[1] for c in ranked) > 0

    # Between: confidences on each side of a hand-chosen threshold.
    between = 0.99
    assert ranked[1] < between <= ranked[-1], ranked
    rows = predict_at(project, annotator, uploads, between)
    flagged = check(rows, between, queued)
    assert flagged > queued
    queued |= flagged
    # Queued images are ranked with the rest by the active model, and served.
    assert all(i.suggested_class_id is not None for i in Image.objects.filter(pk__in=queued))
    served = labeling_services.queue_reserve(project=project, user=annotator, count=100)
    assert {i.pk for i in served} == queued

    # The top of the scale, above every confidence short of certainty: all of those are
    # uncertain; a confidence of exactly 1 (a saturated float32 softmax) is not under it.
    rows = predict_at(project, annotator, uploads, 1.0)
    short_of_certain = {pk for pk, c in confidences.items() if c < 1.0}
    assert short_of_certain > queued, ranked
    assert check(rows, 1.0, queued) == short_of_certain


def test_a_prediction_disputing_a_near_duplicates_label_is_uncertain(
    trained, project, owner, annotator, fashion
):
    _, classes = trained
    # A labeled trouser, relabeled Bag (wrongly); then the same picture with one pixel
    # changed is sent for prediction. The model says Trouser: its twin says Bag.
    trouser = Image.objects.filter(project=project, label=classes["Trouser"]).first()
    labeling_services.annotation_create(image=trouser, label_class=classes["Bag"], annotator=owner)
    learner.embeddings_ensure(project=project)
    services.feedback_settings_update(project=project, uncertain_below=0.0)
    (prediction,), _ = predict(project, annotator, [twin_upload(trouser, "twin.png")])
    assert prediction.predicted_class == classes["Trouser"]
    assert prediction.uncertain_reason == f"Near-duplicate of image #{trouser.pk}, labeled Bag."
    assert prediction.image.in_queue


def test_requests_are_refused_clearly(project, owner, classes, new_uploads):
    with pytest.raises(ValidationError, match="no trained model yet"):
        services.predictions_request(project=project, files=[], user=owner)


def test_bad_top_k_and_unresolvable_predictions_are_refused(
    trained, project, annotator, new_uploads
):
    upload = new_uploads(1, names=["Bag"])[0][0]
    with pytest.raises(ValidationError, match="top_k"):
        services.predictions_request(project=project, files=[upload], user=annotator, top_k=0)
    batch = services.predictions_request(project=project, files=[upload], user=annotator)
    with pytest.raises(ValidationError, match="pending"):
        services.prediction_resolve(
            prediction=batch.predictions[0], label_class=None, user=annotator
        )
    assert Image.objects.get(pk=batch.predictions[0].image_id).label is None


def test_a_failure_is_recorded_on_the_predictions(
    trained, project, annotator, new_uploads, monkeypatch
):
    batch = services.predictions_request(
        project=project, files=[new_uploads(1, names=["Bag"])[0][0]], user=annotator
    )

    def broken(self, image_ids):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(learner.ActiveModel, "proba", broken)
    assert services.predictions_run(prediction_ids=[batch.predictions[0].pk]) == 0
    prediction = Prediction.objects.get(pk=batch.predictions[0].pk)
    assert (prediction.status, prediction.error) == ("failed", "RuntimeError: out of memory")
    assert not prediction.image.in_queue
