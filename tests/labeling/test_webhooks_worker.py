"""Webhook deliveries made by a real django-q2 worker: labels committed in this process
reach a milestone, the worker sends the event to a receiver that fails once, and its
scheduler sends it again after the backoff."""

from __future__ import annotations

import json

import pytest

from labeling import services
from labeling.models import WebhookDelivery
from tests.conftest import add_images, qcluster_start, qcluster_stop
from tests.fashion import wait_for
from tests.labeling.test_webhooks import Receiver, verified

pytestmark = pytest.mark.django_db(transaction=True)


def delivered(delivery_id: int) -> WebhookDelivery | None:
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    return delivery if delivery.status != WebhookDelivery.Status.PENDING else None


def test_a_worker_delivers_a_milestone_and_retries_after_a_failure(
    project, owner, classes, media_root
):
    images = add_images(project, owner, 10)
    with Receiver([500, 200]) as receiver:
        webhook = services.webhook_create(
            project=project, url=receiver.url, events=["labels.milestone"], user=owner
        )
        process = qcluster_start(media_root, WEBHOOK_BACKOFF_SECONDS="1")
        try:
            for image in images:  # each label its own committed transaction
                services.annotation_create(image=image, label_class=classes[0], annotator=owner)
            delivery = WebhookDelivery.objects.get()
            # The scheduler looks for due schedules every 15 s or so.
            delivery = wait_for(lambda: delivered(delivery.pk), timeout=120)
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
