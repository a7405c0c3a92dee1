from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from labeling.models import Annotation, Image, LabelClass, Project, TagAnnotation
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

    In a multi-label project the answer is `tag_scores` and `predicted_tags`, and
    `confidence` is that of its least sure tag decision (p for a tag predicted present,
    1 - p for one predicted absent); a decision saves the image's tags, `resolved_tags`
    are those saved present and `tag_save_id` the save (the tag rows' `save_id`).
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
    # Multi-label projects. Every tag of the version, in its order:
    # [{"tag_id": ..., "probability": ..., "threshold": ..., "present": bool}, ...].
    tag_scores = models.JSONField(default=list, blank=True)
    # The ids of the tags predicted present (probability at least the tag's threshold).
    predicted_tags = models.JSONField(default=list, blank=True)
    # The ids of the tags the person decided present; null until decided.
    resolved_tags = models.JSONField(null=True, blank=True)
    tag_save_id = models.UUIDField(
        null=True, blank=True, help_text="The save_id of the tag rows the decision wrote."
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


class TagLabelScore(models.Model):
    """How strongly out-of-sample predictions dispute the saved tags of an image of a
    multi-label project, as scored by the newest scan: cleanlab's multi-label label
    quality over the tags saved on it (low: some tag looks wrong)."""

    image = models.OneToOneField(
        Image, on_delete=models.CASCADE, primary_key=True, related_name="tag_label_score"
    )
    scan = models.ForeignKey(ReviewScan, on_delete=models.CASCADE, related_name="tag_scores")
    quality = models.FloatField(help_text="Multi-label label quality of the saved tags.")
    is_issue = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["scan", "quality"], name="taglabelscore_rank")]

    def __str__(self) -> str:
        return f"tag quality {self.quality:.2f} of image {self.image_id}"


class TagSuspect(models.Model):
    """One saved tag state of an image that the scan's out-of-sample model disputes
    (saved present but probably absent, or the reverse). It applies while that state
    is still the one in force."""

    score = models.ForeignKey(TagLabelScore, on_delete=models.CASCADE, related_name="suspects")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    tag = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(
        max_length=7,
        choices=[
            (TagAnnotation.State.PRESENT, "Present"),
            (TagAnnotation.State.ABSENT, "Absent"),
        ],
        help_text="The state saved when the scan scored it.",
    )
    probability = models.FloatField(help_text="Out-of-sample probability that the tag is present.")
    quality = models.FloatField(help_text="Out-of-sample probability of the saved state.")
    is_issue = models.BooleanField(default=False, help_text="Confident learning flags it.")

    class Meta:
        ordering = ["quality", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "tag"], name="tagsuspect_one_per_tag"),
        ]

    def __str__(self) -> str:
        return f"image {self.image_id}: {self.tag_id} saved {self.state}, p {self.probability:.2f}"


class TagReview(models.Model):
    """A reviewer's decision on a disputed image of a multi-label project: keep its
    tags as they are, or flip one tag (written through labeling's tag service as a row
    of the image's tag history; `save_id` is that row's)."""

    class Action(models.TextChoices):
        KEEP = "keep", "Tags kept"
        FLIP = "flip", "Tag flipped"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tag_reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=4, choices=Action.choices)
    tag = models.ForeignKey(
        LabelClass, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    state = models.CharField(max_length=7, blank=True, help_text="The flipped tag's new state.")
    save_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["image", "-created_at"], name="tagreview_recent")]

    def __str__(self) -> str:
        return f"{self.action} on image {self.image_id}"
