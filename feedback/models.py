from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from labeling.models import Annotation, Image, LabelClass, Project
from models_app.models import ModelVersion


class FeedbackSettings(models.Model):
    """How a project treats predictions made in real use. Created with defaults."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, primary_key=True, related_name="feedback_settings"
    )
    uncertain_below = models.FloatField(
        default=0.6,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A prediction less confident than this enters the labeling queue.",
    )

    class Meta:
        verbose_name_plural = "feedback settings"

    def __str__(self) -> str:
        return f"feedback settings of {self.project}"


class Prediction(models.Model):
    """One image sent for prediction, the answer, and what a person made of it.

    The image is kept in the dataset (source feedback, unlabeled, out of the queue
    unless the model was unsure). A confirmation or correction labels it, and
    `annotation` is that label: together they are its provenance (which version
    predicted what, who confirmed or corrected it, when).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        PREDICTED = "predicted", "Predicted"
        CONFIRMED = "confirmed", "Confirmed"
        CORRECTED = "corrected", "Corrected"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="predictions")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    top_k = models.PositiveSmallIntegerField(default=3)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="predictions"
    )
    predicted_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confidence = models.FloatField(null=True, blank=True)
    # The best `top_k` classes: [{"class_id": ..., "confidence": ...}, ...], best first.
    top = models.JSONField(default=list)
    # Why the image was sent to the labeling queue ("" when it was not).
    uncertain_reason = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    resolved_class = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "status"], name="prediction_status")]

    def __str__(self) -> str:
        return f"prediction {self.pk} of image {self.image_id} ({self.status})"

    @property
    def is_uncertain(self) -> bool:
        return bool(self.uncertain_reason)


class ReviewScan(models.Model):
    """One computation of label quality and near-duplicates for a project's review."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_scans")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    labeled = models.PositiveIntegerField(default=0)
    issues = models.PositiveIntegerField(default=0)
    duplicate_pairs = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["project", "-created_at", "-id"]

    def __str__(self) -> str:
        return f"review scan {self.pk} of {self.project} ({self.status})"


class LabelScore(models.Model):
    """How strongly out-of-sample predictions dispute an image's label, as scored by the
    newest scan. It applies while the image still has `label_class`."""

    image = models.OneToOneField(
        Image, on_delete=models.CASCADE, primary_key=True, related_name="label_score"
    )
    scan = models.ForeignKey(ReviewScan, on_delete=models.CASCADE, related_name="scores")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    quality = models.FloatField(help_text="Probability of the given label, out of sample.")
    is_issue = models.BooleanField(default=False)
    suggested_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    suggested_confidence = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["scan", "quality"], name="labelscore_rank")]

    def __str__(self) -> str:
        return f"label quality {self.quality:.2f} of image {self.image_id}"


class NearDuplicate(models.Model):
    """Two images of a project whose embeddings are nearly identical (found by a scan)."""

    scan = models.ForeignKey(ReviewScan, on_delete=models.CASCADE, related_name="duplicates")
    first = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    similarity = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scan", "first", "second"], name="nearduplicate_pair"),
        ]

    def __str__(self) -> str:
        return f"images {self.first_id} ~ {self.second_id} ({self.similarity:.3f})"
