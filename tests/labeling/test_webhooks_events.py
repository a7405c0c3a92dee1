"""Webhook events come from the services that make the writes they report: labels
reaching a milestone, a version finishing (its task), a review scan finishing, an
uncertain prediction. Each is recorded once, and only when its write commits."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback import services as feedback_services
from feedback.models import Prediction
from labeling import services
from labeling.models import Image, LabelMilestone, Project, WebhookDelivery
from models_app import services as learner
from models_app.models import ModelVersion
from models_app.tasks import train_model_version
from tests.conftest import add_images
from tests.feedback.conftest import new_uploads, trained, twin_upload  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def sent(event: str) -> list[dict]:
    """The bodies recorded for `event`, oldest first, as the receiver will read them."""
    rows = WebhookDelivery.objects.filter(event=event).order_by("id")
    return [json.loads(row.body) for row in rows]


def listen(project, owner, *events):
    return services.webhook_create(
        project=project, url="https://example.com/hook", events=list(events), user=owner
    )


def test_labels_reaching_a_milestone_announce_it_once(
    project, owner, classes, django_capture_on_commit_callbacks
):
    listen(project, owner, "labels.milestone")
    images = add_images(project, owner, 52)
    with django_capture_on_commit_callbacks(execute=True):
        for image in images[:9]:
            services.annotation_create(image=image, label_class=classes[0], annotator=owner)
    assert sent("labels.milestone") == []

    with django_capture_on_commit_callbacks(execute=True):
        services.annotation_create(image=images[9], label_class=classes[1], annotator=owner)
    [body] = sent("labels.milestone")
    assert body["data"] == {"milestone": 10, "labeled_images": 10, "milestones_passed": [10]}
    assert body["project"] == {"id": project.pk, "name": project.name}

    # Relabeling an image, or undoing a label and labeling again, reaches 10 again: no news.
    with django_capture_on_commit_callbacks(execute=True):
        services.annotation_create(image=images[9], label_class=classes[2], annotator=owner)
        services.annotation_undo_last(project=project, annotator=owner)
    with django_capture_on_commit_callbacks(execute=True):
        services.annotation_create(image=images[9], label_class=classes[0], annotator=owner)
    assert len(sent("labels.milestone")) == 1

    # A bulk label past 50 runs one check on commit and announces 50.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.annotations_bulk_create(
            project=project,
            image_ids=[i.pk for i in images[10:51]],
            label_class=classes[1],
            annotator=owner,
        )
    checks = [c for c in callbacks if type(c).__name__ == "_MilestoneCheck"]
    assert len(checks) == 1
    assert [b["data"]["milestone"] for b in sent("labels.milestone")] == [10, 50]
    assert sent("labels.milestone")[-1]["data"]["labeled_images"] == 51
    assert set(LabelMilestone.objects.values_list("count", "notified")) == {(10, True), (50, True)}


def test_a_webhook_added_later_hears_of_the_next_milestone_not_of_those_passed(
    project, owner, classes, django_capture_on_commit_callbacks
):
    images = add_images(project, owner, 50)
    with django_capture_on_commit_callbacks(execute=True):
        for image in images[:12]:
            services.annotation_create(image=image, label_class=classes[0], annotator=owner)
    assert not LabelMilestone.objects.exists()  # nobody listened: not even counted
    listen(project, owner, "labels.milestone")
    assert list(LabelMilestone.objects.values_list("count", "notified")) == [(10, False)]
    with django_capture_on_commit_callbacks(execute=True):
        services.annotations_bulk_create(
            project=project,
            image_ids=[i.pk for i in images[12:]],
            label_class=classes[1],
            annotator=owner,
        )
    [body] = sent("labels.milestone")
    assert body["data"] == {"milestone": 50, "labeled_images": 50, "milestones_passed": [50]}


def test_a_milestone_reached_while_one_webhook_listens_is_announced_to_one_added_later(
    project, owner, classes, django_capture_on_commit_callbacks
):
    """Recording as passed is for milestones nobody listened for: a second webhook, or an
    edit of the first, must not swallow one that is being announced."""
    first = listen(project, owner, "labels.milestone")
    images = add_images(project, owner, 10)
    for image in images:  # committed labels whose check has not run yet
        services.annotation_create(image=image, label_class=classes[0], annotator=owner)
    services.webhook_update(webhook=first, description="edited")
    second = listen(project, owner, "labels.milestone")
    assert not LabelMilestone.objects.exists()
    services.label_milestones_check(project_id=project.pk)
    assert sorted(d.webhook_id for d in WebhookDelivery.objects.all()) == [first.pk, second.pk]
    # Turned off and on again after a milestone nobody heard: recorded as passed.
    services.webhook_update(webhook=first, is_active=False)
    services.webhook_update(webhook=second, is_active=False)
    more = add_images(project, owner, 40, start=100)
    services.annotations_bulk_create(
        project=project, image_ids=[i.pk for i in more], label_class=classes[1], annotator=owner
    )
    services.webhook_update(webhook=first, is_active=True)
    assert LabelMilestone.objects.get(count=50).notified is False


def test_a_bulk_label_asks_once_whether_a_webhook_listens(
    project, owner, classes, django_capture_on_commit_callbacks
):
    images = add_images(project, owner, 20)
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.annotations_bulk_create(
            project=project,
            image_ids=[i.pk for i in images],
            label_class=classes[0],
            annotator=owner,
        )
    asked = [q["sql"] for q in queries.captured_queries if '"labeling_webhook"' in q["sql"]]
    assert len(asked) == 1, asked
    assert not LabelMilestone.objects.exists()  # nobody listens: nothing counted


def test_saved_tags_count_toward_milestones(owner, django_capture_on_commit_callbacks):
    project = services.project_create(name="Tags", user=owner, kind=Project.Kind.MULTI)
    tag = services.label_class_create(project=project, name="striped")
    listen(project, owner, "labels.milestone")
    images = add_images(project, owner, 10)
    with django_capture_on_commit_callbacks(execute=True):
        for image in images:
            services.image_tags_set(image=image, present=[tag.pk], annotator=owner)
            # Saving an image's tags again is not a new labeled image.
            services.image_tags_set(image=image, present=[], annotator=owner)
    [body] = sent("labels.milestone")
    assert body["data"]["milestone"] == 10 and body["data"]["labeled_images"] == 10


def test_labels_rolled_back_announce_nothing(
    project, owner, classes, django_capture_on_commit_callbacks
):
    listen(project, owner, "labels.milestone")
    images = add_images(project, owner, 10)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        for image in images:
            services.annotation_create(image=image, label_class=classes[0], annotator=owner)
        raise RuntimeError("the request fails after labeling")
    assert callbacks == []
    assert not WebhookDelivery.objects.exists() and not LabelMilestone.objects.exists()
    # The same labels committed do announce it: the check above was really skipped.
    with django_capture_on_commit_callbacks(execute=True):
        for image in images:
            services.annotation_create(image=image, label_class=classes[0], annotator=owner)
    assert [b["data"]["milestone"] for b in sent("labels.milestone")] == [10]


def test_a_version_finishing_is_announced_once(
    trainable, owner, classes, django_capture_on_commit_callbacks
):
    listen(trainable, owner, "model_version.succeeded", "model_version.failed")
    version = learner.model_version_request(project=trainable, trigger="api", user=owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert train_model_version(version.pk) == "succeeded"
        assert train_model_version(version.pk) == "succeeded"  # a rerun: no second event
    [body] = sent("model_version.succeeded")
    data = body["data"]["model_version"]
    assert (data["id"], data["number"], data["status"], data["is_active"]) == (
        version.pk,
        1,
        "succeeded",
        True,
    )
    assert data["labels_total"] == 2 and data["error"] == ""

    failing = learner.model_version_request(project=trainable, trigger="api", user=owner)
    services.label_class_update(label_class=classes[1], is_active=False, actor=owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert train_model_version(failing.pk) == "failed"
    [body] = sent("model_version.failed")
    data = body["data"]["model_version"]
    assert data["number"] == 2 and data["status"] == "failed" and data["is_active"] is False
    assert "two active classes" in data["error"]
    assert len(sent("model_version.succeeded")) == 1


def test_a_version_whose_worker_stopped_is_announced_as_failed(
    trainable, owner, settings, django_capture_on_commit_callbacks
):
    listen(trainable, owner, "model_version.failed")
    stuck = learner.model_version_request(project=trainable, trigger="api", user=owner)
    # Its worker died mid-training, longer ago than any task may run.
    started = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["timeout"] + 60)
    ModelVersion.objects.filter(pk=stuck.pk).update(status="running", started_at=started)
    with django_capture_on_commit_callbacks(execute=True):
        learner.model_version_request(project=trainable, trigger="api", user=owner)
    [body] = sent("model_version.failed")
    data = body["data"]["model_version"]
    assert (data["id"], data["status"]) == (stuck.pk, "failed")
    assert data["error"] == "The worker stopped before the training finished."


def test_uncertain_predictions_and_a_finished_scan_are_announced(
    trained,  # noqa: F811
    project,
    owner,
    new_uploads,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    _, classes = trained
    listen(project, owner, "prediction.uncertain", "review_scan.finished")
    # The model is sure of new images of its classes (its confidence rounds to 1), so
    # the uncertain one is a near-duplicate of a labeled image relabeled since.
    original = Image.objects.filter(project=project, label=classes["Trouser"]).first()
    twin = twin_upload(original, "twin.png")
    services.annotation_create(image=original, label_class=classes["Bag"], annotator=owner)
    files = [twin, *(u for u, _ in new_uploads(1))]
    batch = feedback_services.predictions_request(project=project, files=files, user=owner)
    with django_capture_on_commit_callbacks(execute=True):
        feedback_services.predictions_run(prediction_ids=[p.pk for p in batch.predictions])
    answered = Prediction.objects.filter(pk__in=[p.pk for p in batch.predictions])
    unsure = [p for p in answered if p.uncertain_reason]
    assert [p.image_id for p in unsure] == [batch.predictions[0].image_id]
    [body] = sent("prediction.uncertain")
    data = body["data"]["prediction"]
    assert data["id"] == unsure[0].pk and data["image"] == unsure[0].image_id
    assert data["model_version"] == 1 and data["predicted_class"] == classes["Trouser"].pk
    assert data["reason"] == f"Near-duplicate of image #{original.pk}, labeled Bag."
    # Predicting the same images again: the new uncertain prediction is a new event.
    again = feedback_services.predictions_request(project=project, files=[twin], user=owner)
    with django_capture_on_commit_callbacks(execute=True):
        feedback_services.predictions_run(prediction_ids=[p.pk for p in again.predictions])
        feedback_services.predictions_run(prediction_ids=[p.pk for p in again.predictions])
    assert [b["data"]["prediction"]["id"] for b in sent("prediction.uncertain")] == [
        unsure[0].pk,
        again.predictions[0].pk,
    ]

    scan = feedback_services.review_scan_request(project=project, user=owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert feedback_services.review_scan_run(scan_id=scan.pk).status == "succeeded"
        feedback_services.review_scan_run(scan_id=scan.pk)  # a rerun: no second event
    [body] = sent("review_scan.finished")
    assert body["data"]["review_scan"]["id"] == scan.pk
    assert body["data"]["review_scan"]["status"] == "succeeded"
    assert body["data"]["review_scan"]["labeled"] == 45
