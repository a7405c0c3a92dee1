"""Webhook deliveries made by a real django-q2 worker: labels committed in this process
reach a milestone, the worker sends the event to a receiver that fails once, and its
scheduler sends it again after the backoff; a version the worker trains is announced
from inside the worker's task."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from labeling import services
from labeling.models import Image, WebhookDelivery
from models_app import services as learner
from tests.conftest import add_images, qcluster_start, qcluster_stop
from tests.fashion import wait_for
from tests.labeling.test_webhooks import Receiver, verified

pytestmark = pytest.mark.django_db(transaction=True)


def delivered(delivery_id: int) -> WebhookDelivery | None:
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    return delivery if delivery.status != WebhookDelivery.Status.PENDING else None


def test_a_worker_delivers_a_milestone_retrying_after_a_failure_and_announces_a_version(
    project, owner, classes, media_root
):
    images = add_images(project, owner, 10)
    with Receiver([500, 200]) as receiver, Receiver([200]) as versions:
        webhook = services.webhook_create(
            project=project, url=receiver.url, events=["labels.milestone"], user=owner
        )
        services.webhook_create(
            project=project, url=versions.url, events=["model_version.succeeded"], user=owner
        )
        process = qcluster_start(media_root, WEBHOOK_BACKOFF_SECONDS="1")
        try:
            for i, image in enumerate(images):  # each label its own committed transaction
                services.annotation_create(image=image, label_class=classes[i % 2], annotator=owner)
            delivery = WebhookDelivery.objects.get()
            # Trainable whatever the hash draws: both classes in the train split.
            Image.objects.filter(project=project).update(split=Image.Split.TRAIN)
            version = learner.model_version_request(project=project, trigger="api", user=owner)
            # The scheduler looks for due schedules every 15 s or so.
            delivery = wait_for(lambda: delivered(delivery.pk), timeout=120)
            announced = wait_for(
                lambda: WebhookDelivery.objects.filter(
                    event="model_version.succeeded", status="succeeded"
                ).first(),
                timeout=240,
            )
        finally:
            qcluster_stop(process)

    assert delivery.status == "succeeded", delivery.error
    attempts = list(delivery.attempt_log.all())
    assert [a.status_code for a in attempts] == [500, 200]
    assert abs((attempts[0].next_retry_at - attempts[0].started_at).total_seconds() - 1) < 0.5
    assert attempts[1].started_at >= attempts[0].next_retry_at
    assert len(receiver.requests) == 2
    for headers, body, _ in receiver.requests:
        assert verified(webhook.secret, headers, body)
        assert json.loads(body)["data"]["milestone"] == 10

    [(headers, body, _)] = versions.requests
    assert headers["x-labelloop-delivery"] == str(announced.uid)
    data = json.loads(body)["data"]["model_version"]
    assert (data["id"], data["status"], data["is_active"]) == (version.pk, "succeeded", True)


def test_the_resume_tick_sends_a_delivery_whose_task_was_lost(project, owner, media_root):
    with Receiver([200]) as receiver:
        webhook = services.webhook_create(
            project=project, url=receiver.url, events=["labels.milestone"], user=owner
        )
        delivery = services.webhook_ping(webhook=webhook)
        # Its task lost (a broker down at commit), and overdue for long.
        OrmQ.objects.all().delete()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() - timedelta(hours=1)
        )
        # The tick as labeling's migration 0012 leaves it (the flush took the row).
        Schedule.objects.create(
            name="labelloop: resume webhook deliveries",
            func="labeling.tasks.webhooks_resume",
            schedule_type=Schedule.ONCE,
            minutes=10,
            repeats=1,
            hook="models_app.ticks.tick_rearm",
            next_run=timezone.now(),
        )
        process = qcluster_start(media_root)
        try:
            delivery = wait_for(lambda: delivered(delivery.pk), timeout=120)
            tick = wait_for(
                lambda: Task.objects.filter(func="labeling.tasks.webhooks_resume").first(),
                timeout=60,
            )
            # Run, the tick is armed again by its hook, ten minutes on.
            armed = wait_for(
                lambda: Schedule.objects.filter(
                    name="labelloop: resume webhook deliveries",
                    repeats=1,
                    next_run__gt=timezone.now() + timedelta(minutes=9),
                ).first(),
                timeout=60,
            )
        finally:
            qcluster_stop(process)
    assert (delivery.status, tick.success, tick.result) == ("succeeded", True, 1)
    assert len(receiver.requests) == 1
    assert armed.minutes == 10
