"""Webhooks: a project's URLs told of what happens in it, each delivery and each attempt
logged. Imported by `labeling.models`, so Django finds them there."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Webhook(models.Model):
    """One receiver of a project's events: its URL, the events it wants, and the secret
    that signs what it is sent (shown in full only when it is made)."""

    class Event(models.TextChoices):
        VERSION_SUCCEEDED = "model_version.succeeded", "A model version finished training"
        VERSION_FAILED = "model_version.failed", "A model version failed"
        REVIEW_SCAN_FINISHED = "review_scan.finished", "A review scan finished"
        PREDICTION_UNCERTAIN = "prediction.uncertain", "A prediction was uncertain"
        LABEL_MILESTONE = "labels.milestone", "The labeled images reached a milestone"

    # Sent to one webhook on request, whatever events it chose (and even while off).
    PING = "ping"

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list, help_text="The Event values it is sent.")
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} of project {self.project_id}: {self.url}"

    @property
    def secret_hint(self) -> str:
        """Enough of the secret to tell two apart, never enough to sign with."""
        return f"{self.secret[:6]}…{self.secret[-4:]}" if self.secret else ""

    def event_labels(self) -> list[str]:
        names = dict(self.Event.choices)
        return [names.get(event, event) for event in self.events]


class WebhookDelivery(models.Model):
    """One event for one webhook: the exact body sent at every attempt, and where its
    delivery stands. `uid` is the delivery id the receiver sees (the same at every
    attempt, so it can tell a retry from a new event)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for its next attempt"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Given up"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # What happened, as "model_version:12": an event is delivered once per webhook
    # however often its writer runs (a retried task). Empty for pings.
    key = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["webhook", "event", "key"],
                condition=~Q(key=""),
                name="webhookdelivery_once_per_event",
            ),
        ]
        indexes = [models.Index(fields=["webhook", "-created_at"], name="webhookdelivery_recent")]

    def __str__(self) -> str:
        return f"{self.event} to webhook {self.webhook_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One try at sending a delivery: what the receiver answered (or why nothing came
    back), how long it took, and when the next try is due if this one failed."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhookattempt_number"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class LabelMilestone(models.Model):
    """A count of labeled images a project has reached, recorded once: reaching it again
    after an undo sends nothing. `notified` is false for one passed before any webhook
    listened for milestones (recorded so it is not announced late)."""

    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="label_milestones"
    )
    count = models.PositiveIntegerField()
    notified = models.BooleanField(default=True)
    reached_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "count"]
        constraints = [
            models.UniqueConstraint(fields=["project", "count"], name="labelmilestone_once"),
        ]

    def __str__(self) -> str:
        return f"{self.count} labels in project {self.project_id}"
